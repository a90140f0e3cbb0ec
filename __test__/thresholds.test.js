'use strict';
// Heap thresholds: captures before the heap is anywhere near its end.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const h = require('./helpers');

test('thresholds 0.5,0.8 on a leak: two captures in order, then the near-limit one', async (t) => {
  const dir = h.tempDir(t);
  // A full GC every ~11 MB of leak makes sure a mark-compact sees the heap
  // between the two thresholds (V8 alone may skip from below 0.5 to above
  // 0.8 in one step, which makes one capture). The 1 MB semi-space checks
  // that Node's --max-semi-space-size is taken out of the limit.
  const r = await h.runNode(
    ['--max-old-space-size=96', '--max-semi-space-size=1', '--expose-gc', '-r', h.MEMGUARD, h.fixture('leak.js')],
    { env: { MEMGUARD_DIR: dir, MEMGUARD_HEAP_THRESHOLDS: '0.5,0.8', LEAK_GC_EVERY: '5' } },
  );
  assert.equal(r.signal, 'SIGABRT', r.stderr.slice(-500));
  const [bundle] = h.bundles(dir);
  const captures = h.readSummary(bundle).captures;
  assert.deepEqual(
    captures.map((c) => [c.seq, c.trigger, c.outcome]),
    [
      [1, 'heap-threshold', 'written'],
      [2, 'heap-threshold', 'written'],
      [3, 'near-heap-limit', 'written'],
    ],
  );
  const at = (c) => Number(/^heap used after a mark-compact reached ([\d.]+) of the heap limit \(([\d.]+)\)$/.exec(c.reason).slice(1, 3)[1]);
  assert.match(captures[0].reason, /reached 0\.5 of the heap limit/);
  assert.match(captures[1].reason, /reached 0\.8 of the heap limit/);
  assert.ok(at(captures[0]) >= 0.5 && at(captures[0]) < 0.8, captures[0].reason);
  assert.ok(at(captures[1]) >= 0.8, captures[1].reason);
  assert.ok(captures[0].heap.usedHeapSize < captures[1].heap.usedHeapSize);
  // Taken at an interrupt check: the JS that was running (the leak's loop or
  // the event loop's code between its rounds).
  for (const c of captures.slice(0, 2)) {
    assert.ok(c.stack.length > 0 && c.stack.every((f) => typeof f.functionName === 'string' && f.line > 0), JSON.stringify(c.stack));
  }
  for (const c of captures) assert.ok(c.files.some((f) => f.name === `heap-${c.seq}.heapsnapshot.gz`));
});

test('a threshold capture still pending when the near-limit one runs is folded into it: one snapshot, and summary.json says so', async (t) => {
  const dir = h.tempDir(t);
  // fold.js crosses the threshold and reaches the old-space limit inside one
  // JSON.parse, where no interrupt runs: the threshold capture can only come
  // after the near-limit one, every time. Thresholds are fractions of the
  // old generation's limit (--max-old-space-size), on every Node line.
  const threshold = '0.73';
  const r = await h.runNode(['--max-old-space-size=64', '-r', h.MEMGUARD, h.fixture('fold.js')], {
    env: { MEMGUARD_DIR: dir, MEMGUARD_HEAP_THRESHOLDS: threshold },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /parsed \d+/);
  const [bundle] = h.bundles(dir);
  const captures = h.readSummary(bundle).captures;
  assert.deepEqual(captures.map((c) => [c.trigger, c.outcome]), [['near-heap-limit', 'written']], JSON.stringify(captures));
  assert.equal(captures[0].folded.length, 1);
  assert.equal(captures[0].folded[0].trigger, 'heap-threshold');
  assert.match(captures[0].folded[0].reason, new RegExp(`reached ${threshold} of the heap limit`));
  assert.deepEqual(h.snapshotsUnder(bundle), ['heap-1.heapsnapshot.gz']);
  const markers = h.readTimeline(bundle).filter((rec) => rec.type === 'marker').map((rec) => rec.name);
  assert.ok(markers.includes('capture-folded'), markers.join(','));
});
