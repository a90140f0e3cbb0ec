'use strict';
// memguard: `require('memguard')` (or `node -r memguard app.js`) guards this
// thread's V8 heap and writes a compressed heap snapshot before an
// out-of-memory crash. Configured only by MEMGUARD* environment variables.
//
// This file loads the binary built for this Node's ABI, starts the guard and
// exports the API. It never throws at load time: a problem becomes one
// `memguard:` line on stderr and an inactive API; the host runs on.

const { EventEmitter } = require('node:events');
const fs = require('node:fs');
const path = require('node:path');

// One instance per thread even if two copies of the package get loaded.
const INSTANCE = Symbol.for('memguard.instance');
const EVENT_TICK_MS = 1000;

// Where the addon usually is, found without loading lib/platform.js (a
// module more is ~0.4 ms of every process start): the local build, or the
// one platform package npm installed beside memguard or inside it. Names as
// in lib/platform.js. Anything else (no package, a package per libc, a
// binary that does not load) is lib/platform.js's to sort out.
function usualAddon(abi) {
  const local = path.join(__dirname, 'build', `memguard-${process.platform}-${process.arch}-abi${abi}.node`);
  if (fs.existsSync(local)) return local;
  if (process.platform !== 'linux') return null;
  const found = [];
  for (const libc of ['gnu', 'musl']) {
    for (const dir of [path.join(__dirname, 'node_modules'), path.dirname(__dirname)]) {
      const file = path.join(dir, `memguard-linux-${process.arch}-${libc}`, `memguard.abi${abi}.node`);
      if (fs.existsSync(file)) found.push(file);
    }
  }
  return found.length === 1 ? found[0] : null;
}

function loadBinding() {
  const abi = process.versions.modules;
  let binding = null;
  let file = usualAddon(abi);
  try {
    if (file) binding = require(file);
  } catch {} // e.g. the glibc package on musl: lib/platform.js says what fits
  if (!binding) {
    const { findAddon, missingAddonMessage } = require('./lib/platform');
    file = findAddon(abi);
    if (!file) throw new Error(missingAddonMessage(abi));
    binding = require(file);
  }
  if (binding.builtAbi() !== abi) {
    throw new Error(`${file} was built for ABI ${binding.builtAbi()}, not ${abi}; rebuild with: npm run build`);
  }
  return binding;
}

// A Node option's value from the command line or NODE_OPTIONS ('' if absent).
function nodeOption(name) {
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS || '').split(/\s+/)];
  // Node takes `_` for `-` in option names (not in their values).
  const re = new RegExp(`^--${name.replace(/-/g, '[-_]')}(?:=(.*))?$`);
  let value = '';
  for (let i = 0; i < args.length; i++) {
    const m = re.exec(args[i]);
    if (m) value = m[1] !== undefined ? m[1] : args[i + 1] || '';
  }
  return value;
}

// Node's own --heapsnapshot-near-heap-limit, if set to a positive count.
function nodeNearLimitFlag() {
  const value = nodeOption('heapsnapshot-near-heap-limit');
  return Number(value) > 0 ? `--heapsnapshot-near-heap-limit=${value}` : '';
}

function memguardVars() {
  const vars = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'MEMGUARD' || k.startsWith('MEMGUARD_')) vars[k] = String(v);
  }
  return vars;
}

function cwd() {
  try {
    return process.cwd();
  } catch {
    return require('node:os').tmpdir(); // the working directory was deleted
  }
}

// Loading node:worker_threads costs ~2 ms, paid by every process started
// with -r memguard; on the main thread the binding knows the answer.
function thread(binding) {
  if (binding && binding.isMainThread()) return { threadId: 0, isMainThread: true, youngMb: 0 };
  const { threadId, isMainThread, resourceLimits } = require('node:worker_threads');
  return { threadId, isMainThread, youngMb: (resourceLimits && resourceLimits.maxYoungGenerationSizeMb) || 0 };
}

function create() {
  let binding = null;
  let state = { active: false, bundleDir: null, config: null };
  let isMainThread = true;
  try {
    binding = loadBinding();
    const here = thread(binding);
    isMainThread = here.isMainThread;
    state = binding.start(
      memguardVars(),
      {
        pid: process.pid,
        threadId: here.threadId,
        nodeVersion: process.version,
        v8Version: process.versions.v8,
        abi: process.versions.modules,
        argv: process.argv,
        execArgv: process.execArgv,
        nodeNearLimitFlag: nodeNearLimitFlag(),
        // The young generation's part of heap_size_limit (thresholds are
        // fractions of the rest, the old generation's limit).
        maxSemiSpaceMb: Number(nodeOption('max-semi-space-size')) || 0,
        workerYoungGenerationMb: here.youngMb,
        // The binary that uploads bundles (MEMGUARD_UPLOAD) in a process of its own.
        uploader: process.env.MEMGUARD_UPLOAD ? require('./lib/platform').findReport() || '' : '',
      },
      cwd(),
    );
  } catch (err) {
    const off = /^\s*(0|off|false|no)\s*$/i.test(process.env.MEMGUARD || '');
    if (!off) process.stderr.write(`memguard: error: ${err.message}; memguard is inactive\n`);
  }
  const detach = state.active && state.config.timeline ? record(binding, state.config.intervalMs, isMainThread) : () => {};
  const api = new EventEmitter();
  let metrics = null;
  const stopEvents = state.active ? deliverEvents(binding, api) : () => {};

  return Object.defineProperties(api, Object.getOwnPropertyDescriptors({
    /** True while memguard guards this thread. */
    get active() {
      return state.active;
    },
    /** This thread's bundle directory (created when the first artifact is written). */
    get bundleDir() {
      return state.bundleDir;
    },
    /** The settings in force, resolved from the environment. */
    get config() {
      return state.config;
    },
    /** Writes a compressed heap snapshot now; returns its path (null when inactive). */
    snapshot(reason) {
      if (!state.active) return null;
      return binding.snapshot(reason === undefined || reason === null ? undefined : String(reason));
    },
    /**
     * Earlier processes that died without a trace (crash, kill), found in
     * MEMGUARD_DIR at start and announced once each on stderr: [{bundle, pid,
     * script, startedAt, cause, detail}]. Waits for the start-up scan.
     */
    previousCrashes() {
      return binding && state.active ? binding.previousCrashes() : [];
    },
    /**
     * What memguard has cost this process so far: its threads' CPU time, the
     * time in its callbacks on JS threads, the process's CPU time and the
     * share ({threadsCpuMs, callbacksMs, callbacks, processCpuMs, share}).
     */
    selfCost() {
      return binding ? binding.selfCost() : null;
    },
    /** V8 heap statistics and per-space statistics of this thread. */
    stats() {
      return binding ? binding.stats() : null;
    },
    /** The current sampling heap profile (DevTools' SamplingHeapProfile format), or null when off. */
    allocationProfile() {
      return state.active ? binding.allocationProfile() : null;
    },
    /** The most recent flight-recorder records of this thread, oldest first. */
    timeline({ last = 100 } = {}) {
      if (!binding) return [];
      return binding.timeline(Math.max(0, Math.min(Number(last) || 0, 10_000))).map((line) => JSON.parse(line));
    },
    /** Metrics from memguard's recorder: snapshot(), register(promRegistry), otel(meter). */
    get metrics() {
      // Loaded on first use: most processes never ask.
      metrics = metrics || require('./lib/metrics').createMetrics(() => (state.active ? binding : null));
      return metrics;
    },
    /** Stops guarding this thread (hooks removed, timeline closed). */
    stop() {
      detach();
      stopEvents();
      if (binding) binding.stop();
      state = { ...state, active: false };
    },
  }));
}

// Events noticed inside V8's callbacks (where no JS may run) wait in the
// binding; an unref'd timer hands them to listeners — `memguard.on('leak',
// info)`. The same tick lets JS run at least once a second, so a capture
// requested by the RSS watchdog or the signal (at V8's next interrupt check)
// happens even in a process that is otherwise idle.
function deliverEvents(binding, api) {
  const timer = setInterval(() => {
    for (const event of binding.takeEvents()) api.emit(event.type, event.info);
  }, EVENT_TICK_MS);
  timer.unref();
  return () => clearInterval(timer);
}

// The flight recorder's JS side: a heap sample every `intervalMs` from an
// unref'd timer (it never keeps the process alive), and the ends of the
// process recorded and flushed without changing how it ends.
function record(binding, intervalMs, isMainThread) {
  const arrayBuffers = () => process.memoryUsage().arrayBuffers;
  const timer = setInterval(() => binding.sample(arrayBuffers()), intervalMs);
  timer.unref();
  // 'exit' also follows process.exit() and uncaught exceptions.
  const onExit = (code) => binding.shutdown({ reason: 'exit', code });
  process.on('exit', onExit);
  // Fatal signals: flush, then — if nobody else listens — let the signal do
  // what it would have done without us (die by it), by re-raising it.
  const signals = isMainThread ? ['SIGTERM', 'SIGINT', 'SIGHUP'] : [];
  const handlers = signals.map((signal) => {
    const onSignal = () => {
      if (process.listenerCount(signal) > 1) return binding.mark('signal', { signal });
      binding.shutdown({ reason: 'signal', signal });
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
    return [signal, onSignal];
  });
  return () => {
    clearInterval(timer);
    process.removeListener('exit', onExit);
    for (const [signal, onSignal] of handlers) process.removeListener(signal, onSignal);
  };
}

if (!globalThis[INSTANCE]) {
  Object.defineProperty(globalThis, INSTANCE, { value: create(), enumerable: false });
}
module.exports = globalThis[INSTANCE];
