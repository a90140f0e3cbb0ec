//! What memguard costs the process it runs in, accounted by memguard itself:
//! the CPU time of its own threads (each reads its thread CPU clock after
//! each piece of work) and the time spent in its callbacks on the JS threads
//! (a monotonic clock around each), as a share of the process's CPU time.
//! Whole-process timings cannot resolve 1 % on a shared machine (identical
//! runs differ by ±10 %); this can. Not counted: V8's own work for the
//! sampling heap profiler (inside V8's allocator) and deliberate captures
//! (a snapshot's pause is reported with the capture).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rustix::time::{clock_gettime, ClockId};
use serde::Serialize;

/// memguard's background threads, one of each per process.
#[derive(Clone, Copy)]
pub enum Role {
    Recorder,
    Writer,
    Watchdog,
    Metrics,
}

const ROLES: [(Role, &str); 4] = [
    (Role::Recorder, "recorder"),
    (Role::Writer, "writer"),
    (Role::Watchdog, "watchdog"),
    (Role::Metrics, "metrics"),
];

/// The running totals; one per process (`LEDGER`), others in tests.
struct Ledger {
    /// Each role's thread CPU time (ns) at its last checkpoint.
    thread_ns: [AtomicU64; ROLES.len()],
    callback_ns: AtomicU64,
    callbacks: AtomicU64,
}

static LEDGER: Ledger = Ledger::new();

fn nanos(clock: ClockId) -> u64 {
    let t = clock_gettime(clock);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Called by a memguard thread after a piece of work: records its CPU time so far.
pub fn checkpoint(role: Role) {
    LEDGER.checkpoint(role);
}

/// Runs one of memguard's callbacks on a JS thread and adds its duration.
/// Two reads of a vDSO clock (~20 ns each) and two atomic adds.
pub fn timed<R>(f: impl FnOnce() -> R) -> R {
    LEDGER.timed(f)
}

/// memguard's cost so far, for `summary.json` and `memguard.selfCost()`.
pub fn current() -> SelfCost {
    LEDGER.current()
}

/// memguard's cost so far.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SelfCost {
    /// CPU time of each background thread that ran.
    pub threads_cpu_ms: BTreeMap<&'static str, f64>,
    /// Time in memguard's callbacks on the JS threads (GC callbacks, the
    /// sampling timer, event delivery), and how many ran.
    pub callbacks_ms: f64,
    pub callbacks: u64,
    /// The whole process's CPU time, all threads.
    pub process_cpu_ms: f64,
    /// (threads + callbacks) / process CPU time.
    pub share: f64,
}

impl Ledger {
    const fn new() -> Ledger {
        Ledger { thread_ns: [const { AtomicU64::new(0) }; ROLES.len()], callback_ns: AtomicU64::new(0), callbacks: AtomicU64::new(0) }
    }

    fn checkpoint(&self, role: Role) {
        self.thread_ns[role as usize].store(nanos(ClockId::ThreadCPUTime), Ordering::Relaxed);
    }

    fn timed<R>(&self, f: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let out = f();
        self.callback_ns.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.callbacks.fetch_add(1, Ordering::Relaxed);
        out
    }

    fn current(&self) -> SelfCost {
        let ms = |ns: u64| ns as f64 / 1e6;
        let threads_cpu_ms: BTreeMap<&'static str, f64> = ROLES
            .iter()
            .map(|&(role, name)| (name, self.thread_ns[role as usize].load(Ordering::Relaxed)))
            .filter(|&(_, ns)| ns > 0)
            .map(|(name, ns)| (name, ms(ns)))
            .collect();
        let callbacks_ms = ms(self.callback_ns.load(Ordering::Relaxed));
        let process_cpu_ms = ms(nanos(ClockId::ProcessCPUTime));
        let ours = threads_cpu_ms.values().sum::<f64>() + callbacks_ms;
        SelfCost {
            threads_cpu_ms,
            callbacks_ms,
            callbacks: self.callbacks.load(Ordering::Relaxed),
            process_cpu_ms,
            share: if process_cpu_ms > 0.0 { ours / process_cpu_ms } else { 0.0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burns `ms` of this thread's CPU time (not wall time: a loaded machine
    /// stretches the wall time, not the CPU time).
    fn spin(ms: u64) {
        let end = nanos(ClockId::ThreadCPUTime) + ms * 1_000_000;
        let mut x = 0u64;
        while nanos(ClockId::ThreadCPUTime) < end {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    }

    #[test]
    fn counts_threads_and_callbacks_within_the_process_total() {
        static TEST: Ledger = Ledger::new();
        std::thread::spawn(|| {
            spin(30);
            TEST.checkpoint(Role::Watchdog);
        })
        .join()
        .unwrap();
        TEST.timed(|| spin(20));
        let c = TEST.current();
        let watchdog = c.threads_cpu_ms["watchdog"];
        assert!((20.0..200.0).contains(&watchdog), "{c:?}");
        assert!(c.callbacks_ms >= 19.0 && c.callbacks >= 1, "{c:?}");
        assert!(c.process_cpu_ms >= watchdog + 20.0, "{c:?}");
        assert!(c.share > 0.0, "{c:?}");
        assert!(!c.threads_cpu_ms.contains_key("metrics"), "threads that never ran are left out");
    }
}
