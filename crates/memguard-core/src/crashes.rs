//! The last crash, announced at the next start. A service that died of
//! memory is restarted and runs on; nobody looks at `MEMGUARD_DIR` unless
//! told. At start memguard looks there (on a thread of its own: a directory
//! scan has no place on the JS thread at start) for bundles of earlier
//! processes that ended without a trace — no `ended` in `summary.json`, so
//! a crash or a kill — and whose process is gone, guesses how each died, and
//! says so once: a marker file in the bundle (created exclusively, so two
//! processes starting together announce it once between them) keeps it from
//! being announced again.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use flate2::read::MultiGzDecoder;
use parking_lot::{Condvar, Mutex};
use serde::Serialize;
use serde_json::Value;

use crate::dirfd::Dir;
use crate::disk::{bundle_pid, other_bundles, owner_alive};
use crate::{log, printable};
use crate::recorder::TIMELINE_FILE;
use crate::segments::{segment_name, segment_number};

/// Made in a bundle once it has been announced.
pub const ANNOUNCED_FILE: &str = ".announced";
const SUMMARY_FILE: &str = "summary.json";
/// Bounds on what is read of a bundle (it may come from anywhere): a
/// summary is a few kB, a timeline up to tens of MB.
const SUMMARY_MAX: u64 = 16 << 20;
const TIMELINE_MAX: u64 = 256 << 20;
/// Within this share of the memory limit, a process that vanished was most
/// likely killed for memory (the kernel OOM killer does not wait for a
/// sample at 100 %: the last one is up to a second old).
const NEAR_LIMIT: f64 = 0.9;
/// Announced per start at most; the rest wait for the next one.
const MAX_ANNOUNCED: usize = 5;

/// One earlier process that died without a trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviousCrash {
    pub bundle: PathBuf,
    pub pid: u32,
    pub script: Option<String>,
    pub started_at: Option<String>,
    /// `heap-oom`, `memory-limit`, `rss-limit` or `unknown`.
    pub cause: &'static str,
    /// The guess in words, with what it rests on.
    pub detail: String,
}

/// The last sample of a timeline: what memory looked like just before the end.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct LastSample {
    pub rss: Option<u64>,
    pub cgroup_usage: Option<u64>,
    pub cgroup_limit: Option<u64>,
}

/// Finds the unannounced crashed bundles under `root` (main-thread bundles of
/// processes that are gone, other than `own_pid`'s), marks them announced,
/// and returns them oldest first.
pub fn scan(root: &Path, own_pid: u32) -> Vec<PreviousCrash> {
    let Ok(dir) = Dir::open(root) else { return Vec::new() };
    let mut found = Vec::new();
    // Main-thread bundles only: a worker's dies with its process.
    for name in other_bundles(&dir, own_pid).into_iter().filter(|n| !n.contains("-t")) {
        if found.len() == MAX_ANNOUNCED {
            break;
        }
        let Ok(bundle) = dir.open_dir(&name) else { continue };
        if bundle.stat_at(ANNOUNCED_FILE).is_ok() || owner_alive(&name) {
            continue;
        }
        let Some(summary) = read_summary(&bundle) else { continue };
        if summary.get("ended").is_some() {
            continue; // it ended in order: nothing to announce
        }
        // Claim it: of two processes starting together, one announces it.
        if bundle.create_file(ANNOUNCED_FILE).is_err() {
            continue;
        }
        let last = last_sample(&bundle);
        let (cause, detail) = guess(&summary, last);
        found.push(PreviousCrash {
            bundle: root.join(&name),
            pid: summary["pid"].as_u64().map(|p| p as u32).or_else(|| bundle_pid(&name)).unwrap_or(0),
            script: script_of(&summary),
            started_at: summary["startedAt"].as_str().map(str::to_owned),
            cause,
            detail,
        });
    }
    found
}

/// How the process most likely died, from its summary and last sample.
pub fn guess(summary: &Value, last: LastSample) -> (&'static str, String) {
    let captures = summary["captures"].as_array().map(Vec::as_slice).unwrap_or_default();
    if captures.iter().any(|c| c["trigger"] == "near-heap-limit") {
        return ("heap-oom", "V8 heap out of memory (a near-heap-limit capture, then no end)".into());
    }
    let mb = |b: u64| b >> 20;
    if let (Some(limit), Some(used)) = (last.cgroup_limit, last.cgroup_usage.or(last.rss)) {
        if used as f64 >= NEAR_LIMIT * limit as f64 {
            return (
                "memory-limit",
                format!("killed near the container's memory limit ({} of {} MB in the last sample)", mb(used), mb(limit)),
            );
        }
    }
    // The last sample on disk may be a second old (the timeline is flushed
    // every second), long enough for a fast leak to climb the last 20 %: an
    // RSS capture followed by no end says as much.
    if let Some(rss) = captures.iter().rev().find(|c| c["trigger"] == "rss") {
        let limit = mb(rss["detail"]["limitBytes"].as_u64().unwrap_or(0));
        let at = mb(rss["rssBytes"].as_u64().unwrap_or(0));
        return if rss["detail"]["source"] == "cgroup" {
            ("memory-limit", format!("killed near the container's memory limit (RSS {at} of {limit} MB at a capture, then no end)"))
        } else {
            ("rss-limit", format!("killed after RSS neared its {limit} MB limit (RSS {at} MB at a capture, then no end)"))
        };
    }
    ("unknown", "no end recorded: killed (SIGKILL, the OOM killer) or the machine stopped".into())
}

fn read_summary(bundle: &Dir) -> Option<Value> {
    let file = bundle.open_file(SUMMARY_FILE).ok()?;
    let mut text = Vec::new();
    file.take(SUMMARY_MAX).read_to_end(&mut text).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The script the process ran: argv[1] by file name, as the report shows it.
fn script_of(summary: &Value) -> Option<String> {
    let script = summary["argv"].get(1)?.as_str()?;
    Some(Path::new(script).file_name().map_or(script.into(), |n| n.to_string_lossy().into_owned()))
}

/// The last `sample` record of the timeline, read to its end (a timeline cut
/// off mid-member, as a crash leaves it, gives what was whole).
fn last_sample(bundle: &Dir) -> LastSample {
    // Just after a rotation the segment being written may hold no sample
    // yet: the newest full one does.
    let newest_full = bundle.entries().ok().into_iter().flatten().filter_map(|(n, _)| segment_number(&n)).max();
    [Some(TIMELINE_FILE.to_string()), newest_full.map(segment_name)]
        .into_iter()
        .flatten()
        .find_map(|name| last_sample_in(bundle, &name))
        .unwrap_or_default()
}

fn last_sample_in(bundle: &Dir, name: &str) -> Option<LastSample> {
    let file = bundle.open_file(name).ok()?;
    let reader = BufReader::new(MultiGzDecoder::new(file.take(TIMELINE_MAX)));
    let mut last = None;
    for line in reader.split(b'\n') {
        let Ok(line) = line else { break };
        // Cheap filter before parsing: most records are GCs.
        if !line.windows(15).any(|w| w == b"\"type\":\"sample\"") {
            continue;
        }
        if let Ok(rec) = serde_json::from_slice::<Value>(&line) {
            last = Some(LastSample {
                rss: rec["rss"].as_u64(),
                cgroup_usage: rec["cgroup"]["usage"].as_u64(),
                cgroup_limit: rec["cgroup"]["limit"].as_u64(),
            });
        }
    }
    last
}

/// The scan's result, once its thread is done: `previous()` waits for it.
static PREVIOUS: OnceLock<(Mutex<Option<Vec<PreviousCrash>>>, Condvar)> = OnceLock::new();
/// Longest `previous()` waits for a scan still running.
const WAIT: Duration = Duration::from_secs(5);

/// Scans `root` on a thread of its own and announces each crash found in one
/// `memguard:` line. Once per process.
pub fn scan_in_background(root: PathBuf, own_pid: u32) {
    if PREVIOUS.set((Mutex::new(None), Condvar::new())).is_err() {
        return;
    }
    let publish = |found: Vec<PreviousCrash>| {
        let (slot, ready) = PREVIOUS.get().expect("set above");
        *slot.lock() = Some(found);
        ready.notify_all();
    };
    // On the writer thread, first in its queue: a thread of its own cost
    // every process start ~0.1 ms to spawn.
    let queued = crate::writer::Writer::global().is_some_and(|writer| {
        writer.run_later(move || {
            let found = scan(&root, own_pid);
            for crash in &found {
                log::info(&announcement(crash));
            }
            publish(found);
        })
    });
    if !queued {
        publish(Vec::new());
    }
}

/// The crashes announced at this process's start (waits for the scan, a few
/// ms at most in practice; empty if there was none).
pub fn previous() -> Vec<PreviousCrash> {
    let Some((slot, ready)) = PREVIOUS.get() else { return Vec::new() };
    let mut found = slot.lock();
    if found.is_none() {
        ready.wait_for(&mut found, WAIT);
    }
    found.clone().unwrap_or_default()
}

/// The one `memguard:` line for a crash found at start.
pub fn announcement(crash: &PreviousCrash) -> String {
    let dir = crash.bundle.display().to_string();
    format!(
        "the previous process {} ({}, started {}) died: {}; its bundle: {} — see: npx memguard report {}",
        crash.pid,
        printable::name(crash.script.as_deref().unwrap_or("?")),
        printable::name(crash.started_at.as_deref().unwrap_or("?")),
        crash.detail,
        dir,
        dir
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn guesses_heap_oom_container_limit_rss_limit_or_unknown() {
        let oom = json!({ "captures": [{ "trigger": "near-heap-limit" }] });
        assert_eq!(guess(&oom, LastSample::default()).0, "heap-oom");

        let none = json!({ "captures": [] });
        let near = LastSample { rss: Some(570 << 20), cgroup_usage: Some(590 << 20), cgroup_limit: Some(600 << 20) };
        let (cause, detail) = guess(&none, near);
        assert_eq!(cause, "memory-limit");
        assert!(detail.contains("590 of 600 MB"), "{detail}");
        let far = LastSample { cgroup_usage: Some(300 << 20), ..near };
        assert_eq!(guess(&none, far).0, "unknown");
        // v1 cgroups without a usage figure: RSS stands in.
        let rss_only = LastSample { rss: Some(580 << 20), cgroup_usage: None, cgroup_limit: Some(600 << 20) };
        assert_eq!(guess(&none, rss_only).0, "memory-limit");

        let rss = json!({ "captures": [{ "trigger": "rss", "rssBytes": 330u64 << 20, "detail": { "limitBytes": 400u64 << 20, "source": "MEMGUARD_RSS_LIMIT" } }] });
        let (cause, detail) = guess(&rss, LastSample::default());
        assert_eq!(cause, "rss-limit");
        assert!(detail.contains("330 MB") && detail.contains("400 MB"), "{detail}");
        let container = json!({ "captures": [{ "trigger": "rss", "rssBytes": 250u64 << 20, "detail": { "limitBytes": 300u64 << 20, "source": "cgroup" } }] });
        let (cause, detail) = guess(&container, far);
        assert_eq!(cause, "memory-limit");
        assert!(detail.contains("RSS 250 of 300 MB at a capture"), "{detail}");
        assert_eq!(guess(&none, LastSample::default()).0, "unknown");
    }

    fn bundle(root: &Path, name: &str, summary: Value) {
        let dir = root.join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(SUMMARY_FILE), summary.to_string()).unwrap();
    }

    #[test]
    fn scan_finds_each_crash_once_and_skips_clean_ends_workers_and_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        // pid 4000000 cannot exist (pid_max is at most 2^22): these processes are gone.
        let crashed = json!({ "pid": 4000001, "argv": ["/usr/bin/node", "/srv/app/server.js"], "startedAt": "2026-01-02T03:04:05Z", "captures": [{ "trigger": "near-heap-limit" }] });
        bundle(root, "20260102-030405-4000001", crashed);
        bundle(root, "20260102-030406-4000002", json!({ "pid": 4000002, "captures": [], "ended": { "reason": "exit", "code": 3 } }));
        bundle(root, "20260102-030407-4000003-t1", json!({ "pid": 4000003, "captures": [] }));
        bundle(root, "20260102-030408-4000004", json!({ "pid": 4000004, "captures": [] }));
        std::fs::create_dir(root.join("not-a-bundle")).unwrap();

        let found = scan(root, 4000004);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].pid, 4000001);
        assert_eq!(found[0].script.as_deref(), Some("server.js"));
        assert_eq!(found[0].cause, "heap-oom");
        assert!(announcement(&found[0]).contains("npx memguard report"));
        assert!(scan(root, 4000004).is_empty(), "announced once");
        // Another process sees the one it was not allowed to claim.
        assert_eq!(scan(root, 1).iter().map(|c| c.pid).collect::<Vec<_>>(), vec![4000004]);
    }

    #[test]
    fn the_last_sample_is_found_in_the_newest_full_segment_after_a_rotation() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let gz = |text: &str| {
            let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(text.as_bytes()).unwrap();
            enc.finish().unwrap()
        };
        let tmp = tempfile::tempdir().unwrap();
        let sample = |rss: u64| format!("{{\"type\":\"sample\",\"t\":1,\"rss\":{rss}}}\n");
        std::fs::write(tmp.path().join("timeline-2.ndjson.gz"), gz(&sample(10))).unwrap();
        std::fs::write(tmp.path().join("timeline-3.ndjson.gz"), gz(&sample(30))).unwrap();
        std::fs::write(tmp.path().join(TIMELINE_FILE), gz("{\"type\":\"start\",\"t\":5,\"segment\":4}\n")).unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        assert_eq!(last_sample(&dir).rss, Some(30));
        std::fs::write(tmp.path().join(TIMELINE_FILE), gz(&sample(40))).unwrap();
        assert_eq!(last_sample(&dir).rss, Some(40));
    }
}
