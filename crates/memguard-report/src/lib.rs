//! memguard's analyser: opens a crash bundle (or a single heap snapshot) and
//! answers what grew, what retains it, and when. Pure Rust: no napi, no V8.
//!
//! Layout (one concern per module):
//! - `input`       — resolve a bundle dir / snapshot file into the files to read
//! - `snapshot/`   — streamed `.heapsnapshot[.gz]` reader → compact graph (CSR),
//!                   dominators and retained sizes (DevTools' rules), classes,
//!                   retainer paths, diff by node id
//! - `timeline`    — `timeline.ndjson.gz` → heap per space over time, GC pauses,
//!                   triggers, markers, leak verdict
//! - `summary`     — `summary.json` → its JSON value
//! - `earlier`     — a snapshot taken before the end (`last-affordable`)
//! - `allocations` — `allocations-*.heapprofile` → top allocation sites
//! - `bounded`     — reading bundle files within size and nesting bounds
//! - `verdict/`    — the answer first: leak suspects or why there is none
//! - `sourcemaps`  — generated positions → original source
//! - `report`      — the `--json` schema (the one structure every output renders)
//! - `terminal`, `html` — renderings of a `Report`
//! - `upload/`     — bundles in S3-compatible storage: upload, list, fetch

pub mod allocations;
pub mod bounded;
pub mod earlier;
pub mod error;
pub mod history;
pub mod html;
pub mod input;
pub mod report;
pub mod snapshot;
pub mod sourcemaps;
pub mod summary;
pub mod terminal;
pub mod timeline;
pub mod upload;
pub mod verdict;

pub use error::ReportError;
pub use report::Report;

/// Writes `text` to stdout; a reader that closed the pipe early
/// (`memguard report … | head`) is not an error.
pub fn write_stdout(text: &str) -> Result<(), ReportError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|source| ReportError::Io { path: "<stdout>".into(), source }),
    }
}
