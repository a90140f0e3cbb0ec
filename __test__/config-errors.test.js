'use strict';
// Bad input never hurts the host: one clear warning, a sane fallback, and
// the app's own exit code.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const h = require('./helpers');

test('MEMGUARD=off: nothing is installed and no bundle is written, even at OOM', async (t) => {
  const dir = h.tempDir(t);
  const r = await h.runNode(['--max-old-space-size=64', '-r', h.MEMGUARD, h.fixture('leak.js')], {
    env: { MEMGUARD: 'off', MEMGUARD_DIR: path.join(dir, 'bundles') },
  });
  assert.equal(r.signal, 'SIGABRT');
  assert.deepEqual(h.memguardLines(r.stderr), []);
  assert.equal(fs.existsSync(path.join(dir, 'bundles')), false);
});

test('a bad value: one warning naming variable, value and default; defaults used', async (t) => {
  const dir = h.tempDir(t);
  const r = await h.runNode(['--max-old-space-size=64', '-r', h.MEMGUARD, h.fixture('leak.js')], {
    env: { MEMGUARD_DIR: dir, MEMGUARD_NEAR_LIMIT_SNAPSHOTS: 'lots', MEMGUARD_LOG: 'loud' },
  });
  const lines = h.memguardLines(r.stderr);
  const warnings = lines.filter((l) => l.startsWith('memguard: warning:'));
  assert.deepEqual(warnings, [
    'memguard: warning: MEMGUARD_LOG="loud" is not silent, info or debug; using the default info',
    'memguard: warning: MEMGUARD_NEAR_LIMIT_SNAPSHOTS="lots" is not a whole number from 0 to 20; using the default 1',
  ]);
  assert.equal(r.signal, 'SIGABRT');
  const [bundle] = h.bundles(dir);
  assert.equal(h.readSummary(bundle).captures.length, 1);
});

for (const [label, makeDir, problem] of [
  ['a path under a regular file', (dir) => { fs.writeFileSync(path.join(dir, 'file'), ''); return path.join(dir, 'file', 'bundles'); }, /is not a directory/],
  ['a symlink', (dir) => { fs.mkdirSync(path.join(dir, 'elsewhere')); fs.symlinkSync(path.join(dir, 'elsewhere'), path.join(dir, 'link')); return path.join(dir, 'link'); }, /is a symbolic link; memguard does not follow links/],
]) {
  test(`MEMGUARD_DIR is ${label}: a warning, bundles go to a private temp dir, the app's exit code is kept`, async (t) => {
    const dir = h.tempDir(t);
    const tmp = h.tempDir(t);
    const bad = makeDir(dir);
    const r = await h.runNode(['-r', h.MEMGUARD, h.fixture('app.js')], {
      env: { MEMGUARD_DIR: bad, APP_EXIT_CODE: '3', APP_SNAPSHOT: 'after-warning', TMPDIR: tmp },
    });
    assert.equal(r.code, 3, r.stderr);
    const warnings = h.memguardLines(r.stderr).filter((l) => l.includes('warning'));
    assert.equal(warnings.length, 1, r.stderr);
    assert.match(warnings[0], problem);
    assert.match(warnings[0], /writing bundles to .* instead/);
    const report = JSON.parse(r.stdout);
    assert.ok(report.snapshot.startsWith(tmp), `${report.snapshot} not under ${tmp}`);
    assert.ok(fs.existsSync(report.snapshot));
    // Nothing was written through the link.
    if (fs.existsSync(path.join(dir, 'elsewhere'))) assert.deepEqual(fs.readdirSync(path.join(dir, 'elsewhere')), []);
  });
}

test('no usable directory at all: a warning, memguard inactive, the app runs and exits normally', async (t) => {
  const dir = h.tempDir(t);
  fs.writeFileSync(path.join(dir, 'file'), '');
  const r = await h.runNode(['-r', h.MEMGUARD, h.fixture('app.js')], {
    env: { MEMGUARD_DIR: path.join(dir, 'file', 'x'), TMPDIR: path.join(dir, 'file', 'tmp'), APP_SNAPSHOT: 'x' },
  });
  assert.equal(r.code, 0, r.stderr);
  const warnings = h.memguardLines(r.stderr);
  assert.equal(warnings.length, 1, r.stderr);
  assert.match(warnings[0], /heap snapshots are off/);
  assert.deepEqual(JSON.parse(r.stdout), { active: false, bundleDir: null, snapshot: null });
});

test('a binary for another Node ABI is refused with one line saying how to rebuild; the app runs on', async (t) => {
  const pkg = h.tempDir(t);
  fs.copyFileSync(h.MEMGUARD, path.join(pkg, 'index.js'));
  fs.cpSync(path.join(h.ROOT, 'lib'), path.join(pkg, 'lib'), { recursive: true });
  fs.mkdirSync(path.join(pkg, 'build'));
  const ours = fs.readdirSync(path.join(h.ROOT, 'build')).find((f) => f.includes(`-abi${process.versions.modules}.node`));
  fs.copyFileSync(path.join(h.ROOT, 'build', ours), path.join(pkg, 'build', ours.replace(/abi\d+/, 'abi999')));
  const r = await h.runNode(['-r', path.join(pkg, 'index.js'), h.fixture('app.js')], { env: { APP_EXIT_CODE: '0' } });
  assert.equal(r.code, 0, r.stderr);
  const lines = h.memguardLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], new RegExp(`no binary for Node ${process.version.replace(/\./g, '\\.')} \\(ABI ${process.versions.modules}\\)`));
  assert.match(lines[0], /found: memguard-.*-abi999\.node/);
  assert.match(lines[0], /npm run build/);
  assert.equal(JSON.parse(r.stdout).active, false);
});
