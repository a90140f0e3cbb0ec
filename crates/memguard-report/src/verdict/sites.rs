//! Which allocation site produced a class's objects. The sampling heap
//! profile does not say what type each sample was, so the match is by the
//! constructor: a frame named like the class (at the class's location when
//! V8 recorded one) is the constructor, and the JavaScript frame that called
//! it — the one that ran `new Class` — is the site. Without one (object
//! literals, arrays, closures) the profile's largest site in application
//! code is offered, marked as the weaker match it is.

use std::collections::HashMap;

use memguard_core::heapprofile::ProfileNode;

use crate::report::{AllocationSite, AllocationSummary, SiteMatch};

/// A top-app-site match must hold this share of the sampled bytes.
const TOP_SITE_SHARE: f64 = 0.2;

/// Node code Node.js itself ships, not the application's.
pub fn is_app_url(url: &str) -> bool {
    !url.is_empty() && !url.starts_with("node:") && !url.starts_with("internal/")
}

fn site_of(n: &ProfileNode, bytes: u64) -> AllocationSite {
    AllocationSite {
        function: if n.function_name.is_empty() { "(anonymous)".into() } else { n.function_name.clone() },
        url: n.url.clone(),
        line: n.line.max(0) as u32,
        column: n.column.max(0) as u32,
        bytes,
        script_id: n.script_id,
        original: None,
    }
}

/// Live bytes sampled in each node's subtree.
fn subtree_bytes(nodes: &[ProfileNode]) -> HashMap<u32, u64> {
    let mut sums: HashMap<u32, u64> = nodes.iter().map(|n| (n.id, n.self_size)).collect();
    let parent: HashMap<u32, u32> = nodes.iter().map(|n| (n.id, n.parent)).collect();
    // Flattened parents-first: children come later, so summing backwards works.
    for n in nodes.iter().rev() {
        if let (Some(&own), Some(&p)) = (sums.get(&n.id), parent.get(&n.id)) {
            if p != 0 {
                *sums.entry(p).or_default() = sums.get(&p).copied().unwrap_or(0).saturating_add(own);
            }
        }
    }
    sums
}

/// The constructor frames of `class` and the JS frames that called them,
/// with the live bytes allocated under each call.
pub fn match_class(a: &AllocationSummary, class: &str, location: Option<[u32; 3]>) -> Option<SiteMatch> {
    let nodes = &a.nodes;
    let by_id: HashMap<u32, &ProfileNode> = nodes.iter().map(|n| (n.id, n)).collect();
    let sums = subtree_bytes(nodes);
    let is_ctor = |n: &ProfileNode| {
        n.function_name == class
            && is_app_url(&n.url)
            // Same script and line as V8's record of the class, when both are known.
            && location.is_none_or(|[script, line, _]| n.script_id <= 0 || (n.script_id as u32 == script && (n.line - 1).unsigned_abs().abs_diff(line) <= 1))
    };
    let mut callers: HashMap<(u32, bool), u64> = HashMap::new();
    for n in nodes.iter().filter(|n| is_ctor(n)) {
        let bytes = sums.get(&n.id).copied().unwrap_or(0);
        let caller = by_id.get(&n.parent).filter(|p| is_app_url(&p.url));
        let key = caller.map_or((n.id, false), |p| (p.id, true));
        *callers.entry(key).or_default() += bytes;
    }
    // Calls from one function at one position are one site.
    let mut sites: HashMap<(String, String, i32, i32, bool), (u64, u32)> = HashMap::new();
    for ((id, is_caller), bytes) in callers {
        let n = by_id[&id];
        let e = sites.entry((n.function_name.clone(), n.url.clone(), n.line, n.column, is_caller)).or_insert((0, id));
        e.0 += bytes;
    }
    let best = sites.into_iter().max_by(|a, b| a.1 .0.cmp(&b.1 .0).then_with(|| b.0.cmp(&a.0)))?;
    let ((_, _, _, _, is_caller), (bytes, id)) = best;
    Some(SiteMatch {
        site: site_of(by_id[&id], bytes),
        matched_by: if is_caller { "constructor-caller" } else { "constructor" }.into(),
    })
}

/// The largest site in application code, when it holds a fair share.
pub fn top_app_site(a: &AllocationSummary) -> Option<SiteMatch> {
    let site = a.sites.iter().find(|s| is_app_url(&s.url))?;
    (site.bytes as f64 >= TOP_SITE_SHARE * a.total_bytes as f64)
        .then(|| SiteMatch { site: site.clone(), matched_by: "top-app-site".into() })
}

/// Without a snapshot: the constructor with the most live bytes under it in
/// application code (its class), and the site that called it.
pub fn top_constructor(a: &AllocationSummary) -> Option<(String, SiteMatch)> {
    let sums = subtree_bytes(&a.nodes);
    let ctor = a
        .nodes
        .iter()
        .filter(|n| is_app_url(&n.url) && n.function_name.starts_with(|c: char| c.is_ascii_uppercase()))
        .max_by_key(|n| sums.get(&n.id).copied().unwrap_or(0))?;
    let class = ctor.function_name.clone();
    match_class(a, &class, None).map(|m| (class, m))
}
