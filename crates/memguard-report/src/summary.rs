//! `summary.json` → the JSON value the report shows (verbatim under
//! `bundle` in `--json`). Bounded: see `bounded`.

use std::path::Path;

use serde_json::Value;

use crate::bounded;
use crate::ReportError;

/// memguard's summaries are kilobytes (captures × statistics and a stack of
/// 32 frames); 64 MB leaves room for argv-heavy processes and many captures.
const MAX_BYTES: u64 = 64 << 20;

/// Reads and parses `summary.json`. serde_json's default nesting limit (128)
/// stays on: memguard writes no more than 5 levels.
pub fn read(path: &Path) -> Result<Value, ReportError> {
    let text = bounded::read_file(path, MAX_BYTES, "a summary.json")?;
    serde_json::from_slice(&text).map_err(|e| ReportError::Usage(format!("{}: not valid JSON: {e}", path.display())))
}
