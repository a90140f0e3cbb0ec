//! The background writer: one thread per process that turns snapshot chunks
//! into gzip files and writes manifests. It never calls V8; the isolate
//! threads hand it plain bytes through bounded channels, so compression runs
//! in parallel with V8's serialization and never on the JS thread.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use flate2::write::GzEncoder;
use flate2::Compression;
use parking_lot::Mutex;

use crate::bundle::Bundle;
use crate::disk::{self, megabytes, BundleUsage};
use crate::log;
use crate::manifest::FileRecord;
use crate::selfcost::{self, Role};

/// How many chunks may wait for the writer. With V8's chunks at 64 KiB this
/// caps the memory in flight at ~4 MiB, which matters near the heap limit.
const CHUNK_QUEUE: usize = 64;
/// gzip level 3: measured on a 390 MB snapshot with zlib-rs, it shrinks
/// heap snapshot JSON to 0.14× at ~340 MB/s — ten times faster than V8
/// serializes, so the writer never holds V8 back. (Level 1: 0.21× at
/// 600 MB/s; level 6: 0.14× at 120 MB/s.)
const LEVEL: u32 = 3;

enum Job {
    Snapshot {
        bundle: Bundle,
        name: String,
        /// Expected compressed size: room is made for it before it starts.
        expected: u64,
        chunks: Receiver<Chunk>,
        done: Sender<io::Result<FileRecord>>,
    },
    /// `done`: None when nobody waits (a failure is then logged here).
    Atomic { bundle: Bundle, name: String, bytes: Vec<u8>, done: Option<Sender<io::Result<()>>> },
    /// Removes a bundle after every job queued before this one.
    Remove { bundle: Bundle, done: Sender<io::Result<()>> },
    /// Anything else that must stay off the JS thread (starting the uploader).
    Run(Box<dyn FnOnce() + Send>),
}

enum Chunk {
    Data(Vec<u8>),
    End,
}

pub struct Writer {
    jobs: Sender<Job>,
}

static WRITER: OnceLock<Option<Writer>> = OnceLock::new();

/// `MEMGUARD_MAX_DISK` per bundle root (threads may configure different
/// roots; for the same root the smallest cap wins). A cap is a size, or the
/// default, `auto`, resolved when it is enforced (see `disk::auto_budget`).
static DISK_BUDGETS: Mutex<Vec<(PathBuf, Cap)>> = Mutex::new(Vec::new());

#[derive(Clone, Copy, Default)]
struct Cap {
    bytes: Option<u64>,
    /// `auto` was asked for, by a thread with this heap limit (the largest wins).
    auto_heap_limit: Option<u64>,
}

/// Caps the total size of the bundles under `root` at `max_bytes`: from now
/// on the writer removes the oldest bundles there to stay under it (see
/// `disk`). Cheap; called once per guarded thread at start.
pub fn limit_disk(root: &Path, max_bytes: u64) {
    with_cap(root, |cap| cap.bytes = Some(cap.bytes.map_or(max_bytes, |b| b.min(max_bytes))));
}

/// Like [`limit_disk`] with the default budget (`auto`), which depends on the free
/// space and on what the bundles already take: worked out on the writer
/// thread when it is enforced, so nothing is scanned on the JS thread.
pub fn limit_disk_auto(root: &Path, heap_limit: u64) {
    with_cap(root, |cap| cap.auto_heap_limit = Some(cap.auto_heap_limit.map_or(heap_limit, |h| h.max(heap_limit))));
}

fn with_cap(root: &Path, change: impl FnOnce(&mut Cap)) {
    let mut budgets = DISK_BUDGETS.lock();
    let index = match budgets.iter().position(|(r, _)| r == root) {
        Some(i) => i,
        None => {
            budgets.push((root.to_path_buf(), Cap::default()));
            budgets.len() - 1
        }
    };
    change(&mut budgets[index].1);
}

fn disk_budget(root: &Path) -> Option<u64> {
    let cap = DISK_BUDGETS.lock().iter().find(|(r, _)| r == root).map(|(_, cap)| *cap)?;
    let auto = cap.auto_heap_limit.map(|heap_limit| disk::auto_budget(root, heap_limit));
    match (cap.bytes, auto) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Writer {
    /// The process's writer, started on first use; `None` if the thread could
    /// not be spawned (then captures fail with a warning, the host runs on).
    pub fn global() -> Option<&'static Writer> {
        WRITER
            .get_or_init(|| {
                let (jobs, rx) = bounded::<Job>(16);
                std::thread::Builder::new()
                    .name("memguard-writer".into())
                    .spawn(move || {
                        let mut ours = Ours::default();
                        for job in rx {
                            run(job, &mut ours);
                            selfcost::checkpoint(Role::Writer);
                        }
                    })
                    .ok()
                    .map(|_| Writer { jobs })
            })
            .as_ref()
    }

    /// Runs `task` on the writer thread, after the files queued before it;
    /// `false` (and not run) if the queue is full.
    pub fn run_later(&self, task: impl FnOnce() + Send + 'static) -> bool {
        self.jobs.try_send(Job::Run(Box::new(task))).is_ok()
    }

    /// Starts `bundle/name`, a gzip file fed chunk by chunk through the sink.
    pub fn start_file(&self, bundle: &Bundle, name: &str) -> io::Result<Sink> {
        self.start_file_sized(bundle, name, 0)
    }

    /// Like `start_file`, for a file expected to take about `expected` bytes
    /// on disk: under a disk budget, room is made for that much first.
    pub fn start_file_sized(&self, bundle: &Bundle, name: &str, expected: u64) -> io::Result<Sink> {
        let (chunks, chunk_rx) = bounded(CHUNK_QUEUE);
        let (done, done_rx) = bounded(1);
        let job = Job::Snapshot { bundle: bundle.clone(), name: name.to_string(), expected, chunks: chunk_rx, done };
        self.jobs.send(job).map_err(|_| writer_gone())?;
        Ok(Sink { chunks, done: done_rx })
    }

    /// Writes `bundle/name` atomically and waits until it is on disk.
    pub fn write_atomic(&self, bundle: &Bundle, name: &str, bytes: Vec<u8>) -> io::Result<()> {
        let (done, done_rx) = bounded(1);
        self.jobs
            .send(Job::Atomic { bundle: bundle.clone(), name: name.to_string(), bytes, done: Some(done) })
            .map_err(|_| writer_gone())?;
        done_rx.recv().unwrap_or_else(|_| Err(writer_gone()))
    }

    /// Like `write_atomic`, without waiting: for writes the JS thread need
    /// not pay for (the first `summary.json`, at start-up). A failure is
    /// logged by the writer.
    pub fn queue_atomic(&self, bundle: &Bundle, name: &str, bytes: Vec<u8>) -> io::Result<()> {
        self.jobs
            .send(Job::Atomic { bundle: bundle.clone(), name: name.to_string(), bytes, done: None })
            .map_err(|_| writer_gone())
    }

    /// Removes `bundle` once the writes queued for it are done (a queued
    /// write after a removal would make the directory again), and waits.
    pub fn remove_bundle(&self, bundle: &Bundle) -> io::Result<()> {
        let (done, done_rx) = bounded(1);
        self.jobs.send(Job::Remove { bundle: bundle.clone(), done }).map_err(|_| writer_gone())?;
        done_rx.recv().unwrap_or_else(|_| Err(writer_gone()))
    }
}

fn writer_gone() -> io::Error {
    io::Error::other("memguard's writer thread is not running")
}

/// The producer's end of one file being written.
pub struct Sink {
    chunks: Sender<Chunk>,
    done: Receiver<io::Result<FileRecord>>,
}

impl Sink {
    /// Hands a chunk over (copying it: V8 reuses its buffer). Blocks while the
    /// queue is full. `false` once the writer has given up on this file (disk
    /// full…): the producer should stop.
    pub fn write(&self, data: &[u8]) -> bool {
        self.chunks.send(Chunk::Data(data.to_vec())).is_ok()
    }

    /// Ends the file and waits for it to be complete on disk.
    pub fn finish(self) -> io::Result<FileRecord> {
        let _ = self.chunks.send(Chunk::End);
        self.done.recv().unwrap_or_else(|_| Err(writer_gone()))
    }

    /// Gives up: the partial file is removed. Dropping the sink does the same.
    pub fn abort(self) {
        drop(self.chunks);
        let _ = self.done.recv();
    }
}

/// The bundles this process has written into: never removed by the budget.
#[derive(Default)]
struct Ours(HashSet<PathBuf>);

impl Ours {
    fn protects(&self, root: &Path, bundle: &BundleUsage) -> bool {
        self.0.contains(&root.join(&bundle.name)) || disk::owner_alive(&bundle.name)
    }

    /// Brings the bundles under `bundle.root` within their budget, if any.
    fn trim(&self, bundle: &Bundle) {
        if let Some(budget) = disk_budget(&bundle.root) {
            let _ = disk::enforce(&bundle.root, budget, 0, |b| self.protects(&bundle.root, b));
        }
    }
}

fn run(job: Job, ours: &mut Ours) {
    match job {
        Job::Snapshot { bundle, name, expected, chunks, done } => {
            ours.0.insert(bundle.path());
            let result = write_gzip(&bundle, &name, expected, &chunks, ours);
            // Within the budget before the caller hears the file is done.
            ours.trim(&bundle);
            let _ = done.send(result);
        }
        Job::Atomic { bundle, name, bytes, done } => {
            ours.0.insert(bundle.path());
            let result = bundle.ensure().and_then(|dir| dir.write_atomic(&name, &bytes));
            match done {
                Some(done) => {
                    let _ = done.send(result);
                }
                None => {
                    if let Err(e) = result {
                        bundle.warn_unless_retired(&format!("cannot write {name} in {}: {e}", bundle.path().display()));
                    }
                }
            }
            // After answering: the JS thread waits for the answer, not for this.
            ours.trim(&bundle);
        }
        Job::Remove { bundle, done } => {
            ours.0.remove(&bundle.path());
            let _ = done.send(bundle.remove());
        }
        Job::Run(task) => task(),
    }
}

/// The snapshot file on disk, its bytes counted against the disk budget.
struct BudgetedFile<'a> {
    file: File,
    written: u64,
    budget: Option<Budget<'a>>,
}

struct Budget<'a> {
    bundle: &'a Bundle,
    ours: &'a Ours,
    max: u64,
    expected: u64,
    /// The size this file may reach with the other bundles as last measured.
    allowance: u64,
    /// Once refused, always refused: no rescans while the encoder winds down.
    refused: bool,
}

impl<'a> Budget<'a> {
    /// Makes room for `expected` bytes before the file starts.
    fn start(bundle: &'a Bundle, ours: &'a Ours, expected: u64) -> Option<Self> {
        let max = disk_budget(&bundle.root)?;
        let mut budget = Budget { bundle, ours, max, expected, allowance: 0, refused: false };
        budget.make_room(0, expected)?;
        Some(budget)
    }

    /// Removes old bundles so that this file can grow from `written` (already
    /// on disk, so part of the listing) to `written + more` bytes; updates
    /// the allowance. `None` if the bundles cannot be listed.
    fn make_room(&mut self, written: u64, more: u64) -> Option<()> {
        let root = &self.bundle.root;
        let total = disk::enforce(root, self.max, more, |b| self.ours.protects(root, b)).ok()?;
        self.allowance = self.max.saturating_sub(total.saturating_sub(written));
        Some(())
    }

    /// Whether this file may grow to `wanted` bytes, making room if needed.
    fn admit(&mut self, written: u64, wanted: u64) -> io::Result<()> {
        if wanted <= self.allowance {
            return Ok(());
        }
        if !self.refused {
            // Room for the rest of the estimate at once keeps rescans rare;
            // failing that, room for this write alone.
            let rest = self.expected.saturating_sub(written).max(wanted - written);
            for more in [rest, wanted - written] {
                if self.make_room(written, more).is_none() {
                    return Ok(()); // cannot measure: the budget is best-effort
                }
                if wanted <= self.allowance {
                    return Ok(());
                }
            }
            self.refused = true;
        }
        Err(io::Error::other(format!(
            "the bundles in {} would exceed MEMGUARD_MAX_DISK ({}) and no older bundle is left to remove \
             ({} of the snapshot written)",
            self.bundle.root.display(),
            megabytes(self.max),
            megabytes(written)
        )))
    }
}

impl Write for BudgetedFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(budget) = &mut self.budget {
            budget.admit(self.written, self.written + buf.len() as u64)?;
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Writes to `name.partial`, renamed to `name` only when complete: a file with
/// the final name is always a whole, valid gzip stream. Any failure (disk
/// full, budget exceeded) removes the partial file.
fn write_gzip(bundle: &Bundle, name: &str, expected: u64, chunks: &Receiver<Chunk>, ours: &Ours) -> io::Result<FileRecord> {
    let started = Instant::now();
    let dir = bundle.ensure()?;
    let partial = format!("{name}.partial");
    let budget = Budget::start(bundle, ours, expected);
    let result = (|| {
        let file = BudgetedFile { file: dir.create_file(&partial)?, written: 0, budget };
        let mut gz = GzEncoder::new(io::BufWriter::with_capacity(1 << 20, file), Compression::new(LEVEL));
        let mut raw = 0u64;
        loop {
            match chunks.recv() {
                Ok(Chunk::Data(data)) => {
                    raw += data.len() as u64;
                    gz.write_all(&data)?;
                }
                Ok(Chunk::End) => break,
                Err(_) => return Err(io::Error::other("the snapshot was abandoned before it ended")),
            }
        }
        let file = gz.finish()?.into_inner().map_err(|e| e.into_error())?.file;
        file.sync_data()?;
        let bytes = file.metadata()?.len();
        dir.rename(&partial, name)?;
        Ok(FileRecord { name: name.to_string(), bytes, uncompressed_bytes: raw, millis: started.elapsed().as_millis() as u64 })
    })();
    result.map_err(|e| {
        // The encoder and its file are closed by now; what is left goes.
        match dir.remove_file(&partial) {
            Ok(()) => io::Error::new(e.kind(), format!("{e}; removed the partial file")),
            Err(gone) if gone.kind() == io::ErrorKind::NotFound => e,
            Err(stuck) => {
                log::warn_once(&format!("could not remove {}: {stuck}", bundle.path().join(&partial).display()));
                e
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;
    use std::fs;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn streams_chunks_into_a_gzip_file() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = Bundle::new(tmp.path(), "b");
        let sink = Writer::global().unwrap().start_file(&bundle, "heap-1.heapsnapshot.gz").unwrap();
        let mut expected = Vec::new();
        for i in 0..1000 {
            let chunk = format!("{i},0,1,2,3,").repeat(100);
            expected.extend_from_slice(chunk.as_bytes());
            assert!(sink.write(chunk.as_bytes()));
        }
        let rec = sink.finish().unwrap();
        let path = bundle.path().join("heap-1.heapsnapshot.gz");
        assert_eq!(rec.bytes, fs::metadata(&path).unwrap().len());
        assert_eq!(rec.uncompressed_bytes, expected.len() as u64);
        assert!(rec.bytes * 5 < rec.uncompressed_bytes, "compresses: {} -> {}", rec.uncompressed_bytes, rec.bytes);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let mut out = Vec::new();
        MultiGzDecoder::new(fs::File::open(&path).unwrap()).read_to_end(&mut out).unwrap();
        assert_eq!(out, expected);
    }

    #[test]
    fn abort_leaves_no_file() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = Bundle::new(tmp.path(), "b");
        let sink = Writer::global().unwrap().start_file(&bundle, "x.gz").unwrap();
        assert!(sink.write(b"partial"));
        sink.abort();
        assert_eq!(fs::read_dir(bundle.path()).unwrap().count(), 0);
    }

    #[test]
    fn unwritable_bundle_reports_error_and_sink_stops() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        fs::write(&file, b"").unwrap();
        let bundle = Bundle::new(file, "b");
        let sink = Writer::global().unwrap().start_file(&bundle, "x.gz").unwrap();
        // The writer drops its end once it fails: writes start to fail.
        let mut refused = false;
        for _ in 0..10_000 {
            if !sink.write(&[0; 1024]) {
                refused = true;
                break;
            }
        }
        assert!(refused);
        assert!(sink.finish().is_err());
    }

    /// Bytes gzip cannot shrink, so sizes on disk are predictable.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// An old bundle of a process that is gone (pid above the kernel's max).
    fn old_bundle(root: &std::path::Path, second: u32, bytes: usize) -> String {
        let name = format!("20200101-0000{second:02}-4194305");
        fs::create_dir_all(root.join(&name)).unwrap();
        fs::write(root.join(&name).join("heap-1.heapsnapshot.gz"), vec![0u8; bytes]).unwrap();
        name
    }

    fn names(root: &std::path::Path) -> Vec<String> {
        let mut n: Vec<_> = fs::read_dir(root).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        n.sort();
        n
    }

    fn stream(bundle: &Bundle, name: &str, expected: u64, data: &[u8]) -> io::Result<FileRecord> {
        let sink = Writer::global().unwrap().start_file_sized(bundle, name, expected).unwrap();
        for chunk in data.chunks(64 << 10) {
            if !sink.write(chunk) {
                break;
            }
        }
        sink.finish()
    }

    #[test]
    fn makes_room_by_removing_the_oldest_bundles_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("bundles");
        let a = old_bundle(&root, 1, 3 << 20);
        let b = old_bundle(&root, 2, 3 << 20);
        let c = old_bundle(&root, 3, 3 << 20);
        fs::write(root.join("notes.txt"), vec![0u8; 5 << 20]).unwrap(); // not a bundle: not counted, kept
        limit_disk(&root, 10 << 20);
        let bundle = Bundle::new(root.clone(), crate::bundle::bundle_name(chrono::Utc::now(), std::process::id(), 0));
        // 9 MB of old bundles + ~4 MB expected > 10 MB: the oldest one goes.
        let rec = stream(&bundle, "heap-1.heapsnapshot.gz", 4 << 20, &noise(3 << 20, 1)).unwrap();
        assert!(rec.bytes > 3 << 20);
        let mut want = vec![b.clone(), c.clone(), bundle.name.clone(), "notes.txt".into()];
        want.sort();
        assert_eq!(names(&root), want);
        assert!(!names(&root).contains(&a));
        let total: u64 = disk::list_bundles(&crate::dirfd::Dir::open(&root).unwrap()).unwrap().iter().map(|b| b.bytes).sum();
        assert!(total <= 10 << 20, "{total}");
    }

    #[test]
    fn a_snapshot_over_the_budget_is_refused_and_its_partial_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("bundles");
        limit_disk(&root, 2 << 20);
        let bundle = Bundle::new(root.clone(), crate::bundle::bundle_name(chrono::Utc::now(), std::process::id(), 0));
        let err = stream(&bundle, "heap-1.heapsnapshot.gz", 1 << 20, &noise(6 << 20, 2)).unwrap_err().to_string();
        assert!(err.contains("MEMGUARD_MAX_DISK (2.1 MB)"), "{err}");
        assert!(err.contains("removed the partial file"), "{err}");
        assert_eq!(fs::read_dir(bundle.path()).unwrap().count(), 0, "no partial file left");
        // Our own bundle is never removed, even to make room.
        assert!(bundle.path().is_dir());
    }

    #[test]
    fn room_is_made_while_streaming_when_the_estimate_was_low() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("bundles");
        let a = old_bundle(&root, 1, 2 << 20);
        let b = old_bundle(&root, 2, 2 << 20);
        limit_disk(&root, 5 << 20);
        let bundle = Bundle::new(root.clone(), crate::bundle::bundle_name(chrono::Utc::now(), std::process::id(), 0));
        // Expected 0.5 MB, really 2.5 MB: the oldest goes mid-stream, the other stays.
        stream(&bundle, "heap-1.heapsnapshot.gz", 512 << 10, &noise(5 << 19, 3)).unwrap();
        let left = names(&root);
        assert!(!left.contains(&a) && left.contains(&b), "{left:?}");
    }

    #[test]
    fn enforcing_is_cheap() {
        // 300 bundles of 5 files each, over budget by one bundle.
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for i in 0..300 {
            let dir = root.join(format!("20200101-{:06}-4194305", i));
            fs::create_dir(&dir).unwrap();
            for f in 0..5 {
                fs::write(dir.join(format!("f{f}")), [0u8; 100]).unwrap();
            }
        }
        let started = Instant::now();
        let left = disk::enforce(root, 300 * 500 - 1, 0, |_| false).unwrap();
        let took = started.elapsed();
        assert_eq!(left, 299 * 500);
        eprintln!("scanned 300 bundles (1,500 files) and removed one in {took:?}");
        assert!(took.as_millis() < 500, "{took:?}");
    }
}
