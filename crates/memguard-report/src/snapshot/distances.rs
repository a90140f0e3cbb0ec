//! Distances from the roots, as DevTools' `calculateDistances` (JS heap
//! variant): BFS over non-weak edges from the user roots, then from the root
//! for what is left (at a large base distance), skipping the links DevTools
//! skips (`sloppy_function_map` of native contexts, descriptor-array
//! internals) and giving a WeakMap value the later of its two ephemeron edges.
//! Each node also keeps the edge it was reached by: following those back gives
//! a shortest retainer path.

use std::collections::VecDeque;

use rustc_hash::FxHashSet as HashSet;

use super::graph::{Bits, Graph};
use super::weakmap::EphemeronNames;

pub const NO_EDGE: u32 = u32::MAX;

pub struct Distances {
    /// The edge each node was first reached by (`NO_EDGE` for roots and the unreached).
    pub via_edge: Vec<u32>,
}

/// JS `parseInt(s, 10)`: leading whitespace, sign, then as many digits as there are.
fn js_parse_int(s: &str) -> Option<f64> {
    let t = s.trim_start();
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: &str = &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()];
    if digits.is_empty() {
        return None;
    }
    let v: f64 = digits.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// Distances, with the result in `via_edge`'s allocation and the BFS queue in
/// `queue` (both cleared first; the queue is left empty, its buffer kept for
/// the caller to reuse). Run on another thread, it still takes its largest
/// arrays from the caller's allocator arena, where freed blocks of that size
/// usually wait (glibc keeps them resident).
pub fn compute_in(g: &Graph, ephemerons: &EphemeronNames, mut via_edge: Vec<u32>, queue: &mut VecDeque<u32>) -> Distances {
    let n = g.node_count();
    // Only the BFS order matters for the paths, so reached-ness is a bit; the
    // numbers DevTools shows are not kept.
    let mut reached = Bits::new(n);
    via_edge.clear();
    via_edge.resize(n, NO_EDGE);
    // A ring buffer: only the BFS frontier is held, not every node reached.
    queue.clear();
    let mut pending: HashSet<u32> = HashSet::default();

    for e in g.edges(g.root) {
        let to = g.edge_to[e];
        if g.is_user_root(to) || g.is_document_dom_trees_root(to) {
            reached.set(to as usize);
            queue.push_back(to);
            via_edge[to as usize] = e as u32;
        }
    }
    bfs(g, ephemerons, &mut pending, queue, &mut reached, &mut via_edge);
    // Then what the user roots do not reach, from the root itself.
    reached.set(g.root as usize);
    queue.push_back(g.root);
    bfs(g, ephemerons, &mut pending, queue, &mut reached, &mut via_edge);
    Distances { via_edge }
}

fn bfs(
    g: &Graph,
    ephemerons: &EphemeronNames,
    pending: &mut HashSet<u32>,
    queue: &mut VecDeque<u32>,
    reached: &mut Bits,
    via_edge: &mut [u32],
) {
    let ek = g.ek;
    let nk = g.nk;
    while let Some(node) = queue.pop_front() {
        let t = g.node_type[node as usize];
        let sloppy_source = t == nk.hidden && g.name_bytes(node) == b"system / NativeContext";
        let descriptors = t == nk.array && g.name_bytes(node) == b"(map descriptors)";
        for e in g.edges(node) {
            let et = g.edge_type[e];
            if et == ek.weak {
                continue;
            }
            let child = g.edge_to[e];
            if reached.get(child as usize) {
                continue;
            }
            if sloppy_source && !g.edge_name_is_index(e) && g.strings.bytes(g.edge_name[e]) == b"sloppy_function_map" {
                continue;
            }
            if descriptors {
                // Descriptor arrays are shared between maps; only their first two
                // slots and every third after are real links (crbug.com/413608).
                let index = if g.edge_name_is_index(e) {
                    Some(f64::from(g.edge_name[e]))
                } else {
                    js_parse_int(g.strings.get(g.edge_name[e]))
                };
                if let Some(i) = index {
                    if !(i < 2.0 || i % 3.0 != 1.0) {
                        continue;
                    }
                }
            }
            if et == ek.internal {
                if let Some((_, part)) = ephemerons.parse(g.edge_name[e]) {
                    if !pending.remove(&part) {
                        pending.insert(part);
                        continue;
                    }
                }
            }
            reached.set(child as usize);
            via_edge[child as usize] = e as u32;
            queue.push_back(child);
        }
    }
}

/// The source node of edge `e` (binary search over the CSR offsets).
pub fn edge_source(g: &Graph, e: u32) -> u32 {
    // first_edge is non-decreasing; the source is the last node whose range starts at or before e.
    let idx = g.first_edge.partition_point(|&start| start <= e);
    (idx.saturating_sub(1)) as u32
}
