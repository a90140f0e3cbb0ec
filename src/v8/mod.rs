//! The V8 boundary: every `unsafe` line and every call into C++ (shim.cc).
//! Everything outside this module sees a safe API. Callbacks from V8 enter
//! Rust through trampolines that catch panics: a panic must never unwind
//! into V8.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::rc::Rc;

use memguard_core::heapprofile::{ProfileNode, ProfileSample};
use memguard_core::manifest::{HeapStats, SpaceStats, StackFrame};

#[repr(C)]
#[derive(Default)]
struct RawHeapStats {
    total_heap_size: u64,
    total_heap_size_executable: u64,
    total_physical_size: u64,
    total_available_size: u64,
    used_heap_size: u64,
    heap_size_limit: u64,
    malloced_memory: u64,
    peak_malloced_memory: u64,
    external_memory: u64,
    number_of_native_contexts: u64,
    number_of_detached_contexts: u64,
    total_global_handles_size: u64,
    used_global_handles_size: u64,
}

#[repr(C)]
struct RawSpaceStats {
    name: [c_char; 48],
    space_size: u64,
    space_used_size: u64,
    space_available_size: u64,
    physical_space_size: u64,
}

type NearLimitFn = extern "C" fn(*mut c_void, usize, usize) -> usize;
type ChunkFn = extern "C" fn(*mut c_void, *const c_char, usize) -> c_int;
type GcFn = extern "C" fn(*mut c_void, c_int, c_int, c_int);
type ProfileNodeFn =
    extern "C" fn(*mut c_void, u32, u32, *const c_char, usize, *const c_char, usize, c_int, c_int, c_int, u64);
type ProfileSampleFn = extern "C" fn(*mut c_void, u32, u64, u32, u64);
type InterruptFn = extern "C" fn(*mut c_void);
type FrameFn = extern "C" fn(*mut c_void, *const c_char, usize, *const c_char, usize, c_int, c_int);

extern "C" {
    fn mg_current_isolate() -> *mut c_void;
    fn mg_heap_stats(isolate: *mut c_void, out: *mut RawHeapStats);
    fn mg_heap_space_count(isolate: *mut c_void) -> usize;
    fn mg_heap_space_stats(isolate: *mut c_void, index: usize, out: *mut RawSpaceStats) -> c_int;
    fn mg_add_near_heap_limit_callback(isolate: *mut c_void, cb: NearLimitFn, data: *mut c_void);
    fn mg_remove_near_heap_limit_callback(isolate: *mut c_void, cb: NearLimitFn);
    fn mg_restore_initial_heap_limit(isolate: *mut c_void, threshold_percent: f64);
    fn mg_default_young_generation_size() -> usize;
    fn mg_write_heap_snapshot(isolate: *mut c_void, sink: ChunkFn, data: *mut c_void) -> c_int;
    fn mg_add_gc_callbacks(isolate: *mut c_void, cb: GcFn, data: *mut c_void) -> *mut c_void;
    fn mg_remove_gc_callbacks(isolate: *mut c_void, cookie: *mut c_void);
    fn mg_used_heap_size(isolate: *mut c_void) -> u64;
    fn mg_start_sampling_heap_profiler(isolate: *mut c_void, interval: u64, stack_depth: c_int) -> c_int;
    fn mg_stop_sampling_heap_profiler(isolate: *mut c_void);
    fn mg_trim_native_memory();
    fn mg_allocation_profile(
        isolate: *mut c_void,
        node_fn: ProfileNodeFn,
        sample_fn: ProfileSampleFn,
        data: *mut c_void,
    ) -> c_int;
    fn mg_current_stack(isolate: *mut c_void, max_frames: c_int, fn_: FrameFn, data: *mut c_void) -> c_int;
    fn mg_request_interrupt(isolate: *mut c_void, fn_: InterruptFn, data: *mut c_void);
    fn mg_watch_signal(signum: c_int, fn_: SignalFn, data: *mut c_void) -> c_int;
}

type SignalFn = extern "C" fn(*mut c_void);

/// The V8 isolate of the calling thread. Not `Send`: V8 may only be called on
/// the isolate's own thread, so the handle cannot leave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isolate {
    ptr: NonNull<c_void>,
    _not_send: PhantomData<*mut ()>,
}

#[derive(Debug)]
pub enum SnapshotError {
    /// The sink refused a chunk (the writer failed: disk full, …).
    Stopped,
    /// V8 returned no snapshot.
    NotTaken,
}

impl Isolate {
    /// The isolate entered on this thread, if any (inside a napi call there
    /// always is one).
    pub fn current() -> Option<Isolate> {
        // SAFETY: Isolate::TryGetCurrent only reads a thread-local.
        NonNull::new(unsafe { mg_current_isolate() }).map(|ptr| Isolate { ptr, _not_send: PhantomData })
    }

    pub fn heap_stats(self) -> HeapStats {
        let mut s = RawHeapStats::default();
        // SAFETY: `self` is the live isolate of this thread; `s` is writable.
        unsafe { mg_heap_stats(self.ptr.as_ptr(), &mut s) };
        HeapStats {
            total_heap_size: s.total_heap_size,
            total_heap_size_executable: s.total_heap_size_executable,
            total_physical_size: s.total_physical_size,
            total_available_size: s.total_available_size,
            used_heap_size: s.used_heap_size,
            heap_size_limit: s.heap_size_limit,
            malloced_memory: s.malloced_memory,
            peak_malloced_memory: s.peak_malloced_memory,
            external_memory: s.external_memory,
            number_of_native_contexts: s.number_of_native_contexts,
            number_of_detached_contexts: s.number_of_detached_contexts,
            total_global_handles_size: s.total_global_handles_size,
            used_global_handles_size: s.used_global_handles_size,
        }
    }

    pub fn space_stats(self) -> Vec<SpaceStats> {
        // SAFETY: as above; each `raw` is a writable struct the shim fills.
        let count = unsafe { mg_heap_space_count(self.ptr.as_ptr()) };
        (0..count)
            .filter_map(|i| {
                let mut raw = RawSpaceStats {
                    name: [0; 48],
                    space_size: 0,
                    space_used_size: 0,
                    space_available_size: 0,
                    physical_space_size: 0,
                };
                if unsafe { mg_heap_space_stats(self.ptr.as_ptr(), i, &mut raw) } == 0 {
                    return None;
                }
                // SAFETY: the shim NUL-terminates `name` within its 48 bytes.
                let name = unsafe { CStr::from_ptr(raw.name.as_ptr()) }.to_string_lossy().into_owned();
                Some(SpaceStats {
                    space_name: name,
                    space_size: raw.space_size,
                    space_used_size: raw.space_used_size,
                    space_available_size: raw.space_available_size,
                    physical_space_size: raw.physical_space_size,
                })
            })
            .collect()
    }

    /// Used heap only (for the GC callbacks, which run thousands of times a second).
    pub fn used_heap_size(self) -> u64 {
        // SAFETY: live isolate of this thread.
        unsafe { mg_used_heap_size(self.ptr.as_ptr()) }
    }

    /// The young generation's part of `heap_size_limit` as Node sizes it
    /// by default (see shim.cc); 0 when the machine's memory is unknown.
    pub fn default_young_generation_size() -> u64 {
        // SAFETY: a pure computation of V8's, no isolate involved.
        unsafe { mg_default_young_generation_size() as u64 }
    }

    /// Lets V8 bring a raised heap limit back down once used heap falls below
    /// `threshold` of the initial limit.
    pub fn restore_initial_heap_limit(self, threshold: f64) {
        // SAFETY: live isolate of this thread.
        unsafe { mg_restore_initial_heap_limit(self.ptr.as_ptr(), threshold) };
    }

    /// Takes a heap snapshot and streams its JSON to `sink`, chunk by chunk;
    /// `sink` returns `false` to stop. Synchronous, on this thread.
    pub fn write_heap_snapshot(self, sink: &mut dyn FnMut(&[u8]) -> bool) -> Result<(), SnapshotError> {
        extern "C" fn trampoline(data: *mut c_void, bytes: *const c_char, len: usize) -> c_int {
            // SAFETY: `data` is the `&mut &mut dyn FnMut` below, alive for the
            // whole mg_write_heap_snapshot call; V8 gives `len` valid bytes.
            let sink = unsafe { &mut *(data as *mut &mut dyn FnMut(&[u8]) -> bool) };
            let chunk = unsafe { std::slice::from_raw_parts(bytes as *const u8, len) };
            match catch_unwind(AssertUnwindSafe(|| sink(chunk))) {
                Ok(true) => 0,
                _ => 1,
            }
        }
        let mut sink = sink;
        let data = &mut sink as *mut &mut dyn FnMut(&[u8]) -> bool as *mut c_void;
        // SAFETY: live isolate of this thread; `data` outlives the call.
        match unsafe { mg_write_heap_snapshot(self.ptr.as_ptr(), trampoline, data) } {
            0 => Ok(()),
            1 => Err(SnapshotError::Stopped),
            _ => Err(SnapshotError::NotTaken),
        }
    }
}

/// A handler lent to V8 as a callback's `data` pointer: holds one strong
/// reference until dropped, which must happen only after V8 forgot it.
struct Lent<H>(*const H);

impl<H> Lent<H> {
    fn new(handler: &Rc<H>) -> Self {
        Lent(Rc::into_raw(Rc::clone(handler)))
    }
    fn data(&self) -> *mut c_void {
        self.0 as *mut c_void
    }
    /// SAFETY: `data` must come from `Lent::data` of a live `Lent<H>`.
    unsafe fn get<'a>(data: *mut c_void) -> &'a H {
        &*(data as *const H)
    }
}

impl<H> Drop for Lent<H> {
    fn drop(&mut self) {
        // SAFETY: created by Rc::into_raw in `new`; released exactly once.
        drop(unsafe { Rc::from_raw(self.0) });
    }
}

/// What V8 calls when the heap nears its limit. Runs on the isolate's
/// thread, inside a GC: it may take a heap snapshot but must not run JS.
/// Returns the new limit: strictly more than `current` grants headroom;
/// anything else lets V8 fail with its usual out-of-memory error.
pub trait NearHeapLimitHandler {
    fn near_heap_limit(&self, current: usize, initial: usize) -> usize;
}

/// An installed near-heap-limit callback; removed on drop.
pub struct NearHeapLimitHook<H: NearHeapLimitHandler> {
    isolate: Isolate,
    _handler: Lent<H>,
}

impl<H: NearHeapLimitHandler> NearHeapLimitHook<H> {
    extern "C" fn trampoline(data: *mut c_void, current: usize, initial: usize) -> usize {
        // SAFETY: `data` is the hook's Lent, alive until the callback is removed.
        let handler = unsafe { Lent::<H>::get(data) };
        // A panic here would unwind into V8; answer as if memguard were absent.
        catch_unwind(AssertUnwindSafe(|| handler.near_heap_limit(current, initial))).unwrap_or(current)
    }

    /// Adds `handler` as the isolate's near-heap-limit callback. V8 runs only
    /// the most recently added one.
    pub fn install(isolate: Isolate, handler: &Rc<H>) -> Self {
        let handler = Lent::new(handler);
        // SAFETY: live isolate of this thread; `handler` outlives the registration.
        unsafe { mg_add_near_heap_limit_callback(isolate.ptr.as_ptr(), Self::trampoline, handler.data()) };
        NearHeapLimitHook { isolate, _handler: handler }
    }
}

impl<H: NearHeapLimitHandler> Drop for NearHeapLimitHook<H> {
    fn drop(&mut self) {
        // SAFETY: on the isolate's thread (the hook is not Send); `handler`
        // is released after this, when V8 no longer holds it.
        unsafe { mg_remove_near_heap_limit_callback(self.isolate.ptr.as_ptr(), Self::trampoline) };
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcPhase {
    Start,
    End,
}

/// Told of every garbage collection, at its start and end, inside the GC:
/// it must not allocate on the V8 heap, call JS, or block.
pub trait GcHandler {
    fn gc(&self, phase: GcPhase, kind: u32, flags: u32);
}

/// Installed GC prologue and epilogue callbacks; removed on drop.
pub struct GcHook<H: GcHandler> {
    isolate: Isolate,
    cookie: *mut c_void,
    _handler: Lent<H>,
}

impl<H: GcHandler> GcHook<H> {
    extern "C" fn trampoline(data: *mut c_void, phase: c_int, kind: c_int, flags: c_int) {
        // SAFETY: `data` is the hook's Lent, alive until the callbacks are removed.
        let handler = unsafe { Lent::<H>::get(data) };
        let phase = if phase == 0 { GcPhase::Start } else { GcPhase::End };
        memguard_core::selfcost::timed(|| {
            let _ = catch_unwind(AssertUnwindSafe(|| handler.gc(phase, kind as u32, flags as u32)));
        });
    }

    pub fn install(isolate: Isolate, handler: &Rc<H>) -> Self {
        let handler = Lent::new(handler);
        // SAFETY: live isolate of this thread; `handler` outlives the registration.
        let cookie = unsafe { mg_add_gc_callbacks(isolate.ptr.as_ptr(), Self::trampoline, handler.data()) };
        GcHook { isolate, cookie, _handler: handler }
    }
}

impl<H: GcHandler> Drop for GcHook<H> {
    fn drop(&mut self) {
        // SAFETY: on the isolate's thread; the cookie came from mg_add_gc_callbacks.
        unsafe { mg_remove_gc_callbacks(self.isolate.ptr.as_ptr(), self.cookie) };
    }
}

fn lossy(ptr: *const c_char, len: usize) -> String {
    // SAFETY: the shim passes `len` valid bytes (UTF-8 from V8) at `ptr`.
    String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }).into_owned()
}

/// Returns freed native memory (a snapshot's graph) to the system.
pub fn trim_native_memory() {
    // SAFETY: no arguments, no V8; malloc_trim may run on any thread.
    unsafe { mg_trim_native_memory() }
}

impl Isolate {
    /// Starts V8's sampling heap profiler: one sample per `interval` bytes
    /// allocated on average. `false` if it was already running.
    pub fn start_sampling_heap_profiler(self, interval: u64) -> bool {
        // SAFETY: live isolate of this thread.
        unsafe { mg_start_sampling_heap_profiler(self.ptr.as_ptr(), interval, 64) != 0 }
    }

    pub fn stop_sampling_heap_profiler(self) {
        // SAFETY: live isolate of this thread.
        unsafe { mg_stop_sampling_heap_profiler(self.ptr.as_ptr()) }
    }

    /// The sampling profiler's view of live allocations: flat nodes (parents
    /// first) and samples; `None` when the profiler is not running.
    pub fn allocation_profile(self) -> Option<(Vec<ProfileNode>, Vec<ProfileSample>)> {
        type Out = (Vec<ProfileNode>, Vec<ProfileSample>);
        #[allow(clippy::too_many_arguments)]
        extern "C" fn on_node(
            data: *mut c_void,
            id: u32,
            parent: u32,
            name: *const c_char,
            name_len: usize,
            url: *const c_char,
            url_len: usize,
            script_id: c_int,
            line: c_int,
            column: c_int,
            self_size: u64,
        ) {
            // SAFETY: `data` is the `Out` below, alive for the whole call.
            let out = unsafe { &mut *(data as *mut Out) };
            let node = ProfileNode {
                id,
                parent,
                function_name: lossy(name, name_len),
                url: lossy(url, url_len),
                script_id,
                line,
                column,
                self_size,
            };
            let _ = catch_unwind(AssertUnwindSafe(|| out.0.push(node)));
        }
        extern "C" fn on_sample(data: *mut c_void, node_id: u32, size: u64, count: u32, sample_id: u64) {
            // SAFETY: as above.
            let out = unsafe { &mut *(data as *mut Out) };
            let _ = catch_unwind(AssertUnwindSafe(|| out.1.push(ProfileSample { node_id, size, count, sample_id })));
        }
        let mut out: Out = (Vec::new(), Vec::new());
        // SAFETY: live isolate; `out` outlives the call.
        let ok = unsafe {
            mg_allocation_profile(self.ptr.as_ptr(), on_node, on_sample, &mut out as *mut Out as *mut c_void)
        };
        (ok != 0).then_some(out)
    }

    /// The JS stack of this thread, innermost frame first (at most `max`).
    pub fn current_stack(self, max: usize) -> Vec<StackFrame> {
        extern "C" fn on_frame(
            data: *mut c_void,
            name: *const c_char,
            name_len: usize,
            url: *const c_char,
            url_len: usize,
            line: c_int,
            column: c_int,
        ) {
            // SAFETY: `data` is the Vec below, alive for the whole call.
            let frames = unsafe { &mut *(data as *mut Vec<StackFrame>) };
            let frame = StackFrame { function_name: lossy(name, name_len), url: lossy(url, url_len), line, column };
            let _ = catch_unwind(AssertUnwindSafe(|| frames.push(frame)));
        }
        let mut frames = Vec::new();
        // SAFETY: live isolate; `frames` outlives the call.
        unsafe {
            mg_current_stack(self.ptr.as_ptr(), max as c_int, on_frame, &mut frames as *mut Vec<StackFrame> as *mut c_void)
        };
        frames
    }
}

type InterruptTask = Box<dyn FnOnce(Isolate)>;

extern "C" fn run_interrupt(data: *mut c_void) {
    // SAFETY: `data` is a Box<InterruptTask> leaked by a request below; V8
    // runs each interrupt once.
    let task = unsafe { Box::from_raw(data as *mut InterruptTask) };
    if let Some(isolate) = Isolate::current() {
        let _ = catch_unwind(AssertUnwindSafe(move || task(isolate)));
    }
}

impl Isolate {
    /// A handle that other threads may use to ask this isolate for an
    /// interrupt (see `RemoteIsolate`).
    pub fn remote(self) -> RemoteIsolate {
        RemoteIsolate { ptr: self.ptr }
    }

    /// Runs `task` on this isolate's thread when JS next checks for
    /// interrupts (soon, even in a loop that never yields). If the isolate
    /// goes away first, the task is never run.
    pub fn request_interrupt(self, task: impl FnOnce(Isolate) + 'static) {
        let task: Box<InterruptTask> = Box::new(Box::new(task));
        // SAFETY: live isolate of this thread; the task is freed by run_interrupt.
        unsafe { mg_request_interrupt(self.ptr.as_ptr(), run_interrupt, Box::into_raw(task) as *mut c_void) };
    }
}

/// An isolate as seen from another thread: the one thing such a thread may
/// do is ask for an interrupt (`Isolate::RequestInterrupt` is thread-safe).
/// It must not outlive the isolate: the owner of a `RemoteIsolate` keeps it
/// where the isolate's thread can take it away (under a lock) before the
/// isolate goes (see `remote.rs`).
pub struct RemoteIsolate {
    ptr: NonNull<c_void>,
}

// SAFETY: only RequestInterrupt is reachable through it, which V8 allows
// from any thread; liveness is the owner's contract (above).
unsafe impl Send for RemoteIsolate {}

impl RemoteIsolate {
    /// Runs `task` on the isolate's thread at its next interrupt check.
    ///
    /// # Safety
    /// The isolate must still be alive: call it only while holding the lock
    /// under which the isolate's thread removes this handle before teardown.
    pub unsafe fn request_interrupt(&self, task: impl FnOnce(Isolate) + Send + 'static) {
        let task: Box<InterruptTask> = Box::new(Box::new(task));
        mg_request_interrupt(self.ptr.as_ptr(), run_interrupt, Box::into_raw(task) as *mut c_void);
    }
}

/// Calls `on_signal` on a background thread (its own libuv loop) each time
/// `signum` arrives, for the rest of the process. It runs there, not on a JS
/// thread: it must not call V8 other than through a `RemoteIsolate`.
/// `false` if the signal could not be watched.
pub fn watch_signal(signum: i32, on_signal: Box<dyn Fn() + Send + Sync>) -> bool {
    extern "C" fn trampoline(data: *mut c_void) {
        // SAFETY: `data` is the leaked Box below, alive for the process.
        let on_signal = unsafe { &*(data as *const Box<dyn Fn() + Send + Sync>) };
        let _ = catch_unwind(AssertUnwindSafe(on_signal));
    }
    let data = Box::into_raw(Box::new(on_signal));
    // SAFETY: `data` is leaked on success (the watch lasts for the process)
    // and taken back on failure, when the shim keeps no reference to it.
    let ok = unsafe { mg_watch_signal(signum, trampoline, data as *mut c_void) } != 0;
    if !ok {
        drop(unsafe { Box::from_raw(data) });
    }
    ok
}
