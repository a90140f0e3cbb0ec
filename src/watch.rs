//! Process-wide triggers — the RSS watchdog and the capture signal — started
//! once per process, with the settings of the first thread that loads
//! memguard (normally the main thread). Both run off the JS thread and reach
//! it only through `remote::request_main`: the capture itself runs on the
//! main thread at its next interrupt check, even in a loop that never yields.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use memguard_core::config::{Config, RssLimit};
use memguard_core::log;
use memguard_core::procmem::Cgroup;
use memguard_core::watchdog::{self, RssPolicy};
use memguard_core::writer::Writer;

use crate::capture::{capture_current, Trigger};
use crate::{remote, v8};

pub fn start_once(config: &Config) {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        // Whether to watch depends on the memory cgroup, found by reading
        // /proc and /sys: on the writer thread, not during start-up.
        if let Some(limit) = config.rss_limit {
            let threshold = config.rss_threshold;
            let queued = Writer::global().is_some_and(|w| w.run_later(move || start_rss_watchdog(limit, threshold)));
            if !queued {
                start_rss_watchdog(limit, threshold);
            }
        }
        start_signal(config);
    });
}

fn start_rss_watchdog(limit: RssLimit, threshold: f64) {
    let (limit, source) = match watchdog::resolve_limit(limit, Cgroup::process()) {
        Ok(found) => found,
        // By default the watchdog runs only in a container with a limit; elsewhere it has nothing to say.
        Err(_) if limit == RssLimit::Container => return log::debug("no memory cgroup limit; RSS is not watched"),
        Err(problem) => return log::warn_once(&format!("{problem}; the RSS watchdog is off")),
    };
    let started = watchdog::spawn(RssPolicy::new(limit, threshold, source), |crossing| {
        log::info(&format!(
            "RSS is {} MB, {:.0} % of the {} MB limit ({}); capturing",
            crossing.rss_bytes >> 20,
            crossing.rss_bytes as f64 * 100.0 / crossing.limit_bytes as f64,
            crossing.limit_bytes >> 20,
            crossing.source
        ));
        remote::request_main(move |_| capture_current(Trigger::Rss(crossing)));
    });
    if started {
        log::debug(&format!("RSS watchdog: capture at {threshold} of {} MB ({source})", limit >> 20));
    } else {
        log::warn_once("could not start the RSS watchdog thread; RSS is not watched");
    }
}

fn start_signal(config: &Config) {
    // One capture at a time: a burst of signals (a script in a loop) while
    // one is pending or running adds nothing but pauses.
    static PENDING: AtomicBool = AtomicBool::new(false);
    let Some((signum, name)) = config.signal.clone() else { return };
    let on_signal = {
        let name = name.clone();
        move || {
            if PENDING.swap(true, Ordering::AcqRel) {
                return;
            }
            let name = name.clone();
            if !remote::request_main(move |_| {
                capture_current(Trigger::Signal(name));
                PENDING.store(false, Ordering::Release);
            }) {
                PENDING.store(false, Ordering::Release);
            }
        }
    };
    if !v8::watch_signal(signum, Box::new(on_signal)) {
        log::warn_once(&format!("MEMGUARD_SIGNAL: cannot listen for {name}; captures by signal are off"));
    }
}
