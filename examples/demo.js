#!/usr/bin/env node
// `npm run demo`: runs a leaking HTTP service under memguard with a small
// heap, lets it die of out-of-memory, then runs `memguard report` on the
// bundle memguard wrote.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const bundlesRoot = path.join(root, 'demo-bundles');
fs.rmSync(bundlesRoot, { recursive: true, force: true });

const cmd = [process.execPath, '--max-old-space-size=48', '-r', root, path.join(__dirname, 'leaky-server.js')];
console.log(`$ MEMGUARD_DIR=${path.relative(process.cwd(), bundlesRoot) || '.'} node ${cmd.slice(1).map((a) => path.relative(process.cwd(), a) || a).join(' ')}\n`);
const run = spawnSync(cmd[0], cmd.slice(1), {
  env: { ...process.env, MEMGUARD_DIR: bundlesRoot },
  stdio: ['ignore', 'inherit', 'pipe'],
  encoding: 'utf8',
  timeout: 300_000,
});
// The service's own crash report is long; show memguard's lines and V8's verdict.
for (const line of run.stderr.split('\n')) {
  if (line.startsWith('memguard:') || line.includes('FATAL ERROR')) console.log(line);
}
console.log(`\nThe service died as it would have without memguard: ${run.signal ? `signal ${run.signal}` : `exit code ${run.status}`}.\n`);

const bundles = fs.existsSync(bundlesRoot) ? fs.readdirSync(bundlesRoot).map((b) => path.join(bundlesRoot, b)) : [];
if (bundles.length === 0) {
  console.error('demo: no bundle was written — something is wrong');
  process.exit(1);
}
const mb = (n) => (n < 1e5 ? `${(n / 1e3).toFixed(1)} kB` : `${(n / 1e6).toFixed(1)} MB`);
for (const bundle of bundles) {
  const rel = path.relative(process.cwd(), bundle);
  console.log(`Bundle: ${rel}/`);
  for (const f of fs.readdirSync(bundle)) console.log(`  ${f.padEnd(28)} ${mb(fs.statSync(path.join(bundle, f)).size)}`);
  // What filled the heap, what holds it, how it grew: the report command
  // (the same one a user runs on a bundle from production).
  console.log(`\n$ npx memguard report ${rel}   # --html report.html for charts, --json for programs\n`);
  const report = spawnSync(process.execPath, [path.join(root, 'bin', 'memguard.js'), 'report', rel], { stdio: 'inherit' });
  if (report.status !== 0) process.exit(report.status ?? 1);
}
