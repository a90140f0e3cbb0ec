'use strict';
// The flight recorder: a compressed, crash-safe timeline of GCs, heap
// samples and markers that survives kill -9 and OOM aborts.
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const h = require('./helpers');

const gcs = (records) => records.filter((r) => r.type === 'gc');
const samples = (records) => records.filter((r) => r.type === 'sample');

test('a leaking app killed with SIGKILL leaves a timeline that decompresses and covers its life', async (t) => {
  const dir = h.tempDir(t);
  const child = spawn(process.execPath, ['-r', h.MEMGUARD, h.fixture('leak.js')], {
    env: { ...process.env, MEMGUARD_DIR: dir, LEAK_START_MESSAGE: 'started' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise((resolve) => child.stdout.once('data', resolve));
  await new Promise((resolve) => setTimeout(resolve, 3500));
  child.kill('SIGKILL');
  await new Promise((resolve) => child.on('close', resolve));

  const [bundle] = h.bundles(dir);
  const records = h.readTimeline(bundle); // zlib.gunzipSync over the whole file
  assert.equal(records[0].type, 'start');
  const s = samples(records);
  assert.ok(s.length >= 3, `${s.length} samples`);
  assert.ok(s.at(-1).t - s[0].t >= 2000, `samples cover ${s.at(-1).t - s[0].t} ms`);
  assert.ok(s.at(-1).heap.used > s[0].heap.used * 5, 'heap used climbs');
  assert.ok(s[0].rss > 0 && s[0].spaces.old_space.length === 2);
  const g = gcs(records);
  assert.ok(g.length >= 10, `${g.length} GC events`);
  assert.ok(g.some((e) => e.kind === 'scavenge') && g.some((e) => e.kind === 'mark-compact'));
  for (let i = 1; i < records.length; i++) assert.ok(records[i].t >= records[i - 1].t - 5, `time goes forward at ${i}`);
  // summary.json was written at start and names the timeline.
  assert.equal(h.readSummary(bundle).timeline.file, 'timeline.ndjson.gz');
});

test('GC events match what --trace-gc prints for the same process', async (t) => {
  const dir = h.tempDir(t);
  const r = await h.runNode(['--trace-gc', '--max-semi-space-size=1', '-r', h.MEMGUARD, h.fixture('churn.js')], {
    env: { MEMGUARD_DIR: dir, MEMGUARD_KEEP: 'all', CHURN_MS: '2000' },
  });
  assert.equal(r.code, 0, r.stderr);
  const traced = r.stdout.split('\n').filter((l) => /ms: (Incremental )?(Scavenge|Mark-Compact|Mark-Sweep|Minor Mark-Sweep|Minor Mark-Compact)/.test(l)).length;
  const [bundle] = h.bundles(dir);
  const recorded = gcs(h.readTimeline(bundle)).filter((e) => ['scavenge', 'mark-compact', 'minor-mark-sweep'].includes(e.kind)).length;
  assert.ok(traced > 50, `--trace-gc printed ${traced} GCs`);
  assert.ok(Math.abs(recorded - traced) <= Math.max(3, traced * 0.02), `recorded ${recorded}, --trace-gc ${traced}`);
  const summary = h.readSummary(bundle);
  assert.equal(summary.timeline.digest.gc.scavenge.count, gcs(h.readTimeline(bundle)).filter((e) => e.kind === 'scavenge').length);
  assert.equal(summary.timeline.digest.dropped, 0);
  assert.deepEqual(summary.ended, { reason: 'exit', code: 0 });
});

test('an app dying of OOM: the timeline reaches the end and shows the heap climbing to the limit', async (t) => {
  const dir = h.tempDir(t);
  const r = await h.runNode(['--max-old-space-size=64', '-r', h.MEMGUARD, h.fixture('leak.js')], {
    env: { MEMGUARD_DIR: dir, MEMGUARD_INTERVAL_MS: '200' },
  });
  const died = Date.now();
  assert.equal(r.signal, 'SIGABRT');
  const [bundle] = h.bundles(dir);
  const records = h.readTimeline(bundle);
  const names = records.filter((x) => x.type === 'marker').map((x) => x.name);
  assert.deepEqual(names.slice(0, 2), ['snapshot-start', 'snapshot-end']);
  const end = records[0].epochMs + records.at(-1).t;
  assert.ok(died - end < 3000, `timeline ends ${died - end} ms before the parent saw the death`);
  const used = [...samples(records).map((x) => x.heap.used), ...gcs(records).map((x) => x.beforeKB * 1024)];
  const limit = 64 * 1024 * 1024;
  assert.ok(samples(records)[0].heap.used < limit / 3);
  // V8 calls the near-limit callback somewhat below the limit (old space
  // plus large objects count; used heap measures a little differently).
  assert.ok(Math.max(...used) > limit * 0.85, `peak ${Math.max(...used)}`);
  const digest = h.readSummary(bundle).timeline.digest;
  assert.ok(digest.heapUsedPeak > limit * 0.85);
  assert.ok(digest.gc['mark-compact'].count > 0);
});

test('an app that finishes its work exits by itself; exit codes, uncaught errors and signals are unchanged', async (t) => {
  const dir = h.tempDir(t);
  const env = { MEMGUARD_DIR: dir, MEMGUARD_INTERVAL_MS: '50', MEMGUARD_KEEP: 'all' };
  const done = await h.runNode(['-r', h.MEMGUARD, h.fixture('churn.js')], { env: { ...env, CHURN_MS: '300', CHURN_EXIT_CODE: '5' }, timeoutMs: 20_000 });
  assert.equal(done.code, 5, done.stderr);
  assert.match(done.stdout, /churn done/);

  const thrown = await h.runNode(['-r', h.MEMGUARD, '-e', 'setTimeout(() => { throw new Error("boom") }, 100)'], { env });
  assert.equal(thrown.code, 1);
  assert.match(thrown.stderr, /Error: boom/);

  const exited = await h.runNode(['-r', h.MEMGUARD, '-e', 'setTimeout(() => process.exit(7), 100)'], { env });
  assert.equal(exited.code, 7);

  const termed = await h.runNode(['-r', h.MEMGUARD, '-e', 'setTimeout(() => process.kill(process.pid, "SIGTERM"), 100); setInterval(() => {}, 1000)'], { env });
  assert.equal(termed.signal, 'SIGTERM');

  const own = await h.runNode(
    ['-r', h.MEMGUARD, '-e', 'process.on("SIGTERM", () => { console.log("app handled"); process.exit(0) }); setTimeout(() => process.kill(process.pid, "SIGTERM"), 100); setInterval(() => {}, 1000)'],
    { env },
  );
  assert.equal(own.code, 0, own.stderr);
  assert.match(own.stdout, /app handled/);

  const ends = h.bundles(dir).map((b) => h.readSummary(b).ended).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  assert.deepEqual(ends, [
    { reason: 'exit', code: 0 },
    { reason: 'exit', code: 1 },
    { reason: 'exit', code: 5 },
    { reason: 'exit', code: 7 },
    { reason: 'signal', signal: 'SIGTERM' },
  ]);
  for (const b of h.bundles(dir)) assert.equal(h.readTimeline(b).at(-1).name, 'end');
});

test('timeline({last}) returns recent records; MEMGUARD_TIMELINE=off records nothing', async (t) => {
  const dir = h.tempDir(t);
  const script = `
    const memguard = require(${JSON.stringify(h.MEMGUARD)});
    const junk = []; for (let i = 0; i < 3e5; i++) junk.push({ i }); junk.length = 0;
    setTimeout(() => console.log(JSON.stringify(memguard.timeline({ last: 5 }))), 300);`;
  const on = await h.runNode(['-e', script], { env: { MEMGUARD_DIR: dir, MEMGUARD_INTERVAL_MS: '100' } });
  assert.equal(on.code, 0, on.stderr);
  const recent = JSON.parse(on.stdout);
  assert.equal(recent.length, 5);
  assert.ok(recent.every((r) => ['gc', 'sample', 'marker'].includes(r.type)));

  const offDir = h.tempDir(t);
  const off = await h.runNode(['-e', script], { env: { MEMGUARD_DIR: offDir, MEMGUARD_TIMELINE: 'off' } });
  assert.equal(off.code, 0, off.stderr);
  assert.deepEqual(JSON.parse(off.stdout), []);
  assert.deepEqual(h.filesUnder(offDir), []);
});

test('no litter: a run that ends well with nothing captured leaves no bundle; a kill, an OOM, an error exit or MEMGUARD_KEEP=all keep theirs', async (t) => {
  const dir = h.tempDir(t);
  const env = { MEMGUARD_DIR: dir };
  const ok = await h.runNode(['-r', h.MEMGUARD, h.fixture('churn.js')], { env: { ...env, CHURN_MS: '200' } });
  assert.equal(ok.code, 0, ok.stderr);
  const termed = await h.runNode(['-r', h.MEMGUARD, '-e', 'setTimeout(() => process.kill(process.pid, "SIGTERM"), 100); setInterval(() => {}, 1000)'], { env });
  assert.equal(termed.signal, 'SIGTERM');
  assert.deepEqual(h.bundles(dir), [], 'exit 0 and SIGTERM leave nothing');

  const failed = await h.runNode(['-r', h.MEMGUARD, '-e', 'setTimeout(() => process.exit(3), 100)'], { env });
  assert.equal(failed.code, 3);
  const killed = await h.runNode(['-r', h.MEMGUARD, '-e', 'setTimeout(() => process.kill(process.pid, "SIGKILL"), 1500); setInterval(() => {}, 1000)'], { env });
  assert.equal(killed.signal, 'SIGKILL');
  const oom = await h.runNode(['--max-old-space-size=32', '-r', h.MEMGUARD, h.fixture('leak.js')], { env });
  assert.equal(oom.signal, 'SIGABRT');
  const kept = await h.runNode(['-r', h.MEMGUARD, h.fixture('churn.js')], { env: { ...env, CHURN_MS: '200', MEMGUARD_KEEP: 'all' } });
  assert.equal(kept.code, 0);

  const ends = h.bundles(dir).map((b) => {
    const s = h.readSummary(b);
    return [s.ended ? JSON.stringify(s.ended) : 'no end', s.captures.map((c) => c.trigger).join(',')];
  });
  assert.deepEqual(ends.sort(), [
    ['no end', ''], // SIGKILL: the bundle the next start will announce
    ['no end', 'near-heap-limit'],
    ['{"reason":"exit","code":0}', ''], // MEMGUARD_KEEP=all
    ['{"reason":"exit","code":3}', ''],
  ].sort());
});

// The ring (MEMGUARD_TIMELINE_MAX): a GC-heavy run with the smallest budget.
const RING_ENV = { MEMGUARD_TIMELINE_MAX: '256KiB', MEMGUARD_INTERVAL_MS: '20', MEMGUARD_KEEP: 'all' };
const RING_BUDGET = 256 * 1024;
const CLI = path.join(h.ROOT, 'bin', 'memguard.js');
// Tens of thousands of scavenges a second (forced): a second's member is then
// larger than a segment, so the ring turns every second.
const GC_STORM = (ms) => [
  '--expose-gc', '-r', h.MEMGUARD, '-e',
  `const until = Date.now() + ${ms}; let k = [];
   (function loop() {
     for (let i = 0; i < 100; i++) { k.push({ i }); gc({ type: 'minor' }); }
     if (k.length > 1e5) k = [];
     if (Date.now() < until) setImmediate(loop);
   })();`,
];

/** Each segment gunzips on its own and begins with its start record, numbered in order. */
function checkSegments(bundle) {
  const files = h.timelineFiles(bundle);
  const bytes = files.reduce((sum, f) => sum + fs.statSync(path.join(bundle, f)).size, 0);
  assert.ok(bytes <= RING_BUDGET, `${bytes} bytes in ${files.length} segments`);
  const heads = files.map((f) => h.readTimelineFile(path.join(bundle, f))[0]);
  for (const [i, head] of heads.entries()) {
    assert.equal(head.type, 'start', files[i]);
    assert.equal(head.segment, heads[0].segment + i, files[i]);
    assert.equal(head.epochMs, heads[0].epochMs, 'times stay relative to the process start');
  }
  return { files, bytes, first: heads[0].segment };
}

test('MEMGUARD_TIMELINE_MAX: the oldest segments go, the newest stay, and the report reads across them', async (t) => {
  const dir = h.tempDir(t);
  const r = await h.runNode(GC_STORM(7000), { env: { ...RING_ENV, MEMGUARD_DIR: dir, MEMGUARD_HISTORY_INTERVAL: '1' } });
  assert.equal(r.code, 0, r.stderr);
  const [bundle] = h.bundles(dir);
  const { files, bytes, first } = checkSegments(bundle);
  assert.ok(first > 1, `segment ${first} is the oldest kept: some were rotated away`);
  assert.equal(files.at(-1), 'timeline.ndjson.gz');
  const records = h.readTimeline(bundle);
  assert.equal(records.at(-1).name, 'end', 'the newest record is kept');
  assert.ok(gcs(records).length > 20_000, `${gcs(records).length} GCs kept`);

  const { digest } = h.readSummary(bundle).timeline;
  assert.deepEqual(digest.segments, files);
  assert.equal(digest.rotatedSegments, first - 1);
  assert.equal(digest.compressedBytes, bytes);
  // Every record is kept or counted as rotated away (the headers of later segments are not records).
  const kept = records.filter((x) => !(x.type === 'start' && x.segment > 1)).length;
  assert.equal(kept + digest.rotatedRecords, digest.records);
  t.diagnostic(`${digest.records} records, ${files.length} segments kept of ${first - 1 + files.length}; ${(digest.compressedBytes / gcs(records).length).toFixed(1)} bytes per forced GC on disk`);

  const json = await h.runNode([CLI, 'report', bundle, '--json']);
  assert.equal(json.code, 0, json.stderr);
  const timeline = JSON.parse(json.stdout).timeline;
  assert.equal(timeline.rotatedSegments, first - 1);
  assert.deepEqual(timeline.segments, files);
  assert.equal(timeline.recordedFromMs, h.readTimelineFile(path.join(bundle, files[0]))[0].t);
  assert.ok(timeline.markers.some((m) => m.name === 'end'));
  // The lifetime history is never rotated: it still counts every GC of the run.
  const history = h.readTimelineFile(path.join(bundle, 'history.ndjson.gz'));
  const periods = history.filter((x) => x.type === 'period');
  assert.equal(history[0].type, 'start');
  assert.ok(periods.length >= 6, `${periods.length} periods`);
  assert.equal(periods.reduce((n, p) => n + (p.gc.scavenge?.[0] ?? 0), 0), digest.gc.scavenge.count);
  assert.ok(periods.every((p) => p.heap.limit > 0 && p.rssMax > 0));
  const historyBytes = fs.statSync(path.join(bundle, 'history.ndjson.gz')).size;
  t.diagnostic(`history: ${periods.length} periods, ${(historyBytes / (periods.length + 1)).toFixed(0)} bytes per record`);
  const lifetime = JSON.parse(json.stdout).lifetime;
  assert.equal(lifetime.periods, periods.length);
  assert.equal(lifetime.gc.find((g) => g.kind === 'scavenge').count, digest.gc.scavenge.count);
  const text = await h.runNode([CLI, 'report', bundle]);
  assert.match(text.stdout, /Lifetime: [\d.]+ s in \d+ period\(s\); .*GCs, \d+ ms paused/);
  assert.match(text.stdout, new RegExp(`Rotated: the first ${first - 1} segment\\(s\\) were removed to stay under MEMGUARD_TIMELINE_MAX; recorded from t=`));
});

test('a GC-heavy app killed with SIGKILL mid-ring leaves every segment readable', async (t) => {
  const dir = h.tempDir(t);
  const child = spawn(process.execPath, GC_STORM(60_000), {
    env: h.childEnv({ ...RING_ENV, MEMGUARD_DIR: dir }),
    stdio: 'ignore',
  });
  // Killed once the ring has turned (segment 1 removed) while it keeps
  // turning: waiting a fixed time was too short on a loaded machine.
  const rotated = () => h.bundles(dir).some((b) => {
    const files = h.timelineFiles(b);
    return files.length >= 2 && !files.includes('timeline-1.ndjson.gz');
  });
  const deadline = Date.now() + 45_000;
  while (!rotated() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  child.kill('SIGKILL');
  await new Promise((resolve) => child.on('close', resolve));
  const [bundle] = h.bundles(dir);
  const { files, first } = checkSegments(bundle);
  // Rotated, and more than one segment left (how many depends on how many
  // GCs a second this machine runs: a second's member is a segment of its own).
  assert.ok(first > 1 && files.length >= 2, `${files.join(' ')}`);
  assert.equal(h.readSummary(bundle).ended, undefined);
});
