//! DevTools' passes between loading and dominators, in its order: DOM
//! detachedness propagation (renames detached native nodes), page-owned flags,
//! the "essential edge" bitmap the dominator tree is built from, and the
//! transfer of owned arrays' / system objects' shallow sizes to their owner.

use rustc_hash::FxHashMap as HashMap;

use super::graph::{Bits, Graph};
use super::weakmap::EphemeronNames;

const ATTACHED: u8 = 1;
const DETACHED: u8 = 2;

/// `propagateDOMState`: attached-ness flows from attached native nodes, then
/// detached-ness from detached ones; detached native nodes get a
/// `Detached ` name prefix.
pub fn propagate_dom_state(g: &mut Graph) {
    if g.detachedness.is_empty() {
        return;
    }
    let n = g.node_count();
    let mut walk = DomWalk {
        g,
        visited: vec![false; n],
        attached: Vec::new(),
        detached: Vec::new(),
        renamed: HashMap::default(),
    };
    for node in 0..n as u32 {
        let state = walk.g.detachedness[node as usize];
        if state != 0 {
            walk.process(node, state);
        }
    }
    while let Some(node) = walk.attached.pop() {
        walk.propagate(node, ATTACHED);
    }
    while let Some(node) = walk.detached.pop() {
        if walk.g.detachedness[node as usize] != ATTACHED {
            walk.propagate(node, DETACHED);
        }
    }
}

/// `propagate_dom_state`'s work lists and the names it made up.
struct DomWalk<'g> {
    g: &'g mut Graph,
    visited: Vec<bool>,
    attached: Vec<u32>,
    detached: Vec<u32>,
    /// Name string → its `Detached ` name string.
    renamed: HashMap<u32, u32>,
}

impl DomWalk<'_> {
    fn process(&mut self, node: u32, state: u8) {
        let i = node as usize;
        if self.visited[i] {
            return;
        }
        self.visited[i] = true;
        let g = &mut *self.g;
        if g.node_type[i] != g.nk.native {
            return;
        }
        g.detachedness[i] = state;
        if state == ATTACHED {
            self.attached.push(node);
        } else if state == DETACHED {
            let old = g.node_name[i];
            g.node_name[i] = *self.renamed.entry(old).or_insert_with(|| {
                let name = format!("Detached {}", g.strings.get(old));
                g.strings.push(&name)
            });
            self.detached.push(node);
        }
    }

    fn propagate(&mut self, parent: u32, state: u8) {
        for e in self.g.edges(parent) {
            let t = self.g.edge_type[e];
            if t != self.g.ek.hidden && t != self.g.ek.weak {
                self.process(self.g.edge_to[e], state);
            }
        }
    }
}

/// `markPageOwnedNodes`: everything reachable (non-weak) from the root's
/// shortcut edges and from `(Document DOM trees)`.
pub fn page_owned(g: &Graph) -> Bits {
    let n = g.node_count();
    let mut owned = Bits::new(n);
    let mut stack: Vec<u32> = Vec::new();
    for e in g.edges(g.root) {
        let t = g.edge_type[e];
        let to = g.edge_to[e];
        if t == g.ek.element {
            if !g.is_document_dom_trees_root(to) {
                continue;
            }
        } else if t != g.ek.shortcut {
            continue;
        }
        stack.push(to);
        owned.set(to as usize);
    }
    while let Some(node) = stack.pop() {
        for e in g.edges(node) {
            let to = g.edge_to[e];
            if owned.get(to as usize) || g.edge_type[e] == g.ek.weak {
                continue;
            }
            stack.push(to);
            owned.set(to as usize);
        }
    }
    owned
}

/// `initEssentialEdges`: the edges the dominator tree is built from, as a
/// bitmap over edges. Each word is built in a register (setting bits one by
/// one in memory made every edge wait for the previous one's store).
pub fn essential_edges(g: &Graph, page_owned: &Bits, ephemerons: &EphemeronNames) -> Bits {
    let edge_count = g.edge_count();
    let mut essential = Bits::new(edge_count);
    // The node whose edges are being looked at (there is at least one
    // node), and where they end; `e < edge_count` keeps it in range.
    let mut node = 0u32;
    let mut node_end = g.first_edge[1] as usize;
    let mut node_owned = page_owned.get(0);
    for (w, word) in essential.words_mut().iter_mut().enumerate() {
        let start = w * 64;
        let mut bits = 0u64;
        for e in start..(start + 64).min(edge_count) {
            while e >= node_end {
                node += 1;
                node_end = g.first_edge[node as usize + 1] as usize;
                node_owned = page_owned.get(node as usize);
            }
            bits |= u64::from(is_essential(g, page_owned, ephemerons, node, node_owned, e)) << (e - start);
        }
        *word = bits;
    }
    essential
}

#[inline(always)]
fn is_essential(g: &Graph, page_owned: &Bits, ephemerons: &EphemeronNames, node: u32, node_owned: bool, e: usize) -> bool {
    let ek = g.ek;
    // Cheapest tests first; they are independent exclusions.
    let t = g.edge_type[e];
    if t == ek.weak {
        return false;
    }
    let to = g.edge_to[e];
    if to == node {
        return false;
    }
    if node != g.root {
        // Shortcuts only mean something at the root (user globals).
        if t == ek.shortcut {
            return false;
        }
        // Usually every node is page-owned: test the source first.
        if !node_owned && page_owned.get(to as usize) {
            return false;
        }
    }
    if t == ek.internal {
        // A WeakMap value is kept by key and table together; DevTools keeps
        // the key's edge and drops the table's.
        if let Some((Some(table), _)) = ephemerons.parse(g.edge_name[e]) {
            if table == u64::from(g.node_id[node as usize]) {
                return false;
            }
        }
    }
    true
}

/// `calculateShallowSizes`: arrays, system (hidden) objects and external
/// string data owned by exactly one other object give it their shallow size.
/// Skipped when the root has no user roots (an "expose internals" snapshot).
/// Works on `sizes` (the graph's shallow sizes taken out of it) so it can run
/// beside `essential_edges`, which reads the rest of the graph.
pub fn transfer_owned_sizes(g: &Graph, sizes: &mut [u32]) {
    let has_user_roots = g.edges(g.root).any(|e| g.is_user_root(g.edge_to[e]));
    if !has_user_roots {
        return;
    }
    const UNVISITED: u32 = u32::MAX;
    const MULTIPLE: u32 = u32::MAX - 1;
    let n = g.node_count();
    let mut owners = vec![0u32; n];
    let mut worklist: Vec<u32> = Vec::new();
    for i in 0..n {
        let t = g.node_type[i];
        let owned_kind = t == g.nk.hidden
            || t == g.nk.array
            || (t == g.nk.native && g.name_bytes(i as u32) == b"system / ExternalStringData");
        if owned_kind {
            owners[i] = UNVISITED;
        } else {
            owners[i] = i as u32;
            worklist.push(i as u32);
        }
    }
    while let Some(id) = worklist.pop() {
        let owner = owners[id as usize];
        for e in g.edges(id) {
            if g.edge_type[e] == g.ek.weak {
                continue;
            }
            let target = g.edge_to[e];
            let current = owners[target as usize];
            if current == UNVISITED {
                owners[target as usize] = owner;
                worklist.push(target);
            } else if current == target || current == owner || current == MULTIPLE {
                // Owns itself, already this owner's, or already shared.
            } else {
                owners[target as usize] = MULTIPLE;
                worklist.push(target);
            }
        }
    }
    for i in 0..n {
        let owner = owners[i];
        if owner == UNVISITED || owner == MULTIPLE || owner == i as u32 {
            continue;
        }
        if g.node_type[owner as usize] == g.nk.synthetic || owner == g.root {
            continue;
        }
        let size = sizes[i];
        sizes[i] = 0;
        sizes[owner as usize] = sizes[owner as usize].wrapping_add(size);
    }
}
