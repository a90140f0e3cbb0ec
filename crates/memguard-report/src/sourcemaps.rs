//! Generated positions → original source, through source maps: a copy the
//! agent put in the bundle (each capture's `sourcemaps-<seq>.json` names the
//! copy of each script URL's map), else the script's own `//# sourceMappingURL=` (an inline `data:`
//! URL, or a file beside the script). Every code location the report prints
//! goes through here: allocation sites, the JS stack of captures, the
//! verdict's holders and sites. Also fills in the URL of locations the heap
//! snapshot knows only by script id (from the allocation profile's frames).
//!
//! Bundle files and scripts are untrusted input: each is read within a size
//! bound, and a map that does not parse is no map.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use memguard_core::sourcemaps::script_path;
use sourcemap::{locate_sourcemap_reference_slice, DecodedMap};

use crate::bounded;
use crate::report::{CodeLocation, OriginalLocation, Report};

/// The indexes the agent writes beside the maps it copies: `sourcemaps-<seq>.json`.
const INDEX_PREFIX: &str = "sourcemaps-";
/// Largest script or map read (a bundled service is a few MB; its map ~3×).
const MAX_FILE: u64 = 64 << 20;

struct Found {
    map: DecodedMap,
    kind: &'static str,
}

pub struct Resolver {
    bundle: Option<PathBuf>,
    index: HashMap<String, String>,
    cache: HashMap<String, Option<Found>>,
}

impl Resolver {
    pub fn new(bundle: Option<&Path>) -> Resolver {
        let mut index = HashMap::new();
        let entries = bundle.and_then(|b| std::fs::read_dir(b).ok()).into_iter().flatten().flatten();
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with(INDEX_PREFIX) && name.ends_with(".json")) {
                continue;
            }
            let bytes = bounded::read_file(&entry.path(), MAX_FILE, "a source map index").ok();
            if let Some(map) = bytes.and_then(|b| serde_json::from_slice::<HashMap<String, String>>(&b).ok()) {
                index.extend(map);
            }
        }
        Resolver { bundle: bundle.map(Path::to_path_buf), index, cache: HashMap::new() }
    }

    /// `line` and `column` 1-based; the original position 1-based too.
    pub fn original(&mut self, url: &str, line: u32, column: u32) -> Option<OriginalLocation> {
        if url.is_empty() || line == 0 {
            return None;
        }
        if !self.cache.contains_key(url) {
            let found = self.find(url);
            self.cache.insert(url.to_string(), found);
        }
        let found = self.cache.get(url)?.as_ref()?;
        let token = found.map.lookup_token(line - 1, column.saturating_sub(1))?;
        Some(OriginalLocation {
            source: token.get_source()?.to_string(),
            line: token.get_src_line() + 1,
            column: token.get_src_col() + 1,
            name: token.get_name().map(str::to_string),
            map: found.kind.to_string(),
        })
    }

    fn find(&self, url: &str) -> Option<Found> {
        if let (Some(bundle), Some(file)) = (&self.bundle, self.index.get(url)) {
            // A bare file name inside the bundle, nothing else.
            if !file.contains('/') && file.starts_with("sourcemap-") {
                if let Some(map) = read_map(&bundle.join(file)) {
                    return Some(Found { map, kind: "bundle" });
                }
            }
        }
        let script = script_path(url)?;
        let source = bounded::read_file(&script, MAX_FILE, "a script").ok()?;
        let reference = locate_sourcemap_reference_slice(&source).ok()??;
        if let Ok(Some(map)) = reference.get_embedded_sourcemap() {
            return Some(Found { map, kind: "inline" });
        }
        let target = reference.get_url();
        if target.contains("://") {
            return None;
        }
        let map = read_map(&script.parent()?.join(target))?;
        Some(Found { map, kind: "file" })
    }
}

fn read_map(path: &Path) -> Option<DecodedMap> {
    let bytes = bounded::read_file(path, MAX_FILE, "a source map").ok()?;
    sourcemap::decode_slice(&bytes).ok()
}

/// Fills in script URLs and original positions across the report.
pub fn locate(report: &mut Report, bundle: Option<&Path>) {
    let mut r = Resolver::new(bundle);
    let scripts: HashMap<i32, String> = report
        .allocations
        .iter()
        .flat_map(|a| a.nodes.iter())
        .filter(|n| n.script_id > 0 && !n.url.is_empty())
        .map(|n| (n.script_id, n.url.clone()))
        .collect();
    let mut code = |l: &mut CodeLocation| {
        if l.url.is_empty() {
            if let Some(url) = scripts.get(&l.script_id) {
                l.url = url.clone();
            }
        }
        l.original = r.original(&l.url, l.line, l.column);
    };
    if let Some(s) = &mut report.snapshot {
        s.accumulations.iter_mut().filter_map(|p| p.holder.location.as_mut()).for_each(&mut code);
    }
    if let Some(v) = &mut report.verdict {
        v.not_growing.iter_mut().filter_map(|p| p.holder.location.as_mut()).for_each(&mut code);
        for s in &mut v.suspects {
            if let Some(l) = s.holder.as_mut().and_then(|h| h.location.as_mut()) {
                code(l);
            }
        }
    }
    let mut site = |url: &str, line: u32, column: u32| r.original(url, line, column);
    if let Some(v) = &mut report.verdict {
        for m in v.suspects.iter_mut().filter_map(|s| s.allocation_site.as_mut()) {
            m.site.original = site(&m.site.url, m.site.line, m.site.column);
        }
    }
    if let Some(a) = &mut report.allocations {
        for s in &mut a.sites {
            s.original = site(&s.url, s.line, s.column);
        }
    }
    // The captures' JS stacks: an `original` object beside each frame's own fields.
    let frames = report
        .bundle
        .as_mut()
        .and_then(|b| b.get_mut("captures"))
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get_mut("stack").and_then(Value::as_array_mut))
        .flatten();
    for f in frames {
        let url = f.get("url").and_then(Value::as_str).unwrap_or("").to_string();
        let line = f.get("line").and_then(Value::as_u64).unwrap_or(0) as u32;
        let column = f.get("column").and_then(Value::as_u64).unwrap_or(0) as u32;
        if let (Some(o), Some(obj)) = (site(&url, line, column), f.as_object_mut()) {
            obj.insert("original".into(), serde_json::to_value(o).unwrap_or(Value::Null));
        }
    }
}
