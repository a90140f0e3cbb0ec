//! Text from the heap, a bundle or the environment made safe to print.
//!
//! Heap strings, property names, script URLs, argv, marker details and
//! paths are untrusted: a bundle may come from any host, and JSON.parse
//! happily makes `"\x1b]0;PWNED\x07\x1b[2J"` a property name. Printed raw,
//! such text drives the reader's terminal (retitles it, clears it, fakes
//! output, and in some terminals worse). Every writer of text for a human —
//! `memguard report`'s terminal output and error lines, every `memguard:` log
//! line — passes data through [`printable`] (or [`name`]), which shows
//! control characters escaped and never emits them.
//!
//! Escaped: C0 (U+0000–U+001F, including `\t`, `\n`, `\r`: one field stays on
//! its line), DEL, C1 (U+0080–U+009F: `\u{9b}` is a one-character CSI in
//! some terminals), the bidirectional formatting characters (they make a name
//! display as something it is not), U+2028/U+2029 (line breaks to some
//! viewers), and bytes that are not UTF-8 (`\xff`). ESC-introduced sequences
//! lose their ESC and so become inert text. Backslashes are left alone: a
//! literal `\x1b` in a name is harmless and rare, and doubling every
//! backslash would make Windows paths in names hard to read.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Longest name shown, in characters of output. Real class, edge and
/// function names and script URLs fit (DevTools itself cuts the `{a, b}`
/// class names it makes up at 120 characters, and the report keeps node
/// names to 120); 200 leaves room for a few escapes while a 1 MB string used
/// as a key cannot flood the terminal.
pub const NAME_LIMIT: usize = 200;

/// No length limit: escape only (whole lines, paths, error messages).
pub const UNLIMITED: usize = usize::MAX;

/// Whether `c` is shown escaped rather than printed.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        | '\u{2028}' | '\u{2029}')
}

/// `s` with unsafe characters escaped, cut to `limit` output characters
/// with a `…(+N chars)` marker (N counts the characters of `s` left out).
pub fn printable(s: &str, limit: usize) -> Cow<'_, str> {
    if s.len() <= limit && !s.chars().any(is_unsafe) {
        // Fast path, the usual case: bytes ≥ chars, so it fits.
        return Cow::Borrowed(s);
    }
    Cow::Owned(printable_bytes(s.as_bytes(), limit).into_owned())
}

/// [`printable`] with [`NAME_LIMIT`]: for one name in a line.
pub fn name(s: &str) -> Cow<'_, str> {
    printable(s, NAME_LIMIT)
}

/// Like [`printable`], for bytes that may not be UTF-8 (file contents,
/// paths): each byte of an invalid sequence becomes `\xNN`.
pub fn printable_bytes(bytes: &[u8], limit: usize) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        if s.len() <= limit && !s.chars().any(is_unsafe) {
            return Cow::Borrowed(s);
        }
    }
    let mut out = String::with_capacity(bytes.len().min(limit.saturating_add(32)));
    let mut shown = 0usize; // output characters so far
    let mut piece = String::new();
    let mut chunks = bytes.utf8_chunks();
    while let Some(chunk) = chunks.next() {
        let invalid = chunk.invalid().iter().map(|&b| Unit::Byte(b));
        for (i, unit) in chunk.valid().chars().map(Unit::Char).chain(invalid).enumerate() {
            piece.clear();
            match unit {
                Unit::Char(c) if !is_unsafe(c) => piece.push(c),
                Unit::Char(c) if (c as u32) < 0x80 => {
                    let _ = write!(piece, "\\x{:02x}", c as u32);
                }
                Unit::Char(c) => {
                    let _ = write!(piece, "\\u{{{:x}}}", c as u32);
                }
                Unit::Byte(b) => {
                    let _ = write!(piece, "\\x{b:02x}");
                }
            }
            let width = piece.chars().count();
            if shown + width > limit {
                let left = left_in(chunk, i) + chunks.map(|c| chars_in(c.valid(), c.invalid())).sum::<usize>();
                let _ = write!(out, "…(+{left} chars)");
                return Cow::Owned(out);
            }
            shown += width;
            out.push_str(&piece);
        }
    }
    Cow::Owned(out)
}

enum Unit {
    Char(char),
    Byte(u8),
}

/// Characters (invalid bytes count one each) from unit `i` of `chunk` on.
fn left_in(chunk: std::str::Utf8Chunk<'_>, i: usize) -> usize {
    chars_in(chunk.valid(), chunk.invalid()) - i
}

fn chars_in(valid: &str, invalid: &[u8]) -> usize {
    valid.chars().count() + invalid.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What no output of memguard may contain: C0 but the newline that ends
    /// a line, DEL, C1.
    pub fn has_raw_control(s: &str) -> bool {
        s.chars().any(|c| c != '\n' && matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'))
    }

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in ["UserSession", "{host, connection}", "Map 'sessions' → (array)", "naïve 日本語 C:\\path", ""] {
            assert!(matches!(printable(s, NAME_LIMIT), Cow::Borrowed(b) if b == s), "{s}");
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        let evil = "\x1b]0;PWNED\x07\x1b[2J\x1b[31mEVIL";
        assert_eq!(name(evil), "\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mEVIL");
        assert_eq!(name("a\tb\nc\rd\0e\x7f"), "a\\x09b\\x0ac\\x0dd\\x00e\\x7f");
        assert_eq!(name("csi\u{9b}31m\u{80}\u{9f}"), "csi\\u{9b}31m\\u{80}\\u{9f}");
        assert_eq!(name("\u{202e}gnp.exe\u{2029}"), "\\u{202e}gnp.exe\\u{2029}");
        // Just outside the ranges: printed as they are.
        assert_eq!(name("\u{a0}\u{ff}~ "), "\u{a0}\u{ff}~ ");
    }

    #[test]
    fn invalid_utf8_becomes_escapes_not_a_panic() {
        assert_eq!(printable_bytes(b"ok\xff\xfe\x1b[0m\xe2\x82", UNLIMITED), "ok\\xff\\xfe\\x1b[0m\\xe2\\x82");
        assert_eq!(printable_bytes("→ fine".as_bytes(), UNLIMITED), "→ fine");
    }

    #[test]
    fn long_names_are_cut_with_a_marker() {
        let long = "x".repeat(1000);
        let shown = name(&long);
        assert_eq!(shown, format!("{}…(+800 chars)", "x".repeat(200)));
        assert_eq!(name(&"é".repeat(200)), "é".repeat(200), "the limit counts characters, not bytes");
        // Escapes count at their printed width: the output stays bounded.
        let escs = "\x1b".repeat(100);
        let shown = printable(&escs, 20);
        assert_eq!(shown, format!("{}…(+95 chars)", "\\x1b".repeat(5)));
        let shown = printable_bytes(b"abcd\xff\xffxyz", 6);
        assert_eq!(shown, "abcd…(+5 chars)");
    }

    #[test]
    fn nothing_unsafe_survives_any_input() {
        // Every code point up to U+3000 plus invalid bytes, in one string.
        let mut bytes: Vec<u8> = (0..0x3000u32).filter_map(char::from_u32).collect::<String>().into_bytes();
        bytes.extend_from_slice(b"\xff\xc0\x80\xed\xa0\x80");
        for limit in [UNLIMITED, NAME_LIMIT, 3, 0] {
            let out = printable_bytes(&bytes, limit);
            assert!(!has_raw_control(&out) && !out.chars().any(is_unsafe), "limit {limit}");
        }
    }
}
