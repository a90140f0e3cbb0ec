//! Shipping bundles to S3-compatible object storage, the agent's half: the
//! `MEMGUARD_UPLOAD*` settings (pure, unit-tested), which bundles are left to
//! upload, and starting the uploader. The upload itself — networking,
//! credentials, retries — happens in the `memguard-report upload` process,
//! never in the Node process: the app is usually about to die when a capture
//! ends, and its event loop must not wait on the network.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;

use crate::dirfd::Dir;
use crate::disk::{other_bundles, owner_alive};
use crate::log;

/// Made in a bundle once all its files are in the bucket: never uploaded twice.
pub const UPLOADED_FILE: &str = ".uploaded";
/// Held (flock) by the uploader working on a bundle: one uploader per bundle.
pub const LOCK_FILE: &str = ".upload.lock";
/// The verdict the uploader computes and puts beside the bundle's files.
pub const REPORT_FILE: &str = "report.json";
pub const DEFAULT_TIMEOUT_SECS: u32 = 900;
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<u32> = 10..=86_400;
/// Leftovers handed to one uploader per start; the rest wait for the next.
const MAX_LEFTOVERS: usize = 20;
const SUMMARY_MAX: u64 = 16 << 20;

/// Variables read here (besides `MEMGUARD_UPLOAD`'s siblings, `MEMGUARD_SERVICE`).
pub const VARS: &[&str] = &[
    "MEMGUARD_UPLOAD",
    "MEMGUARD_UPLOAD_KEEP",
    "MEMGUARD_UPLOAD_TIMEOUT",
    "MEMGUARD_UPLOAD_RATE",
    "MEMGUARD_UPLOAD_SSE",
    "MEMGUARD_SERVICE",
    "MEMGUARD_UPLOAD_HOST",
];

/// Where bundles go: `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.prefix.as_str() {
            "" => write!(f, "s3://{}", self.bucket),
            prefix => write!(f, "s3://{}/{prefix}", self.bucket),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Server-side encryption asked of the store (`MEMGUARD_UPLOAD_SSE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Sse {
    /// The bucket's default (S3 encrypts with SSE-S3 by default since 2023).
    Default,
    /// `AES256`: SSE-S3.
    Aes256,
    /// `aws:kms` or `aws:kms:<key id>`: SSE-KMS, the bucket's key or the one named.
    Kms(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// `MEMGUARD_UPLOAD`; `None` = no upload.
    pub target: Option<Target>,
    /// Keep the local copy after it is safely uploaded (`MEMGUARD_UPLOAD_KEEP`).
    pub keep: bool,
    /// `MEMGUARD_SERVICE`; `None` = the script's name.
    pub service: Option<String>,
    /// `MEMGUARD_UPLOAD_HOST`; `None` = the host name (a pod's name).
    pub host: Option<String>,
    /// Bound on one uploader's whole run (`MEMGUARD_UPLOAD_TIMEOUT`).
    pub timeout_secs: u32,
    /// Bytes per second at most (`MEMGUARD_UPLOAD_RATE`); `None` = unbounded.
    pub rate: Option<u64>,
    pub sse: Sse,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            target: None,
            keep: true,
            service: None,
            host: None,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            rate: None,
            sse: Sse::Default,
        }
    }
}

/// Applies one `MEMGUARD_UPLOAD*`/`MEMGUARD_SERVICE` variable; a bad value
/// leaves the default and adds a warning (see `config::bad`).
pub fn apply(settings: &mut Settings, name: &str, raw: &str, warnings: &mut Vec<String>) {
    let value = raw.trim();
    let bad = crate::config::bad;
    match name {
        "MEMGUARD_UPLOAD" => match parse_target(value) {
            Ok(target) => settings.target = target,
            Err(problem) => warnings.push(bad(name, raw, problem, "off (bundles stay local)")),
        },
        "MEMGUARD_UPLOAD_KEEP" => {
            if let Some(keep) = crate::config::switch_or_warn(name, raw, "on", warnings) {
                settings.keep = keep
            }
        }
        "MEMGUARD_SERVICE" | "MEMGUARD_UPLOAD_HOST" => match valid_segment(value) {
            true if name == "MEMGUARD_SERVICE" => settings.service = Some(value.to_string()),
            true => settings.host = Some(value.to_string()),
            false => warnings.push(bad(
                name,
                raw,
                "is not a name of 1 to 64 letters, digits, '.', '_' or '-'",
                if name == "MEMGUARD_SERVICE" {
                    "the script's name"
                } else {
                    "the host name"
                },
            )),
        },
        "MEMGUARD_UPLOAD_TIMEOUT" => {
            let (range, default) = (TIMEOUT_RANGE, DEFAULT_TIMEOUT_SECS);
            if let Some(secs) = crate::config::whole_or_warn(name, raw, range, "seconds", default, warnings) {
                settings.timeout_secs = secs
            }
        }
        "MEMGUARD_UPLOAD_RATE" => match value.to_ascii_lowercase().as_str() {
            "" | "off" | "none" => settings.rate = None,
            _ => match crate::config::parse_size(value.trim_end_matches("/s")) {
                Some(bytes) if bytes >= 64 << 10 => settings.rate = Some(bytes),
                _ => warnings.push(bad(
                    name,
                    raw,
                    "is not off or a size per second of at least 64KiB (e.g. 20MB)",
                    "off",
                )),
            },
        },
        "MEMGUARD_UPLOAD_SSE" => match parse_sse(value) {
            Some(sse) => settings.sse = sse,
            None => warnings.push(bad(
                name,
                raw,
                "is not off, AES256, aws:kms or aws:kms:<key id>",
                "off",
            )),
        },
        _ => unreachable!("{name} is not an upload variable"),
    }
}

/// `s3://bucket[/prefix]`; empty or `off` = no upload.
pub fn parse_target(value: &str) -> Result<Option<Target>, &'static str> {
    if value.is_empty() || value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let Some(rest) = value.strip_prefix("s3://") else {
        return Err("is not s3://bucket/prefix");
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    // Credentials only ever come from the AWS environment: one in the URL
    // would end up in summary.json and in log lines.
    if bucket.contains('@') || bucket.contains(':') {
        return Err("has credentials or a port in it (they come from the AWS environment only)");
    }
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !bucket_ok {
        return Err("has no valid bucket name (3 to 63 lowercase letters, digits, '.', '-')");
    }
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty() && !prefix.split('/').all(valid_segment) {
        return Err(
            "has a prefix that is not '/'-separated names of letters, digits, '.', '_' or '-'",
        );
    }
    Ok(Some(Target {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    }))
}

fn parse_sse(value: &str) -> Option<Sse> {
    match value {
        "" => Some(Sse::Default),
        v if v.eq_ignore_ascii_case("off") || v.eq_ignore_ascii_case("default") => {
            Some(Sse::Default)
        }
        v if v.eq_ignore_ascii_case("AES256") => Some(Sse::Aes256),
        "aws:kms" => Some(Sse::Kms(None)),
        v => v
            .strip_prefix("aws:kms:")
            .filter(|k| !k.is_empty() && !k.contains(char::is_whitespace))
            .map(|k| Sse::Kms(Some(k.into()))),
    }
}

/// A key segment that needs no escaping anywhere: a service or host name.
fn valid_segment(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// `s` made into a key segment: other characters become `_`.
pub fn segment(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if valid_segment(&cleaned) {
        cleaned
    } else {
        "_".into()
    }
}

/// The service a bundle belongs to: `MEMGUARD_SERVICE`, else the script's
/// file name without its extension (`server.js` → `server`), else `node`.
pub fn service_of(settings: &Settings, summary: &Value) -> String {
    if let Some(service) = &settings.service {
        return service.clone();
    }
    let script = summary["argv"].get(1).and_then(Value::as_str).unwrap_or("");
    let stem = Path::new(script)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if stem.is_empty() {
        "node".into()
    } else {
        segment(&stem)
    }
}

/// `MEMGUARD_UPLOAD_HOST`, else this machine's name (a pod's name in
/// Kubernetes), as a key segment.
pub fn host_of(settings: &Settings) -> String {
    match &settings.host {
        Some(host) => host.clone(),
        None => segment(&rustix::system::uname().nodename().to_string_lossy()),
    }
}

/// Whether a bundle is worth shipping: something was captured, or the
/// process did not end in order (crash, kill).
pub fn worth_uploading(summary: &Value) -> bool {
    let captured = summary["captures"]
        .as_array()
        .is_some_and(|c| !c.is_empty());
    captured || summary.get("ended").is_none()
}

/// Bundles under `root` not uploaded yet whose process is gone and that are
/// worth shipping, oldest first (at most `MAX_LEFTOVERS`).
pub fn leftovers(root: &Path, own_pid: u32) -> Vec<PathBuf> {
    let Ok(dir) = Dir::open(root) else {
        return Vec::new();
    };
    other_bundles(&dir, own_pid)
        .into_iter()
        .filter(|name| {
            let Ok(bundle) = dir.open_dir(name) else {
                return false;
            };
            bundle.stat_at(UPLOADED_FILE).is_err()
                && !owner_alive(name)
                && read_summary(&bundle).is_some_and(|s| worth_uploading(&s))
        })
        .take(MAX_LEFTOVERS)
        .map(|name| root.join(name))
        .collect()
}

pub fn read_summary(bundle: &Dir) -> Option<Value> {
    let file = bundle.open_file(crate::manifest::SUMMARY_FILE).ok()?;
    let mut text = Vec::new();
    file.take(SUMMARY_MAX).read_to_end(&mut text).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The `memguard-report` binary the uploader runs as (set from index.js,
/// which knows where the platform's binaries are).
static UPLOADER: OnceLock<PathBuf> = OnceLock::new();

pub fn set_uploader(binary: &str) {
    if !binary.is_empty() {
        let _ = UPLOADER.set(PathBuf::from(binary));
    }
}

/// Starts `memguard-report upload <bundles>` detached: its own process
/// group (a Ctrl-C or a kill of the app's group does not reach it), no
/// stdin/stdout, stderr shared with the app so its one line lands in the
/// app's log. It inherits the environment (the AWS variables and
/// `MEMGUARD_UPLOAD*`) and lowers its own priority. A thread of ours reaps
/// it if it ends while we live. Never blocks on the upload.
pub fn spawn(bundles: &[PathBuf]) {
    if bundles.is_empty() {
        return;
    }
    let Some(binary) = UPLOADER.get() else {
        log::warn_once("MEMGUARD_UPLOAD is set but no memguard-report binary was found to upload with; bundles stay local");
        return;
    };
    use std::os::fd::AsFd;
    use std::os::unix::process::CommandExt;
    // Node marks its stdio close-on-exec: Stdio::inherit() would hand the
    // uploader a closed fd 2. A duplicate, dup2'ed into place, stays open.
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_or_else(|_| Stdio::null(), Stdio::from);
    let child = Command::new(binary)
        .arg("upload")
        .args(bundles)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .process_group(0)
        .spawn();
    match child {
        Ok(mut child) => {
            log::debug(&format!("uploader {} started for {} bundle(s)", child.id(), bundles.len()));
            let _ = std::thread::Builder::new().name("memguard-upload-wait".into()).spawn(move || child.wait());
        }
        Err(e) => log::warn(&format!(
            "cannot start the uploader {}: {e}; the bundle stays in {} and is uploaded at the next start",
            binary.display(),
            bundles[0].parent().unwrap_or(Path::new(".")).display()
        )),
    }
}

/// At start: uploads the leftovers under `root` from a thread of its own
/// (a directory scan has no place on the JS thread).
pub fn leftovers_in_background(root: PathBuf, own_pid: u32) {
    static ONCE: OnceLock<()> = OnceLock::new();
    if ONCE.set(()).is_err() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("memguard-leftovers".into())
        .spawn(move || spawn(&leftovers(&root, own_pid)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(vars: &[(&str, &str)]) -> (Settings, Vec<String>) {
        let mut s = Settings::default();
        let mut w = Vec::new();
        for (k, v) in vars {
            apply(&mut s, k, v, &mut w);
        }
        (s, w)
    }

    #[test]
    fn targets() {
        let t = parse_target("s3://crash-bundles/prod/eu").unwrap().unwrap();
        assert_eq!(
            (t.bucket.as_str(), t.prefix.as_str()),
            ("crash-bundles", "prod/eu")
        );
        assert_eq!(t.to_string(), "s3://crash-bundles/prod/eu");
        assert_eq!(
            parse_target("s3://bkt/").unwrap().unwrap().to_string(),
            "s3://bkt"
        );
        assert_eq!(parse_target("off"), Ok(None));
        assert_eq!(parse_target(""), Ok(None));
        for bad in [
            "bkt/x",
            "https://bkt",
            "s3://",
            "s3://B",
            "s3://key:secret@bkt/x",
            "s3://bkt/a b",
            "s3://bkt/../x",
        ] {
            assert!(parse_target(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn settings_and_warnings() {
        let (s, w) = parse(&[]);
        assert_eq!(s, Settings::default());
        assert!(w.is_empty() && s.keep && s.target.is_none());
        let (s, w) = parse(&[
            ("MEMGUARD_UPLOAD", "s3://b-1/p"),
            ("MEMGUARD_UPLOAD_KEEP", "off"),
            ("MEMGUARD_SERVICE", "checkout-api"),
            ("MEMGUARD_UPLOAD_TIMEOUT", "60"),
            ("MEMGUARD_UPLOAD_RATE", "20MB/s"),
            ("MEMGUARD_UPLOAD_SSE", "aws:kms:alias/crashes"),
        ]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.target.unwrap().to_string(), "s3://b-1/p");
        assert!(!s.keep);
        assert_eq!(s.service.as_deref(), Some("checkout-api"));
        assert_eq!((s.timeout_secs, s.rate), (60, Some(20_000_000)));
        assert_eq!(s.sse, Sse::Kms(Some("alias/crashes".into())));
        assert_eq!(
            parse(&[("MEMGUARD_UPLOAD_SSE", "AES256")]).0.sse,
            Sse::Aes256
        );
        assert_eq!(
            parse(&[("MEMGUARD_UPLOAD_SSE", "aws:kms")]).0.sse,
            Sse::Kms(None)
        );
        for (name, value) in [
            ("MEMGUARD_UPLOAD", "s3://a:b@bkt"),
            ("MEMGUARD_UPLOAD_KEEP", "maybe"),
            ("MEMGUARD_SERVICE", "my service"),
            ("MEMGUARD_UPLOAD_HOST", "a/b"),
            ("MEMGUARD_UPLOAD_TIMEOUT", "5"),
            ("MEMGUARD_UPLOAD_RATE", "1k"),
            ("MEMGUARD_UPLOAD_SSE", "rot13"),
        ] {
            let (s, w) = parse(&[(name, value)]);
            assert_eq!(s, Settings::default(), "{name}={value}: defaults stay");
            assert_eq!(w.len(), 1, "{name}={value}");
            assert!(
                w[0].starts_with(&format!("{name}=")) && w[0].contains("using the default"),
                "{}",
                w[0]
            );
        }
        // A bad URL names neither the secret nor lets it through.
        let (_, w) = parse(&[("MEMGUARD_UPLOAD", "s3://AKIA:s3cr3t@bkt")]);
        assert!(w[0].contains("credentials"), "{}", w[0]);
    }

    #[test]
    fn service_host_and_segments() {
        let s = Settings::default();
        assert_eq!(
            service_of(
                &s,
                &json!({ "argv": ["/usr/bin/node", "/srv/app/server.js"] })
            ),
            "server"
        );
        assert_eq!(
            service_of(&s, &json!({ "argv": ["/usr/bin/node"] })),
            "node"
        );
        assert_eq!(
            service_of(&s, &json!({ "argv": ["node", "/srv/my app.mjs"] })),
            "my_app"
        );
        let named = Settings {
            service: Some("api".into()),
            ..Settings::default()
        };
        assert_eq!(service_of(&named, &json!({})), "api");
        assert!(valid_segment(&host_of(&s)));
        assert_eq!(
            host_of(&Settings {
                host: Some("pod-7".into()),
                ..Settings::default()
            }),
            "pod-7"
        );
        assert_eq!(segment(".."), "_");
        assert_eq!(segment("a/b"), "a_b");
    }

    #[test]
    fn leftovers_are_gone_processes_with_a_capture_or_no_end_not_yet_uploaded() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let bundle = |name: &str, summary: Value| {
            std::fs::create_dir(root.join(name)).unwrap();
            std::fs::write(root.join(name).join("summary.json"), summary.to_string()).unwrap();
        };
        // pids above 2^22 cannot exist: these processes are gone.
        bundle(
            "20260102-030405-4000001",
            json!({ "captures": [{ "trigger": "near-heap-limit" }] }),
        );
        bundle(
            "20260102-030406-4000002",
            json!({ "captures": [], "ended": { "reason": "exit", "code": 0 } }),
        );
        bundle("20260102-030407-4000003-t1", json!({ "captures": [] }));
        bundle(
            "20260102-030408-4000004",
            json!({ "captures": [{ "trigger": "api" }], "ended": { "reason": "exit" } }),
        );
        bundle("20260102-030409-4000005", json!({ "captures": [] }));
        std::fs::write(
            root.join("20260102-030409-4000005").join(UPLOADED_FILE),
            "{}",
        )
        .unwrap();
        let names: Vec<String> = leftovers(root, 4000004)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec!["20260102-030405-4000001", "20260102-030407-4000003-t1"]
        );
    }
}
