'use strict';
// A snapshot needs many times the heap in native memory. When the process
// cannot afford it, memguard writes the cheap artifacts and says why,
// instead of getting the process killed mid-snapshot.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const h = require('./helpers');

test('an unaffordable near-limit snapshot is skipped: fallback artifacts, the reason, the same death', async (t) => {
  const dir = h.tempDir(t);
  const r = await h.runNode(['--max-old-space-size=64', '-r', h.MEMGUARD, h.fixture('leak.js')], {
    env: { MEMGUARD_DIR: dir, MEMGUARD_MEMORY_LIMIT: '300MiB' },
  });
  assert.equal(r.signal, 'SIGABRT', r.stderr.slice(-500));
  assert.match(r.stderr, /JavaScript heap out of memory/);
  assert.match(r.stderr, /^memguard: warning: heap snapshot skipped: a snapshot needs about \d+ MB of memory and only \d+ MB is available \(MEMGUARD_MEMORY_LIMIT\)/m);

  const [bundle] = h.bundles(dir);
  assert.deepEqual(h.snapshotsUnder(bundle), []);
  const [capture] = h.readSummary(bundle).captures;
  assert.equal(capture.trigger, 'near-heap-limit');
  assert.equal(capture.outcome, 'skipped');
  const skip = capture.snapshotSkipped;
  assert.equal(skip.source, 'MEMGUARD_MEMORY_LIMIT');
  assert.ok(skip.neededBytes > skip.availableBytes, JSON.stringify(skip));
  assert.ok(skip.neededBytes >= 15 * capture.heap.usedHeapSize);
  // What could be written, was: statistics, the allocation profile, the timeline.
  assert.ok(capture.heap.usedHeapSize > 0 && capture.spaces.length > 0);
  assert.deepEqual(capture.files.map((f) => f.name), ['allocations-1.heapprofile']);
  assert.ok(fs.existsSync(path.join(bundle, 'allocations-1.heapprofile')));
  const end = h.readTimeline(bundle).find((x) => x.name === 'snapshot-end');
  assert.equal(end.ok, false);
  assert.match(end.skipped, /a snapshot needs about/);
});

test('MEMGUARD_SNAPSHOT=never: snapshot() throws with the reason, the app carries on', async (t) => {
  const dir = h.tempDir(t);
  const script = `
    const memguard = require(${JSON.stringify(h.MEMGUARD)});
    try { memguard.snapshot('x'); console.log('no error'); } catch (err) { console.log('error: ' + err.message); }`;
  const r = await h.runNode(['-e', script], { env: { MEMGUARD_DIR: dir, MEMGUARD_SNAPSHOT: 'never' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'error: heap snapshot skipped: MEMGUARD_SNAPSHOT=never');
  assert.deepEqual(h.snapshotsUnder(dir), []);
});
