//! The last affordable moment. In a container whose memory limit is close to
//! (or below) V8's heap limit, the snapshot memguard would take near the
//! heap limit needs many times the heap in native memory and is refused
//! (`afford`): the bundle has no snapshot at all. While the heap is still
//! small it does fit. So, once a leak trend says the heap is growing, and
//! the snapshot at the expected end would not fit, one capture is taken when
//! heap used after a mark-compact approaches the largest heap whose snapshot
//! still fits in the memory left (with a margin). Pure: the GC callback
//! feeds it numbers; the guard turns `Take` into a capture.

use serde::Serialize;

use crate::afford::{snapshot_estimate, MemoryBound, SNAPSHOT_BYTES_PER_HEAP_BYTE};

/// The threshold leaves this share of the estimate on top: the estimate is
/// measured to be within ±10 % on object-dense heaps (`npm run
/// bench:afford`), and the rest of the process (Buffers, the young
/// generation) moves a little between one mark-compact and the next.
pub const MARGIN: f64 = 0.2;

/// Milliseconds the application stands still per MiB of used heap while V8
/// takes a snapshot (measured by `npm run bench:afford`, Node 20 and 26 on a
/// shared 2-core machine: 60–100 ms/MiB object-dense, less for strings).
pub const PAUSE_MS_PER_MIB: f64 = 85.0;

/// Why and when: what the capture's `detail` says in `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Heap used after the mark-compact that fired.
    pub used_heap_bytes: u64,
    /// The largest heap whose snapshot fits (estimate plus `MARGIN`).
    pub threshold_bytes: u64,
    /// The memory bound: limit, what was in use, where it came from.
    pub memory_limit_bytes: u64,
    pub memory_used_bytes: u64,
    pub source: &'static str,
    /// Where the heap is expected to end: V8's heap limit, or where the
    /// memory bound runs out first.
    pub end_heap_bytes: u64,
    /// What a snapshot there would need, and what would be left for it.
    pub end_needed_bytes: u64,
    pub end_available_bytes: u64,
    /// What this snapshot is expected to need, and to pause the app.
    pub estimated_bytes: u64,
    pub expected_pause_ms: u64,
    /// The growth the leak trend measured.
    pub bytes_per_minute: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing to do now (no growing trend, no known bound, or the heap is
    /// still well below the threshold).
    Wait,
    /// Take the capture now (once: later calls say `Wait`).
    Take(Plan),
    /// The snapshot at the end would fit anyway: the near-limit capture will
    /// take it. Judged again at the next mark-compact.
    NotNeeded(Plan),
    /// The heap is already past the last moment (the trend came too late);
    /// said once, then `Wait`.
    TooLate(Plan),
}

/// Per thread: one capture at most.
#[derive(Debug, Default)]
pub struct LastAffordable {
    bytes_per_minute: Option<f64>,
    last_used: Option<u64>,
    done: bool,
}

impl LastAffordable {
    pub fn new() -> LastAffordable {
        LastAffordable::default()
    }

    /// The leak trend found steady growth (a verdict of `leak::LeakTrend`).
    pub fn growing(&mut self, bytes_per_minute: f64) {
        if bytes_per_minute > 0.0 {
            self.bytes_per_minute = Some(bytes_per_minute);
        }
    }

    /// Whether `observe` needs the memory bound now: a caller reads it
    /// (files under /proc and /sys) only then.
    pub fn watching(&self) -> bool {
        !self.done && self.bytes_per_minute.is_some()
    }

    /// A mark-compact left `used` bytes of heap; `heap_limit` is V8's limit
    /// and `bound` the process's memory bound, if one is known.
    pub fn observe(&mut self, used: u64, heap_limit: u64, bound: Option<MemoryBound>) -> Decision {
        // The growth since the previous mark-compact: the next one is
        // expected about this much higher.
        let step = used.saturating_sub(self.last_used.replace(used).unwrap_or(used));
        let (Some(bytes_per_minute), Some(bound), false) =
            (self.bytes_per_minute, bound, self.done)
        else {
            return Decision::Wait;
        };
        let plan = plan(used, heap_limit, bound, bytes_per_minute);
        if plan.end_needed_bytes <= plan.end_available_bytes {
            return Decision::NotNeeded(plan);
        }
        if used > ceiling(&bound, used) {
            self.done = true;
            return Decision::TooLate(plan);
        }
        if used.saturating_add(step) >= plan.threshold_bytes {
            self.done = true;
            return Decision::Take(plan);
        }
        Decision::Wait
    }
}

/// What the heap and a snapshot share: the bound minus everything else the
/// process (or the container) holds.
fn room(bound: &MemoryBound, used: u64) -> u64 {
    let other = bound.used_bytes.saturating_sub(used);
    bound.limit_bytes.saturating_sub(other)
}

/// The largest heap H whose snapshot fits at all: H + estimate(H) ≤ room.
/// Past it the affordability check would refuse the snapshot.
fn ceiling(bound: &MemoryBound, used: u64) -> u64 {
    room(bound, used) / (SNAPSHOT_BYTES_PER_HEAP_BYTE + 1)
}

/// The numbers for a heap of `used` bytes under `bound`.
pub fn plan(used: u64, heap_limit: u64, bound: MemoryBound, bytes_per_minute: f64) -> Plan {
    let room = room(&bound, used);
    let end_heap = heap_limit.min(room);
    let per_heap_byte = SNAPSHOT_BYTES_PER_HEAP_BYTE as f64 * (1.0 + MARGIN) + 1.0;
    Plan {
        used_heap_bytes: used,
        threshold_bytes: (room as f64 / per_heap_byte) as u64,
        memory_limit_bytes: bound.limit_bytes,
        memory_used_bytes: bound.used_bytes,
        source: bound.source,
        end_heap_bytes: end_heap,
        end_needed_bytes: snapshot_estimate(end_heap),
        end_available_bytes: room - end_heap,
        estimated_bytes: snapshot_estimate(used),
        expected_pause_ms: expected_pause_ms(used),
        bytes_per_minute,
    }
}

/// How long a snapshot of `used` bytes of heap is expected to stop the app.
pub fn expected_pause_ms(used: u64) -> u64 {
    (used as f64 / (1 << 20) as f64 * PAUSE_MS_PER_MIB) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    /// A 400 MB container with 40 MB outside the heap.
    fn container(heap: u64) -> Option<MemoryBound> {
        Some(MemoryBound {
            limit_bytes: 400 * MB,
            used_bytes: 40 * MB + heap,
            source: "cgroup",
        })
    }

    #[test]
    fn a_flat_heap_never_fires() {
        let mut la = LastAffordable::new();
        for _ in 0..100 {
            assert_eq!(
                la.observe(20 * MB, 4096 * MB, container(20 * MB)),
                Decision::Wait
            );
        }
        assert!(!la.watching(), "no growing trend: no memory reads either");
    }

    #[test]
    fn without_a_known_bound_never_fires() {
        let mut la = LastAffordable::new();
        la.growing(60.0 * MB as f64);
        for used in (4..400).map(|m| m * MB) {
            assert_eq!(la.observe(used, 4096 * MB, None), Decision::Wait);
        }
    }

    #[test]
    fn affordable_at_the_end_is_left_to_the_near_limit_capture() {
        // A 64 MB heap limit in a 4 GB container: 64 MB × 16 = 1 GB fits.
        let mut la = LastAffordable::new();
        la.growing(60.0 * MB as f64);
        let big = |heap| {
            Some(MemoryBound {
                limit_bytes: 4096 * MB,
                used_bytes: 40 * MB + heap,
                source: "cgroup",
            })
        };
        for used in (4..64).map(|m| m * MB) {
            assert!(
                matches!(la.observe(used, 64 * MB, big(used)), Decision::NotNeeded(_)),
                "{used}"
            );
        }
        assert!(
            la.watching(),
            "judged again: the container may fill up otherwise"
        );
    }

    #[test]
    fn growing_and_unaffordable_fires_once_near_the_threshold() {
        let mut la = LastAffordable::new();
        // Before the trend: nothing, whatever the heap.
        assert_eq!(
            la.observe(8 * MB, 4096 * MB, container(8 * MB)),
            Decision::Wait
        );
        la.growing(30.0 * MB as f64);
        // room = 360 MB; threshold = 360 / (16 × 1.2 + 1) = 17.8 MB; ceiling 360 / 17 = 21.2 MB.
        let mut fired = Vec::new();
        for used in (9..=40).map(|m| m * MB) {
            if let Decision::Take(plan) = la.observe(used, 4096 * MB, container(used)) {
                fired.push(plan);
            }
        }
        assert_eq!(fired.len(), 1, "once only");
        let plan = &fired[0];
        assert_eq!(plan.threshold_bytes, (360.0 * MB as f64 / 20.2) as u64);
        // 1 MB per mark-compact: fires at 17 MB, when the next one would pass 17.8 MB.
        assert_eq!(plan.used_heap_bytes, 17 * MB);
        assert_eq!(plan.estimated_bytes, 16 * 17 * MB);
        assert!(
            plan.estimated_bytes + plan.used_heap_bytes + 40 * MB < 400 * MB,
            "it fits: {plan:?}"
        );
        // The end: the container runs out first (heap limit 4 GB): nothing left for a snapshot.
        assert_eq!(
            (plan.end_heap_bytes, plan.end_available_bytes),
            (360 * MB, 0)
        );
        assert_eq!(plan.expected_pause_ms, (17.0 * PAUSE_MS_PER_MIB) as u64);
        assert!(!la.watching());
    }

    #[test]
    fn the_default_heap_limit_below_the_container_limit_still_fires() {
        // Node's default limit in a 400 MB container is ~200 MB: a snapshot
        // there needs 3.2 GB, never there.
        let mut la = LastAffordable::new();
        la.growing(30.0 * MB as f64);
        let decisions: Vec<_> = (5..200)
            .map(|m| la.observe(m * MB, 200 * MB, container(m * MB)))
            .collect();
        let taken: Vec<_> = decisions
            .iter()
            .filter(|d| matches!(d, Decision::Take(_)))
            .collect();
        assert_eq!(taken.len(), 1);
        let Decision::Take(plan) = taken[0] else {
            unreachable!()
        };
        assert_eq!(
            (plan.end_heap_bytes, plan.end_available_bytes),
            (200 * MB, 160 * MB)
        );
    }

    #[test]
    fn a_big_step_fires_early_rather_than_past_the_ceiling() {
        let mut la = LastAffordable::new();
        la.growing(300.0 * MB as f64);
        assert_eq!(
            la.observe(5 * MB, 4096 * MB, container(5 * MB)),
            Decision::Wait
        );
        // 10 MB per mark-compact: 15 MB + 10 MB would be past the threshold.
        assert!(matches!(
            la.observe(15 * MB, 4096 * MB, container(15 * MB)),
            Decision::Take(_)
        ));
    }

    #[test]
    fn a_trend_that_comes_too_late_says_so_once() {
        let mut la = LastAffordable::new();
        la.growing(30.0 * MB as f64);
        assert!(matches!(
            la.observe(50 * MB, 4096 * MB, container(50 * MB)),
            Decision::TooLate(_)
        ));
        assert_eq!(
            la.observe(51 * MB, 4096 * MB, container(51 * MB)),
            Decision::Wait
        );
        assert!(!la.watching());
    }

    #[test]
    fn an_explicit_limit_counts_rss() {
        let bound = MemoryBound {
            limit_bytes: 1024 * MB,
            used_bytes: 100 * MB,
            source: "MEMGUARD_MEMORY_LIMIT",
        };
        let plan = plan(30 * MB, 4096 * MB, bound, 1.0);
        // room = 1024 − 70 = 954 MB
        assert_eq!(plan.end_heap_bytes, 954 * MB);
        assert_eq!(plan.threshold_bytes, (954.0 * MB as f64 / 20.2) as u64);
        assert_eq!(plan.source, "MEMGUARD_MEMORY_LIMIT");
    }
}
