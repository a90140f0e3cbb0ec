//! `summary.json`: what a bundle holds and why it was written. Rewritten
//! whole (atomically) each time an artifact appears, so it is always valid.

use serde::Serialize;

use crate::afford::Skip;
use crate::config::Config;
use crate::heapprofile::AllocationSite;
use crate::recorder::Digest;

/// `v8::HeapStatistics`, as plain numbers.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeapStats {
    pub total_heap_size: u64,
    pub total_heap_size_executable: u64,
    pub total_physical_size: u64,
    pub total_available_size: u64,
    pub used_heap_size: u64,
    pub heap_size_limit: u64,
    pub malloced_memory: u64,
    pub peak_malloced_memory: u64,
    pub external_memory: u64,
    pub number_of_native_contexts: u64,
    pub number_of_detached_contexts: u64,
    pub total_global_handles_size: u64,
    pub used_global_handles_size: u64,
}

/// `v8::HeapSpaceStatistics` for one space.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpaceStats {
    pub space_name: String,
    pub space_size: u64,
    pub space_used_size: u64,
    pub space_available_size: u64,
    pub physical_space_size: u64,
}

/// One file written into the bundle.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRecord {
    pub name: String,
    /// Size on disk.
    pub bytes: u64,
    /// Size before compression (what `gunzip` gives back).
    pub uncompressed_bytes: u64,
    pub millis: u64,
}

/// One frame of the JS stack (1-based line and column, as V8 and Node's
/// stack traces show them).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StackFrame {
    pub function_name: String,
    pub url: String,
    pub line: i32,
    pub column: i32,
}

/// The near-heap-limit callback's view of the limit when it fired.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeapLimit {
    pub current: u64,
    pub initial: u64,
    /// The limit memguard returned to V8 (headroom for the snapshot).
    pub granted: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capture {
    pub seq: u32,
    /// `near-heap-limit`, `heap-threshold`, `rss`, `signal`, `leak`,
    /// `last-affordable` or `api`.
    pub trigger: String,
    pub reason: Option<String>,
    pub time: String,
    /// Resident memory of the process when the capture began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// The trigger's own facts (the RSS crossing, the leak verdict, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    pub heap: HeapStats,
    pub spaces: Vec<SpaceStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heap_limit: Option<HeapLimit>,
    pub files: Vec<FileRecord>,
    /// Where the live sampled bytes were allocated, largest first (when the
    /// sampling heap profiler runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_allocation_sites: Option<Vec<AllocationSite>>,
    /// Near-heap-limit: the JS stack of the code that was allocating when
    /// memory ran out (innermost frame first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<Vec<StackFrame>>,
    /// When the stack was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_taken: Option<String>,
    /// What the snapshot was expected to need in memory and what it took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_memory: Option<SnapshotMemory>,
    /// Why no heap snapshot was taken (`outcome` is then `skipped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_skipped: Option<Skip>,
    /// `writing`, `written`, `skipped` or `failed`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub millis: u64,
    /// Captures requested before this near-limit one and dropped in its
    /// favour (a second snapshot of the same heap would only double the pause).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub folded: Vec<Folded>,
}

/// A snapshot's memory, estimated before and measured while V8 took it, so
/// the estimate (`afford::snapshot_estimate`) can be checked on real bundles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotMemory {
    /// The estimate the affordability check used.
    pub estimated_bytes: u64,
    /// Peak RSS while the snapshot was taken, minus RSS before it.
    pub peak_bytes: u64,
    pub rss_before_bytes: u64,
    /// How the peak was measured: `VmHWM` (the kernel's high-water mark rose
    /// during the snapshot: exact) or `sampled` (RSS read every 5 ms).
    pub measured_by: &'static str,
    /// How long V8 stopped the thread to take and serialize it.
    pub pause_ms: u64,
}

/// A capture that was pending when a near-limit capture ran, folded into it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Folded {
    pub trigger: String,
    pub reason: Option<String>,
}

/// Facts about the process, gathered by `index.js` (Node's view of itself).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInfo {
    pub pid: u32,
    pub thread_id: u32,
    pub node_version: String,
    pub v8_version: String,
    pub abi: String,
    pub argv: Vec<String>,
    pub exec_argv: Vec<String>,
    /// Node's own `--heapsnapshot-near-heap-limit=N` option if given (empty
    /// otherwise): then Node, not memguard, handles the near-limit event.
    #[serde(default, skip_serializing)]
    pub node_near_limit_flag: String,
    /// The `memguard-report` binary that uploads bundles (found by index.js).
    #[serde(default, skip_serializing)]
    pub uploader: String,
    /// Node's `--max-semi-space-size` in MiB if given (0 otherwise), and a
    /// worker's `resourceLimits.maxYoungGenerationSizeMb`: the young
    /// generation's part of the heap limit (see heaplimit.rs).
    #[serde(default, skip_serializing)]
    pub max_semi_space_mb: f64,
    #[serde(default, skip_serializing)]
    pub worker_young_generation_mb: f64,
}

/// The manifest's name in a bundle (the report reads what the agent writes).
pub const SUMMARY_FILE: &str = "summary.json";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub memguard: &'static str,
    pub node: String,
    pub v8: String,
    pub abi: String,
    pub pid: u32,
    pub thread_id: u32,
    pub argv: Vec<String>,
    pub exec_argv: Vec<String>,
    pub started_at: String,
    pub config: Config,
    /// The flight recorder's file and digest, when the timeline is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<TimelineSummary>,
    pub captures: Vec<Capture>,
    /// How the process ended, when memguard saw it end (`exit` with its code,
    /// or a signal); absent while running or after a crash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<serde_json::Value>,
    /// What memguard has cost the process so far (process-wide), as of this write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_cost: Option<crate::selfcost::SelfCost>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineSummary {
    pub file: String,
    pub digest: Digest,
}

impl Manifest {
    pub fn new(info: &ProcessInfo, config: &Config, started_at: String) -> Manifest {
        Manifest {
            memguard: env!("CARGO_PKG_VERSION"),
            node: info.node_version.clone(),
            v8: info.v8_version.clone(),
            abi: info.abi.clone(),
            pid: info.pid,
            thread_id: info.thread_id,
            argv: info.argv.clone(),
            exec_argv: info.exec_argv.clone(),
            started_at,
            config: config.clone(),
            timeline: None,
            captures: Vec::new(),
            ended: None,
            self_cost: None,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("manifest serializes");
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn manifest_serializes_with_camel_case_fields() {
        let info = ProcessInfo { pid: 7, node_version: "v20.0.0".into(), ..Default::default() };
        let mut m = Manifest::new(&info, &Config::defaults(Path::new("/a")), "2026-01-01T00:00:00Z".into());
        m.captures.push(Capture {
            seq: 1,
            trigger: "api".into(),
            reason: Some("test".into()),
            time: "t".into(),
            rss_bytes: Some(9),
            detail: None,
            heap: HeapStats { used_heap_size: 5, ..Default::default() },
            spaces: vec![],
            heap_limit: None,
            files: vec![FileRecord { name: "heap-1.heapsnapshot.gz".into(), bytes: 1, uncompressed_bytes: 2, millis: 3 }],
            top_allocation_sites: None,
            stack: None,
            stack_taken: None,
            snapshot_memory: None,
            snapshot_skipped: None,
            outcome: "written".into(),
            error: None,
            millis: 4,
            folded: vec![],
        });
        let v: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
        assert_eq!(v["pid"], 7);
        assert_eq!(v["config"]["nearLimitSnapshots"], 1);
        assert_eq!(v["captures"][0]["heap"]["usedHeapSize"], 5);
        assert_eq!(v["captures"][0]["files"][0]["uncompressedBytes"], 2);
        assert!(v["captures"][0].get("heapLimit").is_none());
        assert!(v["captures"][0].get("folded").is_none(), "left out when empty");
    }
}
