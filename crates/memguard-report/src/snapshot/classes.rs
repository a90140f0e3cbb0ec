//! Class names and per-class aggregates as DevTools' Summary view computes them
//! (`calculateObjectNames`, `inferInterfaceDefinitions`,
//! `applyInterfaceDefinitions`, `buildAggregates`,
//! `calculateClassesRetainedSize`): plain `Object`s are named after their
//! most popular property shapes (`{a, b, c}`), instances of a class with a
//! source location are keyed by that location too.

use std::cmp::Ordering;
use rustc_hash::FxHashMap as HashMap;

use super::dominators;
use super::graph::{Bits, Graph};

const MIN_INTERFACE_PROPERTY_COUNT: usize = 1;
const MAX_INTERFACE_NAME_LENGTH: usize = 120;
const MIN_OBJECT_COUNT_PER_INTERFACE: f64 = 2.0;
const MIN_OBJECT_PROPORTION_PER_INTERFACE: f64 = 1000.0;

/// One Summary row: a class key and its totals.
#[derive(Debug, Clone)]
pub struct ClassAgg {
    /// DevTools' public class key: `,Name` or `script,line,column,Name`.
    pub key: String,
    pub name: String,
    pub count: u64,
    pub self_size: u64,
    /// Retained size without double counting objects under objects of this class.
    pub max_ret: u64,
}

pub struct Classes {
    /// Dense class-key id per node (also for zero-size nodes, for grouping).
    pub key_of: Vec<u32>,
    /// Class-name string of each key.
    pub key_name: Vec<u32>,
    /// Aggregate of each key (`u32::MAX` when no node of the key has a size).
    pub agg_of_key: Vec<u32>,
    /// Nodes whose retained size counts toward their class's (no dominator of
    /// the same class above them).
    pub counted: Bits,
    pub aggs: Vec<ClassAgg>,
}

impl Classes {
    /// The aggregate a node is counted in; `u32::MAX` for zero-size nodes,
    /// which DevTools leaves out of every aggregate.
    #[inline]
    pub fn class_of(&self, g: &Graph, node: usize) -> u32 {
        if g.self_size[node] == 0 {
            u32::MAX
        } else {
            self.agg_of_key[self.key_of[node] as usize]
        }
    }

    /// DevTools' class name of a node.
    pub fn class_name(&self, node: usize) -> u32 {
        self.key_name[self.key_of[node] as usize]
    }
}

/// JS compares strings by UTF-16 code units; differs from byte order only
/// around supplementary characters, but sorting must agree with DevTools.
pub fn js_cmp(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.encode_utf16().count()
    }
}

/// `formatPropertyName`: names with `,'"{}` are shown as JSON strings.
pub fn format_property_name(name: &str) -> String {
    if name.contains([',', '\'', '"', '{', '}']) {
        serde_json::to_string(name).unwrap_or_else(|_| name.to_string())
    } else {
        name.to_string()
    }
}

/// The class names DevTools makes up, numbered after the graph's strings as
/// if pushed onto them: the graph stays shared (distances are computed beside
/// the classes) and takes these strings afterwards (`Added::append_to`).
pub struct Added {
    base: u32,
    strings: Vec<String>,
}

impl Added {
    fn new(g: &Graph) -> Added {
        Added { base: g.strings.len() as u32, strings: Vec::new() }
    }

    fn push(&mut self, s: &str) -> u32 {
        self.strings.push(s.to_string());
        self.base + (self.strings.len() - 1) as u32
    }

    fn get<'a>(&'a self, g: &'a Graph, i: u32) -> &'a str {
        if i >= self.base {
            &self.strings[(i - self.base) as usize]
        } else {
            g.strings.get(i)
        }
    }

    fn len(&self) -> usize {
        self.base as usize + self.strings.len()
    }

    /// Pushes the strings onto `g`'s, where their indexes say they are.
    pub fn append_to(self, g: &mut Graph) {
        assert_eq!(g.strings.len(), self.base as usize, "graph strings changed while classes were computed");
        for s in &self.strings {
            g.strings.push(s);
        }
    }
}

/// `calculateObjectNames`: the class-name string index of every node.
fn object_names(g: &Graph, names: &mut Added) -> Vec<u32> {
    let mut added: HashMap<String, u32> = HashMap::default();
    let mut index_for = |names: &mut Added, s: &str| -> u32 {
        if let Some(&i) = added.get(s) {
            return i;
        }
        let i = names.push(s);
        added.insert(s.to_string(), i);
        i
    };
    let system = index_for(names, "(system)");
    let code = index_for(names, "(compiled code)");
    let function = index_for(names, "Function");
    let regexp = index_for(names, "RegExp");
    let mut by_type: Vec<Option<u32>> = vec![None; g.node_types.len()];
    let n = g.node_count();
    // One slot more than needed: this buffer later holds the dominator
    // tree's n + 1 offsets, and growing it then would move it.
    let mut out = Vec::with_capacity(n + 1);
    out.resize(n, 0u32);
    let nk = g.nk;
    for i in 0..n {
        let t = g.node_type[i];
        out[i] = if t == nk.hidden {
            system
        } else if t == nk.object || t == nk.native {
            // Most names need no trimming; only look at the text when they might.
            let bytes = g.name_bytes(i as u32);
            if bytes.first() == Some(&b'<') || bytes.starts_with(b"Detached <") {
                let name = g.name(i as u32).to_string();
                let short = if let Some(rest) = name.strip_prefix('<') {
                    match rest.find(' ') {
                        Some(sp) => format!("<{}>", &rest[..sp]),
                        None => name.clone(),
                    }
                } else {
                    match name[10..].find(' ') {
                        Some(sp) => format!("{}>", &name[..10 + sp]),
                        None => name.clone(),
                    }
                };
                index_for(names, &short)
            } else {
                g.node_name[i]
            }
        } else if t == nk.code {
            code
        } else if t == nk.closure {
            function
        } else if t == nk.regexp {
            regexp
        } else {
            match by_type[t as usize] {
                Some(s) => s,
                None => {
                    let s = index_for(names, &format!("({})", g.node_types[t as usize]));
                    by_type[t as usize] = Some(s);
                    s
                }
            }
        };
    }
    out
}

fn is_plain_object(g: &Graph, node: u32) -> bool {
    g.node_type[node as usize] == g.nk.object && g.name_bytes(node) == b"Object"
}

/// Each property-name string of plain objects ranked in JS string order, so
/// sorting and comparing properties is integer work.
struct PropertyRanks {
    rank: HashMap<u32, u32>,
}

impl PropertyRanks {
    fn new(g: &Graph) -> PropertyRanks {
        let mut names: Vec<u32> = Vec::new();
        let mut seen: HashMap<u32, u32> = HashMap::default();
        for node in 0..g.node_count() as u32 {
            if !is_plain_object(g, node) {
                continue;
            }
            for e in g.edges(node) {
                if g.edge_type[e] == g.ek.property && seen.insert(g.edge_name[e], 0).is_none() {
                    names.push(g.edge_name[e]);
                }
            }
        }
        names.sort_by(|&a, &b| js_cmp(g.strings.get(a), g.strings.get(b)));
        let rank = names.iter().enumerate().map(|(r, &s)| (s, r as u32)).collect();
        PropertyRanks { rank }
    }

    fn of(&self, s: u32) -> u32 {
        self.rank.get(&s).copied().unwrap_or(u32::MAX)
    }
}

struct Interface {
    name: String,
    properties: Vec<u32>,
    count: u64,
}

/// `inferInterfaceDefinitions`: the popular property shapes of plain objects.
/// Candidates are keyed by their property list, which determines the name.
fn infer_interfaces(g: &Graph) -> Vec<Interface> {
    let mut candidates: Vec<Interface> = Vec::new();
    let mut by_props: HashMap<Box<[u32]>, usize> = HashMap::default();
    let mut total = 0u64;
    let mut formatted_len: HashMap<u32, usize> = HashMap::default();
    let mut properties: Vec<u32> = Vec::new();
    for node in 0..g.node_count() as u32 {
        if !is_plain_object(g, node) {
            continue;
        }
        total += 1;
        let mut name_len = 1usize; // "{", in UTF-16 units as JS measures
        properties.clear();
        for e in g.edges(node) {
            if g.edge_type[e] != g.ek.property {
                continue;
            }
            let s = g.edge_name[e];
            if g.strings.bytes(s) == b"__proto__" {
                continue;
            }
            let f_len = *formatted_len.entry(s).or_insert_with(|| utf16_len(&format_property_name(g.strings.get(s))));
            if name_len > MIN_INTERFACE_PROPERTY_COUNT && name_len + f_len > MAX_INTERFACE_NAME_LENGTH {
                break;
            }
            if name_len != 1 {
                name_len += 2;
            }
            name_len += f_len;
            properties.push(s);
        }
        if properties.is_empty() {
            continue;
        }
        match by_props.get(properties.as_slice()) {
            Some(&i) => candidates[i].count += 1,
            None => {
                let names: Vec<String> = properties.iter().map(|&s| format_property_name(g.strings.get(s))).collect();
                let name = format!("{{{}}}", names.join(", "));
                by_props.insert(properties.clone().into_boxed_slice(), candidates.len());
                candidates.push(Interface { name, properties: properties.clone(), count: 1 });
            }
        }
    }
    // Two lists could only share a name if it were ambiguous; merge by name anyway.
    let mut merged: Vec<Interface> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::default();
    for c in candidates {
        match by_name.get(&c.name) {
            Some(&i) => merged[i].count += c.count,
            None => {
                by_name.insert(c.name.clone(), merged.len());
                merged.push(c);
            }
        }
    }
    // Stable, like JS's sort: ties keep first-seen order.
    merged.sort_by(|a, b| b.count.cmp(&a.count));
    let min_count = MIN_OBJECT_COUNT_PER_INTERFACE.max(total as f64 / MIN_OBJECT_PROPORTION_PER_INTERFACE);
    merged.into_iter().take_while(|c| c.count as f64 >= min_count).collect()
}

#[derive(Default)]
struct TrieNode {
    next: HashMap<u32, usize>,
    /// (property count, definition index, interface name string); edges and
    /// `greatest_next` are property ranks.
    match_info: Option<(usize, usize, u32)>,
    greatest_next: Option<u32>,
}

/// `selectBetterMatch` on (property count, definition index).
fn better(a: (usize, usize, u32), b: Option<(usize, usize, u32)>) -> (usize, usize, u32) {
    match b {
        None => a,
        Some(b) if a.0 > b.0 => a,
        Some(b) if b.0 > a.0 => b,
        Some(b) => {
            if a.1 <= b.1 {
                a
            } else {
                b
            }
        }
    }
}

/// `applyInterfaceDefinitions`: each plain object takes the name of the
/// definition with the most properties all present on it (earliest on ties).
fn apply_interfaces(g: &Graph, names: &mut Added, defs: &[Interface], class_name: &mut [u32]) {
    if defs.is_empty() {
        return;
    }
    let ranks = PropertyRanks::new(g);
    let mut trie: Vec<TrieNode> = vec![TrieNode::default()];
    let mut interface_names: HashMap<String, u32> = HashMap::default();
    for (index, def) in defs.iter().enumerate() {
        let mut props: Vec<u32> = def.properties.iter().map(|&s| ranks.of(s)).collect();
        props.sort_unstable();
        let mut current = 0usize;
        for &p in &props {
            let existing = trie[current].next.get(&p).copied();
            let next = match existing {
                Some(x) => x,
                None => {
                    trie.push(TrieNode::default());
                    let id = trie.len() - 1;
                    trie[current].next.insert(p, id);
                    let greater = match trie[current].greatest_next {
                        None => true,
                        Some(gn) => gn < p,
                    };
                    if greater {
                        trie[current].greatest_next = Some(p);
                    }
                    id
                }
            };
            current = next;
        }
        if trie[current].match_info.is_none() {
            let name_index = match interface_names.get(&def.name) {
                Some(&s) => s,
                None => {
                    let s = names.push(&def.name);
                    interface_names.insert(def.name.clone(), s);
                    s
                }
            };
            trie[current].match_info = Some((props.len(), index, name_index));
        }
    }
    const NO_MATCH: (usize, usize, u32) = (0, usize::MAX, u32::MAX);
    let mut props: Vec<u32> = Vec::new();
    let mut states: Vec<usize> = Vec::new();
    let mut snapshot: Vec<usize> = Vec::new();
    for node in 0..g.node_count() as u32 {
        if !is_plain_object(g, node) {
            continue;
        }
        props.clear();
        for e in g.edges(node) {
            if g.edge_type[e] == g.ek.property {
                props.push(ranks.of(g.edge_name[e]));
            }
        }
        props.sort_unstable();
        states.clear();
        states.push(0);
        let mut best = better(NO_MATCH, trie[0].match_info);
        for &p in &props {
            snapshot.clear();
            snapshot.extend_from_slice(&states);
            for &s in &snapshot {
                let dead = match trie[s].greatest_next {
                    None => true,
                    Some(gn) => p >= gn,
                };
                if dead {
                    states.retain(|&x| x != s);
                }
                if let Some(&next) = trie[s].next.get(&p) {
                    if !states.contains(&next) {
                        states.push(next);
                    }
                    best = better(best, trie[next].match_info);
                }
            }
        }
        if best != NO_MATCH {
            class_name[node as usize] = best.2;
        }
    }
}

/// Sorts location records by node, keeping the file order of records of one
/// node (the last one wins, as in DevTools' Map). V8 writes one per node at
/// most: then an in-place sort gives the same order without a scratch
/// buffer (this runs near the memory peak).
pub fn sort_locations(locations: &mut [[u32; 4]], node_count: usize) {
    let mut seen = Bits::new(node_count);
    let one_per_node = locations.iter().all(|l| {
        let node = l[0] as usize;
        let first = node < node_count && !seen.get(node);
        if first {
            seen.set(node);
        }
        first
    });
    if one_per_node {
        locations.sort_unstable_by_key(|l| l[0]);
    } else {
        locations.sort_by_key(|l| l[0]);
    }
}

#[derive(Hash, PartialEq, Eq, Clone, Copy)]
enum InternalKey {
    Name(u32),
    Located(u32, u32, u32, u32),
}

/// Names every node and builds the aggregates with `maxRet` semantics, on a
/// graph shared with other threads: the class names made up come back beside
/// the classes, for `Added::append_to` once the graph is no longer shared.
/// `idom` gives the dominator tree; its children lists are only built for the
/// last step, when the per-node names are gone. `before_tree` runs just
/// before that (the caller waits there for work running beside, so its
/// scratch memory is gone before the lists exist); its result is passed back.
pub fn aggregate<T>(
    g: &Graph,
    retained: &[u64],
    idom: &[u32],
    before_tree: impl FnOnce() -> (T, Vec<u32>),
) -> (Classes, Added, T) {
    let mut names = Added::new(g);
    let mut class_name = object_names(g, &mut names);
    let defs = infer_interfaces(g);
    apply_interfaces(g, &mut names, &defs, &mut class_name);

    // Locations key object classes; sorted by node (stable, so the last record
    // for a node stays last and wins, as in DevTools' Map) and merged in order.
    // `analyse` sorts them beside the dominator tree; a copy is sorted here
    // only when that did not happen.
    let sorted;
    let locations = if g.locations.is_sorted_by_key(|l| l[0]) {
        &g.locations
    } else {
        let mut copy = g.locations.clone();
        copy.sort_by_key(|l| l[0]);
        sorted = copy;
        &sorted
    };
    let mut next_location = 0usize;
    let n = g.node_count();
    // Name keys are looked up by string index; located keys (few) by hash.
    let mut name_key = vec![u32::MAX; names.len()];
    let mut located: HashMap<InternalKey, u32> = HashMap::default();
    let mut keys: Vec<InternalKey> = Vec::new();
    let mut key_of = vec![0u32; n];
    for i in 0..n {
        let mut here = None;
        while next_location < locations.len() && locations[next_location][0] as usize <= i {
            if locations[next_location][0] as usize == i {
                here = Some(locations[next_location]);
            }
            next_location += 1;
        }
        let name = class_name[i];
        let next = keys.len() as u32;
        key_of[i] = match here {
            Some([_, s, l, c]) if g.node_type[i] == g.nk.object => {
                let key = InternalKey::Located(s, l, c, name);
                *located.entry(key).or_insert_with(|| {
                    keys.push(key);
                    next
                })
            }
            _ => {
                let slot = &mut name_key[name as usize];
                if *slot == u32::MAX {
                    *slot = next;
                    keys.push(InternalKey::Name(name));
                }
                *slot
            }
        };
    }
    drop(located);
    drop(name_key);
    // The per-node names' buffer becomes the children lists' offsets below
    // (freeing it and allocating anew leaves glibc's heap the larger).
    let spare = class_name;

    // buildAggregates: nodes with a shallow size, in node order.
    let mut agg_of_key = vec![u32::MAX; keys.len()];
    let mut aggs: Vec<ClassAgg> = Vec::new();
    for i in 0..n {
        let size = g.self_size[i];
        if size == 0 {
            continue;
        }
        let k = key_of[i] as usize;
        if agg_of_key[k] == u32::MAX {
            agg_of_key[k] = aggs.len() as u32;
            let (key, name) = match keys[k] {
                InternalKey::Name(n) => {
                    let name = names.get(g, n).to_string();
                    (format!(",{name}"), name)
                }
                InternalKey::Located(s, l, c, n) => {
                    let name = names.get(g, n).to_string();
                    (format!("{s},{l},{c},{name}"), name)
                }
            };
            aggs.push(ClassAgg { key, name, count: 0, self_size: 0, max_ret: 0 });
        }
        let a = agg_of_key[k];
        let agg = &mut aggs[a as usize];
        agg.count += 1;
        agg.self_size += u64::from(size);
    }

    // calculateClassesRetainedSize: walk the dominator tree; an object adds its
    // retained size unless an ancestor of the same class already did.
    let (waited, spare_nodes) = before_tree();
    let dominated = dominators::dominated_into(idom, g.root, spare, spare_nodes);
    let mut seen = vec![false; aggs.len()];
    let mut counted = Bits::new(n);
    let mut list: Vec<u32> = vec![g.root];
    let mut sizes: Vec<usize> = vec![usize::MAX];
    let mut open: Vec<u32> = Vec::new();
    while let Some(node) = list.pop() {
        let o = node as usize;
        let a = if g.self_size[o] == 0 { u32::MAX } else { agg_of_key[key_of[o] as usize] };
        let (from, to) = (dominated.first[o] as usize, dominated.first[o + 1] as usize);
        if a != u32::MAX && !seen[a as usize] {
            aggs[a as usize].max_ret += retained[o];
            counted.set(o);
            if from != to {
                seen[a as usize] = true;
                sizes.push(list.len());
                open.push(a);
            }
        }
        list.extend_from_slice(&dominated.nodes[from..to]);
        let l = list.len();
        while sizes.last() == Some(&l) {
            sizes.pop();
            if let Some(c) = open.pop() {
                seen[c as usize] = false;
            }
        }
    }
    super::free_beside(dominated);
    let key_name = keys
        .iter()
        .map(|k| match *k {
            InternalKey::Name(s) | InternalKey::Located(_, _, _, s) => s,
        })
        .collect();
    (Classes { key_of, key_name, agg_of_key, counted, aggs }, names, waited)
}

#[cfg(test)]
mod tests {
    use super::sort_locations;

    #[test]
    fn locations_sort_by_node_keeping_file_order_within_a_node() {
        // One record per node: any order of equal keys is moot.
        let mut one = vec![[5, 1, 1, 1], [2, 2, 2, 2], [9, 3, 3, 3], [0, 4, 4, 4]];
        sort_locations(&mut one, 10);
        assert_eq!(one.iter().map(|l| l[0]).collect::<Vec<_>>(), [0, 2, 5, 9]);
        // Two records for node 3: the file's order between them stays, so
        // the later one still wins.
        let mut two = vec![[3, 1, 0, 0], [1, 0, 0, 0], [3, 2, 0, 0], [0, 0, 0, 0], [3, 3, 0, 0]];
        sort_locations(&mut two, 4);
        assert_eq!(two, [[0, 0, 0, 0], [1, 0, 0, 0], [3, 1, 0, 0], [3, 2, 0, 0], [3, 3, 0, 0]]);
    }
}
