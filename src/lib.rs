//! The napi surface of memguard: the functions `index.js` calls, and nothing
//! else. Each runs on the calling thread's isolate (main thread or worker).

mod capture;
mod guard;
mod remote;
mod timeline;
mod v8;
mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, Utc};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::{json, Value};

use memguard_core::bundle::{bundle_name, choose_root, Bundle};
use memguard_core::config::{Config, DiskBudget};
use memguard_core::crashes;
use memguard_core::heaplimit::YoungGeneration;
use memguard_core::selfcost;
use memguard_core::upload;
use memguard_core::writer;
use memguard_core::log;
use memguard_core::manifest::{Manifest, ProcessInfo};

use crate::capture::Trigger;
use crate::guard::Guard;

/// The ABI (`process.versions.modules`) this binary was compiled for.
#[napi]
pub fn built_abi() -> String {
    env!("MEMGUARD_BUILT_ABI").to_string()
}

/// Whether this is the process's main thread (its thread id is the pid):
/// index.js then needs no `node:worker_threads`, whose loading costs ~2 ms
/// of every start. `false` when unknown (index.js then asks Node).
#[napi]
pub fn is_main_thread() -> bool {
    memguard_core::procmem::on_main_thread().unwrap_or(false)
}

/// Starts guarding the calling thread's isolate. `vars` are the `MEMGUARD*`
/// variables of this thread's `process.env`, `info` what Node knows of the
/// process (see index.js). Returns `{active, bundleDir, config}`. Calling it
/// again on a guarded thread returns the same answer and changes nothing.
#[napi]
pub fn start(env: Env, vars: HashMap<String, String>, info: Value, cwd: String) -> Result<Value> {
    if let Some(guard) = guard::current() {
        return Ok(describe(true, Some(&guard.bundle.path()), &guard.config));
    }
    let (config, warnings) = Config::from_vars(&vars, Path::new(&cwd));
    log::set_level(config.log);
    for warning in &warnings {
        log::warn_once(warning);
    }
    if !config.enabled {
        log::debug("disabled by MEMGUARD");
        return Ok(describe(false, None, &config));
    }
    let info: ProcessInfo = serde_json::from_value(info).map_err(|e| Error::from_reason(e.to_string()))?;
    let Some(isolate) = v8::Isolate::current() else {
        log::warn_once("no V8 isolate on this thread; memguard is inactive here");
        return Ok(describe(false, None, &config));
    };
    let Some(root) = usable_root(&config.dir) else {
        return Ok(describe(false, None, &config));
    };

    if info.thread_id == 0 {
        crashes::scan_in_background(root.clone(), info.pid);
        upload::set_uploader(&info.uploader);
        if config.upload.target.is_some() {
            upload::leftovers_in_background(root.clone(), info.pid);
        }
    }
    let started = process_start();
    match config.max_disk {
        DiskBudget::Bytes(max) => writer::limit_disk(&root, max),
        DiskBudget::Auto => writer::limit_disk_auto(&root, isolate.heap_stats().heap_size_limit),
        DiskBudget::Off => {}
    }
    let bundle = Bundle::new(root, bundle_name(started, info.pid, info.thread_id));
    let manifest = Manifest::new(&info, &config, started.to_rfc3339_opts(SecondsFormat::Secs, true));
    let young = YoungGeneration {
        worker_mb: info.worker_young_generation_mb,
        semi_space_flag_mb: info.max_semi_space_mb,
    };
    let guard = Guard::new(isolate, config, bundle, manifest, young);
    let node_flag = &info.node_near_limit_flag;
    if !node_flag.is_empty() {
        // V8 runs only the newest near-limit callback: installing ours would
        // silently switch off the snapshot the user asked Node for.
        log::info_once(&format!(
            "Node's {node_flag} is set, so Node writes the near-heap-limit snapshots; memguard leaves that to it"
        ));
    } else {
        guard.watch_near_heap_limit();
    }
    guard::set_current(guard.clone());
    remote::register(info.thread_id, isolate);
    watch::start_once(&guard.config);
    if let Some(addr) = guard.config.metrics {
        memguard_core::metrics::http::start_once(addr);
    }
    guard.start_allocation_sampling();
    guard.start_recording();
    // A worker's isolate goes away with the worker: drop our callbacks first.
    env.add_env_cleanup_hook((), |()| guard::release_current(json!({ "reason": "environment-cleanup" })))?;
    log::debug(&format!(
        "guarding {} (bundle {})",
        if info.thread_id == 0 { "the main thread".to_string() } else { format!("worker {}", info.thread_id) },
        guard.bundle.path().display()
    ));
    Ok(describe(true, Some(&guard.bundle.path()), &guard.config))
}

fn describe(active: bool, bundle: Option<&Path>, config: &Config) -> Value {
    json!({
        "active": active,
        "bundleDir": bundle.map(|p| p.display().to_string()),
        "config": config,
    })
}

/// The directory for this thread's bundle (see `choose_root`), with its
/// one warning; `None` when no directory can be used.
fn usable_root(dir: &Path) -> Option<PathBuf> {
    let choice = choose_root(dir);
    if let Some(warning) = &choice.warning {
        log::warn_once(warning);
    }
    choice.root
}

/// When memguard first started in this process: all bundles of a process
/// carry the same time, so they sort together.
fn process_start() -> DateTime<Utc> {
    static START: OnceLock<DateTime<Utc>> = OnceLock::new();
    *START.get_or_init(Utc::now)
}

/// Writes a compressed heap snapshot now; returns its path, or `null` when
/// memguard is not active on this thread.
#[napi]
pub fn snapshot(reason: Option<String>) -> Result<Option<String>> {
    let Some(guard) = guard::current() else { return Ok(None) };
    capture::capture(&guard, Trigger::Api(reason))
        .map(|path| Some(path.display().to_string()))
        .map_err(Error::from_reason)
}

/// Earlier processes that died without a trace, found in the bundle
/// directory at this process's start and announced then (see `crashes`).
#[napi]
pub fn previous_crashes() -> Value {
    serde_json::to_value(crashes::previous()).unwrap_or_default()
}

/// Heap statistics and per-space statistics of this thread's isolate.
#[napi]
pub fn stats() -> Result<Value> {
    let isolate = v8::Isolate::current().ok_or_else(|| Error::from_reason("no V8 isolate on this thread"))?;
    Ok(json!({ "heap": isolate.heap_stats(), "spaces": isolate.space_stats() }))
}

/// Stops guarding this thread: the V8 callbacks are removed, the timeline
/// closed, state freed.
#[napi]
pub fn stop() {
    guard::release_current(json!({ "reason": "stop" }));
}

/// The thread is ending (`how`: e.g. `{reason: "exit", code}`): final
/// timeline records and manifest, then everything is released.
#[napi]
pub fn shutdown(how: Value) {
    guard::release_current(how);
}

/// Takes one heap sample into the timeline (called from an unref'd timer).
#[napi]
pub fn sample(array_buffers: f64) {
    selfcost::timed(|| {
        if let Some(timeline) = guard::current().and_then(|g| g.timeline.clone()) {
            timeline.sample(array_buffers as u64);
        }
    })
}

/// Adds a marker record to the timeline and puts the timeline on disk.
#[napi]
pub fn mark(name: String, detail: Value) {
    if let Some(guard) = guard::current() {
        guard.mark(&name, detail);
        guard.flush();
    }
}

/// The last `last` timeline records (JSON lines), oldest first.
#[napi]
pub fn timeline(last: u32) -> Vec<String> {
    guard::current()
        .and_then(|g| g.timeline.clone())
        .map(|t| t.shared.last(last as usize))
        .unwrap_or_default()
}

/// Events for JS listeners since the last call (`[{type, info}]`), oldest first.
#[napi]
pub fn take_events() -> Vec<Value> {
    selfcost::timed(|| guard::current().map(|g| std::mem::take(&mut *g.events.borrow_mut())).unwrap_or_default())
}

/// What memguard has cost this process so far (see `selfcost`).
#[napi]
pub fn self_cost() -> Value {
    serde_json::to_value(selfcost::current()).unwrap_or(Value::Null)
}

/// The current sampling heap profile in DevTools' `SamplingHeapProfile`
/// format, or `null` when allocation sampling is off.
#[napi]
pub fn allocation_profile() -> Option<Value> {
    let (nodes, samples) = guard::current()?.allocation_profile()?;
    Some(memguard_core::heapprofile::to_cdp(&nodes, &samples))
}

/// This thread's metrics and the process's (`memguard.metrics`), read from
/// what the recorder already published; `drain` also hands over the GC
/// events since the last drain (for OpenTelemetry's histogram). `null` when
/// memguard does not guard this thread.
#[napi]
pub fn metrics(drain: bool) -> Option<Value> {
    let thread = u64::from(guard::current()?.manifest.borrow().thread_id);
    Some(memguard_core::metrics::snapshot(thread, drain))
}
