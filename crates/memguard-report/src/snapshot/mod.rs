//! Heap snapshot engine: streamed reader → compact graph (CSR) → dominators and
//! retained sizes with DevTools' rules → classes, retainer paths, diff by node id.
//!
//! One concern per module: `reader` (streamed parse), `strings` (string arena),
//! `graph` (CSR columns), `weakmap` (ephemeron edge names), `prepare`
//! (DevTools' passes before dominators), `dominators`, `distances`, `classes`,
//! `paths`, `diff`, `progress`, `pipe` (gzip decoding on its own thread).

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::report::{ClassStat, SnapshotDiff, SnapshotSummary};
use crate::ReportError;

pub mod accumulation;
pub mod classes;
pub mod diff;
pub mod distances;
pub mod dominators;
pub mod graph;
pub mod paths;
pub mod pipe;
pub mod prepare;
pub mod progress;
pub mod reader;
pub mod strings;
pub mod weakmap;

use graph::Graph;
use progress::Progress;

/// What to compute and how much of it to keep.
#[derive(Debug, Clone)]
pub struct Options {
    /// Classes kept in the ranking.
    pub top: usize,
    /// Classes (from the top) that get a retainer path.
    pub paths: usize,
    /// Show a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { top: 20, paths: 5, progress: false }
    }
}


/// A scoped thread's result; a panic there goes on in this thread.
pub(crate) fn joined<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Frees a large value on a thread of its own: handing hundreds of MB back
/// to the kernel takes tens of ms the caller need not wait for. (If no
/// thread can be started, the value is freed here, with the closure.)
pub(crate) fn free_beside<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new().name("memguard-free".into()).spawn(move || drop(value));
}

/// Wall time per phase, in milliseconds.
#[derive(Debug, Default, Clone)]
pub struct Timings(pub Vec<(String, f64)>);

impl Timings {
    fn time<T>(&mut self, name: &str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        // Peak-memory work needs per-phase numbers; off unless asked for.
        if std::env::var_os("MEMGUARD_REPORT_DEBUG_RSS").is_some() {
            let st = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let l: Vec<&str> = st.lines().filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS")).collect();
            eprintln!("{name}: {l:?}");
        }
        self.0.push((name.to_string(), start.elapsed().as_secs_f64() * 1000.0));
        out
    }
}

/// A snapshot read and taken through dominators and retained sizes.
pub struct Retained {
    pub g: Graph,
    pub dominators: dominators::Dominators,
    pub retained: Vec<u64>,
    pub timings: Timings,
}

/// Everything the report needs from one snapshot.
pub struct Analysis {
    pub g: Graph,
    pub idom: Vec<u32>,
    pub retained: Vec<u64>,
    pub distances: distances::Distances,
    pub classes: classes::Classes,
    pub timings: Timings,
}

fn map_read_error(path: &Path, e: reader::ReadError) -> ReportError {
    match e {
        reader::ReadError::Io(source) => ReportError::Io { path: path.to_path_buf(), source },
        reader::ReadError::Truncated(reason) => ReportError::Truncated { path: path.to_path_buf(), reason },
        reader::ReadError::Corrupt(reason) => ReportError::Corrupt { path: path.to_path_buf(), reason },
    }
}

/// Reads `path` and computes the dominator tree and retained sizes.
pub fn retained(path: &Path, progress: &Progress) -> Result<Retained, ReportError> {
    let Prepared { g, essential, ephemerons, mut timings } = prepared(path, progress)?;
    drop(ephemerons);
    progress.phase("dominators");
    let dominators = timings.time("dominators", || dominators::compute(&g, &essential, || ()));
    drop(essential);
    progress.phase("retained sizes");
    let retained = timings.time("retained", || dominators::retained_sizes(&g, &dominators.idom, &dominators.preorder));
    Ok(Retained { g, dominators, retained, timings })
}

/// A snapshot read and prepared for the dominator tree.
struct Prepared {
    g: Graph,
    essential: graph::Bits,
    ephemerons: weakmap::EphemeronNames,
    timings: Timings,
}

/// Reads `path` and applies DevTools' passes before the dominator tree.
fn prepared(path: &Path, progress: &Progress) -> Result<Prepared, ReportError> {
    let mut timings = Timings::default();
    let raw = timings
        .time("parse", || reader::read_file(path, progress.bar()))
        .map_err(|e| map_read_error(path, e))?;
    progress.phase("graph");
    let (g, essential, ephemerons) = timings.time("graph", || {
        let mut g = Graph::from_raw(raw);
        prepare::propagate_dom_state(&mut g);
        // Two cores: this thread walks the page-owned nodes and then marks
        // the essential edges; beside the walk a second one parses the
        // WeakMap edge names (the marking needs them), beside the marking a
        // third does the independent shallow-size transfer.
        let mut sizes = std::mem::take(&mut g.self_size);
        let (sizes, essential, ephemerons) = std::thread::scope(|scope| {
            let graph = &g;
            let names = scope.spawn(move || weakmap::EphemeronNames::new(&graph.strings));
            let owned = prepare::page_owned(graph);
            let ephemerons = joined(names);
            let transfer = scope.spawn(move || {
                prepare::transfer_owned_sizes(graph, &mut sizes);
                sizes
            });
            let essential = prepare::essential_edges(graph, &owned, &ephemerons);
            (joined(transfer), essential, ephemerons)
        });
        g.self_size = sizes;
        (g, essential, ephemerons)
    });
    Ok(Prepared { g, essential, ephemerons, timings })
}

/// The full analysis: retained sizes, distances, class names and aggregates.
pub fn analyse(path: &Path, progress: &Progress) -> Result<Analysis, ReportError> {
    let Prepared { mut g, essential, ephemerons, mut timings } = prepared(path, progress)?;
    progress.phase("dominators");
    // The classes look locations up in node order: sorted on the dominator
    // tree's second thread, which has time to spare.
    let mut locations = std::mem::take(&mut g.locations);
    let node_count = g.node_count();
    let dominators = timings.time("dominators", || {
        dominators::compute(&g, &essential, || classes::sort_locations(&mut locations, node_count))
    });
    g.locations = locations;
    drop(essential);
    let idom = dominators.idom;
    let preorder = dominators.preorder;
    // Two threads on the shared graph: the distances need only the graph;
    // this one sums the retained sizes, then names and counts the classes.
    // The classes' last step takes the BFS queue's buffer for the dominator
    // tree's children lists (the big arrays of both threads come from this
    // one's allocator arena). The class names made up are added to the graph
    // afterwards.
    progress.phase("classes");
    let ms = |start: Instant| start.elapsed().as_secs_f64() * 1000.0;
    let (retained, classes, added, distances) = std::thread::scope(|scope| {
        let graph = &g;
        let via_edge = Vec::with_capacity(graph.node_count());
        let mut queue = std::collections::VecDeque::with_capacity(graph.node_count());
        let ephemerons = &ephemerons;
        let distances = scope.spawn(move || {
            let start = Instant::now();
            let d = distances::compute_in(graph, ephemerons, via_edge, &mut queue);
            ((d, ms(start)), queue)
        });
        let start = Instant::now();
        let retained = dominators::retained_sizes(graph, &idom, &preorder);
        timings.0.push(("retained".into(), ms(start)));
        drop(preorder);
        let start = Instant::now();
        // The classes wait for the distances before building the children
        // lists: those take the BFS queue's buffer.
        let (classes, added, distances) = classes::aggregate(graph, &retained, &idom, || {
            let (d, queue) = joined(distances);
            (d, Vec::from(queue))
        });
        timings.0.push(("classes".into(), ms(start)));
        (retained, classes, added, distances)
    });
    let (distances, distances_ms) = distances;
    timings.0.push(("distances".into(), distances_ms));
    added.append_to(&mut g);
    Ok(Analysis { g, idom, retained, distances, classes, timings })
}

impl Analysis {
    pub fn path_context(&self) -> paths::PathContext<'_> {
        paths::PathContext {
            g: &self.g,
            idom: &self.idom,
            retained: &self.retained,
            classes: &self.classes,
            distances: &self.distances,
        }
    }

    /// Aggregate indexes ranked by retained size (maxRet), largest first.
    pub fn ranked_classes(&self) -> Vec<usize> {
        let aggs = &self.classes.aggs;
        let mut order: Vec<usize> = (0..aggs.len()).collect();
        order.sort_by(|&a, &b| aggs[b].max_ret.cmp(&aggs[a].max_ret).then_with(|| aggs[a].name.cmp(&aggs[b].name)));
        order
    }

    /// For each aggregate of `aggs`, its objects that count toward its
    /// retained size: those with no dominator of the same class (DevTools'
    /// maxRet rule). One pass over the nodes for all of them.
    pub fn top_level_objects(&self, aggs: &[usize]) -> Vec<Vec<u32>> {
        let c = &self.classes;
        let mut slot = vec![usize::MAX; c.aggs.len()];
        for (k, &a) in aggs.iter().enumerate() {
            slot[a] = k;
        }
        let mut objects = vec![Vec::new(); aggs.len()];
        for o in 0..c.key_of.len() {
            if !c.counted.get(o) {
                continue;
            }
            let a = c.class_of(&self.g, o);
            if let Some(&k) = slot.get(a as usize).filter(|&&k| k != usize::MAX) {
                objects[k].push(o as u32);
            }
        }
        objects
    }
}

/// Reads one `.heapsnapshot` or `.heapsnapshot.gz` and summarises it.
pub fn summarize(path: &Path, opts: &Options) -> Result<SnapshotSummary, ReportError> {
    let progress = Progress::new(opts.progress, file_len(path));
    let result = summarize_with(path, opts, &progress);
    progress.finish();
    result
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn summarize_with(path: &Path, opts: &Options, progress: &Progress) -> Result<SnapshotSummary, ReportError> {
    let mut a = analyse(path, progress)?;
    Ok(summary_of(path, &mut a, opts, progress))
}

fn summary_of(path: &Path, a: &mut Analysis, opts: &Options, progress: &Progress) -> SnapshotSummary {
    let ranked = a.ranked_classes();
    let aggs = &a.classes.aggs;
    let classes: Vec<ClassStat> = ranked
        .iter()
        .take(opts.top)
        .map(|&i| ClassStat {
            name: aggs[i].name.clone(),
            count: aggs[i].count,
            shallow_size: aggs[i].self_size,
            retained_size: aggs[i].max_ret,
        })
        .collect();
    progress.phase("paths");
    let start = Instant::now();
    let chosen = path_classes(&ranked, aggs, opts);
    let objects = a.top_level_objects(&chosen);
    // Each class's path on its own: every other class on a second thread.
    let ctx = a.path_context();
    let path_of = |k: usize| ctx.path_for(&aggs[chosen[k]].name, &objects[k]);
    let (even, odd): (Vec<_>, Vec<_>) = std::thread::scope(|scope| {
        let odd = scope.spawn(|| (1..chosen.len()).step_by(2).map(path_of).collect::<Vec<_>>());
        let even = (0..chosen.len()).step_by(2).map(path_of).collect::<Vec<_>>();
        (even, joined(odd))
    });
    // Back in ranking order: even, odd, even, …
    let mut retainer_paths = Vec::new();
    let mut odd = odd.into_iter();
    for p in even {
        retainer_paths.extend(p);
        retainer_paths.extend(odd.next().flatten());
    }
    a.timings.0.push(("paths".into(), start.elapsed().as_secs_f64() * 1000.0));
    let start = Instant::now();
    let accumulations = a.accumulations();
    a.timings.0.push(("accumulation".into(), start.elapsed().as_secs_f64() * 1000.0));
    SnapshotSummary {
        accumulations,
        reachable_size: a.retained[a.g.root as usize],
        file: path.display().to_string(),
        node_count: a.g.node_count() as u64,
        edge_count: a.g.edge_count() as u64,
        total_size: a.g.self_size.iter().map(|&s| u64::from(s)).sum(),
        classes,
        retainer_paths,
        timings_ms: a.timings.0.clone(),
        earlier: None,
    }
}

/// The classes that get a retainer path: of the top `opts.top`, first the
/// app's own classes with many objects (`Session`, `{host, user}`, `Buffer`),
/// largest retained first, then the rest. That a few holders retain a lot
/// (`Map`, `Timeout`, `system / Context`) the class table already shows; a
/// path is worth most where it explains why thousands of objects live on.
fn path_classes(ranked: &[usize], aggs: &[classes::ClassAgg], opts: &Options) -> Vec<usize> {
    const CONTAINERS: &[&str] = &["Object", "Array", "Map", "Set", "WeakMap", "WeakSet", "Function", "global", "Window"];
    const MANY: u64 = 100;
    let explains_most = |agg: &classes::ClassAgg| {
        let internal = agg.name.starts_with('(') || agg.name.starts_with("system /");
        agg.count >= MANY && !internal && !CONTAINERS.contains(&agg.name.as_str())
    };
    let top = &ranked[..ranked.len().min(opts.top)];
    let (first, rest): (Vec<usize>, Vec<usize>) = top.iter().partition(|&&i| explains_most(&aggs[i]));
    first.into_iter().chain(rest).take(opts.paths).collect()
}

/// Compares two snapshots of one process by node id.
pub fn diff(before: &Path, after: &Path, opts: &Options) -> Result<SnapshotDiff, ReportError> {
    let progress = Progress::new(opts.progress, file_len(before) + file_len(after));
    let result = diff::diff(before, after, opts, &progress);
    progress.finish();
    result
}

/// The newest snapshot summarised and compared with an earlier one of the same
/// process, reading each file once (`summarize` + `diff` read `after` twice).
/// The earlier one is reduced to id lists first, so one graph is in memory at
/// a time.
pub fn summarize_and_diff(
    after: &Path,
    before: &Path,
    opts: &Options,
) -> Result<(SnapshotSummary, SnapshotDiff), ReportError> {
    let progress = Progress::new(opts.progress, file_len(before) + file_len(after));
    let result = (|| {
        let old = diff::index_before(before, &progress)?;
        let mut a = analyse(after, &progress)?;
        let mut summary = summary_of(after, &mut a, opts, &progress);
        let d = diff::compare(before, &old, after, &a, opts, &progress);
        diff::growth(&old, &a, &mut summary.accumulations);
        Ok((summary, d))
    })();
    progress.finish();
    result
}

/// Writes `id retained_size` for every node, in snapshot order; with
/// `classes_out`, the class aggregates (DevTools' `aggregatesWithFilter({})`
/// shape) as JSON there too, so the DevTools comparison test checks both from
/// one run.
pub fn write_retained(path: &Path, out: &mut dyn Write, classes_out: Option<&Path>) -> Result<(), ReportError> {
    let stdout_err = |source| ReportError::Io { path: "<stdout>".into(), source };
    let progress = Progress::silent();
    if let Some(file) = classes_out {
        let a = analyse(path, &progress)?;
        write_lines(&a.g, &a.retained, out).map_err(stdout_err)?;
        let json = aggregates_json(&a);
        std::fs::write(file, json).map_err(|source| ReportError::Io { path: file.into(), source })?;
    } else {
        let r = retained(path, &progress)?;
        write_lines(&r.g, &r.retained, out).map_err(stdout_err)?;
    }
    Ok(())
}

fn write_lines(g: &Graph, retained: &[u64], out: &mut dyn Write) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1 << 16);
    for (id, r) in g.node_id.iter().zip(retained) {
        let _ = writeln!(buf, "{id} {r}");
        if buf.len() > (1 << 16) - 64 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)
}

/// `{ classKey: {count, self, maxRet, name} }`; later aggregates with the same
/// public key replace earlier ones, as in DevTools' object.
fn aggregates_json(a: &Analysis) -> String {
    let mut map = serde_json::Map::new();
    for agg in &a.classes.aggs {
        map.insert(
            agg.key.clone(),
            serde_json::json!({ "count": agg.count, "self": agg.self_size, "maxRet": agg.max_ret, "name": agg.name }),
        );
    }
    serde_json::Value::Object(map).to_string()
}
