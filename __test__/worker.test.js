'use strict';
// Workers: each guarded isolate gets its own limit, its own bundle named with
// the thread id, and cleans up when the worker dies; the process lives on.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const h = require('./helpers');

async function checkWorkerBundle(dir, r) {
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  assert.match(r.stdout, /worker error: ERR_WORKER_OUT_OF_MEMORY/);
  assert.match(r.stdout, /main alive/);
  const workerBundles = h.bundles(dir).filter((b) => /-t\d+$/.test(b));
  assert.equal(workerBundles.length, 1, `bundles: ${h.bundles(dir)}\n${r.stderr}`);
  const bundle = workerBundles[0];
  const summary = h.readSummary(bundle);
  assert.ok(summary.threadId > 0);
  assert.ok(bundle.endsWith(`-t${summary.threadId}`));
  const [capture] = summary.captures;
  assert.equal(capture.trigger, 'near-heap-limit');
  assert.equal(capture.outcome, 'written');
  // The worker's own limit (48 MB old space), not the process's.
  assert.ok(capture.heapLimit.initial <= 48 << 20, `initial limit ${capture.heapLimit.initial}`);
  const heapFile = capture.files.find((f) => f.name.endsWith('.heapsnapshot.gz'));
  const snapshot = h.readSnapshot(path.join(bundle, heapFile.name));
  assert.ok(h.countByClass(snapshot).get('LeakedSession') > 5_000);
  return bundle;
}

test('preloaded with -r: a worker that runs out of memory gets its own bundle, main lives on', async (t) => {
  const dir = h.tempDir(t);
  const r = await h.runNode(['-r', h.MEMGUARD, h.fixture('worker-leak.js')], { env: { MEMGUARD_DIR: dir, MEMGUARD_KEEP: 'all' } });
  await checkWorkerBundle(dir, r);
  // The main thread did not leak: no snapshot, only its timeline.
  const [main] = h.bundles(dir).filter((b) => !/-t\d+$/.test(b));
  assert.deepEqual(h.snapshotsUnder(main), []);
  assert.ok(h.readTimeline(main).length > 0);
});

test('required from the worker code only: the worker is guarded', async (t) => {
  const dir = h.tempDir(t);
  const r = await h.runNode([h.fixture('worker-leak.js')], {
    env: { MEMGUARD_DIR: dir, WORKER_ENTRY: 'worker-requires-memguard.js', GUARD_MODULE: h.MEMGUARD },
  });
  await checkWorkerBundle(dir, r);
});

test('many short-lived guarded workers start and stop cleanly', async (t) => {
  const dir = h.tempDir(t);
  const workerCode = `require(${JSON.stringify(h.MEMGUARD)}); const a = []; for (let i = 0; i < 1e5; i++) a.push({ i });`;
  const script = `
    const { Worker } = require('node:worker_threads');
    let left = 20;
    function next() {
      if (left-- === 0) return console.log('done');
      const w = new Worker(${JSON.stringify(workerCode)}, { eval: true });
      w.on('exit', next);
    }
    next();`;
  const r = await h.runNode(['-r', h.MEMGUARD, '-e', script], { env: { MEMGUARD_DIR: dir } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /done/);
  // Threads that ended well and captured nothing leave no bundle (a service
  // starting a worker per task would otherwise fill the disk).
  assert.deepEqual(h.bundles(dir), []);
});
