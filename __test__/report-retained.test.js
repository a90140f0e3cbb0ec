'use strict';
// The snapshot engine of `memguard report` against DevTools' own code
// (heap-snapshot-toolkit): real Node children build heaps with WeakMaps,
// closures, Maps/Sets, arrays, class instances (one snapshot taken inside a
// worker thread), and every node's retained size plus every class aggregate
// (count, self, maxRet) must be identical. Also: .gz gives the same output,
// and bad files end in one error line with exit code 2.
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');
const { test, before, after } = require('node:test');
const h = require('./helpers');

const BIN = path.join(h.ROOT, 'build', `memguard-report-${process.platform}-${process.arch}`);

/** Runs the report binary; resolves {code, stdout, stderr}. */
function run(args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    let stderr = '';
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString(), stderr }));
  });
}

let dir;
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memguard-report-retained-'));
  const r = await h.runNode([h.fixture('report-heaps.js'), dir]);
  assert.equal(r.code, 0, r.stderr);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

async function devtools(file) {
  const { parse } = await import('heap-snapshot-toolkit');
  return parse(fs.createReadStream(file, 'utf-8'));
}

/** Our `id retained` lines and class aggregates for `file`. */
async function ours(file) {
  const classesOut = `${file}.classes.json`;
  const r = await run(['retained', file, '--classes', classesOut]);
  assert.equal(r.code, 0, r.stderr);
  return { lines: r.stdout.trimEnd().split('\n'), aggregates: JSON.parse(fs.readFileSync(classesOut, 'utf8')) };
}

for (const name of ['main', 'grown', 'worker']) {
  test(`every node's retained size and every class aggregate match DevTools (${name} snapshot)`, async () => {
    const file = path.join(dir, `${name}.heapsnapshot`);
    const [snapshot, mine] = await Promise.all([devtools(file), ours(file)]);
    const n = snapshot.nodeCount;
    assert.equal(mine.lines.length, n, 'one line per node');
    const mismatches = [];
    for (let i = 0; i < n; i++) {
      const id = snapshot.nodes.getValue(i * snapshot.nodeFieldCount + snapshot.nodeIdOffset);
      const want = `${id} ${snapshot.retainedSizes[i]}`;
      if (mine.lines[i] !== want) {
        const node = snapshot.createNode(i * snapshot.nodeFieldCount);
        mismatches.push(`node ${i} (${node.type()} ${node.name().slice(0, 40)}): DevTools "${want}", ours "${mine.lines[i]}"`);
      }
    }
    assert.deepEqual(mismatches.slice(0, 20), [], `${mismatches.length} of ${n} nodes differ`);

    const theirs = snapshot.aggregatesWithFilter({});
    const expected = {};
    for (const [key, a] of Object.entries(theirs)) expected[key] = { count: a.count, self: a.self, maxRet: a.maxRet, name: a.name };
    assert.deepEqual(mine.aggregates, expected);
    // The shapes the fixture builds are there, named as DevTools names them.
    const names = new Set(Object.values(expected).map((a) => a.name));
    for (const want of ['Session', 'Node', 'Map', 'Set', 'WeakMap', 'Function', '(string)', '(array)']) {
      assert.ok(names.has(want), `class ${want} present`);
    }
  });
}

test('a gzipped snapshot (two gzip members) reads the same as the plain one', async () => {
  const file = path.join(dir, 'main.heapsnapshot');
  const gz = path.join(dir, 'main.heapsnapshot.gz');
  const text = fs.readFileSync(file);
  const half = Math.floor(text.length / 2);
  fs.writeFileSync(gz, Buffer.concat([zlib.gzipSync(text.subarray(0, half)), zlib.gzipSync(text.subarray(half))]));
  const [plain, zipped] = await Promise.all([run(['retained', file]), run(['retained', gz])]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(zipped.code, 0, zipped.stderr);
  assert.ok(plain.stdout.length > 1000);
  assert.equal(zipped.stdout, plain.stdout);
});

test('a truncated, corrupt or missing snapshot is one error line and exit code 2', async () => {
  const file = path.join(dir, 'main.heapsnapshot');
  const text = fs.readFileSync(file);
  const cases = [
    ['cut.heapsnapshot', text.subarray(0, Math.floor(text.length * 0.7)), /truncated/],
    ['cut-in-strings.heapsnapshot', text.subarray(0, text.length - 100), /truncated/],
    ['cut.heapsnapshot.gz', zlib.gzipSync(text).subarray(0, 200_000), /truncated/],
    ['garbage.heapsnapshot', Buffer.from('{"snapshot":{"meta":{}},"nodes":[1,2,x]}'), /not a heap snapshot/],
    ['html.heapsnapshot', Buffer.from('<html>not json</html>'), /not a heap snapshot/],
  ];
  for (const [name, bytes, message] of cases) {
    const p = path.join(dir, name);
    fs.writeFileSync(p, bytes);
    const r = await run(['retained', p]);
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, message, name);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${name}: one line: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /panicked/);
  }
  const missing = await run(['retained', path.join(dir, 'nope.heapsnapshot')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /No such file/);
});
