//! Retainer paths: for a set of objects (a class, or the objects a diff found
//! added), the path from the GC roots that holds most of their retained size.
//! Objects are grouped by their holder — the nearest dominator that is neither
//! of their class nor an internal array/system object (a Map's backing table is
//! not what anyone looks for) — and the heaviest holder's group is explained
//! by a shortest non-weak path from the roots to its largest object.

use std::collections::{HashMap, HashSet, VecDeque};


use super::distances::{edge_source, Distances, NO_EDGE};
use super::classes::Classes;
use super::graph::Graph;
use crate::report::{PathStep, RetainerPath};

/// What a path search needs from an analysed snapshot.
pub struct PathContext<'a> {
    pub g: &'a Graph,
    pub idom: &'a [u32],
    pub retained: &'a [u64],
    pub classes: &'a Classes,
    pub distances: &'a Distances,
}

/// Longest dominator chain walked looking for a holder.
const MAX_HOLDER_WALK: usize = 256;
/// Bound on the fallback search from the holder down to the object.
const MAX_LOCAL_SEARCH: usize = 200_000;
/// Longest node name shown in a step.
const MAX_NAME: usize = 120;

impl PathContext<'_> {
    fn holder(&self, object: u32) -> u32 {
        let g = self.g;
        let key = self.classes.key_of[object as usize];
        let mut p = object;
        for _ in 0..MAX_HOLDER_WALK {
            if p == g.root {
                return p;
            }
            p = self.idom[p as usize];
            let t = g.node_type[p as usize];
            if self.classes.key_of[p as usize] != key && t != g.nk.hidden && t != g.nk.array {
                return p;
            }
        }
        p
    }

    /// The objects' heaviest holder group, explained by one path. When no
    /// single holder holds most of them — each `{host, connection}` in its own
    /// `UserSession` — they are grouped by their holders' class instead, and
    /// the path runs through one holder of the heaviest such class.
    pub fn path_for(&self, class: &str, objects: &[u32]) -> Option<RetainerPath> {
        // Group with sorts, not maps: a class can have millions of objects,
        // each with its own holder.
        let mut by_holder: Vec<(u32, u32)> = objects.iter().map(|&o| (self.holder(o), o)).collect();
        by_holder.sort_unstable();
        let total: u64 = objects.iter().map(|&o| self.retained[o as usize]).sum();
        let best = self.heaviest(by_holder.chunk_by(|a, b| a.0 == b.0))?;
        let (count, retained, object) = if best.1 * 2 >= total {
            best
        } else {
            let key = |holder: u32| self.classes.key_of[holder as usize];
            by_holder.sort_unstable_by_key(|&(h, _)| key(h));
            self.heaviest(by_holder.chunk_by(|a, b| key(a.0) == key(b.0)))?
        };
        let edges = self.edge_path(self.holder(object), object);
        Some(RetainerPath {
            class: class.to_string(),
            objects: count,
            retained_size: retained,
            steps: self.steps(&edges, object),
        })
    }

    /// (objects, retained, largest object) of the group of `(holder, object)`
    /// pairs that retains most.
    fn heaviest<'g>(&self, groups: impl Iterator<Item = &'g [(u32, u32)]>) -> Option<(u64, u64, u32)> {
        let mut best: Option<(u64, u64, u32)> = None;
        for group in groups {
            let mut retained = 0u64;
            let mut largest = group[0].1;
            for &(_, o) in group {
                retained += self.retained[o as usize];
                if self.retained[o as usize] > self.retained[largest as usize] {
                    largest = o;
                }
            }
            if best.is_none_or(|b| retained > b.1) {
                best = Some((group.len() as u64, retained, largest));
            }
        }
        best
    }

    /// Edges of the BFS tree from the roots down to `node`.
    fn bfs_chain(&self, node: u32) -> Vec<u32> {
        let mut edges = Vec::new();
        let mut n = node;
        let mut guard = 0usize;
        while n != self.g.root {
            let e = self.distances.via_edge[n as usize];
            if e == NO_EDGE || guard > self.g.node_count() {
                break;
            }
            edges.push(e);
            n = edge_source(self.g, e);
            guard += 1;
        }
        edges.reverse();
        edges
    }

    /// Shortest path to `object`, made to pass through `holder` when the
    /// plain shortest path does not.
    fn edge_path(&self, holder: u32, object: u32) -> Vec<u32> {
        let direct = self.bfs_chain(object);
        let g = self.g;
        let through_holder = holder == g.root || direct.iter().any(|&e| g.edge_to[e as usize] == holder);
        if through_holder || holder == object {
            return direct;
        }
        let mut path = self.bfs_chain(holder);
        match self.local_search(holder, object) {
            Some(tail) => {
                path.extend(tail);
                path
            }
            None => direct,
        }
    }

    /// Bounded BFS over non-weak edges from `from` to `to`.
    fn local_search(&self, from: u32, to: u32) -> Option<Vec<u32>> {
        let g = self.g;
        let mut came_by: HashMap<u32, u32> = HashMap::new();
        let mut seen: HashSet<u32> = HashSet::new();
        let mut queue = VecDeque::new();
        seen.insert(from);
        queue.push_back(from);
        while let Some(n) = queue.pop_front() {
            if n == to {
                let mut edges = Vec::new();
                let mut x = to;
                while x != from {
                    let e = came_by[&x];
                    edges.push(e);
                    x = edge_source(g, e);
                }
                edges.reverse();
                return Some(edges);
            }
            if seen.len() > MAX_LOCAL_SEARCH {
                return None;
            }
            for e in g.edges(n) {
                if g.edge_type[e] == g.ek.weak {
                    continue;
                }
                let c = g.edge_to[e];
                if seen.insert(c) {
                    came_by.insert(c, e as u32);
                    queue.push_back(c);
                }
            }
        }
        None
    }

    fn node_step(&self, node: u32) -> PathStep {
        let g = self.g;
        let raw = g.name(node);
        // Synthetic nodes ("(GC roots)", "(Global handles)") are known by name.
        let class = if g.node_type[node as usize] == g.nk.synthetic {
            if raw.is_empty() {
                "(root)".to_string()
            } else {
                raw.to_string()
            }
        } else {
            g.strings.get(self.classes.class_name(node as usize)).to_string()
        };
        PathStep {
            node: class,
            id: u64::from(g.node_id[node as usize]),
            name: truncate(raw, MAX_NAME),
            edge: None,
            edge_type: None,
        }
    }

    fn steps(&self, edges: &[u32], object: u32) -> Vec<PathStep> {
        let g = self.g;
        let start = match edges.first() {
            Some(&e) => edge_source(g, e),
            None => object,
        };
        let mut steps = vec![self.node_step(start)];
        for &e in edges {
            let mut step = self.node_step(g.edge_to[e as usize]);
            step.edge = Some(g.edge_name(e as usize));
            step.edge_type = Some(g.edge_type_name(e as usize).to_string());
            steps.push(step);
        }
        steps
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max).collect();
    t.push('…');
    t
}
