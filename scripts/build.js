#!/usr/bin/env node
// Builds the addon for the Node running this script and installs it as
// build/memguard-<platform>-<arch>-abi<ABI>.node, the name index.js loads.
// V8's C++ API is not ABI-stable, so each Node ABI gets its own binary.
// The same cargo run builds the report analyser (pure Rust, no Node ABI) as
// build/memguard-report-<platform>-<arch>, which `npx memguard report` runs.
//
//   node scripts/build.js              build (cargo decides what is stale)
//   node scripts/build.js --if-needed  skip cargo when the binary is newer than every source
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const abi = process.versions.modules;
const { localAddonName, reportName } = require('../lib/platform');
const binary = path.join(root, 'build', localAddonName(abi));
const reportBinary = path.join(root, 'build', `${reportName}-${process.platform}-${process.arch}`);

function newestSource() {
  let newest = 0;
  const visit = (p) => {
    const st = fs.statSync(p);
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) visit(path.join(p, e));
    else newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of ['src', 'crates/memguard-core/src', 'crates/memguard-core/Cargo.toml', 'crates/memguard-report/src',
    'crates/memguard-report/Cargo.toml', 'crates/memguard-report/assets', 'build.rs', 'Cargo.toml', 'Cargo.lock']) {
    if (fs.existsSync(path.join(root, p))) visit(path.join(root, p));
  }
  return newest;
}

const upToDate = (file) => fs.existsSync(file) && fs.statSync(file).mtimeMs >= newestSource();
if (process.argv.includes('--if-needed') && upToDate(binary) && upToDate(reportBinary)) {
  process.exit(0);
}

console.error(`memguard: building for Node ${process.version} (ABI ${abi}) …`);
const started = Date.now();
const result = spawnSync('cargo', ['build', '--release', '--locked', '-p', 'memguard', '-p', 'memguard-report'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, MEMGUARD_NODE: process.execPath },
});
if (result.error || result.status !== 0) {
  console.error(`memguard: build failed${result.error ? `: ${result.error.message}` : ''}`);
  process.exit(1);
}
const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target');
fs.mkdirSync(path.dirname(binary), { recursive: true });
function install(from, to) {
  const tmp = `${to}.tmp-${process.pid}`;
  fs.copyFileSync(from, tmp);
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, to); // atomic: a running process never sees half a binary
}
install(path.join(targetDir, 'release', 'libmemguard.so'), binary);
install(path.join(targetDir, 'release', 'memguard-report'), reportBinary);
console.error(`memguard: built ${path.relative(root, binary)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
