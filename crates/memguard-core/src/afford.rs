//! Can this process afford a heap snapshot right now? V8 builds the whole
//! heap graph in native memory before writing a byte; in a container that is
//! where the kernel OOM killer strikes mid-snapshot and nothing is written.
//! Pure: the caller reads the numbers, this decides.

use serde::Serialize;

use crate::config::SnapshotMode;
use crate::procmem::CgroupMemory;

/// Native memory a snapshot needs beyond what the process already uses, per
/// byte of used heap (peak RSS during the snapshot minus RSS before, over
/// used heap). Measured on Node 20 here: 100 MB of small objects (709 k):
/// 14.8×; 221 MB of small objects (`bench/snapshot.js`): 11.5×; 100 MB of
/// 1 KiB strings (258 k objects): 8.1×. Object-dense heaps cost most (V8
/// keeps ~150 B per node and edge), so the estimate takes the top of that.
pub const SNAPSHOT_BYTES_PER_HEAP_BYTE: u64 = 15;

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
    if let Some((limit, source)) = memory_limit {
        let available_bytes = limit.saturating_sub(rss.unwrap_or(0));
        return Some(Headroom { available_bytes, source });
    }
    let container = cgroup.and_then(|c| c.limit.map(|limit| limit.saturating_sub(c.usage)));
    match (container, mem_available) {
        (Some(c), Some(m)) if m < c => Some(Headroom { available_bytes: m, source: "MemAvailable" }),
        (Some(c), _) => Some(Headroom { available_bytes: c, source: "cgroup" }),
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
            let needed = used_heap.saturating_mul(SNAPSHOT_BYTES_PER_HEAP_BYTE);
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
    fn auto_skips_what_cannot_be_afforded() {
        let h = Some(Headroom { available_bytes: 500 * MB, source: "cgroup" });
        assert_eq!(decide(SnapshotMode::Auto, 30 * MB, h), Ok(()));
        let skip = decide(SnapshotMode::Auto, 64 * MB, h).unwrap_err();
        assert_eq!(skip.needed_bytes, Some(960 * MB));
        assert_eq!(skip.reason, "a snapshot needs about 960 MB of memory and only 500 MB is available (cgroup)");
        assert_eq!(decide(SnapshotMode::Always, 64 * MB, h), Ok(()));
        assert_eq!(decide(SnapshotMode::Auto, 64 * MB, None), Ok(()), "unknown headroom: take it");
        assert_eq!(decide(SnapshotMode::Never, 1, h).unwrap_err().reason, "MEMGUARD_SNAPSHOT=never");
    }
}
