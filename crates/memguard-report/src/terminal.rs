//! The default output: a [`Report`] as plain text for a terminal — what took
//! the space, what holds it, what grew, how the heap evolved, who allocated.
//!
//! Every string in a report comes from a bundle, and a bundle is untrusted
//! input (heap strings, argv, file names…): each one goes through
//! `memguard_core::printable` ([`name`] for names, [`text`] for sentences)
//! before it is laid out, so no control character reaches the terminal and
//! no field breaks its line. `render` checks the whole page once more.

use std::fmt::Write as _;
use std::path::Path;

use memguard_core::printable::{self, name, printable};
use serde_json::Value;

use crate::report::{
    AccumulationPoint, AllocationSite, CodeLocation, Verdict,
    AllocationSummary, Lifetime, Marker, PathStep, Report, RetainerPath, SnapshotDiff, SnapshotSummary, TimelineSummary,
};

/// Retainer paths longer than this show their first step, `…` and the rest.
const PATH_STEPS: usize = 6;
const MARKERS_SHOWN: usize = 8;
const STACK_FRAMES: usize = 3;

/// Bytes in decimal units, as `ls -h --si` and DevTools show them: `950 B`, `27.5 kB`, `8.4 MB`.
pub fn human(bytes: f64) -> String {
    let abs = bytes.abs();
    let (value, unit) = match abs {
        a if a < 1e3 => return format!("{bytes:.0} B"),
        a if a < 1e6 => (bytes / 1e3, "kB"),
        a if a < 1e9 => (bytes / 1e6, "MB"),
        _ => (bytes / 1e9, "GB"),
    };
    format!("{value:.1} {unit}")
}

fn signed_human(bytes: f64) -> String {
    if bytes >= 0.0 {
        format!("+{}", human(bytes))
    } else {
        format!("−{}", human(-bytes))
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn seconds(ms: f64) -> String {
    format!("{:.1} s", ms / 1000.0)
}

/// Longest sentence from a bundle shown (an error, a skip reason): longer
/// than any memguard writes (paths included), short enough for a screen.
const TEXT_LIMIT: usize = 1000;

/// A sentence from a bundle, made printable (see the module comment).
fn text(s: &str) -> std::borrow::Cow<'_, str> {
    printable(s, TEXT_LIMIT)
}

/// The file name of `path`, made printable.
fn base_name(path: &str) -> std::borrow::Cow<'_, str> {
    name(Path::new(path).file_name().and_then(|n| n.to_str()).unwrap_or(path))
}

pub fn render(report: &Report) -> String {
    let out = render_fields(report);
    // Every field was made printable on its way in; this is the net under
    // that: a field a future change forgets is escaped still (and caught by
    // the tests, which run with debug assertions).
    let lines: Vec<_> = out.split('\n').map(|line| printable(line, printable::UNLIMITED)).collect();
    debug_assert!(lines.iter().all(|l| matches!(l, std::borrow::Cow::Borrowed(_))), "an unescaped field in\n{out}");
    lines.join("\n")
}

fn render_fields(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "memguard report: {}", text(&report.input));
    if let Some(verdict) = &report.verdict {
        verdict_section(&mut out, verdict);
    }
    if let Some(bundle) = &report.bundle {
        bundle_section(&mut out, bundle);
    }
    if let Some(snapshot) = &report.snapshot {
        snapshot_section(&mut out, snapshot);
    }
    if let Some(diff) = &report.diff {
        diff_section(&mut out, diff);
    }
    if let Some(timeline) = &report.timeline {
        timeline_section(&mut out, timeline);
    }
    // A process that lived less than one history period has none: the
    // timeline above is its whole life.
    if let Some(lifetime) = report.lifetime.as_ref().filter(|l| l.periods > 0) {
        lifetime_section(&mut out, lifetime);
    }
    if let Some(allocations) = &report.allocations {
        allocations_section(&mut out, allocations);
    }
    out
}

// ---------------------------------------------------------------- verdict

/// `createSession (server.ts:20)`: the original position when a source map gave one.
pub fn location_text(function: &str, url: &str, line: u32, original: Option<&crate::report::OriginalLocation>) -> String {
    let function = if function.is_empty() { "(anonymous)".into() } else { name(function) };
    match original {
        Some(o) => format!("{function} ({}:{})", base_name(&o.source), o.line),
        None if url.is_empty() => format!("{function} (line {line})"),
        None => format!("{function} ({}:{line})", base_name(url)),
    }
}

fn code_text(l: &CodeLocation) -> String {
    location_text(&l.function, &l.url, l.line, l.original.as_ref())
}

fn site_text(s: &AllocationSite) -> String {
    location_text(&s.function, &s.url, s.line, s.original.as_ref())
}

fn holder_line(p: &crate::report::Holder) -> String {
    let mut h = name(&p.class).into_owned();
    match p.edge.as_deref() {
        Some(e) if e.parse::<u64>().is_ok() => h += &format!(" [{}]", name(e)),
        Some(e) => h += &format!(" '{}'", name(e)),
        None => {}
    }
    h += &format!(" ({} retained)", human(p.retained_size as f64));
    if let Some(l) = &p.location {
        h += &format!(", held in {}", code_text(l));
    }
    h
}

fn verdict_section(out: &mut String, v: &Verdict) {
    let _ = writeln!(out, "\nVerdict: {}", text(&v.headline));
    for (i, s) in v.suspects.iter().enumerate() {
        let objects = if s.objects > 0 { format!("{} objects, ", thousands(s.objects)) } else { String::new() };
        let _ = writeln!(out, "  {}. {}: {objects}{} retained", i + 1, name(&s.class), human(s.retained_size as f64));
        if let Some(h) = &s.holder {
            let _ = writeln!(out, "     held by    {}", holder_line(h));
        }
        if let Some(m) = &s.allocation_site {
            let weak = if m.matched_by == "top-app-site" { " (the largest app site; not tied to the class)" } else { "" };
            let _ = writeln!(out, "     allocated  {}{weak}", site_text(&m.site));
        }
        let g = &s.growth;
        let mut growth = Vec::new();
        if let (Some(o), Some(b)) = (g.objects_added, g.bytes_added) {
            growth.push(format!("+{} objects (+{}) between snapshots", thousands(o), human(b as f64)));
        }
        if let Some(rate) = g.heap_bytes_per_min {
            growth.push(format!("heap +{}/min", human(rate)));
        }
        if !growth.is_empty() {
            let _ = writeln!(out, "     growth     {}", growth.join("; "));
        }
        let _ = writeln!(out, "     evidence   {}", text(&s.evidence));
    }
    if !v.not_growing.is_empty() {
        let label = if v.reason.as_deref() == Some("too-little-data") { "growth unknown" } else { "not growing" };
        let _ = writeln!(out, "  Largest holders, {label}:");
        for p in &v.not_growing {
            let _ = writeln!(out, "    {}: {}", holder_line(&p.holder), accumulated(p));
        }
    }
    out.push('\n');
}

fn accumulated(p: &AccumulationPoint) -> String {
    format!("{} {} ({})", thousands(p.objects), name(&p.class), human(p.retained_size as f64))
}

// ---------------------------------------------------------------- bundle

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn bundle_section(out: &mut String, summary: &Value) {
    let mut process = Vec::new();
    if let Some(pid) = summary.get("pid").and_then(Value::as_u64) {
        process.push(format!("pid {pid}"));
    }
    if let Some(thread) = summary.get("threadId").and_then(Value::as_u64) {
        process.push(if thread == 0 { "main thread".into() } else { format!("worker thread {thread}") });
    }
    if let Some(node) = str_of(summary, "node") {
        process.push(format!("Node {}", name(node)));
    }
    if let Some(started) = str_of(summary, "startedAt") {
        process.push(format!("started {}", name(started)));
    }
    if let Some(script) = summary.get("argv").and_then(|a| a.get(1)).and_then(Value::as_str) {
        process.push(base_name(script).into_owned());
    }
    if !process.is_empty() {
        let _ = writeln!(out, "Process: {}", process.join(", "));
    }
    if let Some(ended) = summary.get("ended") {
        let how = match (str_of(ended, "reason"), ended.get("code"), str_of(ended, "signal")) {
            (_, _, Some(signal)) => format!("signal {}", name(signal)),
            (Some(reason), Some(code), _) => format!("{}, code {}", name(reason), name(&code.to_string())),
            (Some(reason), _, _) => name(reason).into_owned(),
            _ => text(&ended.to_string()).into_owned(),
        };
        let _ = writeln!(out, "Ended: {how}");
    } else {
        let _ = writeln!(out, "Ended: no end recorded (the process crashed or was killed)");
    }
    for capture in summary.get("captures").and_then(Value::as_array).into_iter().flatten() {
        capture_line(out, capture);
    }
}

fn capture_line(out: &mut String, c: &Value) {
    let seq = c.get("seq").and_then(Value::as_u64).unwrap_or(0);
    let trigger = name(str_of(c, "trigger").unwrap_or("?"));
    let time = name(str_of(c, "time").unwrap_or("?"));
    let outcome = name(str_of(c, "outcome").unwrap_or("?"));
    let heap = c.get("heap");
    let used = heap.and_then(|h| h.get("usedHeapSize")).and_then(Value::as_f64);
    let limit = heap.and_then(|h| h.get("heapSizeLimit")).and_then(Value::as_f64);
    let heap = match (used, limit) {
        (Some(u), Some(l)) => format!(", heap {} used of {} limit", human(u), human(l)),
        _ => String::new(),
    };
    let _ = write!(out, "Capture {seq}: {trigger} at {time}{heap}; {outcome}");
    if let Some(reason) = c.get("snapshotSkipped").and_then(|s| str_of(s, "reason")) {
        let _ = write!(out, " (snapshot skipped: {})", text(reason));
    }
    if let Some(error) = str_of(c, "error") {
        let _ = write!(out, " ({})", text(error));
    }
    out.push('\n');
    if let Some(stack) = c.get("stack").and_then(Value::as_array).filter(|s| !s.is_empty()) {
        let frames: Vec<String> = stack
            .iter()
            .take(STACK_FRAMES)
            .map(|f| {
                let function = name(str_of(f, "functionName").filter(|n| !n.is_empty()).unwrap_or("(anonymous)"));
                let line = f.get("line").and_then(Value::as_u64).unwrap_or(0);
                match f.get("original") {
                    Some(o) => format!(
                        "{function} ({}:{})",
                        base_name(str_of(o, "source").unwrap_or("")),
                        o.get("line").and_then(Value::as_u64).unwrap_or(0)
                    ),
                    None => format!("{function} ({}:{line})", base_name(str_of(f, "url").unwrap_or(""))),
                }
            })
            .collect();
        let _ = writeln!(out, "  JS stack when it fired: {}", frames.join(" ← "));
    }
}

// ---------------------------------------------------------------- snapshot

fn snapshot_section(out: &mut String, s: &SnapshotSummary) {
    let _ = writeln!(
        out,
        "\nHeap snapshot {}: {} objects, {} edges, {} in total",
        base_name(&s.file),
        thousands(s.node_count),
        thousands(s.edge_count),
        human(s.total_size as f64)
    );
    if let Some(e) = &s.earlier {
        let end = match e.heap_used_at_end {
            Some(end) => format!(", {} at the end", human(end as f64)),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  taken earlier ({}{}): heap {} then{end}; it shows what had accumulated by then",
            name(&e.trigger),
            e.time.as_deref().map(|t| format!(" at {}", name(t))).unwrap_or_default(),
            human(e.heap_used_then as f64),
        );
    }
    if !s.classes.is_empty() {
        let names: Vec<_> = s.classes.iter().map(|c| name(&c.name)).collect();
        let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).clamp(5, 40);
        let _ = writeln!(out, "Top classes by retained size:");
        let _ = writeln!(out, "  {:<width$}  {:>11}  {:>10}  {:>10}", "class", "objects", "shallow", "retained");
        for (c, class) in s.classes.iter().zip(&names) {
            let _ = writeln!(
                out,
                "  {:<width$}  {:>11}  {:>10}  {:>10}",
                clip(class, width),
                thousands(c.count),
                human(c.shallow_size as f64),
                human(c.retained_size as f64)
            );
        }
    }
    if !s.retainer_paths.is_empty() {
        let _ = writeln!(out, "What retains them:");
        for p in &s.retainer_paths {
            let objects = if p.objects == 1 { "object" } else { "objects" };
            let _ = writeln!(out, "  {}: {} {objects}, {}", name(&p.class), thousands(p.objects), human(p.retained_size as f64));
            let _ = writeln!(out, "    {}", path_text(&p.steps));
        }
    }
}

fn clip(name: &str, width: usize) -> String {
    if name.chars().count() <= width {
        return name.to_string();
    }
    let mut s: String = name.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// `(GC roots) → … → Map 'cache' → Session`: each node by class, with the
/// name of the edge that reached it when that name says something (a
/// property, a variable, an index); internal plumbing edges stay silent.
pub fn path_text(steps: &[PathStep]) -> String {
    let labels: Vec<String> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let last = i + 1 == steps.len();
            let node = name(&step.node);
            match (step.edge_type.as_deref(), step.edge.as_deref()) {
                (Some("element"), Some(index)) if !last => format!("{node} [{}]", name(index.trim_matches(['[', ']']))),
                (Some("property" | "context" | "shortcut"), Some(edge)) if !edge.is_empty() => {
                    format!("{node} '{}'", name(edge))
                }
                _ => node.into_owned(),
            }
        })
        .collect();
    if labels.len() <= PATH_STEPS {
        return labels.join(" → ");
    }
    let tail = &labels[labels.len() - (PATH_STEPS - 1)..];
    format!("{} → … → {}", labels[0], tail.join(" → "))
}

// ---------------------------------------------------------------- diff

fn diff_section(out: &mut String, d: &SnapshotDiff) {
    let _ = writeln!(out, "\nGrowth from {} to {} (classes by retained-size change):", base_name(&d.before), base_name(&d.after));
    let changed: Vec<_> = d.classes.iter().filter(|c| c.retained_delta != 0 || c.count_before != c.count_after).collect();
    if changed.is_empty() {
        let _ = writeln!(out, "  no class changed");
        return;
    }
    let names: Vec<_> = changed.iter().map(|c| name(&c.name)).collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).clamp(5, 40);
    let _ = writeln!(out, "  {:<width$}  {:>23}  {:>19}  {:>11}", "class", "objects before → after", "+added / −removed", "retained Δ");
    for (c, class) in changed.into_iter().zip(&names) {
        let counts = format!("{} → {}", thousands(c.count_before), thousands(c.count_after));
        let churn = format!("+{} / −{}", thousands(c.added), thousands(c.removed));
        let _ = writeln!(
            out,
            "  {:<width$}  {:>23}  {:>19}  {:>11}",
            clip(class, width),
            counts,
            churn,
            signed_human(c.retained_delta as f64)
        );
        if let Some(RetainerPath { steps, .. }) = &c.retainer_path {
            let _ = writeln!(out, "    held by {}", path_text(steps));
        }
    }
}

// ---------------------------------------------------------------- timeline

/// One line: the whole life, from the never-rotated history.
fn lifetime_section(out: &mut String, l: &Lifetime) {
    let _ = write!(out, "\nLifetime: {} in {} period(s)", seconds(l.span_ms), thousands(l.periods));
    if let Some([lo, hi, last]) = l.after_mark_compact {
        let _ = write!(out, "; heap after mark-compacts {}–{} (last {})", human(lo as f64), human(hi as f64), human(last as f64));
    }
    if let Some(limit) = l.heap_limit {
        let _ = write!(out, " of a {} limit", human(limit as f64));
    }
    if let Some(g) = &l.growth {
        let sign = if g.bytes_per_day >= 0.0 { "+" } else { "-" };
        let _ = write!(out, ", {} ({sign}{}/day)", g.state, human(g.bytes_per_day.abs()));
    }
    if let Some(rss) = l.rss_max {
        let _ = write!(out, "; RSS up to {}", human(rss as f64));
    }
    let (count, ms) = l.gc.iter().fold((0, 0.0), |(c, m), g| (c + g.count, m + g.total_ms));
    let _ = writeln!(out, "; {} GCs, {:.0} ms paused{}", thousands(count), ms, if l.truncated { " (cut off)" } else { "" });
}

fn timeline_section(out: &mut String, t: &TimelineSummary) {
    let limit = t.samples.last().map(|s| s.heap_limit).filter(|&l| l > 0);
    let _ = write!(out, "\nTimeline: heap used ");
    match t.heap_used_start {
        Some(start) => {
            let _ = write!(out, "{} at start, ", human(start as f64));
        }
        None => out.push_str("(no samples), "),
    }
    let _ = write!(out, "{} at peak", human(t.heap_used_peak as f64));
    if let Some(limit) = limit {
        let _ = write!(out, " (V8 heap limit {})", human(limit as f64));
    }
    let _ = write!(out, "; {} recorded", seconds(t.duration_ms));
    if let Some(start) = &t.start {
        let _ = write!(out, " from {}", name(start));
    }
    out.push('\n');
    if t.rotated_segments > 0 {
        let _ = writeln!(
            out,
            "  Rotated: the first {} segment(s) were removed to stay under MEMGUARD_TIMELINE_MAX; recorded from t={} ({} segment(s) kept)",
            thousands(t.rotated_segments),
            seconds(t.recorded_from_ms),
            t.segments.len()
        );
    }

    if !t.gc.is_empty() {
        let mut kinds: Vec<_> = t.gc.iter().collect();
        kinds.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
        let kinds: Vec<String> = kinds
            .iter()
            .map(|g| format!("{} {} ({:.0} ms, longest {:.1} ms)", thousands(g.count), name(&g.kind), g.total_ms, g.max_ms))
            .collect();
        let _ = writeln!(out, "  GCs: {}", kinds.join(", "));
    }
    if !t.markers.is_empty() {
        let _ = writeln!(out, "  Markers:");
        for m in t.markers.iter().take(MARKERS_SHOWN) {
            let _ = writeln!(out, "    {:>8}  {}", seconds(m.t), marker_text(m));
        }
        if t.markers.len() > MARKERS_SHOWN {
            let _ = writeln!(out, "    … and {} more (--json has them all)", t.markers.len() - MARKERS_SHOWN);
        }
    }
    let leak = &t.leak;
    let verdict = match leak.verdict.as_str() {
        "growing" => format!(
            "growing: heap after mark-compacts rose {} over {} ({}/min; Theil–Sen over {} mark-compacts, {:.0} % of pairs rising)",
            human(leak.growth_bytes),
            seconds(leak.span_ms),
            human(leak.slope_bytes_per_min),
            leak.mark_compacts,
            leak.concordance * 100.0
        ),
        "stable" => format!(
            "stable: heap after mark-compacts did not grow clearly ({}/min over {} mark-compacts, {})",
            signed_human(leak.slope_bytes_per_min),
            leak.mark_compacts,
            seconds(leak.span_ms)
        ),
        _ => format!(
            "too short to tell ({} mark-compacts over {}; needs 5 over 2 s)",
            leak.mark_compacts,
            seconds(leak.span_ms)
        ),
    };
    let _ = writeln!(out, "  Leak verdict: {verdict}");
    if t.dropped > 0 {
        let _ = writeln!(out, "  {} records were dropped while recording (the recorder's queue was full)", thousands(t.dropped));
    }
    if t.truncated {
        let _ = writeln!(out, "  The file was cut off (by the crash?): read up to {}", seconds(t.duration_ms));
    }
}

/// `snapshot-start (seq 1, trigger near-heap-limit)`: the name and the
/// record's short scalar fields.
pub fn marker_text(m: &Marker) -> String {
    let fields: Vec<String> = m
        .detail
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match v {
            Value::String(s) if s.len() <= 60 => Some(format!("{} {}", name(k), name(s))),
            Value::Number(n) => Some(format!("{} {}", name(k), number_text(k, n))),
            Value::Bool(b) => Some(format!("{} {b}", name(k))),
            _ => None,
        })
        .collect();
    if fields.is_empty() {
        name(&m.name).into_owned()
    } else {
        format!("{} ({})", name(&m.name), fields.join(", "))
    }
}

/// Marker numbers read as what they are: `growthBytes 46.0 MB`,
/// `bytesPerMinute 755.3 MB/min`, `spanMs 3652 ms`, `concordance 0.995`.
fn number_text(key: &str, n: &serde_json::Number) -> String {
    let Some(x) = n.as_f64() else { return n.to_string() };
    let lower = key.to_ascii_lowercase();
    if lower.contains("bytes") {
        let per_min = if lower.contains("perminute") { "/min" } else { "" };
        format!("{}{per_min}", human(x))
    } else if key.ends_with("Ms") || key == "ms" {
        format!("{x:.0} ms")
    } else if n.is_f64() {
        let s = format!("{x:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        n.to_string()
    }
}

// ---------------------------------------------------------------- allocations

fn allocations_section(out: &mut String, a: &AllocationSummary) {
    let _ = writeln!(
        out,
        "\nWhere the live memory was allocated (sampling heap profile {}, {} sampled):",
        base_name(&a.file),
        human(a.total_bytes as f64)
    );
    if a.sites.is_empty() {
        let _ = writeln!(out, "  no samples");
        return;
    }
    let places: Vec<String> = a
        .sites
        .iter()
        .map(|s| match &s.original {
            Some(o) => format!("{}:{}", base_name(&o.source), o.line),
            None if s.url.is_empty() => "(native)".to_string(),
            None => format!("{}:{}", base_name(&s.url), s.line),
        })
        .collect();
    let functions: Vec<_> = a.sites.iter().map(|s| name(&s.function)).collect();
    let fw = functions.iter().map(|f| f.chars().count()).max().unwrap_or(0).clamp(8, 40);
    let pw = places.iter().map(|p| p.chars().count()).max().unwrap_or(0).min(50);
    for ((s, function), place) in a.sites.iter().zip(&functions).zip(&places) {
        let _ = writeln!(out, "  {:<fw$}  {:<pw$}  {:>10}", clip(function, fw), place, human(s.bytes as f64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::*;
    use serde_json::json;

    fn step(node: &str, id: u64, edge: Option<(&str, &str)>) -> PathStep {
        PathStep {
            node: node.into(),
            id,
            edge: edge.map(|(_, name)| name.to_string()),
            edge_type: edge.map(|(ty, _)| ty.to_string()),
            ..PathStep::default()
        }
    }

    /// A hand-built snapshot summary, as the engine will produce it.
    pub(crate) fn sample_report() -> Report {
        let steps = vec![
            step("(GC roots)", 1, None),
            step("(Global handles)", 3, Some(("element", "2"))),
            step("system / Context", 5, Some(("internal", "1"))),
            step("Map", 7, Some(("context", "sessions"))),
            step("(object elements)", 9, Some(("internal", "table"))),
            step("Array", 11, Some(("internal", "4"))),
            step("UserSession", 13, Some(("element", "17"))),
        ];
        let path = RetainerPath { class: "UserSession".into(), objects: 45_352, retained_size: 43_100_000, steps };
        let holder = Holder {
            class: "Map".into(),
            edge: Some("sessions".into()),
            id: 7,
            retained_size: 44_000_000,
            location: Some(CodeLocation { function: "handle".into(), url: "/srv/leaky-server.js".into(), line: 12, column: 3, ..CodeLocation::default() }),
        };
        let site = AllocationSite {
            function: "createSession".into(),
            url: "/srv/leaky-server.js".into(),
            line: 20,
            column: 1,
            bytes: 30_000_000,
            ..AllocationSite::default()
        };
        let suspect = Suspect {
            class: "UserSession".into(),
            objects: 45_352,
            retained_size: 43_100_000,
            holder: Some(holder.clone()),
            allocation_site: Some(SiteMatch { site, matched_by: "constructor-caller".into() }),
            growth: Growth { objects_added: Some(35_352), bytes_added: Some(34_100_000), holder_before: Some(9_000_000), heap_bytes_per_min: Some(270e6) },
            evidence: "timeline: growing; snapshot: Map 'sessions' accumulates 45,352 UserSession".into(),
            source: "snapshot".into(),
        };
        let cache = AccumulationPoint { class: "Product".into(), objects: 10, retained_size: 5_000_000, holder, ..AccumulationPoint::default() };
        Report {
            schema: SCHEMA,
            input: "demo-bundles/x".into(),
            verdict: Some(Verdict {
                status: "leak-suspect".into(),
                reason: None,
                headline: "Leak suspect: 45,352 UserSession (43.1 MB) held by Map 'sessions'".into(),
                suspects: vec![suspect],
                not_growing: vec![cache],
                heap_trend: None,
            }),
            bundle: Some(json!({
                "pid": 4242, "threadId": 0, "node": "v20.20.2", "startedAt": "2026-11-25T12:57:05Z",
                "argv": ["/usr/bin/node", "/srv/leaky-server.js"],
                "captures": [{
                    "seq": 1, "trigger": "near-heap-limit", "time": "2026-11-25T12:57:16.168Z", "outcome": "written",
                    "heap": {"usedHeapSize": 49_200_000, "heapSizeLimit": 100_700_000},
                    "stack": [{"functionName": "", "url": "/srv/leaky-server.js", "line": 20, "column": 3}]
                }]
            })),
            snapshot: Some(SnapshotSummary {
                file: "demo-bundles/x/heap-1.heapsnapshot.gz".into(),
                node_count: 412_345,
                edge_count: 1_623_456,
                total_size: 51_100_000,
                classes: vec![
                    ClassStat { name: "Map".into(), count: 4, shallow_size: 128, retained_size: 44_000_000 },
                    ClassStat { name: "UserSession".into(), count: 45_352, shallow_size: 2_900_000, retained_size: 43_100_000 },
                ],
                retainer_paths: vec![path.clone()],
                accumulations: vec![],
                reachable_size: 51_000_000,
                timings_ms: vec![("parse".into(), 812.0)],
                earlier: None,
            }),
            diff: Some(SnapshotDiff {
                before: "heap-1.heapsnapshot.gz".into(),
                after: "heap-2.heapsnapshot.gz".into(),
                classes: vec![ClassDelta {
                    name: "UserSession".into(),
                    count_before: 10_000,
                    count_after: 45_352,
                    added: 35_352,
                    removed: 0,
                    retained_before: 9_000_000,
                    retained_after: 43_100_000,
                    retained_delta: 34_100_000,
                    retainer_path: Some(path),
                }],
            }),
            timeline: Some(TimelineSummary {
                file: "timeline.ndjson.gz".into(),
                start: Some("2026-11-25T12:57:05.100Z".into()),
                duration_ms: 11_000.0,
                heap_used_start: Some(3_700_000),
                heap_used_peak: 50_500_000,
                samples: vec![HeapSample {
                    t: 1000.0,
                    heap_used: 3_700_000,
                    heap_limit: 100_700_000,
                    rss: Some(60_000_000),
                    spaces: vec![("old_space".into(), 3_000_000)],
                }],
                gc: vec![
                    GcKindStat { kind: "mark-compact".into(), count: 330, total_ms: 2202.0, max_ms: 35.0 },
                    GcKindStat { kind: "scavenge".into(), count: 159, total_ms: 273.0, max_ms: 4.0 },
                ],
                pauses: vec![],
                markers: vec![Marker {
                    t: 10_200.0,
                    name: "snapshot-start".into(),
                    detail: json!({"seq": 1, "trigger": "near-heap-limit"}),
                }],
                leak: LeakVerdict {
                    verdict: "growing".into(),
                    slope_bytes_per_min: 270e6,
                    mark_compacts: 330,
                    span_ms: 10_000.0,
                    growth_bytes: 45e6,
                    concordance: 0.97,
                },
                dropped: 0,
                truncated: true,
                segments: vec!["timeline-3.ndjson.gz".into(), "timeline.ndjson.gz".into()],
                rotated_segments: 2,
                recorded_from_ms: 4_000.0,
            }),
            lifetime: Some(Lifetime {
                file: "history.ndjson.gz".into(),
                start: None,
                periods: 3,
                span_ms: 180_000.0,
                after_mark_compact: Some([30_000_000, 90_000_000, 80_000_000]),
                rss_max: Some(200_000_000),
                heap_limit: Some(100_700_000),
                gc: vec![GcKindStat { kind: "scavenge".into(), count: 1500, total_ms: 700.4, max_ms: 0.0 }],
                growth: Some(LifetimeGrowth { bytes_per_day: 40e6, concordance: 0.93, state: "growing".into() }),
                curve: vec![],
                truncated: false,
            }),
            allocations: Some(AllocationSummary {
                file: "allocations-1.heapprofile".into(),
                total_bytes: 37_000_000,
                sites: vec![AllocationSite {
                    function: "(anonymous)".into(),
                    url: "/srv/leaky-server.js".into(),
                    line: 20,
                    column: 34,
                    bytes: 30_900_000,
                    ..AllocationSite::default()
                }],
                nodes: vec![],
            }),
        }
    }

    #[test]
    fn sizes_and_counts_read_well() {
        assert_eq!(human(950.0), "950 B");
        assert_eq!(human(27_500.0), "27.5 kB");
        assert_eq!(human(8_400_000.0), "8.4 MB");
        assert_eq!(human(2.5e9), "2.5 GB");
        assert_eq!(signed_human(-1_500_000.0), "−1.5 MB");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(100), "100");
    }

    #[test]
    fn retainer_paths_are_compact() {
        let r = sample_report();
        let steps = &r.snapshot.as_ref().unwrap().retainer_paths[0].steps;
        assert_eq!(
            path_text(steps),
            "(GC roots) → … → system / Context → Map 'sessions' → (object elements) → Array → UserSession"
        );
        assert_eq!(path_text(&steps[3..]), "Map 'sessions' → (object elements) → Array → UserSession");
        assert_eq!(path_text(&steps[..2]), "(GC roots) → (Global handles)");
        let with_index = [step("Array", 1, None), step("Foo", 2, Some(("element", "3"))), step("Bar", 3, None)];
        assert_eq!(path_text(&with_index), "Array → Foo [3] → Bar");
    }

    #[test]
    fn every_section_renders() {
        let text = render(&sample_report());
        assert!(text.starts_with("memguard report: demo-bundles/x\n\nVerdict: Leak suspect: "), "the verdict first:\n{text}");
        for expected in [
            "memguard report: demo-bundles/x",
            "  1. UserSession: 45,352 objects, 43.1 MB retained",
            "     held by    Map 'sessions' (44.0 MB retained), held in handle (leaky-server.js:12)",
            "     allocated  createSession (leaky-server.js:20)",
            "     growth     +35,352 objects (+34.1 MB) between snapshots; heap +270.0 MB/min",
            "  Largest holders, not growing:\n    Map 'sessions' (44.0 MB retained), held in handle (leaky-server.js:12): 10 Product (5.0 MB)",
            "Process: pid 4242, main thread, Node v20.20.2, started 2026-11-25T12:57:05Z, leaky-server.js",
            "Ended: no end recorded",
            "Capture 1: near-heap-limit at 2026-11-25T12:57:16.168Z, heap 49.2 MB used of 100.7 MB limit; written",
            "JS stack when it fired: (anonymous) (leaky-server.js:20)",
            "Heap snapshot heap-1.heapsnapshot.gz: 412,345 objects, 1,623,456 edges, 51.1 MB in total",
            "Top classes by retained size:",
            "  UserSession       45,352      2.9 MB     43.1 MB",
            "  UserSession: 45,352 objects, 43.1 MB\n    (GC roots) → … → ",
            "Growth from heap-1.heapsnapshot.gz to heap-2.heapsnapshot.gz",
            "10,000 → 45,352",
            "+35,352 / −0",
            "+34.1 MB",
            "Timeline: heap used 3.7 MB at start, 50.5 MB at peak (V8 heap limit 100.7 MB); 11.0 s recorded",
            "GCs: 330 mark-compact (2202 ms, longest 35.0 ms), 159 scavenge (273 ms, longest 4.0 ms)",
            "Lifetime: 180.0 s in 3 period(s); heap after mark-compacts 30.0 MB–90.0 MB (last 80.0 MB) of a 100.7 MB limit, growing (+40.0 MB/day); RSS up to 200.0 MB; 1,500 GCs, 700 ms paused",
            "  Rotated: the first 2 segment(s) were removed to stay under MEMGUARD_TIMELINE_MAX; recorded from t=4.0 s (2 segment(s) kept)",
            "    10.2 s  snapshot-start (seq 1, trigger near-heap-limit)",
            "Leak verdict: growing: heap after mark-compacts rose 45.0 MB over 10.0 s (270.0 MB/min; Theil–Sen over 330 mark-compacts, 97 % of pairs rising)",
            "The file was cut off",
            "Where the live memory was allocated (sampling heap profile allocations-1.heapprofile, 37.0 MB sampled):",
            "  (anonymous)  leaky-server.js:20     30.9 MB",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn marker_numbers_read_as_what_they_are() {
        let m = Marker {
            t: 0.0,
            name: "leak".into(),
            detail: json!({"bytesPerMinute": 755269783.75, "growthBytes": 45975849, "spanMs": 3652.4, "concordance": 0.99473, "markCompacts": 20}),
        };
        let text = marker_text(&m);
        for part in ["bytesPerMinute 755.3 MB/min", "growthBytes 46.0 MB", "spanMs 3652 ms", "concordance 0.995", "markCompacts 20"] {
            assert!(text.contains(part), "{part} in {text}");
        }
    }

    #[test]
    fn unchanged_classes_are_left_out_of_the_diff() {
        let mut d = sample_report().diff.unwrap();
        d.classes.push(ClassDelta { name: "Same".into(), count_before: 3, count_after: 3, ..ClassDelta::default() });
        let mut out = String::new();
        diff_section(&mut out, &d);
        assert!(!out.contains("Same") && out.contains("UserSession"), "{out}");
        d.classes.retain(|c| c.name == "Same");
        let mut out = String::new();
        diff_section(&mut out, &d);
        assert!(out.contains("no class changed"), "{out}");
    }

    /// Every string of `r` (summary.json included) replaced by `evil`.
    fn poison(r: &mut Report, evil: &str) {
        fn poison_json(v: &mut serde_json::Value, evil: &str) {
            match v {
                serde_json::Value::String(s) => *s = evil.into(),
                serde_json::Value::Array(a) => a.iter_mut().for_each(|v| poison_json(v, evil)),
                serde_json::Value::Object(o) => {
                    let old = std::mem::take(o);
                    for (i, (k, mut v)) in old.into_iter().enumerate() {
                        poison_json(&mut v, evil);
                        // Keys matter too (marker details), but the shape must stay.
                        let keep = ["captures", "stack", "heap", "usedHeapSize", "heapSizeLimit", "argv", "ended"];
                        let key = if keep.contains(&k.as_str()) { k } else { format!("{evil}{i}") };
                        o.insert(key, v);
                    }
                }
                _ => {}
            }
        }
        r.input = evil.into();
        let v = r.verdict.as_mut().unwrap();
        v.headline = evil.into();
        let poison_holder = |h: &mut Holder| {
            (h.class, h.edge) = (evil.into(), Some(evil.into()));
            if let Some(l) = &mut h.location {
                (l.function, l.url) = (evil.into(), evil.into());
            }
        };
        for s in &mut v.suspects {
            (s.class, s.evidence) = (evil.into(), evil.into());
            s.holder.iter_mut().for_each(poison_holder);
            if let Some(m) = &mut s.allocation_site {
                (m.site.function, m.site.url) = (evil.into(), evil.into());
                m.site.original = Some(OriginalLocation { source: evil.into(), line: 1, ..OriginalLocation::default() });
            }
        }
        for p in &mut v.not_growing {
            p.class = evil.into();
            poison_holder(&mut p.holder);
        }
        if let Some(b) = &mut r.bundle {
            poison_json(b, evil);
            b["ended"] = json!({"reason": evil, "code": evil});
        }
        let s = r.snapshot.as_mut().unwrap();
        s.file = evil.into();
        for c in &mut s.classes {
            c.name = evil.into();
        }
        let poison_path = |p: &mut RetainerPath| {
            p.class = evil.into();
            for step in &mut p.steps {
                step.node = evil.into();
                step.name = evil.into();
                step.edge = Some(evil.into());
            }
        };
        s.retainer_paths.iter_mut().for_each(poison_path);
        let d = r.diff.as_mut().unwrap();
        (d.before, d.after) = (evil.into(), evil.into());
        for c in &mut d.classes {
            c.name = evil.into();
            c.retainer_path.iter_mut().for_each(poison_path);
        }
        let t = r.timeline.as_mut().unwrap();
        t.start = Some(evil.into());
        t.gc.iter_mut().for_each(|g| g.kind = evil.into());
        for m in &mut t.markers {
            m.name = evil.into();
            poison_json(&mut m.detail, evil);
        }
        let a = r.allocations.as_mut().unwrap();
        a.file = evil.into();
        for site in &mut a.sites {
            (site.function, site.url) = (evil.into(), evil.into());
        }
    }

    #[test]
    fn no_control_character_from_a_bundle_reaches_the_terminal() {
        let lines = render(&sample_report()).lines().count();
        for evil in ["\x1b]0;PWNED\x07\x1b[2J\x1b[31mEVIL", "a\nmemguard report: forged\r\tline\u{9b}31m\u{85}\0\x7f"] {
            let mut r = sample_report();
            poison(&mut r, evil);
            let text = render(&r);
            let raw: Vec<char> =
                text.chars().filter(|&c| c != '\n' && matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')).collect();
            assert!(raw.is_empty(), "raw {raw:?} in\n{text}");
            assert!(text.contains("\\x1b") || text.contains("\\x0a"), "{text}");
            assert_eq!(text.lines().count(), lines, "every field stays on its line:\n{text}");
        }
    }

    #[test]
    fn an_earlier_snapshot_says_so() {
        let mut r = sample_report();
        assert!(!render(&r).contains("taken earlier"));
        r.snapshot.as_mut().unwrap().earlier = Some(EarlierSnapshot {
            trigger: "last-affordable".into(),
            time: Some("2026-12-02T02:36:52.080Z\x1b[2J".into()),
            heap_used_then: 19_600_000,
            heap_used_at_end: Some(280_200_000),
        });
        let text = render(&r);
        let line = text.lines().find(|l| l.contains("taken earlier")).unwrap();
        assert_eq!(
            line,
            "  taken earlier (last-affordable at 2026-12-02T02:36:52.080Z\\x1b[2J): heap 19.6 MB then, 280.2 MB at the end; it shows what had accumulated by then"
        );
    }

    #[test]
    fn a_huge_name_is_cut() {
        let mut r = sample_report();
        r.snapshot.as_mut().unwrap().retainer_paths[0].class = "K".repeat(1_000_000);
        let text = render(&r);
        assert!(text.contains(&format!("{}…(+999800 chars)", "K".repeat(200))), "{}", &text[..2000]);
        assert!(text.len() < 20_000);
    }

    #[test]
    fn absent_sections_are_left_out() {
        let report = Report { schema: SCHEMA, input: "x.heapsnapshot".into(), ..Report::default() };
        assert_eq!(render(&report), "memguard report: x.heapsnapshot\n");
        let mut report = sample_report();
        report.verdict = None;
        assert!(render(&report).starts_with("memguard report: demo-bundles/x\nProcess: "));
    }
}
