//! Environment variables → `Config`. Pure: no I/O, no globals, so every rule
//! here is unit-tested. A bad value never stops the host: it becomes a warning
//! that names the variable, the value and the default used instead.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::segments;

/// Every variable memguard reads (with `upload::VARS`); anything else starting
/// with `MEMGUARD_` is reported as unknown (usually a typo the user wants to
/// hear about).
pub const KNOWN_VARS: &[&str] = &[
    "MEMGUARD",
    "MEMGUARD_DIR",
    "MEMGUARD_NEAR_LIMIT_SNAPSHOTS",
    "MEMGUARD_LOG",
    "MEMGUARD_TIMELINE",
    "MEMGUARD_INTERVAL_MS",
    "MEMGUARD_TIMELINE_MAX",
    "MEMGUARD_HISTORY_INTERVAL",
    "MEMGUARD_ALLOC_SAMPLING",
    "MEMGUARD_SNAPSHOT",
    "MEMGUARD_MEMORY_LIMIT",
    "MEMGUARD_HEAP_THRESHOLDS",
    "MEMGUARD_RSS_LIMIT",
    "MEMGUARD_RSS_THRESHOLD",
    "MEMGUARD_KEEP",
    "MEMGUARD_SIGNAL",
    "MEMGUARD_LEAK",
    "MEMGUARD_LEAK_WINDOW",
    "MEMGUARD_LEAK_MIN_GROWTH",
    "MEMGUARD_LEAK_SNAPSHOT",
    "MEMGUARD_EARLY_SNAPSHOT",
    "MEMGUARD_MAX_DISK",
    "MEMGUARD_METRICS",
];

/// Where bundles go when `MEMGUARD_DIR` is not set, relative to the working
/// directory (like Node's own `--diagnostic-dir` default, the cwd).
pub const DEFAULT_DIR_NAME: &str = "memguard-bundles";
pub const DEFAULT_NEAR_LIMIT_SNAPSHOTS: u32 = 1;
/// More snapshots than this near the limit would each raise the heap limit
/// again; a cap keeps a typo from letting the heap grow far past its limit.
pub const MAX_NEAR_LIMIT_SNAPSHOTS: u32 = 20;
pub const DEFAULT_INTERVAL_MS: u32 = 1000;
/// A record a minute: ~144 kB a day, fine enough to see a slow leak.
pub const DEFAULT_HISTORY_INTERVAL_SECS: u32 = 60;
/// Mean bytes between allocation samples. V8's usual 512 KiB measured
/// 1.1–1.4 % on the flight-recorder benchmarks, over the 1 % bar for being on
/// by default; 2 MiB measured 0.6 % and still gives hundreds of samples on
/// the heaps that run out of memory in production.
pub const DEFAULT_ALLOC_SAMPLING: u64 = 2 * 1024 * 1024;
/// A denser interval costs real throughput; a sparser one sees nothing.
pub const ALLOC_SAMPLING_RANGE: std::ops::RangeInclusive<u64> = 1024..=(1 << 30);
/// Faster sampling than this costs more than it tells; slower than an hour
/// is no timeline at all.
pub const INTERVAL_MS_RANGE: std::ops::RangeInclusive<u32> = 10..=3_600_000;
/// RSS as a fraction of `MEMGUARD_RSS_LIMIT` that triggers a capture. 0.8
/// leaves a fifth of the limit for the capture itself and for the growth that
/// goes on while it runs (a snapshot's own memory is judged separately).
pub const DEFAULT_RSS_THRESHOLD: f64 = 0.8;
/// Mark-compacts the leak trend looks back over. Twenty full GCs span
/// minutes in a busy service: long enough that a filling cache or a burst
/// of traffic settles, short enough to speak before the crash.
pub const DEFAULT_LEAK_WINDOW: u32 = 20;
pub const LEAK_WINDOW_RANGE: std::ops::RangeInclusive<u32> = 4..=1000;
/// Growth over the window below which a rising trend is not called a leak
/// (JIT code, caches warming up).
pub const DEFAULT_LEAK_MIN_GROWTH: u64 = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Silent,
    Info,
    Debug,
}

/// When to take a heap snapshot at a capture (`MEMGUARD_SNAPSHOT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    /// Only when the memory it needs is there (see `afford`).
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub enabled: bool,
    pub dir: PathBuf,
    pub near_limit_snapshots: u32,
    pub log: LogLevel,
    /// Flight recorder on (`MEMGUARD_TIMELINE`).
    pub timeline: bool,
    /// Heap sample period (`MEMGUARD_INTERVAL_MS`).
    pub interval_ms: u32,
    /// What the timeline's segments may take together (`MEMGUARD_TIMELINE_MAX`);
    /// the oldest segments are removed beyond it.
    pub timeline_max: u64,
    /// Seconds per lifetime-history record (`MEMGUARD_HISTORY_INTERVAL`).
    pub history_interval_secs: u32,
    /// Sampling heap profiler interval in bytes, `None` = off
    /// (`MEMGUARD_ALLOC_SAMPLING`).
    pub alloc_sampling: Option<u64>,
    pub snapshot: SnapshotMode,
    /// Memory the whole process may use (`MEMGUARD_MEMORY_LIMIT`); overrides
    /// the container limit and MemAvailable when judging a snapshot.
    pub memory_limit: Option<u64>,
    /// Fractions of the heap limit that trigger a capture when heap used
    /// after a mark-compact reaches them (`MEMGUARD_HEAP_THRESHOLDS`).
    pub heap_thresholds: Vec<f64>,
    /// What RSS is watched against (`MEMGUARD_RSS_LIMIT`); `None` = no watchdog
    /// (`off`). By default the memory cgroup's limit, where there is one.
    pub rss_limit: Option<RssLimit>,
    /// Fraction of the RSS limit that triggers a capture (`MEMGUARD_RSS_THRESHOLD`).
    pub rss_threshold: f64,
    /// Signal number that triggers a capture (`MEMGUARD_SIGNAL`), and its name
    /// (the name alone is shown in `config`).
    #[serde(serialize_with = "signal_name")]
    pub signal: Option<(i32, String)>,
    /// Leak-trend detection on heap used after mark-compacts (`MEMGUARD_LEAK`).
    pub leak: bool,
    pub leak_window: u32,
    pub leak_min_growth: u64,
    /// A capture when a leak is detected (`MEMGUARD_LEAK_SNAPSHOT`).
    pub leak_snapshot: bool,
    /// One snapshot at the last affordable moment, while a growing heap
    /// still fits one in the memory limit (`MEMGUARD_EARLY_SNAPSHOT`; see
    /// `lastaffordable`).
    pub early_snapshot: bool,
    /// Cap on the total size of all bundles under `dir` (`MEMGUARD_MAX_DISK`).
    pub max_disk: DiskBudget,
    /// Keep every bundle (`MEMGUARD_KEEP=all`), not only those worth reading:
    /// by default a thread that ends well with nothing captured leaves none.
    pub keep_all: bool,
    /// Where the Prometheus endpoint listens (`MEMGUARD_METRICS`); `None` = off.
    pub metrics: Option<std::net::SocketAddr>,
    /// Shipping bundles to object storage (`MEMGUARD_UPLOAD*`, see `upload`).
    pub upload: crate::upload::Settings,
}

/// `MEMGUARD_MAX_DISK`: what all bundles under the root may take together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskBudget {
    Off,
    Bytes(u64),
    /// The default, worked out on the writer thread by `disk::auto_budget`:
    /// room for a few snapshots of a full heap, at most half the disk's room.
    Auto,
}

/// `MEMGUARD_RSS_LIMIT`: a fixed size, or the memory cgroup's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RssLimit {
    Bytes(u64),
    /// `auto`: the cgroup's limit; its absence is worth a warning.
    Auto,
    /// The default: the cgroup's limit when there is one (in a container the
    /// kernel's OOM killer, not V8, is the usual death), silence otherwise.
    Container,
}

impl Config {
    pub fn defaults(cwd: &Path) -> Config {
        Config {
            enabled: true,
            dir: cwd.join(DEFAULT_DIR_NAME),
            near_limit_snapshots: DEFAULT_NEAR_LIMIT_SNAPSHOTS,
            log: LogLevel::Info,
            timeline: true,
            interval_ms: DEFAULT_INTERVAL_MS,
            timeline_max: segments::DEFAULT_BUDGET,
            history_interval_secs: DEFAULT_HISTORY_INTERVAL_SECS,
            alloc_sampling: Some(DEFAULT_ALLOC_SAMPLING),
            snapshot: SnapshotMode::Auto,
            memory_limit: None,
            heap_thresholds: Vec::new(),
            rss_limit: Some(RssLimit::Container),
            rss_threshold: DEFAULT_RSS_THRESHOLD,
            signal: None,
            leak: true,
            leak_window: DEFAULT_LEAK_WINDOW,
            leak_min_growth: DEFAULT_LEAK_MIN_GROWTH,
            leak_snapshot: false,
            early_snapshot: true,
            max_disk: DiskBudget::Auto,
            keep_all: false,
            metrics: None,
            upload: crate::upload::Settings::default(),
        }
    }

    /// The memory the user says the process may use, and the variable it came
    /// from: `MEMGUARD_MEMORY_LIMIT`, else a fixed `MEMGUARD_RSS_LIMIT` (a
    /// container's limit is found at run time, see `afford::memory_bound`).
    pub fn explicit_memory_limit(&self) -> Option<(u64, &'static str)> {
        let rss_limit = match self.rss_limit {
            Some(RssLimit::Bytes(bytes)) => Some((bytes, "MEMGUARD_RSS_LIMIT")),
            _ => None,
        };
        self.memory_limit.map(|bytes| (bytes, "MEMGUARD_MEMORY_LIMIT")).or(rss_limit)
    }

    /// Resolves the settings from `MEMGUARD*` variables (others are ignored).
    /// Returns the config and one warning per problem found.
    pub fn from_vars<I, K, V>(vars: I, cwd: &Path) -> (Config, Vec<String>)
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut config = Config::defaults(cwd);
        let mut warnings = Vec::new();
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
            .filter(|(k, _)| k == "MEMGUARD" || k.starts_with("MEMGUARD_"))
            .collect();
        vars.sort();

        for (name, raw) in &vars {
            let value = raw.trim();
            match name.as_str() {
                "MEMGUARD" => {
                    if let Some(on) = switch_or_warn(name, raw, "on", &mut warnings) {
                        config.enabled = on
                    }
                }
                "MEMGUARD_DIR" => {
                    if value.is_empty() {
                        warnings.push(bad(name, raw, "is empty", &config.dir.display().to_string()));
                    } else if value.contains('\0') {
                        warnings.push(bad(name, raw, "contains a NUL byte", &config.dir.display().to_string()));
                    } else {
                        config.dir = cwd.join(value);
                    }
                }
                "MEMGUARD_NEAR_LIMIT_SNAPSHOTS" => match value.parse::<u32>() {
                    Ok(n) if n <= MAX_NEAR_LIMIT_SNAPSHOTS => config.near_limit_snapshots = n,
                    _ => warnings.push(bad(
                        name,
                        raw,
                        &format!("is not a whole number from 0 to {MAX_NEAR_LIMIT_SNAPSHOTS}"),
                        &DEFAULT_NEAR_LIMIT_SNAPSHOTS.to_string(),
                    )),
                },
                "MEMGUARD_LOG" => match value.to_ascii_lowercase().as_str() {
                    "silent" | "off" | "none" => config.log = LogLevel::Silent,
                    "info" => config.log = LogLevel::Info,
                    "debug" => config.log = LogLevel::Debug,
                    _ => warnings.push(bad(name, raw, "is not silent, info or debug", "info")),
                },
                "MEMGUARD_TIMELINE" => {
                    if let Some(on) = switch_or_warn(name, raw, "on", &mut warnings) {
                        config.timeline = on
                    }
                }
                "MEMGUARD_INTERVAL_MS" => {
                    let range = INTERVAL_MS_RANGE;
                    if let Some(ms) = whole_or_warn(name, raw, range, "milliseconds", DEFAULT_INTERVAL_MS, &mut warnings) {
                        config.interval_ms = ms
                    }
                }
                "MEMGUARD_HISTORY_INTERVAL" => {
                    let default = DEFAULT_HISTORY_INTERVAL_SECS;
                    if let Some(secs) = whole_or_warn(name, raw, 1..=86_400, "seconds", default, &mut warnings) {
                        config.history_interval_secs = secs
                    }
                }
                "MEMGUARD_ALLOC_SAMPLING" => match parse_switch(value) {
                    Some(false) => config.alloc_sampling = None,
                    Some(true) => config.alloc_sampling = Some(DEFAULT_ALLOC_SAMPLING),
                    None => match parse_size(value) {
                        Some(bytes) if ALLOC_SAMPLING_RANGE.contains(&bytes) => config.alloc_sampling = Some(bytes),
                        _ => warnings.push(bad(
                            name,
                            raw,
                            "is not off or a size from 1KiB to 1GiB (e.g. 524288, 512KiB)",
                            "2MiB",
                        )),
                    },
                },
                "MEMGUARD_SNAPSHOT" => match value.to_ascii_lowercase().as_str() {
                    "auto" => config.snapshot = SnapshotMode::Auto,
                    "always" => config.snapshot = SnapshotMode::Always,
                    "never" => config.snapshot = SnapshotMode::Never,
                    _ => warnings.push(bad(name, raw, "is not auto, always or never", "auto")),
                },
                "MEMGUARD_MEMORY_LIMIT" => match parse_size(value) {
                    Some(bytes) if bytes >= 1 << 20 => config.memory_limit = Some(bytes),
                    _ => warnings.push(bad(name, raw, "is not a size of at least 1MiB (e.g. 512MiB, 2GiB)", "none")),
                },
                "MEMGUARD_HEAP_THRESHOLDS" => match parse_fractions(value) {
                    Some(list) => config.heap_thresholds = list,
                    None => warnings.push(bad(
                        name,
                        raw,
                        "is not a comma-separated list of up to 8 fractions between 0 and 1 (e.g. 0.7,0.9)",
                        "none",
                    )),
                },
                "MEMGUARD_RSS_LIMIT" => match value.to_ascii_lowercase().as_str() {
                    "" | "off" | "none" => config.rss_limit = None,
                    "auto" => config.rss_limit = Some(RssLimit::Auto),
                    _ => match parse_size(value) {
                        Some(bytes) if bytes >= 16 << 20 => config.rss_limit = Some(RssLimit::Bytes(bytes)),
                        _ => warnings.push(bad(
                            name,
                            raw,
                            "is not auto, off or a size of at least 16MiB (e.g. 512MB, 2GiB)",
                            "the container's limit if any",
                        )),
                    },
                },
                "MEMGUARD_RSS_THRESHOLD" => match value.parse::<f64>() {
                    Ok(f) if f > 0.0 && f <= 1.0 => config.rss_threshold = f,
                    _ => warnings.push(bad(
                        name,
                        raw,
                        "is not a fraction above 0 and at most 1 (e.g. 0.8)",
                        &DEFAULT_RSS_THRESHOLD.to_string(),
                    )),
                },
                "MEMGUARD_SIGNAL" => match parse_signal(value) {
                    Ok(signal) => config.signal = signal,
                    Err(problem) => warnings.push(bad(name, raw, problem, "none")),
                },
                "MEMGUARD_LEAK" => {
                    if let Some(on) = switch_or_warn(name, raw, "on", &mut warnings) {
                        config.leak = on
                    }
                }
                "MEMGUARD_LEAK_WINDOW" => {
                    let range = LEAK_WINDOW_RANGE;
                    if let Some(n) = whole_or_warn(name, raw, range, "mark-compacts", DEFAULT_LEAK_WINDOW, &mut warnings) {
                        config.leak_window = n
                    }
                }
                "MEMGUARD_LEAK_MIN_GROWTH" => match parse_size(value) {
                    Some(bytes) => config.leak_min_growth = bytes,
                    None => warnings.push(bad(name, raw, "is not a size (e.g. 8MiB)", "8MiB")),
                },
                "MEMGUARD_LEAK_SNAPSHOT" => {
                    if let Some(on) = switch_or_warn(name, raw, "off", &mut warnings) {
                        config.leak_snapshot = on
                    }
                }
                "MEMGUARD_EARLY_SNAPSHOT" => {
                    if let Some(on) = switch_or_warn(name, raw, "on", &mut warnings) {
                        config.early_snapshot = on
                    }
                }
                "MEMGUARD_MAX_DISK" => match value.to_ascii_lowercase().as_str() {
                    "off" | "none" => config.max_disk = DiskBudget::Off,
                    "auto" => config.max_disk = DiskBudget::Auto,
                    _ => match parse_size(value) {
                        Some(bytes) if bytes >= 1 << 20 => config.max_disk = DiskBudget::Bytes(bytes),
                        _ => warnings.push(bad(
                            name,
                            raw,
                            "is not auto, off or a size of at least 1MiB (e.g. 2GiB)",
                            "auto",
                        )),
                    },
                },
                "MEMGUARD_TIMELINE_MAX" => match parse_size(value) {
                    Some(bytes) if bytes >= segments::MIN_BUDGET => config.timeline_max = bytes,
                    _ => warnings.push(bad(name, raw, "is not a size of at least 256KiB (e.g. 64MiB)", "64MiB")),
                },
                "MEMGUARD_KEEP" => match value.to_ascii_lowercase().as_str() {
                    "all" => config.keep_all = true,
                    "useful" => config.keep_all = false,
                    _ => warnings.push(bad(name, raw, "is not all or useful", "useful")),
                },
                "MEMGUARD_METRICS" => match crate::metrics::listen::parse(value) {
                    Ok(crate::metrics::listen::Parsed::Off) => config.metrics = None,
                    Ok(crate::metrics::listen::Parsed::On { addr, note }) => {
                        config.metrics = Some(addr);
                        warnings.extend(note);
                    }
                    Err(problem) => warnings.push(bad(name, raw, problem, "off")),
                },
                n if crate::upload::VARS.contains(&n) => crate::upload::apply(&mut config.upload, n, raw, &mut warnings),
                _ => warnings.push(format!(
                    "unknown variable {name} ignored (known: {})",
                    KNOWN_VARS.iter().chain(crate::upload::VARS).copied().collect::<Vec<_>>().join(", ")
                )),
            }
        }
        if config.metrics.is_some() && !config.timeline {
            warnings.push(
                "MEMGUARD_METRICS needs the flight recorder, which MEMGUARD_TIMELINE=off turns off; serving process metrics only".into(),
            );
        }
        (config, warnings)
    }
}

/// An on/off value, or a warning that names `default`.
pub(crate) fn switch_or_warn(name: &str, raw: &str, default: &str, warnings: &mut Vec<String>) -> Option<bool> {
    let on = parse_switch(raw.trim());
    if on.is_none() {
        warnings.push(bad(name, raw, "is not on/off (1/0, true/false)", default));
    }
    on
}

/// A whole number of `unit` within `range`, or a warning that names `default`.
pub(crate) fn whole_or_warn(
    name: &str,
    raw: &str,
    range: std::ops::RangeInclusive<u32>,
    unit: &str,
    default: u32,
    warnings: &mut Vec<String>,
) -> Option<u32> {
    let n = raw.trim().parse::<u32>().ok().filter(|n| range.contains(n));
    if n.is_none() {
        let problem = format!("is not a whole number of {unit} from {} to {}", range.start(), range.end());
        warnings.push(bad(name, raw, &problem, &default.to_string()));
    }
    n
}

pub(crate) fn parse_switch(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "" | "1" | "on" | "true" | "yes" => Some(true),
        "0" | "off" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// A size in bytes: `1048576`, `512KiB`, `512K`, `1.5GiB`, `2GB`. `KiB`,
/// `MiB`, `GiB` and the bare `K`, `M`, `G` (as in Docker's `-m 512m`) are
/// powers of 1024; `kB`, `MB`, `GB` are powers of 1000.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        _ => return None,
    };
    let bytes = number * scale;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64 && bytes.fract() == 0.0).then_some(bytes as u64)
}

/// `0.7,0.9` → [0.7, 0.9], sorted, de-duplicated; `""`/`off` → [].
fn parse_fractions(value: &str) -> Option<Vec<f64>> {
    if value.is_empty() || value.eq_ignore_ascii_case("off") {
        return Some(Vec::new());
    }
    let mut list = Vec::new();
    for part in value.split(',') {
        let f: f64 = part.trim().parse().ok()?;
        if !(f > 0.0 && f < 1.0) {
            return None;
        }
        list.push(f);
    }
    list.sort_by(f64::total_cmp);
    list.dedup();
    (list.len() <= 8).then_some(list)
}

fn signal_name<S: serde::Serializer>(signal: &Option<(i32, String)>, s: S) -> Result<S::Ok, S::Error> {
    signal.as_ref().map(|(_, name)| name).serialize(s)
}

/// `SIGUSR2`, `USR2`, `sigusr2` or a number; only signals that mean nothing
/// else to a Node process. SIGUSR1 is Node's (it starts the inspector),
/// SIGPROF the CPU profiler's; SIGTERM/SIGINT/SIGHUP must keep ending the
/// process; SIGKILL and SIGSTOP cannot be caught.
fn parse_signal(value: &str) -> Result<Option<(i32, String)>, &'static str> {
    const CATCHABLE: &[(&str, i32)] = &[
        ("SIGUSR2", libc::SIGUSR2),
        ("SIGPWR", libc::SIGPWR),
        ("SIGWINCH", libc::SIGWINCH),
        ("SIGURG", libc::SIGURG),
    ];
    let upper = value.to_ascii_uppercase();
    if upper.is_empty() || upper == "OFF" || upper == "NONE" {
        return Ok(None);
    }
    let full = if upper.starts_with("SIG") || upper.parse::<i32>().is_ok() { upper } else { format!("SIG{upper}") };
    if full == "SIGUSR1" || full == libc::SIGUSR1.to_string() {
        return Err("is SIGUSR1, which Node uses to start its inspector; use SIGUSR2");
    }
    let found = CATCHABLE.iter().find(|(n, num)| *n == full || num.to_string() == full);
    match found {
        Some((n, num)) => Ok(Some((*num, n.to_string()))),
        None => Err("is not a signal memguard can listen on (e.g. SIGUSR2)"),
    }
}

pub(crate) fn bad(name: &str, raw: &str, problem: &str, default: &str) -> String {
    // A value can be anything: escaped and cut like a name.
    let raw = crate::printable::name(raw);
    format!("{name}=\"{raw}\" {problem}; using the default {default}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> (Config, Vec<String>) {
        Config::from_vars(vars.iter().copied(), Path::new("/srv/app"))
    }

    #[test]
    fn no_variables_gives_documented_defaults() {
        let (c, w) = parse(&[("PATH", "/bin"), ("HOME", "/root")]);
        assert!(w.is_empty());
        assert!(c.enabled);
        assert_eq!(c.dir, PathBuf::from("/srv/app/memguard-bundles"));
        assert_eq!(c.near_limit_snapshots, 1);
        assert_eq!(c.log, LogLevel::Info);
    }

    #[test]
    fn memguard_switch_accepts_common_spellings() {
        for off in ["0", "off", "OFF", "false", "no", " off "] {
            assert!(!parse(&[("MEMGUARD", off)]).0.enabled, "{off:?}");
        }
        for on in ["1", "on", "true", "yes", ""] {
            assert!(parse(&[("MEMGUARD", on)]).0.enabled, "{on:?}");
        }
    }

    #[test]
    fn bad_switch_warns_and_stays_on() {
        let (c, w) = parse(&[("MEMGUARD", "maybe")]);
        assert!(c.enabled);
        assert_eq!(w, vec![r#"MEMGUARD="maybe" is not on/off (1/0, true/false); using the default on"#]);
    }

    #[test]
    fn dir_is_resolved_against_cwd() {
        assert_eq!(parse(&[("MEMGUARD_DIR", "out")]).0.dir, PathBuf::from("/srv/app/out"));
        assert_eq!(parse(&[("MEMGUARD_DIR", "/var/dumps")]).0.dir, PathBuf::from("/var/dumps"));
    }

    #[test]
    fn empty_dir_warns_and_keeps_default() {
        let (c, w) = parse(&[("MEMGUARD_DIR", "  ")]);
        assert_eq!(c.dir, PathBuf::from("/srv/app/memguard-bundles"));
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("MEMGUARD_DIR=\"  \" is empty"), "{}", w[0]);
    }

    #[test]
    fn snapshot_count_is_validated() {
        assert_eq!(parse(&[("MEMGUARD_NEAR_LIMIT_SNAPSHOTS", "3")]).0.near_limit_snapshots, 3);
        assert_eq!(parse(&[("MEMGUARD_NEAR_LIMIT_SNAPSHOTS", "0")]).0.near_limit_snapshots, 0);
        for bad in ["-1", "two", "1.5", "21", ""] {
            let (c, w) = parse(&[("MEMGUARD_NEAR_LIMIT_SNAPSHOTS", bad)]);
            assert_eq!(c.near_limit_snapshots, 1, "{bad:?}");
            assert_eq!(w.len(), 1, "{bad:?}");
            assert!(w[0].contains("MEMGUARD_NEAR_LIMIT_SNAPSHOTS"));
            assert!(w[0].ends_with("using the default 1"), "{}", w[0]);
        }
    }

    #[test]
    fn log_levels() {
        assert_eq!(parse(&[("MEMGUARD_LOG", "debug")]).0.log, LogLevel::Debug);
        assert_eq!(parse(&[("MEMGUARD_LOG", "Silent")]).0.log, LogLevel::Silent);
        let (c, w) = parse(&[("MEMGUARD_LOG", "verbose")]);
        assert_eq!(c.log, LogLevel::Info);
        assert_eq!(w, vec![r#"MEMGUARD_LOG="verbose" is not silent, info or debug; using the default info"#]);
    }

    #[test]
    fn timeline_settings() {
        let (c, w) = parse(&[("MEMGUARD_TIMELINE", "off"), ("MEMGUARD_INTERVAL_MS", "250")]);
        assert!(w.is_empty());
        assert!(!c.timeline);
        assert_eq!(c.interval_ms, 250);
        let (c, _) = parse(&[]);
        assert!(c.timeline);
        assert_eq!(c.interval_ms, 1000);
        for bad in ["0", "5", "1s", "-100", "3600001"] {
            let (c, w) = parse(&[("MEMGUARD_INTERVAL_MS", bad)]);
            assert_eq!(c.interval_ms, 1000, "{bad:?}");
            assert!(w[0].starts_with(&format!("MEMGUARD_INTERVAL_MS={bad:?} is not a whole number of milliseconds")), "{}", w[0]);
        }
    }

    #[test]
    fn timeline_max() {
        assert_eq!(parse(&[]).0.timeline_max, 64 << 20);
        assert_eq!(parse(&[("MEMGUARD_TIMELINE_MAX", "1GiB")]).0.timeline_max, 1 << 30);
        assert_eq!(parse(&[("MEMGUARD_TIMELINE_MAX", "256KiB")]).0.timeline_max, 256 << 10);
        for bad in ["255KiB", "0", "off", "-1MiB", "lots"] {
            let (c, w) = parse(&[("MEMGUARD_TIMELINE_MAX", bad)]);
            assert_eq!(c.timeline_max, 64 << 20, "{bad:?}");
            assert_eq!(w.len(), 1, "{bad:?}");
            assert!(w[0].starts_with(&format!("MEMGUARD_TIMELINE_MAX={bad:?} is not a size of at least 256KiB")), "{}", w[0]);
            assert!(w[0].ends_with("using the default 64MiB"), "{}", w[0]);
        }
    }

    #[test]
    fn history_interval() {
        assert_eq!(parse(&[]).0.history_interval_secs, 60);
        assert_eq!(parse(&[("MEMGUARD_HISTORY_INTERVAL", "1")]).0.history_interval_secs, 1);
        for bad in ["0", "1m", "86401", "-5"] {
            let (c, w) = parse(&[("MEMGUARD_HISTORY_INTERVAL", bad)]);
            assert_eq!(c.history_interval_secs, 60, "{bad:?}");
            assert!(w[0].starts_with(&format!("MEMGUARD_HISTORY_INTERVAL={bad:?} is not a whole number of seconds from 1 to 86400")), "{}", w[0]);
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("512KiB"), Some(512 << 10));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_size("512MB"), Some(512_000_000));
        assert_eq!(parse_size(" 64 MiB "), Some(64 << 20));
        for bad in ["", "MB", "-1", "1.5", "12 parsecs", "1e9"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn alloc_sampling() {
        assert_eq!(parse(&[]).0.alloc_sampling, Some(2 << 20));
        assert_eq!(parse(&[("MEMGUARD_ALLOC_SAMPLING", "off")]).0.alloc_sampling, None);
        assert_eq!(parse(&[("MEMGUARD_ALLOC_SAMPLING", "0")]).0.alloc_sampling, None);
        assert_eq!(parse(&[("MEMGUARD_ALLOC_SAMPLING", "64KiB")]).0.alloc_sampling, Some(65536));
        assert_eq!(parse(&[("MEMGUARD_ALLOC_SAMPLING", "on")]).0.alloc_sampling, Some(2 << 20));
        let (c, w) = parse(&[("MEMGUARD_ALLOC_SAMPLING", "10")]);
        assert_eq!(c.alloc_sampling, Some(2 << 20));
        assert!(w[0].starts_with(r#"MEMGUARD_ALLOC_SAMPLING="10" is not off or a size"#), "{}", w[0]);
    }

    #[test]
    fn snapshot_mode_and_memory_limit() {
        let (c, w) = parse(&[("MEMGUARD_SNAPSHOT", "Never"), ("MEMGUARD_MEMORY_LIMIT", "512MiB")]);
        assert!(w.is_empty());
        assert_eq!(c.snapshot, SnapshotMode::Never);
        assert_eq!(c.memory_limit, Some(512 << 20));
        let (c, w) = parse(&[("MEMGUARD_SNAPSHOT", "sometimes"), ("MEMGUARD_MEMORY_LIMIT", "12")]);
        assert_eq!((c.snapshot, c.memory_limit), (SnapshotMode::Auto, None));
        assert_eq!(w.len(), 2);
        assert!(w[0].starts_with(r#"MEMGUARD_MEMORY_LIMIT="12" is not a size"#), "{}", w[0]);
        assert!(w[1].ends_with("using the default auto"), "{}", w[1]);
    }

    #[test]
    fn heap_thresholds() {
        assert_eq!(parse(&[("MEMGUARD_HEAP_THRESHOLDS", "0.9, 0.7,0.9")]).0.heap_thresholds, vec![0.7, 0.9]);
        assert!(parse(&[]).0.heap_thresholds.is_empty());
        for bad in ["1.2", "0", "a,b", "0.5,", "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"] {
            let (c, w) = parse(&[("MEMGUARD_HEAP_THRESHOLDS", bad)]);
            assert!(c.heap_thresholds.is_empty(), "{bad:?}");
            assert!(w[0].starts_with("MEMGUARD_HEAP_THRESHOLDS="), "{}", w[0]);
        }
    }

    #[test]
    fn rss_watchdog_settings() {
        let (c, w) = parse(&[("MEMGUARD_RSS_LIMIT", "512MB"), ("MEMGUARD_RSS_THRESHOLD", "0.75")]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.rss_limit, Some(RssLimit::Bytes(512_000_000)));
        assert_eq!(c.rss_threshold, 0.75);
        assert_eq!(parse(&[("MEMGUARD_RSS_LIMIT", "Auto")]).0.rss_limit, Some(RssLimit::Auto));
        assert_eq!(parse(&[]).0.rss_limit, Some(RssLimit::Container));
        assert_eq!(parse(&[("MEMGUARD_RSS_LIMIT", "off")]).0.rss_limit, None);
        assert_eq!(parse(&[]).0.rss_threshold, 0.8);
        for bad in ["lots", "1MB", "-5"] {
            let (c, w) = parse(&[("MEMGUARD_RSS_LIMIT", bad)]);
            assert_eq!(c.rss_limit, Some(RssLimit::Container), "{bad:?}: the default stays");
            assert!(w[0].starts_with(&format!("MEMGUARD_RSS_LIMIT={bad:?} is not auto, off or a size")), "{}", w[0]);
        }
        for bad in ["0", "1.5", "high"] {
            let (c, w) = parse(&[("MEMGUARD_RSS_THRESHOLD", bad)]);
            assert_eq!(c.rss_threshold, 0.8, "{bad:?}");
            assert!(w[0].ends_with("using the default 0.8"), "{}", w[0]);
        }
    }

    #[test]
    fn signal_names() {
        let usr2 = Some((libc::SIGUSR2, "SIGUSR2".to_string()));
        for spelling in ["SIGUSR2", "usr2", "sigusr2", &libc::SIGUSR2.to_string()] {
            let (c, w) = parse(&[("MEMGUARD_SIGNAL", spelling)]);
            assert!(w.is_empty(), "{spelling:?}: {w:?}");
            assert_eq!(c.signal, usr2, "{spelling:?}");
        }
        assert_eq!(parse(&[]).0.signal, None);
        let (c, w) = parse(&[("MEMGUARD_SIGNAL", "SIGUSR1")]);
        assert_eq!(c.signal, None);
        assert!(w[0].contains("Node uses to start its inspector"), "{}", w[0]);
        for bad in ["SIGKILL", "SIGSEGV", "SIGTERM", "SIGHUP", "SIGPROF", "bogus", "9"] {
            let (c, w) = parse(&[("MEMGUARD_SIGNAL", bad)]);
            assert_eq!(c.signal, None, "{bad:?}");
            assert_eq!(w.len(), 1, "{bad:?}");
        }
    }

    #[test]
    fn explicit_memory_limit_prefers_memguard_memory_limit() {
        assert_eq!(parse(&[]).0.explicit_memory_limit(), None);
        let c = parse(&[("MEMGUARD_RSS_LIMIT", "512MiB")]).0;
        assert_eq!(c.explicit_memory_limit(), Some((512 << 20, "MEMGUARD_RSS_LIMIT")));
        let c = parse(&[("MEMGUARD_RSS_LIMIT", "512MiB"), ("MEMGUARD_MEMORY_LIMIT", "1GiB")]).0;
        assert_eq!(c.explicit_memory_limit(), Some((1 << 30, "MEMGUARD_MEMORY_LIMIT")));
        assert_eq!(parse(&[("MEMGUARD_RSS_LIMIT", "auto")]).0.explicit_memory_limit(), None);
    }

    #[test]
    fn early_snapshot_setting() {
        assert!(parse(&[]).0.early_snapshot, "on by default");
        for off in ["off", "0", "false", "no", " OFF "] {
            let (c, w) = parse(&[("MEMGUARD_EARLY_SNAPSHOT", off)]);
            assert!(!c.early_snapshot && w.is_empty(), "{off:?}: {w:?}");
        }
        let (c, w) = parse(&[("MEMGUARD_EARLY_SNAPSHOT", "on")]);
        assert!(c.early_snapshot && w.is_empty());
        let (c, w) = parse(&[("MEMGUARD_EARLY_SNAPSHOT", "sometimes")]);
        assert!(c.early_snapshot, "a bad value keeps the default");
        assert_eq!(w, vec![r#"MEMGUARD_EARLY_SNAPSHOT="sometimes" is not on/off (1/0, true/false); using the default on"#]);
    }

    #[test]
    fn leak_settings() {
        let c = parse(&[]).0;
        assert!(c.leak && !c.leak_snapshot);
        assert_eq!((c.leak_window, c.leak_min_growth), (20, 8 << 20));
        let (c, w) = parse(&[
            ("MEMGUARD_LEAK_WINDOW", "8"),
            ("MEMGUARD_LEAK_MIN_GROWTH", "1MiB"),
            ("MEMGUARD_LEAK_SNAPSHOT", "on"),
        ]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!((c.leak_window, c.leak_min_growth, c.leak_snapshot), (8, 1 << 20, true));
        let (c, w) = parse(&[("MEMGUARD_LEAK_WINDOW", "2"), ("MEMGUARD_LEAK", "nope")]);
        assert_eq!(c.leak_window, 20);
        assert!(c.leak);
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn keep() {
        assert!(!parse(&[]).0.keep_all);
        assert!(parse(&[("MEMGUARD_KEEP", "ALL")]).0.keep_all);
        assert!(!parse(&[("MEMGUARD_KEEP", "useful")]).0.keep_all);
        let (c, w) = parse(&[("MEMGUARD_KEEP", "everything")]);
        assert!(!c.keep_all);
        assert!(w[0].starts_with(r#"MEMGUARD_KEEP="everything" is not all or useful"#), "{}", w[0]);
    }

    #[test]
    fn max_disk() {
        assert_eq!(parse(&[("MEMGUARD_MAX_DISK", "2GiB")]).0.max_disk, DiskBudget::Bytes(2 << 30));
        assert_eq!(parse(&[]).0.max_disk, DiskBudget::Auto);
        assert_eq!(parse(&[("MEMGUARD_MAX_DISK", "off")]).0.max_disk, DiskBudget::Off);
        let (c, w) = parse(&[("MEMGUARD_MAX_DISK", "10")]);
        assert_eq!(c.max_disk, DiskBudget::Auto);
        assert!(w[0].starts_with(r#"MEMGUARD_MAX_DISK="10" is not auto, off or a size"#), "{}", w[0]);
    }

    #[test]
    fn metrics_endpoint() {
        assert_eq!(parse(&[]).0.metrics, None);
        let (c, w) = parse(&[("MEMGUARD_METRICS", "9464")]);
        assert_eq!((c.metrics.map(|a| a.to_string()), w.len()), (Some("127.0.0.1:9464".into()), 0));
        let (c, w) = parse(&[("MEMGUARD_METRICS", "0.0.0.0:9100")]);
        assert_eq!((c.metrics.map(|a| a.to_string()), w.len()), (Some("0.0.0.0:9100".into()), 0));
        let (c, w) = parse(&[("MEMGUARD_METRICS", ":9464")]);
        assert_eq!(c.metrics.map(|a| a.to_string()), Some("127.0.0.1:9464".into()));
        assert_eq!(w.len(), 1);
        let (c, w) = parse(&[("MEMGUARD_METRICS", "lots\n")]);
        assert_eq!(c.metrics, None);
        assert!(w[0].starts_with(r#"MEMGUARD_METRICS="lots\"#) && !w[0].contains('\n'), "{w:?}");
        assert!(w[0].contains("is not off") && w[0].ends_with("using the default off"), "{w:?}");
        let (c, w) = parse(&[("MEMGUARD_METRICS", "db.example.com:9464")]);
        assert_eq!(c.metrics, None);
        assert!(w[0].contains("does not resolve"), "{w:?}");
        let (_, w) = parse(&[("MEMGUARD_METRICS", "9464"), ("MEMGUARD_TIMELINE", "off")]);
        assert!(w.len() == 1 && w[0].contains("process metrics only"), "{w:?}");
        assert_eq!(serde_json::to_value(parse(&[("MEMGUARD_METRICS", "[::1]:9464")]).0).unwrap()["metrics"], "[::1]:9464");
    }

    #[test]
    fn unknown_memguard_variable_is_reported_once() {
        let (_, w) = parse(&[("MEMGUARD_DIRR", "/x"), ("MEMGUARDIAN", "1")]);
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("unknown variable MEMGUARD_DIRR ignored"));
    }

    #[test]
    fn several_problems_give_several_warnings_in_stable_order() {
        let (_, w) = parse(&[("MEMGUARD_LOG", "x"), ("MEMGUARD", "x")]);
        assert_eq!(w.len(), 2);
        assert!(w[0].starts_with("MEMGUARD="));
        assert!(w[1].starts_with("MEMGUARD_LOG="));
    }
}
