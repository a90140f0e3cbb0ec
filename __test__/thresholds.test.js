'use strict';
// Heap thresholds: captures before the heap is anywhere near its end.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const h = require('./helpers');

test('thresholds 0.5,0.8 on a leak: two captures in order, then the near-limit one', async (t) => {
  const dir = h.tempDir(t);
  // A 1 MB semi-space keeps the young generation out of heap_size_limit's way.
  const r = await h.runNode(['--max-old-space-size=96', '--max-semi-space-size=1', '-r', h.MEMGUARD, h.fixture('leak.js')], {
    env: { MEMGUARD_DIR: dir, MEMGUARD_HEAP_THRESHOLDS: '0.5,0.8' },
  });
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
  assert.equal(captures[0].reason, 'heap used reached 0.5 of the heap limit');
  assert.equal(captures[1].reason, 'heap used reached 0.8 of the heap limit');
  const fraction = (c) => c.heap.usedHeapSize / c.heap.heapSizeLimit;
  assert.ok(fraction(captures[0]) >= 0.45 && fraction(captures[0]) < 0.8, `first at ${fraction(captures[0])}`);
  assert.ok(fraction(captures[1]) >= 0.75, `second at ${fraction(captures[1])}`);
  assert.ok(captures[0].heap.usedHeapSize < captures[1].heap.usedHeapSize);
  // Taken at an interrupt check: the JS that was running (the leak's loop or
  // the event loop's code between its rounds).
  for (const c of captures.slice(0, 2)) {
    assert.ok(c.stack.length > 0 && c.stack.every((f) => typeof f.functionName === 'string' && f.line > 0), JSON.stringify(c.stack));
  }
  for (const c of captures) assert.ok(c.files.some((f) => f.name === `heap-${c.seq}.heapsnapshot.gz`));
});
