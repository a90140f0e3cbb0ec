//! Process and container memory, read from /proc and /sys on the background
//! thread (never V8). The parsers are pure and unit-tested; the readers
//! return `None` wherever a value is not available.

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Resident set size of this process, from /proc/self/statm.
pub fn rss_bytes() -> Option<u64> {
    let statm = fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// A `kB` field of /proc/self/status (`VmHWM`, `VmRSS`), in bytes.
pub fn parse_status_field(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.strip_prefix(field).is_some_and(|rest| rest.starts_with(':')))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn status_field(field: &str) -> Option<u64> {
    parse_status_field(&fs::read_to_string("/proc/self/status").ok()?, field)
}

/// RSS is sampled this often while a snapshot is taken.
pub const PEAK_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// Peak RSS while something runs on the calling thread (a heap snapshot),
/// measured without touching the process: a thread of its own samples RSS
/// every `PEAK_POLL`, and the kernel's high-water mark (`VmHWM`) gives the
/// exact peak when it rose meanwhile. (It is never reset — `clear_refs`
/// would — because the app sees it as its `maxRSS`.)
pub struct PeakRss {
    rss_before: u64,
    hwm_before: Option<u64>,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl PeakRss {
    pub fn start() -> PeakRss {
        let rss_before = rss_bytes().unwrap_or(0);
        let peak = Arc::new(AtomicU64::new(rss_before));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::Builder::new()
                .name("memguard-peak".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        if let Some(rss) = rss_bytes() {
                            peak.fetch_max(rss, Ordering::AcqRel);
                        }
                        std::thread::sleep(PEAK_POLL);
                    }
                })
                .ok()
        };
        PeakRss { rss_before, hwm_before: status_field("VmHWM"), peak, stop, sampler }
    }

    /// RSS before, the peak above it, and how the peak was measured.
    pub fn finish(mut self) -> (u64, u64, &'static str) {
        self.stop.store(true, Ordering::Release);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
        let sampled = self.peak.load(Ordering::Acquire).max(rss_bytes().unwrap_or(0));
        let (peak, how) = peak_of(self.hwm_before, status_field("VmHWM"), sampled);
        (self.rss_before, peak.saturating_sub(self.rss_before), how)
    }
}

/// The high-water mark when it rose (it was set during the run: exact),
/// else the sampled peak.
pub fn peak_of(hwm_before: Option<u64>, hwm_after: Option<u64>, sampled: u64) -> (u64, &'static str) {
    match (hwm_before, hwm_after) {
        (Some(before), Some(after)) if after > before => (after.max(sampled), "VmHWM"),
        _ => (sampled, "sampled"),
    }
}

/// MemAvailable from /proc/meminfo: what the kernel can give without
/// swapping.
pub fn mem_available() -> Option<u64> {
    parse_mem_available(&fs::read_to_string("/proc/meminfo").ok()?)
}

pub fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The memory cgroup the process is in and the files that tell its usage
/// and limit. The tightest limit on the path up to the root wins (without a
/// cgroup namespace the files at the mount root belong to an ancestor).
#[derive(Debug, Clone, PartialEq)]
pub struct Cgroup {
    pub version: u8,
    /// Directories from the process's own cgroup up to the mount root.
    pub dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CgroupMemory {
    pub usage: u64,
    /// `None`: no limit set anywhere on the path.
    pub limit: Option<u64>,
}

impl Cgroup {
    /// The process's memory cgroup, found once. The recorder thread asks
    /// first, as it starts: the JS thread, which asks later (a capture, the
    /// last-affordable check), then finds it ready instead of paying the
    /// /proc reads (~0.1 ms) at start-up.
    pub fn process() -> Option<&'static Cgroup> {
        static CGROUP: std::sync::OnceLock<Option<Cgroup>> = std::sync::OnceLock::new();
        CGROUP.get_or_init(Cgroup::discover).as_ref()
    }

    /// Finds this process's memory cgroup (v2 unified, else v1 `memory`).
    pub fn discover() -> Option<Cgroup> {
        let own = fs::read_to_string("/proc/self/cgroup").ok()?;
        let mounts = fs::read_to_string("/proc/self/mountinfo").ok()?;
        Cgroup::from_proc(&own, &mounts)
    }

    /// Pure part of `discover`: `/proc/self/cgroup` and `/proc/self/mountinfo`.
    pub fn from_proc(own: &str, mountinfo: &str) -> Option<Cgroup> {
        // A v1 memory controller, where mounted, is the one that limits
        // memory (hybrid hosts have an unused v2 hierarchy beside it).
        let mut v1 = None;
        let mut v2 = None;
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            if controllers.is_empty() {
                v2 = Some(path.to_string());
            } else if controllers.split(',').any(|c| c == "memory") {
                v1 = Some(path.to_string());
            }
        }
        let (version, path) = match (v1, v2) {
            (Some(p), _) => (1, p),
            (None, Some(p)) => (2, p),
            (None, None) => return None,
        };
        for line in mountinfo.lines() {
            // id parent major:minor root mount-point options ... - fstype source super-options
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(dash) = fields.iter().position(|f| *f == "-") else { continue };
            let (Some(root), Some(mount_point), Some(fstype)) = (fields.get(3), fields.get(4), fields.get(dash + 1)) else {
                continue;
            };
            let super_opts = fields.get(dash + 3).copied().unwrap_or("");
            let matches = match version {
                1 => *fstype == "cgroup" && super_opts.split(',').any(|o| o == "memory"),
                _ => *fstype == "cgroup2",
            };
            if !matches {
                continue;
            }
            // The process's path is relative to the hierarchy root; the mount
            // shows `root` of it at `mount_point`.
            let rel = path.strip_prefix(root).unwrap_or(&path).trim_start_matches('/');
            let mount = Path::new(mount_point);
            let mut dirs = Vec::new();
            let mut dir = mount.join(rel);
            loop {
                dirs.push(dir.clone());
                if dir == mount || !dir.pop() {
                    break;
                }
            }
            return Some(Cgroup { version, dirs });
        }
        None
    }

    pub fn read(&self) -> Option<CgroupMemory> {
        let (usage_file, limit_file) =
            if self.version == 2 { ("memory.current", "memory.max") } else { ("memory.usage_in_bytes", "memory.limit_in_bytes") };
        let usage = read_number(&self.dirs.first()?.join(usage_file))?;
        let limit = self.dirs.iter().filter_map(|d| read_number(&d.join(limit_file))).filter(|&l| is_real_limit(l)).min();
        Some(CgroupMemory { usage, limit })
    }
}

fn read_number(path: &Path) -> Option<u64> {
    parse_limit(&fs::read_to_string(path).ok()?)
}

/// `max` (v2's "no limit") reads as u64::MAX.
pub fn parse_limit(text: &str) -> Option<u64> {
    match text.trim() {
        "max" => Some(u64::MAX),
        t => t.parse().ok(),
    }
}

/// cgroup v1 reports "no limit" as a huge page-rounded number.
fn is_real_limit(limit: u64) -> bool {
    limit < (1 << 60)
}

/// Whether the calling thread is the process's main thread, from
/// `/proc/thread-self` (a link to `<pid>/task/<tid>`); `None` without /proc.
pub fn on_main_thread() -> Option<bool> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    is_main_thread_link(link.to_str()?)
}

/// Pure part of `on_main_thread`.
fn is_main_thread_link(link: &str) -> Option<bool> {
    let mut parts = link.split('/');
    let (pid, task, tid) = (parts.next()?, parts.next()?, parts.next()?);
    (task == "task").then(|| pid == tid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_and_peaks() {
        let status = "Name:\tnode\nVmPeak:\t 900 kB\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(parse_status_field(status, "VmHWM"), Some(2 << 20));
        assert_eq!(parse_status_field(status, "VmRSS"), Some(1 << 20));
        assert_eq!(parse_status_field(status, "VmSwap"), None);
        assert_eq!(peak_of(Some(100), Some(300), 250), (300, "VmHWM"), "the mark rose: exact");
        assert_eq!(peak_of(Some(500), Some(500), 250), (250, "sampled"), "an older, higher peak says nothing");
        assert_eq!(peak_of(None, None, 250), (250, "sampled"));
    }

    #[test]
    fn peak_rss_sees_memory_touched_meanwhile() {
        let peak = PeakRss::start();
        let block = vec![1u8; 64 << 20];
        std::thread::sleep(PEAK_POLL * 4);
        drop(std::hint::black_box(block));
        let (before, above, _) = peak.finish();
        assert!(before > 0);
        assert!(above >= 60 << 20, "{above}");
    }

    #[test]
    fn parses_limits() {
        assert_eq!(parse_limit("max\n"), Some(u64::MAX));
        assert_eq!(parse_limit("536870912\n"), Some(512 << 20));
        assert_eq!(parse_limit("x"), None);
        assert!(!is_real_limit(9223372036854771712));
        assert!(is_real_limit(512 << 20));
    }

    #[test]
    fn finds_v2_cgroup_path_up_to_mount() {
        let own = "0::/system.slice/app.service\n";
        let mounts = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        let cg = Cgroup::from_proc(own, mounts).unwrap();
        assert_eq!(cg.version, 2);
        assert_eq!(
            cg.dirs,
            vec![
                PathBuf::from("/sys/fs/cgroup/system.slice/app.service"),
                PathBuf::from("/sys/fs/cgroup/system.slice"),
                PathBuf::from("/sys/fs/cgroup"),
            ]
        );
    }

    #[test]
    fn finds_v1_memory_cgroup_in_a_namespace() {
        let own = "12:pids:/x\n4:memory:/docker/abc\n0::/\n";
        let mounts = "\
41 30 0:37 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
42 30 0:38 / /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup rw,pids\n";
        let cg = Cgroup::from_proc(own, mounts).unwrap();
        assert_eq!(cg.version, 1);
        assert_eq!(cg.dirs, vec![PathBuf::from("/sys/fs/cgroup/memory")]);
    }

    #[test]
    fn parses_mem_available() {
        let text = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(parse_mem_available(text), Some(20_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn rss_is_read() {
        assert!(rss_bytes().unwrap() > 1 << 20);
    }

    #[test]
    fn main_thread_is_the_one_whose_tid_is_the_pid() {
        assert_eq!(is_main_thread_link("4242/task/4242"), Some(true));
        assert_eq!(is_main_thread_link("4242/task/4250"), Some(false));
        assert_eq!(is_main_thread_link("nonsense"), None);
        assert_eq!(std::thread::spawn(on_main_thread).join().unwrap(), Some(false));
    }
}
