#!/usr/bin/env node
// `npm run pack`: the npm tarballs a release publishes, into dist/:
//   memguard-<version>.tgz                  JS, types, the CLI, sources (to build where no prebuild fits)
//   memguard-<platform>-<version>.tgz       one per platform built by `npm run prebuilds`
// The main package lists every platform package as an optional dependency at
// its exact version; npm installs only the one whose os/cpu/libc match (as
// napi-rs's `napi prepublish` does), so a user downloads one platform's binaries.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { run, root } = require('./node-dist');
const { PLATFORMS } = require('../lib/platform');

function npmPack(dir, dest) {
  const r = run('npm', ['pack', dir, '--pack-destination', dest, '--json', '--ignore-scripts'], { cwd: root });
  if (r.status !== 0) throw new Error(`npm pack ${dir} failed: ${r.stderr.trim()}`);
  const [info] = JSON.parse(r.stdout);
  return { file: path.join(dest, info.filename), size: info.size, unpackedSize: info.unpackedSize, entryCount: info.entryCount };
}

function main() {
  const dest = path.resolve(root, process.argv.includes('--out') ? process.argv[process.argv.indexOf('--out') + 1] : 'dist');
  fs.mkdirSync(dest, { recursive: true });
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

  // Stage the main package: the files its `files` field selects, and a
  // package.json for users (no dev dependencies or contributor scripts).
  const stage = path.join(root, '.cache', 'pack', 'memguard');
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(stage, { recursive: true });
  const listed = run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root });
  if (listed.status !== 0) throw new Error(`npm pack --dry-run failed: ${listed.stderr.trim()}`);
  for (const { path: file } of JSON.parse(listed.stdout)[0].files) {
    if (file === 'package.json') continue;
    fs.mkdirSync(path.dirname(path.join(stage, file)), { recursive: true });
    fs.copyFileSync(path.join(root, file), path.join(stage, file));
  }
  const { devDependencies, scripts, ...rest } = pkg;
  const published = {
    ...rest,
    scripts: { install: scripts.install, build: scripts.build }, // build: what the no-binary message tells users to run
    optionalDependencies: Object.fromEntries(PLATFORMS.map((p) => [`memguard-${p}`, pkg.version])),
  };
  fs.writeFileSync(path.join(stage, 'package.json'), JSON.stringify(published, null, 2) + '\n');

  const packed = [npmPack(stage, dest)];
  for (const platform of PLATFORMS) {
    const dir = path.join(root, 'prebuilds', platform);
    if (fs.existsSync(path.join(dir, 'package.json'))) packed.push(npmPack(dir, dest));
    else console.error(`pack: no prebuilds/${platform} (run npm run prebuilds); its package is not packed`);
  }
  const mb = (n) => `${(n / 1e6).toFixed(2)} MB`;
  for (const p of packed) console.log(`${path.relative(root, p.file)}\t${mb(p.size)} download\t${mb(p.unpackedSize)} unpacked\t${p.entryCount} files`);
}

try {
  main();
} catch (err) {
  console.error(`pack: ${err.message}`);
  process.exit(1);
}
