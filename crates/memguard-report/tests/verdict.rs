//! The verdict's parts on hand-built inputs with known answers: the
//! accumulation-point walk (a Map's entries, a leak beside a big cache, a
//! heap with nothing accumulated), the holder and its name, and the gate
//! (growing, flat, saturated, too short; a big heap that does not grow
//! gets no suspect).

mod common;

use common::Snap;
use memguard_report::report::{AccumulationPoint, GcPause, HeapSample, LeakVerdict, Report, SnapshotSummary, TimelineSummary};
use memguard_report::snapshot::{self, accumulation, progress::Progress};
use memguard_report::verdict::{self, gate};

/// `n` entries of `class`, each `size` bytes, in a Map's table named `name` held by `holder`.
fn map_of(s: &mut Snap, holder: usize, name: &str, class: &str, n: usize, size: u32) -> (usize, usize) {
    let map = s.node("object", "Map", 40);
    let table = s.node("array", "(object elements)", 64);
    s.edge(holder, "context", name, map);
    s.edge(map, "internal", "table", table);
    for i in 0..n {
        let e = s.node("object", class, size);
        s.edge(table, "element", &i.to_string(), e);
    }
    (map, table)
}

fn accumulations(s: &Snap, file: &str) -> Vec<AccumulationPoint> {
    let a = snapshot::analyse(&s.write(file), &Progress::silent()).unwrap();
    a.accumulations()
}

#[test]
fn the_walk_descends_to_a_maps_table_and_names_the_map() {
    let mut s = Snap::new();
    let ctx = s.node("hidden", "system / Context", 32);
    s.edge(0, "element", "1", ctx);
    map_of(&mut s, ctx, "sessions", "UserSession", 500, 1000);
    // Some unrelated small objects beside.
    for i in 0..20 {
        let o = s.node("object", "Config", 100);
        s.edge(0, "element", &(i + 2).to_string(), o);
    }
    let points = accumulations(&s, "acc-map.heapsnapshot");
    assert_eq!(points.len(), 1, "{points:#?}");
    let p = &points[0];
    assert_eq!((p.class.as_str(), p.objects, p.retained_size), ("UserSession", 500, 500_000));
    assert_eq!((p.holder.class.as_str(), p.holder.edge.as_deref()), ("Map", Some("sessions")));
    assert!(!p.internal);
    assert_eq!(verdict::holder_text(p), "Map 'sessions'");
}

#[test]
fn two_large_children_are_each_walked() {
    // A leak (60 %) beside a cache (40 %): neither child keeps 80 %, both are points.
    let mut s = Snap::new();
    let ctx = s.node("hidden", "system / Context", 32);
    s.edge(0, "element", "1", ctx);
    map_of(&mut s, ctx, "leak", "Leaked", 600, 1000);
    map_of(&mut s, ctx, "cache", "Cached", 400, 1000);
    let points = accumulations(&s, "acc-two.heapsnapshot");
    let named: Vec<(&str, Option<&str>)> = points.iter().map(|p| (p.class.as_str(), p.holder.edge.as_deref())).collect();
    assert_eq!(named, [("Leaked", Some("leak")), ("Cached", Some("cache"))]);
}

#[test]
fn nothing_accumulates_in_a_heap_of_small_independent_roots() {
    let mut s = Snap::new();
    for i in 0..2000 {
        let o = s.node("object", "Thing", 1000);
        s.edge(0, "element", &i.to_string(), o);
    }
    assert!(accumulations(&s, "acc-none.heapsnapshot").is_empty());
}

#[test]
fn an_internal_class_names_the_point_only_when_no_app_class_comes_close() {
    let mut s = Snap::new();
    let ctx = s.node("hidden", "system / Context", 32);
    s.edge(0, "element", "1", ctx);
    let list = s.node("object", "Array", 32);
    let store = s.node("array", "(object elements)", 64);
    s.edge(ctx, "context", "listeners", list);
    s.edge(list, "internal", "elements", store);
    // Closures (class `Function`, not internal) each holding its own context: a closure leak.
    for i in 0..300 {
        let f = s.node("closure", "onData", 64);
        let c = s.node("hidden", "system / Context", 2000);
        s.edge(store, "element", &i.to_string(), f);
        s.edge(f, "internal", "context", c);
    }
    let points = accumulations(&s, "acc-closures.heapsnapshot");
    let p = &points[0];
    assert_eq!((p.class.as_str(), p.objects), ("Function", 300));
    assert_eq!((p.holder.class.as_str(), p.holder.edge.as_deref()), ("Array", Some("listeners")));

    // The walk itself, on a bare dominator tree: root → A (90 %) → B (95 % of A) → many leaves.
    let mut idom = vec![0u32, 0, 1];
    let mut retained = vec![1000u64, 900, 860];
    for _ in 0..86 {
        idom.push(2);
        retained.push(10);
    }
    idom.push(0);
    retained.push(100);
    assert_eq!(accumulation::points(&idom, &retained, 0, |_| true), Vec::<u32>::new(), "under 256 kB: nothing to name");
    let scaled: Vec<u64> = retained.iter().map(|r| r * 1_000_000).collect();
    assert_eq!(accumulation::points(&idom, &scaled, 0, |n| n != 0), vec![2]);
}

// ---------------------------------------------------------------- the gate

/// A timeline whose mark-compacts leave `heap(i)` bytes, one every 100 ms.
fn timeline(n: usize, verdict: &str, heap: impl Fn(usize) -> f64) -> TimelineSummary {
    let pauses: Vec<GcPause> = (0..n)
        .map(|i| GcPause { t: i as f64 * 100.0, kind: "mark-compact".into(), ms: 1.0, heap_after: heap(i) as u64 })
        .collect();
    let peak = pauses.iter().map(|p| p.heap_after).max().unwrap_or(0);
    TimelineSummary {
        heap_used_peak: peak,
        samples: vec![HeapSample { t: 0.0, heap_used: 0, heap_limit: 1 << 30, rss: None, spaces: vec![] }],
        pauses,
        leak: LeakVerdict { verdict: verdict.into(), span_ms: (n.max(1) - 1) as f64 * 100.0, ..LeakVerdict::default() },
        ..TimelineSummary::default()
    }
}

/// Deterministic jitter of ±`amp` bytes.
fn jitter(i: usize, amp: f64) -> f64 {
    (((i * 7919) % 101) as f64 / 50.0 - 1.0) * amp
}

#[test]
fn the_gate_tells_growth_from_a_flat_heap_and_a_cache_that_filled_up() {
    let mb = 1e6;
    let growing = timeline(200, "growing", |i| 20.0 * mb + i as f64 * 0.2 * mb + jitter(i, 0.3 * mb));
    assert_eq!(gate::heap_trend(&growing, false).state, "growing");
    let flat = timeline(200, "stable", |i| 80.0 * mb + jitter(i, 2.0 * mb));
    assert_eq!(gate::heap_trend(&flat, false).state, "flat");
    // Rose for the first 40 %, then flat: the timeline alone says growing; the last half says it stopped.
    let filled = timeline(200, "growing", |i| 20.0 * mb + (i.min(80) as f64) * 0.5 * mb + jitter(i, 0.2 * mb));
    assert_eq!(gate::heap_trend(&filled, false).state, "saturated");
    // The same curve ending in a near-heap-limit capture grew until the limit stopped it.
    assert_eq!(gate::heap_trend(&filled, true).state, "growing");
    assert_eq!(gate::heap_trend(&flat, true).state, "flat");
    assert_eq!(gate::heap_trend(&timeline(3, "too-short", |i| i as f64 * mb), false).state, "too-short");
    // 1.8 s rising to the heap limit, then GCs thrashing flat at the top (the last half does not
    // rise) and a near-heap-limit capture: a fast leak, not too little data. Without the capture
    // it stays too short to judge, and so does a short flat heap.
    let fast = timeline(19, "too-short", |i| 20.0 * mb + (i.min(8) as f64) * 5.0 * mb + jitter(i, 0.3 * mb));
    assert_eq!(gate::heap_trend(&fast, true).state, "growing");
    assert_eq!(gate::heap_trend(&fast, false).state, "too-short");
    let short_flat = timeline(19, "too-short", |i| 40.0 * mb + jitter(i, 0.3 * mb));
    assert_eq!(gate::heap_trend(&short_flat, true).state, "too-short");
}

/// A report whose snapshot has one big accumulation point, and `timeline`.
fn report_with(timeline: Option<TimelineSummary>) -> Report {
    let mut s = Snap::new();
    let ctx = s.node("hidden", "system / Context", 32);
    s.edge(0, "element", "1", ctx);
    map_of(&mut s, ctx, "catalog", "Product", 800, 1000);
    let a = snapshot::analyse(&s.write("gate-report.heapsnapshot"), &Progress::silent()).unwrap();
    let snapshot = SnapshotSummary { accumulations: a.accumulations(), reachable_size: a.retained[0], ..SnapshotSummary::default() };
    Report { snapshot: Some(snapshot), timeline, ..Report::default() }
}

#[test]
fn a_big_heap_that_does_not_grow_gets_no_suspect() {
    let mb = 1e6;
    let flat = report_with(Some(timeline(200, "stable", |i| 80.0 * mb + jitter(i, 2.0 * mb))));
    let v = verdict::judge(&flat);
    assert_eq!((v.status.as_str(), v.reason.as_deref()), ("no-leak-suspect", Some("flat")));
    assert!(v.suspects.is_empty());
    assert_eq!(v.not_growing[0].class, "Product");
    assert!(v.headline.starts_with("No leak suspect: the heap was flat over the timeline"), "{}", v.headline);

    let filled = report_with(Some(timeline(200, "growing", |i| 20.0 * mb + (i.min(80) as f64) * 0.5 * mb)));
    assert_eq!(verdict::judge(&filled).reason.as_deref(), Some("saturated"));

    let unknown = verdict::judge(&report_with(None));
    assert_eq!((unknown.status.as_str(), unknown.reason.as_deref()), ("no-leak-suspect", Some("too-little-data")));

    let growing = report_with(Some(timeline(200, "growing", |i| 20.0 * mb + i as f64 * 0.2 * mb)));
    let v = verdict::judge(&growing);
    assert_eq!(v.status, "leak-suspect");
    assert_eq!(v.suspects[0].class, "Product");
    assert!(v.headline.starts_with("Leak suspect: 800 Product (800.0 kB) held by Map 'catalog'"), "{}", v.headline);
}
