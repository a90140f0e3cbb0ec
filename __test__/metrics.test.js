'use strict';
// MEMGUARD_METRICS: a real Prometheus server scrapes a Node app under
// memguard; its numbers must match the app's own timeline. The endpoint
// answers while JS is stuck in a loop; bad settings, a port in use and
// hostile clients leave the app unaffected.
const test = require('node:test');
const assert = require('node:assert');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { MEMGUARD, fixture, tempDir, childEnv, readTimeline, memguardLines, runNode, freePort } = require('./helpers');

const PROMETHEUS = '/usr/bin/prometheus';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts metrics-app.js under memguard; commands go to stdin, answers come as lines. */
function startApp(t, env) {
  const child = spawn(process.execPath, ['-r', MEMGUARD, fixture('metrics-app.js')], {
    env: childEnv(env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters = [];
  child.stdout.on('data', (d) => {
    stdout += d;
    for (const w of [...waiters]) w();
  });
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  t.after(() => child.kill('SIGKILL'));
  let seen = 0;
  return {
    child,
    exited,
    get stderr() {
      return stderr;
    },
    send: (line) => child.stdin.write(`${line}\n`),
    /** The next stdout line matching `re` (after the ones already taken). */
    next(re, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${re} from the app; stdout: ${stdout}; stderr: ${stderr}`)), timeoutMs);
        const check = () => {
          const lines = stdout.split('\n').slice(0, -1);
          for (let i = seen; i < lines.length; i++) {
            const m = re.exec(lines[i]);
            if (m) {
              seen = i + 1;
              clearTimeout(timer);
              waiters.splice(waiters.indexOf(check), 1);
              return resolve(m);
            }
          }
        };
        waiters.push(check);
        check();
      });
    },
  };
}

/** GET with a timeout; resolves {status, text, ms}. */
async function get(url, headers = {}) {
  const started = performance.now();
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  return { status: res.status, text, headers: res.headers, ms: performance.now() - started };
}

/** Parses the text exposition format into [{name, labels, value}]. */
function parseExposition(text) {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(l);
      assert.ok(m, `not an exposition line: ${l}`);
      const labels = Object.fromEntries([...(m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
      return { name: m[1], labels, value: Number(m[3]) };
    });
}

/** Starts /usr/bin/prometheus scraping `target` every second; stopped when the test ends. */
async function startPrometheus(t, target) {
  const dir = tempDir(t, 'memguard-prometheus-');
  const port = await freePort();
  const config = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(
    config,
    `global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['${target}']\n`,
  );
  const prom = spawn(
    PROMETHEUS,
    [`--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  prom.stderr.on('data', (d) => (log += d));
  const closed = new Promise((r) => prom.on('close', r));
  t.after(async () => {
    prom.kill('SIGTERM');
    await Promise.race([closed, sleep(5000).then(() => prom.kill('SIGKILL'))]);
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/-/ready`)).ok) break;
    } catch {}
    if (i > 100) throw new Error(`prometheus did not start: ${log}`);
    await sleep(200);
  }
  const query = async (q) => {
    const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = await res.json();
    assert.strictEqual(body.status, 'success', JSON.stringify(body));
    return body.data.result;
  };
  return { query, base, log: () => log };
}

const gcEvents = (records) => records.filter((r) => r.type === 'gc').length;

test('a real Prometheus scrapes the endpoint: GC count and heap gauges match the timeline, also while JS is blocked', { skip: !fs.existsSync(PROMETHEUS) && `${PROMETHEUS} is missing (apt-get install prometheus; .ci/run does)`, timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const port = await freePort();
  const app = startApp(t, { MEMGUARD_DIR: dir, MEMGUARD_METRICS: String(port) });
  await app.next(/^ready true$/);
  const endpoint = `http://127.0.0.1:${port}/metrics`;
  const prom = await startPrometheus(t, `127.0.0.1:${port}`);

  app.send('churn 3000');
  await app.next(/^churned$/);
  app.send('bundle');
  const bundle = (await app.next(/^bundle (.+)$/))[1];

  // Once the app is quiet, Prometheus's count of GCs (the histogram's
  // count, over every kind) equals the GC events in the timeline file.
  let last = null;
  for (let i = 0; i < 40; i++) {
    await sleep(1000);
    const [sum] = await prom.query('sum(nodejs_gc_duration_seconds_count{job="app"})');
    let timeline;
    try {
      timeline = readTimeline(bundle);
    } catch {
      continue; // read while a member was being appended
    }
    last = { prometheus: sum && Number(sum.value[1]), timeline: gcEvents(timeline) };
    if (last.timeline > 20 && last.prometheus === last.timeline) break;
  }
  assert.ok(last.timeline > 20, `the churn made GCs: ${JSON.stringify(last)}`);
  assert.strictEqual(last.prometheus, last.timeline, 'histogram count = GC events in timeline.ndjson.gz');

  // Per kind, too.
  const timeline = readTimeline(bundle);
  const byKind = { major: 0, minor: 0, incremental: 0, weakcb: 0 };
  const kindOf = { 'mark-compact': 'major', scavenge: 'minor', 'minor-mark-sweep': 'minor', 'incremental-marking': 'incremental', 'weak-callbacks': 'weakcb' };
  for (const r of timeline) if (r.type === 'gc') byKind[kindOf[r.kind]]++;
  for (const series of await prom.query('nodejs_gc_duration_seconds_count{job="app"}')) {
    assert.strictEqual(series.metric.thread, '0');
    assert.strictEqual(Number(series.value[1]), byKind[series.metric.kind], `kind ${series.metric.kind}`);
  }
  // The +Inf bucket is the count; the longest pause lies in the right bucket.
  const [inf] = await prom.query('sum(nodejs_gc_duration_seconds_bucket{job="app",le="+Inf"})');
  assert.strictEqual(Number(inf.value[1]), last.timeline);
  const longest = Math.max(...timeline.filter((r) => r.type === 'gc').map((r) => r.ms)) / 1e3;
  const [under] = await prom.query(`sum(nodejs_gc_duration_seconds_bucket{job="app",le="5"})`);
  assert.strictEqual(Number(under.value[1]), longest <= 5 ? last.timeline : Number(under.value[1]));

  // Heap gauges: each value Prometheus holds is one of the timeline's samples.
  const samples = timeline.filter((r) => r.type === 'sample');
  const check = async (q, values, what) => {
    const [series] = await prom.query(q);
    assert.ok(series, `${q} has a value`);
    assert.ok(values.includes(Number(series.value[1])), `${what} ${series.value[1]} is one of the timeline's samples`);
  };
  await check('nodejs_heap_size_used_bytes{job="app",thread="0"}', samples.map((s) => s.heap.used), 'heap used');
  await check('nodejs_heap_size_total_bytes{job="app",thread="0"}', samples.map((s) => s.heap.total), 'heap total');
  await check('memguard_heap_size_limit_bytes{job="app",thread="0"}', samples.map((s) => s.heap.limit), 'heap limit');
  await check('nodejs_heap_space_size_used_bytes{job="app",thread="0",space="old"}', samples.map((s) => s.spaces.old_space[0]), 'old space used');
  const [rss] = await prom.query('process_resident_memory_bytes{job="app"}');
  assert.ok(Number(rss.value[1]) > 10 << 20, `RSS ${rss.value[1]}`);

  // A synchronous loop that never yields: the endpoint still answers, fast,
  // and its GCs are still counted; Prometheus's scrapes go on.
  const before = parseExposition((await get(endpoint)).text).filter((s) => s.name === 'nodejs_gc_duration_seconds_count').reduce((a, s) => a + s.value, 0);
  app.send('block 5000');
  await app.next(/^blocking$/);
  const blockedAt = Date.now() / 1e3;
  const latencies = [];
  let during = before;
  while (Date.now() / 1e3 - blockedAt < 3.5) {
    const r = await get(endpoint);
    assert.strictEqual(r.status, 200);
    latencies.push(r.ms);
    during = parseExposition(r.text).filter((s) => s.name === 'nodejs_gc_duration_seconds_count').reduce((a, s) => a + s.value, 0);
    await sleep(100);
  }
  const unblocked = await app.next(/^unblocked$/, 30_000);
  assert.ok(unblocked);
  latencies.sort((a, b) => a - b);
  assert.ok(latencies.length >= 10, `${latencies.length} scrapes while blocked`);
  // Generous for a loaded 2-core machine; the benchmark measures the real p99.
  assert.ok(latencies[latencies.length - 1] < 1000, `scrape latencies while blocked: ${latencies.map((l) => l.toFixed(1)).join(', ')} ms`);
  t.diagnostic(`GC events: ${last.timeline} in the timeline and in Prometheus; scrapes while blocked: ${latencies.length}, max ${latencies[latencies.length - 1].toFixed(1)} ms`);
  assert.ok(during > before, `GCs during the blocking loop are counted (${before} → ${during})`);
  await sleep(1500);
  const [up] = await prom.query(`min_over_time(up{job="app"}[4s] @ ${(blockedAt + 4).toFixed(3)})`);
  assert.strictEqual(up.value[1], '1', 'every Prometheus scrape during the loop succeeded');

  app.send('exit');
  const { code } = await app.exited;
  assert.strictEqual(code, 0);
  assert.deepStrictEqual(memguardLines(app.stderr), []);
});

test('a worker gets its own thread label on the one endpoint of the process', async (t) => {
  const port = await freePort();
  const dir = tempDir(t);
  const workerCode = `require(${JSON.stringify(MEMGUARD)}); let k = []; for (let i = 0; i < 3e5; i++) { k.push({ i }); if (k.length > 1e4) k = []; } setTimeout(() => {}, 4000);`;
  const script = `
    const { Worker } = require('node:worker_threads');
    const w = new Worker(${JSON.stringify(workerCode)}, { eval: true });
    setTimeout(async () => {
      const text = await (await fetch('http://127.0.0.1:${port}/metrics')).text();
      console.log(JSON.stringify(text));
      await w.terminate();
    }, 2500);`;
  const r = await runNode(['-r', MEMGUARD, '-e', script], { env: { MEMGUARD_DIR: dir, MEMGUARD_METRICS: String(port) } });
  assert.strictEqual(r.code, 0, r.stderr);
  const series = parseExposition(JSON.parse(r.stdout));
  const threads = new Set(series.filter((s) => s.name === 'nodejs_heap_size_used_bytes').map((s) => s.labels.thread));
  assert.deepStrictEqual([...threads].sort(), ['0', '1']);
  const workerGcs = series.filter((s) => s.name === 'nodejs_gc_duration_seconds_count' && s.labels.thread === '1');
  assert.ok(workerGcs.reduce((a, s) => a + s.value, 0) > 0, 'the worker counted its GCs');
  assert.deepStrictEqual(memguardLines(r.stderr), []);
});

/** Runs a short app under memguard with `env`; returns its result and its memguard lines. */
async function runShort(t, env, body = 'setTimeout(() => console.log("app ok"), 300);') {
  const r = await runNode(['-r', MEMGUARD, '-e', body], { env: { MEMGUARD_DIR: tempDir(t), ...env }, timeoutMs: 30_000 });
  return { ...r, lines: memguardLines(r.stderr) };
}

test('bad MEMGUARD_METRICS values: one warning each, the app runs on', async (t) => {
  const cases = [
    ['lots', /MEMGUARD_METRICS="lots" is not off, on, a port .*; using the default off$/],
    ['70000', /MEMGUARD_METRICS="70000" is not off/],
    ['db.example.com:9464', /MEMGUARD_METRICS="db\.example\.com:9464" names a host other than localhost.*give an IP address; using the default off$/],
  ];
  for (const [value, re] of cases) {
    const r = await runShort(t, { MEMGUARD_METRICS: value });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual(r.stdout, 'app ok\n');
    assert.strictEqual(r.lines.length, 1, r.stderr);
    assert.match(r.lines[0], /^memguard: warning: /);
    assert.match(r.lines[0], re);
  }
});

test('a port without a host stays on loopback, with one warning saying so', async (t) => {
  const port = await freePort();
  const body = `fetch('http://127.0.0.1:${port}/metrics').then((r) => r.text()).then((t) => console.log(t.includes('nodejs_gc_duration_seconds_count') ? 'served on loopback' : t));`;
  const r = await runShort(t, { MEMGUARD_METRICS: `:${port}` }, body);
  assert.strictEqual(r.code, 0, r.stderr);
  assert.strictEqual(r.stdout, 'served on loopback\n');
  assert.strictEqual(r.lines.length, 1, r.stderr);
  assert.match(r.lines[0], new RegExp(`^memguard: warning: MEMGUARD_METRICS=":${port}" names no host; serving on 127\\.0\\.0\\.1:${port} only`));
});

test('a port in use: one warning, the app runs on with its exit code', async (t) => {
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const { port } = server.address();
  const r = await runShort(t, { MEMGUARD_METRICS: String(port) }, 'setTimeout(() => { console.log("app ok"); process.exitCode = 3; }, 300);');
  assert.strictEqual(r.code, 3);
  assert.strictEqual(r.stdout, 'app ok\n');
  assert.strictEqual(r.lines.length, 1, r.stderr);
  assert.match(r.lines[0], new RegExp(`^memguard: warning: cannot serve metrics on 127\\.0\\.0\\.1:${port} \\(MEMGUARD_METRICS\\): .*in use.*; continuing without the metrics endpoint$`, 'i'));
});

test('garbage requests and many slow connections: the app and the scrapes are unaffected', async (t) => {
  const port = await freePort();
  const app = startApp(t, { MEMGUARD_DIR: tempDir(t), MEMGUARD_METRICS: String(port) });
  await app.next(/^ready true$/);
  const endpoint = `http://127.0.0.1:${port}/metrics`;
  app.send('ticks');
  const ticksBefore = Number((await app.next(/^ticks (\d+)$/))[1]);

  // 300 connections that send half a request and then nothing.
  const slow = [];
  for (let i = 0; i < 300; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.write('GET /metr');
    slow.push(s);
  }
  t.after(() => slow.forEach((s) => s.destroy()));
  const raw = async (bytes) =>
    new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let out = '';
      s.on('data', (d) => (out += d));
      s.on('error', () => resolve(out));
      s.on('close', () => resolve(out));
      s.end(bytes);
      setTimeout(() => s.destroy(), 8000);
    });
  const garbage = [
    Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]), // a TLS hello
    'GET /metrics\r\n\r\n', // HTTP/0.9
    'BREW /metrics HTTP/1.1\r\n\r\n',
    'GET /../../etc/passwd HTTP/1.1\r\n\r\n',
    `GET /metrics HTTP/1.1\r\nX: ${'a'.repeat(20000)}\r\n\r\n`,
    '\r\n\r\n',
    Buffer.alloc(100_000, 0xff),
  ];
  const answers = await Promise.all(garbage.map(raw));
  assert.match(answers[0], /^(HTTP\/1\.1 400|)/);
  assert.match(answers[1], /^HTTP\/1\.1 400 /);
  assert.match(answers[2], /^HTTP\/1\.1 405 /);
  assert.match(answers[3], /^HTTP\/1\.1 404 /);
  assert.match(answers[4], /^HTTP\/1\.1 431 /);
  assert.match(answers[5], /^HTTP\/1\.1 400 /);

  // A real scrape still gets through, quickly.
  for (let i = 0; i < 5; i++) {
    const r = await get(endpoint);
    assert.strictEqual(r.status, 200);
    assert.ok(r.ms < 2000, `scrape took ${r.ms} ms`);
  }
  assert.strictEqual((await get(`http://127.0.0.1:${port}/`)).status, 404);

  // The app's event loop ran on all along.
  await sleep(500);
  app.send('ticks');
  const ticksAfter = Number((await app.next(/^ticks (\d+)$/))[1]);
  assert.ok(ticksAfter > ticksBefore, `${ticksBefore} → ${ticksAfter}`);
  app.send('exit');
  const { code } = await app.exited;
  assert.strictEqual(code, 0);
  assert.deepStrictEqual(memguardLines(app.stderr), [], 'no warnings: bad clients are not the app\'s problem');
});
