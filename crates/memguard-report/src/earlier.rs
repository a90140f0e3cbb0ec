//! A snapshot from before the end: in a container the snapshot at death is
//! often unaffordable, and memguard takes one at the last affordable moment
//! instead (trigger `last-affordable`). The report says so — the heap then
//! vs at the end — and the verdict counts the growth after it from the
//! timeline.

use serde_json::Value;

use crate::report::{EarlierSnapshot, TimelineSummary};

/// Captures whose snapshot is taken early on purpose (the process lives on).
const EARLY_TRIGGERS: &[&str] = &["last-affordable"];

/// The capture in `summary` that wrote `snapshot_file` (a path or a name),
/// when it is an early one, with the heap at its time and the most the
/// timeline saw after it.
pub fn find(
    summary: Option<&Value>,
    timeline: Option<&TimelineSummary>,
    snapshot_file: &str,
) -> Option<EarlierSnapshot> {
    let name = snapshot_file.rsplit('/').next().unwrap_or(snapshot_file);
    let captures = summary?.get("captures")?.as_array()?;
    let capture = captures.iter().find(|c| {
        c.get("files")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|f| f.get("name").and_then(Value::as_str) == Some(name)))
    })?;
    let trigger = capture.get("trigger")?.as_str()?;
    if !EARLY_TRIGGERS.contains(&trigger) {
        return None;
    }
    let heap_used_then = capture.get("heap")?.get("usedHeapSize")?.as_u64()?;
    let heap_used_at_end = timeline.map(|t| t.heap_used_peak).filter(|&peak| peak > heap_used_then);
    Some(EarlierSnapshot {
        trigger: trigger.into(),
        time: capture.get("time").and_then(Value::as_str).map(String::from),
        heap_used_then,
        heap_used_at_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(trigger: &str) -> Value {
        json!({"captures": [
            {"trigger": trigger, "time": "2026-12-02T02:31:00.000Z", "heap": {"usedHeapSize": 19_000_000},
             "files": [{"name": "allocations-1.heapprofile"}, {"name": "heap-1.heapsnapshot.gz"}]},
            {"trigger": "rss", "heap": {"usedHeapSize": 250_000_000}, "files": [{"name": "allocations-2.heapprofile"}]}
        ]})
    }

    #[test]
    fn a_last_affordable_snapshot_is_from_earlier() {
        let timeline = TimelineSummary { heap_used_peak: 260_000_000, ..TimelineSummary::default() };
        let e = find(Some(&summary("last-affordable")), Some(&timeline), "/b/x/heap-1.heapsnapshot.gz").unwrap();
        assert_eq!(
            (e.trigger.as_str(), e.heap_used_then, e.heap_used_at_end),
            ("last-affordable", 19_000_000, Some(260_000_000))
        );
        assert_eq!(e.time.as_deref(), Some("2026-12-02T02:31:00.000Z"));
        // Without a timeline, the heap at the end is not known.
        assert_eq!(
            find(Some(&summary("last-affordable")), None, "heap-1.heapsnapshot.gz").unwrap().heap_used_at_end,
            None
        );
    }

    #[test]
    fn other_snapshots_are_not() {
        assert_eq!(find(Some(&summary("near-heap-limit")), None, "heap-1.heapsnapshot.gz"), None);
        assert_eq!(find(Some(&summary("last-affordable")), None, "heap-2.heapsnapshot.gz"), None, "another file");
        assert_eq!(find(None, None, "heap-1.heapsnapshot.gz"), None, "a snapshot file alone");
    }
}
