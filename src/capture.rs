//! What a capture does, whatever triggered it: read the heap statistics,
//! stream a snapshot to the writer thread, and keep `summary.json` current
//! before, during and after — so even a process killed mid-snapshot leaves a
//! manifest that says what was under way.

use std::path::PathBuf;
use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use memguard_core::upload;
use memguard_core::log;
use memguard_core::afford::{self, Skip};
use memguard_core::heapprofile;
use memguard_core::sourcemaps;
use memguard_core::lastaffordable::Plan;
use memguard_core::leak::Leak;
use memguard_core::watchdog::RssCrossing;
use memguard_core::procmem::{self, Cgroup, PeakRss};
use memguard_core::manifest::{Capture, FileRecord, Folded, HeapLimit, SnapshotMemory};
use memguard_core::disk;
use memguard_core::writer::Writer;

use crate::guard::{thread_note, Guard};
use crate::v8::SnapshotError;

/// Frames of the JS stack recorded with a near-limit capture.
const STACK_FRAMES: usize = 32;
/// Allocation sites listed in `summary.json`.
const TOP_SITES: usize = 10;

pub enum Trigger {
    NearHeapLimit(HeapLimit),
    /// Heap used after a mark-compact (`used`, a fraction of the initial
    /// limit) reached the threshold `fraction`.
    HeapThreshold { fraction: f64, used: f64 },
    /// The RSS watchdog saw the process cross its threshold.
    Rss(RssCrossing),
    /// `MEMGUARD_SIGNAL` arrived (its name).
    Signal(String),
    /// The leak trend found steady growth.
    Leak(Leak),
    /// A growing heap neared the largest one whose snapshot still fits in
    /// the memory limit (`lastaffordable`).
    LastAffordable(Plan),
    Api(Option<String>),
}

/// When a capture records the JS stack.
#[derive(PartialEq)]
enum StackAt {
    /// Captures run from an interrupt are at an interrupt check, where the
    /// stack can be walked safely: the code that was running.
    Now,
    /// Inside V8's near-heap-limit callback it cannot be (see
    /// `stack_when_js_resumes`).
    NextInterrupt,
    /// An API call: the caller knows its own stack.
    Never,
}

/// Takes a compressed heap snapshot into the guard's bundle and returns its
/// path. Errors are reported once (stderr + manifest) and returned as text.
pub fn capture(guard: &Guard, trigger: Trigger) -> Result<PathBuf, String> {
    let started = Instant::now();
    let _capturing = guard.begin_capture();
    let seq = guard.next_seq();
    let (trigger_name, reason) = describe(&trigger);
    // A last-affordable snapshot is taken to live on after it (see
    // `Guard::restart_allocation_sampling`).
    let lives_on = matches!(trigger, Trigger::LastAffordable(_));
    let (heap_limit, stack_at, detail) = match trigger {
        Trigger::NearHeapLimit(limit) => {
            guard.last_near_limit_seq.set(seq);
            (Some(limit), StackAt::NextInterrupt, None)
        }
        Trigger::Rss(crossing) => (None, StackAt::Now, serde_json::to_value(crossing).ok()),
        Trigger::Leak(leak) => (None, StackAt::Now, serde_json::to_value(&leak).ok()),
        Trigger::LastAffordable(plan) => (None, StackAt::Now, serde_json::to_value(&plan).ok()),
        Trigger::HeapThreshold { .. } | Trigger::Signal(_) => (None, StackAt::Now, None),
        Trigger::Api(_) => (None, StackAt::Never, None),
    };
    let file_name = format!("heap-{seq}.heapsnapshot.gz");
    let index = {
        let mut manifest = guard.manifest.borrow_mut();
        manifest.captures.push(Capture {
            seq,
            trigger: trigger_name.into(),
            reason,
            time: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            rss_bytes: procmem::rss_bytes(),
            detail,
            heap: guard.isolate.heap_stats(),
            spaces: guard.isolate.space_stats(),
            heap_limit,
            files: Vec::new(),
            top_allocation_sites: None,
            stack: (stack_at == StackAt::Now).then(|| guard.isolate.current_stack(STACK_FRAMES)),
            stack_taken: None,
            snapshot_memory: None,
            snapshot_skipped: None,
            outcome: "writing".into(),
            error: None,
            millis: 0,
            folded: Vec::new(),
        });
        manifest.captures.len() - 1
    };
    if stack_at == StackAt::NextInterrupt {
        // Requested first, so a skipped or failed snapshot still gets it.
        stack_when_js_resumes(index);
    }

    let Some(writer) = Writer::global() else {
        return fail(guard, index, started, "could not start memguard's writer thread".into());
    };
    // First write: the bundle exists and says a snapshot is under way.
    if let Err(e) = guard.save_manifest() {
        return fail(guard, index, started, format!("cannot write to {}: {e}", guard.bundle.path().display()));
    }
    // The cheap artifacts first: the snapshot may be the last thing this
    // process does (or more than its memory allows).
    write_allocation_profile(guard, writer, index, seq);
    copy_source_maps(guard, index, seq);
    // The timeline up to this moment goes to disk first too.
    guard.mark("snapshot-start", serde_json::json!({ "seq": seq, "trigger": trigger_name }));
    guard.flush();
    if let Err(skip) = affordable(guard, index) {
        return skipped(guard, index, started, skip);
    }
    // Under MEMGUARD_MAX_DISK the writer makes room for about this much.
    let expected = disk::snapshot_estimate(guard.manifest.borrow().captures[index].heap.used_heap_size);
    let sink = match writer.start_file_sized(&guard.bundle, &file_name, expected) {
        Ok(sink) => sink,
        Err(e) => return fail(guard, index, started, e.to_string()),
    };
    let used = guard.manifest.borrow().captures[index].heap.used_heap_size;
    let peak = PeakRss::start();
    let pause = Instant::now();
    let streamed = guard.isolate.write_heap_snapshot(&mut |chunk| sink.write(chunk));
    let pause_ms = pause.elapsed().as_millis() as u64;
    let (rss_before_bytes, peak_bytes, measured_by) = peak.finish();
    if lives_on {
        guard.restart_allocation_sampling();
    }
    crate::v8::trim_native_memory();
    guard.manifest.borrow_mut().captures[index].snapshot_memory = Some(SnapshotMemory {
        estimated_bytes: afford::snapshot_estimate(used),
        peak_bytes,
        rss_before_bytes,
        measured_by,
        pause_ms,
    });
    let record = match streamed {
        Ok(()) => sink.finish(),
        Err(SnapshotError::Stopped) => sink.finish(), // the writer's own error explains why
        Err(SnapshotError::NotTaken) => {
            sink.abort();
            return fail(guard, index, started, "V8 could not take a heap snapshot".into());
        }
    };
    let record = match record {
        Ok(record) => record,
        Err(e) => {
            let dir = guard.bundle.path();
            return fail(guard, index, started, format!("writing {} failed: {e}", dir.join(&file_name).display()));
        }
    };

    let path = guard.bundle.path().join(&record.name);
    log::info(&format!(
        "wrote {} ({:.1} MB compressed from {:.1} MB in {:.1} s){}",
        path.display(),
        record.bytes as f64 / 1e6,
        record.uncompressed_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        thread_note(guard.manifest.borrow().thread_id),
    ));
    {
        let mut manifest = guard.manifest.borrow_mut();
        let entry = &mut manifest.captures[index];
        entry.files.push(record);
        entry.outcome = "written".into();
        entry.millis = started.elapsed().as_millis() as u64;
    }
    guard.mark("snapshot-end", serde_json::json!({ "seq": seq, "file": file_name, "ok": true }));
    guard.flush();
    if let Err(e) = guard.save_manifest() {
        log::warn(&format!("could not update summary.json in {}: {e}", guard.bundle.path().display()));
    }
    if guard.config.upload.target.is_some() {
        // The process is usually about to die: the uploader, a process of its
        // own, waits for that and ships the bundle. Started from the writer
        // thread, after the files queued above, never from this one.
        let bundle = guard.bundle.path();
        writer.run_later(move || upload::spawn(&[bundle]));
    }
    Ok(path)
}

/// The trigger's name in `summary.json` and the reason it gives.
fn describe(trigger: &Trigger) -> (&'static str, Option<String>) {
    const MB: f64 = 1024.0 * 1024.0;
    match trigger {
        Trigger::NearHeapLimit(_) => ("near-heap-limit", None),
        Trigger::HeapThreshold { fraction, used } => (
            "heap-threshold",
            Some(format!("heap used after a mark-compact reached {fraction} of the heap limit ({used:.3})")),
        ),
        Trigger::Rss(crossing) => (
            "rss",
            Some(format!(
                "RSS {:.0} MB reached {} of the {:.0} MB limit ({})",
                crossing.rss_bytes as f64 / MB,
                crossing.threshold,
                crossing.limit_bytes as f64 / MB,
                crossing.source
            )),
        ),
        Trigger::Signal(name) => ("signal", Some(format!("{name} received"))),
        Trigger::Leak(leak) => (
            "leak",
            Some(format!(
                "heap used after mark-compacts grew {:.1} MB over the last {} ({:.1} MB/min)",
                leak.growth_bytes as f64 / MB,
                leak.mark_compacts,
                leak.bytes_per_minute / MB
            )),
        ),
        Trigger::LastAffordable(plan) => (
            "last-affordable",
            Some(format!(
                "the heap is growing and a snapshot when memory runs out would not fit ({:.0} MB needed, {:.0} MB left); \
                 taken at {:.1} MB of heap, below {:.1} MB, the largest whose snapshot fits",
                plan.end_needed_bytes as f64 / MB,
                plan.end_available_bytes as f64 / MB,
                plan.used_heap_bytes as f64 / MB,
                plan.threshold_bytes as f64 / MB
            )),
        ),
        Trigger::Api(reason) => ("api", reason.clone()),
    }
}

/// A capture requested earlier (from a GC callback, the watchdog, a
/// signal), now running at an interrupt check: on this thread's guard, if
/// memguard still guards it. Failures are reported by `capture` itself.
pub fn capture_current(trigger: Trigger) {
    if let Some(guard) = crate::guard::current() {
        let _ = capture(&guard, trigger);
    }
}

/// Like [`capture_current`], for a capture requested from this thread's GC
/// callback when its latest capture was `after`. V8 may reach its
/// near-heap-limit callback before it next checks for interrupts (inside one
/// long allocation, a `JSON.parse`): a near-limit snapshot taken since the
/// request is of the same heap at a worse moment, so the request is folded
/// into it — noted in its summary entry (`folded`) — instead of pausing the
/// process again for a second snapshot.
pub fn capture_requested(trigger: Trigger, after: u32) {
    let Some(guard) = crate::guard::current() else { return };
    let near_limit = guard.last_near_limit_seq.get();
    if near_limit <= after {
        let _ = capture(&guard, trigger);
        return;
    }
    let (name, reason) = describe(&trigger);
    log::debug(&format!("a {name} capture requested before near-limit capture {near_limit} was folded into it"));
    if let Some(entry) = guard.manifest.borrow_mut().captures.iter_mut().find(|c| c.seq == near_limit) {
        entry.folded.push(Folded { trigger: name.into(), reason });
    }
    guard.mark("capture-folded", serde_json::json!({ "trigger": name, "into": near_limit }));
    if let Err(e) = guard.save_manifest() {
        log::warn(&format!("could not update summary.json in {}: {e}", guard.bundle.path().display()));
    }
}

fn fail(guard: &Guard, index: usize, started: Instant, error: String) -> Result<PathBuf, String> {
    log::warn(&format!("heap snapshot not written: {error}; the application continues"));
    end_without_snapshot(guard, index, started, "failed", ("error", &error), |entry| entry.error = Some(error.clone()));
    Err(error)
}

/// Ends a capture that wrote no snapshot: the manifest entry gets its
/// outcome (and what `record` adds), the timeline its `snapshot-end` marker
/// (`ok: false` plus `why`), and both go to disk.
fn end_without_snapshot(
    guard: &Guard,
    index: usize,
    started: Instant,
    outcome: &str,
    why: (&str, &str),
    record: impl FnOnce(&mut Capture),
) {
    let seq = {
        let mut manifest = guard.manifest.borrow_mut();
        let entry = &mut manifest.captures[index];
        entry.outcome = outcome.into();
        entry.millis = started.elapsed().as_millis() as u64;
        record(entry);
        entry.seq
    };
    let mut detail = serde_json::json!({ "seq": seq, "ok": false });
    detail[why.0] = why.1.into();
    guard.mark("snapshot-end", detail);
    guard.flush();
    let _ = guard.save_manifest();
}

/// Writes `allocations-<seq>.heapprofile` (DevTools' allocation profile) and
/// the top allocation sites, when the sampling heap profiler runs.
fn write_allocation_profile(guard: &Guard, writer: &Writer, index: usize, seq: u32) {
    let started = Instant::now();
    let Some((nodes, samples)) = guard.allocation_profile() else { return };
    let name = format!("allocations-{seq}.heapprofile");
    let bytes = serde_json::to_vec(&heapprofile::to_cdp(&nodes, &samples)).unwrap_or_default();
    let size = bytes.len() as u64;
    let written = writer.write_atomic(&guard.bundle, &name, bytes);
    let mut manifest = guard.manifest.borrow_mut();
    let entry = &mut manifest.captures[index];
    entry.top_allocation_sites = Some(heapprofile::top_sites(&nodes, TOP_SITES));
    match written {
        Ok(()) => entry.files.push(FileRecord {
            name,
            bytes: size,
            uncompressed_bytes: size,
            millis: started.elapsed().as_millis() as u64,
        }),
        Err(e) => log::warn(&format!("could not write {name}: {e}")),
    }
}

/// The source maps of the scripts this capture names (its stack, its top
/// allocation sites), copied into the bundle within bounds (memguard-core's
/// `sourcemaps`), so the report maps positions on another machine too.
fn copy_source_maps(guard: &Guard, index: usize, seq: u32) {
    let urls: Vec<String> = {
        let manifest = guard.manifest.borrow();
        let entry = &manifest.captures[index];
        let stack = entry.stack.iter().flatten().map(|f| f.url.clone());
        let sites = entry.top_allocation_sites.iter().flatten().map(|s| s.url.clone());
        stack.chain(sites).collect()
    };
    if let Ok(dir) = guard.bundle.ensure() {
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        sourcemaps::copy_into(&dir, seq, &urls);
    }
}

/// The JS stack of a near-limit capture: the code that was allocating when
/// memory ran out. It cannot be walked inside the near-heap-limit callback
/// (an optimized frame stopped at an inline allocation has no deopt info
/// there, and V8 aborts the process), so it is taken at the first interrupt
/// check after the capture — the same code, a few instructions later, at a
/// point where V8 can describe every frame.
fn stack_when_js_resumes(index: usize) {
    let Some(guard) = crate::guard::current() else { return };
    guard.isolate.request_interrupt(move |isolate| {
        let stack = isolate.current_stack(STACK_FRAMES);
        {
            let mut manifest = guard.manifest.borrow_mut();
            let entry = &mut manifest.captures[index];
            entry.stack = Some(stack);
            entry.stack_taken = Some("at the first interrupt check after the trigger".into());
        }
        let _ = guard.save_manifest();
    });
}

/// Whether the snapshot fits in the memory the process can still take.
fn affordable(guard: &Guard, index: usize) -> Result<(), Skip> {
    let used = guard.manifest.borrow().captures[index].heap.used_heap_size;
    // A fixed RSS limit is the user's word on what the process may use.
    let headroom = afford::headroom(
        guard.config.explicit_memory_limit(),
        procmem::rss_bytes(),
        Cgroup::process().and_then(Cgroup::read),
        procmem::mem_available(),
    );
    afford::decide(guard.config.snapshot, used, headroom)
}

/// No snapshot this time: the cheaper artifacts (statistics, allocation
/// profile, timeline) are already written; say why in the manifest.
fn skipped(guard: &Guard, index: usize, started: Instant, skip: Skip) -> Result<PathBuf, String> {
    log::warn(&format!(
        "heap snapshot skipped: {}; wrote the heap statistics, allocation profile and timeline instead",
        skip.reason
    ));
    let reason = skip.reason.clone();
    end_without_snapshot(guard, index, started, "skipped", ("skipped", &reason), |entry| {
        entry.snapshot_skipped = Some(skip)
    });
    Err(format!("heap snapshot skipped: {reason}"))
}
