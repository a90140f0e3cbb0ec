//! Can this process afford a heap snapshot right now? V8 builds the whole
//! heap graph in native memory before writing a byte; in a container that is
//! where the kernel OOM killer strikes mid-snapshot and nothing is written.
//! Pure: the caller reads the numbers, this decides.

use serde::Serialize;

use crate::config::SnapshotMode;
use crate::procmem::CgroupMemory;

/// Native memory a snapshot needs beyond what the process already uses, per
/// byte of used heap (peak RSS during the snapshot minus RSS before, over
/// used heap). Measured by `npm run bench:afford` (the kernel's RSS
/// high-water mark around a snapshot, heaps of 25–200 MB): small objects
/// 14.6–15.9× on Node 20 and 14.4–15.0× on Node 26, strings 10.6–11.3× and
/// ~9×. Object-dense heaps cost most (V8 keeps ~150 B per node and edge),
/// so the estimate takes the top of that: an estimate too low gets the
/// process killed mid-snapshot, one too high only takes the last affordable
/// snapshot a little earlier (and refuses some that would have fit).
pub const SNAPSHOT_BYTES_PER_HEAP_BYTE: u64 = 16;

/// What a snapshot of `used_heap` bytes of heap is expected to need in native
/// memory (the same estimate for the affordability check, the last
/// affordable moment and the `snapshotMemory` record of every capture).
pub fn snapshot_estimate(used_heap: u64) -> u64 {
    used_heap.saturating_mul(SNAPSHOT_BYTES_PER_HEAP_BYTE)
}

/// A hard bound on the process's memory, where one is known: an explicit
/// limit (against RSS) or the container's (against the cgroup's usage).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryBound {
    pub limit_bytes: u64,
    pub used_bytes: u64,
    /// `MEMGUARD_MEMORY_LIMIT`, `MEMGUARD_RSS_LIMIT` or `cgroup`.
    pub source: &'static str,
}

impl MemoryBound {
    pub fn available(&self) -> u64 {
        self.limit_bytes.saturating_sub(self.used_bytes)
    }
}

/// The explicit limit (with RSS) if set, else the container's limit (with
/// its usage); `None` where the process has no known bound.
pub fn memory_bound(
    memory_limit: Option<(u64, &'static str)>,
    rss: Option<u64>,
    cgroup: Option<CgroupMemory>,
) -> Option<MemoryBound> {
    if let Some((limit_bytes, source)) = memory_limit {
        return Some(MemoryBound { limit_bytes, used_bytes: rss.unwrap_or(0), source });
    }
    let c = cgroup?;
    Some(MemoryBound { limit_bytes: c.limit?, used_bytes: c.usage, source: "cgroup" })
}

/// Memory the process can still take, and where that figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Headroom {
    pub available_bytes: u64,
    /// `MEMGUARD_MEMORY_LIMIT`, `MEMGUARD_RSS_LIMIT`, `cgroup` or `MemAvailable`.
    pub source: &'static str,
}

/// The tightest known bound: an explicit limit (minus RSS), else the
/// container's limit (minus its usage), else the kernel's MemAvailable.
/// `memory_limit` is an explicit limit and the variable it came from.
pub fn headroom(
    memory_limit: Option<(u64, &'static str)>,
    rss: Option<u64>,
    cgroup: Option<CgroupMemory>,
    mem_available: Option<u64>,
) -> Option<Headroom> {
    // An explicit limit is the user's word; a container's is checked against
    // what the machine has left too.
    match (memory_bound(memory_limit, rss, cgroup), mem_available) {
        (Some(b), Some(m)) if b.source == "cgroup" && m < b.available() => {
            Some(Headroom { available_bytes: m, source: "MemAvailable" })
        }
        (Some(b), _) => Some(Headroom { available_bytes: b.available(), source: b.source }),
        (None, Some(m)) => Some(Headroom { available_bytes: m, source: "MemAvailable" }),
        (None, None) => None,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skip {
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needed_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
}

/// `Ok(())`: take the snapshot. `Err(skip)`: don't, and say why.
pub fn decide(mode: SnapshotMode, used_heap: u64, headroom: Option<Headroom>) -> Result<(), Skip> {
    match mode {
        SnapshotMode::Always => Ok(()),
        SnapshotMode::Never => Err(Skip {
            reason: "MEMGUARD_SNAPSHOT=never".into(),
            needed_bytes: None,
            available_bytes: None,
            source: None,
        }),
        SnapshotMode::Auto => {
            let needed = snapshot_estimate(used_heap);
            match headroom {
                Some(h) if needed > h.available_bytes => Err(Skip {
                    reason: format!(
                        "a snapshot needs about {} MB of memory and only {} MB is available ({})",
                        needed >> 20,
                        h.available_bytes >> 20,
                        h.source
                    ),
                    needed_bytes: Some(needed),
                    available_bytes: Some(h.available_bytes),
                    source: Some(h.source),
                }),
                _ => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn explicit_limit_wins_and_counts_rss() {
        let h = headroom(Some((1000 * MB, "MEMGUARD_MEMORY_LIMIT")), Some(300 * MB), None, Some(20_000 * MB)).unwrap();
        assert_eq!(h, Headroom { available_bytes: 700 * MB, source: "MEMGUARD_MEMORY_LIMIT" });
    }

    #[test]
    fn container_limit_then_mem_available() {
        let cg = CgroupMemory { usage: 600 * MB, limit: Some(700 * MB) };
        assert_eq!(headroom(None, None, Some(cg), Some(20_000 * MB)).unwrap().source, "cgroup");
        assert_eq!(headroom(None, None, Some(cg), Some(20_000 * MB)).unwrap().available_bytes, 100 * MB);
        let unlimited = CgroupMemory { usage: 600 * MB, limit: None };
        assert_eq!(headroom(None, None, Some(unlimited), Some(50 * MB)).unwrap().source, "MemAvailable");
        assert_eq!(headroom(None, None, None, None), None);
    }

    #[test]
    fn memory_bound_is_explicit_or_the_containers() {
        let cg = CgroupMemory { usage: 600 * MB, limit: Some(700 * MB) };
        let b = memory_bound(None, Some(50 * MB), Some(cg)).unwrap();
        assert_eq!((b.limit_bytes, b.used_bytes, b.source, b.available()), (700 * MB, 600 * MB, "cgroup", 100 * MB));
        let b = memory_bound(Some((1000 * MB, "MEMGUARD_RSS_LIMIT")), Some(50 * MB), Some(cg)).unwrap();
        assert_eq!((b.used_bytes, b.source), (50 * MB, "MEMGUARD_RSS_LIMIT"));
        assert_eq!(memory_bound(None, Some(50 * MB), Some(CgroupMemory { usage: 1, limit: None })), None);
        assert_eq!(memory_bound(None, Some(50 * MB), None), None);
    }

    #[test]
    fn auto_skips_what_cannot_be_afforded() {
        let h = Some(Headroom { available_bytes: 500 * MB, source: "cgroup" });
        assert_eq!(decide(SnapshotMode::Auto, 30 * MB, h), Ok(()));
        let skip = decide(SnapshotMode::Auto, 64 * MB, h).unwrap_err();
        assert_eq!(skip.needed_bytes, Some(1024 * MB));
        assert_eq!(skip.reason, "a snapshot needs about 1024 MB of memory and only 500 MB is available (cgroup)");
        assert_eq!(decide(SnapshotMode::Always, 64 * MB, h), Ok(()));
        assert_eq!(decide(SnapshotMode::Auto, 64 * MB, None), Ok(()), "unknown headroom: take it");
        assert_eq!(decide(SnapshotMode::Never, 1, h).unwrap_err().reason, "MEMGUARD_SNAPSHOT=never");
    }
}
