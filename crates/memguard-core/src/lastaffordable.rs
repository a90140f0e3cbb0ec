//! The last affordable moment. In a container whose memory limit is close to
//! (or below) V8's heap limit, the snapshot memguard would take near the
//! heap limit needs many times the heap in native memory and is refused
//! (`afford`): the bundle has no snapshot at all. While the heap is still
//! small it does fit. So, once a trend says the heap is growing, and
//! the snapshot at the expected end would not fit, one capture is taken when
//! heap used after a mark-compact approaches the largest heap whose snapshot
//! still fits in the memory left (with a margin). Pure: the GC callback
//! feeds it numbers; the guard turns `Take` into a capture.
//!
//! "Growing" is the leak trend's verdict (`leak::LeakTrend`) or a shorter
//! trend of its own: in a 400 MB container the last affordable heap is
//! ~18 MB, and the leak trend's default bar (8 MiB over 20 mark-compacts) is
//! often met only past it. The short trend asks for the same rank
//! concordance over the mark-compacts of the last `MAX_SPAN_MS` (at least
//! `MIN_POINTS` of them, at most `MAX_POINTS`), which must span at least
//! `MIN_SPAN_MS` (a start-up that loads its modules or fills a cache is over
//! sooner) and add up to `MIN_GROWTH`.

use std::collections::VecDeque;

use serde::Serialize;

use crate::afford::{snapshot_estimate, MemoryBound, SNAPSHOT_BYTES_PER_HEAP_BYTE};
use crate::leak::{trend, Trend, MIN_CONCORDANCE};

/// Mark-compacts the short trend needs at least, and looks back over at most.
pub const MIN_POINTS: usize = 8;
pub const MAX_POINTS: usize = 64;
/// The short trend looks back this far ...
pub const MAX_SPAN_MS: f64 = 60_000.0;
/// ... and its points must span at least this long: growth that is over in
/// seconds (start-up, a cache filling) is not a leak.
pub const MIN_SPAN_MS: f64 = 5_000.0;
/// ... and add up to this much.
pub const MIN_GROWTH: f64 = (1 << 20) as f64;

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
    /// The leak trend's verdict: it stays.
    leak_per_minute: Option<f64>,
    /// The recent mark-compacts: (ms, heap used after it).
    points: VecDeque<(f64, u64)>,
    done: bool,
}

impl LastAffordable {
    pub fn new() -> LastAffordable {
        LastAffordable::default()
    }

    /// The leak trend found steady growth (a verdict of `leak::LeakTrend`).
    pub fn growing(&mut self, bytes_per_minute: f64) {
        if bytes_per_minute > 0.0 {
            self.leak_per_minute = Some(bytes_per_minute);
        }
    }

    /// A mark-compact ended at `t_ms` and left `used` bytes of heap;
    /// `heap_limit` is V8's limit. `bound` reads the process's memory bound
    /// (files under /proc and /sys): called only when there is something to
    /// judge — a growing heap, no capture yet.
    pub fn observe(
        &mut self,
        t_ms: f64,
        used: u64,
        heap_limit: u64,
        bound: impl FnOnce() -> Option<MemoryBound>,
    ) -> Decision {
        // The growth since the previous mark-compact: the next one is
        // expected about this much higher.
        let step = used.saturating_sub(self.points.back().map_or(used, |p| p.1));
        self.points.push_back((t_ms, used));
        while self.points.len() > MAX_POINTS || self.points.front().is_some_and(|p| t_ms - p.0 > MAX_SPAN_MS) {
            self.points.pop_front();
        }
        if self.done {
            return Decision::Wait;
        }
        // The short trend is judged afresh each time: a heap that rose and
        // then stayed flat stops being "growing" once its window is flat.
        let Some(bytes_per_minute) = self.leak_per_minute.or_else(|| self.short_trend()) else {
            return Decision::Wait;
        };
        let Some(bound) = bound() else { return Decision::Wait };
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

    /// Bytes per minute when the recent mark-compacts show steady growth
    /// over at least `MIN_SPAN_MS`.
    fn short_trend(&self) -> Option<f64> {
        if self.points.len() < MIN_POINTS {
            return None;
        }
        let pts: Vec<(f64, f64)> = self.points.iter().map(|&(t, u)| (t, u as f64)).collect();
        let Trend { slope_per_ms, concordance } = trend(&pts);
        let span = pts[pts.len() - 1].0 - pts[0].0;
        let steady = concordance >= MIN_CONCORDANCE && span >= MIN_SPAN_MS && slope_per_ms * span >= MIN_GROWTH;
        steady.then_some(slope_per_ms * 60_000.0)
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
        Some(MemoryBound { limit_bytes: 400 * MB, used_bytes: 40 * MB + heap, source: "cgroup" })
    }

    /// Mark-compacts one second apart, heap used after each from `heaps` (MB);
    /// the decisions, with the bound reads counted.
    fn run(la: &mut LastAffordable, heaps: impl IntoIterator<Item = u64>, heap_limit: u64) -> (Vec<Decision>, usize) {
        let mut reads = 0;
        let decisions = heaps
            .into_iter()
            .enumerate()
            .map(|(i, mb)| {
                la.observe(i as f64 * 1000.0, mb * MB, heap_limit, || {
                    reads += 1;
                    container(mb * MB)
                })
            })
            .collect();
        (decisions, reads)
    }

    fn taken(decisions: &[Decision]) -> Vec<&Plan> {
        decisions.iter().filter_map(|d| if let Decision::Take(p) = d { Some(p) } else { None }).collect()
    }

    #[test]
    fn a_flat_heap_never_fires_nor_reads_memory() {
        let mut la = LastAffordable::new();
        // Up and down around 15 MB, below the threshold but never steadily rising.
        let (decisions, reads) = run(&mut la, (0..200).map(|i| 14 + (i * 7919) % 3), 4096 * MB);
        assert!(decisions.iter().all(|d| *d == Decision::Wait));
        assert_eq!(reads, 0, "no growing trend: no memory reads either");
    }

    #[test]
    fn a_quick_start_up_ramp_is_not_a_trend() {
        // 4 → 60 MB in 8 mark-compacts 0.1 s apart: over in under a second.
        let mut la = LastAffordable::new();
        for i in 0..8 {
            let used = (4 + i as u64 * 8) * MB;
            assert_eq!(la.observe(i as f64 * 100.0, used, 4096 * MB, || container(used)), Decision::Wait);
        }
        // Then flat: while the ramp is still in the window it looks like
        // growth, but far past the last affordable heap: no capture.
        let later: Vec<_> =
            (8..100).map(|i| la.observe(i as f64 * 1000.0, 60 * MB, 4096 * MB, || container(60 * MB))).collect();
        assert!(later.iter().all(|d| matches!(d, Decision::Wait | Decision::TooLate(_))), "{later:?}");
    }

    #[test]
    fn a_small_heap_that_rose_and_stays_flat_does_not_fire() {
        // Up to 15 MB over 10 s, then flat at 15–16 MB (threshold 17.8 MB).
        let mut la = LastAffordable::new();
        let heaps = (5..=15).chain((0..200).map(|i| 15 + i % 2));
        let (decisions, _) = run(&mut la, heaps, 4096 * MB);
        assert!(taken(&decisions).is_empty());
    }

    #[test]
    fn frequent_mark_compacts_still_show_the_trend() {
        // Ten mark-compacts a second (churn), 0.5 MB/s of leak: the trend is
        // judged over the last seconds, not the last 8 mark-compacts (0.7 s).
        let mut la = LastAffordable::new();
        let decisions: Vec<_> = (0..400)
            .map(|i| {
                let used = 5 * MB + i * MB / 20;
                la.observe(i as f64 * 100.0, used, 4096 * MB, || container(used))
            })
            .collect();
        let fired = taken(&decisions);
        assert_eq!(fired.len(), 1, "{:?}", decisions.iter().find(|d| !matches!(d, Decision::Wait)));
        assert!(fired[0].used_heap_bytes < fired[0].threshold_bytes);
    }

    #[test]
    fn without_a_known_bound_never_fires() {
        let mut la = LastAffordable::new();
        la.growing(60.0 * MB as f64);
        for used in 4..400 {
            assert_eq!(la.observe(used as f64 * 1000.0, used * MB, 4096 * MB, || None), Decision::Wait);
        }
    }

    #[test]
    fn affordable_at_the_end_is_left_to_the_near_limit_capture() {
        // A 64 MB heap limit in a 4 GB container: 64 MB × 16 = 1 GB fits.
        let mut la = LastAffordable::new();
        let big = |heap| Some(MemoryBound { limit_bytes: 4096 * MB, used_bytes: 40 * MB + heap, source: "cgroup" });
        let decisions: Vec<_> =
            (4..64).map(|m| la.observe(m as f64 * 1000.0, m * MB, 64 * MB, || big(m * MB))).collect();
        assert!(decisions[..MIN_POINTS - 1].iter().all(|d| *d == Decision::Wait), "no trend yet");
        assert!(decisions[MIN_POINTS..].iter().all(|d| matches!(d, Decision::NotNeeded(_))), "{decisions:?}");
    }

    #[test]
    fn growing_and_unaffordable_fires_once_near_the_threshold() {
        let mut la = LastAffordable::new();
        // 1 MB per mark-compact, one a second: the short trend after 8 of them (7 s).
        let (decisions, reads) = run(&mut la, 4..=60, 4096 * MB);
        let fired = taken(&decisions);
        assert_eq!(fired.len(), 1, "once only");
        let plan = fired[0];
        // room = 360 MB; threshold = 360 / (16 × 1.2 + 1) = 17.8 MB (the ceiling, 360 / 17, is 21.2 MB).
        assert_eq!(plan.threshold_bytes, (360.0 * MB as f64 / 20.2) as u64);
        // It fires at 17 MB, when the next mark-compact would pass 17.8 MB.
        assert_eq!(plan.used_heap_bytes, 17 * MB);
        assert_eq!(plan.estimated_bytes, 16 * 17 * MB);
        assert!(plan.estimated_bytes + plan.used_heap_bytes + 40 * MB < 400 * MB, "it fits: {plan:?}");
        assert!((plan.bytes_per_minute / MB as f64 - 60.0).abs() < 1.0, "{}", plan.bytes_per_minute);
        // The end: the container runs out first (heap limit 4 GB): nothing left for a snapshot.
        assert_eq!((plan.end_heap_bytes, plan.end_available_bytes), (360 * MB, 0));
        assert_eq!(plan.expected_pause_ms, (17.0 * PAUSE_MS_PER_MIB) as u64);
        // Memory was read from the first growing verdict to the capture, never after.
        assert_eq!(reads as u64, 17 - (4 + MIN_POINTS as u64 - 1) + 1);
    }

    #[test]
    fn the_default_heap_limit_below_the_container_limit_still_fires() {
        // Node's default limit in a 400 MB container is ~200 MB: a snapshot
        // there needs 3.2 GB, never there.
        let mut la = LastAffordable::new();
        let (decisions, _) = run(&mut la, 4..200, 200 * MB);
        let fired = taken(&decisions);
        assert_eq!(fired.len(), 1);
        assert_eq!((fired[0].end_heap_bytes, fired[0].end_available_bytes), (200 * MB, 160 * MB));
    }

    #[test]
    fn the_leak_verdict_counts_as_growing_and_a_big_step_fires_early() {
        let mut la = LastAffordable::new();
        la.growing(300.0 * MB as f64);
        assert_eq!(la.observe(0.0, 5 * MB, 4096 * MB, || container(5 * MB)), Decision::Wait);
        // 10 MB per mark-compact: 15 MB + 10 MB would be past the threshold.
        assert!(matches!(la.observe(1000.0, 15 * MB, 4096 * MB, || container(15 * MB)), Decision::Take(_)));
    }

    #[test]
    fn a_trend_that_comes_too_late_says_so_once() {
        let mut la = LastAffordable::new();
        la.growing(30.0 * MB as f64);
        assert!(matches!(la.observe(0.0, 50 * MB, 4096 * MB, || container(50 * MB)), Decision::TooLate(_)));
        assert_eq!(la.observe(1.0, 51 * MB, 4096 * MB, || container(51 * MB)), Decision::Wait);
    }

    #[test]
    fn an_explicit_limit_counts_rss() {
        let bound = MemoryBound { limit_bytes: 1024 * MB, used_bytes: 100 * MB, source: "MEMGUARD_MEMORY_LIMIT" };
        let plan = plan(30 * MB, 4096 * MB, bound, 1.0);
        // room = 1024 − 70 = 954 MB
        assert_eq!(plan.end_heap_bytes, 954 * MB);
        assert_eq!(plan.threshold_bytes, (954.0 * MB as f64 / 20.2) as u64);
        assert_eq!(plan.source, "MEMGUARD_MEMORY_LIMIT");
    }
}
