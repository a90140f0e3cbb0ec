//! Mutations of valid inputs for the fuzz tests: cuts, byte flips,
//! insertions of JSON punctuation, digit swaps, deletions, and deep nesting.

use proptest::prelude::*;

/// `cases` runs per property in a normal `cargo test` (PROPTEST_CASES=… for a
/// longer hunt); no failure files: the corpus directories keep what matters.
pub fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[derive(Debug, Clone)]
pub enum Mutation {
    Cut(usize),
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Digit(usize, u8),
    Delete(usize, usize),
    /// `unit` repeated `n` times at a position: nesting deep enough to
    /// overflow a recursive parser's stack.
    Nest(usize, &'static str, usize),
}

/// Openers that nest in JSON, in general and in the shapes the readers expect.
const NESTS: [&str; 4] = ["[", "{\"a\":", "{\"callFrame\":{},\"children\":[", "{\"detail\":["];

pub fn apply(mut bytes: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let len = bytes.len().max(1);
        match m {
            Mutation::Cut(at) => bytes.truncate(at % len),
            Mutation::Flip(at, v) => {
                if !bytes.is_empty() {
                    let i = at % bytes.len();
                    bytes[i] ^= v | 1;
                }
            }
            Mutation::Insert(at, extra) => {
                let i = at % (bytes.len() + 1);
                bytes.splice(i..i, extra.iter().copied());
            }
            Mutation::Digit(at, d) => {
                // Change one number: the mutation most likely to stay parseable.
                let digits: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i].is_ascii_digit()).collect();
                if !digits.is_empty() {
                    bytes[digits[at % digits.len()]] = b'0' + d % 10;
                }
            }
            Mutation::Delete(at, n) => {
                if !bytes.is_empty() {
                    let i = at % bytes.len();
                    let j = (i + n % 16).min(bytes.len());
                    bytes.drain(i..j);
                }
            }
            Mutation::Nest(at, unit, n) => {
                let i = at % (bytes.len() + 1);
                bytes.splice(i..i, unit.bytes().cycle().take(unit.len() * n));
            }
        }
    }
    bytes
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Cut),
        (any::<usize>(), any::<u8>()).prop_map(|(a, v)| Mutation::Flip(a, v)),
        (any::<usize>(), proptest::collection::vec(prop_oneof![Just(b','), Just(b'"'), Just(b'\\'), Just(b'['), Just(b']'), Just(b'9'), any::<u8>()], 1..6))
            .prop_map(|(a, v)| Mutation::Insert(a, v)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, d)| Mutation::Digit(a, d)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), proptest::sample::select(&NESTS[..]), prop_oneof![1usize..300, 300usize..20_000])
            .prop_map(|(a, unit, n)| Mutation::Nest(a, unit, n)),
    ]
}

