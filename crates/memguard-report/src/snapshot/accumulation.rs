//! Accumulation points (Eclipse MAT's leak-suspect walk): from the root down
//! the dominator tree, follow the child that keeps at least 80 % of its
//! parent's retained size; where no child does, the node spreads what it
//! retains over many small objects — the point where they accumulate (a
//! Map's table, an array's elements, a context). Where a node has two or
//! more large children instead (a leak beside a big cache), each is walked.
//!
//! Each point is then described: the heaviest class of the objects it
//! directly dominates (the app's own class preferred over a V8 internal that
//! is not much larger), and its holder — the nearest non-internal object at
//! or above it (`Map`, not its backing table), named by the edge that holds
//! it, with the code location V8 records for the closure whose context, or
//! the class whose instance, holds it.

use rustc_hash::FxHashMap as HashMap;

use super::distances::{edge_source, NO_EDGE};
use super::graph::Bits;
use super::Analysis;
use crate::report::{AccumulationPoint, CodeLocation, Holder};

/// A child that keeps this share of its parent's retained size is walked into.
pub const DESCEND_SHARE: f64 = 0.8;
/// A point must retain this share of the reachable heap to be reported.
pub const MIN_SHARE: f64 = 0.05;
/// … and at least this much (tiny heaps have no leak worth naming).
const MIN_BYTES: u64 = 256 << 10;
/// Points kept (the verdict names at most 3 suspects and a few holders).
const MAX_POINTS: usize = 8;
/// An internal class names the point only when no app class retains at
/// least this share of what it does.
const APP_CLASS_SHARE: f64 = 0.25;
/// Steps walked up the retainer path looking for a code location.
const LOCATION_STEPS: usize = 8;

/// The walk over a dominator tree given as `idom` and `retained`: the
/// accumulation points (node ordinals), largest first. `allowed` says which
/// nodes may be a point (not the root, not synthetic).
pub fn points(idom: &[u32], retained: &[u64], root: u32, allowed: impl Fn(u32) -> bool) -> Vec<u32> {
    let floor = floor(retained[root as usize]);
    // Only nodes that could be walked into or reported matter: one pass
    // collects them (a child worth walking into keeps 80 % of a parent that
    // is at least `floor`).
    let keep = (floor as f64 * DESCEND_SHARE) as u64;
    let mut children: HashMap<u32, Vec<u32>> = HashMap::default();
    for (o, &r) in retained.iter().enumerate() {
        if r >= keep && o as u32 != root {
            children.entry(idom[o]).or_default().push(o as u32);
        }
    }
    for kids in children.values_mut() {
        kids.sort_unstable_by(|&a, &b| retained[b as usize].cmp(&retained[a as usize]).then(a.cmp(&b)));
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    let mut guard = 0usize;
    while let Some(n) = stack.pop() {
        guard += 1;
        if guard > retained.len() {
            break;
        }
        let here = retained[n as usize];
        let kids = children.get(&n).map(Vec::as_slice).unwrap_or(&[]);
        if let Some(&big) = kids.first().filter(|&&k| retained[k as usize] as f64 >= DESCEND_SHARE * here as f64) {
            stack.push(big);
            continue;
        }
        let large: Vec<u32> = kids.iter().copied().filter(|&k| retained[k as usize] >= floor).collect();
        let spread = here - large.iter().map(|&k| retained[k as usize]).sum::<u64>();
        if (large.is_empty() || spread >= floor) && here >= floor && allowed(n) {
            out.push(n);
        }
        stack.extend(large.iter().rev());
    }
    out.sort_by(|&a, &b| retained[b as usize].cmp(&retained[a as usize]));
    out
}

fn is_internal_name(name: &str) -> bool {
    name.starts_with('(') || name.starts_with("system /")
}

/// The least a point retains, and the size from which a child is walked
/// into as a point of its own, for a heap of `total` bytes.
fn floor(total: u64) -> u64 {
    ((total as f64 * MIN_SHARE) as u64).max(MIN_BYTES)
}

impl Analysis {
    fn class_str(&self, node: u32) -> &str {
        self.g.strings.get(self.classes.class_name(node as usize))
    }

    /// Internal to V8 or a container's storage: never a holder.
    fn is_internal(&self, node: u32) -> bool {
        let t = self.g.node_type[node as usize];
        let nk = &self.g.nk;
        t == nk.hidden || t == nk.array || t == nk.code || t == nk.synthetic || is_internal_name(self.class_str(node))
    }

    /// The accumulation points of this snapshot, described, largest first.
    pub fn accumulations(&self) -> Vec<AccumulationPoint> {
        let g = &self.g;
        let aps = points(&self.idom, &self.retained, g.root, |n| n != g.root && g.node_type[n as usize] != g.nk.synthetic);
        let aps = &aps[..aps.len().min(MAX_POINTS)];
        if aps.is_empty() {
            return Vec::new();
        }
        // One pass: what each point spreads (`spread_by`), by class key.
        let large = floor(self.retained[g.root as usize]);
        let mut is_point = Bits::new(g.node_count());
        let slot: HashMap<u32, usize> = aps.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        for &n in aps {
            is_point.set(n as usize);
        }
        // (objects, retained, largest object) per (point, class key).
        let mut groups: Vec<HashMap<u32, (u64, u64, u32)>> = vec![HashMap::default(); aps.len()];
        for (o, &d) in self.idom.iter().enumerate() {
            if !is_point.get(d as usize) || !self.spread_by(o as u32, d, large) {
                continue;
            }
            let group = groups[slot[&d]].entry(self.classes.key_of[o]).or_insert((0, 0, o as u32));
            group.0 += 1;
            group.1 += self.retained[o];
            if self.retained[o] > self.retained[group.2 as usize] {
                group.2 = o as u32;
            }
        }
        aps.iter().zip(groups).filter_map(|(&ap, groups)| self.describe(ap, groups)).collect()
    }

    fn describe(&self, ap: u32, groups: HashMap<u32, (u64, u64, u32)>) -> Option<AccumulationPoint> {
        let mut groups: Vec<(u32, (u64, u64, u32))> = groups.into_iter().collect();
        groups.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then(a.0.cmp(&b.0)));
        let top = *groups.first()?;
        let name_of = |key: u32| self.g.strings.get(self.classes.key_name[key as usize]);
        let chosen = if is_internal_name(name_of(top.0)) {
            groups
                .iter()
                .find(|(k, (_, r, _))| !is_internal_name(name_of(*k)) && *r as f64 >= APP_CLASS_SHARE * top.1 .1 as f64)
                .copied()
                .unwrap_or(top)
        } else {
            top
        };
        let (key, (objects, retained, example)) = chosen;
        let class = name_of(key).to_string();
        let holder = self.holder_of(ap);
        Some(AccumulationPoint {
            internal: is_internal_name(&class),
            class,
            objects,
            retained_size: retained,
            holder: self.holder_description(holder),
            growth: None,
            class_location: self.location_of(example),
            point: ap,
            class_key: key,
        })
    }

    /// Whether `o` is one of the objects `point` spreads its retained size
    /// over: directly dominated by it, and not a child large enough
    /// (`large`, see `floor`) to be walked into as a point of its own — what
    /// such a child holds is its own point's (an Array holding the Map that
    /// leaks is not "an Array leak").
    fn spread_by(&self, o: u32, point: u32, large: u64) -> bool {
        o != self.g.root && self.idom[o as usize] == point && self.retained[o as usize] < large
    }

    /// The objects of a point's chosen class that it spreads over.
    pub fn members(&self, p: &AccumulationPoint) -> impl Iterator<Item = u32> + '_ {
        let (point, key) = (p.point, p.class_key);
        let large = floor(self.retained[self.g.root as usize]);
        (0..self.g.node_count() as u32).filter(move |&o| self.spread_by(o, point, large) && self.classes.key_of[o as usize] == key)
    }

    /// The node at or above `ap` that a reader would call the container.
    fn holder_of(&self, ap: u32) -> u32 {
        let mut n = ap;
        for _ in 0..256 {
            if !self.is_internal(n) {
                return n;
            }
            let up = self.idom[n as usize];
            if up == self.g.root || up == n {
                break;
            }
            n = up;
        }
        ap
    }

    fn holder_description(&self, holder: u32) -> Holder {
        let g = &self.g;
        let edge = self.holding_edge(holder);
        Holder {
            class: self.class_str(holder).to_string(),
            edge: edge.map(|e| g.edge_name(e)).filter(|n| !n.is_empty()),
            id: u64::from(g.node_id[holder as usize]),
            retained_size: self.retained[holder as usize],
            location: self.holder_location(holder, edge),
        }
    }

    /// The edge a reader knows the holder by: from its dominator when one
    /// names it, else the one its shortest retainer path arrives by.
    fn holding_edge(&self, holder: u32) -> Option<usize> {
        let g = &self.g;
        let dom = self.idom[holder as usize];
        let named = |e: &usize| {
            let t = g.edge_type[*e];
            g.edge_to[*e] == holder && (t == g.ek.property || t == g.ek.context || t == g.ek.element)
        };
        if dom != g.root && g.node_type[dom as usize] != g.nk.synthetic {
            if let Some(e) = g.edges(dom).find(named) {
                return Some(e);
            }
        }
        let via = self.distances.via_edge[holder as usize];
        (via != NO_EDGE).then_some(via as usize)
    }

    /// Up the retainer path from the holder: the first closure (a context
    /// variable: a function that closes over it), or instance of a located
    /// class (a property), that V8 gives a code location.
    fn holder_location(&self, holder: u32, edge: Option<usize>) -> Option<CodeLocation> {
        let g = &self.g;
        let mut edge = edge;
        for _ in 0..LOCATION_STEPS {
            let e = edge?;
            let owner = edge_source(g, e as u32);
            if owner == g.root || g.node_type[owner as usize] == g.nk.synthetic {
                return None;
            }
            let t = g.node_type[owner as usize];
            let located = if g.edge_type[e] == g.ek.context || self.class_str(owner) == "system / Context" {
                self.closure_over(owner)
            } else if t == g.nk.closure || (t == g.nk.object && owner != holder) {
                self.location_of(owner).map(|l| (owner, l))
            } else {
                None
            };
            if let Some((node, [script, line, column])) = located {
                let name = g.name(node);
                let function = if t == g.nk.object && g.node_type[node as usize] == g.nk.object {
                    format!("{} instance", self.class_str(node))
                } else if name.is_empty() {
                    "(anonymous)".to_string()
                } else {
                    name.to_string()
                };
                return Some(CodeLocation {
                    function,
                    url: String::new(),
                    script_id: script as i32,
                    line: line + 1,
                    column: column + 1,
                    original: None,
                });
            }
            let via = self.distances.via_edge[owner as usize];
            edge = (via != NO_EDGE).then_some(via as usize);
        }
        None
    }

    /// A located closure whose context is `context`: a named function
    /// first, then an anonymous one, then a class constructor (which closes
    /// over its module's scope without being what uses the variable).
    fn closure_over(&self, context: u32) -> Option<(u32, [u32; 3])> {
        let g = &self.g;
        let mut found: Option<(u32, [u32; 3])> = None;
        let mut constructor: Option<(u32, [u32; 3])> = None;
        for c in 0..g.node_count() as u32 {
            if g.node_type[c as usize] != g.nk.closure {
                continue;
            }
            let closes = g.edges(c).any(|e| {
                g.edge_to[e] == context && g.edge_type[e] == g.ek.internal && g.strings.bytes(g.edge_name[e]) == b"context"
            });
            if !closes {
                continue;
            }
            if let Some(l) = self.location_of(c) {
                match g.name(c).chars().next() {
                    Some(f) if f.is_uppercase() => _ = constructor.get_or_insert((c, l)),
                    Some(_) => return Some((c, l)),
                    None => _ = found.get_or_insert((c, l)),
                }
            }
        }
        found.or(constructor)
    }

    /// `[script id, line, column]` (0-based) V8 recorded for a node.
    fn location_of(&self, node: u32) -> Option<[u32; 3]> {
        let locs = &self.g.locations;
        let i = locs.partition_point(|l| l[0] < node);
        locs.get(i).filter(|l| l[0] == node).map(|l| [l[1], l[2], l[3]])
    }
}
