//! The gate: no growth, no suspect. The timeline's heap after mark-compacts
//! (the only moments "used" means "live") judged over the whole recording
//! (the timeline's own Theil–Sen verdict) and over its last half: a heap
//! that rose and then stopped is a cache that filled up, not a leak.

use memguard_core::leak::trend;

use crate::report::{HeapTrend, TimelineSummary};
use crate::timeline::rises_enough;

/// Points of the last half the slope is computed over (Theil–Sen is O(n²)).
const MAX_POINTS: usize = 600;
const MIN_POINTS: usize = 5;
/// A rise this close to the heap limit (or to a near-heap-limit capture) is
/// growth that ended in the limit, whatever the last half looks like: GCs
/// thrash flat at the top while the app barely runs.
const NEAR_LIMIT: f64 = 0.85;

/// Growth by the timeline's own bar (`timeline::rises_enough`), without its
/// minimum span: a short last half that rose is judged all the same.
fn rises(points: &[(f64, f64)]) -> (bool, f64, f64) {
    let t = trend(points);
    let span = points.last().map_or(0.0, |p| p.0) - points.first().map_or(0.0, |p| p.0);
    (rises_enough(&t, points, span), t.slope_per_ms * 60_000.0, t.concordance)
}

fn thinned(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let step = points.len().div_ceil(MAX_POINTS).max(1);
    points.iter().step_by(step).copied().collect()
}

/// `hit_limit`: the process reached its heap limit (a near-heap-limit
/// capture): growth that ended there was stopped by the limit, not by itself.
pub fn heap_trend(t: &TimelineSummary, hit_limit: bool) -> HeapTrend {
    let points: Vec<(f64, f64)> =
        t.pauses.iter().filter(|p| p.kind == "mark-compact").map(|p| (p.t, p.heap_after as f64)).collect();
    let whole = t.leak.verdict.as_str();
    let mut out = HeapTrend {
        state: String::new(),
        bytes_per_min: t.leak.slope_bytes_per_min,
        recent_bytes_per_min: 0.0,
        recent_concordance: 0.5,
        span_ms: t.leak.span_ms,
    };
    let half = points.first().map_or(0.0, |p| p.0) + t.leak.span_ms / 2.0;
    let recent = thinned(&points[points.partition_point(|p| p.0 < half)..]);
    let recent_rising = if recent.len() >= MIN_POINTS {
        let (rising, rate, concordance) = rises(&recent);
        (out.recent_bytes_per_min, out.recent_concordance) = (rate, concordance);
        Some(rising)
    } else {
        None
    };
    let limit = t.samples.iter().map(|s| s.heap_limit).filter(|&l| l > 0).min();
    let reached_limit = hit_limit || limit.is_some_and(|l| t.heap_used_peak as f64 >= NEAR_LIMIT * l as f64);
    // A recording too short for the timeline's own verdict (under 2 s) that
    // rose all the way to the heap limit is a fast leak, not too little data.
    let short_rise_to_limit =
        whole == "too-short" && reached_limit && points.len() >= MIN_POINTS && rises(&thinned(&points)).0;
    out.state = match (whole, recent_rising) {
        ("too-short", _) if short_rise_to_limit => "growing",
        ("too-short", None | Some(false)) => "too-short",
        (_, Some(true)) => "growing",
        ("growing", _) if reached_limit => "growing",
        ("growing", _) => "saturated",
        _ => "flat",
    }
    .to_string();
    out
}
