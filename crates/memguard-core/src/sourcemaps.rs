//! Source maps copied into the bundle at capture time, so `memguard report`
//! maps code locations to the original sources on another machine too.
//!
//! Only the scripts a capture names (its JS stack, its top allocation
//! sites) are looked at. For each, the `//# sourceMappingURL=` comment at
//! the end of the script names a map file beside it; the map is copied as
//! `sourcemap-<hash>.map` and `sourcemaps-<seq>.json` says which script URL
//! each copy belongs to. Inline (`data:`) maps stay in their script.
//!
//! Scripts and maps are opened without following a link, only the last
//! 64 KiB of a script is read, a map over 16 MiB is skipped, and one capture
//! copies at most 32 MiB. Copies are written through the bundle's directory
//! handle, 0600, never over an existing file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::dirfd::Dir;

/// The tail of a script searched for the comment.
const TAIL: u64 = 64 << 10;
const MAX_MAP: u64 = 16 << 20;
pub const MAX_TOTAL: u64 = 32 << 20;

/// `file:///srv/app.js` or `/srv/app.js` → the path (`%20` decoded in a
/// `file:` URL); `node:…` and the like → none. (The report reads with it too.)
pub fn script_path(url: &str) -> Option<PathBuf> {
    match url.strip_prefix("file://") {
        Some(path) => path.starts_with('/').then(|| PathBuf::from(std::ffi::OsString::from_vec(percent_decode(path)))),
        None => url.starts_with('/').then(|| PathBuf::from(url)),
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%' && i + 2 < bytes.len()).then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok()).flatten();
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// Opens a regular file for reading without following a link.
fn open_file(path: &Path) -> io::Result<(File, u64)> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
    let file = File::from(fd);
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok((file, meta.len()))
}

/// The map file a script's last `sourceMappingURL` comment names (none for
/// inline `data:` maps and URLs with a scheme).
pub fn map_reference(tail: &str) -> Option<&str> {
    let at = tail.rfind("//# sourceMappingURL=").or_else(|| tail.rfind("//@ sourceMappingURL="))?;
    let url = tail[at + "//# sourceMappingURL=".len()..].split_whitespace().next()?;
    (!url.starts_with("data:") && !url.contains("://") && !url.is_empty()).then_some(url)
}

fn map_of(script: &Path) -> io::Result<Option<PathBuf>> {
    let (mut file, len) = open_file(script)?;
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL)))?;
    let mut tail = Vec::new();
    file.take(TAIL).read_to_end(&mut tail)?;
    let tail = String::from_utf8_lossy(&tail);
    Ok(map_reference(&tail).and_then(|r| Some(script.parent()?.join(r))))
}

/// A stable name for the copy of `url`'s map (FNV-1a of the URL).
pub fn copy_name(url: &str) -> String {
    let hash = url.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3));
    format!("sourcemap-{hash:016x}.map")
}

/// Copies the maps of `urls` into `dir` and writes `sourcemaps-<seq>.json`;
/// returns the index written (script URL → file). Problems skip a script.
pub fn copy_into(dir: &Dir, seq: u32, urls: &[&str]) -> BTreeMap<String, String> {
    let mut index = BTreeMap::new();
    let mut budget = MAX_TOTAL;
    for &url in urls {
        if index.contains_key(url) {
            continue;
        }
        let Some(script) = script_path(url) else { continue };
        let Ok(Some(map)) = map_of(&script) else { continue };
        let Ok((mut file, len)) = open_file(&map) else { continue };
        if len > MAX_MAP || len > budget {
            continue;
        }
        let mut bytes = Vec::with_capacity(len as usize);
        if (&mut file).take(len).read_to_end(&mut bytes).is_err() {
            continue;
        }
        let name = copy_name(url);
        let written = match dir.create_file(&name) {
            Ok(mut out) => out.write_all(&bytes).is_ok(),
            // An earlier capture of this bundle copied it already.
            Err(e) => e.kind() == io::ErrorKind::AlreadyExists,
        };
        if written {
            budget -= len;
            index.insert(url.to_string(), name);
        }
    }
    if !index.is_empty() {
        let json = serde_json::to_vec_pretty(&index).unwrap_or_default();
        let _ = dir.write_atomic(&format!("sourcemaps-{seq}.json"), &json);
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp() -> PathBuf {
        let p = std::env::temp_dir().join(format!("memguard-sourcemaps-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn the_comment_names_a_file_not_an_inline_map() {
        assert_eq!(map_reference("x();\n//# sourceMappingURL=app.js.map\n"), Some("app.js.map"));
        assert_eq!(map_reference("//# sourceMappingURL=a.map\n//# sourceMappingURL=b.map"), Some("b.map"));
        assert_eq!(map_reference("//# sourceMappingURL=data:application/json;base64,e30="), None);
        assert_eq!(map_reference("//# sourceMappingURL=https://cdn/x.map"), None);
        assert_eq!(map_reference("no comment"), None);
        assert_eq!(script_path("file:///srv/app.js"), Some(PathBuf::from("/srv/app.js")));
        assert_eq!(script_path("node:internal/x"), None);
        assert_eq!(script_path("file:///srv/my%20app/a.js"), Some(PathBuf::from("/srv/my app/a.js")));
    }

    #[test]
    fn maps_are_copied_0600_within_bounds_and_links_are_not_followed() {
        let root = temp();
        let (src, bundle) = (root.join("src"), root.join("bundle"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::write(src.join("a.js"), "a();\n//# sourceMappingURL=a.js.map\n").unwrap();
        std::fs::write(src.join("a.js.map"), r#"{"version":3}"#).unwrap();
        // A map that is a link to a secret, and a script whose map is too big.
        std::fs::write(root.join("secret"), "s").unwrap();
        std::fs::write(src.join("b.js"), "//# sourceMappingURL=b.js.map").unwrap();
        std::os::unix::fs::symlink(root.join("secret"), src.join("b.js.map")).unwrap();
        std::fs::write(src.join("c.js"), "//# sourceMappingURL=c.js.map").unwrap();
        std::fs::File::create(src.join("c.js.map")).unwrap().set_len(MAX_MAP + 1).unwrap();
        let a = format!("file://{}", src.join("a.js").display());
        let b = src.join("b.js").display().to_string();
        let c = src.join("c.js").display().to_string();
        let dir = Dir::open(&bundle).unwrap();
        let index = copy_into(&dir, 2, &[&a, &b, &c, "node:fs", &a]);
        assert_eq!(index.len(), 1, "{index:?}");
        let copy = bundle.join(&index[&a]);
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), r#"{"version":3}"#);
        assert_eq!(std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777, 0o600);
        let written: BTreeMap<String, String> =
            serde_json::from_slice(&std::fs::read(bundle.join("sourcemaps-2.json")).unwrap()).unwrap();
        assert_eq!(written, index);
        // A second capture finds the copy there and names it again.
        assert_eq!(copy_into(&dir, 3, &[&a]), index);
        let _ = std::fs::remove_dir_all(&root);
    }
}
