#!/usr/bin/env node
// `npm run bench:startup`: what loading memguard adds to a process that does
// nothing (`node -e 0`): every CLI or test process started with
// NODE_OPTIONS=-r memguard pays it. Sides alternate in each round; medians
// and the spread of BENCH_RUNS rounds (default 31). `-r` of an empty module
// is measured too: what Node itself takes to preload any module, which no
// module can spend less than.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const RUNS = Number(process.env.BENCH_RUNS || 31);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memguard-bench-startup-'));
const env = { ...process.env, MEMGUARD_DIR: dir };
for (const k of Object.keys(env)) if (k.startsWith('MEMGUARD_') && k !== 'MEMGUARD_DIR') delete env[k];

const empty = path.join(os.tmpdir(), `memguard-bench-empty-${process.pid}.js`);
fs.writeFileSync(empty, '');
const sides = {
  'node -e 0': ['-e', '0'],
  'node -r <an empty module> -e 0': ['-r', empty, '-e', '0'],
  'node -r memguard -e 0': ['-r', root, '-e', '0'],
  'node -r memguard -e 0 (MEMGUARD_KEEP=all)': ['-r', root, '-e', '0'],
};
const times = Object.fromEntries(Object.keys(sides).map((k) => [k, []]));
const run = (name) => {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, sides[name], { env: name.includes('KEEP') ? { ...env, MEMGUARD_KEEP: 'all' } : env });
  if (r.status !== 0) throw new Error(`${name} failed: ${r.stderr}`);
  times[name].push(Number(process.hrtime.bigint() - t0) / 1e6);
};
for (let i = 0; i < RUNS; i++) {
  const order = Object.keys(sides);
  if (i % 2) order.reverse();
  for (const name of order) run(name);
}
fs.rmSync(dir, { recursive: true, force: true });
fs.rmSync(empty, { force: true });
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const base = median(times['node -e 0']);
const preload = median(times['node -r <an empty module> -e 0']);
console.log(`| process | median | spread | added | added beyond preloading any module |`);
console.log(`|---|---|---|---|---|`);
for (const [name, xs] of Object.entries(times)) {
  const m = median(xs);
  const beyond = name.includes('memguard') ? `+${(m - preload).toFixed(1)} ms` : '';
  console.log(`| \`${name}\` | ${m.toFixed(1)} ms | ${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)} ms | ${name === 'node -e 0' ? '' : `+${(m - base).toFixed(1)} ms`} | ${beyond} |`);
}

// The same cost seen from inside the process, which a loaded machine blurs
// less: the time `require('memguard')` takes, and the time its exit handler
// takes (between an 'exit' listener added before memguard's and one after).
const inner = { require: [], exit: [] };
const probe = `
  const t0 = process.hrtime.bigint(); let t1;
  process.on('exit', () => { t1 = process.hrtime.bigint(); });
  require(${JSON.stringify(root)});
  const t2 = process.hrtime.bigint();
  process.on('exit', () => {
    const t3 = process.hrtime.bigint(); // before process.stdout, whose first use costs ms
    process.stdout.write(JSON.stringify({ require: Number(t2 - t0) / 1e6, exit: Number(t3 - t1) / 1e6 }));
  });
`;
const dir2 = fs.mkdtempSync(path.join(os.tmpdir(), 'memguard-bench-startup-'));
for (let i = 0; i < RUNS; i++) {
  const r = spawnSync(process.execPath, ['-e', probe], { env: { ...env, MEMGUARD_DIR: dir2 }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`probe failed: ${r.stderr}`);
  const m = JSON.parse(r.stdout);
  inner.require.push(m.require);
  inner.exit.push(m.exit);
}
fs.rmSync(dir2, { recursive: true, force: true });
console.log(`\n| inside the process | median | spread |`);
console.log(`|---|---|---|`);
for (const [name, xs] of Object.entries({ "require('memguard')": inner.require, 'its exit handler': inner.exit })) {
  console.log(`| ${name} | ${median(xs).toFixed(2)} ms | ${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)} ms |`);
}
const total = inner.require.map((x, i) => x + inner.exit[i]);
console.log(`| total (goal ≤ 5 ms) | ${median(total).toFixed(2)} ms | ${Math.min(...total).toFixed(2)}–${Math.max(...total).toFixed(2)} ms |`);
