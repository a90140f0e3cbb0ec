'use strict';
// The core promise: a leaking app that dies of "JavaScript heap out of
// memory" leaves a bundle with a heap snapshot that shows the leak.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const h = require('./helpers');

const HEAP = '--max-old-space-size=64';

test('a leaking app still dies of OOM, and its bundle holds a snapshot naming the leak', async (t) => {
  const dir = h.tempDir(t);
  const [plain, guarded] = await Promise.all([
    h.runNode([HEAP, h.fixture('leak.js')]),
    h.runNode([HEAP, '-r', h.MEMGUARD, h.fixture('leak.js')], { env: { MEMGUARD_DIR: dir } }),
  ]);

  // Same death as without memguard: V8's OOM abort.
  assert.equal(plain.signal, 'SIGABRT', plain.stderr.slice(-500));
  assert.match(plain.stderr, /JavaScript heap out of memory/);
  assert.equal(guarded.signal, plain.signal, guarded.stderr.slice(-2000));
  assert.equal(guarded.code, plain.code);
  assert.match(guarded.stderr, /JavaScript heap out of memory/);

  const [bundle, ...others] = h.bundles(dir);
  assert.ok(bundle, `no bundle in ${dir}: ${guarded.stderr.slice(-1000)}`);
  assert.deepEqual(others, []);
  assert.match(path.basename(bundle), new RegExp(`^\\d{8}-\\d{6}-\\d+$`));
  assert.equal(fs.statSync(bundle).mode & 0o777, 0o700);

  const summary = h.readSummary(bundle);
  assert.equal(summary.threadId, 0);
  assert.equal(summary.node, process.version);
  assert.ok(summary.argv.some((a) => a.endsWith('leak.js')));
  assert.equal(summary.captures.length, 1);
  const capture = summary.captures[0];
  assert.equal(capture.trigger, 'near-heap-limit');
  assert.equal(capture.outcome, 'written');
  assert.ok(capture.heapLimit.granted > capture.heapLimit.current);
  assert.ok(capture.heap.usedHeapSize > 50 << 20, `used ${capture.heap.usedHeapSize}`);
  assert.ok(capture.spaces.some((s) => s.spaceName === 'old_space'));
  assert.deepEqual(capture.files.map((f) => f.name), ['allocations-1.heapprofile', 'heap-1.heapsnapshot.gz']);
  const file = capture.files[1];
  const onDisk = path.join(bundle, file.name);
  assert.equal(fs.statSync(onDisk).size, file.bytes);
  assert.equal(fs.statSync(onDisk).mode & 0o777, 0o600);
  assert.ok(file.bytes < file.uncompressedBytes / 3, `compressed ${file.bytes} of ${file.uncompressedBytes}`);

  const snapshot = h.readSnapshot(onDisk);
  const counts = h.countByClass(snapshot);
  assert.ok(counts.get('LeakedSession') > 10_000, `LeakedSession: ${counts.get('LeakedSession')}`);
  const [top] = [...counts].sort((a, b) => b[1] - a[1]);
  assert.equal(top[0], 'LeakedSession', `most numerous object class is ${top[0]}`);
  assert.deepEqual(h.filesUnder(bundle).sort(), [
    'allocations-1.heapprofile',
    'heap-1.heapsnapshot.gz',
    'history.ndjson.gz',
    'summary.json',
    'timeline.ndjson.gz',
  ]);
  assert.match(guarded.stderr, /^memguard: wrote .*heap-1\.heapsnapshot\.gz/m);
});

test('MEMGUARD_NEAR_LIMIT_SNAPSHOTS=0 leaves the near-limit event to V8', async (t) => {
  const dir = h.tempDir(t);
  const r = await h.runNode([HEAP, '-r', h.MEMGUARD, h.fixture('leak.js')], {
    env: { MEMGUARD_DIR: dir, MEMGUARD_NEAR_LIMIT_SNAPSHOTS: '0' },
  });
  assert.equal(r.signal, 'SIGABRT');
  assert.deepEqual(h.snapshotsUnder(dir), []);
});

test("with Node's own --heapsnapshot-near-heap-limit, Node writes the snapshot and memguard says so", async (t) => {
  const dir = h.tempDir(t);
  const cwd = h.tempDir(t);
  const r = await h.runNode([HEAP, '--heapsnapshot-near-heap-limit=1', '-r', h.MEMGUARD, h.fixture('leak.js')], {
    env: { MEMGUARD_DIR: dir },
    cwd,
  });
  assert.equal(r.signal, 'SIGABRT');
  assert.match(r.stderr, /memguard: Node's --heapsnapshot-near-heap-limit=1 is set/);
  assert.equal(fs.readdirSync(cwd).filter((f) => f.endsWith('.heapsnapshot')).length, 1, r.stderr.slice(-500));
  assert.deepEqual(h.snapshotsUnder(dir), []);
});
