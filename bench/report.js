#!/usr/bin/env node
// `npm run bench:report`: `memguard report` vs memlab vs Chrome DevTools'
// own code (heap-snapshot-toolkit) computing retained sizes and the class
// summary of the same snapshots (~500 MB and ≥ 1 GB, generated once into
// .cache/bench/). Each side runs in its own process under /usr/bin/time:
// wall time and peak RSS, printed side by side as ratios.
//
//   BENCH_SESSIONS  comma-separated sizes in sessions (default 440000,900000:
//                   ~0.5 GB and ~1.05 GB of snapshot)
//   BENCH_PEERS     comma-separated sides (default memguard,toolkit,memlab)
//   BENCH_RUNS      runs per side, the median reported (default 3: shared
//                   2-core machines vary by ±15% between minutes)
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const cacheDir = path.join(root, '.cache', 'bench');
const sizes = (process.env.BENCH_SESSIONS || '440000,900000').split(',').map(Number);
const peers = (process.env.BENCH_PEERS || 'memguard,toolkit,memlab').split(',');
const runs = Math.max(1, Number(process.env.BENCH_RUNS || 3));
const analyser = path.join(root, 'build', `memguard-report-${process.platform}-${process.arch}`);
const BIG_HEAP = '--max-old-space-size=16384';

const commands = {
  memguard: (file) => [analyser, 'report', file, '--json'],
  toolkit: (file) => [process.execPath, BIG_HEAP, path.join(__dirname, 'peers', 'toolkit.mjs'), file],
  memlab: (file) => [process.execPath, BIG_HEAP, path.join(__dirname, 'peers', 'memlab.js'), file],
};

function snapshotFor(sessions) {
  const file = path.join(cacheDir, `service-${sessions}.heapsnapshot`);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(cacheDir, { recursive: true });
    console.error(`generating ${path.relative(root, file)} …`);
    const r = spawnSync(process.execPath, [BIG_HEAP, path.join(__dirname, 'make-snapshot.js'), String(sessions), file], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    if (r.status !== 0) throw new Error(`make-snapshot failed (${r.status ?? r.signal})`);
  }
  return file;
}

/** Runs one side under GNU time: seconds, peak RSS bytes, and its last stdout line. */
function measure(argv) {
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %M', ...argv], { maxBuffer: 1 << 30, encoding: 'utf8' });
  const m = /TIME ([\d.]+) (\d+)\s*$/.exec(r.stderr);
  if (r.status !== 0 || !m) {
    return { error: `exit ${r.status ?? r.signal}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}` };
  }
  return { seconds: Number(m[1]), peakRss: Number(m[2]) * 1024, out: r.stdout.trim().split('\n').pop().slice(0, 200) };
}

if (!fs.existsSync('/usr/bin/time')) {
  console.error('bench:report needs GNU time (/usr/bin/time; Debian package "time") to measure peak RSS');
  process.exit(1);
}
if (!fs.existsSync(analyser)) {
  console.error(`${analyser} is missing: run npm run build`);
  process.exit(1);
}
/** Reads `file` once, so every side finds it in the page cache (the sides
 * measured later would otherwise have that advantage over the first). */
function warm(file) {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(16 << 20);
  try {
    while (fs.readSync(fd, buf, 0, buf.length, null) > 0);
  } finally {
    fs.closeSync(fd);
  }
}

/** The run with the median time of `runs` runs of one side (the first failure, if any). */
function median(peer, file) {
  const all = [];
  for (let i = 0; i < runs; i++) {
    warm(file);
    const r = measure(commands[peer](file));
    if (r.error) return r;
    all.push(r);
  }
  all.sort((a, b) => a.seconds - b.seconds);
  const m = all[Math.floor(all.length / 2)];
  return { ...m, all: all.map((r) => r.seconds) };
}

const mb = (b) => `${(b / 1e6).toFixed(0)} MB`;
for (const sessions of sizes) {
  const file = snapshotFor(sessions);
  const bytes = fs.statSync(file).size;
  console.log(`\n${path.basename(file)}: ${mb(bytes)}`);
  const results = {};
  for (const peer of peers) {
    results[peer] = median(peer, file);
    const r = results[peer];
    console.log(
      r.error
        ? `  ${peer}: failed: ${r.error}`
        : `  ${peer}: ${r.seconds.toFixed(2)} s (median of ${r.all.map((t) => t.toFixed(2)).join(', ')}), peak RSS ${mb(r.peakRss)}`,
    );
  }
  const us = results.memguard;
  if (!us || us.error) continue;
  console.log('  | side | time | peak RSS | memguard faster by | peak RSS / file size |');
  console.log('  |---|---|---|---|---|');
  for (const peer of peers) {
    const r = results[peer];
    if (r.error) continue;
    const faster = peer === 'memguard' ? '—' : `${(r.seconds / us.seconds).toFixed(1)}×`;
    console.log(`  | ${peer} | ${r.seconds.toFixed(2)} s | ${mb(r.peakRss)} | ${faster} | ${(r.peakRss / bytes).toFixed(2)}× |`);
  }
}
