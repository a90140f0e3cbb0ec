//! The report: the one structure `--json` prints and the terminal and HTML
//! outputs render. Its JSON form is a stable, documented schema
//! (`"schema": "memguard-report/1"`; README, "Report JSON"): fields may be
//! added, never renamed or removed, within a schema version.
//!
//! Sizes are bytes, times milliseconds. Every section is `null` when its
//! input is absent (a bundle whose snapshot was skipped still has a timeline).

use serde::Serialize;

pub const SCHEMA: &str = "memguard-report/1";

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub schema: &'static str,
    /// What was opened: a bundle directory or a snapshot file.
    pub input: String,
    /// The answer first: leak suspects, or why there is none (`verdict/`).
    pub verdict: Option<Verdict>,
    /// `summary.json` of the bundle, verbatim, when there is one.
    pub bundle: Option<serde_json::Value>,
    /// The newest snapshot of the input (the near-limit one in a crash bundle).
    pub snapshot: Option<SnapshotSummary>,
    /// Oldest vs newest snapshot when the bundle holds two or more (or `--baseline`).
    pub diff: Option<SnapshotDiff>,
    pub timeline: Option<TimelineSummary>,
    /// The lifetime history (`history.ndjson.gz`): the whole life, coarsely.
    pub lifetime: Option<Lifetime>,
    pub allocations: Option<AllocationSummary>,
}

// ---------------------------------------------------------------- verdict

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// `leak-suspect` or `no-leak-suspect`.
    pub status: String,
    /// For `no-leak-suspect`: `flat`, `saturated` or `too-little-data`.
    pub reason: Option<String>,
    /// One sentence: the answer.
    pub headline: String,
    /// At most 3, most important first.
    pub suspects: Vec<Suspect>,
    /// The largest holders that are not suspects (the heap or they did not grow).
    pub not_growing: Vec<AccumulationPoint>,
    /// The timeline's gate: heap after mark-compacts over the recording and its last half.
    pub heap_trend: Option<HeapTrend>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeapTrend {
    /// `growing`, `saturated`, `flat` or `too-short`.
    pub state: String,
    pub bytes_per_min: f64,
    /// The same over the last half of the recording.
    pub recent_bytes_per_min: f64,
    pub recent_concordance: f64,
    pub span_ms: f64,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Suspect {
    /// DevTools class name of the accumulated objects.
    pub class: String,
    pub objects: u64,
    pub retained_size: u64,
    /// What accumulates them; absent when the suspect comes from the allocation profile alone.
    pub holder: Option<Holder>,
    pub allocation_site: Option<SiteMatch>,
    pub growth: Growth,
    /// Which signals agreed, in one line.
    pub evidence: String,
    /// `snapshot` (accumulation point) or `allocation-profile` (no snapshot was written).
    pub source: String,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Growth {
    /// Objects of the class under the holder that are new since the earlier snapshot, and their retained size.
    pub objects_added: Option<u64>,
    pub bytes_added: Option<u64>,
    /// The holder's retained size in the earlier snapshot (same node id).
    pub holder_before: Option<u64>,
    /// Heap growth rate from the timeline (Theil–Sen over mark-compacts).
    pub heap_bytes_per_min: Option<f64>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteMatch {
    pub site: AllocationSite,
    /// `constructor-caller` (the function that ran `new Class`), `constructor`, or
    /// `top-app-site` (the profile's largest site in application code; a weaker match).
    pub matched_by: String,
}

/// An accumulation point of the newest snapshot (Eclipse MAT): where the
/// dominator tree spreads a large retained size over many small objects.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccumulationPoint {
    /// Class of the objects accumulated (the heaviest group; the app's own preferred).
    pub class: String,
    pub objects: u64,
    pub retained_size: u64,
    /// True when the class is a V8 internal (`(closure)`, `system / Context`, …).
    pub internal: bool,
    pub holder: Holder,
    /// Filled when an earlier snapshot of the same process was read.
    pub growth: Option<Growth>,
    /// The class's constructor location (`script id, line, column`, 0-based), when V8 records one.
    #[serde(skip)]
    pub class_location: Option<[u32; 3]>,
    /// The point's node ordinal and the class key, in the snapshot it came from.
    #[serde(skip)]
    pub point: u32,
    #[serde(skip)]
    pub class_key: u32,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// Class of the holder (`Map`, `Array`, `Function`, …).
    pub class: String,
    /// The edge that holds it: variable, property or `[index]` (`sessions`).
    pub edge: Option<String>,
    pub id: u64,
    pub retained_size: u64,
    /// The function whose closure/context, or the class whose instance, holds it.
    pub location: Option<CodeLocation>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeLocation {
    pub function: String,
    /// Script URL; empty when only the script id is known.
    pub url: String,
    pub script_id: i32,
    /// 1-based, as editors show them.
    pub line: u32,
    pub column: u32,
    pub original: Option<OriginalLocation>,
}

/// A generated position mapped through a source map.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OriginalLocation {
    pub source: String,
    /// 1-based.
    pub line: u32,
    pub column: u32,
    pub name: Option<String>,
    /// Where the map was found: `file`, `inline` or `bundle`.
    pub map: String,
}

// ---------------------------------------------------------------- snapshot

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSummary {
    /// Path of the snapshot file as given or found in the bundle.
    pub file: String,
    pub node_count: u64,
    pub edge_count: u64,
    /// Sum of every node's shallow size (DevTools' "Total").
    pub total_size: u64,
    /// Classes ranked by retained size, largest first (at most `--top`).
    pub classes: Vec<ClassStat>,
    /// For the top classes: the retainer path that holds most of their retained size.
    pub retainer_paths: Vec<RetainerPath>,
    /// Accumulation points, largest first (the verdict's candidates).
    pub accumulations: Vec<AccumulationPoint>,
    /// Retained size of the root: the reachable heap.
    pub reachable_size: u64,
    /// Wall time of each phase (parse, dominators, …), for `--verbose` and the benchmark.
    pub timings_ms: Vec<(String, f64)>,
    /// Set when the snapshot was taken before the end on purpose (`earlier`).
    pub earlier: Option<EarlierSnapshot>,
}

/// A snapshot from before the end: the heap then, and the most the timeline
/// saw (the end of a process that died of memory).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EarlierSnapshot {
    /// The capture's trigger (`last-affordable`) and time.
    pub trigger: String,
    pub time: Option<String>,
    pub heap_used_then: u64,
    /// `None` without a timeline, or when it saw no more than then.
    pub heap_used_at_end: Option<u64>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassStat {
    /// DevTools' class name: constructor name for objects, `(closure)`, `(string)`, `(array)`, …
    pub name: String,
    pub count: u64,
    pub shallow_size: u64,
    /// As DevTools' Summary view: retained sizes of the class's objects, not counting an
    /// object dominated by another object of the same class twice.
    pub retained_size: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetainerPath {
    /// The class this path explains.
    pub class: String,
    /// Objects of that class held through this path, and their retained size.
    pub objects: u64,
    pub retained_size: u64,
    /// From the GC roots down to the object holding the class's objects:
    /// `(GC roots) → … → Map 'cache' → Session`.
    pub steps: Vec<PathStep>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathStep {
    /// Class name of the node at this step.
    pub node: String,
    /// Snapshot node id (stable across snapshots of one process).
    pub id: u64,
    /// The node's own name (constructor, function name, string value, …),
    /// at most 120 characters.
    pub name: String,
    /// The edge leading from the previous step to this node: property name, `[index]`,
    /// context variable, … (`None` for the first step).
    pub edge: Option<String>,
    /// Edge type as in the snapshot's meta (`property`, `element`, `context`, `internal`, …).
    pub edge_type: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotDiff {
    pub before: String,
    pub after: String,
    /// Classes ranked by retained-size growth, largest first.
    pub classes: Vec<ClassDelta>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassDelta {
    pub name: String,
    pub count_before: u64,
    pub count_after: u64,
    /// Objects (by node id) present only after / only before.
    pub added: u64,
    pub removed: u64,
    pub retained_before: u64,
    pub retained_after: u64,
    pub retained_delta: i64,
    /// The retainer path holding most of the added objects, in the later snapshot.
    pub retainer_path: Option<RetainerPath>,
}

// ---------------------------------------------------------------- timeline

/// `history.ndjson.gz` summed up: one record per period for the whole life
/// of the thread, never rotated.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifetime {
    pub file: String,
    pub start: Option<String>,
    pub periods: u64,
    /// `t` of the last period's end: how long the history covers.
    pub span_ms: f64,
    /// Heap used after mark-compacts over the whole life: lowest, highest,
    /// and the last period's last.
    pub after_mark_compact: Option<[u64; 3]>,
    pub rss_max: Option<u64>,
    pub heap_limit: Option<u64>,
    /// Per GC kind: count and total pause (`max_ms` is not kept per period: 0).
    pub gc: Vec<GcKindStat>,
    /// The trend of the heap after mark-compacts over the whole life (each
    /// period's last), when there are enough periods to tell.
    pub growth: Option<LifetimeGrowth>,
    /// `(t_ms, heap after the period's last mark-compact)`, one per period
    /// that saw one: the lifetime curve of the HTML page.
    pub curve: Vec<(f64, u64)>,
    pub truncated: bool,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LifetimeGrowth {
    /// Theil–Sen slope, bytes per day.
    pub bytes_per_day: f64,
    /// Share of period pairs that rise (0.5: no direction; ≥ 0.8: steady).
    pub concordance: f64,
    /// `growing` (steady rise of at least 1 MiB and 10 % over the life),
    /// `shrinking`, or `flat`.
    pub state: String,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineSummary {
    pub file: String,
    /// Wall-clock time of the `start` record (ISO 8601) and the span covered.
    pub start: Option<String>,
    pub duration_ms: f64,
    /// Heap used at the first sample, and the most seen (samples and GCs).
    pub heap_used_start: Option<u64>,
    pub heap_used_peak: u64,
    /// Heap used per space over time, from the samples: `t` ms since start.
    pub samples: Vec<HeapSample>,
    /// Per GC kind: count, total and longest pause.
    pub gc: Vec<GcKindStat>,
    /// Every GC pause (t, kind, ms), for the pause chart; at most 10,000, evenly thinned.
    pub pauses: Vec<GcPause>,
    /// Markers: snapshot start/end, triggers, leak, signals, end.
    pub markers: Vec<Marker>,
    /// Heap used after mark-compacts: a robust slope and the verdict (`growing`, `stable`,
    /// `too-short`).
    pub leak: LeakVerdict,
    /// Records lost to a full queue while recording.
    pub dropped: u64,
    /// True when the file ended mid-member (cut off by a crash); what came before is read.
    pub truncated: bool,
    /// The segment files read, oldest first.
    pub segments: Vec<String>,
    /// Segments the recorder's ring removed (`MEMGUARD_TIMELINE_MAX`) before
    /// the first one read, and `t` (ms) where what is left begins.
    pub rotated_segments: u64,
    pub recorded_from_ms: f64,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeapSample {
    pub t: f64,
    pub heap_used: u64,
    pub heap_limit: u64,
    pub rss: Option<u64>,
    /// Space name → used bytes (`old_space`, `new_space`, `code_space`, `large_object_space`, …).
    pub spaces: Vec<(String, u64)>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcKindStat {
    pub kind: String,
    pub count: u64,
    pub total_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcPause {
    pub t: f64,
    pub kind: String,
    pub ms: f64,
    /// Heap used after this GC (KB precision, as recorded).
    pub heap_after: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Marker {
    pub t: f64,
    pub name: String,
    /// The rest of the record, verbatim.
    pub detail: serde_json::Value,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeakVerdict {
    pub verdict: String,
    /// Bytes per minute of heap used after mark-compacts (Theil–Sen slope).
    pub slope_bytes_per_min: f64,
    pub mark_compacts: u64,
    /// Time from the first to the last mark-compact.
    pub span_ms: f64,
    /// The slope times the span: how much the fitted line rose.
    pub growth_bytes: f64,
    /// Share of ordered pairs of mark-compacts whose heap rose (0.5: no trend, 1: every one).
    pub concordance: f64,
}

// ---------------------------------------------------------------- allocations

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationSummary {
    pub file: String,
    pub total_bytes: u64,
    pub sites: Vec<AllocationSite>,
    /// The whole call tree, for matching sites to the verdict's classes.
    #[serde(skip)]
    pub nodes: Vec<memguard_core::heapprofile::ProfileNode>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationSite {
    pub function: String,
    pub url: String,
    /// 1-based, as editors show them.
    pub line: u32,
    pub column: u32,
    /// Live sampled bytes allocated by this function itself (builtins credited to the caller).
    pub bytes: u64,
    pub script_id: i32,
    /// The position in the original source, when a source map was found.
    pub original: Option<OriginalLocation>,
}
