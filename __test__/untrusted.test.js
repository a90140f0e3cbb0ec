'use strict';
// Bundles and shared directories are untrusted (issue #19): strings from the
// heap, argv, paths and a tampered timeline come out of `memguard report` and
// the `memguard:` log lines escaped, never as raw control characters; a
// fallback directory another user controls is not written into; and a bundle
// directory swapped for a symlink after creation does not redirect writes.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');
const { test } = require('node:test');
const h = require('./helpers');

const CLI = path.join(h.ROOT, 'bin', 'memguard.js');
const EVIL = '\x1b]0;PWNED\x07\x1b[2J\x1b[31mEVIL\u009b\r\t';
const ESCAPED = '\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mEVIL\\u{9b}\\x0d\\x09';
const isRoot = process.getuid && process.getuid() === 0;

/** Raw C0 (but the newline ending a line), DEL and C1 characters in `text`. */
function rawControls(text) {
  return [...text].filter((c) => c !== '\n' && /[\u0000-\u001f\u007f-\u009f]/.test(c));
}

// Objects whose class name (Symbol.toStringTag, which V8 names plain objects
// by) and property names carry EVIL, held from a global so retainer paths
// name them, allocated by a script whose URL carries EVIL (a function name
// cannot: it is an identifier).
const CRAFTED_APP = `
const memguard = globalThis[Symbol.for('memguard.instance')];
const EVIL = ${JSON.stringify(EVIL)};
const make = require('node:vm').runInThisContext(\`(function make(n, EVIL) {
  const out = [];
  for (let i = 0; i < n; i++) out.push({ [Symbol.toStringTag]: EVIL, i, payload: 'x'.repeat(64) + i });
  return out;
})\`, { filename: '/srv/' + EVIL + '.js' });
globalThis.held = { [EVIL]: make(20000, EVIL) };
// JSON.parse makes any string a property name.
globalThis.parsed = Array.from({ length: 5000 }, (_, i) => JSON.parse(JSON.stringify({ [EVIL]: i, b: [i] })));
memguard.snapshot(EVIL);
`;

test('a crafted heap, argv, dir name and timeline reach the terminal escaped, never raw', async (t) => {
  const dir = path.join(h.tempDir(t), `bundles${EVIL}end`);
  const r = await h.runNode(['-r', h.MEMGUARD, '-e', CRAFTED_APP, EVIL], {
    env: { MEMGUARD_DIR: dir, MEMGUARD_ALLOC_SAMPLING: '4KiB' },
  });
  assert.equal(r.code, 0, r.stderr);
  // The log line naming the snapshot quotes MEMGUARD_DIR: escaped.
  assert.deepEqual(rawControls(r.stderr), [], r.stderr);
  assert.ok(r.stderr.includes(`bundles${ESCAPED}end`), r.stderr);
  const [bundle] = h.bundles(dir);
  assert.ok(bundle, r.stderr);
  // A bundle is untrusted: add a timeline member with a marker someone crafted.
  const marker = { type: 'marker', t: 50, name: EVIL, [EVIL]: EVIL, seq: 1 };
  fs.appendFileSync(path.join(bundle, 'timeline.ndjson.gz'), zlib.gzipSync(`${JSON.stringify(marker)}\n`));

  const out = await h.runNode([CLI, 'report', bundle, '--top', '20']);
  assert.equal(out.code, 0, out.stderr);
  assert.deepEqual(rawControls(out.stdout), [], out.stdout);
  assert.deepEqual(rawControls(out.stderr), [], out.stderr);
  const lines = out.stdout.split('\n');
  const lineWith = (re) => lines.find((l) => re.test(l)) || '';
  for (const [where, re] of [
    ['the input path', /^memguard report: /],
    ['argv', /^Process: /],
    ['the class table', /^ {2}\\x1b\]0;PWNED.* 20,000 /],
    ['a retainer path (class and property name)', /'\\x1b\]0;PWNED.* → \\x1b\]0;PWNED/],
    ['a marker', /^ +[\d.]+ s {2}\\x1b\]0;PWNED/],
    ['an allocation site (script URL)', /^ {2}make +\\x1b\]0;PWNED.*\.js:\d+ /],
  ]) {
    assert.ok(lineWith(re).includes(ESCAPED.slice(0, 20)), `${where}: no escaped line in\n${out.stdout}`);
  }
  // --json stays exact.
  const json = JSON.parse((await h.runNode([CLI, 'report', bundle, '--json'])).stdout);
  assert.equal(json.bundle.argv.at(-1), EVIL);
  assert.ok(json.snapshot.classes.some((c) => c.name === EVIL));
});

/**
 * MEMGUARD_DIR unusable (under a file), TMPDIR with `memguard-<uid>` made by
 * `prepare`; the main thread and a worker each take a snapshot.
 */
async function withFallback(t, prepare) {
  const dir = h.tempDir(t);
  fs.writeFileSync(path.join(dir, 'file'), '');
  const tmp = path.join(dir, 'tmp');
  fs.mkdirSync(tmp);
  const fallback = path.join(tmp, `memguard-${process.getuid()}`);
  prepare(fallback);
  const script = `
    const { Worker } = require('node:worker_threads');
    const memguard = globalThis[Symbol.for('memguard.instance')];
    memguard.snapshot('main');
    const w = new Worker("globalThis[Symbol.for('memguard.instance')].snapshot('worker')", { eval: true });
    w.on('exit', (code) => console.log(JSON.stringify({ code, bundleDir: memguard.bundleDir })));
  `;
  const r = await h.runNode(['-r', h.MEMGUARD, '-e', script], { env: { MEMGUARD_DIR: path.join(dir, 'file', 'x'), TMPDIR: tmp } });
  assert.equal(r.code, 0, r.stderr);
  const warnings = r.stderr.split('\n').filter((l) => l.startsWith('memguard: warning:'));
  assert.equal(warnings.length, 1, r.stderr);
  // Nothing written into the directory someone else controls.
  assert.deepEqual(h.filesUnder(fallback), [], 'nothing in the distrusted fallback');
  // Both threads wrote into one new private directory beside it.
  const privates = fs.readdirSync(tmp).filter((n) => n.startsWith(`memguard-${process.getuid()}-`));
  assert.equal(privates.length, 1, fs.readdirSync(tmp).join(', '));
  const root = path.join(tmp, privates[0]);
  assert.equal(fs.statSync(root).mode & 0o7777, 0o700);
  assert.equal(fs.statSync(root).uid, process.getuid());
  const bundles = h.bundles(root);
  assert.equal(bundles.length, 2, bundles.join(', '));
  for (const b of bundles) assert.equal(h.snapshotsUnder(b).length, 1, b);
  assert.equal(JSON.parse(r.stdout).bundleDir, bundles.find((b) => !/-t\d+$/.test(b)));
  assert.ok(warnings[0].includes(`new private directory ${root} instead`), warnings[0]);
  return warnings[0];
}

test('a fallback directory owned by another user is not used: a private one instead, one warning', { skip: !isRoot && 'needs root to chown to nobody' }, async (t) => {
  const warning = await withFallback(t, (fallback) => {
    fs.mkdirSync(fallback, { mode: 0o755 });
    fs.chownSync(fallback, 65534, 65534);
  });
  assert.match(warning, /is owned by uid 65534, not by this process/);
});

test('a world-writable fallback without the sticky bit is not used: a private one instead, one warning', async (t) => {
  const warning = await withFallback(t, (fallback) => {
    fs.mkdirSync(fallback);
    fs.chmodSync(fallback, 0o777);
  });
  assert.match(warning, /is writable by other users \(mode 777\) without the sticky bit/);
});

test('a MEMGUARD_DIR other users may write to is used, with one warning', async (t) => {
  const dir = path.join(h.tempDir(t), 'shared');
  fs.mkdirSync(dir);
  fs.chmodSync(dir, 0o777);
  const r = await h.runNode(['-r', h.MEMGUARD, h.fixture('app.js')], { env: { MEMGUARD_DIR: dir, APP_SNAPSHOT: 'x' } });
  assert.equal(r.code, 0, r.stderr);
  const warnings = r.stderr.split('\n').filter((l) => l.startsWith('memguard: warning:'));
  assert.equal(warnings.length, 1, r.stderr);
  assert.match(warnings[0], /writable by other users .* writing bundles there anyway/);
  const [bundle] = h.bundles(dir);
  assert.equal(fs.statSync(bundle).mode & 0o777, 0o700);
  assert.equal(h.snapshotsUnder(bundle).length, 1);
});

test('a bundle directory swapped for a symlink after creation does not redirect the next write', async (t) => {
  const dir = h.tempDir(t);
  const root = path.join(dir, 'bundles');
  const elsewhere = path.join(dir, 'elsewhere');
  fs.mkdirSync(elsewhere);
  // What the owner of a shared parent could do between two captures.
  const script = `
    const fs = require('node:fs');
    const memguard = globalThis[Symbol.for('memguard.instance')];
    memguard.snapshot('first');
    const dir = memguard.bundleDir;
    fs.renameSync(dir, dir + '-moved');
    fs.symlinkSync(process.env.ELSEWHERE, dir);
    let error = null;
    try { memguard.snapshot('second'); } catch (e) { error = e.message; }
    console.log(JSON.stringify({ dir, error }));
  `;
  const r = await h.runNode(['-r', h.MEMGUARD, '-e', script], { env: { MEMGUARD_DIR: root, ELSEWHERE: elsewhere } });
  assert.equal(r.code, 0, r.stderr);
  const { dir: bundle, error } = JSON.parse(r.stdout);
  assert.equal(error, null, r.stderr);
  assert.deepEqual(fs.readdirSync(elsewhere), [], 'nothing written through the symlink');
  assert.ok(fs.lstatSync(bundle).isSymbolicLink());
  // Every write (second snapshot, summary, timeline, the end) went to the directory memguard opened.
  const moved = `${bundle}-moved`;
  assert.deepEqual(h.snapshotsUnder(moved).sort(), ['heap-1.heapsnapshot.gz', 'heap-2.heapsnapshot.gz']);
  const summary = h.readSummary(moved);
  assert.deepEqual(summary.captures.map((c) => c.outcome), ['written', 'written']);
  assert.equal(summary.ended.reason, 'exit');
  assert.ok(h.readTimeline(moved).some((rec) => rec.type === 'marker' && rec.name === 'end'));
});
