//! WeakMap ephemeron edges. V8 names the two edges that retain a WeakMap value
//! `N / part of key (K @id) -> value (V @id) pair in WeakMap (table @id)`: one
//! from the table, one from the key. DevTools drops the table's edge from the
//! dominator computation and pairs the two in its distance BFS.

use regex::Regex;

use super::strings::Strings;

/// The same pattern as DevTools' `ephemeronNameRegex`; JS `.` excludes line
/// terminators and JS `\d` is ASCII, hence the explicit classes.
const PATTERN: &str = r"^[0-9]+( / part of key \([^\n\r\u{2028}\u{2029}]*? @[0-9]+\) -> value \([^\n\r\u{2028}\u{2029}]*? @[0-9]+\) pair in WeakMap \(table @([0-9]+)\))$";

/// Parsed ephemeron edge names, cached per string index.
pub struct EphemeronNames {
    regex: Regex,
    /// 0 = not looked at yet, 1 = not an ephemeron name, 2 = parsed into `parsed`.
    state: Vec<u8>,
    parsed: std::collections::HashMap<u32, (Option<u64>, u32)>,
    /// `duplicatedPart` of each parsed name, interned to a small id.
    parts: std::collections::HashMap<String, u32>,
}

impl EphemeronNames {
    pub fn new(string_count: usize) -> Self {
        EphemeronNames {
            regex: Regex::new(PATTERN).expect("constant pattern"),
            state: vec![0; string_count],
            parsed: Default::default(),
            parts: Default::default(),
        }
    }

    /// For an ephemeron name: (table id, id of the part shared by both edges).
    /// The table id is `None` when too large to equal any node id.
    pub fn parse(&mut self, strings: &Strings, name: u32) -> Option<(Option<u64>, u32)> {
        let i = name as usize;
        if i >= self.state.len() {
            return None;
        }
        match self.state[i] {
            1 => return None,
            2 => return self.parsed.get(&name).copied(),
            _ => {}
        }
        let s = strings.get(name);
        // Cheap test first: almost no edge name is an ephemeron's.
        let found = if s.contains(" pair in WeakMap (table @") { self.regex.captures(s) } else { None };
        let Some(c) = found else {
            self.state[i] = 1;
            return None;
        };
        let table = c.get(2).and_then(|m| m.as_str().parse::<u64>().ok());
        let part = c.get(1).map(|m| m.as_str()).unwrap_or("").to_string();
        let next = self.parts.len() as u32;
        let part_id = *self.parts.entry(part).or_insert(next);
        self.state[i] = 2;
        self.parsed.insert(name, (table, part_id));
        Some((table, part_id))
    }
}
