#!/usr/bin/env node
// `npm run bench:upload`: shipping bundles to S3-compatible storage, on
// loopback against SeaweedFS (`weed mini`, as in the tests).
//
// 1. Death → bucket: an app leaks until V8 kills it, under MEMGUARD_UPLOAD
//    (a ~50 MB compressed snapshot); time from the app's exit to the bundle
//    being complete in the bucket (the uploader writes `.uploaded` right
//    after `summary.json`, the last object, is stored).
// 2. Throughput: `memguard upload` of a bundle holding a 50 MB snapshot vs
//    boto3's `upload_file` (what `aws s3 cp` uses: multipart, 10 threads)
//    to the same server, alternating, several runs each.
// 3. The uploader's peak RSS for a 50 MB and a 200 MB snapshot.
//
// BENCH_RUNS (default 5) sets the runs of 2; 1 runs BENCH_DEATH_RUNS (default 3).
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { setTimeout: sleep } = require('node:timers/promises');
const s3 = require('../__test__/s3');
const h = require('../__test__/helpers');
const { findReport } = require('../lib/platform');
const { pythonPath } = require('../scripts/seaweedfs');

const RUNS = Number(process.env.BENCH_RUNS || 5);
const DEATH_RUNS = Number(process.env.BENCH_DEATH_RUNS || 3);
const REPORT = findReport();

const cleanups = [];
const t = { after: (fn) => cleanups.push(fn) };
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const spread = (xs) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;

let n = 0;
/** A bundle of a gone process holding a `mb` MB incompressible snapshot. */
function bundle(root, mb) {
  const dir = path.join(root, `20260102-0304${String(n).padStart(2, '0')}-${4100000 + n++}`);
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.writeFileSync(path.join(dir, 'summary.json'), JSON.stringify({ pid: 1, argv: ['node', 'bench.js'], captures: [{ trigger: 'api' }] }));
  const fd = fs.openSync(path.join(dir, 'heap-1.heapsnapshot.gz'), 'w');
  for (let i = 0; i < mb; i++) fs.writeSync(fd, crypto.randomBytes(1 << 20));
  fs.closeSync(fd);
  return dir;
}

function timed(cmd, args, env) {
  const start = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return { secs: Number(process.hrtime.bigint() - start) / 1e9, stderr: r.stderr, stdout: r.stdout };
}

const BOTO = `
import sys, boto3
from boto3.s3.transfer import TransferConfig
s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1')
s3.upload_file(sys.argv[2], sys.argv[3], sys.argv[4], Config=TransferConfig())
`;

async function main() {
  const server = await s3.startS3(t);
  const root = h.tempDir(t, 'memguard-bench-upload-');

  console.log(`memguard upload benchmark — SeaweedFS on loopback, ${os.cpus().length} CPUs, Node ${process.version}\n`);

  // 2. Throughput, alternating memguard / boto3.
  const size = 50;
  const ours = [];
  const boto = [];
  for (let i = 0; i < RUNS; i++) {
    const b = bundle(root, size);
    const env = server.env({ MEMGUARD_UPLOAD: 's3://crashes/bench', MEMGUARD_SERVICE: `run${i}` });
    ours.push(size / timed(REPORT, ['upload', b], env).secs);
    const file = path.join(b, 'heap-1.heapsnapshot.gz');
    boto.push(size / timed('python3', ['-c', BOTO, server.endpoint, file, s3.BUCKET, `boto/${i}/heap.gz`], { ...server.env(), PYTHONPATH: pythonPath() }).secs);
    fs.rmSync(b, { recursive: true });
  }
  console.log(`Throughput, a bundle with a ${size} MB snapshot (MB/s, whole process incl. start; ${RUNS} alternating runs):`);
  console.log(`  memguard upload   median ${median(ours).toFixed(1)}  (${spread(ours)})`);
  console.log(`  boto3 upload_file median ${median(boto).toFixed(1)}  (${spread(boto)})`);
  console.log(`  ratio memguard/boto3: ${(median(ours) / median(boto)).toFixed(2)}\n`);

  // 3. Peak RSS of the uploader by snapshot size.
  console.log('Uploader peak RSS (GNU time %M):');
  for (const mb of [50, 200]) {
    const b = bundle(root, mb);
    const env = server.env({ MEMGUARD_UPLOAD: 's3://crashes/bench-rss', MEMGUARD_SERVICE: `rss${mb}` });
    const r = timed('/usr/bin/time', ['-f', 'RSS %M', REPORT, 'upload', b], env);
    const kb = Number(/RSS (\d+)/.exec(r.stderr)[1]);
    console.log(`  ${String(mb).padStart(3)} MB snapshot: ${(kb / 1024).toFixed(1)} MB`);
    fs.rmSync(b, { recursive: true });
  }
  console.log();

  // 1. Death → bucket.
  const deaths = [];
  for (let i = 0; i < DEATH_RUNS; i++) {
    const dir = path.join(root, `death-${i}`);
    const env = server.env({ MEMGUARD_DIR: dir, MEMGUARD_UPLOAD: 's3://crashes/death', MEMGUARD_UPLOAD_HOST: `run${i}` });
    const child = spawn(process.execPath, ['--max-old-space-size=200', '-r', h.MEMGUARD, h.fixture('leak.js')], { env: h.childEnv(env), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const died = await new Promise((r) => child.on('exit', () => r(Date.now())));
    const [b] = h.bundles(dir);
    const marker = path.join(b, '.uploaded');
    for (let waited = 0; !fs.existsSync(marker); waited += 20) {
      if (waited > 300_000) throw new Error(`not uploaded: ${stderr.slice(-1000)}`);
      await sleep(20);
    }
    const secs = (fs.statSync(marker).mtimeMs - died) / 1000;
    const snap = fs.statSync(path.join(b, 'heap-1.heapsnapshot.gz')).size / 1e6;
    console.log(`  run ${i + 1}: ${snap.toFixed(1)} MB compressed snapshot: complete in the bucket ${secs.toFixed(2)} s after the app died`);
    deaths.push(secs);
    await new Promise((r) => (child.stderr.readableEnded ? r() : child.stderr.on('end', r)));
  }
  console.log(`Death → bundle complete in the bucket: median ${median(deaths).toFixed(2)} s (${spread(deaths)}), over ${DEATH_RUNS} runs`);
  console.log('  (includes the report.json verdict: `memguard report --json` on the snapshot, in a child process)');
  const listed = JSON.parse(timed(REPORT, ['list', 's3://crashes/death', '--json'], server.env()).stdout || '[]');
  for (const row of listed) console.log(`  ${row.host}: ${row.verdict ? row.verdict.headline : `no verdict: ${row.reportError}`}`);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
