'use strict';
// `memguard report` on a real crash bundle: the JSON, the terminal text, and
// the --html page rendered in headless Chromium (charts drawn, no console
// error, no request leaving the page), plus one-line errors for bad input.
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { after, test } = require('node:test');
const h = require('./helpers');

const CHROMIUM = '/usr/bin/chromium';
const CLI = path.join(h.ROOT, 'bin', 'memguard.js');
const SCREENSHOT = path.join(os.tmpdir(), 'memguard-report-html.png');

/** `node bin/memguard.js report …args` → {code, signal, stdout, stderr}. */
function report(...args) {
  return h.runNode([CLI, 'report', ...args], { timeoutMs: 120_000 });
}

/** One crash bundle with two snapshots (a heap threshold, then near-limit), made once. */
let bundlePromise;
after(async () => {
  if (bundlePromise) fs.rmSync((await bundlePromise).dir, { recursive: true, force: true });
});
function crashBundle() {
  bundlePromise ??= (async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memguard-report-test-'));
    const r = await h.runNode(['--max-old-space-size=48', '-r', h.MEMGUARD, h.fixture('report-leak.js')], {
      // The threshold is a fraction of V8's whole heap limit (~100 MB here): 0.3 fires well before the end.
      // A history period a second: the lifetime chart gets a few points.
      env: { MEMGUARD_DIR: dir, MEMGUARD_INTERVAL_MS: '100', MEMGUARD_HEAP_THRESHOLDS: '0.3', MEMGUARD_HISTORY_INTERVAL: '1' },
    });
    assert.equal(r.signal, 'SIGABRT', r.stderr.slice(-2000));
    const [bundle] = h.bundles(dir);
    assert.ok(bundle, `no bundle: ${r.stderr.slice(-1000)}`);
    return { dir, bundle };
  })();
  return bundlePromise;
}

test('memguard report reads a crash bundle: JSON, terminal text and an HTML page with charts', async (t) => {
  const { bundle } = await crashBundle();
  assert.deepEqual(
    h.snapshotsUnder(bundle).sort(),
    ['heap-1.heapsnapshot.gz', 'heap-2.heapsnapshot.gz'],
    'the threshold and the near-limit capture each wrote a snapshot',
  );

  // --json: the documented schema.
  const json = await report(bundle, '--json', '--top', '12');
  assert.equal(json.code, 0, json.stderr);
  const r = JSON.parse(json.stdout);
  assert.equal(r.schema, 'memguard-report/1');
  assert.equal(r.input, bundle);
  assert.deepEqual(r.bundle.captures.map((c) => c.trigger), ['heap-threshold', 'near-heap-limit']);
  assert.match(r.snapshot.file, /heap-2\.heapsnapshot\.gz$/);
  assert.ok(r.snapshot.classes.length > 0 && r.snapshot.classes.length <= 12);
  const sessions = r.snapshot.classes.find((c) => c.name === 'ReportSession');
  assert.ok(sessions, `ReportSession among ${r.snapshot.classes.map((c) => c.name)}`);
  assert.ok(sessions.count > 10_000, `count ${sessions.count}`);
  assert.ok(sessions.retainedSize >= sessions.shallowSize && sessions.shallowSize > 0);
  // The classes on top (the Map, the closure and timer holding it) all lead to the cache.
  assert.ok(r.snapshot.retainerPaths.length > 0);
  assert.ok(
    r.snapshot.retainerPaths.some((p) => p.steps.some((s) => s.edge === 'sessionCache' && s.node === 'Map')),
    JSON.stringify(r.snapshot.retainerPaths.map((p) => p.steps.map((s) => `${s.node}:${s.edge}`))),
  );
  assert.match(r.diff.before, /heap-1\.heapsnapshot\.gz$/);
  assert.match(r.diff.after, /heap-2\.heapsnapshot\.gz$/);
  const grown = r.diff.classes.find((c) => c.name === 'ReportSession');
  assert.ok(grown && grown.countAfter > grown.countBefore && grown.retainedDelta > 0, JSON.stringify(grown));

  // The lifetime history: a point per period with a mark-compact, rising.
  assert.ok(r.lifetime.curve.length >= 2, JSON.stringify(r.lifetime));
  assert.ok(r.lifetime.curve.at(-1)[1] > r.lifetime.curve[0][1], JSON.stringify(r.lifetime.curve));

  // The verdict, with two snapshots: the class, its Map, and what it gained between them.
  const v = r.verdict;
  assert.equal(v.status, 'leak-suspect', JSON.stringify(v, null, 1));
  const suspect = v.suspects[0];
  assert.equal(suspect.class, 'ReportSession');
  assert.deepEqual([suspect.holder.class, suspect.holder.edge], ['Map', 'sessionCache']);
  assert.ok(suspect.growth.objectsAdded > 1000 && suspect.growth.bytesAdded > 0, JSON.stringify(suspect.growth));
  assert.ok(suspect.growth.holderBefore > 0 && suspect.growth.holderBefore < suspect.holder.retainedSize, JSON.stringify(suspect));
  assert.match(suspect.evidence, /snapshots: \+[\d,]+ new ReportSession .* still held, holder .* → /);
  assert.equal(suspect.allocationSite.site.function, 'tick');

  const tl = r.timeline;
  assert.equal(tl.truncated, false);
  assert.ok(tl.samples.length >= 5, `${tl.samples.length} samples`);
  assert.ok(tl.samples.every((s) => s.heapUsed > 0 && s.heapLimit > 0 && s.spaces.length > 0));
  assert.ok(tl.samples.some((s) => s.spaces.some(([name, used]) => name === 'old_space' && used > 0)));
  assert.ok(tl.gc.some((g) => g.kind === 'mark-compact' && g.count > 0));
  assert.ok(tl.pauses.length > 0 && tl.pauses.length <= 10_000);
  assert.ok(tl.heapUsedPeak > tl.heapUsedStart);
  assert.ok(tl.markers.some((m) => m.name === 'snapshot-start' && m.detail.seq === 1));
  assert.equal(tl.leak.verdict, 'growing', JSON.stringify(tl.leak));
  assert.ok(r.allocations.sites.length > 0 && r.allocations.totalBytes > 0);
  assert.ok(r.allocations.sites.some((s) => s.url.endsWith('report-leak.js')), JSON.stringify(r.allocations.sites));

  // Default: the terminal summary.
  const text = await report(bundle);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout.split('\n')[2], /^Verdict: Leak suspect: [\d,]+ ReportSession \(.*\) held by Map 'sessionCache', allocated by tick \(report-leak\.js:14\)/);
  assert.match(text.stdout, /^ {5}growth {5}\+[\d,]+ objects \(\+[\d.]+ [kM]B\) between snapshots; heap \+[\d.]+ [kM]B\/min$/m);
  assert.match(text.stdout, /Top classes by retained size:/);
  assert.match(text.stdout, /^\s+ReportSession\s+[\d,]+\s/m);
  assert.match(text.stdout, /\(root\)|GC roots/);
  assert.match(text.stdout, /Map 'sessionCache'/);
  assert.match(text.stdout, /Growth from heap-1\.heapsnapshot\.gz to heap-2\.heapsnapshot\.gz/);
  assert.match(text.stdout, /Timeline: heap used .* at start, .* at peak/);
  assert.match(text.stdout, /Leak verdict: growing/);
  assert.match(text.stdout, /Where the live memory was allocated/);

  // --html: one self-contained page.
  const out = path.join(bundle, 'report.html');
  const html = await report(bundle, '--html', out);
  assert.equal(html.code, 0, html.stderr);
  assert.match(html.stderr, /memguard report: wrote .*report\.html/);
  const page = fs.readFileSync(out, 'utf8');
  assert.match(page, /Content-Security-Policy/);
  assert.doesNotMatch(page, /<script[^>]+src=|<link[^>]+href=/);
  await inChromium(t, out);
});

/** Loads the page in headless Chromium, checks the charts, saves a screenshot. */
async function inChromium(t, file) {
  if (!fs.existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} is missing: the HTML page was written but not rendered (apt-get install -y chromium)`);
    return;
  }
  const puppeteer = require('puppeteer-core');
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'memguard-chromium-'));
  t.after(() => fs.rmSync(userDataDir, { recursive: true, force: true }));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warn') problems.push(`console.${m.type()}: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    await page.setRequestInterception(true);
    page.on('request', (req) => {
      if (req.url() === `file://${file}`) return req.continue();
      problems.push(`request: ${req.url()}`);
      return req.abort();
    });
    await page.setViewport({ width: 1400, height: 1000 });
    await page.goto(`file://${file}`, { waitUntil: 'load' });
    await page.waitForFunction(() => document.body.dataset.rendered === 'true', { timeout: 10_000 });
    const state = await page.evaluate(() => ({
      charts: Object.keys(window.memguardCharts),
      instances: Object.keys(Chart.instances).length,
      canvases: [...document.querySelectorAll('canvas')].map((c) => ({ id: c.id, w: c.width, h: c.height })),
      heapDatasets: window.memguardCharts.heap.data.datasets.map((d) => d.label),
      classLabels: window.memguardCharts.classes.data.labels,
      paths: [...document.querySelectorAll('#paths li')].map((li) => li.textContent),
      diffRows: document.querySelectorAll('#diff tbody tr').length,
      verdict: document.getElementById('verdict').textContent,
      firstSection: document.querySelector('main section').id,
    }));
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`# screenshot: ${SCREENSHOT}`);
    assert.deepEqual(problems, []);
    assert.deepEqual(state.charts.sort(), ['classes', 'heap', 'lifetime', 'pauses']);
    assert.equal(state.instances, 4);
    for (const id of ['heap-chart', 'pause-chart', 'classes-chart', 'lifetime-chart']) {
      const c = state.canvases.find((x) => x.id === id);
      assert.ok(c && c.w > 100 && c.h > 100, `${id}: ${JSON.stringify(c)}`);
    }
    assert.ok(state.heapDatasets.includes('old_space'), state.heapDatasets.join());
    assert.ok(state.classLabels.includes('ReportSession'), state.classLabels.join());
    assert.ok(state.paths.some((p) => p.includes("Map 'sessionCache'")), state.paths.join('\n'));
    assert.ok(state.diffRows > 0);
    assert.equal(state.firstSection, 'verdict-section');
    assert.match(state.verdict, /Leak suspect: [\d,]+ ReportSession .* held by Map 'sessionCache'/);
  } finally {
    await browser.close();
  }
}

test('memguard report: bad input is one line and exit code 2, never a panic', async (t) => {
  const empty = h.tempDir(t);
  const cases = [
    [[path.join(empty, 'missing')], /No such file or directory/],
    [[empty], /no memguard bundle here/],
    [[path.join(__filename)], /not a bundle directory or a \.heapsnapshot/],
    [[empty, '--top', 'lots'], /invalid value 'lots'/],
    [[], /required arguments were not provided/],
  ];
  const { bundle } = await crashBundle();
  // A snapshot cut off mid-file, and one that is not JSON at all.
  const whole = fs.readFileSync(path.join(bundle, 'heap-1.heapsnapshot.gz'));
  const cut = path.join(empty, 'cut.heapsnapshot.gz');
  fs.writeFileSync(cut, whole.subarray(0, whole.length >> 1));
  const junk = path.join(empty, 'junk.heapsnapshot');
  fs.writeFileSync(junk, '{"snapshot": nope');
  cases.push([[cut], /cut\.heapsnapshot\.gz/], [[junk], /junk\.heapsnapshot/]);
  for (const [args, message] of cases) {
    const r = await report(...args);
    const lines = r.stderr.trim().split('\n');
    assert.equal(r.code, 2, `${args}: ${r.stderr}`);
    assert.equal(lines.length, 1, `${args}: ${r.stderr}`);
    assert.match(lines[0], /^memguard report: error: /);
    assert.match(lines[0], message);
    assert.doesNotMatch(r.stderr, /panicked|RUST_BACKTRACE/);
    assert.equal(r.stdout, '');
  }
});
