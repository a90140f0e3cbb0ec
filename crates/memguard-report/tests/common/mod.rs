//! Builds tiny `.heapsnapshot` texts by hand, in Node 20's layout, for tests
//! with known dominators.
#![allow(dead_code)]

pub mod mutate;

use std::path::PathBuf;

pub struct Node {
    pub ty: &'static str,
    pub name: String,
    pub id: u32,
    pub size: u32,
    /// DOM state: 0 unknown, 1 attached, 2 detached.
    pub detachedness: u8,
    pub edges: Vec<(&'static str, EdgeName, usize)>,
}

pub enum EdgeName {
    Str(String),
    Index(u32),
}

pub const NODE_TYPES: [&str; 15] = [
    "hidden", "array", "string", "object", "code", "closure", "regexp", "number", "native", "synthetic",
    "concatenated string", "sliced string", "symbol", "bigint", "object shape",
];
pub const EDGE_TYPES: [&str; 7] = ["context", "element", "property", "internal", "hidden", "shortcut", "weak"];

#[derive(Default)]
pub struct Snap {
    pub nodes: Vec<Node>,
}

impl Snap {
    /// Starts with the root (synthetic, id 1) as node 0.
    pub fn new() -> Snap {
        let mut s = Snap::default();
        s.node("synthetic", "", 0);
        s
    }

    /// Adds a node; returns its ordinal. Ids are 1, 3, 5, … in order.
    pub fn node(&mut self, ty: &'static str, name: &str, size: u32) -> usize {
        let id = 1 + 2 * self.nodes.len() as u32;
        self.nodes.push(Node { ty, name: name.to_string(), id, size, detachedness: 0, edges: Vec::new() });
        self.nodes.len() - 1
    }

    pub fn with_detachedness(&mut self, node: usize, state: u8) {
        self.nodes[node].detachedness = state;
    }

    pub fn with_id(&mut self, node: usize, id: u32) {
        self.nodes[node].id = id;
    }

    pub fn edge(&mut self, from: usize, ty: &'static str, name: &str, to: usize) {
        let n = if ty == "element" || ty == "hidden" {
            EdgeName::Index(name.parse().unwrap_or(0))
        } else {
            EdgeName::Str(name.to_string())
        };
        self.nodes[from].edges.push((ty, n, to));
    }

    pub fn json(&self) -> String {
        let mut strings: Vec<String> = Vec::new();
        let mut intern = |s: &str| -> usize {
            if let Some(i) = strings.iter().position(|x| x == s) {
                return i;
            }
            strings.push(s.to_string());
            strings.len() - 1
        };
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        let edge_count: usize = self.nodes.iter().map(|n| n.edges.len()).sum();
        for n in &self.nodes {
            let t = NODE_TYPES.iter().position(|x| *x == n.ty).expect("node type");
            nodes.push(format!("{},{},{},{},{},0,{}", t, intern(&n.name), n.id, n.size, n.edges.len(), n.detachedness));
            for (ty, name, to) in &n.edges {
                let et = EDGE_TYPES.iter().position(|x| x == ty).expect("edge type");
                let name = match name {
                    EdgeName::Str(s) => intern(s),
                    EdgeName::Index(i) => *i as usize,
                };
                edges.push(format!("{},{},{}", et, name, to * 7));
            }
        }
        let strings_json = serde_json::to_string(&strings).unwrap();
        format!(
            concat!(
                "{{\"snapshot\":{{\"meta\":{{\"node_fields\":[\"type\",\"name\",\"id\",\"self_size\",\"edge_count\",\"trace_node_id\",\"detachedness\"],",
                "\"node_types\":[{},\"string\",\"number\",\"number\",\"number\",\"number\",\"number\"],",
                "\"edge_fields\":[\"type\",\"name_or_index\",\"to_node\"],",
                "\"edge_types\":[{},\"string_or_number\",\"node\"],",
                "\"trace_function_info_fields\":[],\"trace_node_fields\":[],\"sample_fields\":[],",
                "\"location_fields\":[\"object_index\",\"script_id\",\"line\",\"column\"]}},",
                "\"node_count\":{},\"edge_count\":{},\"trace_function_count\":0}},\n",
                "\"nodes\":[{}],\n\"edges\":[{}],\n\"trace_function_infos\":[],\"trace_tree\":[],\"samples\":[],\"locations\":[],\n",
                "\"strings\":{}}}\n"
            ),
            serde_json::to_string(&NODE_TYPES).unwrap(),
            serde_json::to_string(&EDGE_TYPES).unwrap(),
            self.nodes.len(),
            edge_count,
            nodes.join(",\n"),
            edges.join(",\n"),
            strings_json
        )
    }

    /// Writes the snapshot to a fresh temp file.
    pub fn write(&self, name: &str) -> PathBuf {
        write_text(name, &self.json())
    }
}

pub fn write_text(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memguard-report-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
