#!/usr/bin/env node
// `npm run test:package`: what a user installs, tested as a user gets it.
// Builds the prebuilds the tests need (x64 glibc for each Node line tested,
// arm64 for Node 22, musl for the newest line), packs the tarballs, fetches
// an arm64 sysroot for the emulated smoke test, then runs __test__/package/.
//
//   node scripts/test-package.js                this Node's line and the newest even line
//   node scripts/test-package.js 20 22 24 26    the listed lines (or: all)
//   node scripts/test-package.js --prebuilt …   use prebuilds/ as it is (after npm run prebuilds)
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { newestEvenMajor, root, cache } = require('./node-dist');
const { NODE_ABIS } = require('../lib/platform');

const args = process.argv.slice(2);
const prebuilt = args.includes('--prebuilt');
let majors = args.filter((a) => !a.startsWith('--'));
if (majors.includes('all')) majors = Object.keys(NODE_ABIS);
if (!majors.length) majors = [process.versions.node.split('.')[0], newestEvenMajor()];
majors = [...new Set(majors)];

function step(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error || r.status !== 0) {
    console.error(`test:package: ${cmd} ${argv.join(' ')} failed`);
    process.exit(1);
  }
}

/** arm64 libc6, libstdc++6 and libgcc-s1 from Debian, unpacked (not installed) into .cache/arm64-sysroot. */
function arm64Sysroot() {
  const sysroot = path.join(cache, 'arm64-sysroot');
  if (fs.existsSync(path.join(sysroot, 'lib', 'ld-linux-aarch64.so.1'))) return;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memguard-arm64-debs-'));
  // apt needs the arm64 architecture added (dpkg --add-architecture arm64; apt-get update): .ci/run does that.
  const dl = spawnSync('apt-get', ['download', 'libc6:arm64', 'libstdc++6:arm64', 'libgcc-s1:arm64'], { cwd: tmp, stdio: 'inherit' });
  if (dl.status === 0) {
    fs.mkdirSync(sysroot, { recursive: true });
    for (const deb of fs.readdirSync(tmp)) step('dpkg', ['-x', path.join(tmp, deb), sysroot]);
  } else {
    console.error('test:package: could not download the arm64 sysroot (dpkg --add-architecture arm64 && apt-get update first); the arm64 test will fail');
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}

step(process.execPath, ['scripts/build.js', '--if-needed']);
if (!prebuilt) {
  step(process.execPath, ['scripts/prebuild.js', '--platforms', 'linux-x64-gnu', '--majors', majors.join(',')]);
  step(process.execPath, ['scripts/prebuild.js', '--platforms', 'linux-arm64-gnu', '--majors', '22']);
  step(process.execPath, ['scripts/prebuild.js', '--platforms', 'linux-x64-musl', '--majors', majors[majors.length - 1]]);
}
arm64Sysroot();
step(process.execPath, ['scripts/pack.js']);
const files = fs.readdirSync(path.join(root, '__test__', 'package')).filter((f) => f.endsWith('.test.js'));
step(process.execPath, ['--test', ...files.map((f) => path.join('__test__', 'package', f))], {
  env: { ...process.env, MEMGUARD_TEST_MAJORS: majors.join(',') },
});
