//! The bundle directory: its name, where it goes, and creating it safely.
//! Directories are 0700 and files 0600 (a heap snapshot holds every string in
//! the process: tokens, passwords); nothing follows a symlink, files are
//! created exclusively so nothing is overwritten, and every file is created
//! through the open bundle directory (see `dirfd`), never by path. A root
//! that another user owns or may write into is not trusted (see
//! [`choose_root`]).

use std::ffi::OsString;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use crate::dirfd::Dir;

/// `<YYYYMMDD-HHMMSS>-<pid>` on the main thread, `…-t<threadId>` in a worker.
/// The time is UTC, the process's start, so all bundles of one process sort
/// together.
pub fn bundle_name(started: DateTime<Utc>, pid: u32, thread_id: u32) -> String {
    let stamp = started.format("%Y%m%d-%H%M%S");
    if thread_id == 0 {
        format!("{stamp}-{pid}")
    } else {
        format!("{stamp}-{pid}-t{thread_id}")
    }
}

/// Why a bundle root cannot be used, in words for the warning.
pub fn check_root(root: &Path) -> Result<(), String> {
    create_private_dir_all(root).map_err(|e| describe(root, &e))?;
    let dir = Dir::open(root).map_err(|e| describe(root, &e))?;
    let probe = format!(".memguard-probe-{}", std::process::id());
    let created = dir.create_file(&probe).map_err(|e| describe(root, &e));
    let _ = dir.remove_file(&probe);
    created.map(drop)
}

/// Why `dir` is not safe to keep bundles in, or `None`: another user owns it
/// or may write into it, and so may rename what memguard creates there and
/// put a link in its place. Owned by root counts as safe (root can do
/// anything anyway); a sticky bit (as on /tmp) keeps others from renaming
/// or removing what is not theirs.
pub fn distrust(dir: &Path) -> Option<String> {
    let st = match Dir::open(dir).and_then(|d| d.stat()) {
        Ok(st) => st,
        Err(e) => return Some(describe(dir, &e)),
    };
    distrust_owner_mode(st.st_uid, st.st_mode, euid()).map(|why| format!("{} {why}", dir.display()))
}

fn distrust_owner_mode(owner: u32, mode: u32, euid: u32) -> Option<String> {
    if owner != euid && owner != 0 {
        return Some(format!("is owned by uid {owner}, not by this process (uid {euid})"));
    }
    let sticky = mode & libc::S_ISVTX != 0;
    if mode & 0o022 != 0 && !sticky {
        return Some(format!("is writable by other users (mode {:o}) without the sticky bit", mode & 0o7777));
    }
    None
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Where bundles go, and the one warning to give about it.
#[derive(Debug, PartialEq)]
pub struct RootChoice {
    /// `None`: no directory can be used; captures are off.
    pub root: Option<PathBuf>,
    pub warning: Option<String>,
}

/// The configured root when it can be written (with a warning if it is not
/// safe from other users: it is still used — the user chose it, and every
/// bundle is written only through the private directory memguard creates in
/// it); else the per-user fallback under the system temp dir; else, when
/// that is unusable or not safe (another user may have made it first), a new
/// private directory there.
pub fn choose_root(configured: &Path) -> RootChoice {
    choose_root_in(configured, &std::env::temp_dir())
}

fn choose_root_in(configured: &Path, tmp: &Path) -> RootChoice {
    let problem = match check_root(configured) {
        Ok(()) => {
            let warning = distrust(configured).map(|why| {
                format!(
                    "MEMGUARD_DIR: {why}; writing bundles there anyway, each only through the private directory \
                     memguard creates in it (give memguard a directory of its own to silence this)"
                )
            });
            return RootChoice { root: Some(configured.to_path_buf()), warning };
        }
        Err(problem) => problem,
    };
    let fallback = fallback_root_in(tmp);
    let unsafe_fallback = match check_root(&fallback) {
        Ok(()) => match distrust(&fallback) {
            None => {
                let warning = format!("MEMGUARD_DIR: {problem}; writing bundles to {} instead", fallback.display());
                return RootChoice { root: Some(fallback), warning: Some(warning) };
            }
            Some(why) => why,
        },
        Err(why) => why,
    };
    match private_fallback(tmp) {
        Ok(private) => RootChoice {
            warning: Some(format!(
                "MEMGUARD_DIR: {problem}; the fallback {unsafe_fallback}, so it is not used either; \
                 writing bundles to a new private directory {} instead",
                private.display()
            )),
            root: Some(private),
        },
        Err(e) => RootChoice {
            root: None,
            warning: Some(format!(
                "MEMGUARD_DIR: {problem}, the fallback {unsafe_fallback}, and no private directory could be made \
                 in {} ({e}); heap snapshots are off",
                tmp.display()
            )),
        },
    }
}

/// The per-user fallback: `<temp dir>/memguard-<uid>`, shared by this user's
/// processes (so one disk budget covers them).
fn fallback_root_in(tmp: &Path) -> PathBuf {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    tmp.join(format!("memguard-{uid}"))
}

/// `<tmp>/memguard-<uid>-XXXXXX`, made by `mkdtemp` (mode 0700, a name
/// nobody could have taken first), once per process and temp dir: every
/// thread of the process then writes to the same one.
fn private_fallback(tmp: &Path) -> io::Result<PathBuf> {
    static MADE: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());
    let mut made = MADE.lock();
    if let Some((_, dir)) = made.iter().find(|(t, _)| t == tmp) {
        return Ok(dir.clone());
    }
    let prefix = fallback_root_in(tmp).into_os_string();
    let mut template = prefix.into_vec();
    template.extend_from_slice(b"-XXXXXX\0");
    // SAFETY: `template` is a NUL-terminated, writable buffer ending in
    // "XXXXXX"; mkdtemp only rewrites those six bytes in place.
    let made_dir = unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) };
    if made_dir.is_null() {
        return Err(io::Error::last_os_error());
    }
    template.pop(); // the NUL
    let dir = PathBuf::from(OsString::from_vec(template));
    made.push((tmp.to_path_buf(), dir.clone()));
    Ok(dir)
}

fn describe(path: &Path, err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(libc::ELOOP) => format!("{} is a symbolic link; memguard does not follow links", path.display()),
        Some(libc::ENOTDIR) => format!("{} is not a directory", path.display()),
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
            format!("{} is not writable ({err})", path.display())
        }
        _ => format!("{}: {err}", path.display()),
    }
}

/// `mkdir -p` with mode 0700 for what it creates. An existing last component
/// must be a real directory (a symlink there is refused with ELOOP).
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => return Err(io::Error::from_raw_os_error(libc::ELOOP)),
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() && !parent.exists() {
            create_private_dir_all(parent)?;
        }
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        // Lost a race with another process creating it: fine if it is a dir.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => create_private_dir_all(dir),
        Err(e) => Err(e),
    }
}

/// One bundle: `root/name`, created on first use. Clones share the open
/// directory: once created, every file of the bundle is written through that
/// handle, so renaming the directory or swapping a link in for it (or for
/// the root) later cannot redirect a write.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub root: PathBuf,
    pub name: String,
    dir: Arc<Mutex<Option<Arc<Dir>>>>,
    /// Removed for good ([`Bundle::retire`]): never made again.
    retired: Arc<AtomicBool>,
}

impl Bundle {
    pub fn new(root: impl Into<PathBuf>, name: impl Into<String>) -> Bundle {
        Bundle { root: root.into(), name: name.into(), dir: Arc::default(), retired: Arc::default() }
    }

    /// From now on the bundle is not made again, and nothing more is
    /// written to it: the process ended with nothing worth keeping. Writes
    /// already under way go to a directory about to be removed (its handle
    /// still works), which costs nothing.
    pub fn retire(&self) {
        let _cached = self.dir.lock(); // `ensure` checks the flag under this lock
        self.retired.store(true, Ordering::Release);
    }

    /// Retired: a failure to write it is what was asked for, not news.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// One warning about writing this bundle, unless it was retired (then
    /// the failure is on purpose).
    pub fn warn_unless_retired(&self, message: &str) {
        if !self.is_retired() {
            crate::log::warn_once(message);
        }
    }

    /// Where the bundle was created (for messages; never written through).
    pub fn path(&self) -> PathBuf {
        self.root.join(&self.name)
    }

    /// The bundle directory (0700, ours), created and opened on first use.
    /// Opened again only if it was removed since (nothing is linked to it
    /// any more): then it is made anew, the same careful way.
    pub fn ensure(&self) -> io::Result<Arc<Dir>> {
        let mut cached = self.dir.lock();
        if self.is_retired() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "the bundle was removed (nothing worth keeping)"));
        }
        if let Some(dir) = cached.as_ref() {
            if dir.stat().is_ok_and(|st| st.st_nlink > 0) {
                return Ok(dir.clone());
            }
        }
        create_private_dir_all(&self.root)?;
        let root = Dir::open(&self.root)?;
        match root.create_dir(&self.name) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        let dir = root.open_dir(&self.name)?;
        let st = dir.stat()?;
        // Someone else's directory with our name is not ours to write into.
        if st.st_uid != euid() {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "bundle directory belongs to another user"));
        }
        if st.st_mode & 0o077 != 0 {
            dir.chmod(0o700)?;
        }
        let dir = Arc::new(dir);
        *cached = Some(dir.clone());
        Ok(dir)
    }

    /// Removes the bundle directory and what is in it, through the root's
    /// handle (a link in its place is not followed).
    pub fn remove(&self) -> io::Result<()> {
        *self.dir.lock() = None;
        Dir::open(&self.root)?.remove_tree(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn names_main_thread_and_worker_bundles() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(bundle_name(t, 4242, 0), "20260102-030405-4242");
        assert_eq!(bundle_name(t, 4242, 7), "20260102-030405-4242-t7");
    }

    #[test]
    fn creates_private_dirs_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = Bundle::new(tmp.path().join("a/b"), "x");
        let dir = bundle.ensure().unwrap();
        for d in [tmp.path().join("a"), tmp.path().join("a/b"), bundle.path()] {
            assert_eq!(fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700, "{}", d.display());
        }
        dir.write_atomic("summary.json", b"{}").unwrap();
        dir.write_atomic("summary.json", b"{\"a\":1}").unwrap();
        let meta = fs::metadata(bundle.path().join("summary.json")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(bundle.path().join("summary.json")).unwrap(), b"{\"a\":1}");
        assert_eq!(fs::read_dir(bundle.path()).unwrap().count(), 1, "no temp files left behind");
    }

    #[test]
    fn refuses_symlinked_root_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = check_root(&link).unwrap_err();
        assert!(err.contains("is a symbolic link"), "{err}");

        let target = tmp.path().join("target");
        fs::write(&target, b"keep me").unwrap();
        std::os::unix::fs::symlink(&target, real.join("heap-1.heapsnapshot.gz")).unwrap();
        assert!(Dir::open(&real).unwrap().create_file("heap-1.heapsnapshot.gz").is_err());
        assert_eq!(fs::read(&target).unwrap(), b"keep me");
        // A link in place of the bundle directory is not followed either.
        std::os::unix::fs::symlink(tmp.path(), real.join("b")).unwrap();
        assert!(Bundle::new(&real, "b").ensure().is_err());
    }

    #[test]
    fn root_that_is_a_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        fs::write(&file, b"").unwrap();
        assert!(check_root(&file).unwrap_err().contains("is not a directory"));
        assert!(check_root(&tmp.path().join("new/dir")).is_ok());
    }

    #[test]
    fn a_swapped_bundle_directory_does_not_redirect_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = Bundle::new(tmp.path(), "20260102-030405-1");
        bundle.ensure().unwrap().write_atomic("summary.json", b"1").unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::rename(bundle.path(), tmp.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, bundle.path()).unwrap();
        // A clone (the writer thread's) shares the open directory.
        bundle.clone().ensure().unwrap().write_atomic("summary.json", b"2").unwrap();
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
        assert_eq!(fs::read(tmp.path().join("moved/summary.json")).unwrap(), b"2");
    }

    #[test]
    fn a_retired_bundle_is_never_made_again_and_a_write_under_way_lands_nowhere() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = Bundle::new(tmp.path(), "b");
        // Another thread's write, its directory handle taken before the end.
        let under_way = bundle.clone().ensure().unwrap();
        bundle.retire();
        bundle.remove().unwrap();
        assert!(!bundle.path().exists());
        assert!(under_way.write_atomic("summary.json", b"late").is_err() || !bundle.path().exists());
        let again = bundle.clone().ensure();
        assert!(again.is_err() && bundle.is_retired(), "{again:?}");
        assert!(!bundle.path().exists());
    }

    #[test]
    fn a_removed_bundle_directory_is_made_again() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = Bundle::new(tmp.path(), "b");
        bundle.ensure().unwrap();
        fs::remove_dir(bundle.path()).unwrap();
        bundle.ensure().unwrap().write_atomic("x", b"1").unwrap();
        assert!(bundle.path().join("x").is_file());
        bundle.remove().unwrap();
        assert!(!bundle.path().exists());
    }

    #[test]
    fn directories_other_users_control_are_distrusted() {
        assert_eq!(distrust_owner_mode(1000, 0o40700, 1000), None);
        assert_eq!(distrust_owner_mode(0, 0o41777, 1000), None, "/tmp: root's, sticky");
        assert_eq!(distrust_owner_mode(0, 0o40755, 1000), None);
        let foreign = distrust_owner_mode(65534, 0o40700, 1000).unwrap();
        assert_eq!(foreign, "is owned by uid 65534, not by this process (uid 1000)");
        let open = distrust_owner_mode(1000, 0o40777, 1000).unwrap();
        assert_eq!(open, "is writable by other users (mode 777) without the sticky bit");
        assert!(distrust_owner_mode(1000, 0o40770, 1000).is_some(), "group-writable");
        assert_eq!(distrust_owner_mode(1000, 0o41777, 1000), None);
    }

    #[test]
    fn the_configured_root_is_used_when_it_can_be() {
        let tmp = tempfile::tempdir().unwrap();
        let mine = tmp.path().join("mine");
        let choice = choose_root_in(&mine, tmp.path());
        assert_eq!(choice, RootChoice { root: Some(mine.clone()), warning: None });
        // Writable by others: used, with a warning.
        fs::set_permissions(&mine, fs::Permissions::from_mode(0o777)).unwrap();
        let choice = choose_root_in(&mine, tmp.path());
        assert_eq!(choice.root, Some(mine.clone()));
        let warning = choice.warning.unwrap();
        assert!(warning.contains("without the sticky bit; writing bundles there anyway"), "{warning}");
    }

    /// A MEMGUARD_DIR that cannot be used (a file), and a temp dir holding
    /// `memguard-<uid>` made as `prepare` says.
    fn fallback_choice(prepare: impl FnOnce(&Path)) -> (tempfile::TempDir, RootChoice) {
        let tmp = tempfile::tempdir().unwrap();
        let configured = tmp.path().join("not-a-dir");
        fs::write(&configured, b"").unwrap();
        let tmpdir = tmp.path().join("tmp");
        fs::create_dir(&tmpdir).unwrap();
        prepare(&fallback_root_in(&tmpdir));
        let choice = choose_root_in(&configured, &tmpdir);
        (tmp, choice)
    }

    #[test]
    fn the_fallback_is_used_when_it_is_ours() {
        let (tmp, choice) = fallback_choice(|_| {});
        let fallback = fallback_root_in(&tmp.path().join("tmp"));
        assert_eq!(choice.root.as_ref(), Some(&fallback));
        assert!(choice.warning.unwrap().ends_with(&format!("writing bundles to {} instead", fallback.display())));
        assert_eq!(fs::metadata(&fallback).unwrap().permissions().mode() & 0o777, 0o700);
    }

    fn assert_private_instead(tmp: &Path, choice: &RootChoice, why: &str) {
        let fallback = fallback_root_in(&tmp.join("tmp"));
        let root = choice.root.as_ref().expect("a private directory");
        assert_ne!(root, &fallback);
        assert_eq!(root.parent(), Some(tmp.join("tmp").as_path()));
        assert!(root.file_name().unwrap().to_str().unwrap().starts_with(fallback.file_name().unwrap().to_str().unwrap()));
        let meta = fs::symlink_metadata(root).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
        let warning = choice.warning.as_deref().unwrap();
        assert!(warning.contains(why), "{warning}");
        assert!(warning.contains(&format!("new private directory {}", root.display())), "{warning}");
    }

    #[test]
    fn a_world_writable_fallback_is_not_used() {
        let (tmp, choice) = fallback_choice(|fallback| {
            fs::create_dir(fallback).unwrap();
            fs::set_permissions(fallback, fs::Permissions::from_mode(0o777)).unwrap();
        });
        assert_private_instead(tmp.path(), &choice, "is writable by other users (mode 777) without the sticky bit");
        // Asked again (another thread starting): the same private directory.
        let again = choose_root_in(&tmp.path().join("not-a-dir"), &tmp.path().join("tmp"));
        assert_eq!(again, choice);
    }

    #[test]
    fn a_fallback_that_is_a_link_is_not_used() {
        let (tmp, choice) = fallback_choice(|fallback| {
            std::os::unix::fs::symlink("/", fallback).unwrap();
        });
        assert_private_instead(tmp.path(), &choice, "is a symbolic link");
    }

    #[test]
    fn a_fallback_owned_by_another_user_is_not_used() {
        if euid() != 0 {
            eprintln!("skipped: needs root to chown a directory to nobody");
            return;
        }
        let (tmp, choice) = fallback_choice(|fallback| {
            fs::create_dir(fallback).unwrap();
            std::os::unix::fs::chown(fallback, Some(65534), Some(65534)).unwrap();
        });
        assert_private_instead(tmp.path(), &choice, "is owned by uid 65534, not by this process (uid 0)");
    }
}
