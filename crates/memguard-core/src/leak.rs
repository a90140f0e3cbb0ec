//! Leak trend: is the live heap growing steadily? Judged on heap used right
//! after mark-compacts (the only moments "used" means "live"), over a window
//! of the last N of them. Pure: the GC callback feeds it numbers.
//!
//! memwatch called five consecutive increases a leak; one quiet GC resets
//! that, and heavy churn makes the after-GC figure jitter both ways. Here a
//! leak needs all of:
//! - a rising trend by rank: at least 80 % of the ordered pairs in the window
//!   rise (Kendall's concordance; bounded churn sits near 50 %);
//! - a robust slope (Theil–Sen: the median of the pairwise slopes, which a
//!   few outliers cannot move) that is positive;
//! - a real amount: the slope over the window's span adds up to at least
//!   `min_growth` bytes (caches and JIT code warming up grow a little, then stop).
//! After a verdict the window starts afresh: a leak that goes on is reported
//! again one full window later.

use std::collections::VecDeque;

use serde::Serialize;

/// Share of rising pairs needed: random jitter gives ~0.5, a steady leak ~1.
/// (`memguard report` judges a whole recording by the same bar.)
pub const MIN_CONCORDANCE: f64 = 0.8;

/// The trend of a series of `(t_ms, bytes)` points, judged pair by pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Theil–Sen slope: the median of the pairwise slopes (bytes per ms),
    /// 0 when no two points differ in time.
    pub slope_per_ms: f64,
    /// Share of ordered pairs that rise among those that change (0.5 when
    /// none change).
    pub concordance: f64,
}

/// Theil–Sen slope and rank concordance over every pair of `points` (in
/// time order): O(n²), so callers bound n.
pub fn trend(points: &[(f64, f64)]) -> Trend {
    let (mut rising, mut falling) = (0u64, 0u64);
    let mut slopes = Vec::with_capacity(points.len() * points.len().saturating_sub(1) / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            if b.1 > a.1 {
                rising += 1;
            } else if b.1 < a.1 {
                falling += 1;
            }
            let dt = b.0 - a.0;
            if dt > 0.0 {
                slopes.push((b.1 - a.1) / dt);
            }
        }
    }
    Trend {
        slope_per_ms: median(&mut slopes).unwrap_or(0.0),
        concordance: if rising + falling == 0 { 0.5 } else { rising as f64 / (rising + falling) as f64 },
    }
}

/// The median (the mean of the middle two for an even count), in O(n).
pub fn median(values: &mut [f64]) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let (lower, &mut upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        return Some(upper);
    }
    let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((below + upper) / 2.0)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Leak {
    /// Theil–Sen slope of heap used after mark-compacts.
    pub bytes_per_minute: f64,
    /// Slope × the window's time span.
    pub growth_bytes: u64,
    /// Heap used after the first and the last mark-compact of the window.
    pub from_bytes: u64,
    pub to_bytes: u64,
    pub mark_compacts: u32,
    pub span_ms: f64,
    /// Share of ordered pairs that rise (0.5 ≈ no trend, 1 = every one).
    pub concordance: f64,
}

pub struct LeakTrend {
    window: usize,
    min_growth: u64,
    points: VecDeque<(f64, u64)>,
}

impl LeakTrend {
    pub fn new(window: u32, min_growth: u64) -> LeakTrend {
        let window = window.max(3) as usize;
        LeakTrend { window, min_growth, points: VecDeque::with_capacity(window) }
    }

    /// One mark-compact ended at `t_ms` with `used` bytes live. Returns the
    /// verdict when this point completes a window that shows a leak.
    pub fn observe(&mut self, t_ms: f64, used: u64) -> Option<Leak> {
        if self.points.len() == self.window {
            self.points.pop_front();
        }
        self.points.push_back((t_ms, used));
        if self.points.len() < self.window {
            return None;
        }
        let leak = self.judge()?;
        self.points.clear();
        Some(leak)
    }

    fn judge(&self) -> Option<Leak> {
        let pts: Vec<(f64, f64)> = self.points.iter().map(|&(t, u)| (t, u as f64)).collect();
        let Trend { slope_per_ms: slope, concordance } = trend(&pts);
        let span_ms = pts[pts.len() - 1].0 - pts[0].0;
        let growth = slope * span_ms;
        if concordance < MIN_CONCORDANCE || slope <= 0.0 || growth < self.min_growth as f64 {
            return None;
        }
        Some(Leak {
            bytes_per_minute: slope * 60_000.0,
            growth_bytes: growth as u64,
            from_bytes: self.points[0].1,
            to_bytes: self.points[self.points.len() - 1].1,
            mark_compacts: self.points.len() as u32,
            span_ms,
            concordance,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1024.0 * 1024.0;

    /// A small deterministic noise source (no rand dependency).
    fn jitter(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5
    }

    fn feed(trend: &mut LeakTrend, n: usize, at: impl Fn(usize, &mut u64) -> f64) -> Vec<Leak> {
        let mut seed = 7;
        (0..n).filter_map(|i| trend.observe(i as f64 * 500.0, at(i, &mut seed).max(0.0) as u64)).collect()
    }

    #[test]
    fn slow_leak_under_heavy_jitter_is_found() {
        // 0.5 MB per GC of leak under ±4 MB of churn jitter.
        let mut trend = LeakTrend::new(20, 8 << 20);
        let leaks = feed(&mut trend, 40, |i, s| 60.0 * MB + i as f64 * 0.5 * MB + 8.0 * MB * jitter(s));
        assert!(!leaks.is_empty());
        let first = &leaks[0];
        assert!(first.bytes_per_minute > 0.0);
        assert!(first.concordance >= 0.8, "{first:?}");
        // 0.5 MB per 500 ms = 60 MB/min; Theil–Sen lands near it despite the jitter.
        assert!((first.bytes_per_minute / MB - 60.0).abs() < 20.0, "{first:?}");
    }

    #[test]
    fn bounded_churn_is_not_a_leak() {
        let mut trend = LeakTrend::new(20, 1 << 20);
        let leaks = feed(&mut trend, 400, |_, s| 60.0 * MB + 8.0 * MB * jitter(s));
        assert!(leaks.is_empty(), "{leaks:?}");
    }

    #[test]
    fn sawtooth_cache_is_not_a_leak() {
        // A cache that fills for 10 GCs and is then cleared, again and again:
        // a window longer than one fill sees it fall back.
        let mut trend = LeakTrend::new(20, 1 << 20);
        let leaks = feed(&mut trend, 200, |i, _| 50.0 * MB + (i % 10) as f64 * 2.0 * MB);
        assert!(leaks.is_empty(), "{leaks:?}");
    }

    #[test]
    fn growth_below_the_minimum_is_not_a_leak() {
        let mut trend = LeakTrend::new(10, 8 << 20);
        // 100 KB per GC over 10 GCs: ~1 MB, a cache warming up.
        assert!(feed(&mut trend, 10, |i, _| 40.0 * MB + i as f64 * 0.1 * MB).is_empty());
    }

    #[test]
    fn a_leak_that_goes_on_is_reported_once_per_window() {
        let mut trend = LeakTrend::new(5, 1 << 20);
        let leaks = feed(&mut trend, 25, |i, _| 10.0 * MB + i as f64 * MB);
        assert_eq!(leaks.len(), 5);
        assert_eq!(leaks[0].mark_compacts, 5);
        assert_eq!(leaks[0].from_bytes, 10 << 20);
        assert_eq!(leaks[0].to_bytes, 14 << 20);
        assert_eq!(leaks[0].concordance, 1.0);
    }

    #[test]
    fn median_and_trend() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        let t = trend(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0), (3.0, 4.0)]);
        assert_eq!(t.concordance, 5.0 / 6.0);
        assert_eq!(t.slope_per_ms, 1.5); // slopes 2, 2, 1, 2, 0.5, -1 → median (1 + 2) / 2
        assert_eq!(trend(&[(1.0, 7.0), (1.0, 7.0)]), Trend { slope_per_ms: 0.0, concordance: 0.5 });
    }

    #[test]
    fn flat_heap_and_duplicates_give_no_verdict() {
        let mut trend = LeakTrend::new(4, 0);
        assert!(feed(&mut trend, 12, |_, _| 5.0 * MB).is_empty());
        let mut trend = LeakTrend::new(4, 0);
        // Same timestamps: no slope can be computed, no panic.
        for _ in 0..8 {
            assert!(trend.observe(1.0, 1).is_none());
        }
    }
}
