//! One-line stderr messages, all prefixed `memguard:` so operators can grep
//! them out of a service's logs. Level is process-wide (set once at start).
//! Lines quote paths, env values and names from the heap: each line is made
//! printable as a whole here, so no caller can forget it (a newline inside
//! one would also forge a second `memguard:` line).

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::config::LogLevel;
use crate::printable::{printable, UNLIMITED};

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);

pub fn set_level(level: LogLevel) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

fn enabled(level: LogLevel) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level as u8
}

fn emit(line: &str) {
    // One write call per line so lines from several threads do not interleave;
    // errors are ignored: a closed stderr must not hurt the host.
    let line = printable(line, UNLIMITED);
    let mut text = String::with_capacity(line.len() + 11);
    text.push_str("memguard: ");
    text.push_str(&line);
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// A problem the user should fix (bad setting, unwritable directory). Shown
/// unless the log level is `silent`.
pub fn warn(line: &str) {
    if enabled(LogLevel::Info) {
        emit(&format!("warning: {line}"));
    }
}

pub fn info(line: &str) {
    if enabled(LogLevel::Info) {
        emit(line);
    }
}

pub fn debug(line: &str) {
    if enabled(LogLevel::Debug) {
        emit(line);
    }
}

/// True the first time a given line is seen in this process: every worker
/// that loads memguard parses the same environment, and one warning is enough.
fn first_time(line: &str) -> bool {
    static SEEN: parking_lot::Mutex<Vec<String>> = parking_lot::Mutex::new(Vec::new());
    let mut seen = SEEN.lock();
    let new = !seen.iter().any(|s| s == line);
    if new {
        seen.push(line.to_string());
    }
    new
}

pub fn warn_once(line: &str) {
    if first_time(line) {
        warn(line);
    }
}

pub fn info_once(line: &str) {
    if first_time(line) {
        info(line);
    }
}
