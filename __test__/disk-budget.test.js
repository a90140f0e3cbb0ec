'use strict';
// MEMGUARD_MAX_DISK and full disks: the bundles under MEMGUARD_DIR stay
// within the budget (oldest removed first, nothing else touched), and a disk
// that fills up mid-write costs one warning and no partial file — the app
// runs on and exits as it would have.
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');
const h = require('./helpers');

/** Total bytes of the regular files inside the bundle directories under `root` (links not followed). */
function bundleBytes(root) {
  let total = 0;
  for (const dir of h.bundles(root)) {
    if (fs.lstatSync(dir).isSymbolicLink()) continue;
    for (const f of fs.readdirSync(dir)) {
      const st = fs.lstatSync(path.join(dir, f));
      if (st.isFile()) total += st.size;
    }
  }
  return total;
}

const warnings = (stderr) => h.memguardLines(stderr).filter((l) => l.startsWith('memguard: warning:'));
const partials = (root) => h.filesUnder(root).filter((f) => f.endsWith('.partial') || f.includes('.tmp-'));

function snapshotChild(root, env = {}) {
  return h.runNode(['-r', h.MEMGUARD, h.fixture('disk-snapshot.js')], {
    env: { MEMGUARD_DIR: root, DISK_HEAP_MB: '10', ...env },
  });
}

/** A tiny tmpfs (as root), unmounted when the test ends; null (test skipped) when mounting is not permitted. */
function tinyDisk(t, size) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memguard-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    fs.rmdirSync(dir);
    t.skip(`cannot mount a tmpfs to fill up (needs root): ${String(e.stderr || e.message).trim()}`);
    return null;
  }
  t.after(() => {
    execFileSync('umount', [dir]);
    fs.rmdirSync(dir);
  });
  return dir;
}

test('MEMGUARD_MAX_DISK across processes: oldest bundles go first, the newest stays, nothing else is touched', async (t) => {
  const dir = h.tempDir(t);
  const root = path.join(dir, 'bundles');
  fs.mkdirSync(root, { mode: 0o700 });
  // What a user keeps next to the bundles: never counted, never removed.
  fs.writeFileSync(path.join(root, 'notes.txt'), 'mine');
  fs.mkdirSync(path.join(root, 'keep-me'));
  fs.writeFileSync(path.join(root, 'keep-me', 'big.bin'), Buffer.alloc(12e6));
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'data'), 'not memguard');
  fs.symlinkSync(outside, path.join(root, '20200101-000000-1')); // named like a bundle, but a link

  // Two bundles fit, three do not: sized from the first bundle (~4.3 MB on
  // Node 20), which is written before any budget is set.
  let budget = Infinity;
  const written = [];
  for (let i = 0; i < 4; i++) {
    const r = await snapshotChild(root, i === 0 ? {} : { MEMGUARD_MAX_DISK: String(budget) });
    if (i === 0) budget = Math.floor(bundleBytes(root) * 2.4);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.ok(report.snapshot, r.stdout + r.stderr);
    assert.deepEqual(warnings(r.stderr), []);
    written.push(report.bundleDir);

    const total = bundleBytes(root);
    assert.ok(total <= budget, `after child ${i + 1}: ${total} bytes of bundles > ${budget}`);
    const present = h.bundles(root).filter((b) => !fs.lstatSync(b).isSymbolicLink()).sort();
    assert.deepEqual(present, written.slice(-2).sort(), `after child ${i + 1}`);
    assert.equal(h.readSummary(report.bundleDir).captures[0].outcome, 'written');
    const removals = h.memguardLines(r.stderr).filter((l) => l.includes('removed old bundle'));
    if (i >= 2) {
      assert.equal(removals.length, 1, r.stderr);
      assert.ok(removals[0].includes(written[i - 2]), removals[0]);
      assert.ok(removals[0].includes(`MEMGUARD_MAX_DISK (${(budget / 1e6).toFixed(1)} MB)`), removals[0]);
    } else {
      assert.deepEqual(removals, []);
    }
  }
  assert.equal(fs.readFileSync(path.join(root, 'notes.txt'), 'utf8'), 'mine');
  assert.equal(fs.statSync(path.join(root, 'keep-me', 'big.bin')).size, 12e6);
  assert.ok(fs.lstatSync(path.join(root, '20200101-000000-1')).isSymbolicLink());
  assert.equal(fs.readFileSync(path.join(outside, 'data'), 'utf8'), 'not memguard');
});

test('a snapshot larger than MEMGUARD_MAX_DISK is abandoned: partial removed, summary says why, one warning, the app runs on', async (t) => {
  const root = path.join(h.tempDir(t), 'bundles');
  const r = await snapshotChild(root, { MEMGUARD_MAX_DISK: '2MiB' });
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.done, true);
  assert.match(report.error, /MEMGUARD_MAX_DISK/);
  const [warning, ...more] = warnings(r.stderr);
  assert.deepEqual(more, [], r.stderr);
  assert.match(warning, /heap snapshot not written: .* would exceed MEMGUARD_MAX_DISK \(2\.1 MB\).*removed the partial file/);
  assert.deepEqual(partials(root), []);
  assert.deepEqual(h.snapshotsUnder(root), []);
  const capture = h.readSummary(report.bundleDir).captures[0];
  assert.equal(capture.outcome, 'failed');
  assert.match(capture.error, /MEMGUARD_MAX_DISK/);
  assert.ok(bundleBytes(root) <= 2 << 20);
});

test('disk full while a snapshot streams: one warning, no partial file, the app finishes with its own exit code', async (t) => {
  const root = tinyDisk(t, '2m');
  if (!root) return;
  // No budget: the default one (half the free space) would stop the snapshot before the disk is full.
  const r = await snapshotChild(root, { MEMGUARD_MAX_DISK: 'off' });
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.done, true);
  assert.match(report.error, /No space left on device/);
  const [warning, ...more] = warnings(r.stderr);
  assert.deepEqual(more, [], r.stderr);
  assert.match(warning, /heap snapshot not written: writing .*heap-1\.heapsnapshot\.gz failed: No space left on device .*removed the partial file.*the application continues/);
  assert.deepEqual(partials(root), []);
  assert.deepEqual(h.snapshotsUnder(root), []);
  const capture = h.readSummary(report.bundleDir).captures[0];
  assert.equal(capture.outcome, 'failed');
  assert.match(capture.error, /No space left on device/);
  // The other artifacts are whole: the summary parsed above, the timeline decompresses.
  assert.ok(h.readTimeline(report.bundleDir).some((rec) => rec.type === 'marker' && rec.name === 'snapshot-end'));
});

test('disk full under the timeline: one warning, records kept and written once there is space, the file stays valid gzip', async (t) => {
  const root = tinyDisk(t, '1m');
  if (!root) return;
  const r = await h.runNode(['-r', h.MEMGUARD, h.fixture('disk-fill.js')], {
    env: { MEMGUARD_DIR: root, MEMGUARD_MAX_DISK: 'off', MEMGUARD_KEEP: 'all', MEMGUARD_INTERVAL_MS: '10', DISK_FILL_DIR: root, DISK_FULL_MS: '4000' },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /disk full\ndisk freed\n\{"done":true\}/);
  const [warning, ...more] = warnings(r.stderr);
  assert.deepEqual(more, [], r.stderr);
  assert.match(warning, /writing .*timeline\.ndjson\.gz failed \(No space left on device.*\); keeping its records in memory and retrying every second/);
  assert.ok(h.memguardLines(r.stderr).some((l) => /timeline\.ndjson\.gz works again; no timeline record was lost/.test(l)), r.stderr);
  const [bundle] = h.bundles(root);
  const records = h.readTimeline(bundle); // throws if a member was cut or a hole left
  const samples = records.filter((rec) => rec.type === 'sample').map((rec) => rec.t);
  // No gap: samples every ~10 ms right through the time the disk was full.
  const gaps = samples.slice(1).map((t, i) => t - samples[i]);
  assert.ok(samples.length > 250, `${samples.length} samples`);
  assert.ok(Math.max(...gaps) < 1000, `largest gap between samples ${Math.max(...gaps)} ms`);
  assert.equal(records.at(-1).type, 'marker');
  assert.equal(records.at(-1).name, 'end');
});

test('with no setting, the bundles keep to half of what the disk could give them (free space + their own)', async (t) => {
  const root = tinyDisk(t, '16m');
  if (!root) return;
  const written = [];
  for (let i = 0; i < 4; i++) {
    const r = await snapshotChild(root);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.ok(report.snapshot, r.stdout + r.stderr);
    written.push(report.bundleDir);
    assert.ok(bundleBytes(root) <= 8 << 20, `after child ${i + 1}: ${bundleBytes(root)} bytes > half of 16 MiB`);
  }
  // ~4.3 MB each: the default budget (~8 MB here) keeps the newest one or two, and removed the oldest.
  const present = h.bundles(root);
  assert.ok(present.includes(written[3]), 'the newest bundle stays');
  assert.ok(!present.includes(written[0]), 'the oldest bundle was removed');
});
