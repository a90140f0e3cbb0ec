//! Metrics from what the flight recorder already sees. The recorder thread
//! hands every event it handles to [`observe`] (GC records, samples, markers):
//! the values live here, behind one mutex, and are read by the metrics
//! endpoint's thread ([`http`]) and by the napi calls behind
//! `memguard.metrics` — never by calling V8 from another thread. Every GC
//! the timeline records is counted, so a histogram's count equals the GC
//! events in `timeline.ndjson.gz`.

pub mod expo;
pub mod http;
pub mod listen;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::manifest::{HeapStats, SpaceStats};
use crate::recorder::{Event, GcRecord, SampleRecord, Shared};

/// prom-client's default `nodejs_gc_duration_seconds` buckets.
pub const GC_BUCKETS: [f64; 6] = [0.001, 0.01, 0.1, 1.0, 2.0, 5.0];
/// prom-client's `kind` label values (the OpenTelemetry `v8js.gc.type`
/// values too), by V8 GC type; `other` only for a type V8 adds later.
pub const GC_KINDS: [&str; 5] = ["major", "minor", "incremental", "weakcb", "other"];
/// Mark-compacts the `memguard_leak_bytes_per_minute` slope looks back over
/// (the leak trend's default window).
const LEAK_POINTS: usize = crate::config::DEFAULT_LEAK_WINDOW as usize;
/// GC events kept for `memguard.metrics.otel()` between two collections
/// (16 bytes each): minutes at thousands of GCs a second. Beyond it events
/// still count in the histograms here but are not handed to OpenTelemetry.
const PENDING_MAX: usize = 200_000;

/// V8 `GCType` bit → index into [`GC_KINDS`]. V8's minor mark-sweep is a
/// young-generation collection like a scavenge: both are `minor`.
pub fn gc_kind(kind: u32) -> usize {
    match kind {
        1 | 2 => 1,
        4 => 0,
        8 => 2,
        16 => 3,
        _ => 4,
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct GcHistogram {
    /// Per bucket of [`GC_BUCKETS`], not cumulative.
    pub buckets: [u64; GC_BUCKETS.len()],
    pub count: u64,
    pub sum_seconds: f64,
}

impl GcHistogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = GC_BUCKETS.iter().position(|&le| seconds <= le) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_seconds += seconds;
    }

    /// Cumulative counts per `le`, as Prometheus wants them (`+Inf` = count).
    pub fn cumulative(&self) -> [u64; GC_BUCKETS.len()] {
        let mut out = self.buckets;
        for i in 1..out.len() {
            out[i] += out[i - 1];
        }
        out
    }
}

/// One guarded isolate's metrics.
pub struct ThreadMetrics {
    pub thread: u64,
    shared: Arc<Shared>,
    pub gc: [GcHistogram; GC_KINDS.len()],
    pub sample: Option<Sample>,
    /// `(t_ms, heap used after)` of the last mark-compacts.
    after_major: VecDeque<(f64, f64)>,
    pub leak_verdicts: u64,
    /// `(trigger, outcome)` → captures.
    pub captures: BTreeMap<(String, String), u64>,
    /// Capture sequence number → trigger, between its start and end markers.
    capture_triggers: BTreeMap<u64, String>,
    /// GC events not yet handed to OpenTelemetry (`None` until it asks).
    pending: Option<Vec<(u8, f64)>>,
    pub pending_lost: u64,
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub t_ms: f64,
    pub heap: HeapStats,
    pub spaces: Vec<SpaceStats>,
    pub array_buffers: u64,
}

impl ThreadMetrics {
    fn new(thread: u64, shared: Arc<Shared>) -> ThreadMetrics {
        ThreadMetrics {
            thread,
            shared,
            gc: Default::default(),
            sample: None,
            after_major: VecDeque::with_capacity(LEAK_POINTS),
            leak_verdicts: 0,
            captures: BTreeMap::new(),
            capture_triggers: BTreeMap::new(),
            pending: None,
            pending_lost: 0,
        }
    }

    fn gc(&mut self, rec: &GcRecord) {
        let kind = gc_kind(rec.kind);
        let seconds = rec.pause_ns as f64 / 1e9;
        self.gc[kind].observe(seconds);
        if kind == 0 {
            if self.after_major.len() == LEAK_POINTS {
                self.after_major.pop_front();
            }
            self.after_major.push_back((rec.t_ms, rec.used_after as f64));
        }
        if let Some(pending) = &mut self.pending {
            if pending.len() < PENDING_MAX {
                pending.push((kind as u8, seconds));
            } else {
                self.pending_lost += 1;
            }
        }
    }

    fn sample(&mut self, rec: &SampleRecord) {
        let SampleRecord { t_ms, heap, spaces, array_buffers } = rec.clone();
        self.sample = Some(Sample { t_ms, heap, spaces, array_buffers });
    }

    fn marker(&mut self, name: &str, detail: &Value) {
        let seq = detail.get("seq").and_then(Value::as_u64).unwrap_or(0);
        match name {
            "leak" => self.leak_verdicts += 1,
            "snapshot-start" => {
                let trigger = detail.get("trigger").and_then(Value::as_str).unwrap_or("unknown");
                self.capture_triggers.insert(seq, trigger.to_string());
            }
            "snapshot-end" => {
                let trigger = self.capture_triggers.remove(&seq).unwrap_or_else(|| "unknown".into());
                let outcome = if detail.get("ok") == Some(&Value::Bool(true)) {
                    "written"
                } else if detail.get("error").is_some() {
                    "failed"
                } else {
                    "skipped"
                };
                *self.captures.entry((trigger, outcome.to_string())).or_default() += 1;
            }
            _ => {}
        }
    }

    /// Theil–Sen slope of heap used after the last mark-compacts, in bytes
    /// per minute; 0 until there are four of them.
    pub fn leak_bytes_per_minute(&self) -> f64 {
        if self.after_major.len() < 4 {
            return 0.0;
        }
        let points: Vec<(f64, f64)> = self.after_major.iter().copied().collect();
        crate::leak::trend(&points).slope_per_ms * 60_000.0
    }

    pub fn timeline_dropped(&self) -> u64 {
        self.shared.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The values as one JSON object (`memguard.metrics.snapshot()`).
    pub fn to_json(&self) -> Value {
        let gc: serde_json::Map<String, Value> = GC_KINDS
            .iter()
            .zip(&self.gc)
            .filter(|(name, h)| **name != "other" || h.count > 0)
            .map(|(name, h)| {
                // `[[le, cumulative count], …]`: an array keeps the order.
                let buckets: Vec<Value> = GC_BUCKETS.iter().zip(h.cumulative()).map(|(le, n)| json!([le, n])).collect();
                (name.to_string(), json!({ "count": h.count, "sumSeconds": h.sum_seconds, "buckets": buckets }))
            })
            .collect();
        let captures: Vec<Value> = self
            .captures
            .iter()
            .map(|((trigger, outcome), n)| json!({ "trigger": trigger, "outcome": outcome, "count": n }))
            .collect();
        let (heap, spaces, sampled_at) = match &self.sample {
            Some(s) => {
                let h = &s.heap;
                let heap = json!({
                    "used": h.used_heap_size,
                    "total": h.total_heap_size,
                    "limit": h.heap_size_limit,
                    "available": h.total_available_size,
                    "physical": h.total_physical_size,
                    "external": h.external_memory,
                    "malloced": h.malloced_memory,
                    "arrayBuffers": s.array_buffers,
                    "nativeContexts": h.number_of_native_contexts,
                    "detachedContexts": h.number_of_detached_contexts,
                });
                let spaces: serde_json::Map<String, Value> = s
                    .spaces
                    .iter()
                    .map(|sp| {
                        let v = json!({
                            "size": sp.space_size,
                            "used": sp.space_used_size,
                            "available": sp.space_available_size,
                            "physical": sp.physical_space_size,
                        });
                        (sp.space_name.clone(), v)
                    })
                    .collect();
                (heap, Value::Object(spaces), json!(s.t_ms))
            }
            None => (Value::Null, Value::Null, Value::Null),
        };
        json!({
            "thread": self.thread,
            "sampledAt": sampled_at,
            "heap": heap,
            "spaces": spaces,
            "gc": gc,
            "leak": {
                "bytesPerMinute": self.leak_bytes_per_minute(),
                "verdicts": self.leak_verdicts,
                "heapUsedAfterMajorGc": self.after_major.back().map(|&(_, used)| used as u64),
            },
            "captures": captures,
            "timelineDropped": self.timeline_dropped(),
        })
    }
}

/// Every guarded isolate's metrics, by timeline id.
pub struct Registry {
    pub threads: BTreeMap<u64, ThreadMetrics>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { threads: BTreeMap::new() });

/// Runs `f` on the registry (briefly: the recorder thread waits meanwhile).
pub fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    f(&mut REGISTRY.lock())
}

fn register(reg: &mut Registry, id: u64, header: &Value, shared: &Arc<Shared>) {
    let thread = header.get("threadId").and_then(Value::as_u64).unwrap_or(0);
    // One series per thread: a thread guarded again replaces its old entry.
    reg.threads.retain(|_, t| t.thread != thread);
    reg.threads.insert(id, ThreadMetrics::new(thread, shared.clone()));
}

/// A timeline being opened, registered from the isolate's thread at once:
/// the recorder sees its `Open` at its next poll (up to 100 ms later), and
/// metrics asked for right after start (OpenTelemetry's first drain) must
/// find the thread.
pub fn opened(id: u64, header: &Value, shared: &Arc<Shared>) {
    register(&mut REGISTRY.lock(), id, header, shared);
}

/// A timeline that could not be opened after all.
pub fn forget(id: u64) {
    REGISTRY.lock().threads.remove(&id);
}

/// Called by the recorder thread for every event it handles, before it
/// writes it: the metrics count exactly what the timeline records.
pub fn observe(event: &Event) {
    let mut reg = REGISTRY.lock();
    match event {
        Event::Open { id, open } => {
            if !reg.threads.contains_key(id) {
                register(&mut reg, *id, &open.header, &open.shared);
            }
        }
        Event::Gc { id, rec } => {
            if let Some(t) = reg.threads.get_mut(id) {
                t.gc(rec);
            }
        }
        Event::Sample { id, rec } => {
            if let Some(t) = reg.threads.get_mut(id) {
                t.sample(rec);
            }
        }
        Event::Marker { id, marker } => {
            if let Some(t) = reg.threads.get_mut(id) {
                t.marker(&marker.name, &marker.detail);
            }
        }
        Event::Close { id, .. } => {
            reg.threads.remove(id);
        }
        Event::Flush { .. } => {}
    }
}

/// The values of thread `thread` as JSON (see [`ThreadMetrics::to_json`]),
/// with `gcEvents: [kind, seconds, …]` — the GC events since the last
/// drain, [`GC_KINDS`] indices — when `drain` is set (OpenTelemetry's
/// histogram wants each one). The first drain starts keeping them.
pub fn thread_json(thread: u64, drain: bool) -> Option<Value> {
    let mut reg = REGISTRY.lock();
    let t = reg.threads.values_mut().find(|t| t.thread == thread)?;
    let mut value = t.to_json();
    if drain {
        let events = t.pending.replace(Vec::new()).unwrap_or_default();
        let flat: Vec<f64> = events.iter().flat_map(|&(k, s)| [k as f64, s]).collect();
        value["gcEvents"] = json!(flat);
        value["gcEventsLost"] = json!(t.pending_lost);
    }
    Some(value)
}

/// `memguard.metrics.snapshot()`: thread `thread`'s values (see
/// [`thread_json`]) and the process's (`process`), read now.
pub fn snapshot(thread: u64, drain: bool) -> Value {
    let mut value = thread_json(thread, drain).unwrap_or_else(|| json!({ "thread": thread }));
    let p = expo::ProcessValues::read(crate::procmem::Cgroup::process());
    value["process"] = json!({
        "residentBytes": p.resident,
        "virtualBytes": p.virtual_size,
        "heapBytes": p.data,
        "cgroup": p.cgroup.map(|m| json!({ "usageBytes": m.usage, "limitBytes": m.limit })),
    });
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::{Marker, Open};

    pub(crate) fn gc(kind: u32, pause_ms: f64, t_ms: f64, used_after: u64) -> GcRecord {
        GcRecord { t_ms, kind, flags: 0, pause_ns: (pause_ms * 1e6) as u64, used_before: used_after + 1000, used_after }
    }

    #[test]
    fn histogram_buckets_are_inclusive_and_cumulative() {
        let mut h = GcHistogram::default();
        for s in [0.0005, 0.001, 0.002, 0.5, 1.5, 7.0] {
            h.observe(s);
        }
        assert_eq!(h.cumulative(), [2, 3, 3, 4, 5, 5]);
        assert_eq!(h.count, 6);
        assert!((h.sum_seconds - 9.0035).abs() < 1e-9);
    }

    #[test]
    fn kinds_follow_prom_client() {
        assert_eq!(GC_KINDS[gc_kind(4)], "major");
        assert_eq!(GC_KINDS[gc_kind(1)], "minor");
        assert_eq!(GC_KINDS[gc_kind(2)], "minor");
        assert_eq!(GC_KINDS[gc_kind(8)], "incremental");
        assert_eq!(GC_KINDS[gc_kind(16)], "weakcb");
        assert_eq!(GC_KINDS[gc_kind(64)], "other");
    }

    #[test]
    fn events_feed_one_thread_each_and_drain_in_batches() {
        let tmp = tempfile::tempdir().unwrap();
        let shared = Arc::new(Shared::default());
        let open = |thread: u64| Open {
            bundle: crate::bundle::Bundle::new(tmp.path(), "b"),
            t0_ms: 0.0,
            header: json!({ "threadId": thread }),
            shared: shared.clone(),
            ring: crate::segments::Ring::new(crate::segments::DEFAULT_BUDGET),
            history: crate::history::Shape::every(std::time::Duration::from_secs(60)),
        };
        let id = 77_001;
        observe(&Event::Open { id, open: Box::new(open(4242)) });
        assert_eq!(thread_json(4242, true).unwrap()["gcEvents"], json!([]));
        for i in 0..30 {
            observe(&Event::Gc { id, rec: gc(4, 2.0, 1000.0 * i as f64, 1_000_000 + 100_000 * i) });
        }
        observe(&Event::Gc { id, rec: gc(1, 0.5, 31_000.0, 0) });
        observe(&Event::Gc { id: 1, rec: gc(1, 0.5, 31_000.0, 0) }); // another timeline: ignored
        let start = Marker { t_ms: 0.0, name: "snapshot-start".into(), detail: json!({"seq": 1, "trigger": "api"}) };
        observe(&Event::Marker { id, marker: Box::new(start) });
        let end = Marker { t_ms: 0.0, name: "snapshot-end".into(), detail: json!({"seq": 1, "ok": false, "skipped": "x"}) };
        observe(&Event::Marker { id, marker: Box::new(end) });

        let v = thread_json(4242, true).unwrap();
        assert_eq!(v["gc"]["major"]["count"], 30);
        assert_eq!(v["gc"]["major"]["buckets"][1], json!([0.01, 30]));
        assert_eq!(v["gc"]["major"]["buckets"][0], json!([0.001, 0]));
        assert_eq!(v["gc"]["minor"]["count"], 1);
        assert!(v["gc"].get("other").is_none());
        // 100 kB per second of growth = 6 MB per minute.
        assert!((v["leak"]["bytesPerMinute"].as_f64().unwrap() - 6e6).abs() < 1.0, "{}", v["leak"]);
        assert_eq!(v["captures"], json!([{"trigger": "api", "outcome": "skipped", "count": 1}]));
        let events = v["gcEvents"].as_array().unwrap();
        assert_eq!(events.len(), 62);
        assert_eq!((events[60].as_f64(), events[61].as_f64()), (Some(1.0), Some(0.0005)));
        assert_eq!(thread_json(4242, true).unwrap()["gcEvents"], json!([])); // drained

        // Guarded again: one entry per thread; closed: gone.
        observe(&Event::Open { id: id + 1, open: Box::new(open(4242)) });
        assert_eq!(thread_json(4242, false).unwrap()["gc"]["major"]["count"], 0);
        let (done, _rx) = crossbeam_channel::bounded(1);
        observe(&Event::Close { id: id + 1, done });
        assert!(thread_json(4242, false).is_none());

        // Registered from the isolate's thread before the recorder sees the
        // Open: found at once, and the Open does not reset it.
        let o = open(4343);
        opened(id + 2, &o.header, &o.shared);
        assert_eq!(thread_json(4343, true).unwrap()["gcEvents"], json!([]));
        observe(&Event::Open { id: id + 2, open: Box::new(o) });
        observe(&Event::Gc { id: id + 2, rec: gc(1, 0.5, 1.0, 0) });
        assert_eq!(thread_json(4343, true).unwrap()["gcEvents"].as_array().unwrap().len(), 2);
        forget(id + 2);
        assert!(thread_json(4343, false).is_none());
    }
}
