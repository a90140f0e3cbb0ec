//! Per-isolate state: one `Guard` for the main thread and one for each worker
//! that loads memguard. It lives in a thread-local (one isolate per thread in
//! Node) and in the near-heap-limit hook; both go away in the env cleanup
//! hook, so a worker's exit frees everything it had.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;

use memguard_core::bundle::Bundle;
use memguard_core::config::Config;
use memguard_core::heaplimit::{self, YoungGeneration};
use memguard_core::heapprofile::{ProfileNode, ProfileSample};
use memguard_core::history::Shape;
use memguard_core::afford;
use memguard_core::config::SnapshotMode;
use memguard_core::lastaffordable::{Decision, LastAffordable};
use memguard_core::leak::LeakTrend;
use memguard_core::log;
use memguard_core::manifest::{HeapLimit, Manifest, TimelineSummary, SUMMARY_FILE};
use memguard_core::procmem::{self, Cgroup};
use memguard_core::recorder::{now_ms, TIMELINE_FILE};
use memguard_core::writer::Writer;
use serde_json::{json, Value};

use crate::capture::{self, Trigger};
use crate::timeline::Timeline;
use memguard_core::segments::Ring;
use crate::v8::{GcHandler, GcHook, GcPhase, Isolate, NearHeapLimitHandler, NearHeapLimitHook};

/// Below this, extra heap for the snapshot is too small to be useful (it is
/// what Node grants a worker).
const MIN_HEADROOM: usize = 16 << 20;
/// Times V8 may call back in during one of our snapshots (it runs up to 7
/// GCs; each may find the heap still over the limit). Past this, V8 fails.
const MAX_NESTED_GRANTS: u32 = 8;
/// V8 brings the raised limit back once used heap falls under 95 % of the
/// initial one (Node's value): a later leak then gets a fresh episode.
const RESTORE_THRESHOLD: f64 = 0.95;
/// V8's `kGCTypeMarkSweepCompact`: only after a full GC is "heap used" the
/// live heap rather than live heap plus garbage.
const MARK_COMPACT: u32 = 4;
/// A fired heap threshold re-arms when the heap falls this far below it.
const REARM_BELOW: f64 = 0.1;

pub struct Guard {
    pub isolate: Isolate,
    pub config: Config,
    pub bundle: Bundle,
    pub manifest: RefCell<Manifest>,
    seq: Cell<u32>,
    /// The seq of the latest near-limit capture: a capture requested before
    /// it (a pending interrupt) is folded into it, not taken again.
    pub last_near_limit_seq: Cell<u32>,
    near_limit_taken: Cell<u32>,
    /// Set while our own near-limit capture runs: the snapshot allocates and
    /// V8 may call back in.
    in_near_limit: Cell<bool>,
    /// A capture is running on this thread (see `begin_capture`).
    capturing: Cell<bool>,
    nested_grants: Cell<u32>,
    /// The limit V8 has now: nested calls raise it before the outer call
    /// returns, and V8 accepts only a return larger than the limit it has.
    limit_now: Cell<usize>,
    hook: RefCell<Option<NearHeapLimitHook<Guard>>>,
    pub timeline: Option<Rc<Timeline>>,
    gc_hook: RefCell<Option<GcHook<Guard>>>,
    /// We started V8's sampling heap profiler (and so stop it at the end).
    sampling: Cell<bool>,
    /// Per heap threshold: armed (may fire) or not (fired, heap still high).
    thresholds_armed: RefCell<Vec<bool>>,
    /// V8's heap limit at start and what its young generation takes of it:
    /// thresholds are fractions of the rest, the old generation's limit
    /// (heaplimit.rs), worked out at the first mark-compact that asks (it
    /// reads /proc, which start-up need not pay for).
    heap_size_limit: u64,
    young: YoungGeneration,
    old_generation_limit: OnceCell<u64>,
    /// Heap used after mark-compacts, judged for steady growth (`MEMGUARD_LEAK`).
    leak_trend: RefCell<Option<LeakTrend>>,
    /// A leak verdict was logged (and captured, with `MEMGUARD_LEAK_SNAPSHOT`):
    /// later ones only go to the timeline and to listeners.
    leak_reported: Cell<bool>,
    /// The last affordable moment for a snapshot (`MEMGUARD_EARLY_SNAPSHOT`),
    /// judged after each mark-compact once the leak trend says "growing".
    last_affordable: RefCell<LastAffordable>,
    /// Events for JS listeners (`memguard.on('leak')`), collected by index.js.
    pub events: RefCell<Vec<Value>>,
}

impl Guard {
    pub fn new(isolate: Isolate, config: Config, bundle: Bundle, manifest: Manifest, young: YoungGeneration) -> Rc<Guard> {
        let timeline = if config.timeline {
            let header = json!({
                "pid": manifest.pid,
                "threadId": manifest.thread_id,
                "node": manifest.node,
                "memguard": manifest.memguard,
                "intervalMs": config.interval_ms,
            });
            let history = Shape::every(std::time::Duration::from_secs(config.history_interval_secs.into()));
            Timeline::open(isolate, &bundle, header, Ring::new(config.timeline_max), history)
        } else {
            None
        };
        Rc::new(Guard {
            timeline,
            gc_hook: RefCell::new(None),
            sampling: Cell::new(false),
            thresholds_armed: RefCell::new(vec![true; config.heap_thresholds.len()]),
            heap_size_limit: isolate.heap_stats().heap_size_limit,
            young,
            old_generation_limit: OnceCell::new(),
            leak_trend: RefCell::new(config.leak.then(|| LeakTrend::new(config.leak_window, config.leak_min_growth))),
            leak_reported: Cell::new(false),
            last_affordable: RefCell::new(LastAffordable::new()),
            events: RefCell::new(Vec::new()),
            isolate,
            config,
            bundle,
            manifest: RefCell::new(manifest),
            seq: Cell::new(0),
            last_near_limit_seq: Cell::new(0),
            near_limit_taken: Cell::new(0),
            in_near_limit: Cell::new(false),
            capturing: Cell::new(false),
            nested_grants: Cell::new(0),
            limit_now: Cell::new(0),
            hook: RefCell::new(None),
        })
    }

    /// The seq of the latest capture (0 before the first).
    pub fn seq(&self) -> u32 {
        self.seq.get()
    }

    /// Marks a capture as running until the returned value is dropped. V8
    /// may reach its near-heap-limit callback inside the capture's own
    /// snapshot (its GCs run with the heap near full): that must not start a
    /// second capture in the middle of the first, whose snapshot stream the
    /// writer thread is still waiting on — it only gets a little headroom.
    pub fn begin_capture(&self) -> Capturing<'_> {
        if !self.in_near_limit.get() {
            self.nested_grants.set(0);
        }
        self.capturing.set(true);
        Capturing(self)
    }

    pub fn next_seq(&self) -> u32 {
        self.seq.set(self.seq.get() + 1);
        self.seq.get()
    }

    pub fn watch_near_heap_limit(self: &Rc<Self>) {
        if self.config.near_limit_snapshots > 0 {
            *self.hook.borrow_mut() = Some(NearHeapLimitHook::install(self.isolate, self));
        }
    }

    /// Removes the V8 callback (and the reference it holds on the guard).
    pub fn unwatch(&self) {
        drop(self.hook.borrow_mut().take());
    }

    /// Starts V8's sampling heap profiler when configured. One profiler per
    /// isolate: if someone else (an APM agent, DevTools) already runs it,
    /// memguard reads their profile and leaves it running.
    pub fn start_allocation_sampling(&self) {
        if let Some(interval) = self.config.alloc_sampling {
            if self.isolate.start_sampling_heap_profiler(interval) {
                self.sampling.set(true);
            } else {
                log::info_once("V8's sampling heap profiler is already running; memguard reads its profile");
            }
        }
    }

    /// Stops and starts memguard's own sampling heap profiler (not one someone
    /// else runs). While it runs, V8 keeps every name it copied for a heap
    /// snapshot after the snapshot is gone (measured: ~400 MB retained after
    /// a snapshot of a 24 MB heap); a process that is to live on after its
    /// snapshot needs that memory back. The next allocation profile then
    /// holds what was allocated since, and is still alive.
    pub fn restart_allocation_sampling(&self) {
        if let (true, Some(interval)) = (self.sampling.get(), self.config.alloc_sampling) {
            self.isolate.stop_sampling_heap_profiler();
            self.isolate.start_sampling_heap_profiler(interval);
        }
    }

    /// The current allocation profile, if a sampling heap profiler runs.
    pub fn allocation_profile(&self) -> Option<(Vec<ProfileNode>, Vec<ProfileSample>)> {
        if self.config.alloc_sampling.is_none() {
            return None;
        }
        self.isolate.allocation_profile()
    }

    /// Starts watching every GC (for the timeline and the heap thresholds),
    /// and writes the first `summary.json` naming the timeline.
    pub fn start_recording(self: &Rc<Self>) {
        if self.timeline.is_some() || !self.config.heap_thresholds.is_empty() || self.config.leak || self.may_want_last_affordable() {
            *self.gc_hook.borrow_mut() = Some(GcHook::install(self.isolate, self));
        }
        if let Some(timeline) = &self.timeline {
            timeline.sample(0);
            // Queued, not awaited: start-up is paid by every process started
            // with -r memguard; a crash right after still finds it written.
            if let Err(e) = self.write_manifest(Writer::queue_atomic) {
                log::warn_once(&format!("cannot write summary.json in {}: {e}", self.bundle.path().display()));
            }
        }
    }

    pub fn mark(&self, name: &str, detail: Value) {
        if let Some(timeline) = &self.timeline {
            timeline.marker(name, detail);
        }
    }

    /// Puts everything recorded so far on disk (bounded wait).
    pub fn flush(&self) {
        if let Some(timeline) = &self.timeline {
            timeline.flush();
        }
    }

    /// Rewrites `summary.json` (atomically) with the latest timeline digest.
    pub fn save_manifest(&self) -> std::io::Result<()> {
        self.write_manifest(Writer::write_atomic)
    }

    fn write_manifest(&self, write: fn(&Writer, &Bundle, &str, Vec<u8>) -> std::io::Result<()>) -> std::io::Result<()> {
        let writer = Writer::global().ok_or_else(|| std::io::Error::other("memguard's writer thread is not running"))?;
        if let Some(timeline) = &self.timeline {
            self.manifest.borrow_mut().timeline =
                Some(TimelineSummary { file: TIMELINE_FILE.into(), digest: timeline.shared.digest() });
        }
        self.manifest.borrow_mut().self_cost = Some(memguard_core::selfcost::current());
        let json = self.manifest.borrow().to_json();
        write(writer, &self.bundle, SUMMARY_FILE, json)
    }

    /// The thread is ending (exit, uncaught exception, worker end, a fatal
    /// signal): record how, write the rest of the timeline and the final
    /// manifest, and stop every callback. Idempotent.
    pub fn shutdown(&self, ended: Value) {
        crate::remote::unregister(self.manifest.borrow().thread_id);
        self.unwatch();
        drop(self.gc_hook.borrow_mut().take());
        if self.sampling.replace(false) {
            self.isolate.stop_sampling_heap_profiler();
        }
        if let Some(timeline) = &self.timeline {
            if self.is_uneventful_end(&ended) {
                // A CLI or test runner started with NODE_OPTIONS=-r memguard,
                // or an app with a worker per task, would otherwise leave a
                // bundle per start: one that ended well and captured nothing
                // tells nothing worth its disk space.
                self.retire_bundle(timeline);
                return;
            }
            timeline.marker("end", ended.clone());
            timeline.close();
            self.manifest.borrow_mut().ended = Some(ended);
            let _ = self.save_manifest();
        }
    }

    /// Removes the bundle of an uneventful end, here and now: every process
    /// start pays for its end, and waiting for memguard's threads to finish
    /// writing what is about to be removed cost ~1 ms of it. Retired first,
    /// so no thread makes it again. Only when a write under way keeps the
    /// directory from going does the end wait, for the recorder and then the
    /// writer, and remove it after them.
    fn retire_bundle(&self, timeline: &Timeline) {
        self.bundle.retire();
        timeline.close_later();
        if self.bundle.remove().is_ok() {
            return;
        }
        timeline.flush();
        let _ = match Writer::global() {
            Some(writer) => writer.remove_bundle(&self.bundle),
            None => self.bundle.remove(),
        };
    }

    /// Nothing captured, nothing lost, and an orderly end: exit code 0, a
    /// termination signal memguard saw (SIGTERM from an orchestrator), the
    /// app's `stop()`. Kept: a non-zero exit (it may be memory's doing:
    /// `RangeError: Array buffer allocation failed`), a worker whose
    /// environment was torn down without an exit (its OOM looks the same),
    /// and a crash or kill, which never gets here.
    fn is_uneventful_end(&self, ended: &Value) -> bool {
        let orderly = match ended["reason"].as_str() {
            Some("exit") => ended["code"] == 0,
            Some("signal" | "stop") => true,
            _ => false,
        };
        !self.config.keep_all
            && orderly
            && self.manifest.borrow().captures.is_empty()
            && self.timeline.as_ref().is_some_and(|t| t.shared.digest().dropped == 0)
    }

    /// Enabled, with a snapshot possible: then the GC callbacks are needed.
    fn may_want_last_affordable(&self) -> bool {
        self.config.early_snapshot && self.config.snapshot != SnapshotMode::Never
    }

    /// ... and with a memory bound that may be known (a memory cgroup, or an
    /// explicit limit): elsewhere there is nothing to judge.
    fn may_take_last_affordable(&self) -> bool {
        self.may_want_last_affordable() && (self.config.explicit_memory_limit().is_some() || Cgroup::process().is_some())
    }

    fn old_generation_limit(&self) -> u64 {
        *self.old_generation_limit.get_or_init(|| {
            let young = self.young.bytes(Isolate::default_young_generation_size);
            heaplimit::old_generation_limit(self.heap_size_limit, young)
        })
    }

    /// What headroom is added to: V8 may call with the heap already past the
    /// limit (seen: 76 MB used at a 64 MB limit), and room above the limit is
    /// no room at all.
    fn floor(&self, current: usize) -> usize {
        current.max(self.isolate.used_heap_size() as usize)
    }

    /// Heap to grant for the snapshot: the young generation's size, like Node
    /// (objects promoted while the snapshot is taken need room), but at most
    /// a quarter of the limit: on a small heap the young generation can be as
    /// large as the old one, and doubling the heap of a dying process only
    /// delays its end and blurs the snapshot.
    fn headroom(&self, current: usize) -> usize {
        let young = (self.isolate.heap_stats().heap_size_limit as usize).saturating_sub(current);
        young.min(current / 4).max(MIN_HEADROOM)
    }

    /// Inside the GC epilogue: no snapshot here. A crossing asks V8 for an
    /// interrupt, and the capture runs there, on this thread, when JS next
    /// checks for interrupts.
    /// Several thresholds crossed by one GC make one capture (for the
    /// highest): two snapshots of the same heap would only double the pause.
    fn check_thresholds(&self, used_bytes: u64) {
        let used = used_bytes as f64 / self.old_generation_limit().max(1) as f64;
        let mut armed = self.thresholds_armed.borrow_mut();
        let mut crossed = None;
        for (i, &fraction) in self.config.heap_thresholds.iter().enumerate() {
            if armed[i] && used >= fraction {
                armed[i] = false;
                crossed = Some(fraction);
            } else if !armed[i] && used < fraction - REARM_BELOW {
                armed[i] = true;
            }
        }
        if let Some(fraction) = crossed {
            let after = self.seq();
            self.isolate.request_interrupt(move |_| capture::capture_requested(Trigger::HeapThreshold { fraction, used }, after));
        }
    }

    /// After a mark-compact: one more point for the leak trend. A verdict
    /// goes to the timeline (`leak` marker), to JS listeners, to stderr, and
    /// — with `MEMGUARD_LEAK_SNAPSHOT` — to a capture at the next interrupt.
    fn check_leak(&self, used: u64) {
        let Some(leak) = self.leak_trend.borrow_mut().as_mut().and_then(|t| t.observe(now_ms(), used)) else {
            return;
        };
        self.last_affordable.borrow_mut().growing(leak.bytes_per_minute);
        let info = serde_json::to_value(&leak).unwrap_or_default();
        self.mark("leak", info.clone());
        self.events.borrow_mut().push(json!({ "type": "leak", "info": info }));
        // A leak that goes on gives a verdict every window: each one is a
        // marker and an event, but only the first a line on stderr.
        let line = format!(
            "the heap is growing steadily: {:.1} MB over the last {} mark-compacts ({:.1} MB/min){}",
            leak.growth_bytes as f64 / (1 << 20) as f64,
            leak.mark_compacts,
            leak.bytes_per_minute / (1 << 20) as f64,
            thread_note(self.manifest.borrow().thread_id),
        );
        if self.leak_reported.replace(true) {
            log::debug(&line);
            return;
        }
        log::info(&format!("{line}; later verdicts go to the timeline only"));
        // One leak capture per thread: the first verdict's.
        if self.config.leak_snapshot {
            let after = self.seq();
            self.isolate.request_interrupt(move |_| capture::capture_requested(Trigger::Leak(leak), after));
        }
    }
}

impl Guard {
    /// After a mark-compact (and its leak verdict, if any): is this the last
    /// moment a snapshot still fits? The decision is `lastaffordable`'s; the
    /// capture runs at the next interrupt, like a threshold's.
    fn check_last_affordable(&self, used: u64) {
        // The memory bound is read (/proc, /sys) only while it matters.
        let bound = || {
            let cgroup = Cgroup::process().and_then(Cgroup::read);
            afford::memory_bound(self.config.explicit_memory_limit(), procmem::rss_bytes(), cgroup)
        };
        const MB: f64 = (1 << 20) as f64;
        let decision = self.last_affordable.borrow_mut().observe(now_ms(), used, self.old_generation_limit(), bound);
        match decision {
            Decision::Take(plan) => {
                log::info(&format!(
                    "the heap is growing ({:.1} MB/min) and a snapshot when memory runs out would need about {:.0} MB \
                     with {:.0} MB left ({} limit {:.0} MB); taking one now while it fits, at {:.1} MB of heap \
                     (the app pauses about {:.1} s){}",
                    plan.bytes_per_minute / MB,
                    plan.end_needed_bytes as f64 / MB,
                    plan.end_available_bytes as f64 / MB,
                    plan.source,
                    plan.memory_limit_bytes as f64 / MB,
                    plan.used_heap_bytes as f64 / MB,
                    plan.expected_pause_ms as f64 / 1000.0,
                    thread_note(self.manifest.borrow().thread_id),
                ));
                self.mark("last-affordable", serde_json::to_value(&plan).unwrap_or_default());
                let after = self.seq();
                self.isolate.request_interrupt(move |_| capture::capture_requested(Trigger::LastAffordable(plan), after));
            }
            Decision::TooLate(plan) => log::debug(&format!(
                "the heap is growing, but at {:.1} MB it is already past the last affordable snapshot ({:.1} MB)",
                plan.used_heap_bytes as f64 / MB,
                plan.threshold_bytes as f64 / MB
            )),
            Decision::NotNeeded(_) | Decision::Wait => {}
        }
    }
}

impl GcHandler for Guard {
    fn gc(&self, phase: GcPhase, kind: u32, flags: u32) {
        if let Some(timeline) = &self.timeline {
            timeline.gc(phase, kind, flags);
        }
        if phase == GcPhase::End && kind == MARK_COMPACT {
            // Read once: both checks judge the live heap this GC left.
            let used = self.isolate.used_heap_size();
            if !self.config.heap_thresholds.is_empty() {
                self.check_thresholds(used);
            }
            if self.config.leak {
                self.check_leak(used);
            }
            if self.may_take_last_affordable() {
                self.check_last_affordable(used);
            }
        }
    }
}

impl NearHeapLimitHandler for Guard {
    fn near_heap_limit(&self, current: usize, initial: usize) -> usize {
        if self.in_near_limit.get() || self.capturing.get() {
            // Re-entered from inside our own snapshot (its GCs find the heap
            // still over the limit, which V8 only raises when we return): a
            // little more, so V8 does not abort the snapshot — a bounded
            // number of times, then V8 fails as it would have anyway.
            let n = self.nested_grants.get() + 1;
            self.nested_grants.set(n);
            if n > MAX_NESTED_GRANTS {
                return current;
            }
            let raised = self.floor(current).saturating_add(MIN_HEADROOM);
            self.limit_now.set(raised);
            return raised;
        }
        self.in_near_limit.set(true);
        self.nested_grants.set(0);
        self.limit_now.set(current);
        let headroom = self.headroom(current);

        let taken = self.near_limit_taken.get() + 1;
        self.near_limit_taken.set(taken);
        log::info(&format!(
            "heap is near its limit ({} MB used of {} MB){}; writing a heap snapshot",
            self.isolate.heap_stats().used_heap_size >> 20,
            current >> 20,
            thread_note(self.manifest.borrow().thread_id),
        ));
        let limit = HeapLimit {
            current: current as u64,
            initial: initial as u64,
            granted: self.floor(current).saturating_add(headroom) as u64,
        };
        // Failures are already reported (warning + manifest); the host's fate
        // is V8's to decide, exactly as without memguard.
        let _ = capture::capture(self, Trigger::NearHeapLimit(limit));
        let granted = self.limit_now.get().max(self.floor(current)).saturating_add(headroom);

        if taken >= self.config.near_limit_snapshots {
            // Last one: later near-limit events go to V8 (or Node's worker
            // handler) as if memguard had never been there.
            self.unwatch();
        }
        self.isolate.restore_initial_heap_limit(RESTORE_THRESHOLD);
        self.in_near_limit.set(false);
        granted
    }
}

/// A running capture (see [`Guard::begin_capture`]).
pub struct Capturing<'a>(&'a Guard);

impl Drop for Capturing<'_> {
    fn drop(&mut self) {
        let guard = self.0;
        guard.capturing.set(false);
        // Headroom granted inside another trigger's snapshot: V8 keeps it
        // until asked to go back to the initial limit (the near-limit
        // callback asks on its own way out).
        if !guard.in_near_limit.get() && guard.nested_grants.get() > 0 {
            guard.isolate.restore_initial_heap_limit(RESTORE_THRESHOLD);
        }
    }
}

pub fn thread_note(thread_id: u32) -> String {
    if thread_id == 0 {
        String::new()
    } else {
        format!(" in worker {thread_id}")
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Guard>>> = const { RefCell::new(None) };
}

/// The guard of this thread's isolate, if memguard is active here.
pub fn current() -> Option<Rc<Guard>> {
    CURRENT.with(|c| c.borrow().clone())
}

pub fn set_current(guard: Rc<Guard>) {
    CURRENT.with(|c| *c.borrow_mut() = Some(guard));
}

/// Stops guarding this thread's isolate: records how it ended, removes the
/// callbacks, frees state.
pub fn release_current(ended: Value) {
    if let Some(guard) = CURRENT.with(|c| c.borrow_mut().take()) {
        guard.shutdown(ended);
    }
}
