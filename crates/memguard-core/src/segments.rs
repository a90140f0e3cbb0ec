//! The flight recorder's ring: the timeline is written in segments so a
//! process left on for months keeps a bounded amount of it. Pure policy —
//! when to start a segment, which old ones to remove — so it is unit-tested.
//!
//! The segment being written is always `timeline.ndjson.gz` (what `zcat`
//! users and older readers open); a full one is renamed (atomic) to
//! `timeline-<n>.ndjson.gz`, `n` its number from 1. Readers take the
//! numbered ones by `n`, then the current one.

use crate::recorder::TIMELINE_FILE;

/// Segments the budget is split into: removing one drops an eighth of the
/// history, not half of it.
pub const SEGMENTS: u64 = 8;
/// `MEMGUARD_TIMELINE_MAX` default. A GC-heavy run measured ~15 bytes on
/// disk per GC event (samples included): at 1,000 GCs/s this holds 75
/// minutes of the busiest history, days of a typical one (README, "Flight
/// recorder").
pub const DEFAULT_BUDGET: u64 = 64 << 20;
/// Below this a segment would hold less than a second's member of a busy
/// process, so every member would start a segment.
pub const MIN_BUDGET: u64 = 256 << 10;

/// The numbered name a full segment gets.
pub fn segment_name(n: u64) -> String {
    format!("timeline-{n}.ndjson.gz")
}

/// `timeline-<n>.ndjson.gz` → `n` (≥ 1); `None` for any other name.
pub fn segment_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("timeline-")?.strip_suffix(".ndjson.gz")?;
    // Canonical digits only: `+1`, `01` are not names memguard writes.
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether `name` is part of a timeline (numbered or current).
pub fn is_timeline(name: &str) -> bool {
    name == TIMELINE_FILE || segment_number(name).is_some()
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ring {
    pub budget: u64,
}

impl Ring {
    pub fn new(budget: u64) -> Ring {
        Ring { budget: budget.max(MIN_BUDGET) }
    }

    pub fn segment_max(&self) -> u64 {
        self.budget / SEGMENTS
    }

    /// A new segment before appending `member` bytes to a current segment
    /// of `current` bytes when it would pass the segment size. A segment
    /// always takes its first member, however large.
    pub fn rotate_before(&self, current: u64, member: u64) -> bool {
        current > 0 && current + member > self.segment_max()
    }

    /// How many of the oldest kept segments (`kept`: their sizes, oldest
    /// first) to remove so that they and the current one fit the budget.
    /// The current one is never removed.
    pub fn excess(&self, kept: &[u64], current: u64) -> usize {
        let mut total: u64 = kept.iter().sum::<u64>() + current;
        let mut remove = 0;
        for &size in kept {
            if total <= self.budget {
                break;
            }
            total -= size;
            remove += 1;
        }
        remove
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_refused() {
        assert_eq!(segment_name(12), "timeline-12.ndjson.gz");
        assert_eq!(segment_number("timeline-12.ndjson.gz"), Some(12));
        for bad in ["timeline-0.ndjson.gz", "timeline-01.ndjson.gz", "timeline-+1.ndjson.gz", "timeline-.ndjson.gz",
            "timeline-1.ndjson", "timeline-1.ndjson.gz.partial", "timeline-99999999999999999999.ndjson.gz"]
        {
            assert_eq!(segment_number(bad), None, "{bad}");
        }
        assert!(is_timeline("timeline.ndjson.gz") && is_timeline("timeline-3.ndjson.gz"));
        assert!(!is_timeline("summary.json"));
    }

    #[test]
    fn a_segment_is_an_eighth_and_the_budget_has_a_floor() {
        assert_eq!(Ring::new(DEFAULT_BUDGET).segment_max(), 8 << 20);
        assert_eq!(Ring::new(1).budget, MIN_BUDGET);
    }

    #[test]
    fn rotates_before_a_member_would_overflow_the_segment() {
        let ring = Ring::new(800 << 10); // 100 KiB segments
        assert!(!ring.rotate_before(0, 500 << 10), "an empty segment takes any member");
        assert!(!ring.rotate_before(90 << 10, 10 << 10));
        assert!(ring.rotate_before(90 << 10, (10 << 10) + 1));
    }

    #[test]
    fn removes_the_oldest_until_the_rest_fits() {
        let ring = Ring::new(800 << 10);
        let seg = 100 << 10;
        assert_eq!(ring.excess(&[seg; 7], seg), 0, "8 full segments fit exactly");
        assert_eq!(ring.excess(&[seg; 8], 1), 1);
        assert_eq!(ring.excess(&[seg; 8], seg), 1);
        // A huge old segment (a member larger than a segment) goes at once.
        assert_eq!(ring.excess(&[900 << 10, seg, seg], seg), 1);
        // Never the current one, even if it alone is over budget.
        assert_eq!(ring.excess(&[seg], 900 << 10), 1);
        assert_eq!(ring.excess(&[], 900 << 10), 0);
    }
}
