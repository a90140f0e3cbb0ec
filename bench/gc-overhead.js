#!/usr/bin/env node
// `npm run bench:gc`: what recording every GC costs, side by side in one
// run: no agent vs memguard (GC callbacks + 1 s samples + timeline) vs
// memguard with its metrics endpoint (MEMGUARD_METRICS) scraped every second
// vs memguard.metrics.otel() collected every second vs a bare perf_hooks
// PerformanceObserver('gc') vs prom-client's collectDefaultMetrics() served
// over HTTP and scraped every second vs OpenTelemetry's runtime-node
// instrumentation collected every second. Each run is its own process; the
// order rotates and alternates; medians (and the spread: min–max) of
// BENCH_RUNS (default 7) runs are compared as ratios. BENCH_MODES picks sides,
// BENCH_WORKLOADS workloads (comma-separated). Each side also reports the GCs its exporter counted, vs
// the true count (memguard's native callbacks, checked against --trace-gc).
// Then: scrape latency while the app's event loop is blocked.
//
// Workloads: (a) an allocation loop that yields between rounds, with
// --max-semi-space-size=1 for >2,000 GCs/s; (b) terser minifying ~1.3 MB
// of real JavaScript (its own bundle plus acorn), three times over.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const { freePort } = require('../__test__/helpers');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const RUNS = Number(process.env.BENCH_RUNS || 7);
// memguard runs with its defaults (allocation sampling on at 2 MiB);
// memguard-nosampling shows what the sampling heap profiler adds.
// otel-sdk: OpenTelemetry's SDK loaded and collected every second with no
// instruments — the baseline of the two OpenTelemetry sides.
const ALL_MODES = ['none', 'memguard', 'memguard-nosampling', 'memguard-metrics', 'memguard-otel', 'perf_hooks', 'prom-client', 'otel-sdk', 'otel-runtime-node'];
const MODES = process.env.BENCH_MODES ? process.env.BENCH_MODES.split(',') : ALL_MODES;
const MODE_ENV = { 'memguard-nosampling': { MEMGUARD_ALLOC_SAMPLING: 'off' } };
// Sides scraped over HTTP every second by this (separate) process.
const SCRAPED = new Set(['memguard-metrics', 'prom-client']);

const child = `
  const root = ${JSON.stringify(root)};
  const [mode, workload, port] = process.argv.slice(1);
  let observed = 0;
  // How many GCs the side's exporter counted, read after the timed part.
  let countGcs = async () => observed;
  let stop = () => {};
  const memguard = mode.startsWith('memguard') ? require(root) : null;
  if (mode === 'perf_hooks') {
    const { PerformanceObserver } = require('node:perf_hooks');
    new PerformanceObserver((list) => { observed += list.getEntries().length; }).observe({ entryTypes: ['gc'] });
  }
  const sumOf = (text, name) => text.split('\\n').filter((l) => l.startsWith(name + '{') || l.startsWith(name + ' '))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  if (mode === 'memguard-metrics') {
    countGcs = async () => sumOf(await (await fetch('http://127.0.0.1:' + port + '/metrics')).text(), 'nodejs_gc_duration_seconds_count');
  }
  if (mode === 'prom-client') {
    const client = require(root + '/node_modules/prom-client');
    client.collectDefaultMetrics();
    const server = require('node:http').createServer(async (req, res) => {
      res.setHeader('Content-Type', client.register.contentType);
      res.end(await client.register.metrics());
    }).listen(Number(port), '127.0.0.1');
    stop = () => { server.close(); server.closeAllConnections(); };
    countGcs = async () => sumOf(await client.register.metrics(), 'nodejs_gc_duration_seconds_count');
  }
  if (mode === 'memguard-otel' || mode === 'otel-runtime-node' || mode === 'otel-sdk') {
    // A MetricReader collected every second, as a PeriodicExportingMetricReader would.
    const { MeterProvider, MetricReader } = require(root + '/node_modules/@opentelemetry/sdk-metrics');
    class Reader extends MetricReader { async onForceFlush() {} async onShutdown() {} }
    const reader = new Reader();
    const provider = new MeterProvider({ readers: [reader] });
    if (mode === 'memguard-otel') memguard.metrics.otel(provider.getMeter('memguard'));
    else if (mode === 'otel-runtime-node') {
      const { RuntimeNodeInstrumentation } = require(root + '/node_modules/@opentelemetry/instrumentation-runtime-node');
      const instrumentation = new RuntimeNodeInstrumentation();
      instrumentation.setMeterProvider(provider);
      instrumentation.enable();
    }
    const timer = setInterval(() => reader.collect(), 1000);
    stop = () => clearInterval(timer);
    countGcs = async () => {
      const { resourceMetrics } = await reader.collect();
      const gc = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === 'v8js.gc.duration');
      return gc ? gc.dataPoints.reduce((n, p) => n + p.value.count, 0) : 0;
    };
  }
  const finish = (t0) => {
    const ms = performance.now() - t0;
    // Counted after the timed part, once every side's pipeline has caught
    // up (memguard's recorder thread drains its queue every 20 ms).
    setTimeout(async () => {
      const observed = await countGcs();
      stop();
      console.log(JSON.stringify({ ms, maxRss: process.resourceUsage().maxRSS * 1024, observed }));
    }, 300);
  };
  if (workload === 'alloc') {
    // Short-lived objects kept briefly in a ring (so they are really
    // allocated): ~2,200 scavenges/s with 1 MB semi-spaces.
    let rounds = 4500;
    const ring = new Array(1024);
    const t0 = performance.now();
    const round = () => {
      for (let i = 0; i < 20000; i++) ring[i & 1023] = { i, s: 'k' + i };
      if (--rounds > 0) setImmediate(round); else finish(t0);
    };
    round();
  } else {
    const { minify } = require(root + '/node_modules/terser');
    const fs = require('node:fs');
    const code = fs.readFileSync(root + '/node_modules/terser/dist/bundle.min.js', 'utf8') +
      fs.readFileSync(root + '/node_modules/acorn/dist/acorn.js', 'utf8');
    const t0 = performance.now();
    (async () => {
      for (let i = 0; i < 3; i++) await minify(code, { compress: true, mangle: true });
      finish(t0);
    })();
  }
`;

/** Runs `node ...args` with `env`; scrapes `scrapeUrl` every second meanwhile. */
function run(args, env, scrapeUrl) {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    const scrapes = scrapeUrl ? setInterval(() => fetch(scrapeUrl).then((r) => r.text(), () => {}), 1000) : null;
    c.on('close', (status) => {
      clearInterval(scrapes);
      resolve({ status, stdout, stderr });
    });
  });
}

async function runOnce(mode, workload, extraFlags = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memguard-gcbench-'));
  try {
    const flags = [...(workload === 'alloc' ? ['--max-semi-space-size=1'] : []), ...extraFlags];
    const port = await freePort();
    // MEMGUARD_KEEP=all: the bundle (its summary.json) is read after the run.
    const env = { ...process.env, MEMGUARD_DIR: dir, MEMGUARD_LOG: 'silent', MEMGUARD_KEEP: 'all', ...MODE_ENV[mode] };
    if (mode === 'memguard-metrics') env.MEMGUARD_METRICS = String(port);
    const scrapeUrl = SCRAPED.has(mode) ? `http://127.0.0.1:${port}/metrics` : null;
    const r = await run([...flags, '-e', child, mode, workload, String(port)], env, scrapeUrl);
    if (r.status !== 0) throw new Error(`${mode}/${workload} failed: ${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    // The last JSON line (with --trace-gc, a GC at exit may print after it).
    const result = JSON.parse(lines.filter((l) => l.startsWith('{')).pop());
    // --trace-gc: one line per collection (scavenge, minor mark-sweep, mark-compact).
    result.traced = lines.filter((l) => /^\[\d+:0x[0-9a-f]+\]\s+\d+ ms: /.test(l)).length;
    if (mode.startsWith('memguard')) {
      const [bundle] = fs.readdirSync(dir);
      const summary = JSON.parse(fs.readFileSync(path.join(dir, bundle, 'summary.json'), 'utf8'));
      const d = summary.timeline.digest;
      result.gcs = Object.values(d.gc).reduce((n, g) => n + g.count, 0);
      result.collections = ['scavenge', 'mark-compact', 'minor-mark-sweep'].reduce((n, k) => n + (d.gc[k] ? d.gc[k].count : 0), 0);
      result.timelineBytes = fs.statSync(path.join(dir, bundle, 'timeline.ndjson.gz')).size;
      result.dropped = d.dropped;
      result.selfCost = summary.selfCost;
    }
    return result;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const spread = (xs) => [Math.min(...xs), Math.max(...xs)];
const pct = (x) => `${x >= 0 ? '+' : ''}${x.toFixed(2)}%`;

/** Scrape latency while the app's JS runs a synchronous loop that never yields. */
async function blockedScrapes(mode) {
  const port = await freePort();
  const script = `
    const mode = ${JSON.stringify(mode)};
    if (mode === 'memguard-metrics') require(${JSON.stringify(root)});
    else {
      const client = require(${JSON.stringify(root + '/node_modules/prom-client')});
      client.collectDefaultMetrics();
      require('node:http').createServer(async (req, res) => res.end(await client.register.metrics())).listen(${port}, '127.0.0.1');
    }
    setTimeout(() => {
      require('node:fs').writeSync(1, 'blocking\\n');
      const t0 = Date.now();
      let g = [];
      while (Date.now() - t0 < 8000) { g.push({ n: g.length }); if (g.length > 1e5) g = []; }
      process.exit(0);
    }, 1000);`;
  const env = { ...process.env, MEMGUARD_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'memguard-gcbench-')), MEMGUARD_LOG: 'silent', MEMGUARD_METRICS: String(port) };
  const c = spawn(process.execPath, ['-e', script], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => c.stdout.on('data', (d) => String(d).includes('blocking') && resolve()));
  const latencies = [];
  let failed = 0;
  const until = Date.now() + 6000;
  while (Date.now() < until) {
    const t0 = performance.now();
    try {
      const r = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) });
      await r.text();
      latencies.push(performance.now() - t0);
    } catch {
      failed++;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  c.kill('SIGKILL');
  fs.rmSync(env.MEMGUARD_DIR, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return latencies.length
    ? `${mode.padEnd(18)} ${latencies.length} answered, ${failed} not within 2 s; p50 ${q(0.5).toFixed(2)} ms, p99 ${q(0.99).toFixed(2)} ms, max ${latencies[latencies.length - 1].toFixed(2)} ms`
    : `${mode.padEnd(18)} no scrape answered within 2 s (${failed} tried) while the loop ran`;
}

(async () => {
  for (const workload of (process.env.BENCH_WORKLOADS || 'alloc,terser').split(',')) {
    const results = Object.fromEntries(MODES.map((m) => [m, []]));
    for (let i = 0; i < RUNS; i++) {
      // Rotate the order so no side always runs first (or last), and alternate its direction.
      const order = MODES.map((_, j) => MODES[(i + j) % MODES.length]);
      if (i % 2) order.reverse();
      for (const mode of order) results[mode].push(await runOnce(mode, workload));
    }
    const ms = (m) => median(results[m].map((r) => r.ms));
    const rss = (m) => median(results[m].map((r) => r.maxRss));
    const base = ms('none');
    const mgRuns = results.memguard || results['memguard-metrics'] || [];
    const trueGcs = mgRuns.length ? median(mgRuns.map((r) => r.gcs)) : NaN;
    const gcsPerSec = mgRuns.length ? median(mgRuns.map((r) => r.collections / (r.ms / 1000))) : NaN;
    console.log(`\nWorkload ${workload}: median of ${RUNS} runs (spread: min–max of each side's costs), ${gcsPerSec.toFixed(0)} collections/s (Node ${process.version})`);
    console.log(`${'side'.padEnd(20)} ${'wall'.padStart(9)} ${'cost'.padStart(8)} ${'spread'.padStart(18)} ${'peak RSS'.padStart(10)} ${'GCs counted'.padStart(12)}`);
    for (const m of MODES) {
      const [lo, hi] = spread(results[m].map((r) => (r.ms / base - 1) * 100));
      const counted = m.startsWith('memguard') && m !== 'memguard-metrics' && m !== 'memguard-otel' ? median(results[m].map((r) => r.gcs)) : median(results[m].map((r) => r.observed));
      const countText = m === 'none' ? '' : `${counted}`;
      console.log(`${m.padEnd(20)} ${(ms(m) / 1000).toFixed(3).padStart(8)}s ${pct((ms(m) / base - 1) * 100).padStart(8)} ${`${pct(lo)}…${pct(hi)}`.padStart(18)} ${((rss(m) / 1e6).toFixed(1) + ' MB').padStart(10)} ${countText.padStart(12)}`);
    }
    console.log(`true GC count (memguard's native callbacks, median): ${trueGcs}; the others' counts above are their exporters' own at the end of the run`);
    const cost = (m) => ms(m) - base;
    const has = (m) => MODES.includes(m);
    if (has('memguard') && has('prom-client') && has('perf_hooks')) {
      if (cost('memguard') > 0) {
        console.log(`memguard cost / perf_hooks observer cost: ${(cost('memguard') / cost('perf_hooks')).toFixed(2)}×; prom-client cost / memguard cost: ${(cost('prom-client') / cost('memguard')).toFixed(1)}×`);
      } else {
        console.log('memguard cost: not measurable here (below the run-to-run noise)');
      }
    }
    if (has('memguard-metrics') && has('prom-client')) {
      const c = cost('memguard-metrics');
      console.log(c > 0
        ? `prom-client (scraped) cost / memguard with metrics (scraped) cost: ${(cost('prom-client') / c).toFixed(1)}×`
        : `memguard with metrics (scraped): cost not measurable (${pct((ms('memguard-metrics') / base - 1) * 100)}, below the noise); prom-client ${pct((ms('prom-client') / base - 1) * 100)}`);
    }
    if (has('memguard') && has('memguard-nosampling')) {
      console.log(`allocation sampling at the default (2 MiB) vs off: ${(ms('memguard') / ms('memguard-nosampling')).toFixed(3)}× wall time`);
    }
    if (results.memguard) {
      const mg = results.memguard;
      const bytesPerGc = median(mg.map((r) => r.timelineBytes / r.gcs));
      const sc = mg.map((r) => r.selfCost);
      const share = sc.map((c) => c.share * 100);
      const perGcUs = median(mg.map((r) => (r.selfCost.callbacksMs * 1000) / r.gcs));
      console.log(`memguard's own accounting (summary.json selfCost, goal ≤ 1 %): ${median(share).toFixed(2)} % of the process's CPU time (spread ${Math.min(...share).toFixed(2)}–${Math.max(...share).toFixed(2)} %) at ${gcsPerSec.toFixed(0)} collections/s; callbacks ${median(sc.map((c) => c.callbacksMs)).toFixed(1)} ms (${perGcUs.toFixed(2)} µs per GC event), threads ${Object.keys(sc[0].threadsCpuMs).map((k) => `${k} ${median(sc.map((c) => c.threadsCpuMs[k] || 0)).toFixed(1)} ms`).join(', ')}, process ${median(sc.map((c) => c.processCpuMs)).toFixed(0)} ms`);
      console.log(`memguard: in-run RSS added ${((rss('memguard') - rss('none')) / 2 ** 20).toFixed(1)} MiB, timeline ${bytesPerGc.toFixed(2)} bytes per GC event (all ${median(mg.map((r) => r.gcs))} events incl. incremental marking), dropped ${Math.max(...mg.map((r) => r.dropped))}`);
    }
    // The true count differs from process to process (an agent's own heap
    // changes when V8 collects), so each side runs once more, untimed, with
    // --trace-gc: V8's own line per collection (scavenge, mark-compact) in
    // the same process, beside what the side's exporter counted.
    console.log('GCs counted vs V8\'s --trace-gc in the same process (one untimed run each; exporters also count incremental marking and weak callbacks, V8 traces collections):');
    for (const m of MODES.filter((m) => m !== 'none')) {
      const v = await runOnce(m, workload, ['--trace-gc']);
      const counted = m === 'memguard' ? v.gcs : v.observed;
      const own = v.collections !== undefined ? `; memguard's collections ${v.collections}` : '';
      console.log(`  ${m.padEnd(18)} exporter ${String(counted).padStart(6)}, V8 traced ${String(v.traced).padStart(6)} collections${own}`);
    }
  }
  if (MODES.includes('memguard-metrics') || MODES.includes('prom-client')) {
    console.log('\nScrape latency while the event loop is blocked (a synchronous loop, scraped every 50 ms for 6 s):');
    for (const mode of ['memguard-metrics', 'prom-client']) console.log(await blockedScrapes(mode));
  }
  console.log('\ngoals: memguard cost ≤ 1 %, below the perf_hooks observer, ≥ 20× below prom-client; with metrics scraped ≤ 1 % and ≥ 20× below prom-client;');
  console.log('       RSS added ≤ 8 MiB; ≤ 10 bytes per GC event; allocation sampling on by default only if it costs ≤ 1 %; scrape p99 while blocked ≤ 10 ms');
})();
