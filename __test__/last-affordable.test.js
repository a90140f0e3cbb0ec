'use strict';
// In a container whose memory limit a snapshot near the heap limit could
// never fit in, memguard takes one heap snapshot earlier, at the last
// affordable moment of a growing heap — and the process still dies as it
// would have. Real leaking children in a real 400 MB memory cgroup.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { describe, test } = require('node:test');
const h = require('./helpers');

const MB = 1024 * 1024;
const CLI = path.join(h.ROOT, 'bin', 'memguard.js');
const LIMIT = 400 * MB;

/** A 400 MB memory cgroup with no swap to escape into, or a skip reason. */
function container(t) {
  const cgroup = h.makeCgroup(t, LIMIT);
  if (!cgroup.skip) {
    try {
      fs.writeFileSync(path.join(cgroup.dir, 'memory.memsw.limit_in_bytes'), String(LIMIT));
    } catch {
      // No swap accounting: there is no swap to escape into either.
    }
  }
  return cgroup;
}

/** The bundle's captures, and asserts no snapshot was cut short. */
function captures(bundle) {
  assert.deepEqual(h.filesUnder(bundle).filter((f) => f.endsWith('.partial')), [], 'no snapshot cut short');
  return h.readSummary(bundle).captures;
}

/** `memguard report` on the bundle: it says the snapshot is from earlier, and the verdict uses it. */
async function assertReport(bundle, capture) {
  const json = await h.runNode([CLI, 'report', bundle, '--json']);
  assert.equal(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout);
  assert.deepEqual(
    [report.snapshot.earlier.trigger, report.snapshot.earlier.heapUsedThen],
    ['last-affordable', capture.heap.usedHeapSize],
  );
  assert.ok(report.snapshot.earlier.heapUsedAtEnd > 2 * capture.heap.usedHeapSize, JSON.stringify(report.snapshot.earlier));
  const [suspect] = report.verdict.suspects;
  assert.equal(report.verdict.status, 'leak-suspect', report.verdict.headline);
  assert.equal(suspect.class, 'LeakedSession', report.verdict.headline);
  assert.equal(suspect.holder.class, 'Map', JSON.stringify(suspect.holder));
  assert.match(suspect.evidence, /the snapshot is from earlier \(last-affordable, heap [\d.]+ MB then\); the heap grew on to [\d.]+ MB after it/);
  const text = await h.runNode([CLI, 'report', bundle]);
  assert.match(text.stdout, /^ {2}taken earlier \(last-affordable at [^)]+\): heap [\d.]+ MB then, [\d.]+ MB at the end/m);
}

/** The early capture: written, before death, with a complete snapshot full of the leaking class. */
async function assertEarlySnapshot(r, bundle) {
  const all = captures(bundle);
  const early = all.filter((c) => c.trigger === 'last-affordable');
  assert.equal(early.length, 1, `one last-affordable capture: ${JSON.stringify(all.map((c) => c.trigger))}\n${r.stderr}`);
  const [capture] = early;
  assert.equal(capture.seq, 1, 'the first capture, long before the end');
  assert.equal(capture.outcome, 'written', JSON.stringify(capture));
  const plan = capture.detail;
  assert.equal(plan.source, 'cgroup');
  assert.equal(plan.memoryLimitBytes, LIMIT);
  assert.ok(plan.endNeededBytes > plan.endAvailableBytes, `the snapshot at the end would not fit: ${JSON.stringify(plan)}`);
  assert.ok(plan.usedHeapBytes <= plan.thresholdBytes * 1.1, JSON.stringify(plan));
  assert.ok(plan.expectedPauseMs > 0);
  // The estimate and what the snapshot really took.
  const mem = capture.snapshotMemory;
  assert.ok(mem.peakBytes > 0 && mem.estimatedBytes >= 16 * capture.heap.usedHeapSize, JSON.stringify(mem));
  assert.ok(mem.estimatedBytes >= mem.peakBytes * 0.9, `never under-estimated by more than 10 %: ${JSON.stringify(mem)}`);
  assert.ok(mem.rssBeforeBytes + mem.peakBytes < LIMIT, JSON.stringify(mem));
  // The log line says why, and the pause.
  assert.ok(
    h.memguardLines(r.stderr).some((l) => /snapshot when memory runs out would need about \d+ MB .*taking one now while it fits.*the app pauses about \d+\.\d s/.test(l)),
    r.stderr,
  );
  // A complete, parseable snapshot in which the leak is plain to see.
  const [file] = capture.files.filter((f) => f.name.endsWith('.heapsnapshot.gz')).map((f) => f.name);
  assert.equal(file, 'heap-1.heapsnapshot.gz');
  const sessions = h.countByClass(h.readSnapshot(path.join(bundle, file))).get('LeakedSession') || 0;
  assert.ok(sessions >= 5000, `LeakedSession objects in the early snapshot: ${sessions}`);
  // The timeline went on past it, to the end.
  const samples = h.readTimeline(bundle).filter((x) => x.type === 'sample');
  const peak = Math.max(...samples.map((s) => s.heap.used));
  assert.ok(peak > 2 * capture.heap.usedHeapSize, `the heap grew on after the snapshot: ${peak} vs ${capture.heap.usedHeapSize}`);
  await assertReport(bundle, capture);
  return all;
}

// Two children at a time: they spend most of their life in a slow leak.
describe('the last affordable snapshot in a 400 MB container', { concurrency: 2 }, () => {
  test('heap limit above the container limit: a snapshot at the last affordable moment, then the kernel kills it as before', async (t) => {
    const cgroup = container(t);
    if (cgroup.skip) return t.skip(cgroup.skip);
    const dir = h.tempDir(t);
    const args = ['--expose-gc', '--max-old-space-size=4096', '-r', h.MEMGUARD, h.fixture('container-leak.js')];
    const r = await h.runNodeInCgroup(cgroup.dir, args, { MEMGUARD_DIR: dir, LEAK_BUFFERS: '1' });
    assert.equal(r.signal, 'SIGKILL', `the kernel's OOM killer ends it, as without memguard: ${r.stderr.slice(-1500)}`);
    const [bundle] = h.bundles(dir);
    const all = await assertEarlySnapshot(r, bundle);
    // Later captures near the limit could not afford a snapshot and wrote none.
    assert.ok(all.slice(1).every((c) => c.outcome !== 'written'), JSON.stringify(all.map((c) => [c.trigger, c.outcome])));
  });

  test("Node's default heap limit in a container: a snapshot at the last affordable moment, then V8 (or the kernel) ends it as before", async (t) => {
    const cgroup = container(t);
    if (cgroup.skip) return t.skip(cgroup.skip);
    const dir = h.tempDir(t);
    const args = ['--expose-gc', '-r', h.MEMGUARD, h.fixture('container-leak.js')];
    const r = await h.runNodeInCgroup(cgroup.dir, args, { MEMGUARD_DIR: dir });
    assert.ok(['SIGABRT', 'SIGKILL'].includes(r.signal), `V8's OOM or the kernel's: ${r.signal} ${r.stderr.slice(-1500)}`);
    if (r.signal === 'SIGABRT') assert.match(r.stderr, /JavaScript heap out of memory/);
    const [bundle] = h.bundles(dir);
    await assertEarlySnapshot(r, bundle);
  });

  test('no early capture for a large heap that does not grow', async (t) => {
    const cgroup = container(t);
    if (cgroup.skip) return t.skip(cgroup.skip);
    const dir = h.tempDir(t);
    const args = ['--expose-gc', '-r', h.MEMGUARD, h.fixture('container-leak.js')];
    const env = { MEMGUARD_DIR: dir, MEMGUARD_KEEP: 'all', FLAT_MB: '120', RUN_SECONDS: '15' };
    const r = await h.runNodeInCgroup(cgroup.dir, args, env);
    assert.equal(r.code, 0, r.stderr);
    const [bundle] = h.bundles(dir);
    assert.deepEqual(captures(bundle), [], r.stderr);
    assert.deepEqual(h.snapshotsUnder(dir), []);
    // It was large: a snapshot of it would not have fit.
    const samples = h.readTimeline(bundle).filter((x) => x.type === 'sample');
    assert.ok(Math.max(...samples.map((s) => s.heap.used)) > 100 * MB);
  });

  test('no early capture with MEMGUARD_EARLY_SNAPSHOT=off', async (t) => {
    const cgroup = container(t);
    if (cgroup.skip) return t.skip(cgroup.skip);
    const dir = h.tempDir(t);
    const args = ['--expose-gc', '--max-old-space-size=4096', '-r', h.MEMGUARD, h.fixture('container-leak.js')];
    const env = { MEMGUARD_DIR: dir, MEMGUARD_EARLY_SNAPSHOT: 'off', LEAK_BUFFERS: '1' };
    const r = await h.runNodeInCgroup(cgroup.dir, args, env);
    assert.equal(r.signal, 'SIGKILL', r.stderr.slice(-1500));
    const [bundle] = h.bundles(dir);
    const all = captures(bundle);
    assert.ok(all.every((c) => c.trigger !== 'last-affordable'), JSON.stringify(all.map((c) => c.trigger)));
    assert.deepEqual(h.snapshotsUnder(dir), [], 'and so no snapshot at all, as before');
    assert.equal(h.readSummary(bundle).config.earlySnapshot, false);
  });
});
