//! `timeline.ndjson.gz` → [`TimelineSummary`]: heap per space over time, GC
//! statistics and pauses, markers, and whether heap after mark-compacts grew.
//!
//! The file is a series of gzip members, one per second of recording; a crash
//! can cut the last one off. Everything before the cut is kept and the
//! summary says `truncated`. A long recording is several segment files (the
//! recorder's ring), read in order as one timeline; the first one's `start`
//! record says how many were removed before it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use serde_json::Value;

use memguard_core::leak::{median, trend, Trend, MIN_CONCORDANCE};

use crate::report::{GcKindStat, GcPause, HeapSample, LeakVerdict, Marker, TimelineSummary};
use crate::ReportError;

/// Points kept for the charts: enough for any screen, small enough for the JSON.
pub const MAX_POINTS: usize = 10_000;
/// Mark-compacts (evenly chosen) the leak slope is computed over: Theil–Sen
/// looks at every pair, so this bounds the work to ~½ M pairs.
const MAX_SLOPE_POINTS: usize = 1_000;
/// Fewer mark-compacts than this, or a shorter span, says nothing about a trend.
const MIN_MARK_COMPACTS: usize = 5;
const MIN_SPAN_MS: f64 = 2_000.0;
/// Longest record read. memguard's are under 1 kB; a marker from
/// `memguard.mark()` carries what the app gave it. Longer lines are skipped
/// (as lines that are not JSON are), so a crafted file cannot make one line
/// take all memory.
const MAX_LINE: u64 = 1 << 20;

/// Reads a timeline file; `Err` only when not one record could be read.
pub fn read(path: &Path) -> Result<TimelineSummary, ReportError> {
    read_segments(&[path.to_path_buf()])
}

/// Reads a timeline's segments, oldest first, as one; `Err` only when not
/// one record could be read. A segment removed since it was listed (the
/// recorder rotates while it runs) is skipped; one cut off is read up to the
/// cut and the next still read.
pub fn read_segments(paths: &[PathBuf]) -> Result<TimelineSummary, ReportError> {
    let mut acc = Accumulator::default();
    let mut cut_reason = None;
    let mut first_error = None;
    for path in paths {
        match File::open(path) {
            Ok(file) => {
                acc.segments.push(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
                let mut bad_lines = 0;
                if let Some(reason) = read_records(file, &mut bad_lines, |r| acc.add(r)) {
                    cut_reason = Some(reason);
                }
                acc.bad_lines += bad_lines;
            }
            Err(source) => {
                first_error.get_or_insert(ReportError::Io { path: path.clone(), source });
            }
        }
    }
    let path = paths.last().map(PathBuf::as_path).unwrap_or(Path::new(""));
    if acc.records == 0 {
        if let Some(e) = first_error.filter(|_| cut_reason.is_none()) {
            return Err(e);
        }
        let reason = cut_reason.unwrap_or_else(|| "no records".into());
        return Err(ReportError::Truncated { path: path.into(), reason: format!("not a readable timeline: {reason}") });
    }
    Ok(acc.finish(path, cut_reason.is_some()))
}

/// Hands each record of a file of gzip members of NDJSON to `each`,
/// counting lines that are not JSON or too long in `bad_lines`; `Some(reason)`
/// when the file ended mid-record. Memory is bounded by `MAX_LINE`.
pub(crate) fn read_records(file: File, bad_lines: &mut u64, mut each: impl FnMut(&Value)) -> Option<String> {
    let mut reader = BufReader::with_capacity(256 << 10, MultiGzDecoder::new(BufReader::new(file)));
    let mut line = Vec::with_capacity(1024);
    let mut cut_reason = None;
    loop {
        line.clear();
        match (&mut reader).take(MAX_LINE + 1).read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(n) if n as u64 > MAX_LINE && line.last() != Some(&b'\n') => match reader.skip_until(b'\n') {
                Ok(_) => *bad_lines += 1,
                Err(e) => {
                    cut_reason = Some(e.to_string());
                    break;
                }
            },
            // A line without its newline is the part of a record a crash cut off.
            Ok(_) if line.last() != Some(&b'\n') => {
                cut_reason = Some("the last record is incomplete".to_string());
                break;
            }
            Ok(_) => match serde_json::from_slice::<Value>(&line) {
                Ok(record) => each(&record),
                // A whole line that is not JSON: skipped, the rest still counts.
                Err(_) => *bad_lines += 1,
            },
            Err(e) => {
                cut_reason = Some(e.to_string());
                break;
            }
        }
    }
    cut_reason
}

#[derive(Default)]
struct Accumulator {
    records: u64,
    start: Option<String>,
    last_t: f64,
    samples: Vec<HeapSample>,
    gc: BTreeMap<String, GcKindStat>,
    pauses: Vec<GcPause>,
    markers: Vec<Marker>,
    /// (t, heap used after) of every mark-compact.
    mark_compacts: Vec<(f64, f64)>,
    dropped: u64,
    heap_used_peak: u64,
    bad_lines: u64,
    segments: Vec<String>,
    rotated_segments: u64,
    recorded_from_ms: f64,
}

fn u64_at(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

impl Accumulator {
    fn add(&mut self, r: &Value) {
        self.records += 1;
        let t = r.get("t").and_then(Value::as_f64).unwrap_or(self.last_t);
        self.last_t = self.last_t.max(t);
        match r.get("type").and_then(Value::as_str) {
            Some("start") if self.start.is_none() => {
                self.start = r.get("time").and_then(Value::as_str).map(String::from);
                // Segment n's start record: n - 1 came before it.
                self.rotated_segments = u64_at(r, "segment").map_or(0, |n| n.saturating_sub(1));
                self.recorded_from_ms = t;
            }
            Some("gc") => self.add_gc(t, r),
            Some("sample") => self.add_sample(t, r),
            Some("marker") => {
                let name = r.get("name").and_then(Value::as_str).unwrap_or("marker").to_string();
                // Kept generic: whatever else the record carries is its detail.
                let detail: serde_json::Map<String, Value> = r
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| !matches!(k.as_str(), "type" | "t" | "name"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                self.markers.push(Marker { t, name, detail: Value::Object(detail) });
            }
            // The recorder writes the running total each time it grows.
            Some("dropped") => self.dropped = self.dropped.max(u64_at(r, "count").unwrap_or(0)),
            _ => {}
        }
    }

    fn add_gc(&mut self, t: f64, r: &Value) {
        let kind = r.get("kind").and_then(Value::as_str).unwrap_or("other").to_string();
        let ms = r.get("ms").and_then(Value::as_f64).unwrap_or(0.0);
        let after = u64_at(r, "afterKB").unwrap_or(0) << 10;
        self.heap_used_peak = self.heap_used_peak.max(u64_at(r, "beforeKB").unwrap_or(0) << 10);
        let stat = self.gc.entry(kind.clone()).or_insert_with(|| GcKindStat { kind: kind.clone(), ..GcKindStat::default() });
        stat.count += 1;
        stat.total_ms += ms;
        stat.max_ms = stat.max_ms.max(ms);
        if kind == "mark-compact" {
            self.mark_compacts.push((t, after as f64));
        }
        self.pauses.push(GcPause { t, kind, ms, heap_after: after });
    }

    fn add_sample(&mut self, t: f64, r: &Value) {
        let heap = r.get("heap");
        let field = |k: &str| heap.and_then(|h| u64_at(h, k)).unwrap_or(0);
        // `"spaces": {"old_space": [used, size], …}`
        let spaces = r
            .get("spaces")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(name, v)| (name.clone(), v.get(0).and_then(Value::as_u64).unwrap_or(0))).collect())
            .unwrap_or_default();
        self.heap_used_peak = self.heap_used_peak.max(field("used"));
        self.samples.push(HeapSample {
            t,
            heap_used: field("used"),
            heap_limit: field("limit"),
            rss: u64_at(r, "rss"),
            spaces,
        });
    }

    fn finish(self, path: &Path, truncated: bool) -> TimelineSummary {
        TimelineSummary {
            file: path.display().to_string(),
            start: self.start,
            duration_ms: self.last_t,
            heap_used_start: self.samples.first().map(|s| s.heap_used),
            heap_used_peak: self.heap_used_peak,
            leak: leak_verdict(&self.mark_compacts),
            samples: thin(self.samples, MAX_POINTS, |s| s.heap_used as f64),
            gc: self.gc.into_values().collect(),
            pauses: thin(self.pauses, MAX_POINTS, |p| p.ms),
            markers: self.markers,
            dropped: self.dropped,
            truncated,
            segments: self.segments,
            rotated_segments: self.rotated_segments,
            recorded_from_ms: self.recorded_from_ms,
        }
    }
}

/// At most `max` items, in order: the `weight`-iest of each of `max` equal
/// runs, so peaks (the highest heap, the longest pause) survive thinning.
fn thin<T>(items: Vec<T>, max: usize, weight: impl Fn(&T) -> f64) -> Vec<T> {
    let n = items.len();
    if n <= max || max == 0 {
        return items;
    }
    let mut keep = vec![false; n];
    for bucket in 0..max {
        let (lo, hi) = (bucket * n / max, (bucket + 1) * n / max);
        let best = (lo..hi).max_by(|&a, &b| weight(&items[a]).total_cmp(&weight(&items[b])));
        if let Some(i) = best {
            keep[i] = true;
        }
    }
    items.into_iter().zip(keep).filter_map(|(item, k)| k.then_some(item)).collect()
}

/// The timeline's bar for growth, shared by the whole recording's verdict
/// and the verdict gate's last half: most pairs rise, and the fitted line
/// rises over `span_ms` by at least 10 % of the median heap and 1 MiB.
pub fn rises_enough(fitted: &Trend, points: &[(f64, f64)], span_ms: f64) -> bool {
    let mut heaps: Vec<f64> = points.iter().map(|p| p.1).collect();
    let median_heap = median(&mut heaps).unwrap_or(0.0);
    let growth = fitted.slope_per_ms * span_ms;
    fitted.concordance >= MIN_CONCORDANCE && growth >= (0.1 * median_heap).max((1 << 20) as f64)
}

/// Theil–Sen slope of heap used after mark-compacts over time: the median of
/// all pairwise slopes, so a few outliers (a big transient object, a forced
/// GC) do not make a verdict. `growing` when at least 80 % of the ordered
/// pairs rise and the fitted growth over the span is at least 10 % of the
/// median heap and 1 MiB (`rises_enough`).
pub fn leak_verdict(points: &[(f64, f64)]) -> LeakVerdict {
    let mark_compacts = points.len() as u64;
    let span_ms = match (points.first(), points.last()) {
        (Some(first), Some(last)) => last.0 - first.0,
        _ => 0.0,
    };
    if points.len() < MIN_MARK_COMPACTS || span_ms < MIN_SPAN_MS {
        return LeakVerdict { verdict: "too-short".into(), mark_compacts, span_ms, ..LeakVerdict::default() };
    }
    let chosen: Vec<(f64, f64)> = if points.len() > MAX_SLOPE_POINTS {
        (0..MAX_SLOPE_POINTS).map(|i| points[i * (points.len() - 1) / (MAX_SLOPE_POINTS - 1)]).collect()
    } else {
        points.to_vec()
    };
    // The live detector's judgement (memguard-core `leak.rs`), over the whole recording.
    let fitted = trend(&chosen);
    let Trend { slope_per_ms, concordance } = fitted;
    let growth = slope_per_ms * span_ms;
    let growing = rises_enough(&fitted, points, span_ms);
    LeakVerdict {
        verdict: if growing { "growing" } else { "stable" }.into(),
        slope_bytes_per_min: slope_per_ms * 60_000.0,
        mark_compacts,
        span_ms,
        growth_bytes: growth,
        concordance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tests::tempdir::Dir;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn member(lines: &[String]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        for l in lines {
            enc.write_all(l.as_bytes()).unwrap();
            enc.write_all(b"\n").unwrap();
        }
        enc.finish().unwrap()
    }

    fn leaking_records() -> Vec<Vec<String>> {
        let mut members = vec![vec![
            r#"{"type":"start","t":0,"epochMs":1795604791040.1,"time":"2026-11-25T10:26:31.040Z","pid":1}"#.to_string(),
        ]];
        for s in 1..=20u64 {
            let t = s as f64 * 1000.0;
            let used = 10_000_000 + s * 2_000_000;
            members.push(vec![
                format!(r#"{{"type":"gc","t":{},"kind":"scavenge","ms":0.5,"beforeKB":100,"afterKB":50}}"#, t - 500.0),
                format!(r#"{{"type":"gc","t":{},"kind":"mark-compact","ms":{},"beforeKB":{},"afterKB":{}}}"#, t - 100.0, s, used >> 10, used >> 10),
                format!(
                    r#"{{"type":"sample","t":{t},"heap":{{"used":{used},"total":1,"limit":50000000}},"spaces":{{"old_space":[{},1],"new_space":[1000,2]}},"rss":99}}"#,
                    used - 1000
                ),
            ]);
        }
        members.push(vec![
            r#"{"type":"marker","t":20500,"name":"snapshot-start","seq":1,"trigger":"near-heap-limit"}"#.into(),
            r#"{"type":"marker","t":20600,"name":"trigger","kind":"heap-threshold","fraction":0.7}"#.into(),
            r#"{"type":"dropped","t":20700,"count":3}"#.into(),
            r#"{"type":"dropped","t":20800,"count":7}"#.into(),
        ]);
        members
    }

    fn write(dir: &Dir, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.path().join("timeline.ndjson.gz");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn reads_every_member_and_summarises() {
        let dir = Dir::new();
        let bytes: Vec<u8> = leaking_records().iter().flat_map(|m| member(m)).collect();
        let tl = read(&write(&dir, &bytes)).unwrap();
        assert!(!tl.truncated);
        assert_eq!(tl.start.as_deref(), Some("2026-11-25T10:26:31.040Z"));
        assert_eq!(tl.duration_ms, 20_800.0);
        assert_eq!((tl.heap_used_start, tl.heap_used_peak), (Some(12_000_000), 50_000_000));
        assert_eq!(tl.samples.len(), 20);
        let s = &tl.samples[0];
        assert_eq!((s.heap_used, s.heap_limit, s.rss), (12_000_000, 50_000_000, Some(99)));
        assert_eq!(s.spaces, [("old_space".to_string(), 11_999_000), ("new_space".to_string(), 1000)]);
        let kinds: Vec<(&str, u64)> = tl.gc.iter().map(|g| (g.kind.as_str(), g.count)).collect();
        assert_eq!(kinds, [("mark-compact", 20), ("scavenge", 20)]);
        assert_eq!(tl.gc[0].total_ms, 210.0);
        assert_eq!(tl.gc[0].max_ms, 20.0);
        assert_eq!(tl.pauses.len(), 40);
        assert_eq!(tl.markers.len(), 2);
        assert_eq!(tl.markers[0].name, "snapshot-start");
        assert_eq!(tl.markers[0].detail, serde_json::json!({"seq": 1, "trigger": "near-heap-limit"}));
        assert_eq!(tl.markers[1].detail["kind"], "heap-threshold");
        assert_eq!(tl.dropped, 7);
        assert_eq!(tl.leak.verdict, "growing");
        assert_eq!(tl.leak.mark_compacts, 20);
        // 2 MB per second, to KB precision.
        assert!((tl.leak.slope_bytes_per_min / 120e6 - 1.0).abs() < 0.01, "{}", tl.leak.slope_bytes_per_min);
    }

    #[test]
    fn a_file_cut_off_mid_member_keeps_what_came_before() {
        let dir = Dir::new();
        let members = leaking_records();
        let mut bytes: Vec<u8> = members[..10].iter().flat_map(|m| member(m)).collect();
        let last = member(&members[10]);
        bytes.extend_from_slice(&last[..last.len() / 2]);
        let tl = read(&write(&dir, &bytes)).unwrap();
        assert!(tl.truncated);
        assert_eq!(tl.samples.len(), 9);
        assert_eq!(tl.start.as_deref(), Some("2026-11-25T10:26:31.040Z"));
    }

    #[test]
    fn an_overlong_line_is_skipped_and_the_rest_read() {
        let dir = Dir::new();
        let long = format!(r#"{{"type":"marker","t":5,"name":"{}"}}"#, "x".repeat(MAX_LINE as usize));
        let lines = [leaking_records()[0][0].clone(), long, r#"{"type":"marker","t":7,"name":"after"}"#.into()];
        let tl = read(&write(&dir, &member(&lines))).unwrap();
        let names: Vec<&str> = tl.markers.iter().map(|m| m.name.as_str()).collect();
        assert_eq!((names, tl.truncated), (vec!["after"], false));
        // The file cut inside the overlong line: what came before is kept.
        let bytes = member(&lines[..2]);
        let tl = read(&write(&dir, &bytes[..bytes.len() - 20])).unwrap();
        assert!(tl.markers.is_empty() && tl.truncated);
        assert_eq!(tl.start.as_deref(), Some("2026-11-25T10:26:31.040Z"));
    }

    #[test]
    fn segments_read_in_order_as_one_and_say_what_was_rotated_away() {
        let dir = Dir::new();
        let members = leaking_records();
        let header = |n: u64, t: f64| vec![format!(
            r#"{{"type":"start","t":{t},"epochMs":1795604791040.1,"time":"2026-11-25T10:26:31.040Z","pid":1,"segment":{n}}}"#
        )];
        // Segments 1–2 removed; 3 holds seconds 6–13, the current one the rest.
        let mut third = member(&header(3, 5_000.0));
        third.extend(members[6..14].iter().flat_map(|m| member(m)));
        let mut current = member(&header(4, 13_500.0));
        current.extend(members[14..].iter().flat_map(|m| member(m)));
        let paths = [dir.path().join("timeline-3.ndjson.gz"), dir.path().join("timeline.ndjson.gz")];
        std::fs::write(&paths[0], &third).unwrap();
        std::fs::write(&paths[1], &current).unwrap();
        let tl = read_segments(&paths).unwrap();
        assert_eq!((tl.rotated_segments, tl.recorded_from_ms), (2, 5_000.0));
        assert_eq!(tl.segments, ["timeline-3.ndjson.gz", "timeline.ndjson.gz"]);
        assert_eq!(tl.start.as_deref(), Some("2026-11-25T10:26:31.040Z"));
        assert_eq!((tl.samples.len(), tl.samples[0].t, tl.duration_ms), (15, 6_000.0, 20_800.0));
        assert_eq!(tl.leak.verdict, "growing");
        assert!(!tl.truncated);
        // A segment removed since it was listed is skipped; one cut off is read up to the cut.
        let gone = dir.path().join("timeline-2.ndjson.gz");
        std::fs::write(&paths[0], &third[..third.len() - 10]).unwrap();
        let tl = read_segments(&[gone, paths[0].clone(), paths[1].clone()]).unwrap();
        assert!(tl.truncated);
        assert_eq!((tl.rotated_segments, tl.samples.last().unwrap().t), (2, 20_000.0));
        // An unsegmented (older) timeline: nothing rotated.
        let tl = read(&write(&dir, &member(&members[0]))).unwrap();
        assert_eq!((tl.rotated_segments, tl.recorded_from_ms, tl.segments.len()), (0, 0.0, 1));
    }

    #[test]
    fn garbage_and_empty_files_are_errors() {
        let dir = Dir::new();
        let e = read(&write(&dir, b"not gzip at all")).unwrap_err();
        assert!(e.to_string().contains("not a readable timeline"), "{e}");
        assert!(read(&write(&dir, b"")).is_err());
        let e = read(&dir.path().join("missing.gz")).unwrap_err();
        assert!(matches!(e, ReportError::Io { .. }));
    }

    #[test]
    fn leak_verdicts() {
        let flat: Vec<(f64, f64)> = (0..50).map(|i| (i as f64 * 1000.0, 50e6 + if i % 7 == 0 { 20e6 } else { 0.0 })).collect();
        assert_eq!(leak_verdict(&flat).verdict, "stable");
        // A cache filled and cleared again and again, drifting up a little: no steady rise.
        let saw: Vec<(f64, f64)> = (0..50).map(|i| (i as f64 * 1000.0, 30e6 + (i % 10) as f64 * 3e6 + i as f64 * 1e5)).collect();
        let v = leak_verdict(&saw);
        assert_eq!(v.verdict, "stable");
        assert!(v.concordance < 0.8, "{}", v.concordance);
        let few: Vec<(f64, f64)> = (0..4).map(|i| (i as f64 * 10_000.0, i as f64 * 1e8)).collect();
        assert_eq!(leak_verdict(&few).verdict, "too-short");
        let quick: Vec<(f64, f64)> = (0..50).map(|i| (i as f64, i as f64 * 1e8)).collect();
        assert_eq!(leak_verdict(&quick).verdict, "too-short");
        // Many mark-compacts: the slope is taken over an even subset.
        let long: Vec<(f64, f64)> = (0..20_000).map(|i| (i as f64 * 100.0, 1e7 + i as f64 * 1000.0)).collect();
        let v = leak_verdict(&long);
        assert_eq!((v.verdict.as_str(), v.mark_compacts), ("growing", 20_000));
        assert!((v.slope_bytes_per_min - 600_000.0).abs() < 1.0, "{}", v.slope_bytes_per_min);
    }

    #[test]
    fn thinning_keeps_peaks_and_order() {
        let items: Vec<u32> = (0..100).map(|i| if i == 37 { 1000 } else { i % 10 }).collect();
        let thinned = thin(items, 10, |&x| x as f64);
        assert_eq!(thinned.len(), 10);
        assert!(thinned.contains(&1000));
        assert_eq!(thin(vec![1, 2, 3], 10, |&x| x as f64), [1, 2, 3]);
    }
}
