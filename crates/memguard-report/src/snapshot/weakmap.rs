//! WeakMap ephemeron edges. V8 names the two edges that retain a WeakMap value
//! `N / part of key (K @id) -> value (V @id) pair in WeakMap (table @id)`: one
//! from the table, one from the key. DevTools drops the table's edge from the
//! dominator computation and pairs the two in its distance BFS.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use rustc_hash::FxHashMap;

use super::graph::Bits;
use super::strings::Strings;

/// DevTools' `ephemeronNameRegex`; JS `.` excludes line terminators and JS
/// `\d` is ASCII, hence the explicit classes. `match_name` decides the same
/// language by hand (a regex was a tenth of the run time on snapshots with
/// many WeakMap entries); the tests check the two agree.
#[cfg(test)]
const PATTERN: &str = r"^[0-9]+( / part of key \([^\n\r\u{2028}\u{2029}]*? @[0-9]+\) -> value \([^\n\r\u{2028}\u{2029}]*? @[0-9]+\) pair in WeakMap \(table @([0-9]+)\))$";

fn trailing_digits(s: &[u8]) -> usize {
    s.iter().rev().take_while(|c| c.is_ascii_digit()).count()
}

/// `PATTERN`'s captures (group 1: the part after the leading number, group 2:
/// the table id) when `s` matches it.
///
/// The pattern is anchored at both ends, so its groups are fixed by the
/// match: group 1 starts at the first non-digit and group 2 is the digit run
/// before the final `)`. Between `key (` and `) pair in WeakMap (table @`
/// comes `X @D) -> value (Y @D` with X and Y anything but line terminators:
/// that middle must end in ` @` and digits, and what precedes those must
/// contain ` @`, digits and `) -> value (` somewhere.
fn match_name(b: &[u8]) -> Option<(&[u8], &[u8])> {
    const KEY: &[u8] = b" / part of key (";
    const TABLE: &[u8] = b") pair in WeakMap (table @";
    const VALUE: &[u8] = b") -> value (";
    let lead = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if lead == 0 {
        return None;
    }
    let rest = b[lead..].strip_prefix(KEY)?.strip_suffix(b")")?;
    let table_digits = trailing_digits(rest);
    if table_digits == 0 {
        return None;
    }
    let table_at = b.len() - 1 - table_digits;
    let middle = rest[..rest.len() - table_digits].strip_suffix(TABLE)?;
    let value_digits = trailing_digits(middle);
    if value_digits == 0 {
        return None;
    }
    let head = middle[..middle.len() - value_digits].strip_suffix(b" @")?;
    // Searchers built once: building one costs more than a search here.
    static VALUE_FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(VALUE));
    static LINE_SEP_FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\xE2\x80"));
    let key_ok = VALUE_FINDER.find_iter(head).any(|k| {
        let d = trailing_digits(&head[..k]);
        d > 0 && head[..k - d].ends_with(b" @")
    });
    if !key_ok {
        return None;
    }
    // Line terminators: \n, \r, U+2028 and U+2029 (E2 80 A8 / E2 80 A9).
    let terminator = memchr::memchr2(b'\n', b'\r', b).is_some()
        || LINE_SEP_FINDER.find_iter(b).any(|i| matches!(b.get(i + 2), Some(0xA8 | 0xA9)));
    if terminator {
        return None;
    }
    Some((&b[lead..], &b[table_at..b.len() - 1]))
}

/// A part's identity: two independent 64-bit hashes of its text (SipHash
/// and FxHash), so that two different parts share one with a chance of about
/// n² / 2^129.
fn identity(part: &[u8]) -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut sip = std::collections::hash_map::DefaultHasher::new();
    sip.write(part);
    let fx = rustc_hash::FxBuildHasher.hash_one(part);
    (u128::from(sip.finish()) << 64) | u128::from(fx)
}

/// The snapshot's ephemeron edge names, parsed once up front so the passes
/// that need them (essential edges, distances) share one read-only table.
pub struct EphemeronNames {
    /// Strings that are ephemeron names: one bit each, so the test made for
    /// every internal edge stays in cache.
    is_name: Bits,
    /// Per such string: (table id, id of the `duplicatedPart` both edges of
    /// a pair share).
    parsed: FxHashMap<u32, (Option<u64>, u32)>,
}

impl EphemeronNames {
    pub fn new(strings: &Strings) -> Self {
        let mut is_name = Bits::new(strings.len());
        // (string, table id, the part's identity); in string order.
        let mut found: Vec<(u32, Option<u64>, u128)> = Vec::new();
        for i in 0..strings.len() as u32 {
            // Cheap test first: an ephemeron name starts with a digit.
            if !strings.bytes(i).first().is_some_and(u8::is_ascii_digit) {
                continue;
            }
            let Some((part, table)) = match_name(strings.bytes(i)) else {
                continue;
            };
            // All digits: `None` only when too large for a u64.
            let table = table.iter().try_fold(0u64, |v, &d| v.checked_mul(10)?.checked_add(u64::from(d - b'0')));
            found.push((i, table, identity(part)));
            is_name.set(i as usize);
        }
        // Parts numbered by sorting their identities: a map keyed by the
        // part text chased a pointer into the string table per lookup.
        let mut by_part: Vec<(u128, u32)> = found.iter().enumerate().map(|(k, f)| (f.2, k as u32)).collect();
        by_part.sort_unstable();
        let mut part_of = vec![0u32; found.len()];
        let mut part_id = 0u32;
        for (j, &(identity, k)) in by_part.iter().enumerate() {
            if j > 0 && by_part[j - 1].0 != identity {
                part_id += 1;
            }
            part_of[k as usize] = part_id;
        }
        let mut parsed = FxHashMap::with_capacity_and_hasher(found.len(), Default::default());
        for (&(i, table, _), &part) in found.iter().zip(&part_of) {
            parsed.insert(i, (table, part));
        }
        EphemeronNames { is_name, parsed }
    }

    /// For an ephemeron name: (table id, id of the part shared by both edges).
    /// The table id is `None` when too large to equal any node id.
    #[inline]
    pub fn parse(&self, name: u32) -> Option<(Option<u64>, u32)> {
        let i = name as usize;
        if i < self.is_name.len() && self.is_name.get(i) {
            self.parsed.get(&name).copied()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn by_regex(s: &str) -> Option<(String, String)> {
        static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        RE.get_or_init(|| regex::Regex::new(PATTERN).unwrap()).captures(s).map(|c| (c[1].to_string(), c[2].to_string()))
    }

    fn by_hand(s: &str) -> Option<(String, String)> {
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        match_name(s.as_bytes()).map(|(a, b)| (text(a), text(b)))
    }

    #[test]
    fn agrees_with_the_regex_on_examples() {
        let cases = [
            "6 / part of key (Session @31659) -> value (Object @50653) pair in WeakMap (table @12083809)",
            "0 / part of key ( @1) -> value ( @2) pair in WeakMap (table @3)",
            "12 / part of key (a @1) -> value (b) -> value (c @2) pair in WeakMap (table @3)",
            "12 / part of key (a) -> value (b @1) pair in WeakMap (table @3)",
            "12 / part of key (a @x) -> value (b @1) pair in WeakMap (table @3)",
            "12 / part of key (a @1) -> value (b @) pair in WeakMap (table @3)",
            "12 / part of key (a @1) -> value (b @2) pair in WeakMap (table @)",
            "12 / part of key (a @1) -> value (b @2) pair in WeakMap (table @3) ",
            "/ part of key (a @1) -> value (b @2) pair in WeakMap (table @3)",
            "1 / part of key (a\n @1) -> value (b @2) pair in WeakMap (table @3)",
            "1 / part of key (a @1) -> value (b\u{2028} @2) pair in WeakMap (table @3)",
            "1 / part of key (a\u{2027} @1) -> value (b\u{2030} @2) pair in WeakMap (table @3)",
            "1 / part of key (x @1) -> value (y @1) -> value (z @2) pair in WeakMap (table @9) pair in WeakMap (table @3)",
            "1 / part of key (a @1) -> value (b @2) pair in WeakMap (table @99999999999999999999999)",
            "1 / part of key (a  @1) -> value (b @@2) pair in WeakMap (table @3)",
            "1 / part of key (a @1) -> value (b  @2) pair in WeakMap (table @3)",
            "",
            "1",
        ];
        for s in cases {
            assert_eq!(by_hand(s), by_regex(s), "{s:?}");
        }
    }

    fn token() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "0", "17", " @", "@", " ", "(", ")", ") -> value (", " / part of key (", ") pair in WeakMap (table @",
            "x", "é", "\u{2028}", "\u{2029}", "\u{2027}", "\n", "\r", "Object", " -> ",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20000))]
        #[test]
        fn agrees_with_the_regex(parts in prop::collection::vec(token(), 0..16)) {
            let s: String = parts.concat();
            prop_assert_eq!(by_hand(&s), by_regex(&s));
        }

        #[test]
        fn agrees_with_the_regex_near_a_match(
            lead in "[0-9]{0,3}", x in prop::collection::vec(token(), 0..5), k in "[0-9]{0,2}",
            y in prop::collection::vec(token(), 0..5), v in "[0-9]{0,2}", t in "[0-9]{0,3}", tail in "\\)?",
        ) {
            let s = format!(
                "{lead} / part of key ({} @{k}) -> value ({} @{v}) pair in WeakMap (table @{t}{tail}",
                x.concat(), y.concat()
            );
            prop_assert_eq!(by_hand(&s), by_regex(&s));
        }
    }
}
