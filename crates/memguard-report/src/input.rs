//! What the user pointed at → the files to read: a bundle directory
//! (`summary.json`, `heap-<seq>.heapsnapshot[.gz]`, `timeline.ndjson.gz` and
//! its older segments `timeline-<n>.ndjson.gz`, `allocations-<seq>.heapprofile`)
//! or a single heap snapshot file.

use std::path::{Path, PathBuf};

use crate::ReportError;

// The names the agent writes (one definition for writer and reader).
pub use memguard_core::manifest::SUMMARY_FILE;
pub use memguard_core::history::HISTORY_FILE;
pub use memguard_core::recorder::TIMELINE_FILE;
use memguard_core::segments::segment_number;

/// Most timeline segments read. The recorder keeps 8 (a few more only if
/// removing failed); a crafted bundle with thousands is read from its newest.
pub const MAX_SEGMENTS: usize = 64;

/// The files of one input, each `None`/empty when absent.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Inputs {
    /// The path as given.
    pub input: PathBuf,
    pub summary: Option<PathBuf>,
    /// Heap snapshots, oldest (lowest seq) first.
    pub snapshots: Vec<PathBuf>,
    /// The timeline's segments, oldest first: `timeline-<n>.ndjson.gz` by
    /// `n`, then `timeline.ndjson.gz` (the one being written).
    pub timeline: Vec<PathBuf>,
    /// The lifetime history, `history.ndjson.gz`.
    pub history: Option<PathBuf>,
    /// The newest allocation profile.
    pub allocations: Option<PathBuf>,
}

impl Inputs {
    /// The snapshot the report is about: the newest (in a crash bundle, the near-limit one).
    pub fn main_snapshot(&self) -> Option<&Path> {
        self.snapshots.last().map(PathBuf::as_path)
    }

    /// Oldest and newest snapshot, when there are two or more.
    pub fn diff_pair(&self) -> Option<(&Path, &Path)> {
        match self.snapshots.as_slice() {
            [first, .., last] => Some((first, last)),
            _ => None,
        }
    }
}

/// Resolves a bundle directory or a `.heapsnapshot[.gz]` file.
pub fn resolve(path: &Path) -> Result<Inputs, ReportError> {
    let meta = std::fs::metadata(path).map_err(|source| ReportError::Io { path: path.into(), source })?;
    if meta.is_dir() {
        return resolve_bundle(path);
    }
    if is_snapshot_name(&file_name(path)) {
        return Ok(Inputs { input: path.into(), snapshots: vec![path.into()], ..Inputs::default() });
    }
    Err(ReportError::Usage(format!(
        "{}: not a bundle directory or a .heapsnapshot / .heapsnapshot.gz file",
        path.display()
    )))
}

fn resolve_bundle(dir: &Path) -> Result<Inputs, ReportError> {
    let io = |source| ReportError::Io { path: dir.into(), source };
    let mut names: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        // Only regular files: a bundle never holds anything else, and a
        // symlink or fifo named like an artifact is not one of ours.
        if entry.file_type().map_err(io)?.is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    let mut inputs = Inputs { input: dir.into(), ..Inputs::default() };
    if names.iter().any(|n| n == SUMMARY_FILE) {
        inputs.summary = Some(dir.join(SUMMARY_FILE));
    }
    inputs.timeline = timeline_segments(&names).into_iter().map(|n| dir.join(n)).collect();
    if names.iter().any(|n| n == HISTORY_FILE) {
        inputs.history = Some(dir.join(HISTORY_FILE));
    }
    inputs.snapshots = snapshots_by_seq(&names).into_iter().map(|n| dir.join(n)).collect();
    inputs.allocations = newest_by_seq(&names, "allocations-", ".heapprofile").map(|n| dir.join(n));

    if inputs.summary.is_none() && inputs.timeline.is_empty() && inputs.snapshots.is_empty() && inputs.allocations.is_none() {
        return Err(ReportError::Usage(not_a_bundle_message(dir)));
    }
    Ok(inputs)
}

/// Names the bundles when the user passed `MEMGUARD_DIR` itself.
fn not_a_bundle_message(dir: &Path) -> String {
    let mut bundles: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(SUMMARY_FILE).is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    bundles.sort();
    match bundles.as_slice() {
        [] => format!(
            "{}: no memguard bundle here (no summary.json, heap snapshot, timeline or allocation profile)",
            dir.display()
        ),
        [.., newest] => format!(
            "{}: holds {} bundle(s), not one; pass one of them, e.g. {}",
            dir.display(),
            bundles.len(),
            dir.join(newest).display()
        ),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn is_snapshot_name(name: &str) -> bool {
    name.ends_with(".heapsnapshot") || name.ends_with(".heapsnapshot.gz")
}

/// `<prefix><seq><suffix>` → seq. Rejects `.partial` leftovers and other names.
fn seq_of(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    name.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()
}

/// One snapshot per seq, lowest first; the `.gz` memguard wrote wins over a
/// copy someone gunzipped next to it (the `.gz` was renamed into place whole).
fn snapshots_by_seq(names: &[String]) -> Vec<&str> {
    let mut found: Vec<(u64, bool, &str)> = names
        .iter()
        .filter_map(|n| {
            let gz = seq_of(n, "heap-", ".heapsnapshot.gz").map(|s| (s, false, n.as_str()));
            gz.or_else(|| seq_of(n, "heap-", ".heapsnapshot").map(|s| (s, true, n.as_str())))
        })
        .collect();
    found.sort();
    found.dedup_by_key(|(seq, _, _)| *seq);
    found.into_iter().map(|(_, _, n)| n).collect()
}

/// The numbered segments by number, then the current one; the newest
/// `MAX_SEGMENTS` of them.
fn timeline_segments(names: &[String]) -> Vec<&str> {
    let mut numbered: Vec<(u64, &str)> = names.iter().filter_map(|n| segment_number(n).map(|s| (s, n.as_str()))).collect();
    numbered.sort();
    let mut all: Vec<&str> = numbered.into_iter().map(|(_, n)| n).collect();
    all.extend(names.iter().map(String::as_str).filter(|&n| n == TIMELINE_FILE));
    let skip = all.len().saturating_sub(MAX_SEGMENTS);
    all.split_off(skip)
}

fn newest_by_seq<'a>(names: &'a [String], prefix: &str, suffix: &str) -> Option<&'a str> {
    names.iter().filter_map(|n| seq_of(n, prefix, suffix).map(|s| (s, n.as_str()))).max().map(|(_, n)| n)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn bundle(files: &[&str]) -> tempdir::Dir {
        let dir = tempdir::Dir::new();
        for f in files {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        dir
    }

    #[test]
    fn a_bundle_resolves_every_artifact_and_orders_snapshots_by_seq() {
        let dir = bundle(&[
            "summary.json",
            "timeline.ndjson.gz",
            "history.ndjson.gz",
            "heap-10.heapsnapshot.gz",
            "heap-2.heapsnapshot.gz",
            "heap-2.heapsnapshot",
            "heap-11.heapsnapshot.gz.partial",
            "allocations-2.heapprofile",
            "allocations-10.heapprofile",
            "notes.txt",
        ]);
        let i = resolve(dir.path()).unwrap();
        assert_eq!(i.summary, Some(dir.path().join("summary.json")));
        assert_eq!(i.timeline, [dir.path().join("timeline.ndjson.gz")]);
        assert_eq!(i.history, Some(dir.path().join("history.ndjson.gz")));
        let names: Vec<String> = i.snapshots.iter().map(|p| file_name(p)).collect();
        assert_eq!(names, ["heap-2.heapsnapshot.gz", "heap-10.heapsnapshot.gz"]);
        assert_eq!(i.main_snapshot(), Some(dir.path().join("heap-10.heapsnapshot.gz").as_path()));
        let (before, after) = i.diff_pair().unwrap();
        assert_eq!((file_name(before), file_name(after)), ("heap-2.heapsnapshot.gz".into(), "heap-10.heapsnapshot.gz".into()));
        assert_eq!(i.allocations, Some(dir.path().join("allocations-10.heapprofile")));
    }

    #[test]
    fn timeline_segments_by_number_then_the_current_one_newest_kept() {
        let dir = bundle(&["timeline-10.ndjson.gz", "timeline.ndjson.gz", "timeline-9.ndjson.gz", "timeline-09.ndjson.gz", "timeline-x.ndjson.gz"]);
        let names: Vec<String> = resolve(dir.path()).unwrap().timeline.iter().map(|p| file_name(p)).collect();
        assert_eq!(names, ["timeline-9.ndjson.gz", "timeline-10.ndjson.gz", "timeline.ndjson.gz"]);
        // Rotated just now, crashed before the next file was made: still read.
        let dir = bundle(&["timeline-1.ndjson.gz", "summary.json"]);
        assert_eq!(resolve(dir.path()).unwrap().timeline, [dir.path().join("timeline-1.ndjson.gz")]);
        let many: Vec<String> = (1..=200).map(|n| format!("timeline-{n}.ndjson.gz")).collect();
        let kept = timeline_segments(&many);
        assert_eq!((kept.len(), kept[0], kept[MAX_SEGMENTS - 1]), (MAX_SEGMENTS, "timeline-137.ndjson.gz", "timeline-200.ndjson.gz"));
    }

    #[test]
    fn a_bundle_without_snapshot_still_resolves() {
        let dir = bundle(&["summary.json", "timeline.ndjson.gz"]);
        let i = resolve(dir.path()).unwrap();
        assert!(i.snapshots.is_empty() && i.main_snapshot().is_none() && i.diff_pair().is_none());
    }

    #[test]
    fn a_single_snapshot_file() {
        let dir = bundle(&["x.heapsnapshot", "y.json"]);
        let i = resolve(&dir.path().join("x.heapsnapshot")).unwrap();
        assert_eq!(i.snapshots, [dir.path().join("x.heapsnapshot")]);
        assert!(i.summary.is_none() && i.timeline.is_empty());
        let e = resolve(&dir.path().join("y.json")).unwrap_err();
        assert!(e.to_string().contains("not a bundle directory"), "{e}");
    }

    #[test]
    fn missing_and_empty_inputs_are_errors() {
        let dir = bundle(&[]);
        let e = resolve(dir.path()).unwrap_err();
        assert!(e.to_string().contains("no memguard bundle here"), "{e}");
        assert_eq!(e.exit_code(), 2);
        let e = resolve(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(e, ReportError::Io { .. }), "{e}");
    }

    #[test]
    fn the_bundles_root_names_a_bundle() {
        let dir = bundle(&[]);
        let b = dir.path().join("20261125-105726-4961");
        std::fs::create_dir(&b).unwrap();
        std::fs::write(b.join("summary.json"), b"{}").unwrap();
        let e = resolve(dir.path()).unwrap_err().to_string();
        assert!(e.contains("holds 1 bundle(s)") && e.contains("20261125-105726-4961"), "{e}");
    }

    /// A temp dir removed on drop (no extra dev-dependency for one helper).
    pub(crate) mod tempdir {
        use std::path::{Path, PathBuf};
        use std::sync::atomic::{AtomicU32, Ordering};

        pub struct Dir(PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "memguard-report-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}
