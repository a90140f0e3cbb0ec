#!/usr/bin/env node
// `npm run bench`: memguard.snapshot() vs v8.writeHeapSnapshot() on the same
// heap of live objects, each in its own child process (so peak RSS is its
// own), alternating the order, reporting medians and ratios.
//
//   BENCH_HEAP_MB  live heap to build (default 220)
//   BENCH_RUNS     runs of each side (default 3)
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const HEAP_MB = Number(process.env.BENCH_HEAP_MB || 220);
const RUNS = Number(process.env.BENCH_RUNS || 3);
const root = path.resolve(__dirname, '..');

// The child: build a heap of HEAP_MB of small live objects and strings, then
// take one snapshot the way `mode` says and print what it cost.
const child = `
  const v8 = require('node:v8');
  const mode = process.argv[1], out = process.argv[2], heapMb = Number(process.argv[3]);
  class Order { constructor(i) { this.id = i; this.customer = 'customer-' + (i % 5000); this.items = [i, i + 1, i + 2]; this.note = 'n' + i; } }
  const live = [];
  while (v8.getHeapStatistics().used_heap_size < heapMb * 1e6) for (let i = 0; i < 10000; i++) live.push(new Order(live.length));
  global.live = live;
  const used = v8.getHeapStatistics().used_heap_size;
  const rssBefore = process.memoryUsage().rss;
  let file;
  const memguard = mode === 'memguard' ? require(${JSON.stringify(root)}) : null;
  const t0 = process.hrtime.bigint();
  if (memguard) file = memguard.snapshot('bench');
  else file = v8.writeHeapSnapshot(out + '/Heap.heapsnapshot');
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(JSON.stringify({ ms, bytes: require('node:fs').statSync(file).size, used, rssBefore, maxRss: process.resourceUsage().maxRSS * 1024 }));
`;

function runOnce(mode) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'memguard-bench-'));
  try {
    const r = spawnSync(process.execPath, ['--max-old-space-size=4096', '-e', child, mode, out, String(HEAP_MB)], {
      env: { ...process.env, MEMGUARD_DIR: out, MEMGUARD_LOG: 'silent' },
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`${mode} run failed: ${r.stderr}`);
    return JSON.parse(r.stdout);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = { memguard: [], v8: [] };
for (let i = 0; i < RUNS; i++) {
  const order = i % 2 === 0 ? ['memguard', 'v8'] : ['v8', 'memguard'];
  for (const mode of order) {
    const r = runOnce(mode);
    results[mode].push(r);
    console.error(`run ${i + 1}/${RUNS} ${mode.padEnd(8)} ${(r.ms / 1000).toFixed(2)} s, ${(r.bytes / 1e6).toFixed(1)} MB on disk, peak RSS ${(r.maxRss / 1e6).toFixed(0)} MB (heap ${(r.used / 1e6).toFixed(0)} MB)`);
  }
}
const m = (mode, key) => median(results[mode].map((r) => r[key]));
const row = (label, a, b, fmt) => console.log(`${label.padEnd(22)} ${fmt(a).padStart(12)} ${fmt(b).padStart(12)} ${(a / b).toFixed(3).padStart(8)}×`);
console.log(`\nHeap snapshot of ~${(m('v8', 'used') / 1e6).toFixed(0)} MB live heap, median of ${RUNS} runs each (Node ${process.version}):`);
console.log(`${''.padEnd(22)} ${'memguard'.padStart(12)} ${'v8.write…'.padStart(12)} ${'ratio'.padStart(9)}`);
row('wall time', m('memguard', 'ms'), m('v8', 'ms'), (x) => `${(x / 1000).toFixed(2)} s`);
row('bytes on disk', m('memguard', 'bytes'), m('v8', 'bytes'), (x) => `${(x / 1e6).toFixed(1)} MB`);
row('peak RSS', m('memguard', 'maxRss'), m('v8', 'maxRss'), (x) => `${(x / 1e6).toFixed(0)} MB`);
console.log('\ngoals: wall time ≤ 1.1×, bytes on disk ≤ 0.2×');
