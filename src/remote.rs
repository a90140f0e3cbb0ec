//! Requests from memguard's background threads (the RSS watchdog, the
//! signal watcher) to a JS thread. Those threads never call V8 themselves:
//! they ask an isolate for an interrupt, and the capture runs on the
//! isolate's own thread at its next interrupt check — even inside a
//! synchronous loop that never yields to the event loop.
//!
//! Every guarded isolate is listed here from start until its thread ends;
//! removal takes the same lock as a request, so no request can reach an
//! isolate that is being torn down (a worker's exit).

use parking_lot::Mutex;

use crate::v8::{Isolate, RemoteIsolate};

static ISOLATES: Mutex<Vec<(u32, RemoteIsolate)>> = Mutex::new(Vec::new());

pub fn register(thread_id: u32, isolate: Isolate) {
    ISOLATES.lock().push((thread_id, isolate.remote()));
}

/// Called on the isolate's thread before it goes away.
pub fn unregister(thread_id: u32) {
    ISOLATES.lock().retain(|(id, _)| *id != thread_id);
}

/// Runs `task` on the main thread's isolate (else the longest-guarded
/// worker's): process-wide events — RSS, a signal — are captured once, where
/// the application's own code runs. `false` if no isolate is guarded.
pub fn request_main(task: impl FnOnce(Isolate) + Send + 'static) -> bool {
    let isolates = ISOLATES.lock();
    let target = isolates.iter().find(|(id, _)| *id == 0).or_else(|| isolates.first());
    match target {
        Some((_, isolate)) => {
            // SAFETY: the lock is held; an isolate's thread unregisters it
            // (under this lock) before the isolate is disposed.
            unsafe { isolate.request_interrupt(task) };
            true
        }
        None => false,
    }
}
