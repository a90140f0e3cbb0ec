'use strict';
// Triggers that see memory death coming from outside the V8 heap limit: the
// RSS watchdog, a signal, the leak trend — each one in a real child process.
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const h = require('./helpers');

const MB = 1 << 20;

function onlyBundle(dir) {
  const all = h.bundles(dir);
  assert.equal(all.length, 1, `bundles: ${all}`);
  return all[0];
}

test('Buffer leak: the RSS watchdog captures before RSS reaches MEMGUARD_RSS_LIMIT', async (t) => {
  const dir = h.tempDir(t);
  const limitMb = 400; // a node process starts at ~50 MB: ~350 MB above start
  const r = await h.runNode(['-r', h.MEMGUARD, h.fixture('buffer-leak.js')], {
    env: {
      MEMGUARD_DIR: dir,
      MEMGUARD_RSS_LIMIT: `${limitMb}MiB`,
      MEMGUARD_RSS_THRESHOLD: '0.7',
      BUFFER_LEAK_STOP_MB: String(limitMb + 40),
    },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /stopped at \d+ MB/);
  const bundle = onlyBundle(dir);
  const [capture, ...rest] = h.readSummary(bundle).captures;
  assert.equal(rest.length, 0, 'one crossing, one capture');
  assert.equal(capture.trigger, 'rss');
  assert.equal(capture.outcome, 'written', JSON.stringify(capture.snapshotSkipped));
  assert.ok(capture.rssBytes >= 0.7 * limitMb * MB && capture.rssBytes < limitMb * MB, `rss ${capture.rssBytes}`);
  assert.equal(capture.detail.limitBytes, limitMb * MB);
  assert.equal(capture.detail.source, 'MEMGUARD_RSS_LIMIT');
  assert.match(capture.reason, /^RSS \d+ MB reached 0\.7 of the 400 MB limit \(MEMGUARD_RSS_LIMIT\)$/);
  // The snapshot shows what holds the memory: the leaked chunks.
  const snapshot = h.readSnapshot(`${bundle}/heap-1.heapsnapshot.gz`);
  const chunks = h.countByClass(snapshot).get('UploadChunk') || 0;
  assert.ok(chunks >= 50, `UploadChunk objects in the snapshot: ${chunks}`);
  assert.ok(h.memguardLines(r.stderr).some((l) => /RSS is \d+ MB, \d+ % of the 400 MB limit/.test(l)), r.stderr);
});

// A real container limit: a memory cgroup (v1, writable here as root), the
// child moved into it before node starts.
const { makeCgroup, runNodeInCgroup } = h;

test('in a container, with no setting: the cgroup limit is watched and the capture comes before it', async (t) => {
  const cgroup = makeCgroup(t, 600 * MB);
  if (cgroup.skip) return t.skip(cgroup.skip);
  const dir = h.tempDir(t);
  const r = await runNodeInCgroup(cgroup.dir, ['-r', h.MEMGUARD, h.fixture('buffer-leak.js')], {
    MEMGUARD_DIR: dir,
    BUFFER_LEAK_STOP_MB: '540',
  });
  assert.equal(r.code, 0, r.stderr);
  const [capture] = h.readSummary(onlyBundle(dir)).captures;
  assert.equal(capture.trigger, 'rss');
  assert.equal(capture.outcome, 'written');
  assert.deepEqual([capture.detail.source, capture.detail.limitBytes, capture.detail.threshold], ['cgroup', 600 * MB, 0.8]);
  assert.ok(capture.rssBytes >= 0.8 * 600 * MB && capture.rssBytes < 600 * MB, `rss ${capture.rssBytes}`);
});

test('MEMGUARD_RSS_LIMIT=auto in a cgroup without a limit: one warning, the app runs on', async (t) => {
  const cgroup = makeCgroup(t, null);
  if (cgroup.skip) return t.skip(cgroup.skip);
  const dir = h.tempDir(t);
  const r = await runNodeInCgroup(cgroup.dir, ['-r', h.MEMGUARD, '-e', 'console.log("app ran")'], {
    MEMGUARD_DIR: dir,
    MEMGUARD_RSS_LIMIT: 'auto',
  });
  assert.equal(r.code, 0);
  assert.equal(r.stdout, 'app ran\n');
  assert.deepEqual(h.memguardLines(r.stderr), [
    'memguard: warning: MEMGUARD_RSS_LIMIT=auto, but this process has no memory cgroup limit; the RSS watchdog is off',
  ]);
  // With no setting, a cgroup without a limit is nothing to say.
  const quiet = await runNodeInCgroup(cgroup.dir, ['-r', h.MEMGUARD, '-e', 'console.log("app ran")'], { MEMGUARD_DIR: dir });
  assert.equal(quiet.code, 0);
  assert.deepEqual(h.memguardLines(quiet.stderr), []);
});

test('a JS loop that never yields: the RSS watchdog still captures, inside the loop', async (t) => {
  const dir = h.tempDir(t);
  const r = await h.runNode(['-r', h.MEMGUARD, h.fixture('spin.js')], {
    env: { MEMGUARD_DIR: dir, MEMGUARD_RSS_LIMIT: '400MiB', SPIN_MS: '3000', SPIN_BUFFER_MB: '200', MEMGUARD_SNAPSHOT: 'never' },
  });
  assert.equal(r.code, 0, r.stderr);
  const [capture] = h.readSummary(onlyBundle(dir)).captures;
  assert.equal(capture.trigger, 'rss');
  assert.equal(capture.outcome, 'skipped');
  assert.ok(capture.rssBytes < 400 * MB);
  // Taken at an interrupt check inside the loop: the loop's own frame.
  assert.equal(capture.stack[0].functionName, 'spinForever', JSON.stringify(capture.stack));
});

/** Starts spin.js; sends `signal` once it is spinning; resolves like runNode. */
function spinAndSignal(signal, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-r', h.MEMGUARD, h.fixture('spin.js')], {
      env: h.childEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.on('data', (d) => {
      stdout += d;
      if (!sent && stdout.includes('spinning')) {
        sent = true;
        setTimeout(() => child.kill(signal), 300);
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, sig) => resolve({ code, signal: sig, stdout, stderr }));
  });
}

test('MEMGUARD_SIGNAL in a loop that never yields: a capture inside the loop; the app still gets its own handler', async (t) => {
  const dir = h.tempDir(t);
  const r = await spinAndSignal('SIGUSR2', {
    MEMGUARD_DIR: dir,
    MEMGUARD_SIGNAL: 'SIGUSR2',
    SPIN_MS: '2500',
    SPIN_APP_HANDLER: '1',
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /spun \d+/);
  assert.match(r.stdout, /app handler: SIGUSR2/, 'process.on(signal) still runs once JS yields');
  const [capture, ...rest] = h.readSummary(onlyBundle(dir)).captures;
  assert.equal(rest.length, 0);
  assert.equal(capture.trigger, 'signal');
  assert.equal(capture.reason, 'SIGUSR2 received');
  assert.equal(capture.outcome, 'written');
  assert.equal(capture.stack[0].functionName, 'spinForever', JSON.stringify(capture.stack));
});

test('leak trend: a slow leak hidden in churn gives a leak event, a marker and (MEMGUARD_LEAK_SNAPSHOT) a capture', async (t) => {
  const dir = h.tempDir(t);
  const r = await h.runNode(['--expose-gc', h.fixture('leak-trend.js')], {
    env: {
      MEMGUARD_DIR: dir,
      MEMGUARD_LEAK_WINDOW: '8',
      MEMGUARD_LEAK_MIN_GROWTH: '1MiB',
      MEMGUARD_LEAK_SNAPSHOT: 'on',
      LEAK_MODE: 'leak',
      GCS: '40',
      LEAK_EXIT_ON_EVENT: '1',
    },
  });
  assert.equal(r.code, 0, r.stderr);
  const event = /leak event (.*)/.exec(r.stdout);
  assert.ok(event, r.stdout + r.stderr);
  const info = JSON.parse(event[1]);
  assert.equal(info.markCompacts, 8);
  assert.ok(info.growthBytes >= MB && info.bytesPerMinute > 0 && info.toBytes > info.fromBytes, event[1]);
  assert.ok(info.concordance >= 0.8);
  const bundle = onlyBundle(dir);
  const markers = h.readTimeline(bundle).filter((rec) => rec.type === 'marker' && rec.name === 'leak');
  assert.ok(markers.length >= 1);
  const [capture] = h.readSummary(bundle).captures;
  assert.equal(capture.trigger, 'leak');
  assert.equal(capture.outcome, 'written');
  assert.match(capture.reason, /^heap used after mark-compacts grew [\d.]+ MB over the last 8 \([\d.]+ MB\/min\)$/);
  const leaked = h.countByClass(h.readSnapshot(`${bundle}/heap-1.heapsnapshot.gz`)).get('RetainedRequest') || 0;
  assert.ok(leaked >= 8 * 2000, `RetainedRequest objects: ${leaked}`);
});

test('leak trend: heavy churn with a bounded working set over 5 windows gives no leak event', async (t) => {
  const dir = h.tempDir(t);
  const r = await h.runNode(['--expose-gc', h.fixture('leak-trend.js')], {
    env: { MEMGUARD_DIR: dir, MEMGUARD_KEEP: 'all', MEMGUARD_LEAK_WINDOW: '8', MEMGUARD_LEAK_MIN_GROWTH: '1MiB', LEAK_MODE: 'churn', GCS: '40' },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /done: 40 full GCs, 0 leak events/);
  const bundle = onlyBundle(dir);
  const timeline = h.readTimeline(bundle);
  const markCompacts = timeline.filter((rec) => rec.type === 'gc' && rec.kind === 'mark-compact').length;
  assert.ok(markCompacts >= 3 * 8, `mark-compacts: ${markCompacts}`);
  assert.equal(timeline.filter((rec) => rec.type === 'marker' && rec.name === 'leak').length, 0);
});

// The next start after a death: one line per predecessor that left a bundle
// without an end, once, with how it most likely died.
function announcements(stderr) {
  return h.memguardLines(stderr).filter((l) => l.includes('the previous process'));
}
const PREVIOUS = `console.log(JSON.stringify(require(${JSON.stringify(h.MEMGUARD)}).previousCrashes()))`;

test('the next start announces a predecessor that died of a V8 heap OOM, once', async (t) => {
  const dir = h.tempDir(t);
  const oom = await h.runNode(['--max-old-space-size=32', '-r', h.MEMGUARD, h.fixture('leak.js')], { env: { MEMGUARD_DIR: dir } });
  assert.equal(oom.signal, 'SIGABRT');
  const [bundle] = h.bundles(dir);
  const pid = h.readSummary(bundle).pid;

  const next = await h.runNode(['-e', PREVIOUS], { env: { MEMGUARD_DIR: dir } });
  assert.equal(next.code, 0, next.stderr);
  const lines = announcements(next.stderr);
  assert.equal(lines.length, 1, next.stderr);
  assert.match(lines[0], new RegExp(`^memguard: the previous process ${pid} \\(leak\\.js, started \\S+\\) died: V8 heap out of memory`));
  assert.ok(lines[0].endsWith(`npx memguard report ${bundle}`), lines[0]);
  const [crash] = JSON.parse(next.stdout);
  assert.deepEqual([crash.pid, crash.cause, crash.bundle, crash.script], [pid, 'heap-oom', bundle, 'leak.js']);

  const again = await h.runNode(['-e', PREVIOUS], { env: { MEMGUARD_DIR: dir } });
  assert.deepEqual(announcements(again.stderr), [], 'announced once');
  assert.deepEqual(JSON.parse(again.stdout), []);
});

test('the next start says a predecessor was killed near its container limit', async (t) => {
  const cgroup = makeCgroup(t, 300 * MB);
  if (cgroup.skip) return t.skip(cgroup.skip);
  fs.writeFileSync(path.join(cgroup.dir, 'memory.memsw.limit_in_bytes'), String(300 * MB)); // no swap to escape into
  const dir = h.tempDir(t);
  const killed = await runNodeInCgroup(cgroup.dir, ['-r', h.MEMGUARD, h.fixture('buffer-leak.js')], {
    MEMGUARD_DIR: dir,
    MEMGUARD_INTERVAL_MS: '20',
    MEMGUARD_SNAPSHOT: 'never',
    BUFFER_LEAK_STOP_MB: '100000',
  });
  assert.equal(killed.signal, 'SIGKILL', `the kernel's OOM killer ends it: ${killed.stderr}`);
  const next = await h.runNode(['-e', PREVIOUS], { env: { MEMGUARD_DIR: dir } });
  const lines = announcements(next.stderr);
  assert.equal(lines.length, 1, next.stderr);
  assert.match(lines[0], /died: killed near the container's memory limit \(.*\d+ of 300 MB/);
  assert.equal(JSON.parse(next.stdout)[0].cause, 'memory-limit');
});
