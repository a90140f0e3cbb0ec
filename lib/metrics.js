'use strict';
// memguard.metrics: the values memguard's recorder already publishes (every
// GC, a heap sample every MEMGUARD_INTERVAL_MS), for apps with their own
// exporters — prom-client and OpenTelemetry — without a perf_hooks observer
// or extra V8 calls. One native call per collection. This thread's values
// (like prom-client's defaults); the MEMGUARD_METRICS endpoint serves every
// thread of the process.

const GC_KINDS = ['major', 'minor', 'incremental', 'weakcb', 'other'];
// OpenTelemetry's advice for v8js.gc.duration (semantic conventions).
const OTEL_GC_BUCKETS = [0.01, 0.1, 1, 10];

const gauge = (name, help, value, prom = false) => ({ name, help, type: 'gauge', prom, values: (s) => one(value(s)) });
const one = (value) => (value === undefined || value === null ? [] : [{ labels: {}, value }]);
const heap = (key) => (s) => s.heap && s.heap[key];
const perSpace = (key) => (s) =>
  Object.entries(s.spaces || {}).map(([name, sp]) => ({ labels: { space: name.replace(/_space.*$/, '') }, value: sp[key] }));

// name, help, type; `prom`: one of prom-client's collectDefaultMetrics() names.
const METRICS = [
  {
    name: 'nodejs_gc_duration_seconds',
    help: 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    type: 'histogram',
    prom: true,
    values: gcHistogram,
  },
  gauge('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', heap('total'), true),
  gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', heap('used'), true),
  gauge('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', heap('external'), true),
  ...['total', 'used', 'available'].map((what) => ({
    name: `nodejs_heap_space_size_${what}_bytes`,
    help: `Process heap space size ${what} from Node.js in bytes.`,
    type: 'gauge',
    prom: true,
    values: perSpace(what === 'total' ? 'size' : what),
  })),
  gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', (s) => s.process.residentBytes, true),
  gauge('process_virtual_memory_bytes', 'Virtual memory size in bytes.', (s) => s.process.virtualBytes, true),
  gauge('process_heap_bytes', 'Process heap size in bytes.', (s) => s.process.heapBytes, true),
  gauge('memguard_heap_size_limit_bytes', 'V8 heap size limit (heap_size_limit) in bytes.', heap('limit')),
  gauge('memguard_heap_malloced_bytes', 'Memory V8 allocated with malloc, in bytes.', heap('malloced')),
  gauge('memguard_array_buffers_bytes', 'Memory held by ArrayBuffers and Buffers, in bytes.', heap('arrayBuffers')),
  gauge('memguard_detached_contexts', 'Detached native contexts (a classic leak: each holds a whole realm).', heap('detachedContexts')),
  {
    name: 'memguard_heap_space_physical_bytes',
    help: 'Committed (physical) size of each V8 heap space in bytes.',
    type: 'gauge',
    values: perSpace('physical'),
  },
  gauge('memguard_heap_sampled_timestamp_seconds', 'When the heap values above were sampled (Unix time).', (s) =>
    s.sampledAt === null || s.sampledAt === undefined ? undefined : s.sampledAt / 1e3,
  ),
  gauge('memguard_heap_used_after_major_gc_bytes', 'Heap used right after the last mark-compact: the live heap.', (s) => s.leak && s.leak.heapUsedAfterMajorGc),
  gauge(
    'memguard_leak_bytes_per_minute',
    'Growth of heap used after mark-compacts: Theil-Sen slope over the last 20 of them, in bytes per minute (0 until there are 4).',
    (s) => s.leak && s.leak.bytesPerMinute,
  ),
  { name: 'memguard_leak_verdicts_total', help: 'Leak verdicts (steady growth found) so far.', type: 'counter', values: (s) => one(s.leak && s.leak.verdicts) },
  {
    name: 'memguard_timeline_dropped_total',
    help: "Timeline records dropped because the recorder's queue was full (their GCs are not counted above).",
    type: 'counter',
    values: (s) => one(s.timelineDropped),
  },
  {
    name: 'memguard_captures_total',
    help: 'Captures (heap snapshot attempts) by trigger and outcome (written, skipped, failed).',
    type: 'counter',
    values: (s) => (s.captures || []).map(({ trigger, outcome, count }) => ({ labels: { trigger, outcome }, value: count })),
  },
  gauge('memguard_cgroup_memory_usage_bytes', "Memory used by the process's memory cgroup (container), in bytes.", (s) => s.process.cgroup && s.process.cgroup.usageBytes),
  gauge(
    'memguard_cgroup_memory_limit_bytes',
    "Memory limit of the process's memory cgroup (the tightest on its path), in bytes.",
    (s) => s.process.cgroup && s.process.cgroup.limitBytes,
  ),
];

function gcHistogram(s) {
  const values = [];
  for (const [kind, h] of Object.entries(s.gc || {})) {
    for (const [le, count] of h.buckets) {
      values.push({ metricName: 'nodejs_gc_duration_seconds_bucket', labels: { le, kind }, value: count });
    }
    values.push({ metricName: 'nodejs_gc_duration_seconds_bucket', labels: { le: '+Inf', kind }, value: h.count });
    values.push({ metricName: 'nodejs_gc_duration_seconds_sum', labels: { kind }, value: h.sumSeconds });
    values.push({ metricName: 'nodejs_gc_duration_seconds_count', labels: { kind }, value: h.count });
  }
  return values;
}

function optionalPeer(name, what) {
  try {
    return require(name);
  } catch {
    throw new TypeError(`memguard.metrics.${what} needs ${name} (an optional peer dependency): npm install ${name}`);
  }
}

/**
 * The `metrics` member of the API. `binding()` is the native binding, or
 * null while memguard does not guard this thread.
 */
function createMetrics(binding) {
  // prom-client asks each metric for its values in one synchronous pass: one
  // native call serves them all.
  let cached = null;
  const current = () => {
    if (!cached) {
      cached = binding().metrics(false);
      process.nextTick(() => {
        cached = null;
      });
    }
    return cached;
  };

  return {
    /** This thread's values and the process's, as one object; null when inactive. */
    snapshot() {
      const b = binding();
      return b ? b.metrics(false) : null;
    },

    /**
     * Adds memguard's metrics to a prom-client Registry (default: prom-client's
     * global one). `defaults: false` leaves out the names collectDefaultMetrics()
     * registers; a name already in the registry is always left to its owner.
     * Returns the names added.
     */
    register(registry, { defaults = true } = {}) {
      if (!registry) registry = optionalPeer('prom-client', 'register()').register;
      if (typeof registry.registerMetric !== 'function' || typeof registry.getSingleMetric !== 'function') {
        throw new TypeError('memguard.metrics.register(registry) needs a prom-client Registry');
      }
      if (!binding()) return [];
      const added = [];
      for (const def of METRICS) {
        if ((def.prom && !defaults) || registry.getSingleMetric(def.name)) continue;
        const { name, help, type } = def;
        const metric = {
          name,
          help,
          type,
          aggregator: 'sum',
          // `metric.name`: an OpenMetrics registry renames counters (no _total).
          get: async () => ({ name: metric.name, help, type, aggregator: 'sum', values: binding() ? def.values(current()) : [] }),
          reset() {},
        };
        registry.registerMetric(metric);
        added.push(name);
      }
      return added;
    },

    /**
     * Creates OpenTelemetry instruments named by the V8 runtime semantic
     * conventions on `meter` (default: the global MeterProvider's
     * `memguard` meter), fed at each collection from memguard's buffers: GC
     * events since the last collection go into the v8js.gc.duration
     * histogram, heap spaces into the v8js.memory.* instruments. Returns
     * `{ stop() }`, or null when inactive.
     */
    otel(meter) {
      if (!meter) meter = optionalPeer('@opentelemetry/api', 'otel()').metrics.getMeter('memguard');
      const b = binding();
      if (!b) return null;
      const gc = meter.createHistogram('v8js.gc.duration', {
        description: 'Garbage collection duration.',
        unit: 's',
        advice: { explicitBucketBoundaries: OTEL_GC_BUCKETS },
      });
      const space = (name, description) => meter.createObservableUpDownCounter(name, { description, unit: 'By' });
      const used = space('v8js.memory.heap.used', 'Heap Memory size allocated.');
      const size = space('v8js.memory.heap.space.size', 'Total heap memory size pre-allocated for a heap space.');
      const available = space('v8js.memory.heap.space.available_size', 'Heap space available size.');
      const physical = space('v8js.memory.heap.space.physical_size', 'Committed size of a heap space.');
      const observables = [used, size, available, physical];
      const gcAttributes = GC_KINDS.map((kind) => Object.freeze({ 'v8js.gc.type': kind }));
      const collect = (result) => {
        const b = binding();
        if (!b) return;
        const s = b.metrics(true);
        const events = s.gcEvents || [];
        for (let i = 0; i < events.length; i += 2) gc.record(events[i + 1], gcAttributes[events[i]]);
        for (const [name, sp] of Object.entries(s.spaces || {})) {
          const attributes = { 'v8js.heap.space.name': name };
          result.observe(used, sp.used, attributes);
          result.observe(size, sp.size, attributes);
          result.observe(available, sp.available, attributes);
          result.observe(physical, sp.physical, attributes);
        }
      };
      meter.addBatchObservableCallback(collect, observables);
      b.metrics(true); // from now on GC events are kept for the next collection
      return {
        stop() {
          meter.removeBatchObservableCallback(collect, observables);
        },
      };
    },
  };
}

module.exports = { createMetrics, METRICS };
