#!/usr/bin/env node
// `npm run bench:gc`: what recording every GC costs, side by side in one
// run: no agent vs memguard (GC callbacks + 1 s samples + timeline) vs a
// bare perf_hooks PerformanceObserver('gc') vs prom-client's
// collectDefaultMetrics(). Each run is its own process; the order rotates;
// medians of BENCH_RUNS (default 5) runs are compared as ratios.
//
// Workloads: (a) an allocation loop that yields between rounds, with
// --max-semi-space-size=1 for >2,000 GCs/s; (b) terser minifying ~1.3 MB
// of real JavaScript (its own bundle plus acorn), three times over.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const RUNS = Number(process.env.BENCH_RUNS || 7);
// memguard runs with its defaults (allocation sampling on at 2 MiB);
// memguard-nosampling shows what the sampling heap profiler adds.
const MODES = ['none', 'memguard', 'memguard-nosampling', 'perf_hooks', 'prom-client'];
const MODE_ENV = { 'memguard-nosampling': { MEMGUARD_ALLOC_SAMPLING: 'off' } };

const child = `
  const root = ${JSON.stringify(root)};
  const [mode, workload] = process.argv.slice(1);
  let observed = 0;
  if (mode.startsWith('memguard')) require(root);
  if (mode === 'perf_hooks') {
    const { PerformanceObserver } = require('node:perf_hooks');
    new PerformanceObserver((list) => { observed += list.getEntries().length; }).observe({ entryTypes: ['gc'] });
  }
  if (mode === 'prom-client') require(root + '/node_modules/prom-client').collectDefaultMetrics();
  const finish = (t0) => {
    const ms = performance.now() - t0;
    setImmediate(() => console.log(JSON.stringify({ ms, maxRss: process.resourceUsage().maxRSS * 1024, observed })));
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

function runOnce(mode, workload) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memguard-gcbench-'));
  try {
    const flags = workload === 'alloc' ? ['--max-semi-space-size=1'] : [];
    const r = spawnSync(process.execPath, [...flags, '-e', child, mode, workload], {
      env: { ...process.env, MEMGUARD_DIR: dir, MEMGUARD_LOG: 'silent', ...MODE_ENV[mode] },
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`${mode}/${workload} failed: ${r.stderr}`);
    const result = JSON.parse(r.stdout);
    if (mode.startsWith('memguard')) {
      const [bundle] = fs.readdirSync(dir);
      const summary = JSON.parse(fs.readFileSync(path.join(dir, bundle, 'summary.json'), 'utf8'));
      const d = summary.timeline.digest;
      result.gcs = Object.values(d.gc).reduce((n, g) => n + g.count, 0);
      result.collections = ['scavenge', 'mark-compact', 'minor-mark-sweep'].reduce((n, k) => n + (d.gc[k] ? d.gc[k].count : 0), 0);
      result.timelineBytes = fs.statSync(path.join(dir, bundle, 'timeline.ndjson.gz')).size;
      result.dropped = d.dropped;
    }
    return result;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const workload of ['alloc', 'terser']) {
  const results = Object.fromEntries(MODES.map((m) => [m, []]));
  for (let i = 0; i < RUNS; i++) {
    // Rotate the order so no side always runs first (or last).
    const order = MODES.map((_, j) => MODES[(i + j) % MODES.length]);
    if (i % 2) order.reverse();
    for (const mode of order) results[mode].push(runOnce(mode, workload));
  }
  const ms = (m) => median(results[m].map((r) => r.ms));
  const rss = (m) => median(results[m].map((r) => r.maxRss));
  const mg = results.memguard;
  const gcsPerSec = median(mg.map((r) => r.collections / (r.ms / 1000)));
  const bytesPerGc = median(mg.map((r) => r.timelineBytes / r.gcs));
  const base = ms('none');
  console.log(`\nWorkload ${workload}: median of ${RUNS} runs, ${gcsPerSec.toFixed(0)} collections/s (Node ${process.version})`);
  console.log(`${'side'.padEnd(20)} ${'wall'.padStart(10)} ${'cost'.padStart(8)} ${'peak RSS'.padStart(10)}`);
  for (const m of MODES) {
    const cost = (ms(m) / base - 1) * 100;
    console.log(`${m.padEnd(20)} ${(ms(m) / 1000).toFixed(3).padStart(9)}s ${((cost >= 0 ? '+' : '') + cost.toFixed(2) + '%').padStart(8)} ${((rss(m) / 1e6).toFixed(1) + ' MB').padStart(10)}`);
  }
  const cost = (m) => ms(m) - base;
  if (cost('memguard') > 0) {
    console.log(`memguard cost / perf_hooks observer cost: ${(cost('memguard') / cost('perf_hooks')).toFixed(2)}×; prom-client cost / memguard cost: ${(cost('prom-client') / cost('memguard')).toFixed(1)}×`);
  } else {
    console.log('memguard cost: not measurable here (below the run-to-run noise)');
  }
  console.log(`allocation sampling at the default (2 MiB) vs off: ${(ms('memguard') / ms('memguard-nosampling')).toFixed(3)}× wall time`);
  console.log(`memguard: in-run RSS added ${((rss('memguard') - rss('none')) / 2 ** 20).toFixed(1)} MiB, timeline ${bytesPerGc.toFixed(2)} bytes per GC event (all ${median(mg.map((r) => r.gcs))} events incl. incremental marking), dropped ${Math.max(...mg.map((r) => r.dropped))}`);
}
console.log('\ngoals: memguard cost ≤ 1 %, below the perf_hooks observer, ≥ 20× below prom-client; RSS added ≤ 8 MiB;');
console.log('       ≤ 10 bytes per GC event; allocation sampling on by default only if it costs ≤ 1 %');
