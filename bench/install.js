#!/usr/bin/env node
// `npm run bench:install`: what installing memguard costs a user, per
// platform: download size of the tarballs npm fetches, and the time of
// `npm install` (offline, from the packed tarballs: a warm cache) with the
// prebuilt platform package vs building from source (the main package alone:
// its install step builds, cargo being on PATH; a cold target dir, crates
// already downloaded). Sides alternate; medians and spread are printed.
// Needs dist/ from `npm run prebuilds && npm run pack`.
//
//   BENCH_RUNS         prebuilt installs (default 7)
//   BENCH_SOURCE_RUNS  installs with a build from source (default 2)
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { PLATFORMS } = require('../lib/platform');

const root = path.resolve(__dirname, '..');
const { version } = require('../package.json');
const RUNS = Number(process.env.BENCH_RUNS || 7);
const SOURCE_RUNS = Number(process.env.BENCH_SOURCE_RUNS || 2);
const dist = (name) => path.join(root, 'dist', `${name}-${version}.tgz`);
const npmCli = path.join(require('../scripts/node-dist').npmBinDir(), 'npm-cli.js');

for (const name of ['memguard', 'memguard-linux-x64-gnu']) {
  if (!fs.existsSync(dist(name))) {
    console.error(`bench: ${dist(name)} is missing; run npm run prebuilds && npm run pack first`);
    process.exit(1);
  }
}

function timed(cmd, args, opts) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return s;
}

function install(source) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memguard-bench-install-'));
  try {
    fs.writeFileSync(path.join(dir, 'package.json'), '{"name":"app","version":"1.0.0","private":true}');
    const env = { ...process.env, npm_config_update_notifier: 'false', CARGO_TARGET_DIR: path.join(dir, 'target') };
    const tarballs = source ? [dist('memguard')] : [dist('memguard'), dist('memguard-linux-x64-gnu')];
    const s = timed(process.execPath, [npmCli, 'install', '--offline', '--no-audit', '--no-fund', ...tarballs], { cwd: dir, env });
    const check = spawnSync(process.execPath, ['-p', "require('memguard').active"], { cwd: dir, encoding: 'utf8' });
    if (check.stdout.trim() !== 'true') throw new Error(`memguard inactive after install:\n${check.stderr}`);
    return s;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const spread = (xs) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)} s`;

const prebuilt = [];
const source = [];
for (let i = 0; i < Math.max(RUNS, SOURCE_RUNS); i++) {
  if (i < RUNS) prebuilt.push(install(false));
  if (i < SOURCE_RUNS) source.push(install(true));
  console.error(`bench: run ${i + 1}: prebuilt ${prebuilt.map((s) => s.toFixed(2)).join(' ')} | source ${source.map((s) => s.toFixed(1)).join(' ')}`);
}

const mb = (file) => (fs.existsSync(file) ? `${(fs.statSync(file).size / 1e6).toFixed(2)} MB` : 'not packed');
console.log('\n| what a user downloads | tarball |');
console.log('|---|---|');
console.log(`| memguard (JS, types, CLI, sources) | ${mb(dist('memguard'))} |`);
for (const p of PLATFORMS) console.log(`| memguard-${p} (4 addons + report binary) | ${mb(dist(`memguard-${p}`))} |`);
console.log('\n| npm install on linux-x64-gnu | median | spread | runs |');
console.log('|---|---|---|---|');
console.log(`| prebuilt (main + platform package) | ${median(prebuilt).toFixed(2)} s | ${spread(prebuilt)} | ${prebuilt.length} |`);
console.log(`| from source (main package; its install step builds) | ${median(source).toFixed(1)} s | ${spread(source)} | ${source.length} |`);
console.log(`\nbench: building from source takes ${(median(source) / median(prebuilt)).toFixed(0)}× as long as installing the prebuilt package`);
