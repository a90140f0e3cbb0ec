//! `history.ndjson.gz` → [`Lifetime`]: the lifetime history (one record per
//! period, never rotated) summed up over the whole life of the thread.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use serde_json::Value;

use crate::report::{GcKindStat, Lifetime, LifetimeGrowth};
use crate::timeline::{leak_verdict, read_records};
use crate::ReportError;

/// Reads a history file; `Err` only when it cannot be opened or holds no record.
pub fn read(path: &Path) -> Result<Lifetime, ReportError> {
    let file = File::open(path).map_err(|source| ReportError::Io { path: path.into(), source })?;
    let mut life = Lifetime { file: path.display().to_string(), ..Lifetime::default() };
    let mut gc: BTreeMap<String, GcKindStat> = BTreeMap::new();
    let mut records = 0u64;
    let mut bad_lines = 0;
    let cut = read_records(file, &mut bad_lines, |r| {
        records += 1;
        match r.get("type").and_then(Value::as_str) {
            Some("start") if life.start.is_none() => life.start = r.get("time").and_then(Value::as_str).map(String::from),
            Some("period") => add_period(&mut life, &mut gc, r),
            _ => {}
        }
    });
    if records == 0 {
        let reason = cut.unwrap_or_else(|| "no records".into());
        return Err(ReportError::Truncated { path: path.into(), reason: format!("not a readable history: {reason}") });
    }
    life.truncated = cut.is_some();
    life.gc = gc.into_values().collect();
    life.growth = growth(&life.curve);
    // Enough for a chart; a month of minutes would be 43,200 points.
    let step = life.curve.len().div_ceil(MAX_CURVE).max(1);
    life.curve = life.curve.iter().step_by(step).copied().collect();
    Ok(life)
}

const MAX_CURVE: usize = 2_000;

/// The lifetime trend: a leak of 50 MB a day for three weeks is a steady
/// rise here even where the timeline's ring holds only the last hour. Judged
/// by the timeline's own bar (`timeline::leak_verdict`); shrinking is that
/// bar met by the series run backwards in time.
fn growth(curve: &[(f64, u64)]) -> Option<LifetimeGrowth> {
    let points: Vec<(f64, f64)> = curve.iter().map(|&(t, b)| (t, b as f64)).collect();
    let forward = leak_verdict(&points);
    if forward.verdict == "too-short" {
        return None;
    }
    let end = points.last()?.0;
    let backward: Vec<(f64, f64)> = points.iter().rev().map(|&(t, b)| (end - t, b)).collect();
    let state = if forward.verdict == "growing" {
        "growing"
    } else if leak_verdict(&backward).verdict == "growing" {
        "shrinking"
    } else {
        "flat"
    };
    Some(LifetimeGrowth {
        bytes_per_day: forward.slope_bytes_per_min * 1440.0,
        concordance: forward.concordance,
        state: state.into(),
    })
}

fn add_period(life: &mut Lifetime, gc: &mut BTreeMap<String, GcKindStat>, r: &Value) {
    // Periods beyond the history's horizon were merged (`merged`: how many).
    life.periods += r.get("merged").and_then(Value::as_u64).unwrap_or(1);
    life.span_ms = life.span_ms.max(r.get("t").and_then(Value::as_f64).unwrap_or(0.0));
    if let Some([lo, hi, last]) = r.get("afterMarkCompact").and_then(|v| serde_json::from_value::<[u64; 3]>(v.clone()).ok()) {
        life.curve.push((r.get("t").and_then(Value::as_f64).unwrap_or(0.0), last));
        life.after_mark_compact = Some(match life.after_mark_compact {
            Some([l, h, _]) => [l.min(lo), h.max(hi), last],
            None => [lo, hi, last],
        });
    }
    if let Some(rss) = r.get("rssMax").and_then(Value::as_u64) {
        life.rss_max = life.rss_max.max(Some(rss));
    }
    if let Some(limit) = r.get("heap").and_then(|h| h.get("limit")).and_then(Value::as_u64) {
        life.heap_limit = Some(limit);
    }
    for (kind, v) in r.get("gc").and_then(Value::as_object).into_iter().flatten() {
        let stat = gc.entry(kind.clone()).or_insert_with(|| GcKindStat { kind: kind.clone(), ..GcKindStat::default() });
        stat.count += v.get(0).and_then(Value::as_u64).unwrap_or(0);
        stat.total_ms += v.get(1).and_then(Value::as_f64).unwrap_or(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tests::tempdir::Dir;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn member(line: &str) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(format!("{line}\n").as_bytes()).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn three_weeks_of_50_mb_a_day_is_growth_and_a_full_cache_is_not() {
        let minute = 60_000.0;
        // 21 days of minutes, +50 MB a day under ±20 MB of GC-to-GC noise.
        let leak: Vec<(f64, u64)> = (0..21 * 1440)
            .map(|i| (i as f64 * minute, (200e6 + 50e6 * i as f64 / 1440.0 + ((i * 7919) % 41) as f64 * 1e6 - 20e6) as u64))
            .collect();
        let g = growth(&leak).unwrap();
        assert_eq!(g.state, "growing");
        assert!((g.bytes_per_day - 50e6).abs() < 5e6, "{g:?}");
        // The same, run backwards: a heap that gives memory back.
        let last = leak.last().unwrap().0;
        let falling: Vec<(f64, u64)> = leak.iter().rev().map(|&(t, b)| (last - t, b)).collect();
        assert_eq!(growth(&falling).unwrap().state, "shrinking");
        // A cache that filled in its first hour, then stayed.
        let cache: Vec<(f64, u64)> =
            (0..3 * 1440).map(|i| (i as f64 * minute, (100e6 + 400e6 * (i as f64 / 60.0).min(1.0) + ((i * 31) % 9) as f64 * 1e6) as u64)).collect();
        assert_eq!(growth(&cache).unwrap().state, "flat");
        assert_eq!(growth(&cache[..4]), None);
    }

    #[test]
    fn periods_sum_up_to_the_whole_life_and_a_cut_keeps_what_came_before() {
        let dir = Dir::new();
        let path = dir.path().join("history.ndjson.gz");
        let mut bytes = member(r#"{"type":"start","t":0,"time":"2026-11-25T10:26:31.040Z","segment":1}"#);
        bytes.extend(member(r#"{"type":"period","t":60000,"ms":60000,"gc":{"scavenge":[100,50.5],"mark-compact":[2,10]},"afterMarkCompact":[100,300,200],"heap":{"used":250,"limit":1000},"rssMax":5000}"#));
        bytes.extend(member(r#"{"type":"period","t":120000,"ms":60000,"gc":{"scavenge":[50,20]},"afterMarkCompact":[150,400,350],"rssMax":4000}"#));
        let last = member(r#"{"type":"period","t":180000,"ms":60000,"gc":{"scavenge":"junk"},"afterMarkCompact":[1,2]}"#);
        bytes.extend(&last);
        std::fs::write(&path, &bytes).unwrap();
        let life = read(&path).unwrap();
        assert_eq!((life.periods, life.span_ms, life.truncated), (3, 180_000.0, false));
        assert_eq!(life.start.as_deref(), Some("2026-11-25T10:26:31.040Z"));
        assert_eq!((life.after_mark_compact, life.rss_max, life.heap_limit), (Some([100, 400, 350]), Some(5000), Some(1000)));
        let gc: Vec<(&str, u64, f64)> = life.gc.iter().map(|g| (g.kind.as_str(), g.count, g.total_ms)).collect();
        assert_eq!(gc, [("mark-compact", 2, 10.0), ("scavenge", 150, 70.5)]);

        assert_eq!(life.curve, [(60_000.0, 200), (120_000.0, 350)]);
        assert_eq!(life.growth, None, "too few periods for a trend");

        std::fs::write(&path, &bytes[..bytes.len() - last.len() / 2]).unwrap();
        let life = read(&path).unwrap();
        assert_eq!((life.periods, life.truncated), (2, true));
        std::fs::write(&path, b"junk").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("not a readable history"));
    }
}
