//! The RSS watchdog: a background thread that reads the process's resident
//! memory every `POLL` and says when it crosses a fraction of a limit — the
//! death V8's heap limit never sees (Buffers, native memory, a container's
//! limit). It never calls V8: the caller turns a crossing into a request to
//! the isolate (`RequestInterrupt`), where the capture runs.

use std::time::Duration;

use serde::Serialize;

use crate::config::RssLimit;
use crate::procmem::{self, Cgroup};

/// RSS is read from /proc/self/statm: ~10 µs. Ten times a second catches a
/// leak of 100 MB/s within 10 MB, at ~0.01 % of one core.
pub const POLL: Duration = Duration::from_millis(100);
/// A fired watchdog re-arms when RSS falls this far (a fraction of the
/// limit) below the trigger point.
const REARM_BELOW: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RssCrossing {
    pub rss_bytes: u64,
    pub limit_bytes: u64,
    pub threshold: f64,
    /// `MEMGUARD_RSS_LIMIT` or `cgroup`.
    pub source: &'static str,
}

/// When to fire: once per crossing, again only after RSS fell well below.
pub struct RssPolicy {
    limit: u64,
    threshold: f64,
    source: &'static str,
    armed: bool,
}

impl RssPolicy {
    pub fn new(limit: u64, threshold: f64, source: &'static str) -> RssPolicy {
        RssPolicy { limit, threshold, source, armed: true }
    }

    pub fn observe(&mut self, rss: u64) -> Option<RssCrossing> {
        let fraction = rss as f64 / self.limit.max(1) as f64;
        if self.armed && fraction >= self.threshold {
            self.armed = false;
            return Some(RssCrossing { rss_bytes: rss, limit_bytes: self.limit, threshold: self.threshold, source: self.source });
        }
        if !self.armed && fraction < self.threshold - REARM_BELOW {
            self.armed = true;
        }
        None
    }
}

/// The limit RSS is watched against: the configured size, or the memory
/// cgroup's limit (`auto`). `Err` says why there is none.
pub fn resolve_limit(limit: RssLimit, cgroup: Option<&Cgroup>) -> Result<(u64, &'static str), String> {
    match limit {
        RssLimit::Bytes(bytes) => Ok((bytes, "MEMGUARD_RSS_LIMIT")),
        RssLimit::Auto | RssLimit::Container => match cgroup.and_then(Cgroup::read).and_then(|m| m.limit) {
            Some(limit) => Ok((limit, "cgroup")),
            None => Err("MEMGUARD_RSS_LIMIT=auto, but this process has no memory cgroup limit".into()),
        },
    }
}

/// Starts the watchdog thread; `on_crossing` runs on it (it must not call
/// V8). Returns `false` if the thread could not be spawned.
pub fn spawn(mut policy: RssPolicy, on_crossing: impl Fn(RssCrossing) + Send + 'static) -> bool {
    std::thread::Builder::new()
        .name("memguard-watchdog".into())
        .spawn(move || loop {
            if let Some(crossing) = procmem::rss_bytes().and_then(|rss| policy.observe(rss)) {
                on_crossing(crossing);
            }
            std::thread::sleep(POLL);
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_per_crossing_and_rearms_well_below() {
        let mut p = RssPolicy::new(1000, 0.8, "MEMGUARD_RSS_LIMIT");
        assert_eq!(p.observe(500), None);
        let c = p.observe(810).unwrap();
        assert_eq!((c.rss_bytes, c.limit_bytes, c.source), (810, 1000, "MEMGUARD_RSS_LIMIT"));
        assert_eq!(p.observe(900), None);
        assert_eq!(p.observe(750), None, "not far enough below to re-arm");
        assert_eq!(p.observe(820), None);
        assert_eq!(p.observe(650), None);
        assert!(p.observe(800).is_some(), "re-armed after falling under 0.7");
    }

    #[test]
    fn auto_needs_a_cgroup_limit() {
        assert_eq!(resolve_limit(RssLimit::Bytes(5 << 20), None), Ok((5 << 20, "MEMGUARD_RSS_LIMIT")));
        let err = resolve_limit(RssLimit::Auto, None).unwrap_err();
        assert!(err.contains("no memory cgroup limit"), "{err}");
    }
}
