//! The snapshot's string table, stored as one byte arena plus end offsets, so
//! millions of strings cost one allocation instead of one `String` each.

#[derive(Debug, Default)]
pub struct Strings {
    data: Vec<u8>,
    /// `ends[i]` is where string `i` ends in `data`; it starts where `i - 1` ends.
    ends: Vec<u64>,
}

impl Strings {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn range(&self, index: u32) -> (usize, usize) {
        let i = index as usize;
        match self.ends.get(i) {
            Some(&end) => {
                let start = if i == 0 { 0 } else { self.ends[i - 1] };
                (start as usize, end as usize)
            }
            None => (0, 0),
        }
    }

    /// The raw bytes of string `index` (empty when out of range).
    pub fn bytes(&self, index: u32) -> &[u8] {
        let (start, end) = self.range(index);
        &self.data[start..end]
    }

    /// String `index` as text. Every string is checked to be UTF-8 when it is
    /// added, so the fallback never shows in practice.
    pub fn get(&self, index: u32) -> &str {
        std::str::from_utf8(self.bytes(index)).unwrap_or("\u{FFFD}")
    }

    /// Appends bytes as a new string, replacing invalid UTF-8; returns its index.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> u32 {
        match std::str::from_utf8(bytes) {
            Ok(_) => self.data.extend_from_slice(bytes),
            Err(_) => self.data.extend_from_slice(String::from_utf8_lossy(bytes).as_bytes()),
        }
        self.ends.push(self.data.len() as u64);
        (self.ends.len() - 1) as u32
    }

    pub fn push(&mut self, s: &str) -> u32 {
        self.push_bytes(s.as_bytes())
    }

    /// The reader unescapes a string straight into the arena: `begin` marks
    /// where it starts, `finish` validates it and records its end.
    pub fn begin(&self) -> usize {
        self.data.len()
    }

    pub fn arena_mut(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    pub fn finish(&mut self, start: usize) {
        if std::str::from_utf8(&self.data[start..]).is_err() {
            let fixed = String::from_utf8_lossy(&self.data[start..]).into_owned();
            self.data.truncate(start);
            self.data.extend_from_slice(fixed.as_bytes());
        }
        self.ends.push(self.data.len() as u64);
    }

    pub fn shrink(&mut self) {
        self.data.shrink_to_fit();
        self.ends.shrink_to_fit();
    }

    pub fn heap_bytes(&self) -> usize {
        self.data.capacity() + self.ends.capacity() * 8
    }
}
