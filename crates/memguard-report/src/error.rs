//! Every way an input can be wrong. Each one ends the command with exit code 2
//! and one line on stderr — never a panic.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a heap snapshot: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: truncated: {reason}")]
    Truncated { path: PathBuf, reason: String },
    #[error("{0}")]
    Usage(String),
    /// Object storage (upload, list, fetch), in one line.
    #[error("{0}")]
    Remote(String),
    /// Already said on stderr, one line per problem (`memguard upload`).
    #[error("")]
    Reported,
}

impl ReportError {
    /// Exit code for the CLI: 2 for a bad input or usage.
    pub fn exit_code(&self) -> i32 {
        2
    }
}
