'use strict';
// Which code allocated it: the sampling heap profile and the JS stack,
// saved with every capture.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const h = require('./helpers');

/** Every node of a CDP SamplingHeapProfile tree, flattened. */
function flatten(node, out = []) {
  out.push(node);
  for (const child of node.children) flatten(child, out);
  return out;
}

test('an OOM capture writes a .heapprofile that blames the leaking function, and the stack at the end', async (t) => {
  const dir = h.tempDir(t);
  // V8's sampling profiler credits an inlined function's allocations to its
  // caller; without inlining the profile names the exact function.
  const noInlining = ['--no-turbo-inlining', '--no-maglev-inlining'];
  const r = await h.runNode([...noInlining, '--max-old-space-size=64', '-r', h.MEMGUARD, h.fixture('alloc-sites.js')], {
    env: { MEMGUARD_DIR: dir },
  });
  assert.equal(r.signal, 'SIGABRT', r.stderr.slice(-1000));
  const [bundle] = h.bundles(dir);
  const [capture] = h.readSummary(bundle).captures;
  assert.ok(capture.files.some((f) => f.name === 'allocations-1.heapprofile'), JSON.stringify(capture.files));

  const profile = JSON.parse(fs.readFileSync(path.join(bundle, 'allocations-1.heapprofile'), 'utf8'));
  assert.equal(profile.head.callFrame.functionName, '(root)');
  for (const key of ['functionName', 'scriptId', 'url', 'lineNumber', 'columnNumber']) assert.ok(key in profile.head.callFrame, key);
  assert.ok(profile.samples.length > 10);
  for (const s of profile.samples.slice(0, 5)) assert.deepEqual(Object.keys(s).sort(), ['nodeId', 'ordinal', 'size']);
  const nodes = flatten(profile.head);
  const ids = new Set(nodes.map((n) => n.id));
  assert.ok(profile.samples.every((s) => ids.has(s.nodeId)), 'every sample points at a node');

  // The largest self size is the leaking function, in the fixture, at the line
  // where it is defined (V8 gives a frame's function position; 0-based in CDP).
  const [top] = [...nodes].sort((a, b) => b.selfSize - a.selfSize);
  assert.equal(top.callFrame.functionName, 'retainRecord');
  assert.ok(top.callFrame.url.endsWith('alloc-sites.js'), top.callFrame.url);
  const source = fs.readFileSync(h.fixture('alloc-sites.js'), 'utf8').split('\n');
  assert.match(source[top.callFrame.lineNumber], /function retainRecord/);
  const churn = nodes.filter((n) => n.callFrame.functionName === 'churnGarbage').reduce((a, n) => a + n.selfSize, 0);
  assert.ok(top.selfSize > 5 * churn, `leak ${top.selfSize} vs churn ${churn}`);

  // summary.json: top allocation site first, and the stack names the allocating code.
  assert.equal(capture.topAllocationSites[0].functionName, 'retainRecord');
  assert.equal(capture.topAllocationSites[0].line, top.callFrame.lineNumber + 1);
  assert.ok(capture.stack.length > 0);
  const names = capture.stack.map((f) => f.functionName);
  // Innermost first: the leaking loop (or what it calls), then its callers.
  assert.ok(['retainRecord', 'churnGarbage', 'leakLoop'].includes(names[0]), names.join(' < '));
  assert.ok(names.includes('leakLoop'), names.join(' < '));
  assert.equal(capture.stackTaken, 'at the first interrupt check after the trigger');
  assert.ok(capture.stack.some((f) => f.url.endsWith('alloc-sites.js') && f.line > 0));
});

test('allocationProfile() returns the live profile; MEMGUARD_ALLOC_SAMPLING=off writes none', async (t) => {
  const script = (dir) => `
    const memguard = require(${JSON.stringify(h.MEMGUARD)});
    globalThis.keep = [];
    function hoard() { for (let i = 0; i < 2e5; i++) keep.push({ i, s: 'x' + i }); }
    hoard();
    const p = memguard.allocationProfile();
    const path = memguard.snapshot('test');
    console.log(JSON.stringify({ hasProfile: !!p, hoard: p ? JSON.stringify(p).includes('"hoard"') : false, config: memguard.config.allocSampling }));`;
  const dir = h.tempDir(t);
  const on = await h.runNode(['-e', script(dir)], { env: { MEMGUARD_DIR: dir, MEMGUARD_ALLOC_SAMPLING: '64KiB' } });
  assert.equal(on.code, 0, on.stderr);
  assert.deepEqual(JSON.parse(on.stdout), { hasProfile: true, hoard: true, config: 65536 });
  assert.ok(h.filesUnder(dir).some((f) => f.endsWith('allocations-1.heapprofile')));

  const offDir = h.tempDir(t);
  const off = await h.runNode(['-e', script(offDir)], { env: { MEMGUARD_DIR: offDir, MEMGUARD_ALLOC_SAMPLING: 'off' } });
  assert.equal(off.code, 0, off.stderr);
  assert.deepEqual(JSON.parse(off.stdout), { hasProfile: false, hoard: false, config: null });
  assert.ok(!h.filesUnder(offDir).some((f) => f.endsWith('.heapprofile')));
  const [bundle] = h.bundles(offDir);
  assert.equal(h.readSummary(bundle).captures[0].topAllocationSites, undefined);
});

test('a worker capture has its own allocation profile', async (t) => {
  const dir = h.tempDir(t);
  // Two near-limit snapshots: after the first, memguard (not Node's worker
  // handler, which may end the worker before any JS runs) answers the next
  // near-limit event, so the worker's JS runs again and its stack is taken.
  const r = await h.runNode(['-r', h.MEMGUARD, h.fixture('worker-leak.js')], {
    env: { MEMGUARD_DIR: dir, MEMGUARD_NEAR_LIMIT_SNAPSHOTS: '2' },
  });
  assert.equal(r.code, 0, r.stderr.slice(-1000));
  const [bundle] = h.bundles(dir).filter((b) => /-t\d+$/.test(b));
  const [capture] = h.readSummary(bundle).captures;
  assert.ok(capture.files.some((f) => f.name === 'allocations-1.heapprofile'));
  assert.equal(capture.topAllocationSites[0].url.endsWith('leak.js'), true, JSON.stringify(capture.topAllocationSites[0]));
  assert.ok(capture.stack.length > 0);
});
