//! `memguard list s3://bucket/prefix [--service S] [--since 7d] [--json]`:
//! every crash bundle under the prefix, newest first, with its verdict —
//! from the small `report.json` of each, never from its snapshot. A bundle
//! counts once its `summary.json` is there (the uploader puts it last).

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use memguard_core::disk::bundle_started;
use memguard_core::manifest::SUMMARY_FILE;
use memguard_core::printable::{name as printable_name, printable};
use memguard_core::upload::REPORT_FILE;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{json, Value};

use super::store::{self, Bucket};
use crate::ReportError;

/// report.json files fetched at once.
const CONCURRENT: usize = 8;
const REPORT_MAX: u64 = 1 << 20;

/// One bundle found under the prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Its key without the bucket, ending in the bundle's name.
    pub key: String,
    pub service: String,
    pub host: String,
    pub bundle: String,
    pub has_report: bool,
}

/// The bundles among `keys` (under `prefix`): `…/<service>/<host>/<bundle>/summary.json`.
pub fn bundles(prefix: &str, keys: &[String]) -> Vec<Found> {
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    let mut reports = Vec::new();
    for key in keys {
        let rest = if prefix.is_empty() {
            key.as_str()
        } else {
            key.strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('/'))
                .unwrap_or("")
        };
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() != 4 {
            continue;
        }
        let dir = key.rsplit_once('/').map_or("", |(d, _)| d).to_string();
        match parts[3] {
            SUMMARY_FILE => {
                found.insert(
                    dir.clone(),
                    Found {
                        key: dir,
                        service: parts[0].into(),
                        host: parts[1].into(),
                        bundle: parts[2].into(),
                        has_report: false,
                    },
                );
            }
            REPORT_FILE => reports.push(dir),
            _ => {}
        }
    }
    for dir in reports {
        if let Some(f) = found.get_mut(&dir) {
            f.has_report = true;
        }
    }
    found.into_values().collect()
}

/// `7d`, `12h`, `30m`, `90s`, `2w` → seconds.
pub fn parse_since(text: &str) -> Option<i64> {
    let text = text.trim();
    let (n, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = n.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(scale)
}

pub fn run(
    bucket: &Bucket,
    service: Option<&str>,
    since: Option<i64>,
    json_out: bool,
) -> Result<(), ReportError> {
    let rt = super::runtime()?;
    let rows = rt.block_on(rows(bucket, service, since))?;
    let text = if json_out {
        serde_json::to_string_pretty(&rows).expect("JSON") + "\n"
    } else {
        render(&bucket.target.to_string(), &rows)
    };
    crate::write_stdout(&text)
}

async fn rows(
    bucket: &Bucket,
    service: Option<&str>,
    since: Option<i64>,
) -> Result<Vec<Value>, ReportError> {
    let err =
        |e: object_store::Error| ReportError::Remote(store::explain(&e, &bucket.target.bucket));
    let prefix = bucket.key("");
    let prefix_opt = (!bucket.target.prefix.is_empty()).then_some(&prefix);
    let metas: Vec<_> = bucket
        .store
        .list(prefix_opt)
        .try_collect()
        .await
        .map_err(err)?;
    let keys: Vec<String> = metas.into_iter().map(|m| m.location.to_string()).collect();
    let now = chrono::Utc::now().timestamp();
    let wanted: Vec<Found> = bundles(&bucket.target.prefix, &keys)
        .into_iter()
        .filter(|f| service.is_none_or(|s| f.service == s))
        .filter(|f| {
            since.is_none_or(|secs| bundle_started(&f.bundle).is_some_and(|t| t >= now - secs))
        })
        .collect();
    let mut rows: Vec<Value> = futures::stream::iter(wanted)
        .map(|f| async move {
            let record = if f.has_report {
                fetch_json(bucket, &format!("{}/{REPORT_FILE}", f.key)).await
            } else {
                Err("no report.json".into())
            };
            let mut row = record.unwrap_or_else(|e| json!({ "reportError": e }));
            row["service"] = f.service.into();
            row["host"] = f.host.into();
            row["bundle"] = f.bundle.clone().into();
            row["url"] = format!("s3://{}/{}", bucket.target.bucket, f.key).into();
            row
        })
        .buffer_unordered(CONCURRENT)
        .collect()
        .await;
    // Newest first: bundle names start with the UTC start time.
    rows.sort_by(|a, b| b["bundle"].as_str().cmp(&a["bundle"].as_str()));
    Ok(rows)
}

async fn fetch_json(bucket: &Bucket, key: &str) -> Result<Value, String> {
    let key = object_store::path::Path::from(key);
    let got = bucket
        .store
        .get(&key)
        .await
        .map_err(|e| store::explain(&e, &bucket.target.bucket))?;
    if got.meta.size > REPORT_MAX {
        return Err(format!("{key} is larger than {REPORT_MAX} bytes"));
    }
    let bytes = got
        .bytes()
        .await
        .map_err(|e| store::explain(&e, &bucket.target.bucket))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{key}: {e}"))
}

/// The terminal table: one bundle a line, its verdict under it.
pub fn render(target: &str, rows: &[Value]) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "memguard list: {target} — {} bundle{}\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    if rows.is_empty() {
        return out;
    }
    let text = |v: &Value| printable_name(v.as_str().unwrap_or("-")).into_owned();
    let _ = writeln!(
        out,
        "\n{:<20}  {:<16}  {:<16}  {:>8}  {:<16}  {:<9}  {:>18}",
        "time (UTC)", "service", "host", "pid", "trigger", "outcome", "heap at capture"
    );
    for row in rows {
        let last = row["captures"]
            .as_array()
            .and_then(|c| c.last())
            .cloned()
            .unwrap_or(Value::Null);
        let time = last["time"]
            .as_str()
            .or(row["startedAt"].as_str())
            .unwrap_or("-");
        let time: String = time.replace('T', " ").chars().take(19).collect();
        let outcome = match (&last, &row["ended"]) {
            (Value::Null, Value::Null) => "crashed".to_string(),
            (Value::Null, ended) => text(&ended["reason"]),
            (c, _) => text(&c["outcome"]),
        };
        let heap = match (last["heapUsed"].as_u64(), last["heapLimit"].as_u64()) {
            (Some(used), Some(limit)) => {
                format!("{:.1} of {:.1} MB", used as f64 / 1e6, limit as f64 / 1e6)
            }
            _ => "-".into(),
        };
        let pid = row["pid"].as_u64().map_or("-".into(), |p| p.to_string());
        let _ = writeln!(
            out,
            "{:<20}  {:<16}  {:<16}  {:>8}  {:<16}  {:<9}  {:>18}",
            printable(&time, 19),
            text(&row["service"]),
            text(&row["host"]),
            pid,
            text(&last["trigger"]),
            outcome,
            heap
        );
        let verdict = match (
            row["verdict"]["headline"].as_str(),
            row["reportError"].as_str(),
        ) {
            (Some(h), _) => printable(h, 300).into_owned(),
            (None, Some(e)) => format!("no verdict: {}", printable(e, 200)),
            (None, None) => "no verdict".into(),
        };
        let _ = writeln!(out, "  {verdict}\n  {}", text(&row["url"]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_are_those_with_a_summary() {
        let keys: Vec<String> = [
            "fleet/api/host-a/20260102-030405-11/summary.json",
            "fleet/api/host-a/20260102-030405-11/report.json",
            "fleet/api/host-a/20260102-030405-11/heap-1.heapsnapshot.gz",
            "fleet/web/host-b/20260103-030405-12/report.json", // half uploaded: no summary yet
            "fleet/web/host-b/20260104-030405-13/summary.json",
            "fleet/stray.txt",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let found = bundles("fleet", &keys);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            (
                found[0].service.as_str(),
                found[0].host.as_str(),
                found[0].has_report
            ),
            ("api", "host-a", true)
        );
        assert_eq!(
            (found[1].bundle.as_str(), found[1].has_report),
            ("20260104-030405-13", false)
        );
        assert_eq!(bundles("", &["s/h/b/summary.json".to_string()]).len(), 1);
    }

    #[test]
    fn since() {
        assert_eq!(parse_since("7d"), Some(7 * 86_400));
        assert_eq!(parse_since("12h"), Some(43_200));
        assert_eq!(parse_since("30m"), Some(1800));
        for bad in ["", "d", "7", "7y", "-1d"] {
            assert_eq!(parse_since(bad), None, "{bad:?}");
        }
    }
}
