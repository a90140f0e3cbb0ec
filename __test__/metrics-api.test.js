'use strict';
// memguard.metrics in the app's own exporters: prom-client (beside
// collectDefaultMetrics(), no clash), OpenTelemetry's SDK (semantic-
// convention names and units), snapshot(). Each runs in a real child.
const test = require('node:test');
const assert = require('node:assert');
const { ROOT, MEMGUARD, tempDir, runNode, memguardLines } = require('./helpers');

const CHURN = `function churn(ms) {
  const until = Date.now() + ms;
  let keep = [];
  while (Date.now() < until) { keep.push({ s: 'v' + keep.length }); if (keep.length > 50000) keep = []; }
}`;
const gcTotal = (snapshot) => Object.values(snapshot.gc).reduce((a, h) => a + h.count, 0);

/** Runs `body` (an async function's body) in a child under memguard; returns what it printed as JSON. */
async function inChild(t, body, env = {}) {
  const script = `const memguard = require(${JSON.stringify(MEMGUARD)});
${CHURN}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => { ${body} })().then((out) => console.log(JSON.stringify(out)), (e) => { console.error(e); process.exitCode = 1; });`;
  const r = await runNode(['-e', script], { cwd: ROOT, env: { MEMGUARD_DIR: tempDir(t), ...env } });
  assert.strictEqual(r.code, 0, r.stderr);
  assert.deepStrictEqual(memguardLines(r.stderr), []);
  return JSON.parse(r.stdout);
}

test('prom-client: memguard beside collectDefaultMetrics() in one registry, no clash, either order', async (t) => {
  const out = await inChild(
    t,
    `const client = require('prom-client');
    const both = new client.Registry();
    client.collectDefaultMetrics({ register: both });
    const addedBeside = memguard.metrics.register(both); // the default names stay prom-client's
    const again = memguard.metrics.register(both); // twice: nothing new, no error
    const alone = new client.Registry();
    const addedAlone = memguard.metrics.register(alone);
    const first = new client.Registry();
    memguard.metrics.register(first, { defaults: false });
    client.collectDefaultMetrics({ register: first }); // after memguard: no "already registered"
    const replaced = new client.Registry(); // memguard's GC histogram instead of prom-client's
    client.collectDefaultMetrics({ register: replaced });
    replaced.removeSingleMetric('nodejs_gc_duration_seconds');
    const addedReplacing = memguard.metrics.register(replaced);
    const om = new client.Registry(client.Registry.OPENMETRICS_CONTENT_TYPE);
    memguard.metrics.register(om);
    churn(1500);
    await sleep(1200); // a heap sample; prom-client's observer gets its GC entries
    const snapshot = memguard.metrics.snapshot();
    return { addedBeside, again, addedAlone, addedReplacing, replaced: await replaced.metrics(), both: await both.metrics(), alone: await alone.metrics(), first: await first.metrics(), om: await om.metrics(), snapshot };`,
  );
  const defaults = ['nodejs_gc_duration_seconds', 'nodejs_heap_size_used_bytes', 'process_resident_memory_bytes'];
  for (const name of defaults) {
    assert.ok(!out.addedBeside.includes(name), `${name} stays prom-client's`);
    assert.ok(out.addedAlone.includes(name), `${name} registered when alone`);
  }
  assert.ok(out.addedBeside.includes('memguard_heap_size_limit_bytes'));
  assert.deepStrictEqual(out.again, []);
  for (const text of [out.both, out.first]) {
    assert.strictEqual(text.match(/^# TYPE nodejs_gc_duration_seconds histogram$/gm).length, 1, 'one GC histogram');
    assert.match(text, /^memguard_heap_size_limit_bytes \d+$/m);
    assert.match(text, /^nodejs_eventloop_lag_seconds /m, "prom-client's own defaults are there");
  }
  // Alone, memguard's GC histogram (prom-client's name and buckets) counts every GC.
  const count = (kind) => Number(new RegExp(`^nodejs_gc_duration_seconds_count\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(out.alone)[1]);
  assert.strictEqual(count('minor'), out.snapshot.gc.minor.count);
  assert.ok(count('minor') > 10, out.alone);
  assert.match(out.alone, /^nodejs_gc_duration_seconds_bucket\{le="0\.001",kind="minor"\} \d+$/m);
  assert.match(out.alone, /^nodejs_gc_duration_seconds_bucket\{le="\+Inf",kind="major"\} \d+$/m);
  assert.match(out.alone, /^nodejs_heap_space_size_used_bytes\{space="old"\} \d+$/m);
  assert.match(out.alone, /^nodejs_heap_size_used_bytes \d+$/m);
  assert.match(out.alone, /^process_resident_memory_bytes \d+$/m);
  assert.match(out.alone, /^memguard_timeline_dropped_total 0$/m);
  assert.ok(out.addedReplacing.includes('nodejs_gc_duration_seconds'));
  assert.ok(!out.addedReplacing.includes('nodejs_heap_size_used_bytes'));
  assert.strictEqual(Number(/^nodejs_gc_duration_seconds_count\{kind="minor"\} (\d+)$/m.exec(out.replaced)[1]), out.snapshot.gc.minor.count);
  // OpenMetrics: counters named once with _total, and the # EOF.
  assert.match(out.om, /^# TYPE memguard_timeline_dropped counter$/m);
  assert.match(out.om, /^memguard_timeline_dropped_total 0$/m);
  assert.ok(out.om.endsWith('# EOF\n'));
  // prom-client's own observer keeps the first GC of each batch only.
  const promClientMinor = Number(/^nodejs_gc_duration_seconds_count\{kind="minor"\} (\d+)$/m.exec(out.both)[1]);
  t.diagnostic(`minor GCs: memguard ${out.snapshot.gc.minor.count}, prom-client ${promClientMinor}`);
  assert.ok(promClientMinor <= out.snapshot.gc.minor.count);
});

test('OpenTelemetry: an SDK MeterProvider collects memguard instruments with the V8 semantic-convention names and units', async (t) => {
  const out = await inChild(
    t,
    `const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics');
    class Reader extends MetricReader { async onForceFlush() {} async onShutdown() {} }
    const reader = new Reader();
    const provider = new MeterProvider({ readers: [reader] });
    memguard.metrics.otel(provider.getMeter('app'));
    const base = memguard.metrics.snapshot();
    const rounds = [];
    for (let i = 0; i < 2; i++) {
      churn(1000);
      await sleep(1200);
      const before = memguard.metrics.snapshot();
      const { resourceMetrics } = await reader.collect();
      const after = memguard.metrics.snapshot();
      const metrics = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).map((m) => ({
        name: m.descriptor.name, unit: m.descriptor.unit, type: m.descriptor.type, dataPointType: m.dataPointType,
        points: m.dataPoints.map((p) => ({ attributes: p.attributes, value: p.value })),
      }));
      rounds.push({ before, after, metrics });
    }
    return { base, rounds };`,
  );
  const total = (s) => Object.values(s.gc).reduce((a, h) => a + h.count, 0);
  for (const { before, after, metrics } of out.rounds) {
    const byName = Object.fromEntries(metrics.map((m) => [m.name, m]));
    assert.deepStrictEqual(Object.keys(byName).sort(), [
      'v8js.gc.duration',
      'v8js.memory.heap.space.available_size',
      'v8js.memory.heap.space.physical_size',
      'v8js.memory.heap.space.size',
      'v8js.memory.heap.used',
    ]);
    const gc = byName['v8js.gc.duration'];
    assert.strictEqual(gc.unit, 's');
    assert.strictEqual(gc.type, 'HISTOGRAM');
    const kinds = gc.points.map((p) => p.attributes['v8js.gc.type']);
    assert.ok(kinds.includes('minor'), kinds.join());
    for (const kind of kinds) assert.ok(['major', 'minor', 'incremental', 'weakcb'].includes(kind), kind);
    // Cumulative: every GC since otel() was called, each recorded once.
    const counted = gc.points.reduce((a, p) => a + p.value.count, 0);
    assert.ok(counted >= total(before) - total(out.base) && counted <= total(after) - total(out.base), `${counted} GCs in OpenTelemetry, memguard saw ${total(before) - total(out.base)}–${total(after) - total(out.base)}`);
    assert.ok(counted > 10);
    for (const name of ['v8js.memory.heap.used', 'v8js.memory.heap.space.size', 'v8js.memory.heap.space.available_size', 'v8js.memory.heap.space.physical_size']) {
      assert.strictEqual(byName[name].unit, 'By', name);
      assert.strictEqual(byName[name].type, 'OBSERVABLE_UP_DOWN_COUNTER', name);
      const old = byName[name].points.find((p) => p.attributes['v8js.heap.space.name'] === 'old_space');
      // Available may be 0: V8 reports none while the old space is full up to its current size.
      const min = name.endsWith('available_size') ? 0 : 1;
      assert.ok(old && old.value >= min, `${name} old_space: ${old && old.value}`);
    }
    const used = byName['v8js.memory.heap.used'].points.find((p) => p.attributes['v8js.heap.space.name'] === 'old_space').value;
    assert.strictEqual(used, before.spaces.old_space.used);
  }
});

test('snapshot() gives the current values; an inactive memguard gives null and registers nothing', async (t) => {
  const out = await inChild(t, `churn(500); await sleep(1100); return memguard.metrics.snapshot();`);
  assert.strictEqual(out.thread, 0);
  assert.ok(out.heap.used > 0 && out.heap.limit > out.heap.used);
  assert.ok(out.spaces.old_space.used > 0);
  assert.ok(gcTotal(out) > 0);
  assert.deepStrictEqual(out.gc.minor.buckets.map(([le]) => le), [0.001, 0.01, 0.1, 1, 2, 5]);
  assert.strictEqual(out.gc.minor.buckets[5][1], out.gc.minor.count);
  assert.ok(out.process.residentBytes > 0);
  assert.ok(typeof out.sampledAt === 'number' && Math.abs(out.sampledAt - Date.now()) < 60_000);
  assert.strictEqual(out.timelineDropped, 0);

  const off = await inChild(
    t,
    `const client = require('prom-client');
    const { MeterProvider } = require('@opentelemetry/sdk-metrics');
    return { snapshot: memguard.metrics.snapshot(), added: memguard.metrics.register(new client.Registry()), otel: memguard.metrics.otel(new MeterProvider().getMeter('x')) };`,
    { MEMGUARD: 'off' },
  );
  assert.deepStrictEqual(off, { snapshot: null, added: [], otel: null });
});
