//! The bundle directory: its name, and creating it and its files safely.
//! Directories are 0700 and files 0600 (a heap snapshot holds every string in
//! the process: tokens, passwords); nothing follows a symlink in the last path
//! component, and files are created exclusively so nothing is overwritten.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

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
    let path = root.join(format!(".memguard-probe-{}", std::process::id()));
    let probe = create_private_file(&path).map_err(|e| describe(root, &e));
    let _ = fs::remove_file(&path);
    probe.map(drop)
}

/// A directory for bundles to use when the configured one cannot be: a
/// private per-user directory under the system temp dir.
pub fn fallback_root() -> PathBuf {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("memguard-{uid}"))
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

/// Creates a new file, mode 0600; fails if anything (file or link) is there.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Writes `bytes` to `dir/name` atomically: a reader sees the old file or the
/// new one, never half of one (temp file in the same dir, fsync, rename).
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = create_private_file(&tmp)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        fs::rename(&tmp, dir.join(name))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// One bundle: `root/name`, created on first use.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub root: PathBuf,
    pub name: String,
}

impl Bundle {
    pub fn path(&self) -> PathBuf {
        self.root.join(&self.name)
    }

    /// Creates the bundle directory (0700) if needed and returns its path.
    pub fn ensure(&self) -> io::Result<PathBuf> {
        create_private_dir_all(&self.root)?;
        let dir = self.path();
        create_private_dir_all(&dir)?;
        // Someone else's directory with our name is not ours to write into.
        // SAFETY: geteuid has no preconditions and cannot fail.
        let meta = fs::symlink_metadata(&dir)?;
        if meta.uid() != unsafe { libc::geteuid() } {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "bundle directory belongs to another user"));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_main_thread_and_worker_bundles() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(bundle_name(t, 4242, 0), "20260102-030405-4242");
        assert_eq!(bundle_name(t, 4242, 7), "20260102-030405-4242-t7");
    }

    #[test]
    fn creates_private_dirs_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = Bundle { root: tmp.path().join("a/b"), name: "x".into() };
        let dir = bundle.ensure().unwrap();
        for d in [tmp.path().join("a"), tmp.path().join("a/b"), dir.clone()] {
            assert_eq!(fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700, "{}", d.display());
        }
        write_atomic(&dir, "summary.json", b"{}").unwrap();
        write_atomic(&dir, "summary.json", b"{\"a\":1}").unwrap();
        let meta = fs::metadata(dir.join("summary.json")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(dir.join("summary.json")).unwrap(), b"{\"a\":1}");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temp files left behind");
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
        assert!(create_private_file(&real.join("heap-1.heapsnapshot.gz")).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"keep me");
    }

    #[test]
    fn root_that_is_a_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        fs::write(&file, b"").unwrap();
        assert!(check_root(&file).unwrap_err().contains("is not a directory"));
        assert!(check_root(&tmp.path().join("new/dir")).is_ok());
    }
}
