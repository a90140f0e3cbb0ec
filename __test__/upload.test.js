'use strict';
// Bundles shipped to S3-compatible storage (MEMGUARD_UPLOAD), against a real
// SeaweedFS server started here; what is in the bucket is checked through an
// independent client (boto3), file by file, by SHA-256.
const { test, before } = require('node:test');
const assert = require('node:assert');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { setTimeout: sleep } = require('node:timers/promises');
const h = require('./helpers');
const s3 = require('./s3');
const { findReport } = require('../lib/platform');

const skip = s3.skipReason() || false;
const REPORT = findReport();

/** Runs `memguard-report ...args` (what `npx memguard` runs). */
const cli = (args, env) => h.run(REPORT, args, { env, timeoutMs: 60_000 });

/** A bundle as a crashed process leaves it (pid 4000000+ cannot exist: the process is gone). */
function fakeBundle(root, name, { script = 'worker.js', files = {} } = {}) {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const summary = {
    memguard: '0.1.0', pid: Number(name.split('-')[2]), threadId: 0, argv: ['/usr/bin/node', `/srv/${script}`],
    startedAt: '2026-01-02T03:04:05Z',
    captures: [{ seq: 1, trigger: 'rss', time: '2026-01-02T03:05:00.000Z', outcome: 'written', heap: { usedHeapSize: 5e7, heapSizeLimit: 1e8 } }],
  };
  fs.writeFileSync(path.join(dir, 'summary.json'), JSON.stringify(summary));
  for (const [f, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), content);
  return dir;
}

/** Local files of a bundle (what must be in the bucket), name → sha256. */
function localFiles(bundle) {
  const out = {};
  for (const f of fs.readdirSync(bundle)) if (!f.startsWith('.')) out[f] = s3.sha256(path.join(bundle, f));
  return out;
}

/** Polls the bucket until `prefix` holds a summary.json (the uploader puts it last). */
async function waitForBundle(server, prefix, timeoutMs = 60_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const listed = s3.listKeys(server, prefix);
    if (listed.ok && Object.keys(listed.objects).some((k) => k.endsWith('/summary.json'))) return listed.objects;
    if (Date.now() > until) throw new Error(`no bundle under ${prefix}: ${JSON.stringify(listed)}`);
    await sleep(300);
  }
}

let server;
before(async (t) => {
  if (!skip) server = await s3.startS3(t);
});

test('an app that dies of OOM under MEMGUARD_UPLOAD: the bundle is in the bucket, intact, with report.json naming the suspect; the marker is written', { skip, timeout: 120_000 }, async (t) => {
  const dir = h.tempDir(t);
  const started = Date.now();
  const r = await h.runNode(['--max-old-space-size=48', '-r', h.MEMGUARD, h.fixture('report-leak.js')], {
    env: server.env({ MEMGUARD_DIR: dir, MEMGUARD_UPLOAD: 's3://crashes/oom', MEMGUARD_SERVICE: 'checkout', MEMGUARD_UPLOAD_HOST: 'pod-1' }),
  });
  assert.strictEqual(r.signal, 'SIGABRT', 'the app dies as it would without memguard');
  const [bundle] = h.bundles(dir);
  const name = path.basename(bundle);
  const objects = await waitForBundle(server, `oom/checkout/pod-1/${name}/`);
  // The uploader writes the marker after summary.json; give it a moment.
  for (let i = 0; i < 50 && !fs.existsSync(path.join(bundle, '.uploaded')); i++) await sleep(100);
  const marker = JSON.parse(fs.readFileSync(path.join(bundle, '.uploaded'), 'utf8'));
  assert.strictEqual(marker.url, `s3://crashes/oom/checkout/pod-1/${name}`);
  assert.strictEqual(fs.statSync(path.join(bundle, '.uploaded')).mode & 0o777, 0o600);
  const local = localFiles(bundle);
  assert.ok(Object.keys(local).some((f) => f.endsWith('.heapsnapshot.gz')), Object.keys(local).join());
  for (const [f, sum] of Object.entries(local)) {
    assert.strictEqual(objects[`oom/checkout/pod-1/${name}/${f}`]?.sha256, sum, `${f} intact in the bucket`);
  }
  const reportKey = `oom/checkout/pod-1/${name}/report.json`;
  assert.ok(objects[reportKey], 'report.json uploaded');
  assert.strictEqual(Object.keys(objects).length, Object.keys(local).length + 1, Object.keys(objects).join());
  const fetched = await cli(['list', 's3://crashes/oom', '--json'], server.env());
  assert.strictEqual(fetched.code, 0, fetched.stderr);
  const [row] = JSON.parse(fetched.stdout);
  assert.match(row.verdict.headline, /^Leak suspect: .*ReportSession/, JSON.stringify(row.verdict));
  assert.strictEqual(row.service, 'checkout');
  assert.strictEqual(row.captures[0].trigger, 'near-heap-limit');
  // Nothing of the credentials went anywhere.
  const secret = server.env().AWS_SECRET_ACCESS_KEY;
  assert.ok(!fs.readFileSync(path.join(bundle, 'summary.json'), 'utf8').includes(secret));
  assert.ok(!r.stderr.includes(secret) && !fetched.stdout.includes(secret));
  t.diagnostic(`death to bundle in the bucket: ${Date.now() - started} ms (including the app's run)`);
});

test('the endpoint is down when the app dies: the next start uploads the leftover, and never twice', { skip, timeout: 120_000 }, async (t) => {
  const dir = h.tempDir(t);
  const down = server.env({ AWS_ENDPOINT_URL: 'http://127.0.0.1:9', MEMGUARD_DIR: dir, MEMGUARD_UPLOAD: 's3://crashes/down' });
  const r = await h.runNode(['--max-old-space-size=48', '-r', h.MEMGUARD, h.fixture('report-leak.js')], { env: down });
  assert.strictEqual(r.signal, 'SIGABRT');
  // The uploader shares the app's stderr: its one line says what happened.
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('memguard upload:'));
  assert.strictEqual(lines.length, 1, r.stderr.slice(-2000));
  assert.match(lines[0], /^memguard upload: error: .* not uploaded to s3:\/\/crashes\/down: .*cannot reach http:\/\/127\.0\.0\.1:9 .*; kept locally, retried at the next start$/);
  const [bundle] = h.bundles(dir);
  assert.ok(!fs.existsSync(path.join(bundle, '.uploaded')));
  const before = localFiles(bundle);

  // The next start, with the endpoint back: the leftover goes up.
  const up = server.env({ MEMGUARD_DIR: dir, MEMGUARD_UPLOAD: 's3://crashes/down' });
  const next = await h.runNode(['-r', h.MEMGUARD, h.fixture('app.js')], { env: up });
  assert.strictEqual(next.code, 0, next.stderr);
  assert.match(next.stderr, new RegExp(`memguard upload: .*${path.basename(bundle)} → s3://crashes/down/report-leak/`));
  const objects = await waitForBundle(server, 'down/');
  const keys = Object.keys(objects);
  for (const [f, sum] of Object.entries(before)) assert.ok(keys.some((k) => k.endsWith(`/${path.basename(bundle)}/${f}`) && objects[k].sha256 === sum), f);
  assert.ok(fs.existsSync(path.join(bundle, '.uploaded')));

  // A third start finds nothing to upload; the uploader by hand says so too.
  const third = await h.runNode(['-r', h.MEMGUARD, h.fixture('app.js')], { env: up });
  assert.ok(!third.stderr.includes('memguard upload:'), third.stderr);
  const again = await cli(['upload', bundle], up);
  assert.strictEqual(again.code, 0);
  assert.match(again.stderr, /was uploaded before; nothing to do/);
  assert.deepStrictEqual(Object.keys(s3.listKeys(server, 'down/').objects), keys, 'nothing uploaded twice');
});

test('a 200 MB snapshot goes up in multipart; an uploader killed midway leaves no bundle, the next one completes it', { skip, timeout: 120_000 }, async (t) => {
  const dir = h.tempDir(t);
  const bundle = fakeBundle(dir, '20260102-030405-4000101');
  const big = path.join(bundle, 'heap-1.heapsnapshot.gz');
  const fd = fs.openSync(big, 'w', 0o600);
  for (let i = 0; i < 200; i++) fs.writeSync(fd, crypto.randomBytes(1 << 20));
  fs.closeSync(fd);
  const env = server.env({ MEMGUARD_UPLOAD: 's3://crashes/big', MEMGUARD_SERVICE: 'big' });
  // Paced at 40 MB/s (MEMGUARD_UPLOAD_RATE), so that 1.5 s in it is midway.
  const first = spawn(REPORT, ['upload', bundle], { env: h.childEnv({ ...env, MEMGUARD_UPLOAD_RATE: '40MB' }), stdio: 'ignore' });
  const firstClosed = new Promise((r) => first.on('close', (code, signal) => r(signal)));
  await sleep(1500);
  first.kill('SIGKILL');
  assert.strictEqual(await firstClosed, 'SIGKILL', 'killed before it finished');
  const midway = s3.listKeys(server, 'big/').objects;
  assert.ok(!Object.keys(midway).some((k) => k.endsWith('summary.json')), 'no half bundle is visible');
  assert.ok(!fs.existsSync(path.join(bundle, '.uploaded')));

  const second = await cli(['upload', bundle], env);
  assert.strictEqual(second.code, 0, second.stderr);
  const objects = await waitForBundle(server, 'big/');
  const key = Object.keys(objects).find((k) => k.endsWith('/heap-1.heapsnapshot.gz'));
  assert.strictEqual(objects[key].sha256, s3.sha256(big), 'the snapshot is intact');
  assert.strictEqual(objects[key].size, 200 << 20);
  assert.ok(fs.existsSync(path.join(bundle, '.uploaded')));
});

test('memguard list over several services and hosts, newest first; memguard report and fetch on one', { skip, timeout: 120_000 }, async (t) => {
  const dir = h.tempDir(t);
  const oom = await h.runNode(['--max-old-space-size=48', '-r', h.MEMGUARD, h.fixture('report-leak.js')], { env: { MEMGUARD_DIR: dir } });
  assert.strictEqual(oom.signal, 'SIGABRT');
  const [real] = h.bundles(dir);
  const fleet = [
    [real, 'api', 'pod-a'],
    [fakeBundle(dir, '20260102-030405-4000201', { script: 'web.js', files: { 'timeline.ndjson.gz': '' } }), 'web', 'pod-b'],
    [fakeBundle(dir, '20260103-030405-4000202'), 'api', 'pod-c'],
  ];
  for (const [bundle, service, host] of fleet) {
    const up = await cli(['upload', bundle], server.env({ MEMGUARD_UPLOAD: 's3://crashes/fleet', MEMGUARD_SERVICE: service, MEMGUARD_UPLOAD_HOST: host }));
    assert.strictEqual(up.code, 0, up.stderr);
  }
  const list = await cli(['list', 's3://crashes/fleet'], server.env());
  assert.strictEqual(list.code, 0, list.stderr);
  const lines = list.stdout.split('\n');
  assert.strictEqual(lines[0], 'memguard list: s3://crashes/fleet — 3 bundles');
  const rows = lines.filter((l) => /^\d{4}-\d\d-\d\d /.test(l));
  assert.deepStrictEqual(rows.map((l) => l.split(/\s+/).slice(2, 4)), [['api', 'pod-a'], ['api', 'pod-c'], ['web', 'pod-b']], list.stdout);
  assert.match(rows[0], /near-heap-limit\s+written\s+[\d.]+ of [\d.]+ MB$/);
  assert.match(list.stdout, /\n {2}Leak suspect: .*ReportSession/);
  const web = JSON.parse((await cli(['list', 's3://crashes/fleet', '--service', 'web', '--json'], server.env())).stdout);
  assert.deepStrictEqual(web.map((r) => [r.service, r.host, r.pid]), [['web', 'pod-b', 4000201]]);
  const recent = JSON.parse((await cli(['list', 's3://crashes/fleet', '--since', '7d', '--json'], server.env())).stdout);
  assert.deepStrictEqual(recent.map((r) => r.host), ['pod-a'], 'the January bundles are older than 7 days');

  const url = `s3://crashes/fleet/api/pod-a/${path.basename(real)}`;
  const remote = await cli(['report', url], server.env());
  const local = await cli(['report', real], {});
  assert.strictEqual(remote.code, 0, remote.stderr);
  assert.strictEqual(remote.stdout.split('\n')[2], local.stdout.split('\n')[2], 'the same verdict as the local bundle');
  assert.strictEqual(remote.stdout.split('\n')[0], `memguard report: ${url}`);
  const into = h.tempDir(t);
  const fetched = await cli(['fetch', url, '--to', into], server.env());
  assert.strictEqual(fetched.code, 0, fetched.stderr);
  const copy = path.join(into, path.basename(real));
  for (const [f, sum] of Object.entries(localFiles(real))) assert.strictEqual(s3.sha256(path.join(copy, f)), sum, f);
  assert.strictEqual(fs.statSync(copy).mode & 0o777, 0o700);
});

test('wrong credentials (403), a missing bucket, plain HTTP without AWS_ALLOW_HTTP: one clear line each, exit code 2, nothing lost locally', { skip, timeout: 60_000 }, async (t) => {
  const dir = h.tempDir(t);
  const bundle = fakeBundle(dir, '20260102-030405-4000301', { files: { 'timeline.ndjson.gz': 'x' } });
  const before = localFiles(bundle);
  const cases = [
    [{ AWS_SECRET_ACCESS_KEY: 'wrong-secret' }, /access denied \(HTTP 403\) to bucket crashes/],
    [{ MEMGUARD_UPLOAD: 's3://no-such-bucket/x' }, /bucket no-such-bucket does not exist/],
    [{ AWS_ALLOW_HTTP: '' }, /AWS_ENDPOINT_URL=.*http:\/\/127\.0\.0\.1:\d+.* is plain HTTP.*AWS_ALLOW_HTTP=true/],
  ];
  for (const [extra, expected] of cases) {
    const env = server.env({ MEMGUARD_UPLOAD: 's3://crashes/errors', ...extra });
    const r = await cli(['upload', bundle], env);
    assert.strictEqual(r.code, 2, `${JSON.stringify(extra)}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.strictEqual(lines.length, 1, r.stderr);
    assert.match(lines[0], expected);
    assert.ok(!r.stderr.includes('wrong-secret') && !r.stderr.includes(server.env().AWS_SECRET_ACCESS_KEY), 'no secret in the line');
    assert.deepStrictEqual(localFiles(bundle), before, 'nothing lost locally');
    assert.ok(!fs.existsSync(path.join(bundle, '.uploaded')));
    const list = await cli(['list', env.MEMGUARD_UPLOAD], env);
    assert.strictEqual(list.code, 2, list.stderr);
    assert.strictEqual(list.stderr.trim().split('\n').length, 1, list.stderr);
    assert.match(list.stderr, expected);
  }
  assert.deepStrictEqual(s3.listKeys(server, 'errors/').objects, {}, 'nothing reached the bucket');
});

test('MEMGUARD_UPLOAD_KEEP=off removes the local bundle once it is in the bucket, and only then', { skip, timeout: 60_000 }, async (t) => {
  const dir = h.tempDir(t);
  const bundle = fakeBundle(dir, '20260102-030405-4000401', { files: { 'timeline.ndjson.gz': 'x' } });
  const local = localFiles(bundle);
  const failed = await cli(['upload', bundle], server.env({ MEMGUARD_UPLOAD: 's3://crashes/keep', MEMGUARD_UPLOAD_KEEP: 'off', AWS_SECRET_ACCESS_KEY: 'wrong' }));
  assert.strictEqual(failed.code, 2, failed.stderr);
  assert.deepStrictEqual(localFiles(bundle), local, 'a failed upload removes nothing');
  const r = await cli(['upload', bundle], server.env({ MEMGUARD_UPLOAD: 's3://crashes/keep', MEMGUARD_UPLOAD_KEEP: 'off' }));
  assert.strictEqual(r.code, 0, r.stderr);
  assert.ok(!fs.existsSync(bundle), 'removed after the upload');
  const objects = s3.listKeys(server, 'keep/').objects;
  for (const [f, sum] of Object.entries(local)) assert.ok(Object.entries(objects).some(([k, o]) => k.endsWith(`/${f}`) && o.sha256 === sum), f);
});
