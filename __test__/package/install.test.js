'use strict';
// A user's `npm install memguard` where services run: the packed tarballs
// installed offline into a new app with a PATH of node and npm only (no
// compiler, no Rust), then, under each Node line, a leaking app started with
// `node -r memguard` dies of OOM with its heap snapshot written, and
// `npx memguard report` reads the bundle. MEMGUARD_TEST_MAJORS lists the
// lines (set by `npm run test:package`).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('../helpers');
const { tarball, installApp, runClean } = require('./packaged');
const { nodeDist } = require('../../scripts/node-dist');

const majors = (process.env.MEMGUARD_TEST_MAJORS || process.versions.node.split('.')[0]).split(',');

const nodeFor = (major) =>
  major === process.versions.node.split('.')[0] ? process.execPath : path.join(nodeDist('x64', major), 'bin', 'node');

for (const major of majors) {
  test(`Node ${major}: npm install of the packed tarballs without a compiler, then an OOM caught and reported`, (t) => {
    const dir = h.tempDir(t, 'memguard-package-');
    const { app, env, output } = installApp(dir, nodeFor(major), [tarball('memguard'), tarball('memguard-linux-x64-gnu')]);
    // npm picked the one platform package; nothing was built.
    const installed = fs.readdirSync(path.join(app, 'node_modules')).filter((f) => !f.startsWith('.')).sort();
    assert.deepEqual(installed, ['memguard', 'memguard-linux-x64-gnu'], output);
    assert.ok(!fs.existsSync(path.join(app, 'node_modules', 'memguard', 'build')), 'nothing built at install');

    fs.copyFileSync(h.fixture('leak.js'), path.join(app, 'leak.js'));
    const bundles = path.join(dir, 'bundles');
    const r = runClean('node', ['--max-old-space-size=48', '-r', 'memguard', 'leak.js'], {
      cwd: app,
      env: { ...env, MEMGUARD_DIR: bundles },
    });
    assert.equal(r.signal, 'SIGABRT', `dies of OOM as it would without memguard:\n${r.stderr.slice(-2000)}`);
    assert.match(r.stderr, /memguard: wrote .*heap-1\.heapsnapshot\.gz/);
    const [bundle] = h.bundles(bundles);
    assert.ok(bundle, 'a bundle was written');
    const counts = h.countByClass(h.readSnapshot(path.join(bundle, 'heap-1.heapsnapshot.gz')));
    assert.ok(counts.get('LeakedSession') > 10_000, `the snapshot holds the leak: ${counts.get('LeakedSession')} LeakedSession`);
    assert.equal(h.readSummary(bundle).node.split('.')[0], `v${major}`);

    const report = runClean('npx', ['memguard', 'report', bundle], { cwd: app, env });
    assert.equal(report.status, 0, report.stderr);
    assert.match(report.stdout, /^Heap snapshot heap-1\.heapsnapshot\.gz: [\d,]+ objects/m);
    assert.match(report.stdout, /LeakedSession\s+[\d,]+/);
  });
}

test('a platform package that does not fit (no binary for this ABI) gives one line and an inactive memguard; the app runs on', (t) => {
  const dir = h.tempDir(t, 'memguard-package-');
  // Only the main package: as on a platform with no prebuild (linux-arm64-musl, say).
  const { app, env, output } = installApp(dir, process.execPath, [tarball('memguard')], ['--foreground-scripts']);
  // The install step finds no binary and no Rust toolchain: one line, and the install succeeds.
  assert.match(output, /memguard: no binary for Node v[\d.]+ \(ABI \d+\) on linux-x64-gnu .*no Rust toolchain here to build one/, output);
  fs.writeFileSync(path.join(app, 'ok.js'), "console.log(JSON.stringify({ active: require('memguard').active }))");
  const r = runClean('node', ['-r', 'memguard', 'ok.js'], { cwd: app, env });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { active: false });
  const lines = h.memguardLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /no binary for Node .* on linux-x64-gnu \(found: none; prebuilt for linux-x64-gnu, linux-arm64-gnu, linux-x64-musl × Node 20\/22\/24\/26\)/);
});
