//! A bundle is untrusted input: the JSON files in it are read within bounds,
//! so a crafted one ends in a clean error rather than exhausting memory or
//! overflowing the stack.
//!
//! serde_json's `unbounded_depth` feature is on for the allocation profile
//! (real call trees nest deeper than its default limit of 128 levels), and
//! serde's derived deserializers recurse once per level: [`check_depth`]
//! bounds the nesting before that parser sees the bytes. Everything else
//! keeps serde_json's default limit.

use std::io::Read;
use std::path::Path;

use crate::ReportError;

/// Reads `path` whole, refusing files over `max_bytes` (`what` names the
/// file's kind in the error).
pub fn read_file(path: &Path, max_bytes: u64, what: &str) -> Result<Vec<u8>, ReportError> {
    let io = |source| ReportError::Io { path: path.into(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(max_bytes + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(ReportError::Usage(format!(
            "{}: larger than {} MB, too large for {what}",
            path.display(),
            max_bytes >> 20
        )));
    }
    Ok(bytes)
}

/// `Err` when `json` nests arrays and objects deeper than `max` levels
/// (brackets inside strings do not count). Malformed JSON passes: the parser
/// says what is wrong with it.
pub fn check_depth(json: &[u8], max: usize) -> Result<(), String> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(format!("nested deeper than {max} levels"));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert!(check_depth(b"[[[]]]", 3).is_ok());
        assert_eq!(check_depth(b"[[[[]]]]", 3).unwrap_err(), "nested deeper than 3 levels");
        assert!(check_depth(br#"{"a":"[[[[[\"[[[[","b":[{}]}"#, 3).is_ok());
        assert!(check_depth(br#"{"a\\":[[[[]]]]}"#, 4).is_err(), "an escaped backslash ends no string");
        assert!(check_depth(b"]]]][[", 2).is_ok());
        assert!(check_depth(&vec![b'['; 1_000_000], 10_000).is_err());
    }

    #[test]
    fn large_files_are_refused() {
        let dir = crate::input::tests::tempdir::Dir::new();
        let path = dir.path().join("summary.json");
        std::fs::write(&path, vec![b' '; 2 << 20]).unwrap();
        assert_eq!(read_file(&path, 2 << 20, "x").unwrap().len(), 2 << 20);
        let e = read_file(&path, 1 << 20, "a summary").unwrap_err().to_string();
        assert!(e.ends_with("summary.json: larger than 1 MB, too large for a summary"), "{e}");
    }
}
