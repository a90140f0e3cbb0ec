#!/usr/bin/env node
// npm's `install` step for a user's `npm install memguard`. The binaries
// normally arrive prebuilt, in the platform package npm picked by os/cpu/libc
// (memguard-linux-x64-gnu, …): then there is nothing to do. Otherwise build
// from the bundled sources when a Rust toolchain is there, else say in one
// line what is missing. It never fails the install: without a binary,
// memguard stays inactive and the app runs on.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { findAddon, missingAddonMessage, platformTag } = require('../lib/platform');

const root = path.join(__dirname, '..');

function main() {
  // A git checkout is a contributor's: `npm test`/`npm run build` build there.
  if (fs.existsSync(path.join(root, '.git')) || findAddon()) return;
  const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' });
  if (cargo.error || cargo.status !== 0) {
    console.error(`memguard: ${missingAddonMessage()}; no Rust toolchain here to build one, so memguard will be inactive`);
    return;
  }
  console.error(`memguard: no prebuilt binary for ${platformTag()}, Node ${process.version}; building from source …`);
  const build = spawnSync(process.execPath, [path.join(__dirname, 'build.js')], { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) console.error('memguard: the build from source failed (see above); memguard will be inactive');
}

try {
  main();
} catch (err) {
  console.error(`memguard: install step failed (${err.message}); memguard will be inactive`);
}
