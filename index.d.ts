/** Settings resolved from the MEMGUARD* environment variables. */
export interface SelfCost {
  /** CPU time of each memguard thread that ran: recorder, writer, watchdog, metrics, crashes. */
  threadsCpuMs: Record<string, number>
  /** Time in memguard's callbacks on JS threads (GC callbacks, sampling timer, event delivery). */
  callbacksMs: number
  callbacks: number
  /** The process's CPU time, all threads. */
  processCpuMs: number
  /** (threads + callbacks) / process CPU time. */
  share: number
}

export interface MemguardConfig {
  /** `MEMGUARD`: false when set to 0/off/false/no. */
  enabled: boolean
  /** `MEMGUARD_DIR`: absolute path of the directory that holds bundles. */
  dir: string
  /** `MEMGUARD_NEAR_LIMIT_SNAPSHOTS`: snapshots to write near the heap limit (0 = none). */
  nearLimitSnapshots: number
  /** `MEMGUARD_LOG`. */
  log: 'silent' | 'info' | 'debug'
  /** `MEMGUARD_TIMELINE`: the flight recorder is on. */
  timeline: boolean
  /** `MEMGUARD_INTERVAL_MS`: heap sample period. */
  intervalMs: number
  /** `MEMGUARD_TIMELINE_MAX`: bytes all timeline segments may take together; the oldest are removed beyond it. */
  timelineMax: number
  /** `MEMGUARD_HISTORY_INTERVAL`: seconds per record of the lifetime history (history.ndjson.gz). */
  historyIntervalSecs: number
  /** `MEMGUARD_ALLOC_SAMPLING`: mean bytes between allocation samples, null when off. */
  allocSampling: number | null
  /** `MEMGUARD_SNAPSHOT`. */
  snapshot: 'auto' | 'always' | 'never'
  /** `MEMGUARD_MEMORY_LIMIT` in bytes, or null. */
  memoryLimit: number | null
  /** `MEMGUARD_HEAP_THRESHOLDS`: fractions of the heap limit, ascending. */
  heapThresholds: number[]
  /** `MEMGUARD_RSS_LIMIT`: a fixed limit, the memory cgroup's (`auto`; `container`, the default: the cgroup's limit if there is one), or null (`off`: no RSS watchdog). */
  rssLimit: { bytes: number } | 'auto' | 'container' | null
  /** `MEMGUARD_RSS_THRESHOLD`: fraction of the RSS limit that triggers a capture. */
  rssThreshold: number
  /** `MEMGUARD_SIGNAL`: the signal that triggers a capture, e.g. `'SIGUSR2'`, or null. */
  signal: string | null
  /** `MEMGUARD_LEAK`: leak-trend detection on heap used after mark-compacts. */
  leak: boolean
  /** `MEMGUARD_LEAK_WINDOW`: mark-compacts the trend looks back over. */
  leakWindow: number
  /** `MEMGUARD_LEAK_MIN_GROWTH`: bytes of growth over the window below which a trend is not a leak. */
  leakMinGrowth: number
  /** `MEMGUARD_LEAK_SNAPSHOT`: capture when a leak is found (once per thread). */
  leakSnapshot: boolean
  /** `MEMGUARD_EARLY_SNAPSHOT`: one snapshot at the last affordable moment of a growing heap under a known memory limit (on by default). */
  earlySnapshot: boolean
  /** `MEMGUARD_MAX_DISK`: cap on the total size of all bundles in `dir`; `auto` (the default) or `off`. */
  maxDisk: { bytes: number } | 'auto' | 'off'
  /** `MEMGUARD_KEEP=all`: keep the bundle of a thread that ended in order with nothing captured. */
  keepAll: boolean
  /** `MEMGUARD_METRICS`: the address the Prometheus endpoint listens on (`127.0.0.1:9464`), or null (off). */
  metrics: string | null
  /** `MEMGUARD_UPLOAD*`, `MEMGUARD_SERVICE`: shipping bundles to S3-compatible storage (see docs/upload.md). No credentials: those stay in the AWS environment. */
  upload: {
    /** `s3://bucket/prefix`, or null (off). */
    target: string | null
    keep: boolean
    service: string | null
    host: string | null
    timeoutSecs: number
    /** Bytes per second, or null (unbounded). */
    rate: number | null
    sse: 'default' | 'aes256' | { kms: string | null }
  }
}

/** The verdict passed to `memguard.on('leak', info)` and written as a `leak` timeline marker. */
export interface LeakInfo {
  /** Robust (Theil–Sen) slope of heap used after mark-compacts. */
  bytesPerMinute: number
  /** The slope over the window's time span. */
  growthBytes: number
  /** Heap used after the window's first and last mark-compact. */
  fromBytes: number
  toBytes: number
  markCompacts: number
  spanMs: number
  /** Share of ordered pairs of the window that rise (0.5 ≈ no trend, 1 = every one). */
  concordance: number
}

/** `v8.HeapStatistics` (bytes, except the two context counts). */
export interface HeapStats {
  totalHeapSize: number
  totalHeapSizeExecutable: number
  totalPhysicalSize: number
  totalAvailableSize: number
  usedHeapSize: number
  heapSizeLimit: number
  mallocedMemory: number
  peakMallocedMemory: number
  externalMemory: number
  numberOfNativeContexts: number
  numberOfDetachedContexts: number
  totalGlobalHandlesSize: number
  usedGlobalHandlesSize: number
}

/** `v8.HeapSpaceStatistics` of one space (bytes). */
export interface SpaceStats {
  spaceName: string
  spaceSize: number
  spaceUsedSize: number
  spaceAvailableSize: number
  physicalSpaceSize: number
}

/** Chrome DevTools Protocol `HeapProfiler.SamplingHeapProfile`. */
export interface SamplingHeapProfile {
  head: SamplingHeapProfileNode
  samples: { size: number; nodeId: number; ordinal: number }[]
}

export interface SamplingHeapProfileNode {
  callFrame: { functionName: string; scriptId: string; url: string; lineNumber: number; columnNumber: number }
  selfSize: number
  id: number
  children: SamplingHeapProfileNode[]
}

/** One line of timeline.ndjson.gz: `t` is milliseconds since the `start` record. */
export type TimelineRecord =
  | { type: 'start'; t: 0; epochMs: number; time: string; pid: number; threadId: number; [key: string]: unknown }
  | { type: 'gc'; t: number; kind: string; ms: number; beforeKB: number; afterKB: number; flags?: string[] }
  | { type: 'sample'; t: number; heap: Record<string, number>; spaces: Record<string, [number, number]>; rss: number | null; cgroup?: { usage: number; limit: number } }
  | { type: 'marker'; t: number; name: string; [key: string]: unknown }
  | { type: 'dropped'; t: number; count: number }

/** `memguard.metrics.snapshot()`: this thread's values (from the last heap sample and every GC so far) and the process's. */
export interface MetricsSnapshot {
  /** 0 for the main thread, else the worker's `threadId`. */
  thread: number
  /** Epoch milliseconds of the heap sample below, or null before the first. */
  sampledAt: number | null
  heap: {
    used: number
    total: number
    limit: number
    available: number
    physical: number
    external: number
    malloced: number
    arrayBuffers: number
    nativeContexts: number
    detachedContexts: number
  } | null
  /** By V8 space name (`old_space`, `new_space`, …), bytes. */
  spaces: Record<string, { size: number; used: number; available: number; physical: number }> | null
  /** By prom-client kind; `buckets`: `[le seconds, cumulative count]`, le 0.001, 0.01, 0.1, 1, 2, 5. */
  gc: Partial<Record<'major' | 'minor' | 'incremental' | 'weakcb' | 'other', { count: number; sumSeconds: number; buckets: [number, number][] }>>
  /** Theil–Sen slope of heap used after the last 20 mark-compacts; leak verdicts so far; heap after the last mark-compact. */
  leak: { bytesPerMinute: number; verdicts: number; heapUsedAfterMajorGc: number | null }
  captures: { trigger: string; outcome: 'written' | 'skipped' | 'failed'; count: number }[]
  /** Timeline records dropped (a full recorder queue); their GCs are not counted. */
  timelineDropped: number
  process: {
    residentBytes: number | null
    virtualBytes: number | null
    heapBytes: number | null
    cgroup: { usageBytes: number; limitBytes: number | null } | null
  }
}

/** A prom-client `Registry` (or anything with its `registerMetric` and `getSingleMetric`). */
export interface PromRegistryLike {
  registerMetric(metric: unknown): void
  getSingleMetric(name: string): unknown
}

/** An `@opentelemetry/api` `Meter`. */
export interface OtelMeterLike {
  createHistogram(name: string, options?: object): { record(value: number, attributes?: object): void }
  createObservableUpDownCounter(name: string, options?: object): object
  addBatchObservableCallback(callback: (result: { observe(observable: object, value: number, attributes?: object): void }) => void, observables: object[]): void
  removeBatchObservableCallback(callback: (result: never) => void, observables: object[]): void
}

export interface MemguardMetrics {
  /** This thread's values and the process's, read now without calling V8; null when memguard is inactive. */
  snapshot(): MetricsSnapshot | null
  /**
   * Adds memguard's metrics (prom-client's default names where the meaning is the same, plus
   * `memguard_*`) to a prom-client registry (default: prom-client's global `register`). A name the
   * registry already has is left to its owner; `defaults: false` also leaves out the names
   * `collectDefaultMetrics()` registers. Returns the names added ([] when inactive).
   */
  register(registry?: PromRegistryLike, options?: { defaults?: boolean }): string[]
  /**
   * Creates the V8 runtime semantic-convention instruments on `meter` (default: the global
   * MeterProvider's `memguard` meter): `v8js.gc.duration` (histogram, s, `v8js.gc.type`) fed with
   * every GC since the previous collection, and `v8js.memory.heap.used`,
   * `v8js.memory.heap.space.size`, `…available_size`, `…physical_size` (By, `v8js.heap.space.name`).
   * Returns a handle to stop, or null when inactive.
   */
  otel(meter?: OtelMeterLike): { stop(): void } | null
}

/** Also an EventEmitter: `memguard.on('leak', (info: LeakInfo) => …)`. */
export interface Memguard extends import('node:events').EventEmitter {
  /** True while memguard guards this thread (false when disabled or the binary could not load). */
  readonly active: boolean
  /** This thread's bundle directory; created when the first artifact is written. */
  readonly bundleDir: string | null
  /** The resolved settings (null when the binary could not load). */
  readonly config: MemguardConfig | null
  /**
   * Writes a gzip-compressed heap snapshot into the bundle now and returns its path.
   * Blocks this thread while V8 takes the snapshot. Returns null when memguard is
   * inactive; throws when the snapshot could not be written.
   */
  snapshot(reason?: string): string | null
  /**
   * What memguard has cost this process so far, accounted by itself: the CPU time of its
   * background threads, the time spent in its callbacks on JS threads, and their share of
   * the process's CPU time. Not counted: V8's work for the sampling heap profiler, and
   * deliberate captures (their pauses are in summary.json). Null when the binary is missing.
   */
  selfCost(): SelfCost | null
  /** Heap statistics and per-space statistics of this thread's isolate. */
  stats(): { heap: HeapStats; spaces: SpaceStats[] } | null
  /**
   * Earlier processes that died without a trace (a crash or a kill), found in MEMGUARD_DIR
   * at start and announced once each on stderr. Waits for the start-up scan (a few ms).
   */
  previousCrashes(): PreviousCrash[]
  /** The current sampling heap profile (Chrome DevTools' SamplingHeapProfile), or null when sampling is off. */
  allocationProfile(): SamplingHeapProfile | null
  /** The most recent flight-recorder records of this thread (at most 5,000 kept), oldest first. */
  timeline(options?: { last?: number }): TimelineRecord[]
  /** Metrics from memguard's recorder, for prom-client, OpenTelemetry or your own exporter (see docs/metrics.md). */
  readonly metrics: MemguardMetrics
  /** Stops guarding this thread: hooks removed, timeline closed. */
  stop(): void
  on(event: 'leak', listener: (info: LeakInfo) => void): this
  once(event: 'leak', listener: (info: LeakInfo) => void): this
}

declare const memguard: Memguard
export = memguard

export interface PreviousCrash {
  /** The bundle directory it left. */
  bundle: string
  pid: number
  /** argv[1]'s file name. */
  script: string | null
  startedAt: string | null
  /** How it most likely died. */
  cause: 'heap-oom' | 'memory-limit' | 'rss-limit' | 'unknown'
  /** The guess in words, with what it rests on. */
  detail: string
}
