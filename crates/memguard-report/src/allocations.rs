//! `allocations-<seq>.heapprofile` (DevTools' `SamplingHeapProfile`) → the
//! top allocation sites, ranked by the same rules as `summary.json`'s
//! (memguard-core's `top_sites`: one site per function and position, bytes
//! sampled inside builtins count for their JS caller).

use std::path::Path;

use memguard_core::heapprofile::{top_sites, ProfileNode};
use serde::Deserialize;

use crate::bounded;
use crate::report::{AllocationSite, AllocationSummary};
use crate::ReportError;

/// Deepest call tree read. memguard writes at most 256 frames; V8's own
/// profiles of deep recursion go further.
const MAX_FRAMES: usize = 2048;
/// The parser (and the drop of what it built) recurses a few times per
/// frame; it runs on a thread with this much stack — address space, touched
/// only as deep as the tree goes. Measured for 2,048 frames: 8–12 MB in a
/// debug build, 1–2 MB optimized (main's 8 MB would not do for the former).
const PARSE_STACK: usize = 64 << 20;
/// Profiles are megabytes (one node per distinct stack); this is far beyond.
const MAX_BYTES: u64 = 512 << 20;

#[derive(Deserialize)]
struct Profile {
    head: Node,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    call_frame: CallFrame,
    #[serde(default)]
    self_size: u64,
    #[serde(default)]
    children: Vec<Node>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallFrame {
    #[serde(default)]
    function_name: String,
    #[serde(default)]
    url: String,
    /// 0-based in the protocol.
    #[serde(default)]
    line_number: i32,
    #[serde(default)]
    column_number: i32,
    /// A string in the protocol; ties a frame to the snapshot's locations.
    #[serde(default)]
    script_id: Option<String>,
}

pub fn read(path: &Path, top: usize) -> Result<AllocationSummary, ReportError> {
    let bad = |e: &dyn std::fmt::Display| ReportError::Usage(format!("{}: not an allocation profile: {e}", path.display()));
    let bytes = bounded::read_file(path, MAX_BYTES, "an allocation profile")?;
    // The profile object, then a node object and its children array per
    // frame, then the leaf's callFrame.
    bounded::check_depth(&bytes, 2 * MAX_FRAMES + 2).map_err(|e| bad(&format!("call tree {e}")))?;
    let parse = || {
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        // Call trees of real services nest deeper than serde_json's default
        // limit of 128 (two levels per frame); the depth is bounded above.
        de.disable_recursion_limit();
        let profile: Profile = serde::Deserialize::deserialize(&mut de).and_then(|p| de.end().map(|()| p))?;
        Ok::<_, serde_json::Error>(summarize(path, &profile.head, top))
    };
    std::thread::scope(|s| {
        let parser = std::thread::Builder::new().name("memguard-profile".into()).stack_size(PARSE_STACK);
        match parser.spawn_scoped(s, parse) {
            Ok(thread) => thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => parse(), // no thread: the main thread's stack suffices for memguard's own profiles
        }
    })
    .map_err(|e| bad(&e))
}

fn summarize(path: &Path, head: &Node, top: usize) -> AllocationSummary {
    let nodes = flatten(head);
    let total_bytes = nodes.iter().fold(0u64, |sum, n| sum.saturating_add(n.self_size));
    let script_of: std::collections::HashMap<&str, i32> = nodes.iter().map(|n| (n.url.as_str(), n.script_id)).collect();
    let sites = top_sites(&nodes, top)
        .into_iter()
        .map(|s| AllocationSite {
            script_id: script_of.get(s.url.as_str()).copied().unwrap_or(0),
            function: s.function_name,
            url: s.url,
            line: s.line.max(0) as u32,
            column: s.column.max(0) as u32,
            bytes: s.bytes,
            original: None,
        })
        .collect();
    AllocationSummary { file: path.display().to_string(), total_bytes, sites, nodes }
}

/// The tree as memguard-core's flat node list (parent ids, 1-based positions).
/// Ids are renumbered: a profile from elsewhere may repeat or omit them.
fn flatten(head: &Node) -> Vec<ProfileNode> {
    let mut out = Vec::new();
    let mut stack: Vec<(&Node, u32)> = vec![(head, 0)];
    while let Some((node, parent)) = stack.pop() {
        let id = out.len() as u32 + 1;
        let f = &node.call_frame;
        out.push(ProfileNode {
            id,
            parent,
            function_name: f.function_name.clone(),
            url: f.url.clone(),
            script_id: f.script_id.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0),
            line: f.line_number.saturating_add(1),
            column: f.column_number.saturating_add(1),
            self_size: node.self_size,
        });
        stack.extend(node.children.iter().rev().map(|c| (c, id)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tests::tempdir::Dir;
    use memguard_core::heapprofile::to_cdp;

    fn node(id: u32, parent: u32, name: &str, url: &str, line: i32, self_size: u64) -> ProfileNode {
        ProfileNode { id, parent, function_name: name.into(), url: url.into(), script_id: 1, line, column: 5, self_size }
    }

    /// Written exactly as memguard writes it (memguard-core's `to_cdp`), read back here.
    #[test]
    fn reads_what_memguard_writes() {
        let nodes = vec![
            node(1, 0, "(root)", "", 0, 0),
            node(2, 1, "main", "file:///app.js", 1, 100),
            node(3, 2, "leak", "file:///app.js", 10, 5000),
            node(4, 2, "churn", "file:///app.js", 20, 300),
            node(5, 4, "repeat", "", 0, 700), // a builtin: counts for churn
        ];
        let dir = Dir::new();
        let path = dir.path().join("allocations-1.heapprofile");
        std::fs::write(&path, to_cdp(&nodes, &[]).to_string()).unwrap();
        let a = read(&path, 10).unwrap();
        assert_eq!(a.total_bytes, 6100);
        let sites: Vec<(&str, u32, u32, u64)> = a.sites.iter().map(|s| (s.function.as_str(), s.line, s.column, s.bytes)).collect();
        assert_eq!(sites, [("leak", 10, 5, 5000), ("churn", 20, 5, 1000), ("main", 1, 5, 100)]);
        assert_eq!(read(&path, 1).unwrap().sites.len(), 1);
    }

    #[test]
    fn deep_call_trees_parse() {
        let mut nodes = vec![node(1, 0, "(root)", "", 0, 0)];
        for id in 2..300 {
            nodes.push(node(id, id - 1, "recurse", "file:///r.js", 3, 1));
        }
        let dir = Dir::new();
        let path = dir.path().join("allocations-1.heapprofile");
        std::fs::write(&path, to_cdp(&nodes, &[]).to_string()).unwrap();
        let a = read(&path, 10).unwrap();
        assert_eq!(a.sites[0].function, "recurse");
    }

    /// A profile `frames` calls deep, written by hand (to_cdp caps depth).
    fn deep_profile(frames: usize) -> String {
        let node = r#"{"callFrame":{"functionName":"f","url":"file:///r.js","lineNumber":1},"selfSize":1,"children":["#;
        format!(r#"{{"head":{}{}}}"#, node.repeat(frames), "]}".repeat(frames))
    }

    #[test]
    fn the_deepest_allowed_tree_parses_and_deeper_is_refused() {
        let dir = Dir::new();
        let path = dir.path().join("allocations-1.heapprofile");
        std::fs::write(&path, deep_profile(MAX_FRAMES)).unwrap();
        let a = read(&path, 10).unwrap();
        assert_eq!((a.sites[0].function.as_str(), a.total_bytes), ("f", MAX_FRAMES as u64));
        std::fs::write(&path, deep_profile(MAX_FRAMES + 1)).unwrap();
        let e = read(&path, 10).unwrap_err().to_string();
        assert!(e.contains("not an allocation profile: call tree nested deeper than"), "{e}");
        std::fs::write(&path, deep_profile(1_000_000)).unwrap();
        assert!(read(&path, 10).is_err());
    }

    #[test]
    fn extreme_numbers_do_not_overflow() {
        let dir = Dir::new();
        let path = dir.path().join("allocations-1.heapprofile");
        let n = r#"{"callFrame":{"functionName":"f","url":"u","lineNumber":2147483647,"columnNumber":2147483647},"selfSize":18446744073709551615}"#;
        std::fs::write(&path, format!(r#"{{"head":{{"callFrame":{{}},"children":[{n},{n}]}}}}"#)).unwrap();
        let a = read(&path, 10).unwrap();
        assert_eq!(a.total_bytes, u64::MAX);
    }

    #[test]
    fn not_a_profile_is_an_error() {
        let dir = Dir::new();
        let path = dir.path().join("allocations-1.heapprofile");
        std::fs::write(&path, "{\"head\": ").unwrap();
        let e = read(&path, 10).unwrap_err().to_string();
        assert!(e.contains("not an allocation profile"), "{e}");
    }
}
