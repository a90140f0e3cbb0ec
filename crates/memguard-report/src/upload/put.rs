//! `memguard upload <bundle>…`: ships bundles to `MEMGUARD_UPLOAD`. Started
//! detached by the agent at the end of a capture and at start for the
//! leftovers; runnable by hand too.
//!
//! Per bundle: an exclusive flock on `.upload.lock` (one uploader per
//! bundle), then wait for the bundle's process to end (the files are final
//! then), then every file — the large ones in multipart — then `report.json`
//! (the verdict, computed by a `memguard report --json` child so that this
//! process stays small), then `summary.json` last (a listing that sees it
//! sees a whole bundle), then the `.uploaded` marker. Keys are never
//! overwritten: an object already there with the same size is a file an
//! interrupted run finished (skipped: the run resumes), a different size is
//! an error; small files go up with a conditional put (If-None-Match).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use memguard_core::dirfd::{Dir, Kind};
use memguard_core::disk::{is_bundle_name, owner_alive, remove_bundle};
use memguard_core::manifest::SUMMARY_FILE;
use memguard_core::upload::{self, Settings, LOCK_FILE, REPORT_FILE, UPLOADED_FILE};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use serde_json::{json, Value};

use super::store::{self, Bucket};
use crate::ReportError;

/// Files above this go up in parts of `PART` bytes, `PARTS_IN_FLIGHT` at a
/// time: the uploader's memory is bounded by that, not by the snapshot.
const MULTIPART_ABOVE: u64 = 16 << 20;
const PART: usize = 8 << 20;
const PARTS_IN_FLIGHT: usize = 2;
const READ: usize = 1 << 20;
/// How long the uploader waits for the bundle's process to end. A
/// near-limit capture is followed by the crash within seconds; a process
/// that lives on is shipped at its next start (as a leftover).
const OWNER_WAIT: Duration = Duration::from_secs(60);
const TOP_CLASSES: usize = 10;

pub enum Outcome {
    Uploaded {
        url: String,
        files: usize,
        bytes: u64,
        secs: f64,
    },
    AlreadyUploaded,
    Busy,
    StillRunning,
}

/// Uploads each bundle; one line per bundle on stderr. `Err` (exit 2) if
/// any failed: it stays where it is and is retried at the next start.
pub fn run(bundles: &[PathBuf]) -> Result<(), ReportError> {
    // Below the app and everything else on the machine: this is cleanup.
    let _ = rustix::process::setpriority_process(None, 10);
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let (config, _) = memguard_core::config::Config::from_vars(utf8_vars(), &cwd);
    let settings = config.upload;
    let Some(target) = settings.target.clone() else {
        return Err(ReportError::Usage(
            "MEMGUARD_UPLOAD is not set (e.g. MEMGUARD_UPLOAD=s3://bucket/prefix)".into(),
        ));
    };
    let bucket = store::open(&target, &settings.sse)?;
    let rt = super::runtime()?;
    let deadline = Instant::now() + Duration::from_secs(settings.timeout_secs.into());
    let mut failed = 0;
    for bundle in bundles {
        let shown = bundle.display();
        let result = rt.block_on(async {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, upload_one(&bucket, &settings, bundle)).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "not done within MEMGUARD_UPLOAD_TIMEOUT={}s",
                    settings.timeout_secs
                )),
            }
        });
        match result {
            Ok(Outcome::Uploaded { url, files, bytes, secs }) => say(format!(
                "memguard upload: {shown} → {url} ({files} files, {:.1} MB in {secs:.1} s)",
                bytes as f64 / 1e6
            )),
            Ok(Outcome::AlreadyUploaded) => say(format!("memguard upload: {shown} was uploaded before; nothing to do")),
            Ok(Outcome::Busy) => say(format!("memguard upload: {shown} is being uploaded by another uploader")),
            Ok(Outcome::StillRunning) => say(format!(
                "memguard upload: {shown}: its process still runs after {} s; it is uploaded at the next start",
                OWNER_WAIT.as_secs()
            )),
            Err(e) => {
                failed += 1;
                say(format!(
                    "memguard upload: error: {shown} not uploaded to {target}: {}; kept locally, retried at the next start",
                    memguard_core::printable::printable(&e, 600)
                ));
            }
        }
    }
    if failed > 0 {
        return Err(ReportError::Reported);
    }
    Ok(())
}

/// The environment's UTF-8 variables (`std::env::vars` panics on others).
fn utf8_vars() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

/// One line on stderr in one write: it shares the app's log with the app.
fn say(line: String) {
    use std::io::Write;
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("{line}\n").as_bytes());
}

async fn upload_one(bucket: &Bucket, settings: &Settings, path: &Path) -> Result<Outcome, String> {
    let started = Instant::now();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !is_bundle_name(name) {
        return Err("not a memguard bundle directory (<time>-<pid>[-t<thread>])".into());
    }
    let root_path = path.parent().unwrap_or(Path::new("."));
    let root = Dir::open(root_path).map_err(|e| format!("{}: {e}", root_path.display()))?;
    let dir = root.open_dir(name).map_err(|e| e.to_string())?;
    if dir.stat_at(UPLOADED_FILE).is_ok() {
        return Ok(Outcome::AlreadyUploaded);
    }
    let lock = dir
        .open_or_create_file(LOCK_FILE)
        .map_err(|e| format!("{LOCK_FILE}: {e}"))?;
    match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => return Ok(Outcome::Busy),
        Err(e) => return Err(format!("{LOCK_FILE}: {e}")),
    }
    // Another uploader may have finished while we waited for the lock.
    if dir.stat_at(UPLOADED_FILE).is_ok() {
        return Ok(Outcome::AlreadyUploaded);
    }
    let waited = Instant::now();
    while owner_alive(name) {
        if waited.elapsed() > OWNER_WAIT {
            return Ok(Outcome::StillRunning);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let summary = upload::read_summary(&dir).ok_or("no readable summary.json")?;
    let service = upload::service_of(settings, &summary);
    let host = upload::host_of(settings);
    let base = format!("{service}/{host}/{name}");

    let mut files: Vec<String> = dir
        .entries()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|(n, kind)| {
            *kind == Kind::File && !n.starts_with('.') && n != SUMMARY_FILE && n != REPORT_FILE
        })
        .map(|(n, _)| n)
        .collect();
    files.sort();
    let mut pace = Pace::new(settings.rate);
    let mut bytes = 0;
    for file in &files {
        let key = bucket.key(&format!("{base}/{file}"));
        let handle = dir.open_file(file).map_err(|e| format!("{file}: {e}"))?;
        bytes += put_file(bucket, &key, handle, &mut pace)
            .await
            .map_err(|e| format!("{file}: {e}"))?;
    }
    let record = fleet_record(&summary, &service, &host, name, &report_of(path).await);
    let record = serde_json::to_vec_pretty(&record).expect("a JSON value serializes");
    bytes += put_small(
        bucket,
        &bucket.key(&format!("{base}/{REPORT_FILE}")),
        record,
    )
    .await?;
    let handle = dir
        .open_file(SUMMARY_FILE)
        .map_err(|e| format!("{SUMMARY_FILE}: {e}"))?;
    bytes += put_file(
        bucket,
        &bucket.key(&format!("{base}/{SUMMARY_FILE}")),
        handle,
        &mut pace,
    )
    .await?;

    let url = bucket.url(&format!("{base}/"));
    let marker = json!({ "url": url, "uploadedAt": chrono::Utc::now().to_rfc3339(), "files": files.len() + 2, "bytes": bytes });
    if let Ok(mut f) = dir.create_file(UPLOADED_FILE) {
        use std::io::Write;
        let _ = f.write_all(format!("{marker}\n").as_bytes());
    }
    if !settings.keep {
        // Safely in the bucket: the local copy goes (MEMGUARD_UPLOAD_KEEP=off).
        drop(lock);
        remove_bundle(&root, name)
            .map_err(|e| format!("uploaded, but not removed locally: {e}"))?;
    }
    Ok(Outcome::Uploaded {
        url,
        files: files.len() + 2,
        bytes,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// Puts one file under `key` unless an earlier run already did; the bytes sent.
async fn put_file(
    bucket: &Bucket,
    key: &Key,
    mut file: File,
    pace: &mut Pace,
) -> Result<u64, String> {
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    if let Some(done) = existing(bucket, key, size).await? {
        return Ok(done);
    }
    if size <= MULTIPART_ABOVE {
        let mut bytes = Vec::with_capacity(size as usize);
        file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        pace.sent(bytes.len()).await;
        return put_small(bucket, key, bytes).await;
    }
    let upload = bucket
        .store
        .put_multipart(key)
        .await
        .map_err(|e| store::explain(&e, &bucket.target.bucket))?;
    let mut parts = WriteMultipart::new_with_chunk_size(upload, PART);
    let mut buf = vec![0u8; READ];
    let mut sent = 0u64;
    let result: Result<(), String> = async {
        loop {
            let n = file.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(());
            }
            parts
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|e| store::explain(&e, &bucket.target.bucket))?;
            parts.write(&buf[..n]);
            sent += n as u64;
            pace.sent(n).await;
        }
    }
    .await;
    match result {
        Ok(()) => {
            parts
                .finish()
                .await
                .map_err(|e| store::explain(&e, &bucket.target.bucket))?;
            Ok(sent)
        }
        Err(e) => {
            let _ = parts.abort().await;
            Err(e)
        }
    }
}

/// A small object, created only if the key is free (If-None-Match: *, where
/// the store supports it; a store that does not is asked with a HEAD first).
async fn put_small(bucket: &Bucket, key: &Key, bytes: Vec<u8>) -> Result<u64, String> {
    let len = bytes.len() as u64;
    if let Some(done) = existing(bucket, key, len).await? {
        return Ok(done);
    }
    let payload = PutPayload::from(Bytes::from(bytes));
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match bucket.store.put_opts(key, payload, opts).await {
        Ok(_) => Ok(len),
        // Someone else's object, or ours from a run that died after the put.
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => existing(bucket, key, len)
            .await?
            .ok_or_else(|| format!("{key} exists with other content; not overwritten")),
        Err(e) => Err(store::explain(&e, &bucket.target.bucket)),
    }
}

/// `Some(0)` if `key` is already there with `size` bytes (done by an earlier
/// run); `None` if it is free; an error if something else is there.
async fn existing(bucket: &Bucket, key: &Key, size: u64) -> Result<Option<u64>, String> {
    match bucket.store.head(key).await {
        Ok(meta) if meta.size == size => Ok(Some(0)),
        Ok(meta) => Err(format!(
            "{key} exists with {} bytes, not {size}; not overwritten",
            meta.size
        )),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(store::explain(&e, &bucket.target.bucket)),
    }
}

/// `memguard report --json` on the bundle, in a child process: a snapshot's
/// graph takes memory in proportion to the heap, which this process must
/// not; its failure costs only the verdict, not the upload.
async fn report_of(bundle: &Path) -> Result<Value, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = tokio::process::Command::new(exe)
        .args(["report", "--json", "--top", "10"])
        .arg(bundle)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        return Err(err
            .lines()
            .last()
            .unwrap_or("memguard report failed")
            .trim_start_matches("memguard report: error: ")
            .to_string());
    }
    serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
}

/// `report.json`: what the fleet view shows of a bundle without downloading
/// it — the process, its captures, the verdict and the top classes.
pub fn fleet_record(
    summary: &Value,
    service: &str,
    host: &str,
    bundle: &str,
    report: &Result<Value, String>,
) -> Value {
    let captures: Vec<Value> = summary["captures"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|c| {
            json!({
                "seq": c["seq"], "trigger": c["trigger"], "time": c["time"], "outcome": c["outcome"],
                "heapUsed": c["heap"]["usedHeapSize"], "heapLimit": c["heap"]["heapSizeLimit"], "rssBytes": c["rssBytes"],
            })
        })
        .collect();
    let script = summary["argv"].get(1).and_then(Value::as_str).map(|s| {
        Path::new(s)
            .file_name()
            .map_or(s.to_string(), |n| n.to_string_lossy().into_owned())
    });
    let (verdict, classes, leak, error) = match report {
        Ok(r) => {
            let classes: Vec<Value> = r["snapshot"]["classes"]
                .as_array()
                .map(|c| c.iter().take(TOP_CLASSES).cloned().collect())
                .unwrap_or_default();
            (
                r["verdict"].clone(),
                Value::from(classes),
                r["timeline"]["leak"].clone(),
                Value::Null,
            )
        }
        Err(e) => (
            Value::Null,
            Value::Null,
            Value::Null,
            Value::from(e.as_str()),
        ),
    };
    json!({
        "schema": super::REPORT_SCHEMA,
        "service": service,
        "host": host,
        "bundle": bundle,
        "pid": summary["pid"],
        "threadId": summary["threadId"],
        "script": script,
        "node": summary["node"],
        "startedAt": summary["startedAt"],
        "ended": summary.get("ended").cloned().unwrap_or(Value::Null),
        "captures": captures,
        "verdict": verdict,
        "topClasses": classes,
        "leak": leak,
        "reportError": error,
        "uploadedAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// `MEMGUARD_UPLOAD_RATE`: sleeps so that the bytes sent stay under the rate.
struct Pace {
    rate: Option<u64>,
    start: Instant,
    sent: u64,
}

impl Pace {
    fn new(rate: Option<u64>) -> Pace {
        Pace {
            rate,
            start: Instant::now(),
            sent: 0,
        }
    }

    async fn sent(&mut self, n: usize) {
        let Some(rate) = self.rate else { return };
        self.sent += n as u64;
        let due = Duration::from_secs_f64(self.sent as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(self.start.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_record_holds_the_verdict_and_no_config() {
        let summary = json!({
            "pid": 42, "threadId": 0, "argv": ["/usr/bin/node", "/srv/app/server.js"], "startedAt": "2026-01-02T03:04:05Z",
            "config": { "upload": { "target": "s3://b/p" } },
            "captures": [{ "seq": 1, "trigger": "near-heap-limit", "time": "t", "outcome": "written",
                           "heap": { "usedHeapSize": 100, "heapSizeLimit": 200 } }],
        });
        let report = Ok(
            json!({ "verdict": { "headline": "Leak suspect: 3 Foo" }, "snapshot": { "classes": [{"name": "Foo"}] } }),
        );
        let r = fleet_record(&summary, "server", "host-1", "20260102-030405-42", &report);
        assert_eq!(r["verdict"]["headline"], "Leak suspect: 3 Foo");
        assert_eq!(r["script"], "server.js");
        assert_eq!(r["captures"][0]["heapUsed"], 100);
        assert_eq!(r["topClasses"][0]["name"], "Foo");
        assert!(r.get("config").is_none());
        let failed = fleet_record(&summary, "s", "h", "b", &Err("truncated".into()));
        assert_eq!(
            (failed["verdict"].clone(), failed["reportError"].clone()),
            (Value::Null, json!("truncated"))
        );
    }
}
