//! Bundles in S3-compatible object storage: `memguard upload` (run detached
//! by the agent), `memguard list`, `memguard fetch` and `memguard report
//! s3://…`. All networking of memguard lives here, in this binary, never in
//! the Node process.
//!
//! - `store` — the bucket from `s3://bucket/prefix` and the standard AWS
//!   environment (credentials, region, endpoint); errors in one line
//! - `put`   — uploading a bundle: lock, wait for its process to end, files,
//!   `report.json`, `summary.json` last, the marker
//! - `list`  — the fleet view: every bundle under a prefix with its verdict
//! - `fetch` — a bundle brought down (for `fetch` and `report s3://…`)
//!
//! Key layout: `<prefix>/<service>/<host>/<bundle>/<file>`.

pub mod fetch;
pub mod list;
pub mod put;
pub mod store;

/// The fleet record the uploader puts beside each bundle's files.
pub const REPORT_SCHEMA: &str = "memguard-upload/1";

/// A tokio runtime for one command: current-thread, as the work is I/O and
/// the uploader must stay small.
pub fn runtime() -> Result<tokio::runtime::Runtime, crate::ReportError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::ReportError::Remote(format!("cannot start the I/O runtime: {e}")))
}
