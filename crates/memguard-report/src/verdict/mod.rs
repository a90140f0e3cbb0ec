//! The verdict: the answer first. Leak suspects (at most 3) or no leak
//! suspect, with the reason. See docs/verdict.md for the method.
//!
//! - `gate`  — the timeline says whether the heap grows (no growth, no suspect)
//! - `sites` — which allocation site produced a class's objects
//!
//! The candidates are the newest snapshot's accumulation points
//! (`snapshot::accumulation`); with an earlier snapshot they carry their
//! growth (`snapshot::diff::growth`) and are ranked by it; without a
//! snapshot the allocation profile alone names a suspect, and says so.

pub mod gate;
pub mod sites;

use crate::report::{AccumulationPoint, Growth, HeapTrend, Report, SiteMatch, Suspect, Verdict};
use crate::terminal::{human, thousands};

const MAX_SUSPECTS: usize = 3;
const MAX_HOLDERS: usize = 3;
/// With two snapshots, a point is growing when it gained this share of its
/// retained size (or its holder grew by as much).
const MIN_GROWTH_SHARE: f64 = 0.05;
/// An app class outranks an internal one unless the internal one is this much larger.
const INTERNAL_PENALTY: f64 = 2.0;

/// Rank of a point: its retained size, halved when its class or its holder
/// is V8's or Node's own (`(system)` holding Node's `ImmediateList` on
/// Node 26), so the app's own accumulation comes first unless an internal
/// one is much larger — a closure leak that is only internal still shows.
fn app_first(p: &AccumulationPoint) -> f64 {
    let internal = p.internal || p.holder.class.starts_with('(');
    p.retained_size as f64 / if internal { INTERNAL_PENALTY } else { 1.0 }
}

/// `Map 'sessions'`.
pub fn holder_text(p: &AccumulationPoint) -> String {
    match &p.holder.edge {
        Some(edge) if edge.parse::<u64>().is_ok() => format!("{} [{edge}]", p.holder.class),
        Some(edge) => format!("{} '{edge}'", p.holder.class),
        None => p.holder.class.clone(),
    }
}

fn grew(p: &AccumulationPoint) -> Option<bool> {
    let g = p.growth.as_ref()?;
    let added = g.bytes_added.unwrap_or(0) as f64;
    let holder = g.holder_before.map(|b| p.holder.retained_size as f64 - b as f64);
    let share = MIN_GROWTH_SHARE * p.retained_size as f64;
    Some(added >= share && holder.is_none_or(|h| h > 0.0) || holder.is_some_and(|h| h >= MIN_GROWTH_SHARE * p.holder.retained_size as f64))
}

/// A near-heap-limit capture in the bundle, or its marker in the timeline.
fn hit_limit(r: &Report) -> bool {
    let near = |v: &serde_json::Value| v.get("trigger").and_then(|t| t.as_str()) == Some("near-heap-limit");
    let captures = r.bundle.as_ref().and_then(|b| b.get("captures")).and_then(|c| c.as_array());
    captures.is_some_and(|c| c.iter().any(near)) || r.timeline.as_ref().is_some_and(|t| t.markers.iter().any(|m| near(&m.detail)))
}

pub fn judge(r: &Report) -> Verdict {
    let trend = r.timeline.as_ref().map(|t| gate::heap_trend(t, hit_limit(r)));
    let points: &[AccumulationPoint] = r.snapshot.as_ref().map_or(&[], |s| &s.accumulations);
    let reachable = r.snapshot.as_ref().map_or(0, |s| s.reachable_size);
    let diffed = points.iter().any(|p| p.growth.is_some());
    let state = trend.as_ref().map_or("none", |t| t.state.as_str());
    let open = match state {
        "growing" => true,
        "saturated" | "flat" => false,
        // No usable timeline: two snapshots can still show growth.
        _ => diffed && points.iter().any(|p| grew(p) == Some(true)),
    };
    let mut v = Verdict { heap_trend: trend.clone(), ..Verdict::default() };
    if !open {
        let (reason, why) = match state {
            "flat" => ("flat", flat_text(trend.as_ref())),
            "saturated" => ("saturated", saturated_text(trend.as_ref())),
            _ => ("too-little-data", too_little_text(r, state)),
        };
        v.status = "no-leak-suspect".into();
        v.reason = Some(reason.into());
        v.headline = format!("No leak suspect: {why}");
        let mut holders: Vec<&AccumulationPoint> = points.iter().collect();
        holders.sort_by(|a, b| app_first(b).total_cmp(&app_first(a)));
        v.not_growing = holders.into_iter().take(MAX_HOLDERS).cloned().collect();
        return v;
    }
    // The whole recording's slope, or the last half's when the whole was too short to have one.
    let rate = trend
        .as_ref()
        .filter(|t| t.state == "growing")
        .map(|t| if t.bytes_per_min > 0.0 { t.bytes_per_min } else { t.recent_bytes_per_min })
        .filter(|&r| r > 0.0);
    let mut candidates: Vec<&AccumulationPoint> = points.iter().collect();
    if diffed {
        let (growing, still): (Vec<_>, Vec<_>) = candidates.into_iter().partition(|p| grew(p) != Some(false));
        v.not_growing = still.into_iter().take(MAX_HOLDERS).cloned().collect();
        candidates = growing;
        candidates.sort_by_key(|p| std::cmp::Reverse(p.growth.as_ref().and_then(|g| g.bytes_added).unwrap_or(0)));
    } else {
        candidates.sort_by(|a, b| app_first(b).total_cmp(&app_first(a)));
    }
    for p in candidates.into_iter().take(MAX_SUSPECTS) {
        v.suspects.push(suspect_of(r, p, reachable, trend.as_ref(), rate));
    }
    if v.suspects.is_empty() && r.snapshot.is_none() {
        if let Some(s) = profile_suspect(r, rate) {
            v.suspects.push(s);
        }
    }
    if v.suspects.is_empty() {
        v.status = "no-leak-suspect".into();
        v.reason = Some("too-little-data".into());
        v.headline = if r.snapshot.is_some() {
            "No leak suspect: the heap grew, but no object in the snapshot accumulates a large share of it".into()
        } else {
            "No leak suspect: the heap grew, but there is no heap snapshot and the allocation profile names no constructor".into()
        };
        return v;
    }
    v.status = "leak-suspect".into();
    v.headline = headline(&v.suspects[0]);
    v
}

fn site_text(m: &SiteMatch) -> String {
    let s = &m.site;
    match &s.original {
        Some(o) => format!("{} ({}:{})", s.function, base(&o.source), o.line),
        None => format!("{} ({}:{})", s.function, base(&s.url), s.line),
    }
}

fn base(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// The headline again, once source maps have given original positions.
pub fn retitle(v: &mut Verdict) {
    if let Some(s) = v.suspects.first() {
        v.headline = headline(s);
    }
}

fn headline(s: &Suspect) -> String {
    let objects = if s.objects > 0 { format!("{} ", thousands(s.objects)) } else { String::new() };
    let mut h = format!("Leak suspect: {objects}{} ({})", s.class, human(s.retained_size as f64));
    if let Some(holder) = &s.holder {
        let edge = match &holder.edge {
            Some(e) => format!(" '{e}'"),
            None => String::new(),
        };
        h += &format!(" held by {}{edge}", holder.class);
    }
    if let Some(site) = &s.allocation_site {
        h += &format!(", allocated by {}", site_text(site));
    }
    if let Some(rate) = s.growth.heap_bytes_per_min {
        h += &format!("; heap +{}/min", human(rate));
    }
    h
}

fn suspect_of(r: &Report, p: &AccumulationPoint, reachable: u64, trend: Option<&HeapTrend>, rate: Option<f64>) -> Suspect {
    let site = r.allocations.as_ref().and_then(|a| {
        sites::match_class(a, &p.class, p.class_location).or_else(|| sites::top_app_site(a))
    });
    let mut growth = p.growth.clone().unwrap_or_default();
    growth.heap_bytes_per_min = rate;
    let mut evidence = Vec::new();
    if let (Some(t), Some(rate)) = (trend.filter(|t| t.state == "growing"), rate) {
        evidence.push(format!(
            "timeline: heap after GC growing {}/min ({:.0} % of pairs rising in the last half)",
            human(rate),
            t.recent_concordance * 100.0
        ));
    }
    if let Some(e) = r.snapshot.as_ref().and_then(|s| s.earlier.as_ref()) {
        let after = match e.heap_used_at_end {
            Some(end) => format!("; the heap grew on to {} after it (+{})", human(end as f64), human(end.saturating_sub(e.heap_used_then) as f64)),
            None => String::new(),
        };
        evidence.push(format!(
            "the snapshot is from earlier ({}, heap {} then){after}",
            e.trigger,
            human(e.heap_used_then as f64)
        ));
    }
    let share = if reachable > 0 { 100.0 * p.holder.retained_size.min(reachable) as f64 / reachable as f64 } else { 0.0 };
    evidence.push(format!(
        "snapshot: {} accumulates {} {} ({:.0} % of the heap)",
        holder_text(p),
        thousands(p.objects),
        p.class,
        share
    ));
    if let (Some(objects), Some(bytes)) = (growth.objects_added, growth.bytes_added) {
        let holder = match growth.holder_before {
            Some(b) => format!(", holder {} → {}", human(b as f64), human(p.holder.retained_size as f64)),
            None => ", holder new since then".into(),
        };
        evidence.push(format!("snapshots: +{} new {} (+{}) still held{holder}", thousands(objects), p.class, human(bytes as f64)));
    }
    if let Some(m) = &site {
        let how = match m.matched_by.as_str() {
            "constructor-caller" => format!("calls new {}", p.class),
            "constructor" => "the constructor".into(),
            _ => "the largest site in app code (not tied to the class)".into(),
        };
        evidence.push(format!("allocation profile: {} {how}", site_text(m)));
    }
    Suspect {
        class: p.class.clone(),
        objects: p.objects,
        retained_size: p.retained_size,
        holder: Some(p.holder.clone()),
        allocation_site: site,
        growth,
        evidence: evidence.join("; "),
        source: "snapshot".into(),
    }
}

/// No snapshot (skipped or failed): the allocation profile's leading
/// constructor, named as such.
fn profile_suspect(r: &Report, rate: Option<f64>) -> Option<Suspect> {
    let a = r.allocations.as_ref()?;
    let (class, site) = match sites::top_constructor(a) {
        Some((class, m)) => (class, Some(m)),
        None => ("(unknown class)".to_string(), Some(sites::top_app_site(a)?)),
    };
    // The objects themselves are sampled in the caller's frame (it runs
    // `new`), what the constructor builds in the constructor's.
    let caller_own = |m: &SiteMatch| {
        let own = a.sites.iter().find(|s| s.function == m.site.function && s.url == m.site.url && s.line == m.site.line);
        if m.matched_by == "constructor-caller" { own.map_or(0, |s| s.bytes) } else { 0 }
    };
    let bytes = site.as_ref().map_or(0, |m| m.site.bytes + caller_own(m));
    let mut evidence = vec!["no heap snapshot: the suspect comes from the allocation sites alone".to_string()];
    if let Some(rate) = rate {
        evidence.push(format!("timeline: heap after GC growing {}/min", human(rate)));
    }
    if let Some(m) = &site {
        evidence.push(format!(
            "allocation profile: {} and what it constructs hold {} of {} live sampled",
            site_text(m),
            human(bytes as f64),
            human(a.total_bytes as f64)
        ));
    }
    Some(Suspect {
        class,
        objects: 0,
        retained_size: bytes,
        holder: None,
        allocation_site: site,
        growth: Growth { heap_bytes_per_min: rate, ..Growth::default() },
        evidence: evidence.join("; "),
        source: "allocation-profile".into(),
    })
}

fn flat_text(t: Option<&HeapTrend>) -> String {
    match t {
        Some(t) => format!("the heap was flat over the timeline ({}{}/min, {:.1} s)", sign(t.bytes_per_min), human(t.bytes_per_min.abs()), t.span_ms / 1000.0),
        None => "the heap was flat".into(),
    }
}

fn saturated_text(t: Option<&HeapTrend>) -> String {
    match t {
        Some(t) => format!(
            "the heap grew ({}/min over the recording) and then stopped ({}{}/min over its last half): a cache that filled up",
            human(t.bytes_per_min),
            sign(t.recent_bytes_per_min),
            human(t.recent_bytes_per_min.abs())
        ),
        None => "the growth saturated".into(),
    }
}

fn too_little_text(r: &Report, state: &str) -> String {
    match (state, &r.timeline) {
        ("too-short", Some(t)) => format!(
            "too little data: {} mark-compacts over {:.1} s cannot show a trend",
            t.leak.mark_compacts,
            t.leak.span_ms / 1000.0
        ),
        _ if r.snapshot.is_some() => {
            "too little data: one snapshot and no timeline cannot tell a leak from a large cache".into()
        }
        _ => "too little data".into(),
    }
}

fn sign(x: f64) -> &'static str {
    if x < 0.0 {
        "−"
    } else {
        "+"
    }
}
