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
    let mut first = vec![0u32; n + 1];
    for e in 0..g.edge_count() {
        if essential.get(e) {
            first[g.edge_to[e] as usize + 1] += 1;
        }
    }
    for i in 0..n {
        first[i + 1] += first[i];
    }
    let total = first[n] as usize;
    let mut from = vec![0u32; total];
    let mut fill = first.clone();
    for node in 0..n as u32 {
        for e in g.edges(node) {
            if essential.get(e) {
                let to = g.edge_to[e] as usize;
                from[fill[to] as usize] = node;
                fill[to] += 1;
            }
        }
    }
    Preds { first, from }
}

pub fn compute(g: &Graph, essential: &Bits) -> Dominators {
    // The predecessor lists are only read after the DFS from the root: built
    // beside it, on a second thread.
    std::thread::scope(|scope| {
        let preds = scope.spawn(|| essential_preds(g, essential));
        compute_with(g, essential, || preds.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

fn compute_with(g: &Graph, essential: &Bits, preds: impl FnOnce() -> Preds) -> Dominators {
    let node_count = g.node_count();
    // 1-based vertex numbers as in the paper; 0 means "none".
    let len = node_count + 1;
    // Memory is the constraint on big snapshots, so two arrays of the paper
    // share storage (see the main loop): `ancestor` holds the DFS parent until
    // the vertex is linked, `label` doubles as the bucket heads.
    let mut ancestor = vec![0u32; len];
    let mut vertex = vec![0u32; len];
    let mut semi = vec![0u32; len];
    let mut next_edge = vec![0u32; len];
    let mut n: u32 = 0;

    let dfs = |root: u32, n: &mut u32, parent: &mut [u32], semi: &mut [u32], vertex: &mut [u32], next_edge: &mut [u32]| {
        let root_ordinal = (root - 1) as usize;
        next_edge[root_ordinal] = g.first_edge[root_ordinal];
        let mut v = root;
        while v != 0 {
            if semi[v as usize] == 0 {
                *n += 1;
                semi[v as usize] = *n;
                vertex[*n as usize] = v;
            }
            let mut v_next = parent[v as usize];
            let v_ordinal = (v - 1) as usize;
            let end = g.first_edge[v_ordinal + 1];
            while next_edge[v_ordinal] < end {
                let e = next_edge[v_ordinal] as usize;
                if essential.get(e) {
                    let w_ordinal = g.edge_to[e];
                    let w = w_ordinal + 1;
                    if semi[w as usize] == 0 {
                        parent[w as usize] = v;
                        next_edge[w_ordinal as usize] = g.first_edge[w_ordinal as usize];
                        v_next = w;
                        break;
                    }
                }
                next_edge[v_ordinal] += 1;
            }
            v = v_next;
        }
    };

    let r = g.root + 1;
    dfs(r, &mut n, &mut ancestor, &mut semi, &mut vertex, &mut next_edge);
    let preds = preds();
    if (n as usize) < node_count {
        // Nodes whose every retainer is non-essential hang under the root.
        for v in 1..=node_count as u32 {
            let o = (v - 1) as usize;
            if semi[v as usize] == 0 && preds.first[o] == preds.first[o + 1] {
                ancestor[v as usize] = r;
                dfs(v, &mut n, &mut ancestor, &mut semi, &mut vertex, &mut next_edge);
            }
        }
    }
    if (n as usize) < node_count {
        // What is left is held only by cycles: visit each one from the root.
        for v in 1..=node_count as u32 {
            if semi[v as usize] == 0 {
                ancestor[v as usize] = r;
                n += 1;
                semi[v as usize] = n;
                vertex[n as usize] = v;
            }
        }
    }
    drop(next_edge);

    // Vertices are linked in decreasing DFS number. Before its link a vertex's
    // `ancestor` slot holds its DFS parent and its `label` slot heads its
    // bucket: a bucket only ever holds descendants, all of which are processed
    // (and the bucket drained) before the vertex itself is linked, and a label
    // is only read for linked vertices.
    let mut linked = Bits::new(len);
    let mut label = vec![0u32; len];
    let mut stack: Vec<u32> = Vec::new();
    let compress = |v0: u32, ancestor: &mut [u32], label: &mut [u32], semi: &[u32], linked: &Bits, stack: &mut Vec<u32>| {
        let mut v = v0;
        stack.clear();
        while linked.get(ancestor[v as usize] as usize) {
            stack.push(v);
            v = ancestor[v as usize];
        }
        while let Some(w) = stack.pop() {
            let w = w as usize;
            let a = ancestor[w] as usize;
            if semi[label[a] as usize] < semi[label[w] as usize] {
                label[w] = label[a];
            }
            ancestor[w] = ancestor[a];
        }
    };
    let evaluate =
        |v: u32, ancestor: &mut [u32], label: &mut [u32], semi: &[u32], linked: &Bits, stack: &mut Vec<u32>| -> u32 {
            if !linked.get(v as usize) {
                return v;
            }
            compress(v, ancestor, label, semi, linked, stack);
            label[v as usize]
        };

    // A bucket is a linked list whose links live in `dom`: dom[v] is only
    // written when v leaves its bucket, after its link was read.
    let mut dom = vec![0u32; len];
    for i in (2..=n).rev() {
        let w = vertex[i as usize];
        let w_ordinal = (w - 1) as usize;
        let (from, to) = (preds.first[w_ordinal] as usize, preds.first[w_ordinal + 1] as usize);
        if from == to {
            // No essential retainer: the root is its only predecessor.
            semi[w as usize] = semi[r as usize];
        }
        for k in from..to {
            let v = preds.from[k] + 1;
            let u = evaluate(v, &mut ancestor, &mut label, &semi, &linked, &mut stack);
            if semi[u as usize] < semi[w as usize] {
                semi[w as usize] = semi[u as usize];
            }
        }
        let b = vertex[semi[w as usize] as usize] as usize;
        dom[w as usize] = label[b];
        label[b] = w;
        let p = ancestor[w as usize];
        // link(p, w): ancestor[w] already holds p. A bucket still non-empty
        // here can only hold vertices whose semidominator is not their DFS
        // ancestor (cycles only reachable through the "visit from the root"
        // fallback): DevTools never drains those, so they keep dom 0 and end
        // up under the root; clear their list links to the same effect.
        let mut stranded = label[w as usize];
        while stranded != 0 {
            let next = dom[stranded as usize];
            dom[stranded as usize] = 0;
            stranded = next;
        }
        linked.set(w as usize);
        label[w as usize] = w;
        let mut v = label[p as usize];
        label[p as usize] = 0;
        while v != 0 {
            let next = dom[v as usize];
            let u = evaluate(v, &mut ancestor, &mut label, &semi, &linked, &mut stack);
            dom[v as usize] = if semi[u as usize] < semi[v as usize] { u } else { p };
            v = next;
        }
    }
    drop(ancestor);
    drop(label);
    drop(linked);
    drop(preds);
    dom[0] = r;
    dom[r as usize] = r;
    for i in 2..=n {
        let w = vertex[i as usize] as usize;
        if dom[w] != vertex[semi[w] as usize] {
            dom[w] = dom[dom[w] as usize];
        }
    }
    drop(semi);

    // To 0-based ordinals in place: idom[o] = dom[o + 1] - 1.
    dom.remove(0);
    for d in dom.iter_mut() {
        *d -= 1;
    }
    let idom = dom;
    // DFS preorder as ordinals: every node comes after its dominator.
    vertex.remove(0);
    for v in vertex.iter_mut() {
        *v -= 1;
    }
    Dominators { idom, preorder: vertex }
}

/// Retained size = own shallow size + retained sizes of the dominated nodes,
/// summed children-first by walking the DFS preorder backwards.
pub fn retained_sizes(g: &Graph, d: &Dominators) -> Vec<u64> {
    let mut retained: Vec<u64> = g.self_size.iter().map(|&s| u64::from(s)).collect();
    for &o in d.preorder.iter().skip(1).rev() {
        let dom = d.idom[o as usize] as usize;
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
