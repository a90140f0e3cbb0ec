#!/usr/bin/env node
// `npm run bench:startup`: what loading memguard adds to a process that does
// nothing (`node -e 0`): every CLI or test process started with
// NODE_OPTIONS=-r memguard pays it. Sides alternate in each round; medians
// and the spread of BENCH_RUNS rounds (default 31).
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

const sides = {
  'node -e 0': ['-e', '0'],
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
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const base = median(times['node -e 0']);
console.log(`| process | median | spread | added |`);
console.log(`|---|---|---|---|`);
for (const [name, xs] of Object.entries(times)) {
  const m = median(xs);
  console.log(`| \`${name}\` | ${m.toFixed(1)} ms | ${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)} ms | ${name === 'node -e 0' ? '' : `+${(m - base).toFixed(1)} ms`} |`);
}
