//! Decompression on its own thread: the gzip decoder fills buffers while the
//! parser scans the previous ones, so a `.gz` snapshot reads about as fast as
//! the slower of the two rather than their sum.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Buffers in flight: enough to keep both sides busy, few enough to stay small.
const DEPTH: usize = 3;

pub struct Pipe {
    full: Receiver<io::Result<Vec<u8>>>,
    empty: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
    worker: Option<JoinHandle<()>>,
}

impl Pipe {
    /// `chunk`: bytes per buffer handed over.
    pub fn new<R: Read + Send + 'static>(mut inner: R, chunk: usize) -> Pipe {
        let (full_tx, full) = sync_channel::<io::Result<Vec<u8>>>(DEPTH);
        let (empty, empty_rx) = sync_channel::<Vec<u8>>(DEPTH + 1);
        let worker = std::thread::spawn(move || loop {
            let mut buf = empty_rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(chunk));
            buf.resize(chunk, 0);
            let mut filled = 0;
            let result = loop {
                if filled == buf.len() {
                    break Ok(());
                }
                match inner.read(&mut buf[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            buf.truncate(filled);
            let end = filled == 0;
            let msg = match result {
                Ok(()) => Ok(buf),
                Err(e) => Err(e),
            };
            let failed = msg.is_err();
            // The reader hung up (it stopped at an error of its own): stop too.
            if full_tx.send(msg).is_err() || end || failed {
                return;
            }
        });
        Pipe { full, empty, current: Vec::new(), pos: 0, done: false, worker: Some(worker) }
    }
}

impl Read for Pipe {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            let old = std::mem::take(&mut self.current);
            let _ = self.empty.try_send(old);
            self.pos = 0;
            match self.full.recv() {
                Ok(Ok(buf)) => {
                    if buf.is_empty() {
                        self.done = true;
                    }
                    self.current = buf;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // Unblock a worker waiting to send, then wait for it to finish.
        while self.full.try_recv().is_ok() {}
        let (_, rx) = sync_channel::<io::Result<Vec<u8>>>(0);
        let full = std::mem::replace(&mut self.full, rx);
        drop(full);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
