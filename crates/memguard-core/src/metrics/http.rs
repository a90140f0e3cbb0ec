//! The metrics endpoint: one background thread, `GET /metrics` only. It
//! reads the registry and /proc, never V8, so it answers while JS is stuck
//! in a loop or a long GC. A minimal HTTP/1.1 server on `poll(2)`, bounded
//! everywhere: at most [`MAX_CONNECTIONS`] open connections (a new one
//! pushes out the oldest that has not finished its request, so slow or
//! idle clients cannot lock scrapes out), [`MAX_REQUEST`] bytes of request
//! head, [`READ_TIMEOUT`] to send it and [`WRITE_TIMEOUT`] to take the
//! answer; one request per connection.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::expo::{self, Format, ProcessValues};
use crate::log;
use crate::procmem::Cgroup;

pub const MAX_CONNECTIONS: usize = 64;
pub const MAX_REQUEST: usize = 8 << 10;
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the endpoint once per process (the first guarded thread with
/// `MEMGUARD_METRICS` set). A port in use or any other failure is one
/// warning; the application runs on without the endpoint.
pub fn start_once(addr: SocketAddr) {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| match start(addr) {
        Ok(bound) => {
            if bound.ip().is_loopback() {
                log::debug(&format!("metrics at http://{bound}/metrics"));
            } else {
                log::info(&format!("serving metrics at http://{bound}/metrics, reachable from other machines"));
            }
        }
        Err(e) => log::warn(&format!(
            "cannot serve metrics on {addr} (MEMGUARD_METRICS): {e}; continuing without the metrics endpoint"
        )),
    });
}

/// Binds and starts the thread; returns the address bound.
pub fn start(addr: SocketAddr) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new().name("memguard-metrics".into()).spawn(move || serve(listener))?;
    Ok(bound)
}

/// After the answer, unread input is drained this long before the socket
/// is closed: closing with input unread would reset the connection, and the
/// client could lose the answer.
const LINGER: Duration = Duration::from_secs(1);
const CHUNK: usize = 2048;

enum State {
    Reading(Vec<u8>),
    /// The answer and how much of it is sent.
    Writing(Vec<u8>, usize),
    Draining(Instant),
    Done,
}

struct Conn {
    stream: TcpStream,
    opened: Instant,
    state: State,
}

impl Conn {
    fn deadline(&self) -> Instant {
        match self.state {
            State::Reading(_) => self.opened + READ_TIMEOUT,
            State::Writing(..) => self.opened + WRITE_TIMEOUT,
            State::Draining(since) => since + LINGER,
            State::Done => self.opened,
        }
    }
}

fn serve(listener: TcpListener) {
    let cgroup = crate::procmem::Cgroup::process();
    let mut conns: Vec<Conn> = Vec::new();
    loop {
        crate::selfcost::checkpoint(crate::selfcost::Role::Metrics);
        let now = Instant::now();
        conns.retain(|c| now < c.deadline());
        let next_deadline =
            conns.iter().map(Conn::deadline).min().map_or(Duration::from_secs(60), |d| d.saturating_duration_since(now));
        let ready: Vec<bool> = {
            let mut fds = Vec::with_capacity(conns.len() + 1);
            fds.push(PollFd::new(&listener, PollFlags::IN));
            for c in &conns {
                let want = if matches!(c.state, State::Writing(..)) { PollFlags::OUT } else { PollFlags::IN };
                fds.push(PollFd::new(&c.stream, want));
            }
            let timeout = Timespec::try_from(next_deadline + Duration::from_millis(1)).ok();
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    log::warn(&format!("the metrics endpoint stopped: poll failed ({e})"));
                    return;
                }
            }
            fds.iter().map(|f| !f.revents().is_empty()).collect()
        };
        for (conn, ready) in conns.iter_mut().zip(&ready[1..]) {
            if *ready {
                step(conn, cgroup);
            }
        }
        conns.retain(|c| !matches!(c.state, State::Done));
        if ready[0] {
            accept_all(&listener, &mut conns);
        }
    }
}

fn accept_all(listener: &TcpListener, conns: &mut Vec<Conn>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if stream.set_nonblocking(true).is_err() {
                    continue;
                }
                if conns.len() >= MAX_CONNECTIONS {
                    // Push out the oldest client still sending its request
                    // (or, failing that, the oldest one).
                    let victim = conns.iter().position(|c| matches!(c.state, State::Reading(_))).unwrap_or(0);
                    let _ = conns.remove(victim).stream.shutdown(Shutdown::Both);
                }
                conns.push(Conn { stream, opened: Instant::now(), state: State::Reading(Vec::new()) });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            // Out of file descriptors, a connection reset before accept…:
            // the next poll tries again, after a pause (the listener stays
            // readable, and the loop must not spin).
            Err(_) => {
                std::thread::sleep(Duration::from_millis(100));
                return;
            }
        }
    }
}

/// Reads what arrived, writes what can go out, or drains.
fn step(conn: &mut Conn, cgroup: Option<&Cgroup>) {
    let mut chunk = [0u8; CHUNK];
    loop {
        let state = std::mem::replace(&mut conn.state, State::Done);
        conn.state = match state {
            State::Reading(mut request) => {
                let room = MAX_REQUEST - request.len();
                match conn.stream.read(&mut chunk[..room.min(CHUNK)]) {
                    Ok(0) => State::Done,
                    Ok(n) => {
                        request.extend_from_slice(&chunk[..n]);
                        if let Some(head) = request_head(&request) {
                            State::Writing(respond(head, cgroup), 0)
                        } else if request.len() >= MAX_REQUEST {
                            State::Writing(plain(431, "Request Header Fields Too Large", "request too large\n"), 0)
                        } else {
                            State::Reading(request)
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return conn.state = State::Reading(request),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => State::Reading(request),
                    Err(_) => State::Done,
                }
            }
            State::Writing(answer, sent) => match conn.stream.write(&answer[sent..]) {
                Ok(0) => State::Done,
                Ok(n) if sent + n == answer.len() => {
                    let _ = conn.stream.shutdown(Shutdown::Write);
                    State::Draining(Instant::now())
                }
                Ok(n) => State::Writing(answer, sent + n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return conn.state = State::Writing(answer, sent),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => State::Writing(answer, sent),
                Err(_) => State::Done,
            },
            State::Draining(since) => match conn.stream.read(&mut chunk) {
                Ok(0) => State::Done,
                Ok(_) => State::Draining(since),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return conn.state = State::Draining(since),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => State::Draining(since),
                Err(_) => State::Done,
            },
            State::Done => return,
        };
    }
}

/// The request head (up to the blank line), once complete.
fn request_head(buf: &[u8]) -> Option<&[u8]> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4).or_else(|| buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))?;
    Some(&buf[..end])
}

/// The answer to one request head: the metrics, 404, 405 or 400.
pub fn respond(head: &[u8], cgroup: Option<&Cgroup>) -> Vec<u8> {
    let Ok(head) = std::str::from_utf8(head) else {
        return plain(400, "Bad Request", "bad request\n");
    };
    let mut lines = head.lines();
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return plain(400, "Bad Request", "bad request\n");
    };
    if !version.starts_with("HTTP/1.") {
        return plain(400, "Bad Request", "bad request\n");
    }
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return plain(404, "Not Found", "not found: memguard serves /metrics only\n");
    }
    if method != "GET" && method != "HEAD" {
        return plain(405, "Method Not Allowed", "method not allowed\n");
    }
    let accept = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("accept"))
        .map_or("", |(_, v)| v.trim());
    let format = Format::from_accept(accept);
    let process = ProcessValues::read(cgroup);
    let body = super::with(|registry| expo::render(registry, &process, format));
    let mut out = header(200, "OK", format.content_type(), body.len());
    if method == "GET" {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

fn header(status: u16, reason: &str, content_type: &str, len: usize) -> Vec<u8> {
    format!("HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

fn plain(status: u16, reason: &str, body: &str) -> Vec<u8> {
    let mut out = header(status, reason, "text/plain; charset=utf-8", body.len());
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    fn get(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn serves_metrics_and_nothing_else() {
        let addr = start("127.0.0.1:0".parse().unwrap()).unwrap();
        let ok = get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Type: text/plain; version=0.0.4"));
        let om = get(addr, b"GET /metrics?x=1 HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n");
        assert!(om.contains("application/openmetrics-text") && om.ends_with("# EOF\n"), "{om}");
        let head = get(addr, b"HEAD /metrics HTTP/1.0\n\n");
        assert!(head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"), "{head}");
        assert!(get(addr, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(addr, b"GET /metrics/x HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(addr, b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(get(addr, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n").starts_with("HTTP/1.1 400"));
        assert!(get(addr, b"GET /metrics\r\n\r\n").starts_with("HTTP/1.1 400"));
        let huge = vec![b'a'; MAX_REQUEST + 100];
        assert!(get(addr, &huge).starts_with("HTTP/1.1 431"));
    }

    #[test]
    fn slow_clients_do_not_lock_scrapes_out() {
        let addr = start("127.0.0.1:0".parse().unwrap()).unwrap();
        // Twice as many idle connections as allowed, each sending half a request.
        let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS * 2)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /metr").unwrap();
                s
            })
            .collect();
        let started = Instant::now();
        let ok = get(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        // The oldest idle ones were closed to make room.
        let mut first = BufReader::new(idle[0].try_clone().unwrap());
        idle[0].set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut line = String::new();
        assert_eq!(first.read_line(&mut line).unwrap_or(0), 0);
    }
}
