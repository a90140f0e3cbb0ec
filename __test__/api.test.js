'use strict';
// The JS API and the ways to load memguard: require, -r, --import.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const h = require('./helpers');

test('snapshot() writes the same compressed snapshot on demand, listed in summary.json', async (t) => {
  const dir = h.tempDir(t);
  const script = `
    const memguard = require(${JSON.stringify(h.MEMGUARD)});
    class OnDemandMarker { constructor(i) { this.i = i; } }
    globalThis.keep = Array.from({ length: 3000 }, (_, i) => new OnDemandMarker(i));
    const first = memguard.snapshot('before-deploy');
    const second = memguard.snapshot();
    console.log(JSON.stringify({ first, second, bundleDir: memguard.bundleDir, config: memguard.config }));`;
  const r = await h.runNode(['-e', script], { env: { MEMGUARD_DIR: dir } });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.first, path.join(out.bundleDir, 'heap-1.heapsnapshot.gz'));
  assert.equal(out.second, path.join(out.bundleDir, 'heap-2.heapsnapshot.gz'));
  assert.equal(path.dirname(out.bundleDir), dir);
  assert.deepEqual(out.config, {
    enabled: true,
    dir,
    nearLimitSnapshots: 1,
    log: 'info',
    timeline: true,
    intervalMs: 1000,
    timelineMax: 67108864,
    historyIntervalSecs: 60,
    allocSampling: 2097152,
    snapshot: 'auto',
    memoryLimit: null,
    heapThresholds: [],
    rssLimit: 'container',
    rssThreshold: 0.8,
    signal: null,
    leak: true,
    leakWindow: 20,
    leakMinGrowth: 8388608,
    leakSnapshot: false,
    earlySnapshot: true,
    maxDisk: 'auto',
    keepAll: false,
    metrics: null,
    upload: { target: null, keep: true, service: null, host: null, timeoutSecs: 900, rate: null, sse: 'default' },
  });
  assert.equal(h.countByClass(h.readSnapshot(out.first)).get('OnDemandMarker'), 3000);
  const summary = h.readSummary(out.bundleDir);
  assert.deepEqual(
    summary.captures.map((c) => [c.seq, c.trigger, c.reason, c.outcome, c.files.map((f) => f.name)]),
    [
      [1, 'api', 'before-deploy', 'written', ['allocations-1.heapprofile', 'heap-1.heapsnapshot.gz']],
      [2, 'api', null, 'written', ['allocations-2.heapprofile', 'heap-2.heapsnapshot.gz']],
    ],
  );
});

test('a non-leaking app exits 0 and leaves no snapshot', async (t) => {
  const dir = h.tempDir(t);
  const r = await h.runNode(['--max-old-space-size=64', '-r', h.MEMGUARD, h.fixture('app.js')], { env: { MEMGUARD_DIR: dir } });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(h.memguardLines(r.stderr), []);
  assert.equal(JSON.parse(r.stdout).active, true);
  assert.deepEqual(h.snapshotsUnder(dir), []);
});

test('requiring twice (and from -r) is harmless: one guard, one bundle', async (t) => {
  const dir = h.tempDir(t);
  const script = `
    const a = require(${JSON.stringify(h.MEMGUARD)});
    delete require.cache[${JSON.stringify(h.MEMGUARD)}];
    const b = require(${JSON.stringify(h.MEMGUARD)});
    console.log(JSON.stringify({ same: a === b, p1: a.snapshot('one'), p2: b.snapshot('two') }));`;
  const r = await h.runNode(['-r', h.MEMGUARD, '-e', script], { env: { MEMGUARD_DIR: dir, MEMGUARD_LOG: 'silent' } });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.same, true);
  assert.equal(path.basename(out.p2), 'heap-2.heapsnapshot.gz');
  assert.equal(h.bundles(dir).length, 1);
  assert.equal(r.stderr, '');
});

test('stats() reports heap and per-space statistics; stop() turns memguard off', async (t) => {
  const dir = h.tempDir(t);
  const script = `
    const v8 = require('node:v8');
    const memguard = require(${JSON.stringify(h.MEMGUARD)});
    const s = memguard.stats();
    const limit = v8.getHeapStatistics().heap_size_limit;
    const names = v8.getHeapSpaceStatistics().map((x) => x.space_name);
    memguard.stop();
    console.log(JSON.stringify({ limit, names, s, active: memguard.active, after: memguard.snapshot('x') }));`;
  const r = await h.runNode(['--max-old-space-size=100', '-e', script], { env: { MEMGUARD_DIR: dir } });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.s.heap.heapSizeLimit, out.limit);
  assert.ok(out.s.heap.usedHeapSize > 0 && out.s.heap.usedHeapSize <= out.s.heap.totalHeapSize);
  assert.deepEqual(out.s.spaces.map((x) => x.spaceName), out.names);
  assert.equal(out.active, false);
  assert.equal(out.after, null);
  assert.deepEqual(h.snapshotsUnder(dir), []);
});

test('by package name: node --import memguard (ESM) and node -r memguard (CommonJS)', async (t) => {
  const dir = h.tempDir(t);
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(h.ROOT, path.join(dir, 'node_modules', 'memguard'));
  fs.writeFileSync(
    path.join(dir, 'app.mjs'),
    `import memguard, { snapshot } from 'memguard';
     console.log(JSON.stringify({ active: memguard.active, path: snapshot('esm') }));`,
  );
  fs.writeFileSync(path.join(dir, 'app.cjs'), `console.log(JSON.stringify({ active: require('memguard').active }));`);
  const env = { MEMGUARD_DIR: path.join(dir, 'bundles') };
  const esm = await h.runNode(['--import', 'memguard', 'app.mjs'], { env, cwd: dir });
  assert.equal(esm.code, 0, esm.stderr);
  const out = JSON.parse(esm.stdout);
  assert.equal(out.active, true);
  assert.ok(fs.existsSync(out.path));
  const cjs = await h.runNode(['-r', 'memguard', 'app.cjs'], { env, cwd: dir });
  assert.equal(cjs.code, 0, cjs.stderr);
  assert.deepEqual(JSON.parse(cjs.stdout), { active: true });
});

test('selfCost(): memguard accounts for its own CPU time, in the API and in summary.json', async (t) => {
  const dir = h.tempDir(t);
  const script = `
    const memguard = require(${JSON.stringify(h.MEMGUARD)});
    let ring = new Array(1024);
    const t0 = Date.now();
    (function round() {
      for (let i = 0; i < 20000; i++) ring[i & 1023] = { i, s: 'k' + i };
      if (Date.now() - t0 < 1500) return setImmediate(round);
      memguard.snapshot('end'); // keeps the bundle, with the summary written after the work
      console.log(JSON.stringify({ cost: memguard.selfCost(), gcs: memguard.metrics.snapshot(), bundleDir: memguard.bundleDir }));
    })();`;
  const r = await h.runNode(['--max-semi-space-size=1', '-e', script], { env: { MEMGUARD_DIR: dir } });
  assert.equal(r.code, 0, r.stderr);
  const { cost, bundleDir } = JSON.parse(r.stdout);
  assert.ok(cost.threadsCpuMs.recorder > 0, JSON.stringify(cost));
  // Two GC callbacks (prologue, epilogue) per collection, plus the timers.
  const summary = h.readSummary(bundleDir);
  const gcEvents = Object.values(summary.timeline.digest.gc).reduce((n, g) => n + g.count, 0);
  assert.ok(gcEvents > 100, `${gcEvents} GC events`);
  assert.ok(cost.callbacks >= gcEvents * 2 - 10, `${cost.callbacks} callbacks for ${gcEvents} GC events`);
  assert.ok(cost.callbacksMs > 0 && cost.processCpuMs > 500, JSON.stringify(cost));
  const ours = Object.values(cost.threadsCpuMs).reduce((a, b) => a + b, 0) + cost.callbacksMs;
  assert.ok(Math.abs(cost.share - ours / cost.processCpuMs) < 1e-9);
  assert.ok(cost.share > 0 && cost.share < 0.5, JSON.stringify(cost));
  // summary.json carries the same accounting, as of its last write.
  assert.ok(summary.selfCost.processCpuMs > 0 && summary.selfCost.callbacks > 0, JSON.stringify(summary.selfCost));
  assert.equal(summary.selfCost.threadsCpuMs.writer > 0, true);
});
