#!/usr/bin/env node
// `npm run prebuilds`: builds memguard's binaries for every supported platform
// and Node line on this x64 Linux machine, into one npm package per platform:
//
//   prebuilds/linux-x64-gnu/    memguard-linux-x64-gnu:   memguard.abi{115,127,137,147}.node, memguard-report
//   prebuilds/linux-arm64-gnu/  memguard-linux-arm64-gnu: the same for arm64
//   prebuilds/linux-x64-musl/   memguard-linux-x64-musl:  the same for musl (Alpine)
//
// Cross builds use cargo-zigbuild with zig as linker and C++ compiler (both
// from PyPI) and glibc 2.17 as the floor; Rust's std for the other targets
// comes from rustup. Node's headers and V8 configuration for each line and
// architecture come from the npm packages node-linux-<arch>@<major>; build.rs
// reads them from include/node, so no target `node` has to run.
//
//   node scripts/prebuild.js                          everything (3 platforms × 4 Node lines)
//   node scripts/prebuild.js --platforms linux-x64-gnu --majors 20,26
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { nodeDist, root } = require('./node-dist');
const { PLATFORMS, NODE_ABIS, addonName, reportName } = require('../lib/platform');

// Pinned so that every prebuild set is made with the same tools.
const TOOLS = { ziglang: '0.17.1', 'cargo-zigbuild': '0.24.1' };
const GLIBC_FLOOR = '2.17';

/** What each platform is built as. */
const TARGETS = {
  'linux-x64-gnu': { triple: 'x86_64-unknown-linux-gnu', zig: `x86_64-unknown-linux-gnu.${GLIBC_FLOOR}`, arch: 'x64', cpu: 'x64', libc: 'glibc' },
  'linux-arm64-gnu': { triple: 'aarch64-unknown-linux-gnu', zig: `aarch64-unknown-linux-gnu.${GLIBC_FLOOR}`, arch: 'arm64', cpu: 'arm64', libc: 'glibc' },
  // Node's musl builds share the x64 headers and V8 configuration. A cdylib
  // must link libc dynamically on musl (napi-rs does the same).
  'linux-x64-musl': { triple: 'x86_64-unknown-linux-musl', zig: 'x86_64-unknown-linux-musl', arch: 'x64', cpu: 'x64', libc: 'musl', rustflags: '-C target-feature=-crt-static' },
};

function option(name, all) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1].split(',').filter(Boolean) : all;
}

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.error || r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed${r.error ? `: ${r.error.message}` : ` (exit ${r.status})`}`);
  }
}

const quiet = (cmd, args) => spawnSync(cmd, args, { encoding: 'utf8' });

/** Where pip puts console scripts (cargo-zigbuild): put first on PATH, as pyenv's shims may not know a new one yet. */
function pipScriptsDir() {
  return quiet('python3', ['-c', "import sysconfig; print(sysconfig.get_path('scripts'))"]).stdout?.trim();
}

/** zig and cargo-zigbuild from PyPI, and Rust's std for each target from rustup. */
function ensureTools(triples) {
  const scripts = pipScriptsDir();
  if (scripts) process.env.PATH = `${scripts}${path.delimiter}${process.env.PATH}`;
  const haveZig = quiet('python3', ['-m', 'ziglang', 'version']).stdout?.trim() === TOOLS.ziglang;
  const haveZigbuild = (quiet('cargo-zigbuild', ['--version']).stdout || '').includes(TOOLS['cargo-zigbuild']);
  if (!haveZig || !haveZigbuild) {
    console.error('prebuild: installing zig and cargo-zigbuild from PyPI …');
    sh('python3', ['-m', 'pip', 'install', '--quiet', ...Object.entries(TOOLS).map(([n, v]) => `${n}==${v}`)]);
  }
  const installed = quiet('rustup', ['target', 'list', '--installed']).stdout || '';
  const missing = triples.filter((t) => !installed.split('\n').includes(t));
  if (missing.length) sh('rustup', ['target', 'add', ...missing]);
}

function packageJson(platform, target, majors) {
  const main = require(path.join(root, 'package.json'));
  return {
    name: `memguard-${platform}`,
    version: main.version,
    description: `memguard's prebuilt binaries for ${platform}: the addon for Node ${majors.join(', ')} and the report analyser`,
    license: main.license,
    os: ['linux'],
    cpu: [target.cpu],
    libc: [target.libc],
    engines: main.engines,
    files: [...majors.map((m) => addonName(NODE_ABIS[m])), reportName],
  };
}

function install(from, to) {
  fs.copyFileSync(from, to);
  fs.chmodSync(to, 0o755);
}

function main() {
  const platforms = option('--platforms', PLATFORMS);
  const majors = option('--majors', Object.keys(NODE_ABIS));
  for (const p of platforms) if (!TARGETS[p]) throw new Error(`unknown platform ${p} (known: ${PLATFORMS.join(', ')})`);
  for (const m of majors) if (!NODE_ABIS[m]) throw new Error(`unsupported Node line ${m} (supported: ${Object.keys(NODE_ABIS).join(', ')})`);
  ensureTools(platforms.map((p) => TARGETS[p].triple));
  const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target');
  const started = Date.now();
  const times = [];
  for (const platform of platforms) {
    const target = TARGETS[platform];
    const out = path.join(root, 'prebuilds', platform);
    fs.rmSync(out, { recursive: true, force: true });
    fs.mkdirSync(out, { recursive: true });
    const release = path.join(targetDir, target.triple, 'release');
    const env = { ...process.env };
    if (target.rustflags) env[`CARGO_TARGET_${target.triple.toUpperCase().replace(/-/g, '_')}_RUSTFLAGS`] = target.rustflags;
    majors.forEach((major, i) => {
      const t0 = Date.now();
      const headers = path.join(nodeDist(target.arch, major), 'include', 'node');
      console.error(`prebuild: ${platform}, Node ${major} (ABI ${NODE_ABIS[major]}) …`);
      // The report binary does not depend on the ABI: built with the first line only.
      const packages = i === 0 ? ['-p', 'memguard', '-p', 'memguard-report'] : ['-p', 'memguard'];
      sh('cargo', ['zigbuild', '--release', '--locked', '--target', target.zig, ...packages], {
        env: { ...env, MEMGUARD_NODE_HEADERS: headers },
      });
      install(path.join(release, 'libmemguard.so'), path.join(out, addonName(NODE_ABIS[major])));
      if (i === 0) install(path.join(release, 'memguard-report'), path.join(out, reportName));
      times.push(`${platform} node${major} ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    });
    fs.writeFileSync(path.join(out, 'package.json'), JSON.stringify(packageJson(platform, target, majors), null, 2) + '\n');
  }
  console.error(`prebuild: done in ${((Date.now() - started) / 1000).toFixed(0)} s (${times.join(', ')})`);
}

try {
  main();
} catch (err) {
  console.error(`prebuild: ${err.message}`);
  process.exit(1);
}
