//! The Prometheus text exposition format (0.0.4) and OpenMetrics 1.0, from
//! the registry and the process's /proc and cgroup files. Names and labels
//! follow prom-client's defaults where the meaning is the same, so existing
//! dashboards keep working; memguard's own start with `memguard_`. Every
//! isolate's series carry `thread` (0 = main thread, else the worker's
//! `threadId`); process-wide ones carry none.

use std::fmt::Write as _;

use super::{Registry, ThreadMetrics, GC_BUCKETS, GC_KINDS};
use crate::procmem::{Cgroup, CgroupMemory};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// OpenMetrics when the `Accept` header prefers it to the text format
    /// (Prometheus asks for both, OpenMetrics first); the text format otherwise.
    pub fn from_accept(accept: &str) -> Format {
        let q_of = |wanted: &str| {
            accept
                .split(',')
                .filter_map(|range| {
                    let mut parts = range.split(';').map(str::trim);
                    let media = parts.next()?;
                    if !media.eq_ignore_ascii_case(wanted) {
                        return None;
                    }
                    let q = parts
                        .filter_map(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f64>().ok()))
                        .next()
                        .unwrap_or(1.0);
                    Some(q)
                })
                .fold(None, |best: Option<f64>, q| Some(best.map_or(q, |b| b.max(q))))
        };
        match (q_of("application/openmetrics-text"), q_of("text/plain")) {
            (Some(om), text) if om > 0.0 && om >= text.unwrap_or(0.0) => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }
}

/// What is read from /proc and the cgroup at scrape time, on the caller's
/// (the endpoint's) thread.
#[derive(Debug, Clone, Default)]
pub struct ProcessValues {
    pub resident: Option<u64>,
    pub virtual_size: Option<u64>,
    pub data: Option<u64>,
    pub cgroup: Option<CgroupMemory>,
}

impl ProcessValues {
    pub fn read(cgroup: Option<&Cgroup>) -> ProcessValues {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let mut v = parse_status(&status);
        v.cgroup = cgroup.and_then(Cgroup::read).filter(|m| m.limit.is_some());
        v
    }
}

/// `VmRSS`, `VmSize`, `VmData` of /proc/self/status (what prom-client reads).
pub fn parse_status(status: &str) -> ProcessValues {
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..].trim_start_matches(':').split_whitespace().next()?.parse().ok()?;
        Some(kib * 1024)
    };
    ProcessValues { resident: field("VmRSS"), virtual_size: field("VmSize"), data: field("VmData"), cgroup: None }
}

struct Out {
    text: String,
    format: Format,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Gauge,
    Counter,
    Histogram,
}

impl Out {
    /// `# HELP` / `# TYPE` of a family. Counters are named with `_total`;
    /// OpenMetrics names the family without it.
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let family = match (self.format, kind) {
            (Format::OpenMetrics, Kind::Counter) => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let kind = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(self.text, "# HELP {family} {}", escape(help, false));
        let _ = writeln!(self.text, "# TYPE {family} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape(v, true));
            }
            self.text.push('}');
        }
        self.text.push(' ');
        push_number(&mut self.text, value);
        self.text.push('\n');
    }

    /// A gauge family with one sample per thread that has a value.
    fn per_thread(&mut self, name: &str, help: &str, threads: &[(String, &ThreadMetrics)], value: impl Fn(&ThreadMetrics) -> Option<f64>) {
        let values: Vec<(&str, f64)> = threads.iter().filter_map(|(label, t)| Some((label.as_str(), value(t)?))).collect();
        if values.is_empty() {
            return;
        }
        self.family(name, Kind::Gauge, help);
        for (thread, v) in values {
            self.sample(name, &[("thread", thread)], v);
        }
    }
}

fn push_number(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Backslash and newline (and in label values, the double quote) escaped.
fn escape(text: &str, quote: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// prom-client's space label: V8's space name without `_space`.
pub fn space_label(name: &str) -> &str {
    name.find("_space").map_or(name, |i| &name[..i])
}

/// The whole exposition: every thread in `registry`, then the process.
pub fn render(registry: &Registry, process: &ProcessValues, format: Format) -> String {
    let mut out = Out { text: String::with_capacity(16 << 10), format };
    let threads: Vec<(String, &ThreadMetrics)> = registry.threads.values().map(|t| (t.thread.to_string(), t)).collect();

    if !threads.is_empty() {
        let name = "nodejs_gc_duration_seconds";
        out.family(name, Kind::Histogram, "Garbage collection duration by kind, one of major, minor, incremental or weakcb.");
        for (thread, t) in &threads {
            for (kind, h) in GC_KINDS.iter().zip(&t.gc) {
                if *kind == "other" && h.count == 0 {
                    continue;
                }
                for (le, n) in GC_BUCKETS.iter().zip(h.cumulative()) {
                    let le = le.to_string();
                    out.sample("nodejs_gc_duration_seconds_bucket", &[("le", &le), ("kind", kind), ("thread", thread)], n as f64);
                }
                let labels = [("le", "+Inf"), ("kind", kind), ("thread", thread.as_str())];
                out.sample("nodejs_gc_duration_seconds_bucket", &labels, h.count as f64);
                out.sample("nodejs_gc_duration_seconds_sum", &[("kind", kind), ("thread", thread)], h.sum_seconds);
                out.sample("nodejs_gc_duration_seconds_count", &[("kind", kind), ("thread", thread)], h.count as f64);
            }
        }
    }
    let heap = |f: fn(&super::Sample) -> u64| move |t: &ThreadMetrics| t.sample.as_ref().map(|s| f(s) as f64);
    out.per_thread("nodejs_heap_size_total_bytes", "Process heap size from Node.js in bytes.", &threads, heap(|s| s.heap.total_heap_size));
    out.per_thread("nodejs_heap_size_used_bytes", "Process heap size used from Node.js in bytes.", &threads, heap(|s| s.heap.used_heap_size));
    out.per_thread("nodejs_external_memory_bytes", "Node.js external memory size in bytes.", &threads, heap(|s| s.heap.external_memory));
    type SpaceValue = fn(&crate::manifest::SpaceStats) -> u64;
    let spaces: [(&str, &str, SpaceValue); 3] = [
        ("total", "total", |sp| sp.space_size),
        ("used", "used", |sp| sp.space_used_size),
        ("available", "available", |sp| sp.space_available_size),
    ];
    for (suffix, what, value) in spaces {
        let name = format!("nodejs_heap_space_size_{suffix}_bytes");
        if threads.iter().all(|(_, t)| t.sample.is_none()) {
            break;
        }
        out.family(&name, Kind::Gauge, &format!("Process heap space size {what} from Node.js in bytes."));
        for (thread, t) in &threads {
            for sp in t.sample.iter().flat_map(|s| &s.spaces) {
                out.sample(&name, &[("space", space_label(&sp.space_name)), ("thread", thread)], value(sp) as f64);
            }
        }
    }

    // Process-wide, read now (prom-client's names).
    let process_gauges = [
        ("process_resident_memory_bytes", "Resident memory size in bytes.", process.resident),
        ("process_virtual_memory_bytes", "Virtual memory size in bytes.", process.virtual_size),
        ("process_heap_bytes", "Process heap size in bytes.", process.data),
    ];
    for (name, help, value) in process_gauges {
        if let Some(v) = value {
            out.family(name, Kind::Gauge, help);
            out.sample(name, &[], v as f64);
        }
    }

    // memguard's own.
    out.per_thread("memguard_heap_size_limit_bytes", "V8 heap size limit (heap_size_limit) in bytes.", &threads, heap(|s| s.heap.heap_size_limit));
    out.per_thread("memguard_heap_malloced_bytes", "Memory V8 allocated with malloc, in bytes.", &threads, heap(|s| s.heap.malloced_memory));
    out.per_thread("memguard_array_buffers_bytes", "Memory held by ArrayBuffers and Buffers, in bytes.", &threads, heap(|s| s.array_buffers));
    out.per_thread("memguard_detached_contexts", "Detached native contexts (a classic leak: each holds a whole realm).", &threads, heap(|s| s.heap.number_of_detached_contexts));
    if threads.iter().any(|(_, t)| t.sample.is_some()) {
        let name = "memguard_heap_space_physical_bytes";
        out.family(name, Kind::Gauge, "Committed (physical) size of each V8 heap space in bytes.");
        for (thread, t) in &threads {
            for sp in t.sample.iter().flat_map(|s| &s.spaces) {
                out.sample(name, &[("space", space_label(&sp.space_name)), ("thread", thread)], sp.physical_space_size as f64);
            }
        }
    }
    out.per_thread("memguard_heap_sampled_timestamp_seconds", "When the heap values above were sampled (Unix time).", &threads, |t| {
        t.sample.as_ref().map(|s| s.t_ms / 1e3)
    });
    out.per_thread(
        "memguard_heap_used_after_major_gc_bytes",
        "Heap used right after the last mark-compact: the live heap.",
        &threads,
        |t| t.after_major.back().map(|&(_, used)| used),
    );
    out.per_thread(
        "memguard_leak_bytes_per_minute",
        "Growth of heap used after mark-compacts: Theil-Sen slope over the last 20 of them, in bytes per minute (0 until there are 4).",
        &threads,
        |t| Some(t.leak_bytes_per_minute()),
    );
    counter_per_thread(&mut out, "memguard_leak_verdicts_total", "Leak verdicts (steady growth found) so far.", &threads, |t| t.leak_verdicts);
    counter_per_thread(
        &mut out,
        "memguard_timeline_dropped_total",
        "Timeline records dropped because the recorder's queue was full (their GCs are not counted above).",
        &threads,
        ThreadMetrics::timeline_dropped,
    );
    if !threads.is_empty() {
        let name = "memguard_captures_total";
        out.family(name, Kind::Counter, "Captures (heap snapshot attempts) by trigger and outcome (written, skipped, failed).");
        for (thread, t) in &threads {
            for ((trigger, outcome), n) in &t.captures {
                out.sample(name, &[("trigger", trigger), ("outcome", outcome), ("thread", thread)], *n as f64);
            }
        }
    }
    if let Some(mem) = process.cgroup {
        out.family("memguard_cgroup_memory_usage_bytes", Kind::Gauge, "Memory used by the process's memory cgroup (container), in bytes.");
        out.sample("memguard_cgroup_memory_usage_bytes", &[], mem.usage as f64);
        if let Some(limit) = mem.limit {
            out.family("memguard_cgroup_memory_limit_bytes", Kind::Gauge, "Memory limit of the process's memory cgroup (the tightest on its path), in bytes.");
            out.sample("memguard_cgroup_memory_limit_bytes", &[], limit as f64);
        }
    }
    if format == Format::OpenMetrics {
        out.text.push_str("# EOF\n");
    }
    out.text
}

fn counter_per_thread(out: &mut Out, name: &str, help: &str, threads: &[(String, &ThreadMetrics)], value: impl Fn(&ThreadMetrics) -> u64) {
    if threads.is_empty() {
        return;
    }
    out.family(name, Kind::Counter, help);
    for (thread, t) in threads {
        out.sample(name, &[("thread", thread)], value(t) as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::gc;
    use crate::recorder::Shared;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn registry() -> Registry {
        let mut t = ThreadMetrics::new(0, Arc::new(Shared::default()));
        t.gc(&gc(1, 0.4, 1.0, 10));
        t.gc(&gc(1, 3.0, 2.0, 10));
        t.gc(&gc(4, 25.0, 3.0, 5_000_000));
        t.marker("snapshot-start", &serde_json::json!({"seq": 1, "trigger": "near-heap-limit"}));
        t.marker("snapshot-end", &serde_json::json!({"seq": 1, "ok": true}));
        let heap = crate::manifest::HeapStats { used_heap_size: 1234, heap_size_limit: 4 << 30, ..Default::default() };
        let spaces = vec![crate::manifest::SpaceStats {
            space_name: "new_large_object_space".into(),
            space_size: 10,
            space_used_size: 5,
            space_available_size: 3,
            physical_space_size: 9,
        }];
        t.sample = Some(super::super::Sample { t_ms: 1_700_000_000_500.0, heap, spaces, array_buffers: 7 });
        let mut w = ThreadMetrics::new(3, Arc::new(Shared::default()));
        w.gc(&gc(8, 1.0, 1.0, 10));
        Registry { threads: BTreeMap::from([(1, t), (2, w)]) }
    }

    fn process() -> ProcessValues {
        ProcessValues { resident: Some(50 << 20), virtual_size: Some(1 << 30), data: None, cgroup: Some(CgroupMemory { usage: 100, limit: Some(1000) }) }
    }

    #[test]
    fn prometheus_text() {
        let text = render(&registry(), &process(), Format::Prometheus);
        for line in [
            "# TYPE nodejs_gc_duration_seconds histogram",
            r#"nodejs_gc_duration_seconds_bucket{le="0.001",kind="minor",thread="0"} 1"#,
            r#"nodejs_gc_duration_seconds_bucket{le="0.01",kind="minor",thread="0"} 2"#,
            r#"nodejs_gc_duration_seconds_bucket{le="+Inf",kind="minor",thread="0"} 2"#,
            r#"nodejs_gc_duration_seconds_count{kind="minor",thread="0"} 2"#,
            r#"nodejs_gc_duration_seconds_bucket{le="0.01",kind="major",thread="0"} 0"#,
            r#"nodejs_gc_duration_seconds_bucket{le="0.1",kind="major",thread="0"} 1"#,
            r#"nodejs_gc_duration_seconds_sum{kind="major",thread="0"} 0.025"#,
            r#"nodejs_gc_duration_seconds_count{kind="incremental",thread="3"} 1"#,
            r#"nodejs_heap_size_used_bytes{thread="0"} 1234"#,
            r#"nodejs_heap_space_size_used_bytes{space="new_large_object",thread="0"} 5"#,
            r#"nodejs_heap_space_size_available_bytes{space="new_large_object",thread="0"} 3"#,
            "process_resident_memory_bytes 52428800",
            r#"memguard_heap_size_limit_bytes{thread="0"} 4294967296"#,
            r#"memguard_heap_sampled_timestamp_seconds{thread="0"} 1700000000.5"#,
            r#"memguard_array_buffers_bytes{thread="0"} 7"#,
            "# TYPE memguard_captures_total counter",
            r#"memguard_captures_total{trigger="near-heap-limit",outcome="written",thread="0"} 1"#,
            r#"memguard_timeline_dropped_total{thread="3"} 0"#,
            "memguard_cgroup_memory_limit_bytes 1000",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        // The worker has no sample yet: no heap series for it.
        assert!(!text.contains(r#"nodejs_heap_size_used_bytes{thread="3"}"#));
        assert!(!text.contains("process_heap_bytes"));
        assert!(!text.contains("# EOF"));
        // Every family once.
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        let mut unique = types.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(types.len(), unique.len());
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let text = render(&registry(), &process(), Format::OpenMetrics);
        assert!(text.contains("# TYPE memguard_captures counter\n"));
        assert!(text.contains("\nmemguard_captures_total{"));
        assert!(text.ends_with("\n# EOF\n"));
    }

    #[test]
    fn accept_header_negotiation() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(prometheus), Format::OpenMetrics);
        assert_eq!(Format::from_accept(""), Format::Prometheus);
        assert_eq!(Format::from_accept("*/*"), Format::Prometheus);
        assert_eq!(Format::from_accept("text/plain;q=0.9,application/openmetrics-text;q=0.5"), Format::Prometheus);
        assert_eq!(Format::from_accept("application/openmetrics-text; q=0"), Format::Prometheus);
    }

    #[test]
    fn escapes_and_numbers() {
        assert_eq!(escape("a\"b\\c\nd", true), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("a\"b", false), "a\"b");
        let mut s = String::new();
        for v in [0.0, 3.0, 0.25, f64::INFINITY, f64::NAN, 1e20] {
            push_number(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "0 3 0.25 +Inf NaN 100000000000000000000 ");
    }

    #[test]
    fn status_fields() {
        let v = parse_status("Name:\tnode\nVmSize:\t  100 kB\nVmRSS:\t 20 kB\nVmData:\t 30 kB\n");
        assert_eq!((v.virtual_size, v.resident, v.data), (Some(102_400), Some(20_480), Some(30_720)));
        assert_eq!(space_label("read_only_space"), "read_only");
        assert_eq!(space_label("code_large_object_space"), "code_large_object");
    }
}
