//! Files and directories reached through an open directory handle, never
//! through a path.
//!
//! A path is looked up again at every use: whoever can write to one of its
//! directories (another user's `MEMGUARD_DIR`, a shared temp dir) can rename
//! a component after memguard created it and put a symlink there, and the
//! next write by path lands wherever the link points. A handle stays on the
//! directory that was opened: every create, rename and remove here is
//! `*at()` relative to it (`openat`/`mkdirat`/`renameat`/`unlinkat`), takes
//! one name (no `/`), and never follows a link (`O_NOFOLLOW`, `unlinkat` on a
//! link removes the link).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

/// Deepest directory tree `remove_tree` and `tree_bytes` descend into.
/// Bundles are flat; the cap only bounds the work on odd trees.
const MAX_DEPTH: u32 = 8;

const DIR_FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// An open directory.
#[derive(Debug)]
pub struct Dir(OwnedFd);

/// What a directory entry is, without following a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    File,
    Dir,
    /// A symlink, fifo, socket, device: never read, counted or followed.
    Other,
}

impl Dir {
    /// Opens the directory at `path`. Earlier components may be links (a
    /// configured `/var/dumps` may live behind one); the last may not.
    pub fn open(path: &Path) -> io::Result<Dir> {
        Ok(Dir(rustix::fs::open(path, DIR_FLAGS, Mode::empty())?))
    }

    /// Opens the directory `name` in this one (a link there fails: ELOOP).
    pub fn open_dir(&self, name: &str) -> io::Result<Dir> {
        Ok(Dir(rustix::fs::openat(&self.0, one_name(name)?, DIR_FLAGS, Mode::empty())?))
    }

    /// Creates the directory `name`, mode 0700. `AlreadyExists` if anything
    /// (a link included) has that name.
    pub fn create_dir(&self, name: &str) -> io::Result<()> {
        Ok(rustix::fs::mkdirat(&self.0, one_name(name)?, Mode::RWXU)?)
    }

    /// Creates the file `name`, mode 0600; fails if anything (file or link)
    /// has that name, so nothing is overwritten and no link is followed.
    pub fn create_file(&self, name: &str) -> io::Result<File> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(File::from(rustix::fs::openat(&self.0, one_name(name)?, flags, Mode::RUSR | Mode::WUSR)?))
    }

    /// Opens the file `name` for writing, creating it (mode 0600) if absent;
    /// a link there fails (ELOOP). For lock files, which outlive their holder.
    pub fn open_or_create_file(&self, name: &str) -> io::Result<File> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(File::from(rustix::fs::openat(&self.0, one_name(name)?, flags, Mode::RUSR | Mode::WUSR)?))
    }

    /// Opens the regular file `name` for reading (a link there fails: ELOOP).
    pub fn open_file(&self, name: &str) -> io::Result<File> {
        self.open_regular(name, OFlags::RDONLY)
    }

    /// Opens the regular file `name` for writing (the caller writes at its
    /// end); nothing is created, a link there fails (ELOOP).
    pub fn open_to_append(&self, name: &str) -> io::Result<File> {
        self.open_regular(name, OFlags::WRONLY)
    }

    fn open_regular(&self, name: &str, access: OFlags) -> io::Result<File> {
        let flags = access | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let file = File::from(rustix::fs::openat(&self.0, one_name(name)?, flags, Mode::empty())?);
        // NONBLOCK above and this check: a fifo put there must not hang the reader.
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name} is not a regular file")));
        }
        Ok(file)
    }

    /// Renames `from` to `to`, both in this directory (replacing `to`).
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        Ok(rustix::fs::renameat(&self.0, one_name(from)?, &self.0, one_name(to)?)?)
    }

    /// Renames `from` to `to`, both in this directory; fails if `to` exists
    /// (nothing is overwritten).
    pub fn rename_new(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (one_name(from)?, one_name(to)?);
        Ok(rustix::fs::renameat_with(&self.0, from, &self.0, to, rustix::fs::RenameFlags::NOREPLACE)?)
    }

    /// Removes the file (or link) `name`.
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.0, one_name(name)?, AtFlags::empty())?)
    }

    /// Writes `bytes` to `name` atomically: a reader sees the old file or the
    /// new one, never half of one (temp file here, fsync, rename).
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let tmp = format!(".{name}.tmp-{}", std::process::id());
        let _ = self.remove_file(&tmp);
        let result = (|| {
            let mut file = self.create_file(&tmp)?;
            file.write_all(bytes)?;
            file.sync_data()?;
            self.rename(&tmp, name)
        })();
        if result.is_err() {
            let _ = self.remove_file(&tmp);
        }
        result
    }

    /// This directory's own status.
    pub fn stat(&self) -> io::Result<Stat> {
        Ok(rustix::fs::fstat(&self.0)?)
    }

    /// Mode bits of this directory set to `mode`.
    pub fn chmod(&self, mode: u32) -> io::Result<()> {
        Ok(rustix::fs::fchmod(&self.0, Mode::from_raw_mode(mode))?)
    }

    /// The status of `name` here, of a link itself rather than its target.
    pub fn stat_at(&self, name: &str) -> io::Result<Stat> {
        Ok(rustix::fs::statat(&self.0, one_name(name)?, AtFlags::SYMLINK_NOFOLLOW)?)
    }

    /// The entries' names (`.` and `..` left out; names that are not UTF-8
    /// too — memguard names none of its files so) and kinds.
    pub fn entries(&self) -> io::Result<Vec<(String, Kind)>> {
        let mut out = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.0)? {
            let entry = entry?;
            let bytes = entry.file_name().to_bytes();
            let Ok(name) = std::str::from_utf8(bytes) else { continue };
            if name == "." || name == ".." {
                continue;
            }
            let kind = match entry.file_type() {
                // Some file systems do not fill d_type: ask.
                FileType::Unknown => match self.stat_at(name) {
                    Ok(st) => kind_of(&st),
                    Err(_) => continue, // gone since it was listed
                },
                ty => kind_of_type(ty),
            };
            out.push((name.to_string(), kind));
        }
        Ok(out)
    }

    /// Total length of the regular files under `name` (itself a directory),
    /// following no link.
    pub fn tree_bytes(&self, name: &str) -> u64 {
        self.open_dir(name).map_or(0, |dir| dir.bytes_below(0))
    }

    fn bytes_below(&self, depth: u32) -> u64 {
        let Ok(entries) = self.entries() else { return 0 };
        entries
            .iter()
            .map(|(name, kind)| match kind {
                Kind::File => self.stat_at(name).map_or(0, |st| st.st_size as u64),
                Kind::Dir if depth < MAX_DEPTH => self.open_dir(name).map_or(0, |d| d.bytes_below(depth + 1)),
                _ => 0,
            })
            .sum()
    }

    /// Removes the directory `name` and everything in it. A link inside is
    /// removed, never followed; `name` itself being a link fails (ELOOP).
    /// Something already gone (another process trimming too) is no error.
    pub fn remove_tree(&self, name: &str) -> io::Result<()> {
        self.remove_tree_at(name, 0)
    }

    fn remove_tree_at(&self, name: &str, depth: u32) -> io::Result<()> {
        if depth > MAX_DEPTH {
            return Err(io::Error::other(format!("more than {MAX_DEPTH} directories deep; not removed")));
        }
        let dir = match self.open_dir(name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other?,
        };
        for (entry, kind) in dir.entries()? {
            let removed = match kind {
                Kind::Dir => dir.remove_tree_at(&entry, depth + 1),
                _ => dir.remove_file(&entry),
            };
            match removed {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        match rustix::fs::unlinkat(&self.0, one_name(name)?, AtFlags::REMOVEDIR) {
            Err(e) if e == rustix::io::Errno::NOENT => Ok(()),
            other => Ok(other?),
        }
    }
}

/// The kind of what `st` describes.
pub fn kind_of(st: &Stat) -> Kind {
    kind_of_type(FileType::from_raw_mode(st.st_mode as _))
}

fn kind_of_type(ty: FileType) -> Kind {
    match ty {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Dir,
        _ => Kind::Other,
    }
}

/// `st`'s modification time.
pub fn modified(st: &Stat) -> SystemTime {
    let secs = u64::try_from(st.st_mtime).unwrap_or(0);
    UNIX_EPOCH + Duration::new(secs, (st.st_mtime_nsec as u32).min(999_999_999))
}

/// `name` if it is one path component: no `/`, not `.` or `..`, not empty.
fn one_name(name: &str) -> io::Result<&OsStr> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?} is not a file name")));
    }
    Ok(OsStr::from_bytes(name.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn creates_private_files_and_dirs_without_following_links() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        dir.create_dir("d").unwrap();
        assert_eq!(fs::metadata(tmp.path().join("d")).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(dir.create_dir("d").unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        dir.create_file("f").unwrap().write_all(b"x").unwrap();
        assert_eq!(fs::metadata(tmp.path().join("f")).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(dir.create_file("f").is_err(), "never overwrites");

        fs::write(tmp.path().join("target"), b"keep me").unwrap();
        symlink(tmp.path().join("target"), tmp.path().join("link")).unwrap();
        symlink(tmp.path().join("d"), tmp.path().join("dirlink")).unwrap();
        assert!(dir.create_file("link").is_err());
        assert!(dir.open_dir("dirlink").is_err());
        assert!(Dir::open(&tmp.path().join("dirlink")).is_err());
        assert_eq!(fs::read(tmp.path().join("target")).unwrap(), b"keep me");
        for bad in ["", ".", "..", "a/b", "../x"] {
            assert_eq!(dir.create_file(bad).unwrap_err().kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn a_handle_stays_on_its_directory_when_the_path_is_swapped() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir(root.join("bundle")).unwrap();
        let bundle = Dir::open(&root.join("bundle")).unwrap();
        fs::create_dir(root.join("elsewhere")).unwrap();
        fs::rename(root.join("bundle"), root.join("moved")).unwrap();
        symlink(root.join("elsewhere"), root.join("bundle")).unwrap();
        bundle.write_atomic("summary.json", b"{}").unwrap();
        assert_eq!(fs::read(root.join("moved/summary.json")).unwrap(), b"{}");
        assert_eq!(fs::read_dir(root.join("elsewhere")).unwrap().count(), 0);
    }

    #[test]
    fn atomic_writes_replace_whole_and_leave_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        dir.write_atomic("summary.json", b"{}").unwrap();
        dir.write_atomic("summary.json", b"{\"a\":1}").unwrap();
        assert_eq!(fs::read(tmp.path().join("summary.json")).unwrap(), b"{\"a\":1}");
        let names: Vec<_> = dir.entries().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["summary.json"]);
    }

    #[test]
    fn remove_tree_removes_links_not_what_they_point_to() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let keep = root.join("keep");
        fs::create_dir(&keep).unwrap();
        fs::write(keep.join("precious"), b"x").unwrap();
        fs::create_dir_all(root.join("b/sub")).unwrap();
        fs::write(root.join("b/f"), [0u8; 10]).unwrap();
        fs::write(root.join("b/sub/g"), [0u8; 5]).unwrap();
        symlink(&keep, root.join("b/link")).unwrap();
        symlink(&keep, root.join("blink")).unwrap();
        let dir = Dir::open(root).unwrap();
        assert_eq!(dir.tree_bytes("b"), 15, "links are not counted through");
        assert!(dir.remove_tree("blink").is_err(), "a link is not a tree");
        dir.remove_tree("b").unwrap();
        dir.remove_tree("b").unwrap(); // already gone: fine
        assert!(!root.join("b").exists());
        assert!(keep.join("precious").exists() && root.join("blink").exists());
    }
}
