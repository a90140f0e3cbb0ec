//! The report: the one structure `--json` prints and the terminal and HTML
//! outputs render. Its JSON form is a stable, documented schema
//! (`"schema": "memguard-report/1"`; README, "Report JSON"): fields may be
//! added, never renamed or removed, within a schema version.

use serde::Serialize;

pub const SCHEMA: &str = "memguard-report/1";

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub schema: &'static str,
    /// What was opened: a bundle directory or a snapshot file.
    pub input: String,
    /// `summary.json` of the bundle, verbatim, when there is one.
    pub bundle: Option<serde_json::Value>,
    // Filled by the snapshot engine (classes ranked by retained size,
    // retainer paths, diff) and by the timeline / allocation readers.
    // Each section is `null` when its input is absent.
}
