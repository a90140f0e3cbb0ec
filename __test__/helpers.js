'use strict';
// Shared helpers for the tests: spawn real Node children, find bundles,
// read heap snapshots. No mocks: every test runs a real process.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');

const ROOT = path.resolve(__dirname, '..');
const MEMGUARD = path.join(ROOT, 'index.js');
const fixture = (name) => path.join(__dirname, 'fixtures', name);

/** A fresh temp dir, removed when the test ends. */
function tempDir(t, prefix = 'memguard-test-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Environment for a child: the parent's minus any MEMGUARD* setting, plus `extra`. */
function childEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k !== 'MEMGUARD' && !k.startsWith('MEMGUARD_') && k !== 'NODE_OPTIONS') env[k] = v;
  }
  return { ...env, ...extra };
}

/** Runs `node ...args`; resolves with {code, signal, stdout, stderr}. */
function runNode(args, options) {
  return run(process.execPath, args, options);
}

/** Runs `command ...args` with childEnv(env); resolves with {code, signal, stdout, stderr} (SIGKILL past `timeoutMs`). */
function run(command, args, { env = {}, cwd, timeoutMs = 120_000 } = {}) {
  return collect(() => spawn(command, args, { env: childEnv(env), cwd, stdio: ['ignore', 'pipe', 'pipe'] }), timeoutMs);
}

/** Starts a child and collects its output; resolves with {code, signal, stdout, stderr} (SIGKILL past `timeoutMs`). */
function collect(start, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = start();
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Bundle directories under `root` (none if root does not exist). */
function bundles(root) {
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .filter((n) => /^\d{8}-\d{6}-\d+(-t\d+)?$/.test(n))
    .map((n) => path.join(root, n));
}

/** Every file under `dir`, recursively, as paths relative to it. */
function filesUnder(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true }).filter((f) => fs.statSync(path.join(dir, f)).isFile());
}

/** Heap snapshot files anywhere under `dir`. */
function snapshotsUnder(dir) {
  return filesUnder(dir).filter((f) => /\.heapsnapshot(\.gz)?$/.test(f));
}

/** A bundle's timeline files, oldest first: timeline-<n>.ndjson.gz by n, then timeline.ndjson.gz. */
function timelineFiles(bundleDir) {
  const n = (f) => (f === 'timeline.ndjson.gz' ? Infinity : Number(/^timeline-(\d+)\.ndjson\.gz$/.exec(f)?.[1]));
  return fs.readdirSync(bundleDir).filter((f) => !Number.isNaN(n(f))).sort((a, b) => n(a) - n(b));
}

/** The records of one timeline file (all its gzip members). */
function readTimelineFile(file) {
  return zlib.gunzipSync(fs.readFileSync(file)).toString('utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

/** The records of a bundle's timeline, every segment in order. */
function readTimeline(bundleDir) {
  return timelineFiles(bundleDir).flatMap((f) => readTimelineFile(path.join(bundleDir, f)));
}

function readSummary(bundleDir) {
  return JSON.parse(fs.readFileSync(path.join(bundleDir, 'summary.json'), 'utf8'));
}

/** Gunzips and parses a `.heapsnapshot.gz`; throws if it is not a heap snapshot. */
function readSnapshot(file) {
  const snapshot = JSON.parse(zlib.gunzipSync(fs.readFileSync(file)).toString('utf8'));
  const meta = snapshot.snapshot && snapshot.snapshot.meta;
  if (!meta || !Array.isArray(snapshot.nodes) || !Array.isArray(snapshot.strings)) {
    throw new Error(`${file} is not a heap snapshot`);
  }
  if (snapshot.nodes.length !== snapshot.snapshot.node_count * meta.node_fields.length) {
    throw new Error(`${file}: node array does not match node_count`);
  }
  return snapshot;
}

/** Instance counts of `object` nodes by constructor name, as DevTools groups them. */
function countByClass(snapshot) {
  const meta = snapshot.snapshot.meta;
  const stride = meta.node_fields.length;
  const typeField = meta.node_fields.indexOf('type');
  const nameField = meta.node_fields.indexOf('name');
  const objectType = meta.node_types[0].indexOf('object');
  const counts = new Map();
  for (let i = 0; i < snapshot.nodes.length; i += stride) {
    if (snapshot.nodes[i + typeField] !== objectType) continue;
    const name = snapshot.strings[snapshot.nodes[i + nameField]];
    counts.set(name, (counts.get(name) || 0) + 1);
  }
  return counts;
}

// A real container limit: a memory cgroup (v1, writable here as root), made
// by the test and removed after it; a child is moved into it before node
// starts. Where that is not possible (not root, no cgroup v1 memory
// controller) the test is skipped with the reason.
const CGROUP_ROOT = '/sys/fs/cgroup/memory';

/** A memory cgroup with `limitBytes` (none: no limit); `{dir}` or `{skip: reason}`. */
function makeCgroup(t, limitBytes) {
  const dir = path.join(CGROUP_ROOT, `memguard-test-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`);
  try {
    fs.mkdirSync(dir);
    if (limitBytes) fs.writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(limitBytes));
  } catch (err) {
    return { skip: `cannot make a memory cgroup under ${CGROUP_ROOT} (${err.code}); needs root and cgroup v1` };
  }
  t.after(() => fs.rmdirSync(dir));
  return { dir };
}

/** Runs `node ...args` moved into `cgroupDir` before node starts; resolves like `runNode`. */
function runNodeInCgroup(cgroupDir, args, env, { timeoutMs = 120_000 } = {}) {
  const script = `echo $$ > ${cgroupDir}/cgroup.procs && exec "$0" "$@"`;
  const opts = { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] };
  return collect(() => spawn('sh', ['-c', script, process.execPath, ...args], opts), timeoutMs);
}

/** A TCP port nobody listens on right now (127.0.0.1). */
async function freePort() {
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

/** The `memguard:` lines a child printed on stderr. */
function memguardLines(stderr) {
  return stderr.split('\n').filter((l) => l.startsWith('memguard:'));
}

module.exports = {
  run,
  timelineFiles,
  readTimelineFile,
  ROOT,
  MEMGUARD,
  fixture,
  tempDir,
  runNode,
  childEnv,
  bundles,
  filesUnder,
  snapshotsUnder,
  readTimeline,
  readSummary,
  readSnapshot,
  countByClass,
  memguardLines,
  freePort,
  makeCgroup,
  runNodeInCgroup,
};
