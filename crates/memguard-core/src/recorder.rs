//! The flight recorder's background thread: GC events, samples and markers
//! from every guarded isolate arrive as plain values through one bounded
//! channel; here they become NDJSON lines, gzip-compressed into
//! `<bundle>/timeline.ndjson.gz`. Every second the current gzip member is
//! finished and appended, so a file cut off by `kill -9` or an abort still
//! decompresses up to the last second. No V8 calls happen on this thread.
//!
//! The file is a ring of segments (`segments.rs`): past a segment's size the
//! file is renamed to its number and a new one begun; past the budget the
//! oldest are removed.
//!
//! Format: each segment's first line is `{"type":"start","epochMs":…,"time":…,
//! "segment":n}` (the process's start; `t` when the segment began); every
//! record's `t` is milliseconds since the start. GC records give heap used before
//! and after in KB (1024 bytes) — enough precision, and it keeps a GC event
//! under 10 bytes compressed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TryRecvError};
use flate2::read::MultiGzDecoder;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{json, Value};

use crate::bundle::Bundle;
use crate::gzmember;
use crate::history::{self, Period, HISTORY_FILE};
use crate::log;
use crate::manifest::{HeapStats, SpaceStats};
use crate::procmem::{self, Cgroup};
use crate::segments::{segment_name, Ring};

pub const TIMELINE_FILE: &str = "timeline.ndjson.gz";
/// Longest time a record waits before it is on disk.
const MEMBER_EVERY: Duration = Duration::from_secs(1);
/// Events in flight. At 2,000+ GCs/s this is seconds of slack; beyond it
/// records are dropped (and counted), never waited for. Counted by hand
/// over an unbounded channel: a bounded one of this size writes all its
/// 512 kB of slots when made, ~0.2 ms of every process start.
const QUEUE: usize = 8_192;
/// The recorder drains its queue this often instead of sleeping on it: a
/// sender that finds the receiver asleep must wake it (a futex syscall, ~3 µs
/// — more than everything else a GC callback does), so the receiver never
/// sleeps on the channel. 100 ms: at 20 ms the wake-ups alone were most of
/// an idle process's recorder CPU time (1.7 ms/s); 100 ms of events at
/// 10,000 GCs/s still fit the queue eight times over.
const POLL: Duration = Duration::from_millis(100);
/// Compressed members kept while the file cannot be written (disk full):
/// minutes of timeline. Beyond it memguard stops writing the file.
const BACKLOG_MAX: usize = 4 << 20;
/// Records kept in memory per timeline for `memguard.timeline()`.
pub const RING: usize = 5_000;

/// Wall-clock milliseconds since the epoch (cheap: vDSO, no allocation).
pub fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
}

/// One garbage collection, as the epilogue callback saw it. `Copy` and
/// fixed-size: building and sending it allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct GcRecord {
    pub t_ms: f64,
    /// V8's `GCType` bit.
    pub kind: u32,
    /// V8's `GCCallbackFlags`.
    pub flags: u32,
    pub pause_ns: u64,
    pub used_before: u64,
    pub used_after: u64,
}

#[derive(Debug, Clone)]
pub struct SampleRecord {
    pub t_ms: f64,
    pub heap: HeapStats,
    pub spaces: Vec<SpaceStats>,
    pub array_buffers: u64,
}

pub enum Event {
    /// `header` gets `type`, `epochMs` and `time` (= t0) put first.
    Open { id: u64, open: Box<Open> },
    Gc { id: u64, rec: GcRecord },
    Sample { id: u64, rec: Box<SampleRecord> },
    Marker { id: u64, marker: Box<Marker> },
    /// Write out every timeline's pending records now.
    Flush { done: Sender<()> },
    Close { id: u64, done: Sender<()> },
}

// The rare, large events are boxed: every slot of the queue is as large as
// the largest event, and the queue is sized for thousands of GC records.
pub struct Open {
    pub bundle: Bundle,
    pub t0_ms: f64,
    pub header: Value,
    pub shared: Arc<Shared>,
    pub ring: Ring,
    /// How the lifetime history is kept (`history.rs`).
    pub history: history::Shape,
}

pub struct Marker {
    pub t_ms: f64,
    pub name: String,
    pub detail: Value,
}

/// What a timeline shares with its isolate's thread: the recent records,
/// the digest for `summary.json`, the count of records dropped.
#[derive(Default)]
pub struct Shared {
    ring: Mutex<VecDeque<Box<str>>>,
    digest: Mutex<Digest>,
    pub dropped: AtomicU64,
}

impl Shared {
    /// The last `n` records, oldest first, as JSON lines.
    pub fn last(&self, n: usize) -> Vec<String> {
        let ring = self.ring.lock();
        ring.iter().skip(ring.len().saturating_sub(n)).map(|s| s.to_string()).collect()
    }

    pub fn digest(&self) -> Digest {
        let mut d = self.digest.lock().clone();
        d.dropped = self.dropped.load(Ordering::Relaxed);
        d
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcDigest {
    pub count: u64,
    pub total_pause_ms: f64,
    pub max_pause_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Digest {
    pub gc: BTreeMap<&'static str, GcDigest>,
    pub heap_used_start: Option<u64>,
    pub heap_used_peak: u64,
    pub heap_used_end: u64,
    pub samples: u64,
    pub records: u64,
    pub dropped: u64,
    /// On disk, all segments together.
    pub compressed_bytes: u64,
    /// Timeline files on disk, oldest first (`timeline.ndjson.gz`, the one
    /// being written, last).
    pub segments: Vec<String>,
    /// Segments, and the records in them, the ring removed
    /// (`MEMGUARD_TIMELINE_MAX`).
    pub rotated_segments: u64,
    pub rotated_records: u64,
}

pub fn gc_kind_name(kind: u32) -> &'static str {
    match kind {
        1 => "scavenge",
        2 => "minor-mark-sweep",
        4 => "mark-compact",
        8 => "incremental-marking",
        16 => "weak-callbacks",
        _ => "other",
    }
}

const GC_FLAGS: &[(u32, &str)] = &[
    (2, "retained-object-infos"),
    (4, "forced"),
    (8, "synchronous-phantom-callbacks"),
    (16, "all-available-garbage"),
    (32, "all-external-memory"),
    (64, "idle"),
];

pub struct Recorder {
    tx: Sender<Event>,
    /// Events sent and not yet received (at most `QUEUE`).
    queued: Arc<AtomicUsize>,
    /// The recorder thread, unparked for the events someone waits on.
    thread: std::thread::Thread,
}

static RECORDER: OnceLock<Option<Recorder>> = OnceLock::new();

impl Recorder {
    /// The process's recorder thread, started on first use.
    pub fn global() -> Option<&'static Recorder> {
        RECORDER
            .get_or_init(|| {
                let (tx, rx) = unbounded();
                let queued = Arc::new(AtomicUsize::new(0));
                let counted = queued.clone();
                std::thread::Builder::new()
                    .name("memguard-recorder".into())
                    .spawn(move || run(rx, &counted))
                    .ok()
                    .map(|handle| Recorder { tx, queued, thread: handle.thread().clone() })
            })
            .as_ref()
    }

    /// Never blocks: `false` if the queue is full (the caller counts a drop).
    pub fn try_send(&self, event: Event) -> bool {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= QUEUE {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        self.tx.send(event).is_ok()
    }

    /// Sends `make(done)` and waits up to `timeout` for the recorder to
    /// acknowledge: used at the ends (exit, before a snapshot), where losing
    /// the last second matters more than a short wait.
    /// The recorder is woken at once: a process that exits would otherwise
    /// wait out the rest of its poll interval (up to 20 ms on every exit).
    pub fn send_and_wait(&self, make: impl FnOnce(Sender<()>) -> Event, timeout: Duration) -> bool {
        let (done, done_rx) = bounded(1);
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(make(done)).is_err() {
            return false;
        }
        self.thread.unpark();
        done_rx.recv_timeout(timeout).is_ok()
    }
}

struct Timeline {
    bundle: Bundle,
    file: Option<File>,
    /// This member's records, not yet compressed.
    plain: Vec<u8>,
    pending: u64,
    /// Epoch ms of the start record; every `t` is relative to it.
    t0: f64,
    shared: Arc<Shared>,
    dropped_reported: u64,
    line: String,
    /// Finished members not yet on disk because appending failed; retried
    /// with the next member, so a passing disk-full loses nothing.
    backlog: Vec<u8>,
    ring: Ring,
    /// Number of the segment being written, its length and records.
    segment: u64,
    file_len: u64,
    segment_records: u64,
    /// Full segments still on disk, oldest first: (number, bytes, records).
    kept: VecDeque<(u64, u64, u64)>,
    /// The start record, repeated at the top of every segment.
    start: Value,
    /// When the member being built was begun: a new segment's `t`.
    member_t0: f64,
    /// The lifetime history's file, the period being gathered, its length
    /// and when it began (epoch ms).
    history: Option<File>,
    period: Period,
    history_shape: history::Shape,
    period_t0: f64,
    /// When (ms since the start) the history is next downsampled.
    next_compaction: f64,
}

fn run(rx: Receiver<Event>, queued: &AtomicUsize) {
    let cgroup = Cgroup::process();
    let mut timelines: HashMap<u64, Timeline> = HashMap::new();
    let mut next_member = Instant::now() + MEMBER_EVERY;
    loop {
        loop {
            match rx.try_recv() {
                Ok(event) => {
                    queued.fetch_sub(1, Ordering::Relaxed);
                    handle(event, &mut timelines, cgroup)
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        if Instant::now() >= next_member {
            for tl in timelines.values_mut() {
                tl.write_member();
                tl.write_period(false);
            }
            next_member = Instant::now() + MEMBER_EVERY;
            // Once a second: reading the clock is a syscall.
            crate::selfcost::checkpoint(crate::selfcost::Role::Recorder);
        }
        // Like a sleep, but `send_and_wait` can cut it short.
        std::thread::park_timeout(POLL);
    }
}

fn handle(event: Event, timelines: &mut HashMap<u64, Timeline>, cgroup: Option<&Cgroup>) {
    // The metrics count exactly what the timeline records.
    crate::metrics::observe(&event);
    match event {
        Event::Open { id, open } => {
            let Open { bundle, t0_ms, header, shared, ring, history } = *open;
            let mut tl = Timeline {
                file: None,
                plain: Vec::with_capacity(16 << 10),
                pending: 0,
                t0: t0_ms,
                shared,
                dropped_reported: 0,
                line: String::with_capacity(256),
                backlog: Vec::new(),
                bundle,
                ring,
                segment: 1,
                file_len: 0,
                segment_records: 0,
                kept: VecDeque::new(),
                start: Value::Null,
                member_t0: t0_ms,
                history: None,
                period: Period::default(),
                history_shape: history,
                next_compaction: (history.full_detail + history.compact_every).as_secs_f64() * 1e3,
                period_t0: t0_ms,
            };
            match tl.bundle.ensure().and_then(|dir| dir.create_file(TIMELINE_FILE)) {
                Ok(file) => tl.file = Some(file),
                Err(e) => tl.bundle.warn_unless_retired(&format!(
                    "cannot create {} in {}: {e}; the timeline is kept in memory only",
                    TIMELINE_FILE,
                    tl.bundle.path().display()
                )),
            }
            let time = chrono::DateTime::from_timestamp_millis(t0_ms as i64)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            let mut start = json!({ "type": "start", "t": 0.0, "epochMs": t0_ms, "time": time });
            if let (Value::Object(start), Value::Object(header)) = (&mut start, header) {
                start.extend(header);
            }
            start["segment"] = json!(1);
            tl.push_json(&start);
            tl.start = start;
            tl.open_history();
            tl.write_member();
            timelines.insert(id, tl);
        }
        Event::Gc { id, rec } => {
            if let Some(tl) = timelines.get_mut(&id) {
                tl.push_gc(&rec);
            }
        }
        Event::Sample { id, rec } => {
            if let Some(tl) = timelines.get_mut(&id) {
                tl.push_sample(&rec, cgroup);
            }
        }
        Event::Marker { id, marker } => {
            let Marker { t_ms, name, detail } = *marker;
            if let Some(tl) = timelines.get_mut(&id) {
                let mut line = json!({ "type": "marker", "t": tl.rel(t_ms), "name": name });
                if let (Value::Object(line), Value::Object(detail)) = (&mut line, detail) {
                    line.extend(detail);
                }
                tl.push_json(&line);
            }
        }
        Event::Flush { done } => {
            for tl in timelines.values_mut() {
                tl.write_member();
            }
            crate::selfcost::checkpoint(crate::selfcost::Role::Recorder);
            let _ = done.send(());
        }
        Event::Close { id, done } => {
            if let Some(mut tl) = timelines.remove(&id).filter(|tl| !tl.bundle.is_retired()) {
                tl.write_member();
                tl.write_period(true);
            }
            crate::selfcost::checkpoint(crate::selfcost::Role::Recorder);
            let _ = done.send(());
        }
    }
}

impl Timeline {
    /// Milliseconds since the start record, to 0.1 ms.
    fn rel(&self, t_ms: f64) -> f64 {
        ((t_ms - self.t0) * 10.0).round() / 10.0
    }

    fn push_line(&mut self) {
        self.line.push('\n');
        if self.file.is_some() {
            self.plain.extend_from_slice(self.line.as_bytes());
        }
        self.pending += 1;
        self.shared.digest.lock().records += 1;
        let mut ring = self.shared.ring.lock();
        if ring.len() == RING {
            ring.pop_front();
        }
        ring.push_back(self.line.trim_end().into());
    }

    fn push_json(&mut self, value: &Value) {
        self.line.clear();
        self.line.push_str(&value.to_string());
        self.push_line();
    }

    /// Hand-formatted: this runs thousands of times a second.
    fn push_gc(&mut self, r: &GcRecord) {
        let kind = gc_kind_name(r.kind);
        let pause_ms = r.pause_ns as f64 / 1e6;
        {
            let mut d = self.shared.digest.lock();
            let g = d.gc.entry(kind).or_default();
            g.count += 1;
            g.total_pause_ms += pause_ms;
            g.max_pause_ms = g.max_pause_ms.max(pause_ms);
            d.heap_used_peak = d.heap_used_peak.max(r.used_before);
            d.heap_used_end = r.used_after;
        }
        self.period.add_gc(kind, pause_ms, r.used_after);
        let t = self.rel(r.t_ms);
        self.line.clear();
        let _ = write!(
            self.line,
            r#"{{"type":"gc","t":{t},"kind":"{kind}","ms":{},"beforeKB":{},"afterKB":{}"#,
            (pause_ms * 100.0).round() / 100.0,
            r.used_before >> 10,
            r.used_after >> 10
        );
        if r.flags != 0 {
            self.line.push_str(r#","flags":["#);
            let names = GC_FLAGS.iter().filter(|(bit, _)| r.flags & bit != 0).map(|(_, name)| format!("\"{name}\""));
            self.line.push_str(&names.collect::<Vec<_>>().join(","));
            self.line.push(']');
        }
        self.line.push('}');
        self.push_line();
    }

    fn push_sample(&mut self, s: &SampleRecord, cgroup: Option<&Cgroup>) {
        {
            let mut d = self.shared.digest.lock();
            d.samples += 1;
            d.heap_used_start.get_or_insert(s.heap.used_heap_size);
            d.heap_used_peak = d.heap_used_peak.max(s.heap.used_heap_size);
            d.heap_used_end = s.heap.used_heap_size;
        }
        let rss = procmem::rss_bytes();
        self.period.add_sample(history::Heap {
            used: s.heap.used_heap_size,
            limit: s.heap.heap_size_limit,
            external: s.heap.external_memory,
            array_buffers: s.array_buffers,
            rss,
        });
        let spaces: serde_json::Map<String, Value> = s
            .spaces
            .iter()
            .filter(|sp| sp.space_size > 0)
            .map(|sp| (sp.space_name.clone(), json!([sp.space_used_size, sp.space_size])))
            .collect();
        let mut line = json!({
            "type": "sample",
            "t": self.rel(s.t_ms),
            "heap": {
                "used": s.heap.used_heap_size,
                "total": s.heap.total_heap_size,
                "limit": s.heap.heap_size_limit,
                "external": s.heap.external_memory,
                "malloced": s.heap.malloced_memory,
                "arrayBuffers": s.array_buffers,
                "nativeContexts": s.heap.number_of_native_contexts,
                "detachedContexts": s.heap.number_of_detached_contexts,
            },
            "spaces": spaces,
            "rss": rss,
        });
        // Only a real container limit: the usage of an unlimited (root)
        // cgroup is the whole machine's, which would mislead.
        if let Some(mem) = cgroup.and_then(Cgroup::read).filter(|m| m.limit.is_some()) {
            line["cgroup"] = json!({ "usage": mem.usage, "limit": mem.limit });
        }
        self.push_json(&line);
    }

    /// Finishes the current gzip member and appends it to the file.
    fn write_member(&mut self) {
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        if dropped > self.dropped_reported {
            self.dropped_reported = dropped;
            self.push_json(&json!({ "type": "dropped", "t": self.rel(now_ms()), "count": dropped }));
        }
        if self.pending == 0 {
            return;
        }
        let records = std::mem::take(&mut self.pending);
        let member_t0 = std::mem::replace(&mut self.member_t0, now_ms());
        if self.file.is_none() {
            self.plain.clear();
            return;
        }
        // `plain` keeps its buffer: nothing here is allocated anew each second
        // but the member itself.
        let bytes = gzmember::member(&self.plain);
        self.plain.clear();
        // Only between whole appends: a backlog belongs to the segment it was meant for.
        if self.backlog.is_empty() && self.ring.rotate_before(self.file_len, bytes.len() as u64) {
            self.rotate(member_t0, bytes.len() as u64);
        }
        self.segment_records += records;
        let Some(file) = self.file.as_mut() else { return };
        let failing = !self.backlog.is_empty();
        if failing {
            self.backlog.extend_from_slice(&bytes);
        }
        let path = self.bundle.path().join(TIMELINE_FILE);
        match append(file, if failing { &self.backlog } else { &bytes }) {
            Ok(len) => {
                self.backlog = Vec::new();
                self.file_len = len;
                self.update_digest();
                if failing {
                    log::info(&format!("writing {} works again; no timeline record was lost", path.display()));
                }
            }
            // Once per failure spell, not every second.
            Err(e) if !failing => {
                log::warn(&format!(
                    "writing {} failed ({e}); keeping its records in memory and retrying every second",
                    path.display()
                ));
                self.backlog = bytes;
            }
            Err(e) if self.backlog.len() > BACKLOG_MAX => {
                log::warn(&format!(
                    "writing {} still fails ({e}); the timeline is kept in memory only from now on",
                    path.display()
                ));
                self.backlog = Vec::new();
                self.file = None;
            }
            Err(_) => {}
        }
    }
}

impl Timeline {
    /// Renames the full segment to its number and begins the next with a
    /// start record, then removes the oldest segments past the budget
    /// (counting `incoming` bytes about to be appended). When the new file
    /// cannot be made, the current one is written on (one warning).
    fn rotate(&mut self, t_ms: f64, incoming: u64) {
        let full = segment_name(self.segment);
        let result = self.bundle.ensure().and_then(|dir| {
            dir.rename_new(TIMELINE_FILE, &full)?;
            match dir.create_file(TIMELINE_FILE) {
                Ok(file) => Ok((dir, file)),
                Err(e) => {
                    // Back where readers look for the segment being written.
                    let _ = dir.rename_new(&full, TIMELINE_FILE);
                    Err(e)
                }
            }
        });
        let (dir, mut file) = match result {
            Ok(opened) => opened,
            Err(e) => {
                self.bundle.warn_unless_retired(&format!(
                    "cannot start a new timeline segment in {} ({e}); the current one grows past MEMGUARD_TIMELINE_MAX",
                    self.bundle.path().display()
                ));
                return;
            }
        };
        self.kept.push_back((self.segment, self.file_len, self.segment_records));
        self.segment += 1;
        self.segment_records = 0;
        let mut start = self.start.clone();
        start["t"] = json!(self.rel(t_ms));
        start["segment"] = json!(self.segment);
        self.file_len = append(&mut file, &member_of(&start)).unwrap_or(0);
        self.file = Some(file);

        let sizes: Vec<u64> = self.kept.iter().map(|k| k.1).collect();
        let remove = self.ring.excess(&sizes, self.file_len + incoming);
        let mut removed = (0, 0);
        for (n, _, records) in self.kept.drain(..remove) {
            match dir.remove_file(&segment_name(n)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => log::warn_once(&format!(
                    "cannot remove the old timeline segment {} in {} ({e})",
                    segment_name(n),
                    self.bundle.path().display()
                )),
                _ => {}
            }
            removed = (removed.0 + 1, removed.1 + records);
        }
        let mut d = self.shared.digest.lock();
        d.rotated_segments += removed.0;
        d.rotated_records += removed.1;
    }

    /// Creates `history.ndjson.gz`, starting with the start record.
    fn open_history(&mut self) {
        match self.bundle.ensure().and_then(|dir| dir.create_file(HISTORY_FILE)) {
            Ok(mut file) => {
                // The history is one file: no segment number.
                let mut start = self.start.clone();
                if let Some(o) = start.as_object_mut() {
                    o.remove("segment");
                }
                if append(&mut file, &member_of(&start)).is_ok() {
                    self.history = Some(file);
                }
            }
            Err(e) => self.bundle.warn_unless_retired(&format!(
                "cannot create {HISTORY_FILE} in {} ({e}); no lifetime history",
                self.bundle.path().display()
            )),
        }
    }

    /// Appends the period's record when it is over (or, at the end, what
    /// there is of it), one gzip member each.
    fn write_period(&mut self, last: bool) {
        let now = now_ms();
        let period_ms = now - self.period_t0;
        if !last && period_ms < self.history_shape.every.as_secs_f64() * 1e3 {
            return;
        }
        self.period_t0 = now;
        let t = self.rel(now);
        let Some(record) = self.period.take(t, period_ms) else { return };
        let Some(file) = self.history.as_mut() else { return };
        if let Err(e) = append(file, &member_of(&record)) {
            // A lost period is a gap in a coarse record, not worth a backlog.
            log::warn_once(&format!("writing {HISTORY_FILE} failed ({e}); a period of the lifetime history is missing"));
        }
        if t >= self.next_compaction {
            self.next_compaction = t + self.history_shape.compact_every.as_secs_f64() * 1e3;
            self.compact_history(t);
        }
    }

    /// Rewrites the history (atomically) with the periods older than its
    /// full-detail horizon merged (`history::downsample`): without it, a
    /// process that runs for a year writes 90 MB of minutes.
    fn compact_history(&mut self, t: f64) {
        let shape = self.history_shape;
        let result = self.bundle.ensure().and_then(|dir| {
            let mut text = String::new();
            MultiGzDecoder::new(dir.open_file(HISTORY_FILE)?).read_to_string(&mut text)?;
            let records = text.lines().map(serde_json::from_str).collect::<Result<Vec<Value>, _>>()?;
            let before_t = t - shape.full_detail.as_secs_f64() * 1e3;
            let kept = history::downsample(records, before_t, shape.coarse.as_secs_f64() * 1e3);
            dir.write_atomic(HISTORY_FILE, &kept.iter().flat_map(member_of).collect::<Vec<u8>>())?;
            dir.open_to_append(HISTORY_FILE)
        });
        match result {
            Ok(file) => self.history = Some(file),
            Err(e) => self.bundle.warn_unless_retired(&format!(
                "cannot downsample {HISTORY_FILE} in {} ({e}); it keeps every period",
                self.bundle.path().display()
            )),
        }
    }

    fn update_digest(&self) {
        let mut d = self.shared.digest.lock();
        d.compressed_bytes = self.kept.iter().map(|k| k.1).sum::<u64>() + self.file_len;
        d.segments = self.kept.iter().map(|k| segment_name(k.0)).chain([TIMELINE_FILE.to_string()]).collect();
    }
}

/// One record as a gzip member of its own.
fn member_of(record: &Value) -> Vec<u8> {
    gzmember::member(format!("{record}\n").as_bytes())
}

/// Appends whole members or nothing: a short write (disk full) is cut off
/// again so the file stays a valid series of gzip members. Writes at the
/// file's length (not the cursor, which a short write would leave past the
/// cut, making a hole of zeros). Returns the new length.
fn append(file: &mut File, bytes: &[u8]) -> io::Result<u64> {
    let len = file.metadata()?.len();
    match file.write_all_at(bytes, len) {
        Ok(()) => Ok(len + bytes.len() as u64),
        Err(e) => {
            let _ = file.set_len(len);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;
    use std::io::Read;

    fn read_lines(path: &std::path::Path) -> Vec<Value> {
        let mut text = String::new();
        MultiGzDecoder::new(File::open(path).unwrap()).read_to_string(&mut text).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn append_writes_at_the_end_not_at_the_cursor() {
        use std::io::{Seek, SeekFrom};
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("t.gz");
        let mut file = crate::dirfd::Dir::open(tmp.path()).unwrap().create_file("t.gz").unwrap();
        assert_eq!(append(&mut file, b"ab").unwrap(), 2);
        file.seek(SeekFrom::Start(100)).unwrap(); // where a cut-off short write leaves the cursor
        assert_eq!(append(&mut file, b"cd").unwrap(), 4);
        assert_eq!(std::fs::read(&path).unwrap(), b"abcd");
        let mut full = File::options().write(true).open("/dev/full").unwrap();
        assert_eq!(append(&mut full, b"x").unwrap_err().raw_os_error(), Some(libc::ENOSPC));
    }

    #[test]
    fn queue_slots_stay_small() {
        assert!(std::mem::size_of::<Event>() <= 64, "{}", std::mem::size_of::<Event>());
    }

    #[test]
    fn the_history_is_downsampled_beyond_its_horizon_while_it_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = Bundle::new(tmp.path(), "h");
        let rec = Recorder::global().unwrap();
        let id = 9101;
        let t0_ms = now_ms();
        let second = Duration::from_secs(1);
        // A period a second (the recorder's own tick); older than 2 s merged by 4 s, checked every second.
        // 4-s buckets: the periods ending in 0–4 s are at least two even when a
        // tick comes late on a busy machine (2-s buckets then held one each).
        let history = history::Shape { every: second, full_detail: 2 * second, coarse: 4 * second, compact_every: second };
        let ring = Ring::new(crate::segments::DEFAULT_BUDGET);
        let open = Open { bundle: bundle.clone(), t0_ms, header: json!({"pid": 3}), shared: Arc::new(Shared::default()), ring, history };
        assert!(rec.try_send(Event::Open { id, open: Box::new(open) }));
        let started = Instant::now();
        let mut sent = 0u64;
        while started.elapsed() < Duration::from_millis(6500) {
            let gc = GcRecord { t_ms: now_ms(), kind: 4, flags: 0, pause_ns: 1_000_000, used_before: 2048, used_after: 1024 + sent };
            assert!(rec.try_send(Event::Gc { id, rec: gc }));
            sent += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(rec.send_and_wait(|done| Event::Close { id, done }, Duration::from_secs(5)));
        let records = read_lines(&bundle.path().join(HISTORY_FILE));
        assert_eq!(records[0]["type"], "start");
        let periods = &records[1..];
        let merged: Vec<&Value> = periods.iter().filter(|r| r["merged"].as_u64().is_some_and(|n| n > 1)).collect();
        assert!(!merged.is_empty(), "some periods were merged: {periods:?}");
        assert!(periods.last().unwrap().get("merged").is_none(), "the newest period stays as written");
        let ts: Vec<f64> = periods.iter().map(|r| r["t"].as_f64().unwrap()).collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "in order: {ts:?}");
        // Nothing is lost by merging: every GC is counted once.
        let gcs: u64 = periods.iter().map(|r| r["gc"]["mark-compact"][0].as_u64().unwrap_or(0)).sum();
        assert_eq!(gcs, sent);
        assert_eq!(periods.last().unwrap()["afterMarkCompact"][2], 1024 + sent - 1);
    }

    #[test]
    fn records_become_gzip_members_readable_after_each_flush() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = Bundle::new(tmp.path(), "b");
        let rec = Recorder::global().unwrap();
        let shared = Arc::new(Shared::default());
        let id = 9001;
        let header = json!({"pid": 1});
        let t0_ms = 1_700_000_000_000.0;
        let ring = Ring::new(crate::segments::DEFAULT_BUDGET);
        let open = Open { bundle: bundle.clone(), t0_ms, header, shared: shared.clone(), ring, history: history::Shape::every(Duration::from_secs(60)) };
        assert!(rec.try_send(Event::Open { id, open: Box::new(open) }));
        for i in 0..100 {
            let gc = GcRecord {
                t_ms: t0_ms + 10.0 + i as f64,
                kind: 1,
                flags: if i == 0 { 4 } else { 0 },
                pause_ns: 500_000,
                used_before: 2048,
                used_after: 1024,
            };
            assert!(rec.try_send(Event::Gc { id, rec: gc }));
        }
        assert!(rec.send_and_wait(|done| Event::Flush { done }, Duration::from_secs(5)));
        let path = bundle.path().join(TIMELINE_FILE);
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 101);
        assert_eq!(lines[0], json!({"type": "start", "t": 0.0, "epochMs": t0_ms, "time": "2023-11-14T22:13:20.000Z", "pid": 1, "segment": 1}));
        assert_eq!(lines[1]["t"], 10.0);
        assert_eq!((lines[1]["beforeKB"].clone(), lines[1]["afterKB"].clone()), (json!(2), json!(1)));
        assert_eq!(lines[1]["kind"], "scavenge");
        assert_eq!(lines[1]["flags"], json!(["forced"]));
        assert_eq!(lines[1]["ms"], 0.5);
        assert!(lines[2].get("flags").is_none());

        // A file cut off mid-member still yields every earlier member.
        let whole = std::fs::metadata(&path).unwrap().len();
        let marker = Marker { t_ms: t0_ms + 500.0, name: "late".into(), detail: json!({"seq": 1}) };
        assert!(rec.try_send(Event::Marker { id, marker: Box::new(marker) }));
        assert!(rec.send_and_wait(|done| Event::Close { id, done }, Duration::from_secs(5)));
        let bytes = std::fs::read(&path).unwrap();
        let cut = tmp.path().join("cut.gz");
        std::fs::write(&cut, &bytes[..whole as usize + 5]).unwrap();
        let mut text = Vec::new();
        let _ = MultiGzDecoder::new(File::open(&cut).unwrap()).read_to_end(&mut text);
        assert_eq!(text.iter().filter(|&&b| b == b'\n').count(), 101);
        let all = read_lines(&path);
        assert_eq!(all.last().unwrap()["name"], "late");
        assert_eq!(all.last().unwrap()["seq"], 1);

        // The lifetime history: the start record, then the (only, cut short by the close) period.
        let history = read_lines(&bundle.path().join(HISTORY_FILE));
        assert_eq!(history.len(), 2, "{history:?}");
        assert_eq!((history[0]["type"].as_str(), history[0]["pid"].as_u64()), (Some("start"), Some(1)));
        assert!(history[0].get("segment").is_none());
        assert_eq!((history[1]["type"].as_str(), history[1]["gc"]["scavenge"].clone()), (Some("period"), json!([100, 50.0])));

        let d = shared.digest();
        assert_eq!(d.gc["scavenge"].count, 100);
        assert!((d.gc["scavenge"].total_pause_ms - 50.0).abs() < 1e-6);
        assert_eq!(shared.last(2).len(), 2);
        assert!(shared.last(1)[0].contains("late"));
    }

    #[test]
    fn a_small_budget_keeps_the_newest_segments_each_readable() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = Bundle::new(tmp.path(), "ring");
        let rec = Recorder::global().unwrap();
        let shared = Arc::new(Shared::default());
        let (id, t0_ms) = (9002, 1_700_000_000_000.0);
        let ring = Ring::new(crate::segments::MIN_BUDGET);
        let open = Open { bundle: bundle.clone(), t0_ms, header: json!({"pid": 2}), shared: shared.clone(), ring, history: history::Shape::every(Duration::from_secs(60)) };
        assert!(rec.try_send(Event::Open { id, open: Box::new(open) }));
        // Varied sizes so members compress like a real run's (~10 KB per 2,000 GCs).
        let mut x: u64 = 12345;
        let total = 60_000u64;
        for i in 0..total {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let gc = GcRecord {
                t_ms: t0_ms + i as f64 * 0.37,
                kind: 1,
                flags: 0,
                pause_ns: x >> 44,
                used_before: (x >> 20) & 0xff_ffff,
                used_after: (x >> 24) & 0xff_ffff,
            };
            while !rec.try_send(Event::Gc { id, rec: gc }) {
                std::thread::sleep(Duration::from_millis(1));
            }
            if i % 2_000 == 1_999 {
                assert!(rec.send_and_wait(|done| Event::Flush { done }, Duration::from_secs(5)));
            }
        }
        assert!(rec.send_and_wait(|done| Event::Close { id, done }, Duration::from_secs(5)));

        let d = shared.digest();
        let dir = bundle.path();
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| crate::segments::is_timeline(n))
            .collect();
        on_disk.sort_by_key(|n| crate::segments::segment_number(n).unwrap_or(u64::MAX));
        assert_eq!(on_disk, d.segments, "the digest names what is on disk, oldest first");
        assert!(d.rotated_segments > 0 && on_disk.len() >= 4, "{d:?}");
        let bytes: u64 = on_disk.iter().map(|n| std::fs::metadata(dir.join(n)).unwrap().len()).sum();
        assert!(bytes <= crate::segments::MIN_BUDGET, "{bytes}");
        assert_eq!(bytes, d.compressed_bytes);

        let first = crate::segments::segment_number(&on_disk[0]).unwrap();
        assert_eq!(first, d.rotated_segments + 1);
        let mut gcs = 0;
        let mut last_t = 0.0;
        for (k, name) in on_disk.iter().enumerate() {
            let lines = read_lines(&dir.join(name));
            assert_eq!(lines[0]["type"], "start", "{name}");
            assert_eq!(lines[0]["segment"], first + k as u64, "{name}");
            assert_eq!((lines[0]["epochMs"].as_f64(), lines[0]["pid"].as_u64()), (Some(t0_ms), Some(2)));
            // Times run on from the process start, across segments.
            assert!(lines[0]["t"].as_f64().unwrap() >= last_t - 1e3, "{name}");
            last_t = lines.last().unwrap()["t"].as_f64().unwrap();
            gcs += lines.iter().filter(|l| l["type"] == "gc").count() as u64;
        }
        assert_eq!(last_t, ((total - 1) as f64 * 0.37 * 10.0).round() / 10.0, "the newest record is kept");
        // Every record is on disk or counted as rotated away (+1: segment 1's start).
        assert_eq!(gcs + d.rotated_records, total + 1);
    }
}
