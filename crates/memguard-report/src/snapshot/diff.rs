//! Two snapshots of one process compared by node id (stable across snapshots):
//! per class, objects present only after (added) or only before (removed),
//! counts and retained sizes on both sides, ranked by retained growth, with
//! the retainer path that holds most of the added objects.

use std::collections::HashMap;
use std::path::Path;

use super::progress::Progress;
use super::{analyse, Analysis, Options};
use crate::report::{ClassDelta, SnapshotDiff};
use crate::ReportError;

/// One class in the earlier snapshot: count, retained and its objects' ids (sorted).
struct Before {
    count: u64,
    retained: u64,
    ids: Vec<u32>,
}

pub fn diff(before: &Path, after: &Path, opts: &Options, progress: &Progress) -> Result<SnapshotDiff, ReportError> {
    let old = index_before(before, progress)?;
    let a = analyse(after, progress)?;
    Ok(compare(before, &old, after, &a, opts, progress))
}

/// The earlier snapshot reduced to per-class id lists (keyed by class key),
/// so only one graph is in memory at a time; and the retained size of its
/// larger nodes by id, for holders that grew.
pub struct BeforeIndex(HashMap<String, Before>, HashMap<u32, u64>);

/// Nodes retaining at least this share of the earlier heap keep their
/// retained size (a holder worth naming is far larger).
const BIG_SHARE: u64 = 2000;

pub fn index_before(before: &Path, progress: &Progress) -> Result<BeforeIndex, ReportError> {
    let mut old: HashMap<String, Before> = HashMap::new();
    let a = analyse(before, progress)?;
    for agg in &a.classes.aggs {
        old.insert(agg.key.clone(), Before { count: agg.count, retained: agg.max_ret, ids: Vec::new() });
    }
    for o in 0..a.g.node_count() {
        let c = a.classes.class_of(&a.g, o);
        if c != u32::MAX {
            if let Some(b) = old.get_mut(&a.classes.aggs[c as usize].key) {
                b.ids.push(a.g.node_id[o]);
            }
        }
    }
    for b in old.values_mut() {
        b.ids.sort_unstable();
    }
    let floor = a.retained[a.g.root as usize] / BIG_SHARE;
    let big = a.retained.iter().enumerate().filter(|(_, &r)| r >= floor).map(|(o, &r)| (a.g.node_id[o], r)).collect();
    Ok(BeforeIndex(old, big))
}

/// Each accumulation point's growth since the earlier snapshot: its class's
/// objects under it that are new (ids absent before: memlab's leak set, new
/// and still alive), and its holder's retained size then (matched by the
/// holder's id — a Map's backing store is reallocated as it grows, the Map
/// is not).
pub fn growth(old: &BeforeIndex, a: &Analysis, points: &mut [crate::report::AccumulationPoint]) {
    for p in points.iter_mut() {
        let c = a.classes.agg_of_key[p.class_key as usize];
        let ids = (c != u32::MAX).then(|| old.0.get(&a.classes.aggs[c as usize].key)).flatten().map(|b| b.ids.as_slice());
        let (mut objects, mut bytes) = (0u64, 0u64);
        for o in a.members(p) {
            let id = a.g.node_id[o as usize];
            if !ids.is_some_and(|ids| ids.binary_search(&id).is_ok()) {
                objects += 1;
                bytes += a.retained[o as usize];
            }
        }
        p.growth = Some(crate::report::Growth {
            objects_added: Some(objects),
            bytes_added: Some(bytes),
            holder_before: old.1.get(&(p.holder.id as u32)).copied(),
            heap_bytes_per_min: None,
        });
    }
}

/// Per-class deltas of the analysed later snapshot `a` against `old`.
pub fn compare(before: &Path, old: &BeforeIndex, after: &Path, a: &Analysis, opts: &Options, progress: &Progress) -> SnapshotDiff {
    let old = &old.0;
    progress.phase("diff");
    let aggs = &a.classes.aggs;
    // Objects per class in the later snapshot, split into added and kept.
    let mut added: Vec<Vec<u32>> = vec![Vec::new(); aggs.len()];
    let mut kept: Vec<u64> = vec![0; aggs.len()];
    for o in 0..a.g.node_count() {
        let c = a.classes.class_of(&a.g, o);
        if c == u32::MAX {
            continue;
        }
        let id = a.g.node_id[o];
        let was_there = old.get(&aggs[c as usize].key).is_some_and(|b| b.ids.binary_search(&id).is_ok());
        if was_there {
            kept[c as usize] += 1;
        } else {
            added[c as usize].push(o as u32);
        }
    }
    let mut classes: Vec<ClassDelta> = Vec::new();
    let mut seen_keys = std::collections::HashSet::new();
    for (i, agg) in aggs.iter().enumerate() {
        seen_keys.insert(agg.key.clone());
        let b = old.get(&agg.key);
        let count_before = b.map_or(0, |b| b.count);
        let retained_before = b.map_or(0, |b| b.retained);
        classes.push(ClassDelta {
            name: agg.name.clone(),
            count_before,
            count_after: agg.count,
            added: added[i].len() as u64,
            removed: count_before.saturating_sub(kept[i]),
            retained_before,
            retained_after: agg.max_ret,
            retained_delta: agg.max_ret as i64 - retained_before as i64,
            retainer_path: None,
        });
    }
    for (key, b) in old {
        if seen_keys.contains(key) {
            continue;
        }
        let name = key.rsplit_once(',').map(|(_, n)| n).unwrap_or(key);
        // Names may contain commas; the key's name is everything after the
        // location, which for `,Name` keys is everything after the first comma.
        let name = if let Some(rest) = key.strip_prefix(',') { rest } else { name };
        classes.push(ClassDelta {
            name: name.to_string(),
            count_before: b.count,
            count_after: 0,
            added: 0,
            removed: b.count,
            retained_before: b.retained,
            retained_after: 0,
            retained_delta: -(b.retained as i64),
            retainer_path: None,
        });
    }
    // Rank; then paths for the first `opts.paths` ranked classes that gained
    // objects (a class that only grew through what it holds has no new
    // object to explain).
    let mut order: Vec<usize> = (0..classes.len()).collect();
    order.sort_by(|&x, &y| {
        classes[y]
            .retained_delta
            .cmp(&classes[x].retained_delta)
            .then_with(|| classes[y].added.cmp(&classes[x].added))
            .then_with(|| classes[x].name.cmp(&classes[y].name))
    });
    let ctx = a.path_context();
    let mut ranked = Vec::new();
    let mut paths_left = opts.paths;
    for &i in order.iter().take(opts.top) {
        let mut delta = classes[i].clone();
        if paths_left > 0 && delta.added > 0 {
            paths_left -= 1;
            // Entries below aggs.len() are the later snapshot's classes, same index.
            if i < aggs.len() {
                // Added objects not inside another object of the class.
                let objects: Vec<u32> =
                    added[i].iter().copied().filter(|&o| a.classes.counted.get(o as usize)).collect();
                let objects = if objects.is_empty() { added[i].clone() } else { objects };
                delta.retainer_path = ctx.path_for(&delta.name, &objects);
            }
        }
        ranked.push(delta);
    }
    SnapshotDiff { before: before.display().to_string(), after: after.display().to_string(), classes: ranked }
}
