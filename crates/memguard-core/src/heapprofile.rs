//! V8's sampling heap profile → the Chrome DevTools Protocol
//! `SamplingHeapProfile` JSON that DevTools opens as an allocation profile
//! (`.heapprofile`), and the top allocation sites for `summary.json`.
//! Pure: the V8 side hands over a flat list of nodes and samples.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{json, Value};

/// One node of V8's allocation tree (a call path), flattened.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileNode {
    pub id: u32,
    /// 0 for the root.
    pub parent: u32,
    pub function_name: String,
    pub url: String,
    pub script_id: i32,
    /// 1-based, as V8 gives them; 0 when unknown.
    pub line: i32,
    pub column: i32,
    /// Bytes sampled as allocated by this very frame (and still alive).
    pub self_size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProfileSample {
    pub node_id: u32,
    pub size: u64,
    pub count: u32,
    pub sample_id: u64,
}

/// An allocation site: where live sampled bytes were allocated.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationSite {
    pub function_name: String,
    pub url: String,
    pub line: i32,
    pub column: i32,
    pub bytes: u64,
}

/// The CDP `HeapProfiler.SamplingHeapProfile` object. Line and column
/// numbers become 0-based, as the protocol (and DevTools) expects.
pub fn to_cdp(nodes: &[ProfileNode], samples: &[ProfileSample]) -> Value {
    let mut children: HashMap<u32, Vec<&ProfileNode>> = HashMap::new();
    let mut root = None;
    for node in nodes {
        if node.parent == 0 && root.is_none() {
            root = Some(node);
        } else {
            children.entry(node.parent).or_default().push(node);
        }
    }
    let head = match root {
        Some(root) => build(root, &children, 0),
        None => json!({ "callFrame": call_frame("(root)", "", 0, 0, 0), "selfSize": 0, "id": 0, "children": [] }),
    };
    let samples: Vec<Value> = samples
        .iter()
        .map(|s| json!({ "size": s.size * u64::from(s.count), "nodeId": s.node_id, "ordinal": s.sample_id }))
        .collect();
    json!({ "head": head, "samples": samples })
}

/// Deep trees are real (recursive code); the recursion is bounded by the
/// profiler's own stack depth limit, and capped here to be safe.
fn build(node: &ProfileNode, children: &HashMap<u32, Vec<&ProfileNode>>, depth: usize) -> Value {
    let kids: Vec<Value> = if depth < 256 {
        children.get(&node.id).map(|c| c.iter().map(|c| build(c, children, depth + 1)).collect()).unwrap_or_default()
    } else {
        Vec::new()
    };
    json!({
        "callFrame": call_frame(&node.function_name, &node.url, node.script_id, node.line - 1, node.column - 1),
        "selfSize": node.self_size,
        "id": node.id,
        "children": kids,
    })
}

fn call_frame(function_name: &str, url: &str, script_id: i32, line: i32, column: i32) -> Value {
    json!({
        "functionName": function_name,
        "scriptId": script_id.to_string(),
        "url": url,
        "lineNumber": line,
        "columnNumber": column,
    })
}

/// The frames that allocated the most live sampled bytes, largest first.
/// Frames with the same function and position are one site. Bytes sampled
/// in a builtin (`String.prototype.repeat`, `Array.prototype.push`: no
/// script) count for the JS function that called it — that is the code a
/// user can change.
pub fn top_sites(nodes: &[ProfileNode], n: usize) -> Vec<AllocationSite> {
    let by_id: HashMap<u32, &ProfileNode> = nodes.iter().map(|node| (node.id, node)).collect();
    let mut sites: HashMap<(&str, &str, i32, i32), u64> = HashMap::new();
    for node in nodes.iter().filter(|node| node.self_size > 0) {
        let frame = js_frame(node, &by_id);
        let bytes = sites.entry((&frame.function_name, &frame.url, frame.line, frame.column)).or_default();
        // Saturating: a profile read from a bundle may hold any size.
        *bytes = bytes.saturating_add(node.self_size);
    }
    let mut sites: Vec<AllocationSite> = sites
        .into_iter()
        .map(|((f, u, line, column), bytes)| AllocationSite {
            function_name: if f.is_empty() { "(anonymous)".into() } else { f.into() },
            url: u.into(),
            line,
            column,
            bytes,
        })
        .collect();
    sites.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.function_name.cmp(&b.function_name)));
    sites.truncate(n);
    sites
}

/// The node itself if it is JavaScript, else its nearest JavaScript ancestor.
fn js_frame<'a>(mut node: &'a ProfileNode, by_id: &HashMap<u32, &'a ProfileNode>) -> &'a ProfileNode {
    let start = node;
    for _ in 0..1024 {
        if !node.url.is_empty() {
            return node;
        }
        match by_id.get(&node.parent) {
            Some(parent) if node.parent != 0 => node = parent,
            _ => break,
        }
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u32, parent: u32, name: &str, line: i32, self_size: u64) -> ProfileNode {
        ProfileNode {
            id,
            parent,
            function_name: name.into(),
            url: if id == 1 { String::new() } else { "file:///app.js".into() },
            script_id: if id == 1 { 0 } else { 7 },
            line,
            column: 3,
            self_size,
        }
    }

    fn tree() -> Vec<ProfileNode> {
        vec![
            node(1, 0, "(root)", 0, 0),
            node(2, 1, "main", 1, 100),
            node(3, 2, "leak", 10, 5000),
            node(4, 2, "churn", 20, 300),
            node(5, 4, "leak", 10, 700), // same site reached another way
        ]
    }

    #[test]
    fn builds_the_cdp_tree_with_zero_based_positions() {
        let samples = vec![ProfileSample { node_id: 3, size: 64, count: 2, sample_id: 9 }];
        let p = to_cdp(&tree(), &samples);
        assert_eq!(p["head"]["callFrame"]["functionName"], "(root)");
        let main = &p["head"]["children"][0];
        assert_eq!(main["callFrame"]["lineNumber"], 0);
        assert_eq!(main["callFrame"]["columnNumber"], 2);
        assert_eq!(main["callFrame"]["scriptId"], "7");
        assert_eq!(main["children"].as_array().unwrap().len(), 2);
        assert_eq!(main["children"][0]["selfSize"], 5000);
        assert_eq!(main["children"][1]["children"][0]["id"], 5);
        assert_eq!(p["samples"], json!([{ "size": 128, "nodeId": 3, "ordinal": 9 }]));
    }

    #[test]
    fn top_sites_merge_same_frame_and_sort_by_bytes() {
        let sites = top_sites(&tree(), 2);
        assert_eq!(sites.len(), 2);
        assert_eq!((sites[0].function_name.as_str(), sites[0].line, sites[0].bytes), ("leak", 10, 5700));
        assert_eq!(sites[1].function_name, "churn");
    }

    #[test]
    fn builtin_frames_count_for_their_js_caller() {
        let mut nodes = tree();
        nodes.push(ProfileNode { url: String::new(), script_id: 0, ..node(6, 4, "repeat", 0, 10_000) });
        let sites = top_sites(&nodes, 1);
        assert_eq!((sites[0].function_name.as_str(), sites[0].bytes), ("churn", 10_300));
    }

    #[test]
    fn empty_profile_is_still_valid() {
        let p = to_cdp(&[], &[]);
        assert_eq!(p["head"]["children"], json!([]));
        assert_eq!(p["samples"], json!([]));
    }
}
