//! The heap graph in compressed-sparse-row form: per-node columns, and each
//! node's outgoing edges as one contiguous range of the edge columns. Node and
//! edge type numbers are resolved once from `meta` by name.

use super::reader::RawSnapshot;
use super::strings::Strings;

/// A type number that no node or edge carries (the type is absent from meta).
pub const NONE: u8 = u8::MAX;

#[derive(Debug, Clone, Copy)]
pub struct NodeKinds {
    pub hidden: u8,
    pub array: u8,
    pub string: u8,
    pub object: u8,
    pub code: u8,
    pub closure: u8,
    pub regexp: u8,
    pub native: u8,
    pub synthetic: u8,
    pub cons_string: u8,
    pub sliced_string: u8,
}

#[derive(Debug, Clone, Copy)]
pub struct EdgeKinds {
    pub context: u8,
    pub element: u8,
    pub property: u8,
    pub internal: u8,
    pub hidden: u8,
    pub shortcut: u8,
    pub weak: u8,
}

fn find(list: &[String], name: &str) -> u8 {
    list.iter().position(|t| t == name).map(|i| i as u8).unwrap_or(NONE)
}

#[derive(Debug)]
pub struct Graph {
    pub node_types: Vec<String>,
    pub edge_types: Vec<String>,
    pub nk: NodeKinds,
    pub ek: EdgeKinds,
    pub root: u32,
    pub node_type: Vec<u8>,
    /// Name string of each node; DevTools renames detached DOM nodes in place.
    pub node_name: Vec<u32>,
    pub node_id: Vec<u32>,
    /// Shallow sizes; after `shallow::transfer_owned_sizes` as DevTools shows them.
    pub self_size: Vec<u32>,
    pub first_edge: Vec<u32>,
    pub detachedness: Vec<u8>,
    pub edge_type: Vec<u8>,
    pub edge_name: Vec<u32>,
    pub edge_to: Vec<u32>,
    pub locations: Vec<[u32; 4]>,
    pub strings: Strings,
    pub extra_native_bytes: u64,
}

impl Graph {
    pub fn from_raw(raw: RawSnapshot) -> Graph {
        let m = &raw.meta;
        let nt = &m.node_types;
        let et = &m.edge_types;
        let nk = NodeKinds {
            hidden: find(nt, "hidden"),
            array: find(nt, "array"),
            string: find(nt, "string"),
            object: find(nt, "object"),
            code: find(nt, "code"),
            closure: find(nt, "closure"),
            regexp: find(nt, "regexp"),
            native: find(nt, "native"),
            synthetic: find(nt, "synthetic"),
            cons_string: find(nt, "concatenated string"),
            sliced_string: find(nt, "sliced string"),
        };
        let ek = EdgeKinds {
            context: find(et, "context"),
            element: find(et, "element"),
            property: find(et, "property"),
            internal: find(et, "internal"),
            hidden: find(et, "hidden"),
            shortcut: find(et, "shortcut"),
            weak: find(et, "weak"),
        };
        let root = (m.root_index / m.node_fields.len() as u64) as u32;
        Graph {
            node_types: m.node_types.clone(),
            edge_types: m.edge_types.clone(),
            nk,
            ek,
            root,
            extra_native_bytes: m.extra_native_bytes,
            node_type: raw.node_type,
            node_name: raw.node_name,
            node_id: raw.node_id,
            self_size: raw.self_size,
            first_edge: raw.first_edge,
            detachedness: raw.detachedness,
            edge_type: raw.edge_type,
            edge_name: raw.edge_name,
            edge_to: raw.edge_to,
            locations: raw.locations,
            strings: raw.strings,
        }
    }

    pub fn node_count(&self) -> usize {
        self.node_type.len()
    }

    pub fn edge_count(&self) -> usize {
        self.edge_to.len()
    }

    #[inline]
    pub fn edges(&self, node: u32) -> std::ops::Range<usize> {
        self.first_edge[node as usize] as usize..self.first_edge[node as usize + 1] as usize
    }

    pub fn name(&self, node: u32) -> &str {
        self.strings.get(self.node_name[node as usize])
    }

    pub fn name_bytes(&self, node: u32) -> &[u8] {
        self.strings.bytes(self.node_name[node as usize])
    }

    pub fn type_name(&self, node: u32) -> &str {
        self.node_types.get(self.node_type[node as usize] as usize).map(String::as_str).unwrap_or("")
    }

    /// True when edge `e`'s `name_or_index` is a number rather than a string index.
    #[inline]
    pub fn edge_name_is_index(&self, e: usize) -> bool {
        let t = self.edge_type[e];
        t == self.ek.element || t == self.ek.hidden
    }

    /// The edge's name as DevTools shows it: the string, or the index in decimal.
    pub fn edge_name(&self, e: usize) -> String {
        if self.edge_name_is_index(e) {
            self.edge_name[e].to_string()
        } else {
            self.strings.get(self.edge_name[e]).to_string()
        }
    }

    pub fn edge_type_name(&self, e: usize) -> &str {
        self.edge_types.get(self.edge_type[e] as usize).map(String::as_str).unwrap_or("")
    }

    pub fn is_user_root(&self, node: u32) -> bool {
        self.node_type[node as usize] != self.nk.synthetic
    }

    pub fn is_document_dom_trees_root(&self, node: u32) -> bool {
        self.node_type[node as usize] == self.nk.synthetic && self.name_bytes(node) == b"(Document DOM trees)"
    }

    pub fn heap_bytes(&self) -> usize {
        self.node_type.capacity()
            + 4 * (self.node_name.capacity() + self.node_id.capacity() + self.self_size.capacity())
            + 4 * self.first_edge.capacity()
            + self.detachedness.capacity()
            + self.edge_type.capacity()
            + 4 * (self.edge_name.capacity() + self.edge_to.capacity())
            + self.strings.heap_bytes()
    }
}

/// One bit per item.
#[derive(Debug, Clone)]
pub struct Bits(Vec<u64>);

impl Bits {
    pub fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }
    /// Bits held (a multiple of 64).
    pub fn len(&self) -> usize {
        self.0.len() * 64
    }
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        self.0[i >> 6] >> (i & 63) & 1 != 0
    }
    #[inline]
    pub fn set(&mut self, i: usize) {
        self.0[i >> 6] |= 1 << (i & 63);
    }
    /// The bits 64 at a time, bit `i` in word `i / 64` at `i % 64`.
    pub fn words_mut(&mut self) -> &mut [u64] {
        &mut self.0
    }
}
