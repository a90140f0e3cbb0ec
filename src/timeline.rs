//! The isolate's side of the flight recorder: GC callbacks, heap samples and
//! markers become plain records sent to the recorder thread. The GC path
//! allocates nothing and never blocks: a full queue drops the record and
//! counts it.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memguard_core::bundle::Bundle;
use memguard_core::history;
use memguard_core::recorder::{now_ms, Event, GcRecord, Marker, Open, Recorder, SampleRecord, Shared};
use memguard_core::segments::Ring;
use serde_json::Value;

use crate::v8::{GcHandler, GcPhase, Isolate};

/// How long the JS thread may wait for the recorder at the ends (exit,
/// before a snapshot): long enough for a second's records, short enough
/// that a stuck disk cannot hold the host's exit.
const WAIT: Duration = Duration::from_secs(2);
/// GCs can nest (weak callbacks inside a full GC); deeper ones go unpaired.
const NESTING: usize = 4;

pub struct Timeline {
    id: u64,
    recorder: &'static Recorder,
    pub shared: Arc<Shared>,
    isolate: Isolate,
    started: Cell<[(Instant, u64); NESTING]>,
    depth: Cell<usize>,
}

impl Timeline {
    /// Opens `bundle/timeline.ndjson.gz` on the recorder thread, starting
    /// with `header`. `None` if the recorder thread cannot run.
    pub fn open(isolate: Isolate, bundle: &Bundle, header: Value, ring: Ring, history: history::Shape) -> Option<Rc<Timeline>> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let recorder = Recorder::global()?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(Shared::default());
        memguard_core::metrics::opened(id, &header, &shared);
        // Same channel as every later record, so it is handled first.
        let open = Open { bundle: bundle.clone(), t0_ms: now_ms(), header, shared: shared.clone(), ring, history };
        if !recorder.try_send(Event::Open { id, open: Box::new(open) }) {
            memguard_core::metrics::forget(id);
            return None;
        }
        Some(Rc::new(Timeline {
            id,
            recorder,
            shared,
            isolate,
            started: Cell::new([(Instant::now(), 0); NESTING]),
            depth: Cell::new(0),
        }))
    }

    /// Reads the heap statistics (on this, the isolate's thread) and hands
    /// them over; RSS and cgroup values are added on the recorder thread.
    pub fn sample(&self, array_buffers: u64) {
        let rec = SampleRecord {
            t_ms: now_ms(),
            heap: self.isolate.heap_stats(),
            spaces: self.isolate.space_stats(),
            array_buffers,
        };
        self.send(Event::Sample { id: self.id, rec: Box::new(rec) });
    }

    pub fn marker(&self, name: &str, detail: Value) {
        let marker = Marker { t_ms: now_ms(), name: name.into(), detail };
        self.send(Event::Marker { id: self.id, marker: Box::new(marker) });
    }

    /// Never blocks the isolate's thread: a record that finds the queue full
    /// is dropped and counted (the timeline then says how many).
    fn send(&self, event: Event) {
        if !self.recorder.try_send(event) {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits (briefly) until everything sent so far is on disk.
    pub fn flush(&self) -> bool {
        self.recorder.send_and_wait(|done| Event::Flush { done }, WAIT)
    }

    /// Writes out the rest and closes the file.
    pub fn close(&self) {
        let id = self.id;
        self.recorder.send_and_wait(|done| Event::Close { id, done }, WAIT);
    }

    /// Closes without waiting, for a retired bundle: nothing is written.
    pub fn close_later(&self) {
        let (done, _) = crossbeam_channel::bounded(1);
        self.send(Event::Close { id: self.id, done });
    }
}

impl GcHandler for Timeline {
    fn gc(&self, phase: GcPhase, kind: u32, flags: u32) {
        let depth = self.depth.get();
        match phase {
            GcPhase::Start => {
                if depth < NESTING {
                    let mut started = self.started.get();
                    started[depth] = (Instant::now(), self.isolate.used_heap_size());
                    self.started.set(started);
                }
                self.depth.set(depth + 1);
            }
            GcPhase::End => {
                let Some(depth) = depth.checked_sub(1) else { return };
                self.depth.set(depth);
                if depth >= NESTING {
                    return;
                }
                let (began, used_before) = self.started.get()[depth];
                let rec = GcRecord {
                    t_ms: now_ms(),
                    kind,
                    flags,
                    pause_ns: began.elapsed().as_nanos() as u64,
                    used_before,
                    used_after: self.isolate.used_heap_size(),
                };
                self.send(Event::Gc { id: self.id, rec });
            }
        }
    }
}
