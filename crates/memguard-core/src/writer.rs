//! The background writer: one thread per process that turns snapshot chunks
//! into gzip files and writes manifests. It never calls V8; the isolate
//! threads hand it plain bytes through bounded channels, so compression runs
//! in parallel with V8's serialization and never on the JS thread.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::bundle::{create_private_file, write_atomic, Bundle};
use crate::manifest::FileRecord;

/// How many chunks may wait for the writer. With V8's chunks at 64 KiB this
/// caps the memory in flight at ~4 MiB, which matters near the heap limit.
const CHUNK_QUEUE: usize = 64;
/// gzip level 3: measured on a 390 MB snapshot with zlib-rs, it shrinks
/// heap snapshot JSON to 0.14× at ~340 MB/s — ten times faster than V8
/// serializes, so the writer never holds V8 back. (Level 1: 0.21× at
/// 600 MB/s; level 6: 0.14× at 120 MB/s.)
const LEVEL: u32 = 3;

enum Job {
    Snapshot { bundle: Bundle, name: String, chunks: Receiver<Chunk>, done: Sender<io::Result<FileRecord>> },
    Atomic { bundle: Bundle, name: String, bytes: Vec<u8>, done: Sender<io::Result<()>> },
}

enum Chunk {
    Data(Vec<u8>),
    End,
}

pub struct Writer {
    jobs: Sender<Job>,
}

static WRITER: OnceLock<Option<Writer>> = OnceLock::new();

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
                        for job in rx {
                            run(job);
                        }
                    })
                    .ok()
                    .map(|_| Writer { jobs })
            })
            .as_ref()
    }

    /// Starts `bundle/name`, a gzip file fed chunk by chunk through the sink.
    pub fn start_file(&self, bundle: &Bundle, name: &str) -> io::Result<Sink> {
        let (chunks, chunk_rx) = bounded(CHUNK_QUEUE);
        let (done, done_rx) = bounded(1);
        self.jobs
            .send(Job::Snapshot { bundle: bundle.clone(), name: name.to_string(), chunks: chunk_rx, done })
            .map_err(|_| writer_gone())?;
        Ok(Sink { chunks, done: done_rx })
    }

    /// Writes `bundle/name` atomically and waits until it is on disk.
    pub fn write_atomic(&self, bundle: &Bundle, name: &str, bytes: Vec<u8>) -> io::Result<()> {
        let (done, done_rx) = bounded(1);
        self.jobs
            .send(Job::Atomic { bundle: bundle.clone(), name: name.to_string(), bytes, done })
            .map_err(|_| writer_gone())?;
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

fn run(job: Job) {
    match job {
        Job::Snapshot { bundle, name, chunks, done } => {
            let _ = done.send(write_gzip(&bundle, &name, &chunks));
        }
        Job::Atomic { bundle, name, bytes, done } => {
            let _ = done.send(bundle.ensure().and_then(|dir| write_atomic(&dir, &name, &bytes)));
        }
    }
}

/// Writes to `name.partial`, renamed to `name` only when complete: a file with
/// the final name is always a whole, valid gzip stream.
fn write_gzip(bundle: &Bundle, name: &str, chunks: &Receiver<Chunk>) -> io::Result<FileRecord> {
    let started = Instant::now();
    let dir = bundle.ensure()?;
    let partial: PathBuf = dir.join(format!("{name}.partial"));
    let result = (|| {
        let file = create_private_file(&partial)?;
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
        let file = gz.finish()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_data()?;
        let bytes = file.metadata()?.len();
        fs::rename(&partial, dir.join(name))?;
        Ok(FileRecord { name: name.to_string(), bytes, uncompressed_bytes: raw, millis: started.elapsed().as_millis() as u64 })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn streams_chunks_into_a_gzip_file() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = Bundle { root: tmp.path().to_path_buf(), name: "b".into() };
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
        let bundle = Bundle { root: tmp.path().to_path_buf(), name: "b".into() };
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
        let bundle = Bundle { root: file, name: "b".into() };
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
}
