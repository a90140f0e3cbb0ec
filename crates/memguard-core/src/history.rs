//! The lifetime history: one compact record per period
//! (`MEMGUARD_HISTORY_INTERVAL`, a minute by default) for the whole life of
//! the process in `history.ndjson.gz`, never rotated — what the timeline's
//! ring removes, at a coarse grain. ~170 bytes on disk a record (measured;
//! one gzip member each, so a crash loses at most one): ~250 kB a day at one
//! a minute. Pure: the recorder feeds it and writes its records.

use std::collections::BTreeMap;

use serde_json::{json, Value};

pub const HISTORY_FILE: &str = "history.ndjson.gz";

/// The last sample of a period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Heap {
    pub used: u64,
    pub limit: u64,
    pub external: u64,
    pub array_buffers: u64,
    pub rss: Option<u64>,
}

/// What one period saw.
#[derive(Debug, Default)]
pub struct Period {
    /// Heap used after mark-compacts: min, max, last.
    after_mark_compacts: Option<(u64, u64, u64)>,
    /// Per GC kind: count, total pause (ms).
    gc: BTreeMap<&'static str, (u64, f64)>,
    heap: Option<Heap>,
    /// Highest RSS sampled in the period.
    rss_max: Option<u64>,
}

impl Period {
    pub fn add_gc(&mut self, kind: &'static str, pause_ms: f64, used_after: u64) {
        let g = self.gc.entry(kind).or_default();
        g.0 += 1;
        g.1 += pause_ms;
        if kind == "mark-compact" {
            let (lo, hi, _) = self.after_mark_compacts.unwrap_or((used_after, used_after, used_after));
            self.after_mark_compacts = Some((lo.min(used_after), hi.max(used_after), used_after));
        }
    }

    pub fn add_sample(&mut self, heap: Heap) {
        self.rss_max = self.rss_max.max(heap.rss);
        self.heap = Some(heap);
    }

    /// The record of the period that ends at `t` (ms since the start),
    /// `period_ms` long, and a fresh period; `None` if it saw nothing.
    pub fn take(&mut self, t: f64, period_ms: f64) -> Option<Value> {
        let p = std::mem::take(self);
        if p.gc.is_empty() && p.heap.is_none() {
            return None;
        }
        let round = |ms: f64| (ms * 10.0).round() / 10.0;
        let gc: serde_json::Map<String, Value> =
            p.gc.iter().map(|(kind, (n, ms))| (kind.to_string(), json!([n, round(*ms)]))).collect();
        let mut record = json!({ "type": "period", "t": round(t), "ms": round(period_ms), "gc": gc });
        if let Some((lo, hi, last)) = p.after_mark_compacts {
            record["afterMarkCompact"] = json!([lo, hi, last]);
        }
        if let Some(h) = p.heap {
            record["heap"] = json!({ "used": h.used, "limit": h.limit, "external": h.external, "arrayBuffers": h.array_buffers });
        }
        if let Some(rss) = p.rss_max {
            record["rssMax"] = json!(rss);
        }
        Some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_sums_gcs_and_keeps_the_range_after_mark_compacts() {
        let mut p = Period::default();
        assert_eq!(p.take(60_000.0, 60_000.0), None, "nothing seen, nothing written");
        p.add_gc("scavenge", 0.5, 10);
        p.add_gc("scavenge", 0.25, 10);
        p.add_gc("mark-compact", 3.0, 300);
        p.add_gc("mark-compact", 4.0, 100);
        p.add_gc("mark-compact", 5.0, 200);
        p.add_sample(Heap { used: 250, limit: 1000, external: 7, array_buffers: 3, rss: Some(5000) });
        p.add_sample(Heap { used: 260, limit: 1000, external: 8, array_buffers: 4, rss: Some(4000) });
        let r = p.take(120_000.04, 60_000.0).unwrap();
        assert_eq!(
            r,
            json!({
                "type": "period", "t": 120_000.0, "ms": 60_000.0,
                "gc": { "mark-compact": [3, 12.0], "scavenge": [2, 0.8] },
                "afterMarkCompact": [100, 300, 200],
                "heap": { "used": 260, "limit": 1000, "external": 8, "arrayBuffers": 4 },
                "rssMax": 5000,
            })
        );
        assert_eq!(p.take(180_000.0, 60_000.0), None, "taking starts a fresh period");
    }
}
