//! The disk budget (`MEMGUARD_MAX_DISK`): the total size of all bundles under
//! the bundle root stays under a cap by removing the oldest bundles.
//!
//! The policy ([`plan_removals`]) is pure: given a listing, the budget, the
//! bytes wanted and which bundles are protected, it says which to remove.
//! The I/O part lists bundle sizes and removes directories; it only ever
//! touches directories whose name is a bundle name, works through an open
//! handle of the root (so a path swapped meanwhile cannot redirect it), and
//! never follows a symlink (a link is neither counted through nor removed
//! through).
//!
//! Age is the UTC start time in the name (`YYYYMMDD-HHMMSS-<pid>…`, fixed
//! width, so it sorts as text); bundles started in the same second are
//! ordered by their directory's mtime, then by name. The start time is used
//! rather than mtime because mtime changes when a bundle is copied or touched.
//!
//! Protected, never removed: the bundles this process writes, and bundles
//! whose process is still alive — its pid exists and that process started no
//! later than the bundle's time. A live process keeps its timeline open, so
//! removing its bundle would not even free the space (the file lives on
//! unlinked), and its next capture would find half a bundle. The start-time
//! check keeps a reused pid (e.g. pid 1 in every container run) from
//! protecting old bundles forever. Processes in another pid namespace are not
//! visible: containers sharing one `MEMGUARD_DIR` may trim each other's live
//! bundles, so give each its own.

use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use chrono::NaiveDateTime;

use crate::dirfd::{kind_of, modified, Dir, Kind};
use crate::log;

/// The fixed part of the default budget: a few compressed snapshots of a
/// heap at Node's usual limits (2–4 GB heap → 0.5–1 GB each, see
/// `SNAPSHOT_FRACTION`).
const DEFAULT_BUDGET: u64 = 4 << 30;

/// The default `MEMGUARD_MAX_DISK`: 4 GiB or the heap limit, whichever is
/// larger (so a snapshot of a full heap always fits, with room for older
/// ones), but never more than half of the space memguard could take: the
/// free space plus what its bundles already hold. Counting the bundles keeps
/// the budget steady from one process to the next (free space alone would
/// shrink with every bundle kept); the half keeps memguard from being what
/// fills the host's disk.
pub fn auto_budget(root: &Path, heap_limit: u64) -> u64 {
    let wanted = DEFAULT_BUDGET.max(heap_limit);
    let Some(free) = free_bytes(root) else { return wanted };
    let ours: u64 = Dir::open(root).and_then(|dir| list_bundles(&dir)).map_or(0, |b| b.iter().map(|b| b.bytes).sum());
    wanted.min(free.saturating_add(ours) / 2).max(1 << 20)
}

/// Bytes available to this user on `path`'s file system.
fn free_bytes(path: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Compressed snapshot size as a fraction of the used heap, to make room
/// before a snapshot starts. Measured: the demo 49 MB → 8.4 MB (0.17), the
/// README's benchmark 221 MB → 53 MB (0.24), 25 MB of random short strings
/// (the disk test) → 7.6 MB (0.30). An estimate that is too large removes old
/// bundles for nothing; one too small only costs a rescan while the snapshot
/// streams (the writer makes more room then), so this is a middle value, not
/// the highest.
const SNAPSHOT_RATIO: f64 = 0.25;

/// How much older than the bundle a live process may look and still own it:
/// the kernel's boot time (`btime`) is only exact to about a second.
const START_SLACK_SECS: i64 = 2;

/// Expected compressed size of a snapshot of a heap with `used_heap` bytes.
pub fn snapshot_estimate(used_heap: u64) -> u64 {
    (used_heap as f64 * SNAPSHOT_RATIO) as u64
}

/// One bundle directory under the root, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleUsage {
    pub name: String,
    /// Sum of the lengths of the regular files in it.
    pub bytes: u64,
    pub modified: SystemTime,
}

/// `YYYYMMDD-HHMMSS-<pid>` or `…-t<threadId>`: what `bundle_name` makes.
pub fn is_bundle_name(name: &str) -> bool {
    let b = name.as_bytes();
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if b.len() < 17 || !digits(&b[..8]) || b[8] != b'-' || !digits(&b[9..15]) || b[15] != b'-' {
        return false;
    }
    let mut rest = name[16..].splitn(2, "-t");
    let pid = rest.next().unwrap_or("");
    digits(pid.as_bytes()) && rest.next().is_none_or(|tid| digits(tid.as_bytes()))
}

/// The names of the bundle directories in `root` other than `own_pid`'s,
/// oldest first (the names begin with the start time).
pub fn other_bundles(root: &Dir, own_pid: u32) -> Vec<String> {
    let Ok(entries) = root.entries() else { return Vec::new() };
    let mut names: Vec<String> = entries
        .into_iter()
        .filter(|(name, kind)| *kind == Kind::Dir && is_bundle_name(name) && bundle_pid(name) != Some(own_pid))
        .map(|(name, _)| name)
        .collect();
    names.sort();
    names
}

/// The pid in a bundle name.
pub fn bundle_pid(name: &str) -> Option<u32> {
    if !is_bundle_name(name) {
        return None;
    }
    name[16..].split('-').next()?.parse().ok()
}

/// The start time in a bundle name, in seconds since the epoch.
pub fn bundle_started(name: &str) -> Option<i64> {
    if !is_bundle_name(name) {
        return None;
    }
    NaiveDateTime::parse_from_str(&name[..15], "%Y%m%d-%H%M%S").ok().map(|t| t.and_utc().timestamp())
}

/// Sorts oldest first (see the module comment).
pub fn sort_oldest_first(bundles: &mut [BundleUsage]) {
    bundles.sort_by(|a, b| {
        a.name[..15.min(a.name.len())]
            .cmp(&b.name[..15.min(b.name.len())])
            .then(a.modified.cmp(&b.modified))
            .then(a.name.cmp(&b.name))
    });
}

/// Which bundles to remove so that the rest plus `need` more bytes fit in
/// `budget`: unprotected ones, oldest first, no more than needed. `None` when even
/// removing every unprotected bundle would not make room — then removing
/// evidence buys nothing, and the caller decides (see [`trim_plan`]).
pub fn plan_removals(
    bundles: &[BundleUsage],
    budget: u64,
    need: u64,
    protected: impl Fn(&BundleUsage) -> bool,
) -> Option<Vec<String>> {
    let mut sorted = bundles.to_vec();
    sort_oldest_first(&mut sorted);
    let mut total: u64 = sorted.iter().map(|b| b.bytes).sum();
    let mut remove = Vec::new();
    for bundle in &sorted {
        if total.saturating_add(need) <= budget {
            break;
        }
        if !protected(bundle) {
            total -= bundle.bytes;
            remove.push(bundle.name.clone());
        }
    }
    (total.saturating_add(need) <= budget).then_some(remove)
}

/// Removals that bring the total under `budget` — or as close as removing
/// every unprotected bundle gets it: the cap is on disk use, so it is honoured
/// as far as it can be even when live bundles alone exceed it.
pub fn trim_plan(bundles: &[BundleUsage], budget: u64, protected: impl Fn(&BundleUsage) -> bool) -> Vec<String> {
    plan_removals(bundles, budget, 0, &protected).unwrap_or_else(|| {
        let mut sorted = bundles.to_vec();
        sort_oldest_first(&mut sorted);
        sorted.into_iter().filter(|b| !protected(b)).map(|b| b.name).collect()
    })
}

/// Every bundle directory directly in `root` with its size. Entries that
/// are not bundle-named directories (symlinks included) are ignored; a bundle
/// that vanishes while being listed (another process removed it) is skipped.
pub fn list_bundles(root: &Dir) -> io::Result<Vec<BundleUsage>> {
    let mut bundles = Vec::new();
    for (name, _) in root.entries()? {
        if !is_bundle_name(&name) {
            continue;
        }
        // Not following links: a link named like a bundle is not one.
        let Ok(st) = root.stat_at(&name) else { continue };
        if kind_of(&st) != Kind::Dir {
            continue;
        }
        let bytes = root.tree_bytes(&name);
        bundles.push(BundleUsage { name, bytes, modified: modified(&st) });
    }
    Ok(bundles)
}

/// Removes the bundle `name` in `root` — only if the name is a bundle name
/// and it is a real directory, not a link — through the root's handle,
/// never following a link inside.
pub fn remove_bundle(root: &Dir, name: &str) -> io::Result<()> {
    if !is_bundle_name(name) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name} is not a memguard bundle")));
    }
    match root.stat_at(name) {
        // Another process trimming the same root got there first.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(st) if kind_of(&st) != Kind::Dir => {
            Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name} is not a directory")))
        }
        // A link swapped in since the check fails to open (ELOOP): kept.
        Ok(_) => root.remove_tree(name),
    }
}

/// Whether the process that wrote bundle `name` is still running: its pid
/// exists and started no later than the bundle (a pid reused by a newer
/// process does not count). Without a readable `/proc` this says `false`.
pub fn owner_alive(name: &str) -> bool {
    let (Some(pid), Some(started)) = (bundle_pid(name), bundle_started(name)) else { return false };
    process_start_secs(pid).is_some_and(|process_start| started + START_SLACK_SECS >= process_start)
}

/// When process `pid` started, in seconds since the epoch: boot time plus
/// field 22 of `/proc/<pid>/stat` (clock ticks of USER_HZ, which is 100 in
/// the Linux ABI on every architecture Node ships for).
fn process_start_secs(pid: u32) -> Option<i64> {
    const USER_HZ: i64 = 100;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // fields from the last ')'. Field 3 is the first after it.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let ticks: i64 = after_comm.split_whitespace().nth(22 - 3)?.parse().ok()?;
    Some(boot_time_secs()? + ticks / USER_HZ)
}

fn boot_time_secs() -> Option<i64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// Removes the oldest unprotected bundles under `root` so that `need` more
/// bytes fit in `budget`; if they cannot, trims to the budget as far as it
/// goes (see [`trim_plan`]). One `memguard:` line per bundle removed. Returns
/// the bytes of the bundles left.
pub fn enforce(root: &Path, budget: u64, need: u64, protected: impl Fn(&BundleUsage) -> bool) -> io::Result<u64> {
    let dir = Dir::open(root)?;
    let bundles = list_bundles(&dir)?;
    let remove = match plan_removals(&bundles, budget, need, &protected) {
        Some(remove) => remove,
        None => trim_plan(&bundles, budget, &protected),
    };
    let mut total: u64 = bundles.iter().map(|b| b.bytes).sum();
    for name in remove {
        let bytes = bundles.iter().find(|b| b.name == name).map_or(0, |b| b.bytes);
        let path = root.join(&name);
        match remove_bundle(&dir, &name) {
            Ok(()) => {
                total -= bytes;
                log::info(&format!(
                    "removed old bundle {} ({}) to keep the bundles under MEMGUARD_MAX_DISK ({})",
                    path.display(),
                    megabytes(bytes),
                    megabytes(budget)
                ));
            }
            Err(e) => log::warn_once(&format!("could not remove old bundle {}: {e}", path.display())),
        }
    }
    Ok(total)
}

/// `12.3 MB`, as the other `memguard:` lines give sizes.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn auto_budget_is_4gib_or_the_heap_limit_within_half_of_free_plus_bundles() {
        let dir = tempfile::tempdir().unwrap();
        let half_free = free_bytes(dir.path()).unwrap() / 2;
        let near = |a: u64, b: u64| a.abs_diff(b) < 64 << 20; // other writers on this disk meanwhile
        assert!(near(auto_budget(dir.path(), 1 << 30), (4u64 << 30).min(half_free)));
        assert!(near(auto_budget(dir.path(), 16 << 30), (16u64 << 30).min(half_free)));
        assert_eq!(auto_budget(&dir.path().join("missing"), 1 << 30), 4 << 30, "unknown free space: the fixed part");
    }

    fn usage(name: &str, mb: u64, modified_secs: u64) -> BundleUsage {
        BundleUsage {
            name: name.into(),
            bytes: mb << 20,
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(modified_secs),
        }
    }

    const NOTHING: fn(&BundleUsage) -> bool = |_| false;

    #[test]
    fn recognizes_bundle_names_only() {
        for good in ["20261125-105726-4961", "20261125-105726-4961-t1", "20261125-105726-1-t12"] {
            assert!(is_bundle_name(good), "{good}");
        }
        for bad in [
            "",
            "notes.txt",
            "20261125-105726",
            "20261125-105726-",
            "20261125-105726-49x1",
            "20261125-105726-4961-t",
            "20261125-105726-4961-x1",
            "20261125-105726-4961-t1-t2",
            "2026112a-105726-4961",
            "20261125_105726-4961",
            "20261125-105726-4961/..",
        ] {
            assert!(!is_bundle_name(bad), "{bad}");
        }
        assert_eq!(bundle_pid("20261125-105726-4961-t3"), Some(4961));
        assert_eq!(bundle_pid("keep-me"), None);
        assert_eq!(bundle_started("19700101-000001-7"), Some(1));
        assert_eq!(bundle_started("20260102-030405-7"), Some(1_767_323_045));
    }

    #[test]
    fn oldest_by_start_time_then_mtime_then_name() {
        let mut b = vec![
            usage("20260102-000002-5", 1, 10),
            usage("20260102-000001-900", 1, 30),
            usage("20260102-000001-1000", 1, 20),
            usage("20260101-235959-7-t1", 1, 99),
            usage("20260101-235959-7", 1, 99),
        ];
        sort_oldest_first(&mut b);
        let names: Vec<_> = b.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "20260101-235959-7",
                "20260101-235959-7-t1",
                // same second: the older mtime first, whatever the pid's text
                "20260102-000001-1000",
                "20260102-000001-900",
                "20260102-000002-5",
            ]
        );
    }

    #[test]
    fn removes_the_fewest_oldest_bundles_that_make_room() {
        let b = [usage("20260101-000003-3", 10, 0), usage("20260101-000001-1", 10, 0), usage("20260101-000002-2", 10, 0)];
        let mb = |n: u64| n << 20;
        assert_eq!(plan_removals(&b, mb(30), 0, NOTHING), Some(vec![]));
        assert_eq!(plan_removals(&b, mb(29), 0, NOTHING), Some(vec!["20260101-000001-1".into()]));
        assert_eq!(
            plan_removals(&b, mb(30), mb(15), NOTHING),
            Some(vec!["20260101-000001-1".into(), "20260101-000002-2".into()])
        );
        assert_eq!(plan_removals(&b, mb(30), mb(31), NOTHING), None);
    }

    #[test]
    fn protected_bundles_are_skipped_not_counted_as_freed() {
        let b = [usage("20260101-000001-1", 10, 0), usage("20260101-000002-2", 10, 0), usage("20260101-000003-3", 10, 0)];
        let mb = |n: u64| n << 20;
        let oldest_live = |u: &BundleUsage| u.name == "20260101-000001-1";
        assert_eq!(plan_removals(&b, mb(20), 0, oldest_live), Some(vec!["20260101-000002-2".into()]));
        // Only the live one and the newest would be left: 20 MB + 5 do not fit in 20.
        assert_eq!(plan_removals(&b, mb(20), mb(5), |u: &BundleUsage| u.name != "20260101-000002-2"), None);
        // Trimming still removes what it may when live bundles alone exceed the cap.
        let all_but_newest = |u: &BundleUsage| u.name == "20260101-000003-3";
        assert_eq!(trim_plan(&b, mb(5), all_but_newest), vec!["20260101-000001-1", "20260101-000002-2"]);
        assert_eq!(trim_plan(&b, mb(5), |_: &BundleUsage| true), Vec::<String>::new());
    }

    #[test]
    fn estimate_matches_the_measured_ratio() {
        // The README's benchmark: 221 MB of heap became 53 MB of gzip.
        let est = snapshot_estimate(221_000_000);
        assert!((53_000_000..60_000_000).contains(&est), "{est}");
    }

    #[test]
    fn lists_only_real_bundle_dirs_and_sizes_without_following_links() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let a = root.join("20260101-000001-1");
        fs::create_dir(&a).unwrap();
        fs::write(a.join("summary.json"), vec![b'x'; 1000]).unwrap();
        fs::write(a.join("heap-1.heapsnapshot.gz"), vec![b'x'; 5000]).unwrap();
        // Links inside a bundle count as nothing (not the big file they point at).
        let big = root.join("big.bin");
        fs::write(&big, vec![0u8; 100_000]).unwrap();
        std::os::unix::fs::symlink(&big, a.join("link")).unwrap();
        std::os::unix::fs::symlink(root, a.join("loop")).unwrap();
        // Things that are not bundles.
        fs::create_dir(root.join("my-notes")).unwrap();
        fs::write(root.join("20260101-000002-2"), b"a file named like a bundle").unwrap();
        let elsewhere = tmp.path().join("my-notes");
        std::os::unix::fs::symlink(&elsewhere, root.join("20260101-000003-3")).unwrap();

        let listed = list_bundles(&Dir::open(root).unwrap()).unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!((listed[0].name.as_str(), listed[0].bytes), ("20260101-000001-1", 6000));
    }

    #[test]
    fn removes_bundle_dirs_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let keep = root.join("keep");
        fs::create_dir(&keep).unwrap();
        fs::write(keep.join("precious"), b"mine").unwrap();
        // A link named like a bundle, pointing at the user's data.
        std::os::unix::fs::symlink(&keep, root.join("20260101-000003-3")).unwrap();
        let dir = Dir::open(root).unwrap();
        assert!(remove_bundle(&dir, "20260101-000003-3").is_err());
        assert!(remove_bundle(&dir, "keep").is_err());
        assert!(remove_bundle(&dir, "../keep").is_err());
        assert_eq!(fs::read(keep.join("precious")).unwrap(), b"mine");

        let bundle = root.join("20260101-000001-1");
        fs::create_dir(&bundle).unwrap();
        fs::write(bundle.join("summary.json"), b"{}").unwrap();
        std::os::unix::fs::symlink(&keep, bundle.join("link-out")).unwrap();
        remove_bundle(&dir, "20260101-000001-1").unwrap();
        assert!(!bundle.exists());
        assert_eq!(fs::read(keep.join("precious")).unwrap(), b"mine", "a link inside is removed, not followed");
        // Gone already (another process removed it): fine.
        remove_bundle(&dir, "20260101-000001-1").unwrap();
    }

    #[test]
    fn owner_alive_checks_pid_and_start_time() {
        let now = chrono::Utc::now();
        let me = std::process::id();
        assert!(owner_alive(&crate::bundle::bundle_name(now, me, 0)));
        assert!(owner_alive(&crate::bundle::bundle_name(now, me, 3)));
        // Our pid, but a bundle from before this process started: a reused pid.
        let long_ago = now - chrono::Duration::days(400);
        assert!(!owner_alive(&crate::bundle::bundle_name(long_ago, me, 0)));
        // A pid that does not exist (above the kernel's pid_max limit).
        assert!(!owner_alive(&crate::bundle::bundle_name(now, 4_194_305, 0)));
    }
}
