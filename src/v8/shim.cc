// The only C++ in memguard: thin extern "C" wrappers over the V8 API that
// Node-API cannot reach. No policy lives here; src/v8/mod.rs wraps each
// function in a safe Rust API, and callbacks go straight to Rust.
//
// V8's C++ API is not ABI-stable: this file is compiled against the headers
// of the exact Node that loads the addon (see build.rs).

#include <v8.h>
#include <v8-profiler.h>
#include <uv.h>
#include <pthread.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>

#define MG_EXPORT extern "C" __attribute__((visibility("hidden")))

extern "C" {

// Mirrors memguard_core::manifest::HeapStats field by field (see mod.rs).
struct mg_heap_stats {
  uint64_t total_heap_size;
  uint64_t total_heap_size_executable;
  uint64_t total_physical_size;
  uint64_t total_available_size;
  uint64_t used_heap_size;
  uint64_t heap_size_limit;
  uint64_t malloced_memory;
  uint64_t peak_malloced_memory;
  uint64_t external_memory;
  uint64_t number_of_native_contexts;
  uint64_t number_of_detached_contexts;
  uint64_t total_global_handles_size;
  uint64_t used_global_handles_size;
};

struct mg_space_stats {
  char name[48];
  uint64_t space_size;
  uint64_t space_used_size;
  uint64_t space_available_size;
  uint64_t physical_space_size;
};

typedef size_t (*mg_near_limit_fn)(void* data, size_t current, size_t initial);
// phase 0 = prologue, 1 = epilogue; type and flags are V8's bit values.
typedef void (*mg_gc_fn)(void* data, int phase, int type, int flags);
// Returns 0 to continue, anything else to stop the snapshot.
typedef int (*mg_chunk_fn)(void* data, const char* bytes, size_t len);

}  // extern "C"

namespace {

v8::Isolate* As(void* isolate) { return static_cast<v8::Isolate*>(isolate); }

// Hands V8's serialized snapshot to Rust chunk by chunk.
class ChunkStream final : public v8::OutputStream {
 public:
  ChunkStream(mg_chunk_fn sink, void* data) : sink_(sink), data_(data) {}
  // Larger than V8's 1 KiB default: fewer calls and channel messages.
  int GetChunkSize() override { return 64 * 1024; }
  void EndOfStream() override {}
  WriteResult WriteAsciiChunk(char* bytes, int size) override {
    if (size < 0 || sink_(data_, bytes, static_cast<size_t>(size)) != 0) {
      aborted_ = true;
      return kAbort;
    }
    return kContinue;
  }
  bool aborted() const { return aborted_; }

 private:
  mg_chunk_fn sink_;
  void* data_;
  bool aborted_ = false;
};

// What V8's GC callbacks get back as `data`: the Rust callback and its state.
struct GcHook {
  mg_gc_fn fn;
  void* data;
};

void GcPrologue(v8::Isolate*, v8::GCType type, v8::GCCallbackFlags flags, void* data) {
  auto* hook = static_cast<GcHook*>(data);
  hook->fn(hook->data, 0, static_cast<int>(type), static_cast<int>(flags));
}

void GcEpilogue(v8::Isolate*, v8::GCType type, v8::GCCallbackFlags flags, void* data) {
  auto* hook = static_cast<GcHook*>(data);
  hook->fn(hook->data, 1, static_cast<int>(type), static_cast<int>(flags));
}

}  // namespace

MG_EXPORT void* mg_current_isolate() { return v8::Isolate::TryGetCurrent(); }

MG_EXPORT void mg_heap_stats(void* isolate, mg_heap_stats* out) {
  v8::HeapStatistics s;
  As(isolate)->GetHeapStatistics(&s);
  out->total_heap_size = s.total_heap_size();
  out->total_heap_size_executable = s.total_heap_size_executable();
  out->total_physical_size = s.total_physical_size();
  out->total_available_size = s.total_available_size();
  out->used_heap_size = s.used_heap_size();
  out->heap_size_limit = s.heap_size_limit();
  out->malloced_memory = s.malloced_memory();
  out->peak_malloced_memory = s.peak_malloced_memory();
  out->external_memory = s.external_memory();
  out->number_of_native_contexts = s.number_of_native_contexts();
  out->number_of_detached_contexts = s.number_of_detached_contexts();
  out->total_global_handles_size = s.total_global_handles_size();
  out->used_global_handles_size = s.used_global_handles_size();
}

MG_EXPORT size_t mg_heap_space_count(void* isolate) { return As(isolate)->NumberOfHeapSpaces(); }

MG_EXPORT int mg_heap_space_stats(void* isolate, size_t index, mg_space_stats* out) {
  v8::HeapSpaceStatistics s;
  if (!As(isolate)->GetHeapSpaceStatistics(&s, index)) return 0;
  std::memset(out->name, 0, sizeof(out->name));
  if (s.space_name() != nullptr) std::strncpy(out->name, s.space_name(), sizeof(out->name) - 1);
  out->space_size = s.space_size();
  out->space_used_size = s.space_used_size();
  out->space_available_size = s.space_available_size();
  out->physical_space_size = s.physical_space_size();
  return 1;
}

MG_EXPORT void mg_add_near_heap_limit_callback(void* isolate, mg_near_limit_fn cb, void* data) {
  As(isolate)->AddNearHeapLimitCallback(cb, data);
}

// heap_limit 0: keep the current (raised) limit; V8 restores the initial one
// later through AutomaticallyRestoreInitialHeapLimit.
MG_EXPORT void mg_remove_near_heap_limit_callback(void* isolate, mg_near_limit_fn cb) {
  As(isolate)->RemoveNearHeapLimitCallback(cb, 0);
}

// The young generation's share of heap_size_limit as Node configured it:
// Node sizes the isolate with ResourceConstraints::ConfigureDefaults(memory)
// (memory: the cgroup's limit when lower than RAM), and --max-old-space-size
// replaces only the old generation. Asking V8 the same question gives V8's
// own answer for this version (48 MiB on Node 20, 192 on 24, 96 on 26).
MG_EXPORT size_t mg_default_young_generation_size(void) {
  uint64_t memory = uv_get_total_memory();
  uint64_t constrained = uv_get_constrained_memory();
  if (constrained > 0 && constrained < memory) memory = constrained;
  if (memory == 0) return 0;
  v8::ResourceConstraints constraints;
  constraints.ConfigureDefaults(memory, 0);
  return constraints.max_young_generation_size_in_bytes();
}

MG_EXPORT void mg_restore_initial_heap_limit(void* isolate, double threshold_percent) {
  As(isolate)->AutomaticallyRestoreInitialHeapLimit(threshold_percent);
}

// Takes a heap snapshot and streams it, as DevTools' JSON, to `sink`.
// Returns 0 when the whole snapshot was streamed, 1 if the sink stopped it,
// 2 if V8 could not take one.
MG_EXPORT int mg_write_heap_snapshot(void* isolate, mg_chunk_fn sink, void* data) {
  v8::Isolate* iso = As(isolate);
  v8::HandleScope scope(iso);
  v8::HeapProfiler* profiler = iso->GetHeapProfiler();
  // Same options as v8.writeHeapSnapshot() by default.
  const v8::HeapSnapshot* snapshot = profiler->TakeHeapSnapshot(v8::HeapProfiler::HeapSnapshotOptions());
  if (snapshot == nullptr) return 2;
  ChunkStream stream(sink, data);
  snapshot->Serialize(&stream, v8::HeapSnapshot::kJSON);
  // Free the graph (often 10× the heap) before anything else runs.
  const_cast<v8::HeapSnapshot*>(snapshot)->Delete();
  return stream.aborted() ? 1 : 0;
}

// Gives freed native memory back to the system: glibc keeps a freed
// snapshot graph's many small blocks in its arenas, where RSS (and a
// container's usage) still counts them (measured: 370 MB after a snapshot
// of a 24 MB heap, 18 MB once trimmed). Not needed elsewhere: musl returns
// what it frees.
MG_EXPORT void mg_trim_native_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

// Adds GC prologue and epilogue callbacks (all GC types); returns the cookie
// to remove them with.
MG_EXPORT void* mg_add_gc_callbacks(void* isolate, mg_gc_fn fn, void* data) {
  auto* hook = new GcHook{fn, data};
  As(isolate)->AddGCPrologueCallback(GcPrologue, hook, v8::kGCTypeAll);
  As(isolate)->AddGCEpilogueCallback(GcEpilogue, hook, v8::kGCTypeAll);
  return hook;
}

MG_EXPORT void mg_remove_gc_callbacks(void* isolate, void* cookie) {
  As(isolate)->RemoveGCPrologueCallback(GcPrologue, cookie);
  As(isolate)->RemoveGCEpilogueCallback(GcEpilogue, cookie);
  delete static_cast<GcHook*>(cookie);
}

MG_EXPORT uint64_t mg_used_heap_size(void* isolate) {
  v8::HeapStatistics s;
  As(isolate)->GetHeapStatistics(&s);
  return s.used_heap_size();
}

// --- Sampling heap profiler and the JS stack -------------------------------

typedef void (*mg_profile_node_fn)(void* data, uint32_t id, uint32_t parent, const char* name, size_t name_len,
                                   const char* url, size_t url_len, int script_id, int line, int column,
                                   uint64_t self_size);
typedef void (*mg_profile_sample_fn)(void* data, uint32_t node_id, uint64_t size, uint32_t count, uint64_t sample_id);
typedef void (*mg_frame_fn)(void* data, const char* name, size_t name_len, const char* url, size_t url_len, int line,
                            int column);

namespace {

// Utf8Value of a possibly empty handle, as (pointer, length).
struct Utf8 {
  Utf8(v8::Isolate* isolate, v8::Local<v8::Value> value) : value_(isolate, value) {}
  const char* data() const { return *value_ != nullptr ? *value_ : ""; }
  size_t size() const { return *value_ != nullptr ? static_cast<size_t>(value_.length()) : 0; }
  v8::String::Utf8Value value_;
};

void WalkProfile(v8::Isolate* isolate, const v8::AllocationProfile::Node* node, uint32_t parent,
                 mg_profile_node_fn fn, void* data, int depth) {
  uint64_t self_size = 0;
  for (const auto& a : node->allocations) self_size += static_cast<uint64_t>(a.size) * a.count;
  Utf8 name(isolate, node->name);
  Utf8 url(isolate, node->script_name);
  fn(data, node->node_id, parent, name.data(), name.size(), url.data(), url.size(), node->script_id,
     node->line_number, node->column_number, self_size);
  if (depth >= 512) return;  // the profiler's own stack depth bounds this
  for (const auto* child : node->children) WalkProfile(isolate, child, node->node_id, fn, data, depth + 1);
}

}  // namespace

MG_EXPORT int mg_start_sampling_heap_profiler(void* isolate, uint64_t interval, int stack_depth) {
  return As(isolate)->GetHeapProfiler()->StartSamplingHeapProfiler(interval, stack_depth) ? 1 : 0;
}

MG_EXPORT void mg_stop_sampling_heap_profiler(void* isolate) {
  As(isolate)->GetHeapProfiler()->StopSamplingHeapProfiler();
}

// Streams the current allocation profile as flat nodes (parents first) and
// samples. Returns 0 when the sampling profiler is not running.
MG_EXPORT int mg_allocation_profile(void* isolate, mg_profile_node_fn node_fn, mg_profile_sample_fn sample_fn,
                                    void* data) {
  v8::Isolate* iso = As(isolate);
  v8::HandleScope scope(iso);
  v8::AllocationProfile* profile = iso->GetHeapProfiler()->GetAllocationProfile();
  if (profile == nullptr) return 0;
  WalkProfile(iso, profile->GetRootNode(), 0, node_fn, data, 0);
  for (const auto& s : profile->GetSamples()) sample_fn(data, s.node_id, s.size, s.count, s.sample_id);
  delete profile;
  return 1;
}

// The JS stack of this thread, innermost frame first.
MG_EXPORT int mg_current_stack(void* isolate, int max_frames, mg_frame_fn fn, void* data) {
  v8::Isolate* iso = As(isolate);
  v8::HandleScope scope(iso);
  v8::Local<v8::StackTrace> trace = v8::StackTrace::CurrentStackTrace(iso, max_frames, v8::StackTrace::kDetailed);
  if (trace.IsEmpty()) return 0;
  int count = trace->GetFrameCount();
  for (int i = 0; i < count; i++) {
    v8::Local<v8::StackFrame> frame = trace->GetFrame(iso, i);
    Utf8 name(iso, frame->GetFunctionName());
    Utf8 url(iso, frame->GetScriptNameOrSourceURL());
    fn(data, name.data(), name.size(), url.data(), url.size(), frame->GetLineNumber(), frame->GetColumn());
  }
  return count;
}

// --- Interrupts ---------------------------------------------------------------

typedef void (*mg_interrupt_fn)(void* data);

namespace {
struct Interrupt {
  mg_interrupt_fn fn;
  void* data;
};

void RunInterrupt(v8::Isolate*, void* data) {
  auto* interrupt = static_cast<Interrupt*>(data);
  interrupt->fn(interrupt->data);
  delete interrupt;
}
}  // namespace

// Runs `fn(data)` on the isolate's thread at its next interrupt check — even
// inside JS that never yields to the event loop.
MG_EXPORT void mg_request_interrupt(void* isolate, mg_interrupt_fn fn, void* data) {
  As(isolate)->RequestInterrupt(RunInterrupt, new Interrupt{fn, data});
}

// --- A signal that works while JS never yields ---------------------------------

typedef void (*mg_signal_fn)(void* data);

namespace {
// A libuv loop of our own on a thread of our own. libuv's signal handler
// (process-wide) writes to the pipe of every loop with a handle for the
// signal: ours wakes here even while the JS thread is stuck in a loop, and
// the app's own process.on(signal) handlers, on Node's loop, still fire.
struct SignalWatch {
  uv_loop_t loop;
  uv_signal_t handle;
  mg_signal_fn fn;
  void* data;
};

void OnSignal(uv_signal_t* handle, int) {
  auto* watch = static_cast<SignalWatch*>(handle->data);
  watch->fn(watch->data);
}

void* RunSignalLoop(void* arg) {
  uv_run(&static_cast<SignalWatch*>(arg)->loop, UV_RUN_DEFAULT);
  return nullptr;
}
}  // namespace

// Calls `fn(data)` on a background thread each time `signum` arrives, for
// the life of the process. Returns 0 (and changes nothing) on failure.
MG_EXPORT int mg_watch_signal(int signum, mg_signal_fn fn, void* data) {
  auto* watch = new SignalWatch{};
  watch->fn = fn;
  watch->data = data;
  if (uv_loop_init(&watch->loop) != 0) {
    delete watch;
    return 0;
  }
  watch->handle.data = watch;
  if (uv_signal_init(&watch->loop, &watch->handle) != 0 || uv_signal_start(&watch->handle, OnSignal, signum) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&watch->handle), nullptr);
    uv_run(&watch->loop, UV_RUN_NOWAIT);
    uv_loop_close(&watch->loop);
    delete watch;
    return 0;
  }
  pthread_t thread;
  if (pthread_create(&thread, nullptr, RunSignalLoop, watch) != 0) {
    uv_signal_stop(&watch->handle);
    return 0;  // the loop and handle stay allocated: a few bytes, once
  }
  pthread_detach(thread);
  return 1;
}
