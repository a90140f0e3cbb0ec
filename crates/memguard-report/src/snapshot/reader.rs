//! Streamed `.heapsnapshot[.gz]` reader. The file is one JSON object, but its
//! bulk is three flat arrays (`nodes`, `edges` of integers, `strings` last), so
//! the top level is walked by hand and the number arrays are scanned byte by byte
//! straight into per-field columns: the text is never held whole, and no JSON
//! value tree is built except for the small `snapshot.meta` object.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::strings::Strings;

/// What can go wrong while reading; the caller adds the path.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Truncated(String),
    Corrupt(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => ReadError::Truncated(format!("compressed stream ends early ({e})")),
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
                ReadError::Corrupt(format!("bad compressed data ({e})"))
            }
            _ => ReadError::Io(e),
        }
    }
}

type Result<T> = std::result::Result<T, ReadError>;

fn corrupt<T>(why: impl Into<String>) -> Result<T> {
    Err(ReadError::Corrupt(why.into()))
}

/// Field layout from `snapshot.meta`: names of the node and edge fields and of
/// their enumerated types. Nothing else in the reader assumes an order.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub node_fields: Vec<String>,
    pub node_types: Vec<String>,
    pub edge_fields: Vec<String>,
    pub edge_types: Vec<String>,
    pub location_fields: Vec<String>,
    pub node_count: u64,
    pub edge_count: u64,
    pub root_index: u64,
    pub extra_native_bytes: u64,
}

/// The snapshot as columns: node `i`'s fields at index `i`, node `i`'s edges at
/// `first_edge[i]..first_edge[i + 1]`, edge targets as node ordinals.
#[derive(Debug, Default)]
pub struct RawSnapshot {
    pub meta: Meta,
    pub node_type: Vec<u8>,
    pub node_name: Vec<u32>,
    pub node_id: Vec<u32>,
    pub self_size: Vec<u32>,
    pub first_edge: Vec<u32>,
    /// Empty when the snapshot has no `detachedness` field (before Node 20).
    pub detachedness: Vec<u8>,
    pub edge_type: Vec<u8>,
    pub edge_name: Vec<u32>,
    pub edge_to: Vec<u32>,
    /// (node ordinal, script id, line, column), in file order.
    pub locations: Vec<[u32; 4]>,
    pub strings: Strings,
}

impl RawSnapshot {
    pub fn node_count(&self) -> usize {
        self.node_type.len()
    }
}

/// Advances the progress bar by the bytes read.
pub struct Counting<R> {
    inner: R,
    bar: Option<indicatif::ProgressBar>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}

/// Opens `path` (gzip detected by its magic bytes, any number of members) and
/// reads it, advancing `bar` by the file bytes read.
pub fn read_file(path: &Path, bar: Option<indicatif::ProgressBar>) -> Result<RawSnapshot> {
    let mut file = File::open(path)?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut magic = [0u8; 2];
    let got = read_up_to(&mut file, &mut magic)?;
    use std::io::Seek;
    file.seek(io::SeekFrom::Start(0))?;
    let bar_clone = bar.clone();
    let counted = Counting { inner: file, bar };
    let gz = got == 2 && magic == [0x1f, 0x8b];
    // A number needs at least two bytes ("0,"); deflate expands at most ~1032x.
    // Bounds preallocation so a corrupt count cannot ask for terabytes.
    let max_numbers = if gz { file_len.saturating_mul(516) } else { file_len / 2 } + 16;
    // Small files get small buffers: tests and fuzzing open thousands.
    let buffer = (if gz { file_len.saturating_mul(8) } else { file_len } as usize).clamp(64 << 10, BUF_SIZE);
    if gz {
        let decoder = flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(1 << 20, counted));
        read_snapshot_buffered(super::pipe::Pipe::new(decoder, buffer), max_numbers, buffer)
    } else {
        drop(counted);
        read_plain_split(path, bar_clone, max_numbers, buffer)
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A byte reader with its own large buffer, so the scanners can walk a slice.
struct Bytes<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
}

const BUF_SIZE: usize = 1 << 20;

impl<R: Read> Bytes<R> {
    fn new(inner: R, size: usize) -> Self {
        Bytes { inner, buf: vec![0u8; size.max(16)].into_boxed_slice(), pos: 0, end: 0, base: 0 }
    }

    /// Refills the buffer; false at end of input.
    fn fill(&mut self) -> Result<bool> {
        if self.pos < self.end {
            return Ok(true);
        }
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.base += self.end as u64;
                    self.pos = 0;
                    self.end = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Stream offset of the next byte.
    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn peek(&mut self) -> Result<Option<u8>> {
        if self.fill()? {
            Ok(Some(self.buf[self.pos]))
        } else {
            Ok(None)
        }
    }

    fn next(&mut self, what: &str) -> Result<u8> {
        if !self.fill()? {
            return Err(ReadError::Truncated(format!("file ends inside {what}")));
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }

    fn skip_ws(&mut self) -> Result<Option<u8>> {
        loop {
            if !self.fill()? {
                return Ok(None);
            }
            let b = self.buf[self.pos];
            if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                return Ok(Some(b));
            }
        }
    }

    fn expect(&mut self, want: u8, what: &str) -> Result<()> {
        match self.skip_ws()? {
            None => Err(ReadError::Truncated(format!("file ends before {what}"))),
            Some(b) if b == want => {
                self.pos += 1;
                Ok(())
            }
            Some(b) => corrupt(format!("expected '{}' {what}, found '{}'", want as char, (b as char).escape_default())),
        }
    }

    /// Moves the unread bytes to the front and reads more, until at least
    /// `want` bytes are buffered or the input ends; false if none are left.
    fn refill_to(&mut self, want: usize) -> Result<bool> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        while self.end < want.min(self.buf.len()) {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => break,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(self.end > 0)
    }

    /// The next integer of an array whose `[` was read; `None` at its `]`.
    /// `first` is true until the first element was read (no comma before it).
    /// Parses from a window of buffered bytes; a value cut by the window's end
    /// is retried after a refill, so the common case has no per-byte state.
    #[inline]
    fn next_uint(&mut self, first: &mut bool, what: &str) -> Result<Option<u64>> {
        loop {
            let buf = &self.buf[self.pos..self.end];
            let len = buf.len();
            let mut i = 0;
            while i < len && matches!(buf[i], b' ' | b'\n' | b'\r' | b'\t') {
                i += 1;
            }
            if i < len && !*first {
                match buf[i] {
                    b',' => {
                        i += 1;
                        while i < len && matches!(buf[i], b' ' | b'\n' | b'\r' | b'\t') {
                            i += 1;
                        }
                    }
                    b']' => {
                        self.pos += i + 1;
                        return Ok(None);
                    }
                    b => return corrupt(format!("expected ',' or ']' in \"{what}\", found '{}'", (b as char).escape_default())),
                }
            } else if i < len && buf[i] == b']' {
                self.pos += i + 1;
                return Ok(None);
            }
            let start = i;
            let v;
            (i, v) = digit_run(buf, i, 0);
            if i < len {
                if i == start {
                    let b = buf[i];
                    return corrupt(format!(
                        "unexpected '{}' in \"{what}\" (only non-negative integers belong there)",
                        (b as char).escape_default()
                    ));
                }
                if i - start > 19 {
                    return corrupt(format!("number too large in \"{what}\""));
                }
                self.pos += i;
                *first = false;
                return Ok(Some(v));
            }
            // The window ended inside the value (or its separator): refill and
            // retry from its start, unless the input has no more to give.
            let had = len;
            if !self.refill_to(had + 64)? || self.end - self.pos <= had {
                return Err(ReadError::Truncated(format!("file ends inside \"{what}\"")));
            }
        }
    }

    /// The next record of `rec.len()` integers of an array whose `[` was read;
    /// false at its `]`. Most records are parsed in place by `record_fast`,
    /// inlined into the caller's loop (a call per record was a quarter of
    /// the parse); the rest (near the window's end, unusual spacing, errors)
    /// by `next_record_slow`.
    #[inline(always)]
    fn next_record(&mut self, first: &mut bool, rec: &mut [u64], what: &str, fields: &str) -> Result<bool> {
        let window = &self.buf[self.pos..self.end];
        if window.len() >= rec.len() * FAST_FIELD + 8 {
            if let Some(used) = record_fast(window, *first, rec) {
                self.pos += used;
                *first = false;
                return Ok(true);
            }
        }
        self.next_record_slow(first, rec, what, fields)
    }

    /// `next_record` one value at a time through `next_uint`.
    #[inline(never)]
    fn next_record_slow(&mut self, first: &mut bool, rec: &mut [u64], what: &str, fields: &str) -> Result<bool> {
        for k in 0..rec.len() {
            match self.next_uint(first, what)? {
                Some(v) => rec[k] = v,
                None if k == 0 => return Ok(false),
                None => return corrupt(format!("\"{what}\" length is not a multiple of meta.{fields}")),
            }
        }
        Ok(true)
    }

    /// Reads a JSON string (opening quote already read) into the arena, with
    /// escapes decoded: `\uXXXX` surrogate pairs are joined, a lone surrogate
    /// becomes U+FFFD.
    fn read_string_into(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<()> {
        let mut high: Option<u16> = None;
        loop {
            if !self.fill()? {
                return Err(ReadError::Truncated("file ends inside a string".into()));
            }
            let chunk = &self.buf[self.pos..self.end];
            match memchr::memchr2(b'"', b'\\', chunk) {
                None => {
                    if !chunk.is_empty() {
                        flush_high(&mut high, out);
                    }
                    out.extend_from_slice(chunk);
                    self.pos = self.end;
                }
                Some(i) => {
                    if i > 0 {
                        flush_high(&mut high, out);
                        out.extend_from_slice(&chunk[..i]);
                    }
                    let special = chunk[i];
                    self.pos += i + 1;
                    if special == b'"' {
                        flush_high(&mut high, out);
                        return Ok(());
                    }
                    let esc = self.next("a string escape")?;
                    let simple = match esc {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(8),
                        b'f' => Some(12),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'u' => None,
                        other => return corrupt(format!("bad string escape '\\{}'", (other as char).escape_default())),
                    };
                    match simple {
                        Some(c) => {
                            flush_high(&mut high, out);
                            out.push(c);
                        }
                        None => {
                            let mut unit: u16 = 0;
                            for _ in 0..4 {
                                let h = self.next("a \\u escape")?;
                                let d = match h {
                                    b'0'..=b'9' => h - b'0',
                                    b'a'..=b'f' => h - b'a' + 10,
                                    b'A'..=b'F' => h - b'A' + 10,
                                    _ => return corrupt("bad hex digit in a \\u escape"),
                                };
                                unit = unit << 4 | u16::from(d);
                            }
                            push_utf16_unit(&mut high, unit, out);
                        }
                    }
                }
            }
            if out.len() > limit {
                return corrupt("string too long");
            }
        }
    }

    /// Skips any JSON value (used for sections this reader does not need).
    fn skip_value(&mut self) -> Result<()> {
        let mut depth = 0usize;
        let mut scratch = Vec::new();
        loop {
            let b = match self.skip_ws()? {
                None => return Err(ReadError::Truncated("file ends inside a value".into())),
                Some(b) => b,
            };
            self.pos += 1;
            match b {
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    if depth == 0 {
                        return corrupt("unbalanced brackets");
                    }
                    depth -= 1;
                }
                b'"' => {
                    scratch.clear();
                    self.read_string_into(&mut scratch, usize::MAX)?;
                }
                _ => {}
            }
            if depth == 0 {
                // A scalar at depth 0 ends at the next separator.
                if !matches!(b, b']' | b'}' | b'"') {
                    while let Some(c) = self.peek()? {
                        if matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                return Ok(());
            }
        }
    }

    /// Captures the bytes of one balanced JSON value (for `snapshot`, small).
    fn capture_value(&mut self, limit: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        loop {
            let b = self.next("the \"snapshot\" header")?;
            out.push(b);
            if out.len() > limit {
                return corrupt("\"snapshot\" header too long");
            }
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    if depth == 0 {
                        return corrupt("unbalanced \"snapshot\" header");
                    }
                    depth -= 1;
                    if depth == 0 {
                        return Ok(out);
                    }
                }
                b' ' | b'\n' | b'\r' | b'\t' if depth == 0 && out.len() == 1 => {
                    out.clear();
                }
                _ if depth == 0 => return corrupt("\"snapshot\" is not an object"),
                _ => {}
            }
        }
    }
}

fn flush_high(high: &mut Option<u16>, out: &mut Vec<u8>) {
    if high.take().is_some() {
        out.extend_from_slice("\u{FFFD}".as_bytes());
    }
}

fn push_utf16_unit(high: &mut Option<u16>, unit: u16, out: &mut Vec<u8>) {
    let mut tmp = [0u8; 4];
    match unit {
        0xD800..=0xDBFF => {
            flush_high(high, out);
            *high = Some(unit);
        }
        0xDC00..=0xDFFF => match high.take() {
            Some(h) => {
                let c = 0x10000 + ((u32::from(h) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                let ch = char::from_u32(c).unwrap_or('\u{FFFD}');
                out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
            }
            None => out.extend_from_slice("\u{FFFD}".as_bytes()),
        },
        _ => {
            flush_high(high, out);
            let ch = char::from_u32(u32::from(unit)).unwrap_or('\u{FFFD}');
            out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
        }
    }
}

fn string_list(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

fn parse_meta(bytes: &[u8]) -> Result<Meta> {
    let v: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return corrupt(format!("bad \"snapshot\" header: {e}")),
    };
    let meta = &v["meta"];
    let node_fields = string_list(&meta["node_fields"]);
    let edge_fields = string_list(&meta["edge_fields"]);
    let type_list = |fields: &[String], types: &serde_json::Value| {
        fields.iter().position(|f| f == "type").map(|i| string_list(&types[i])).unwrap_or_default()
    };
    let node_types = type_list(&node_fields, &meta["node_types"]);
    let edge_types = type_list(&edge_fields, &meta["edge_types"]);
    let num = |key: &str| v[key].as_u64().unwrap_or(0);
    let m = Meta {
        node_types,
        edge_types,
        location_fields: string_list(&meta["location_fields"]),
        node_count: num("node_count"),
        edge_count: num("edge_count"),
        root_index: num("root_index"),
        extra_native_bytes: num("extra_native_bytes"),
        node_fields,
        edge_fields,
    };
    for required in ["type", "name", "id", "self_size", "edge_count"] {
        if !m.node_fields.iter().any(|f| f == required) {
            return corrupt(format!("meta.node_fields lacks \"{required}\""));
        }
    }
    for required in ["type", "name_or_index", "to_node"] {
        if !m.edge_fields.iter().any(|f| f == required) {
            return corrupt(format!("meta.edge_fields lacks \"{required}\""));
        }
    }
    if m.node_types.is_empty() || m.node_types.len() > 255 || m.edge_types.is_empty() || m.edge_types.len() > 255 {
        return corrupt("meta lacks usable node_types / edge_types");
    }
    Ok(m)
}

/// Where each node field sits in a record.
struct NodeAt {
    ty: usize,
    name: usize,
    id: usize,
    self_size: usize,
    edge_count: usize,
    detachedness: Option<usize>,
}


/// Reads a whole snapshot from a byte stream.
pub fn read_snapshot(input: impl Read, max_numbers: u64) -> Result<RawSnapshot> {
    read_snapshot_buffered(input, max_numbers, BUF_SIZE)
}

/// As `read_snapshot` with a given buffer size (tests use tiny ones to cross
/// every buffer boundary).
pub fn read_snapshot_buffered(input: impl Read, max_numbers: u64, buffer: usize) -> Result<RawSnapshot> {
    let mut r = Bytes::new(input, buffer);
    let mut snap = RawSnapshot::default();
    let mut seen = Seen::default();
    r.expect(b'{', "at the start of the file")?;
    read_sections(&mut r, &mut snap, &mut seen, max_numbers, false, false)?;
    finish(snap, seen)
}

/// Which sections were read.
#[derive(Default)]
struct Seen {
    meta: bool,
    nodes: bool,
    edges: bool,
    strings: bool,
}

/// Where `read_sections` stopped.
#[derive(PartialEq)]
enum Stop {
    /// At the closing `}` of the file.
    End,
    /// Right after `"nodes":` (only when asked to stop there).
    AtNodes,
}

/// Reads `key: value` pairs of the top-level object. `after_value`: the
/// stream is positioned after a value (expects `,` or `}` first).
fn read_sections<R: Read>(
    r: &mut Bytes<R>,
    snap: &mut RawSnapshot,
    seen: &mut Seen,
    max_numbers: u64,
    stop_at_nodes: bool,
    mut after_value: bool,
) -> Result<Stop> {
    let mut key = Vec::new();
    loop {
        if after_value {
            match r.skip_ws()? {
                None => return Err(ReadError::Truncated("file ends before the closing '}'".into())),
                Some(b',') => r.pos += 1,
                Some(b'}') => {
                    r.pos += 1;
                    break;
                }
                Some(b) => return corrupt(format!("expected ',' or '}}', found '{}'", (b as char).escape_default())),
            }
        }
        after_value = true;
        match r.skip_ws()? {
            None => return Err(ReadError::Truncated("file ends before the closing '}'".into())),
            Some(b'}') => {
                r.pos += 1;
                break;
            }
            Some(b'"') => r.pos += 1,
            Some(b) => return corrupt(format!("expected a key, found '{}'", (b as char).escape_default())),
        }
        key.clear();
        r.read_string_into(&mut key, 1 << 16)?;
        r.expect(b':', "after a key")?;
        match key.as_slice() {
            b"snapshot" => {
                let bytes = r.capture_value(64 << 20)?;
                snap.meta = parse_meta(&bytes)?;
                seen.meta = true;
            }
            b"nodes" => {
                if !seen.meta {
                    return corrupt("\"nodes\" comes before the \"snapshot\" header");
                }
                if stop_at_nodes {
                    return Ok(Stop::AtNodes);
                }
                r.expect(b'[', "to open \"nodes\"")?;
                read_nodes(r, snap, max_numbers)?;
                seen.nodes = true;
            }
            b"edges" => {
                if !seen.nodes {
                    return corrupt("\"edges\" comes before \"nodes\"");
                }
                r.expect(b'[', "to open \"edges\"")?;
                read_all_edges(r, snap, max_numbers)?;
                seen.edges = true;
            }
            b"locations" => {
                if !seen.meta {
                    return corrupt("\"locations\" comes before the \"snapshot\" header");
                }
                r.expect(b'[', "to open \"locations\"")?;
                read_locations(r, snap)?;
            }
            b"strings" => {
                r.expect(b'[', "to open \"strings\"")?;
                read_strings(r, &mut snap.strings)?;
                seen.strings = true;
            }
            _ => r.skip_value()?,
        }
    }
    if let Some(b) = r.skip_ws()? {
        return corrupt(format!("unexpected '{}' after the closing '}}'", (b as char).escape_default()));
    }
    Ok(Stop::End)
}

fn finish(snap: RawSnapshot, seen: Seen) -> Result<RawSnapshot> {
    for (present, name) in [(seen.meta, "snapshot"), (seen.nodes, "nodes"), (seen.edges, "edges"), (seen.strings, "strings")] {
        if !present {
            return corrupt(format!("no \"{name}\" section"));
        }
    }
    validate(&snap)?;
    Ok(snap)
}

/// A plain file is read by two threads: this one parses the header and the
/// `nodes` array while a second one skips ahead to the end of `nodes` (it
/// holds no `]` but its own) and parses `edges`, `strings` and the rest.
fn read_plain_split(path: &Path, bar: Option<indicatif::ProgressBar>, max_numbers: u64, buffer: usize) -> Result<RawSnapshot> {
    let file = File::open(path)?;
    let mut r = Bytes::new(Counting { inner: file, bar: bar.clone() }, buffer);
    let mut snap = RawSnapshot::default();
    let mut seen = Seen::default();
    r.expect(b'{', "at the start of the file")?;
    if read_sections(&mut r, &mut snap, &mut seen, max_numbers, true, false)? == Stop::End {
        return finish(snap, seen);
    }
    let nodes_at = r.offset();
    let meta = snap.meta.clone();
    // The final edge columns; each thread fills its own part of them.
    let mut columns = EdgeColumns::zeroed(&meta, max_numbers);
    // `edges` is about twice as long as `nodes`: this thread also reads the
    // first edges (as many as the other thread says), that one the rest.
    let (nodes, rest) = std::thread::scope(|scope| {
        let (split_tx, split_rx) = std::sync::mpsc::channel::<EdgeSink<'_>>();
        let whole = columns.sink();
        let meta = &meta;
        let rest = scope.spawn(move || -> Result<(RawSnapshot, Seen, Option<usize>)> {
            use std::io::{Seek, SeekFrom};
            let mut file = File::open(path)?;
            file.seek(SeekFrom::Start(nodes_at))?;
            let after_nodes = find_byte(&mut file, b']')?.map(|i| nodes_at + i + 1);
            let Some(after_nodes) = after_nodes else {
                return Err(ReadError::Truncated("file ends inside \"nodes\"".into()));
            };
            let mut part = RawSnapshot { meta: meta.clone(), ..RawSnapshot::default() };
            let mut seen = Seen { meta: true, nodes: true, ..Seen::default() };
            let split = edges_split(path, nodes_at, after_nodes, meta)?.filter(|&(records, _)| records <= whole.capacity() as u64);
            if let Some((records, resume_at)) = split {
                let (front, mut back) = whole.split_at(records as usize);
                let _ = split_tx.send(front);
                file.seek(SeekFrom::Start(resume_at))?;
                let mut r = Bytes::new(Counting { inner: file, bar }, buffer);
                read_edges_upto(&mut r, meta, &mut back, None)?;
                seen.edges = true;
                read_sections(&mut r, &mut part, &mut seen, max_numbers, false, true)?;
                return Ok((part, seen, Some(records as usize + back.len)));
            }
            drop(split_tx);
            file.seek(SeekFrom::Start(after_nodes))?;
            let mut r = Bytes::new(Counting { inner: file, bar }, buffer);
            read_sections(&mut r, &mut part, &mut seen, max_numbers, false, true)?;
            Ok((part, seen, None))
        });
        let nodes = r.expect(b'[', "to open \"nodes\"").and_then(|()| read_nodes(&mut r, &mut snap, max_numbers)).and_then(|()| {
            match split_rx.recv() {
                Ok(mut front) => read_first_edges(&mut r, meta, &mut front),
                Err(_) => Ok(()),
            }
        });
        (nodes, rest.join())
    });
    let (part, rest_seen, edges_read) = match rest {
        Ok(result) => result?,
        Err(_) => return corrupt("reader thread failed"),
    };
    nodes?;
    match edges_read {
        Some(count) => columns.into_snapshot(&mut snap, count),
        None => {
            snap.edge_type = part.edge_type;
            snap.edge_name = part.edge_name;
            snap.edge_to = part.edge_to;
        }
    }
    snap.strings = part.strings;
    snap.locations = part.locations;
    let seen = Seen {
        meta: true,
        nodes: true,
        edges: rest_seen.edges,
        strings: rest_seen.strings,
    };
    finish(snap, seen)
}

/// Where to split `edges` between the two reader threads: (edges the nodes
/// thread reads, offset after the comma that ends them). `None` (no split)
/// unless `edges` follows `nodes` and is long enough to be worth it.
fn edges_split(path: &Path, nodes_at: u64, after_nodes: u64, meta: &Meta) -> Result<Option<(u64, u64)>> {
    use std::io::{Seek, SeekFrom};
    const MIN_SHARE: u64 = 4 << 20;
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    file.seek(SeekFrom::Start(after_nodes))?;
    let mut head = Bytes::new(file.by_ref().take(256), 256);
    let opened = (|| -> Result<bool> {
        if head.skip_ws()? != Some(b',') {
            return Ok(false);
        }
        head.pos += 1;
        if head.skip_ws()? != Some(b'"') {
            return Ok(false);
        }
        head.pos += 1;
        let mut key = Vec::new();
        head.read_string_into(&mut key, 64)?;
        if key != b"edges" {
            return Ok(false);
        }
        head.expect(b':', "after a key")?;
        head.expect(b'[', "to open \"edges\"")?;
        Ok(true)
    })();
    if !matches!(opened, Ok(true)) {
        return Ok(None);
    }
    let edges_at = after_nodes + head.offset();
    drop(head);
    // Each thread about half the bytes (they parse at about the same speed):
    // the nodes thread reads `nodes` and `share` bytes of `edges`, this one
    // the other edges and what follows.
    let nodes_len = after_nodes - nodes_at;
    let share = (file_len / 2).saturating_sub(nodes_len);
    let width = meta.edge_fields.len() as u64;
    if share < MIN_SHARE || width == 0 {
        return Ok(None);
    }
    // Commas before `edges_at + share`, then on to one that ends an edge; no
    // split if `edges` ends first.
    file.seek(SeekFrom::Start(edges_at))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    let mut commas = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        let chunk = &buf[..n];
        let before = (share.saturating_sub(offset) as usize).min(n);
        if memchr::memchr(b']', &chunk[..before]).is_some() {
            return Ok(None);
        }
        commas += count_commas(&chunk[..before]);
        for (i, &b) in chunk.iter().enumerate().skip(before) {
            if b == b',' {
                commas += 1;
                if commas % width == 0 {
                    return Ok(Some((commas / width, edges_at + offset + i as u64 + 1)));
                }
            } else if b == b']' {
                return Ok(None);
            }
        }
        offset += n as u64;
    }
}

/// Number of `,` bytes, eight at a time: a byte of `w ^ ",,,,,,,,"` is zero
/// exactly where `w` holds a comma, and `((x & 0x7f..) + 0x7f..) | x` has its
/// high bit clear exactly in the zero bytes of `x`.
fn count_commas(bytes: &[u8]) -> u64 {
    const COMMAS: u64 = u64::from_ne_bytes([b','; 8]);
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let mut count = 0u64;
    for w in &mut words {
        let x = u64::from_ne_bytes(w.try_into().unwrap_or([0; 8])) ^ COMMAS;
        let nonzero = ((x & LOW7).wrapping_add(LOW7) | x) & HIGH;
        count += 8 - u64::from(nonzero.count_ones());
    }
    count + words.remainder().iter().filter(|&&b| b == b',').count() as u64
}

/// The `"edges":[` key and the first edges (as many as `sink` holds), on
/// the nodes thread.
fn read_first_edges<R: Read>(r: &mut Bytes<R>, meta: &Meta, sink: &mut EdgeSink) -> Result<()> {
    r.expect(b',', "after \"nodes\"")?;
    r.expect(b'"', "before \"edges\"")?;
    let mut key = Vec::new();
    r.read_string_into(&mut key, 64)?;
    if key != b"edges" {
        return corrupt("\"edges\" does not follow \"nodes\"");
    }
    r.expect(b':', "after a key")?;
    r.expect(b'[', "to open \"edges\"")?;
    let records = sink.capacity();
    read_edges_upto(r, meta, sink, Some(records as u64))?;
    if sink.len != records {
        return corrupt("\"edges\" ends early");
    }
    // The comma after them is where the other thread starts.
    r.expect(b',', "inside \"edges\"")
}

/// Offset of the first `byte` from the current position, if any.
fn find_byte(file: &mut File, byte: u8) -> Result<Option<u64>> {
    let mut buf = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if let Some(i) = memchr::memchr(byte, &buf[..n]) {
            return Ok(Some(offset + i as u64));
        }
        offset += n as u64;
    }
}

fn read_nodes<R: Read>(r: &mut Bytes<R>, snap: &mut RawSnapshot, max_numbers: u64) -> Result<()> {
    let fields = &snap.meta.node_fields;
    let pos = |name: &str| fields.iter().position(|f| f == name);
    // Required fields are checked in parse_meta.
    let at = NodeAt {
        ty: pos("type").unwrap_or(0),
        name: pos("name").unwrap_or(0),
        id: pos("id").unwrap_or(0),
        self_size: pos("self_size").unwrap_or(0),
        edge_count: pos("edge_count").unwrap_or(0),
        detachedness: pos("detachedness"),
    };
    let width = fields.len();
    let has_detachedness = at.detachedness.is_some();
    let expect = snap.meta.node_count.min(max_numbers / width as u64) as usize;
    snap.node_type.reserve_exact(expect);
    snap.node_name.reserve_exact(expect);
    snap.node_id.reserve_exact(expect);
    snap.self_size.reserve_exact(expect);
    snap.first_edge.reserve_exact(expect + 1);
    snap.first_edge.push(0);
    if has_detachedness {
        snap.detachedness.reserve_exact(expect);
    }
    let type_count = snap.meta.node_types.len() as u64;
    let mut edges_so_far: u64 = 0;
    let node_type = &mut snap.node_type;
    let node_name = &mut snap.node_name;
    let node_id = &mut snap.node_id;
    let self_size = &mut snap.self_size;
    let first_edge = &mut snap.first_edge;
    let detachedness = &mut snap.detachedness;
    let mut first = true;
    let mut rec = vec![0u64; width];
    while r.next_record(&mut first, &mut rec, "nodes", "node_fields")? {
        let t = rec[at.ty];
        if t >= type_count {
            return corrupt(format!("node type {t} not in meta.node_types"));
        }
        node_type.push(t as u8);
        node_name.push(rec[at.name] as u32);
        node_id.push(rec[at.id] as u32);
        // DevTools keeps these in a Uint32Array: wrap the same way.
        self_size.push(rec[at.self_size] as u32);
        edges_so_far += rec[at.edge_count];
        if edges_so_far > u64::from(u32::MAX) {
            return corrupt("more than 2^32 edges");
        }
        first_edge.push(edges_so_far as u32);
        if let Some(d) = at.detachedness {
            detachedness.push((rec[d] & 3) as u8);
        }
    }
    let n = snap.node_type.len();
    if n as u64 != snap.meta.node_count {
        return corrupt(format!("\"nodes\" holds {n} nodes, the header says {}", snap.meta.node_count));
    }
    if n >= u32::MAX as usize / width.max(1) {
        return corrupt("too many nodes");
    }
    Ok(())
}

/// The final edge columns, sized from the header (zeroed pages cost nothing
/// until written) and cut to the edges read.
struct EdgeColumns {
    ty: Vec<u8>,
    name: Vec<u32>,
    to: Vec<u32>,
}

impl EdgeColumns {
    fn zeroed(meta: &Meta, max_numbers: u64) -> EdgeColumns {
        let width = meta.edge_fields.len().max(1) as u64;
        let n = meta.edge_count.min(max_numbers / width) as usize;
        EdgeColumns { ty: vec![0; n], name: vec![0; n], to: vec![0; n] }
    }

    fn sink(&mut self) -> EdgeSink<'_> {
        EdgeSink { ty: &mut self.ty, name: &mut self.name, to: &mut self.to, len: 0 }
    }

    fn into_snapshot(mut self, snap: &mut RawSnapshot, count: usize) {
        self.ty.truncate(count);
        self.name.truncate(count);
        self.to.truncate(count);
        snap.edge_type = self.ty;
        snap.edge_name = self.name;
        snap.edge_to = self.to;
    }
}

/// A range of the edge columns being filled from its start: all of them, or
/// one reader thread's part.
struct EdgeSink<'a> {
    ty: &'a mut [u8],
    name: &'a mut [u32],
    to: &'a mut [u32],
    /// Edges written.
    len: usize,
}

impl<'a> EdgeSink<'a> {
    fn capacity(&self) -> usize {
        self.to.len()
    }

    /// Two sinks: the first `mid` edges and the rest (of an unwritten sink).
    fn split_at(self, mid: usize) -> (EdgeSink<'a>, EdgeSink<'a>) {
        let (ty, ty_rest) = self.ty.split_at_mut(mid);
        let (name, name_rest) = self.name.split_at_mut(mid);
        let (to, to_rest) = self.to.split_at_mut(mid);
        (EdgeSink { ty, name, to, len: 0 }, EdgeSink { ty: ty_rest, name: name_rest, to: to_rest, len: 0 })
    }

    #[inline]
    fn push(&mut self, ty: u8, name: u32, to: u32) -> Result<()> {
        let i = self.len;
        if i == self.to.len() {
            return corrupt("\"edges\" holds more edges than the header's edge_count");
        }
        self.ty[i] = ty;
        self.name[i] = name;
        self.to[i] = to;
        self.len = i + 1;
        Ok(())
    }
}

/// The whole `edges` array (its `[` read) into `snap`'s edge columns.
fn read_all_edges<R: Read>(r: &mut Bytes<R>, snap: &mut RawSnapshot, max_numbers: u64) -> Result<()> {
    let mut columns = EdgeColumns::zeroed(&snap.meta, max_numbers);
    let mut sink = columns.sink();
    read_edges_upto(r, &snap.meta, &mut sink, None)?;
    let count = sink.len;
    columns.into_snapshot(snap, count);
    Ok(())
}

/// Edges into `sink`: up to the array's `]`, or with `records` only that
/// many (no `]` after them).
fn read_edges_upto<R: Read>(r: &mut Bytes<R>, meta: &Meta, sink: &mut EdgeSink, records: Option<u64>) -> Result<()> {
    let fields = &meta.edge_fields;
    let pos = |name: &str| fields.iter().position(|f| f == name).unwrap_or(0);
    // Required fields are checked in parse_meta.
    let (at_type, at_name, at_to) = (pos("type"), pos("name_or_index"), pos("to_node"));
    let width = fields.len();
    // The nodes may be read on another thread at the same time: check against
    // the header's counts; `validate` compares with the nodes later.
    let node_width = meta.node_fields.len() as u64;
    let limit = meta.node_count.saturating_mul(node_width).min(u64::from(u32::MAX));
    // `to_node / node_width` by multiplication: exact for every value below 2^32.
    let reciprocal = u64::MAX / node_width + 1;
    let type_count = meta.edge_types.len() as u64;
    let mut first = true;
    let mut rec = vec![0u64; width];
    let mut left = records.unwrap_or(u64::MAX);
    while left > 0 {
        left -= 1;
        if !r.next_record(&mut first, &mut rec, "edges", "edge_fields")? {
            break;
        }
        let t = rec[at_type];
        if t >= type_count {
            return corrupt(format!("edge type {t} not in meta.edge_types"));
        }
        let to = rec[at_to];
        let ordinal = ((u128::from(to) * u128::from(reciprocal)) >> 64) as u64;
        if to >= limit || ordinal * node_width != to {
            return corrupt(format!("edge points to {to}, not a node"));
        }
        sink.push(t as u8, rec[at_name] as u32, ordinal as u32)?;
    }
    Ok(())
}

fn read_strings<R: Read>(r: &mut Bytes<R>, strings: &mut Strings) -> Result<()> {
    loop {
        match r.skip_ws()? {
            None => return Err(ReadError::Truncated("file ends inside \"strings\"".into())),
            Some(b']') if strings.is_empty() => {
                r.pos += 1;
                return Ok(());
            }
            Some(b'"') => {}
            Some(b) => return corrupt(format!("expected a string in \"strings\", found '{}'", (b as char).escape_default())),
        }
        match string_fast(&r.buf[r.pos..r.end], strings) {
            Some((used, more)) => {
                r.pos += used;
                if more {
                    continue;
                }
                strings.shrink();
                return Ok(());
            }
            None => r.pos += 1,
        }
        let start = strings.begin();
        r.read_string_into(strings.arena_mut(), usize::MAX)?;
        strings.finish(start);
        match r.skip_ws()? {
            None => return Err(ReadError::Truncated("file ends inside \"strings\"".into())),
            Some(b',') => r.pos += 1,
            Some(b']') => {
                r.pos += 1;
                strings.shrink();
                return Ok(());
            }
            Some(b) => return corrupt(format!("expected ',' or ']' in \"strings\", found '{}'", (b as char).escape_default())),
        }
    }
}

/// One string of `strings` and its separator from the start of `buf` (at
/// the opening quote), when all of it is there and it has no escapes: the
/// bytes used and whether more strings follow. Anything else is left to the
/// general path.
#[inline]
fn string_fast(buf: &[u8], strings: &mut Strings) -> Option<(usize, bool)> {
    let close = 1 + memchr::memchr2(b'"', b'\\', buf.get(1..)?)?;
    if buf[close] != b'"' {
        return None;
    }
    let mut j = close + 1;
    while matches!(buf.get(j)?, b' ' | b'\n' | b'\r' | b'\t') {
        j += 1;
    }
    let more = match buf[j] {
        b',' => true,
        b']' => false,
        _ => return None,
    };
    strings.push_bytes(&buf[1..close]);
    Some((j + 1, more))
}

/// The `locations` array (its `[` read): (node, script, line, column) for
/// each record, when meta names those fields.
fn read_locations<R: Read>(r: &mut Bytes<R>, snap: &mut RawSnapshot) -> Result<()> {
    let f = &snap.meta.location_fields;
    let pos = |name: &str| f.iter().position(|x| x == name);
    let wanted = (pos("object_index"), pos("script_id"), pos("line"), pos("column"));
    let node_width = snap.meta.node_fields.len().max(1) as u32;
    let node_count = snap.meta.node_count;
    let mut rec = vec![0u64; f.len().max(1)];
    let mut first = true;
    while r.next_record(&mut first, &mut rec, "locations", "location_fields")? {
        let (Some(obj), Some(script), Some(line), Some(col)) = wanted else {
            continue;
        };
        let index = rec[obj] as u32;
        if index % node_width != 0 || u64::from(index / node_width) >= node_count {
            return corrupt("a location points to no node");
        }
        snap.locations.push([index / node_width, rec[script] as u32, rec[line] as u32, rec[col] as u32]);
    }
    Ok(())
}

fn validate(snap: &RawSnapshot) -> Result<()> {
    let n = snap.node_type.len();
    if n == 0 {
        return corrupt("no nodes");
    }
    let total = u64::from(*snap.first_edge.last().unwrap_or(&0));
    if snap.edge_to.len() as u64 != total {
        return corrupt(format!("\"edges\" holds {} edges, the nodes' edge counts add up to {total}", snap.edge_to.len()));
    }
    let strings = snap.strings.len() as u32;
    if let Some(bad) = snap.node_name.iter().find(|&&s| s >= strings) {
        return corrupt(format!("node name {bad} is not in \"strings\""));
    }
    let t = &snap.meta.edge_types;
    let numeric: Vec<bool> = t.iter().map(|name| name == "element" || name == "hidden").collect();
    for (i, &name) in snap.edge_name.iter().enumerate() {
        if !numeric[snap.edge_type[i] as usize] && name >= strings {
            return corrupt(format!("edge name {name} is not in \"strings\""));
        }
    }
    let width = snap.meta.node_fields.len() as u64;
    let root = snap.meta.root_index;
    if root % width != 0 || !(root / width == 0 || root / width == n as u64 - 1) {
        return corrupt("root_index is neither the first nor the last node");
    }
    Ok(())
}


/// Bytes `record_fast` may read for one value: up to 19 digits, a `\n,`
/// before them, and room for an 8-byte load after.
const FAST_FIELD: usize = 22;

/// One record of `out.len()` integers parsed from the start of `buf`, in
/// V8's layout (a `,` before every value but the array's first, a `\n`
/// before some commas): the bytes used, or `None` for anything else, which
/// `next_uint` then parses or reports. `buf` must hold at least
/// `out.len() * FAST_FIELD + 8` bytes.
#[inline(always)]
fn record_fast(buf: &[u8], first: bool, out: &mut [u64]) -> Option<usize> {
    let mut i = 0;
    for (k, slot) in out.iter_mut().enumerate() {
        if k > 0 || !first {
            match buf[i] {
                b',' => i += 1,
                b'\n' if buf[i + 1] == b',' => i += 2,
                _ => return None,
            }
        }
        let (end, v) = digits_swar(buf, i)?;
        *slot = v;
        i = end;
    }
    Some(i)
}

/// The non-empty digit run at `buf[i..]` (at most 19 digits) read eight
/// bytes at a time: where it ends and its value. `buf` must hold 8 bytes
/// from `i` on.
#[inline(always)]
fn digits_swar(buf: &[u8], i: usize) -> Option<(usize, u64)> {
    const ZEROS: u64 = u64::from_le_bytes([b'0'; 8]);
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let word = u64::from_le_bytes(buf[i..i + 8].try_into().ok()?);
    // A byte of `x` is 0..=9 exactly for a digit; adding 0x76 sets its high
    // bit for anything above 9, and a byte below '0' wraps to a high bit.
    // Carries and borrows only run towards later bytes, so the first
    // flagged byte is the first non-digit.
    let x = word.wrapping_sub(ZEROS);
    let non_digit = (x | x.wrapping_add(0x7676_7676_7676_7676)) & HIGH;
    if non_digit == 0 {
        let (end, v) = digit_run(buf, i + 8, parse8(word));
        return (end - i <= 19).then_some((end, v));
    }
    let len = (non_digit.trailing_zeros() / 8) as usize;
    if len == 0 {
        return None;
    }
    // Left-pad with zero bytes to eight digits.
    Some((i + len, parse8(word << (8 * (8 - len)))))
}

/// Eight ASCII digits (or zero bytes as leading zeros), first digit in the
/// lowest byte, to their value: pairs, then quads, then the whole.
#[inline(always)]
fn parse8(word: u64) -> u64 {
    let w = word & 0x0f0f_0f0f_0f0f_0f0f;
    let w = (w.wrapping_mul(10) + (w >> 8)) & 0x00ff_00ff_00ff_00ff;
    let w = (w.wrapping_mul(100) + (w >> 16)) & 0x0000_ffff_0000_ffff;
    (w.wrapping_mul(10000) + (w >> 32)) & 0xffff_ffff
}

/// The decimal digits of `buf` from `i` on, accumulated onto `v`: where the
/// run ends and the value. Wrapping, since callers reject runs of more than
/// 19 digits. The hot loop of the reader, shared by its two number scanners.
#[inline(always)]
fn digit_run(buf: &[u8], mut i: usize, mut v: u64) -> (usize, u64) {
    while i < buf.len() {
        let d = buf[i].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        v = v.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    (i, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    /// A snapshot big enough that the plain-file reader splits `edges`
    /// between its threads; `sep` goes after each record, as V8's newlines.
    fn big_snapshot(nodes: usize, edges_per_node: usize, sep: &str) -> String {
        let mut s = String::new();
        let edge_count = nodes * edges_per_node;
        write!(
            s,
            r#"{{"snapshot":{{"meta":{{"node_fields":["type","name","id","self_size","edge_count","trace_node_id","detachedness"],"node_types":[["hidden","array","string","object"],"string","number","number","number","number","number"],"edge_fields":["type","name_or_index","to_node"],"edge_types":[["context","element","property","internal","hidden","shortcut","weak"],"string_or_number","node"],"location_fields":["object_index","script_id","line","column"]}},"node_count":{nodes},"edge_count":{edge_count},"trace_function_count":0,"root_index":0}},"nodes":["#
        )
        .unwrap();
        for i in 0..nodes {
            let c = if i == 0 { "" } else { "," };
            write!(s, "{c}{},{},{},{},{edges_per_node},0,0{sep}", i % 4, i % 3, i * 2 + 1, i % 1000).unwrap();
        }
        s.push_str("],\n\"edges\":[");
        let mut x = 12345u64;
        for e in 0..edge_count {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let c = if e == 0 { "" } else { "," };
            let to = (x >> 33) as usize % nodes * 7;
            write!(s, "{c}{},{},{to}{sep}", (x >> 20) % 6, (x >> 40) % 3).unwrap();
        }
        s.push_str("],\n\"locations\":[0,1,2,3],\n\"strings\":[\"a\",\"b\",\"c\"]}");
        s
    }

    fn same(a: &RawSnapshot, b: &RawSnapshot) {
        assert_eq!(a.node_type, b.node_type);
        assert_eq!(a.node_name, b.node_name);
        assert_eq!(a.node_id, b.node_id);
        assert_eq!(a.self_size, b.self_size);
        assert_eq!(a.first_edge, b.first_edge);
        assert_eq!(a.edge_type, b.edge_type);
        assert_eq!(a.edge_name, b.edge_name);
        assert_eq!(a.edge_to, b.edge_to);
        assert_eq!(a.locations, b.locations);
        assert_eq!(a.strings.len(), b.strings.len());
    }

    #[test]
    fn split_edges_read_as_one_stream() {
        for (sep, edges_per_node) in [("\n", 12), ("", 14), (" ", 16)] {
            let text = big_snapshot(100_000, edges_per_node, sep);
            let path = std::env::temp_dir().join(format!("memguard-split-{}-{edges_per_node}.heapsnapshot", std::process::id()));
            std::fs::write(&path, &text).unwrap();
            let nodes_at = text.find("\"nodes\":").unwrap() as u64 + 8;
            let after_nodes = text[nodes_at as usize..].find(']').unwrap() as u64 + nodes_at + 1;
            let whole = read_snapshot(text.as_bytes(), u64::MAX).unwrap();
            let split_at = edges_split(&path, nodes_at, after_nodes, &whole.meta);
            let split = read_file(&path, None);
            let _ = std::fs::remove_file(&path);
            assert!(split_at.unwrap().is_some(), "a file this size is split");
            assert_eq!(whole.edge_to.len(), 100_000 * edges_per_node);
            same(&split.unwrap(), &whole);
        }
    }

    #[test]
    fn swar_digits_match_a_plain_parse() {
        let mut x = 99u64;
        for len in 1..=19usize {
            for _ in 0..200 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let digits: String = (0..len).map(|k| char::from(b'0' + ((x >> (k * 3 % 60)) % 10) as u8)).collect();
                for tail in [",", "\n,", "]", " "] {
                    let text = format!("{digits}{tail}{}", "0".repeat(FAST_FIELD));
                    let (end, v) = digits_swar(text.as_bytes(), 0).unwrap();
                    assert_eq!((end, v), (len, digits.parse::<u64>().unwrap()), "{digits}{tail}");
                }
            }
        }
        let pad = " ".repeat(FAST_FIELD);
        assert_eq!(digits_swar(format!("{}1{pad}", "9".repeat(19)).as_bytes(), 0), None, "20 digits");
        assert_eq!(digits_swar(format!(",1{pad}").as_bytes(), 0), None, "no digit");
        let mut rec = [0u64; 3];
        let text = format!("\n,12,3456789012,7\n,1{pad}{pad}{pad}");
        assert_eq!(record_fast(text.as_bytes(), false, &mut rec), Some(17));
        assert_eq!(rec, [12, 3456789012, 7]);
        let text = format!("12, 3,7{pad}{pad}{pad}");
        assert_eq!(record_fast(text.as_bytes(), true, &mut rec), None, "a space is left to next_uint");
    }

    #[test]
    fn split_finds_a_record_boundary() {
        let text = big_snapshot(100_000, 12, "\n");
        let nodes_at = text.find("\"nodes\":").unwrap() as u64 + 8;
        let after_nodes = text[nodes_at as usize..].find(']').unwrap() as u64 + nodes_at + 1;
        let path = std::env::temp_dir().join(format!("memguard-split-at-{}.heapsnapshot", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let meta = read_snapshot(text.as_bytes(), u64::MAX).unwrap().meta;
        let found = edges_split(&path, nodes_at, after_nodes, &meta);
        let _ = std::fs::remove_file(&path);
        let (records, resume_at) = found.unwrap().expect("a file this size is split");
        let edges_at = text.find("\"edges\":[").unwrap() + 9;
        let before = &text[edges_at..resume_at as usize];
        assert!(before.ends_with(','));
        assert_eq!(count_commas(before.as_bytes()), records * 3);
        assert_eq!(before.bytes().filter(|&b| b == b',').count() as u64, records * 3);
    }
}
