//! Dominator tree and retained sizes, a line-by-line port of DevTools'
//! `calculateDominatorsAndRetainedSizes` (iterative Lengauer–Tarjan with the
//! simple eval/link), including how it attaches nodes the root cannot reach:
//! first those with only non-essential retainers (each a DFS root under the
//! root), then any remaining cycles one node at a time. Matching its DFS order
//! matters only for those unreachable nodes, but that is where tools differ.

use super::graph::{Bits, Graph};

pub struct Dominators {
    /// Immediate dominator of each node (the root's is itself).
    pub idom: Vec<u32>,
    /// Node ordinals in the DFS order the algorithm numbered them (root first).
    pub preorder: Vec<u32>,
}

/// Predecessors over essential edges only, as a CSR (source nodes).
struct Preds {
    first: Vec<u32>,
    from: Vec<u32>,
}

fn essential_preds(g: &Graph, essential: &Bits) -> Preds {
    let n = g.node_count();
    // Counts, then running sums: first[w] is where w's list ends. Filling
    // backwards moves each first[w] to where w's list starts, without a
    // second offsets array (this runs beside the DFS, at the memory peak);
    // each list stays in ascending node order.
    let mut first = vec![0u32; n + 1];
    for e in 0..g.edge_count() {
        if essential.get(e) {
            first[g.edge_to[e] as usize] += 1;
        }
    }
    let mut total = 0u32;
    for f in first.iter_mut().take(n) {
        total += *f;
        *f = total;
    }
    first[n] = total;
    let mut from = vec![0u32; total as usize];
    for node in (0..n as u32).rev() {
        for e in g.edges(node).rev() {
            if essential.get(e) {
                let to = g.edge_to[e] as usize;
                first[to] -= 1;
                from[first[to] as usize] = node;
            }
        }
    }
    Preds { first, from }
}

/// The dominator tree. `beside` runs on the second thread once the
/// predecessor lists are built (it has time left while the DFS goes on).
pub fn compute(g: &Graph, essential: &Bits, beside: impl FnOnce() + Send) -> Dominators {
    // The predecessor lists are only read after the DFS from the root: built
    // beside it, on a second thread.
    std::thread::scope(|scope| {
        let preds = scope.spawn(|| {
            let preds = essential_preds(g, essential);
            beside();
            preds
        });
        compute_with(g, essential, || super::joined(preds))
    })
}

/// The per-vertex fields of the paper side by side, so the random accesses
/// of the main loop (by vertex, in DFS order) cost one cache line each
/// instead of one per array. Memory is the constraint on big snapshots, so
/// fields share storage over time:
/// - `ancestor` holds the DFS parent until the vertex is linked;
/// - `label` is the DFS's next edge to look at, then (zeroed once the vertex
///   is done) the head of its bucket until it is linked;
/// - `dom` holds the bucket's list links until the vertex leaves its bucket.
#[derive(Clone, Copy, Default)]
struct Vertex {
    semi: u32,
    ancestor: u32,
    label: u32,
    dom: u32,
}

fn compute_with(g: &Graph, essential: &Bits, preds: impl FnOnce() -> Preds) -> Dominators {
    let node_count = g.node_count();
    // 1-based vertex numbers as in the paper; 0 means "none".
    let len = node_count + 1;
    let mut vs = vec![Vertex::default(); len];
    let mut vertex = vec![0u32; len];
    // Numbered vertices as bits: the DFS tests one per edge, and a bitmap
    // stays in cache where the vertex array cannot.
    let mut visited = Bits::new(len);
    let mut n: u32 = 0;

    // Iterative DFS; ends where it meets vertex 0 (the start's parent).
    let dfs = |start: u32, n: &mut u32, vs: &mut [Vertex], visited: &mut Bits, vertex: &mut [u32]| {
        vs[start as usize].label = g.first_edge[(start - 1) as usize];
        let mut v = start;
        while v != 0 {
            if !visited.get(v as usize) {
                visited.set(v as usize);
                *n += 1;
                vs[v as usize].semi = *n;
                vertex[*n as usize] = v;
            }
            let mut v_next = vs[v as usize].ancestor;
            let end = g.first_edge[v as usize];
            let mut e = vs[v as usize].label;
            while e < end {
                if essential.get(e as usize) {
                    let w_ordinal = g.edge_to[e as usize];
                    let w = w_ordinal + 1;
                    if !visited.get(w as usize) {
                        vs[w as usize].ancestor = v;
                        vs[w as usize].label = g.first_edge[w_ordinal as usize];
                        v_next = w;
                        break;
                    }
                }
                e += 1;
            }
            // Done with v's edges: its label slot starts as an empty bucket.
            vs[v as usize].label = if e < end { e } else { 0 };
            v = v_next;
        }
    };

    let r = g.root + 1;
    dfs(r, &mut n, &mut vs, &mut visited, &mut vertex);
    let preds = preds();
    if (n as usize) < node_count {
        // Nodes whose every retainer is non-essential hang under the root.
        // (Their DFS stops at them; the root's edges are all visited.)
        for v in 1..=node_count as u32 {
            let o = (v - 1) as usize;
            if !visited.get(v as usize) && preds.first[o] == preds.first[o + 1] {
                dfs(v, &mut n, &mut vs, &mut visited, &mut vertex);
                vs[v as usize].ancestor = r;
            }
        }
    }
    if (n as usize) < node_count {
        // What is left is held only by cycles: visit each one from the root.
        for v in 1..=node_count as u32 {
            if !visited.get(v as usize) {
                visited.set(v as usize);
                vs[v as usize].ancestor = r;
                n += 1;
                vs[v as usize].semi = n;
                vertex[n as usize] = v;
            }
        }
    }
    drop(visited);

    // Vertices are linked in decreasing DFS number. Before its link a vertex's
    // `ancestor` holds its DFS parent and its `label` heads its bucket: a
    // bucket only ever holds descendants, all of which are processed (and the
    // bucket drained) before the vertex itself is linked, and a label is only
    // read for linked vertices.
    let mut linked = Bits::new(len);
    let mut stack: Vec<u32> = Vec::new();
    let compress = |v0: u32, vs: &mut [Vertex], linked: &Bits, stack: &mut Vec<u32>| {
        let mut v = v0;
        stack.clear();
        while linked.get(vs[v as usize].ancestor as usize) {
            stack.push(v);
            v = vs[v as usize].ancestor;
        }
        while let Some(w) = stack.pop() {
            let w = w as usize;
            let a = vs[w].ancestor as usize;
            let (label_a, ancestor_a) = (vs[a].label, vs[a].ancestor);
            if vs[label_a as usize].semi < vs[vs[w].label as usize].semi {
                vs[w].label = label_a;
            }
            vs[w].ancestor = ancestor_a;
        }
    };
    let evaluate = |v: u32, vs: &mut [Vertex], linked: &Bits, stack: &mut Vec<u32>| -> u32 {
        if !linked.get(v as usize) {
            return v;
        }
        compress(v, vs, linked, stack);
        vs[v as usize].label
    };

    for i in (2..=n).rev() {
        let w = vertex[i as usize];
        let w_ordinal = (w - 1) as usize;
        let (from, to) = (preds.first[w_ordinal] as usize, preds.first[w_ordinal + 1] as usize);
        let p = vs[w as usize].ancestor;
        if to - from == 1 && preds.from[from] + 1 == p {
            // Most vertices' only retainer is their DFS parent (still
            // unlinked): it is their semidominator and immediate dominator,
            // so they skip the evaluation and the bucket.
            vs[w as usize].semi = vs[p as usize].semi;
            vs[w as usize].dom = p;
        } else {
            let mut semi_w = vs[w as usize].semi;
            if from == to {
                // No essential retainer: the root is its only predecessor.
                semi_w = vs[r as usize].semi;
            }
            for k in from..to {
                let v = preds.from[k] + 1;
                let u = evaluate(v, &mut vs, &linked, &mut stack);
                semi_w = semi_w.min(vs[u as usize].semi);
            }
            vs[w as usize].semi = semi_w;
            let b = vertex[semi_w as usize] as usize;
            vs[w as usize].dom = vs[b].label;
            vs[b].label = w;
        }
        // link(p, w): ancestor[w] already holds p. A bucket still non-empty
        // here can only hold vertices whose semidominator is not their DFS
        // ancestor (cycles only reachable through the "visit from the root"
        // fallback): DevTools never drains those, so they keep dom 0 and end
        // up under the root; clear their list links to the same effect.
        let mut stranded = vs[w as usize].label;
        while stranded != 0 {
            let next = vs[stranded as usize].dom;
            vs[stranded as usize].dom = 0;
            stranded = next;
        }
        linked.set(w as usize);
        vs[w as usize].label = w;
        let mut v = vs[p as usize].label;
        vs[p as usize].label = 0;
        while v != 0 {
            let next = vs[v as usize].dom;
            let u = evaluate(v, &mut vs, &linked, &mut stack);
            vs[v as usize].dom = if vs[u as usize].semi < vs[v as usize].semi { u } else { p };
            v = next;
        }
    }
    drop(linked);
    super::free_beside(preds);
    vs[0].dom = r;
    vs[r as usize].dom = r;
    for i in 2..=n {
        let w = vertex[i as usize] as usize;
        let d = vs[w].dom;
        if d != vertex[vs[w].semi as usize] {
            vs[w].dom = vs[d as usize].dom;
        }
    }

    // To 0-based ordinals: idom[o] = dom[o + 1] - 1.
    let idom: Vec<u32> = vs[1..].iter().map(|x| x.dom - 1).collect();
    super::free_beside(vs);
    // DFS preorder as ordinals: every node comes after its dominator.
    vertex.remove(0);
    for v in vertex.iter_mut() {
        *v -= 1;
    }
    Dominators { idom, preorder: vertex }
}

/// Retained size = own shallow size + retained sizes of the dominated nodes,
/// summed children-first by walking the DFS preorder backwards.
pub fn retained_sizes(g: &Graph, idom: &[u32], preorder: &[u32]) -> Vec<u64> {
    let mut retained: Vec<u64> = g.self_size.iter().map(|&s| u64::from(s)).collect();
    for &o in preorder.iter().skip(1).rev() {
        let dom = idom[o as usize] as usize;
        retained[dom] += retained[o as usize];
    }
    retained
}

/// The dominator tree's children lists as a CSR (`buildDominatedNodes`).
pub struct Dominated {
    pub first: Vec<u32>,
    pub nodes: Vec<u32>,
}

pub fn dominated(idom: &[u32], root: u32) -> Dominated {
    dominated_into(idom, root, Vec::new(), Vec::new())
}

/// `dominated` with the offsets in `buffer`'s allocation and the lists in
/// `nodes_buffer`'s (both cleared first).
pub fn dominated_into(idom: &[u32], root: u32, mut buffer: Vec<u32>, mut nodes_buffer: Vec<u32>) -> Dominated {
    let n = idom.len();
    // Counts, then running sums: first[d] is where d's list ends. Filling
    // backwards moves each first[d] to where d's list starts, without a
    // second offsets array; each list stays in ascending node order.
    buffer.clear();
    buffer.resize(n + 1, 0);
    let mut first = buffer;
    for (o, &d) in idom.iter().enumerate() {
        if o as u32 != root {
            first[d as usize] += 1;
        }
    }
    for i in 0..n {
        first[i + 1] += first[i];
    }
    nodes_buffer.clear();
    nodes_buffer.resize(n.saturating_sub(1), 0);
    let mut nodes = nodes_buffer;
    for (o, &d) in idom.iter().enumerate().rev() {
        if o as u32 != root {
            first[d as usize] -= 1;
            nodes[first[d as usize] as usize] = o as u32;
        }
    }
    Dominated { first, nodes }
}
