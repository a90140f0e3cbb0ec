//! The lifetime history: one compact record per period
//! (`MEMGUARD_HISTORY_INTERVAL`, a minute by default) for the whole life of
//! the process in `history.ndjson.gz`, never rotated — what the timeline's
//! ring removes, at a coarse grain. ~170 bytes on disk a record (measured;
//! one gzip member each, so a crash loses at most one): ~250 kB a day at one
//! a minute. Bounded: the last week stays at full detail, older periods are
//! merged an hour into one record (`downsample`, once a day), so a year is
//! ~1.7 MB + ~1.5 MB. Pure: the recorder feeds it and writes its records.

use std::collections::BTreeMap;
use std::time::Duration;

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

/// How the history is kept: a record every `every`; records older than
/// `full_detail` merged into one per `coarse`, checked every `compact_every`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub every: Duration,
    pub full_detail: Duration,
    pub coarse: Duration,
    pub compact_every: Duration,
}

impl Shape {
    /// With the default minute: a week at full detail, an hour a record
    /// beyond it, compacted once a day.
    pub fn every(every: Duration) -> Shape {
        Shape { every, full_detail: every * 7 * 1440, coarse: every * 60, compact_every: every * 1440 }
    }
}

/// The history's records with every period that ended before `before_t`
/// (ms since the start) merged into one record per `coarse_ms` (by end
/// time): counts and pauses summed, heap after mark-compacts min/max/last,
/// the last heap sample, the highest RSS, and `merged`: how many periods.
/// Other records and later periods are kept as they are, in order.
pub fn downsample(records: Vec<Value>, before_t: f64, coarse_ms: f64) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(records.len());
    let mut bucket_of_last: Option<i64> = None;
    for record in records {
        let t = record.get("t").and_then(Value::as_f64).unwrap_or(f64::MAX);
        let is_period = record.get("type").and_then(Value::as_str) == Some("period");
        if !is_period || t >= before_t || coarse_ms <= 0.0 {
            bucket_of_last = None;
            out.push(record);
            continue;
        }
        let bucket = (t / coarse_ms).floor() as i64;
        match (bucket_of_last == Some(bucket), out.last_mut()) {
            (true, Some(into)) => merge(into, &record),
            _ => {
                let mut record = record;
                if record.get("merged").is_none() {
                    record["merged"] = json!(1);
                }
                out.push(record);
            }
        }
        bucket_of_last = Some(bucket);
    }
    out
}

/// Adds the later period `r` into `into`.
fn merge(into: &mut Value, r: &Value) {
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let merged = num(into, "merged").max(1.0) + num(r, "merged").max(1.0);
    let ms = num(into, "ms") + num(r, "ms");
    into["t"] = r["t"].clone();
    into["ms"] = json!((ms * 10.0).round() / 10.0);
    into["merged"] = json!(merged as u64);
    let mut gc = into.get("gc").and_then(Value::as_object).cloned().unwrap_or_default();
    for (kind, v) in r.get("gc").and_then(Value::as_object).into_iter().flatten() {
        let pair = |v: &Value| (v.get(0).and_then(Value::as_u64).unwrap_or(0), v.get(1).and_then(Value::as_f64).unwrap_or(0.0));
        let (n0, ms0) = gc.get(kind).map_or((0, 0.0), pair);
        let (n1, ms1) = pair(v);
        gc.insert(kind.clone(), json!([n0 + n1, ((ms0 + ms1) * 10.0).round() / 10.0]));
    }
    into["gc"] = Value::Object(gc);
    let range = |v: &Value| v.get("afterMarkCompact").and_then(|a| serde_json::from_value::<[u64; 3]>(a.clone()).ok());
    match (range(into), range(r)) {
        (Some([lo, hi, _]), Some([l, h, last])) => into["afterMarkCompact"] = json!([lo.min(l), hi.max(h), last]),
        (None, Some(later)) => into["afterMarkCompact"] = json!(later),
        _ => {}
    }
    if let Some(heap) = r.get("heap") {
        into["heap"] = heap.clone();
    }
    if let Some(rss) = r.get("rssMax").and_then(Value::as_u64) {
        into["rssMax"] = json!(into.get("rssMax").and_then(Value::as_u64).unwrap_or(0).max(rss));
    }
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
    fn old_periods_merge_an_hour_into_one_and_recent_ones_stay() {
        let minute = 60_000.0;
        let mut records = vec![json!({"type": "start", "t": 0})];
        // Three hours of minutes: afterMarkCompact rises 1 a minute, RSS peaks at minute 30.
        for i in 1..=180u64 {
            records.push(json!({
                "type": "period", "t": i as f64 * minute, "ms": minute,
                "gc": {"scavenge": [10, 1.5], "mark-compact": [1, 2.0]},
                "afterMarkCompact": [i, i + 5, i + 1],
                "heap": {"used": i, "limit": 1000},
                "rssMax": if i == 30 { 9000 } else { 100 },
            }));
        }
        // Everything that ended before 2 h 30 merges by the hour.
        let out = downsample(records.clone(), 150.0 * minute, 60.0 * minute);
        let periods: Vec<&Value> = out.iter().filter(|r| r["type"] == "period").collect();
        assert_eq!(out[0], records[0], "the start record stays");
        // Minutes 1–59, 60–119, 120–149 merged (three records), 150–180 kept (31).
        assert_eq!(periods.len(), 3 + 31);
        let first = periods[0];
        assert_eq!(first["merged"], 59);
        assert_eq!(first["t"], 59.0 * minute);
        assert_eq!(first["ms"], 59.0 * minute);
        assert_eq!(first["gc"], json!({"mark-compact": [59, 118.0], "scavenge": [590, 88.5]}));
        assert_eq!(first["afterMarkCompact"], json!([1, 64, 60]));
        assert_eq!(first["heap"]["used"], 59);
        assert_eq!(first["rssMax"], 9000);
        assert_eq!(periods[2]["merged"], 30);
        assert_eq!(periods[3], &records[150], "recent periods as written");
        // Totals are kept; merging again changes nothing.
        let total = |rs: &[Value]| rs.iter().filter_map(|r| r["gc"]["scavenge"][0].as_u64()).sum::<u64>();
        assert_eq!(total(&out), total(&records));
        assert_eq!(downsample(out.clone(), 150.0 * minute, 60.0 * minute), out);
    }

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
