#!/usr/bin/env node
// `npm run demo`: runs a leaking HTTP service under memguard with a small
// heap, lets it die of out-of-memory, then shows the bundle memguard wrote.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');

const root = path.resolve(__dirname, '..');
const bundlesRoot = path.join(root, 'demo-bundles');
fs.rmSync(bundlesRoot, { recursive: true, force: true });

const cmd = [process.execPath, '--max-old-space-size=48', '-r', root, path.join(__dirname, 'leaky-server.js')];
console.log(`$ MEMGUARD_DIR=${path.relative(process.cwd(), bundlesRoot) || '.'} node ${cmd.slice(1).map((a) => path.relative(process.cwd(), a) || a).join(' ')}\n`);
const run = spawnSync(cmd[0], cmd.slice(1), {
  env: { ...process.env, MEMGUARD_DIR: bundlesRoot },
  stdio: ['ignore', 'inherit', 'pipe'],
  encoding: 'utf8',
  timeout: 300_000,
});
// The service's own crash report is long; show memguard's lines and V8's verdict.
for (const line of run.stderr.split('\n')) {
  if (line.startsWith('memguard:') || line.includes('FATAL ERROR')) console.log(line);
}
console.log(`\nThe service died as it would have without memguard: ${run.signal ? `signal ${run.signal}` : `exit code ${run.status}`}.\n`);

const bundles = fs.existsSync(bundlesRoot) ? fs.readdirSync(bundlesRoot).map((b) => path.join(bundlesRoot, b)) : [];
if (bundles.length === 0) {
  console.error('demo: no bundle was written — something is wrong');
  process.exit(1);
}
const mb = (n) => (n < 1e5 ? `${(n / 1e3).toFixed(1)} kB` : `${(n / 1e6).toFixed(1)} MB`);
for (const bundle of bundles) {
  console.log(`Bundle: ${path.relative(process.cwd(), bundle)}/`);
  for (const f of fs.readdirSync(bundle)) console.log(`  ${f.padEnd(28)} ${mb(fs.statSync(path.join(bundle, f)).size)}`);
  const summary = JSON.parse(fs.readFileSync(path.join(bundle, 'summary.json'), 'utf8'));
  if (summary.timeline) {
    const d = summary.timeline.digest;
    const gcs = Object.entries(d.gc).map(([kind, g]) => `${g.count} ${kind} (${g.totalPauseMs.toFixed(0)} ms)`);
    console.log(`\nTimeline: heap used ${mb(d.heapUsedStart)} at start, ${mb(d.heapUsedPeak)} at peak; GCs: ${gcs.join(', ')}`);
  }
  for (const c of summary.captures) {
    console.log(`\nCapture ${c.seq}: trigger ${c.trigger} at ${c.time}, heap ${mb(c.heap.usedHeapSize)} used of ${mb(c.heap.heapSizeLimit)} limit, ${c.outcome}`);
    for (const file of c.files) {
      console.log(`  ${file.name}: ${mb(file.bytes)} on disk (${mb(file.uncompressedBytes)} uncompressed, ${(file.millis / 1000).toFixed(1)} s)`);
      if (file.name.endsWith('.heapsnapshot.gz')) topClasses(path.join(bundle, file.name));
    }
    if (c.topAllocationSites) {
      console.log('  Where the live memory was allocated (sampling heap profile):');
      for (const site of c.topAllocationSites.slice(0, 3)) {
        console.log(`    ${site.functionName.padEnd(24)} ${path.basename(site.url)}:${site.line} ${mb(site.bytes).padStart(10)}`);
      }
    }
    if (c.stack && c.stack.length) {
      console.log(`  JS stack when memory ran out: ${c.stack.slice(0, 3).map((f) => `${f.functionName || '(anonymous)'} (${path.basename(f.url)}:${f.line})`).join(' ← ')}`);
    }
  }
  console.log(`\nOpen it in Chrome DevTools: gunzip -k ${path.relative(process.cwd(), path.join(bundle, 'heap-1.heapsnapshot.gz'))}, then Memory tab → Load.`);
}

// What filled the heap: object classes by total shallow size.
function topClasses(file) {
  const snap = JSON.parse(zlib.gunzipSync(fs.readFileSync(file)).toString('utf8'));
  const meta = snap.snapshot.meta;
  const stride = meta.node_fields.length;
  const [type, name, size] = ['type', 'name', 'self_size'].map((f) => meta.node_fields.indexOf(f));
  const object = meta.node_types[0].indexOf('object');
  const classes = new Map();
  for (let i = 0; i < snap.nodes.length; i += stride) {
    if (snap.nodes[i + type] !== object) continue;
    const c = classes.get(snap.nodes[i + name]) || { count: 0, bytes: 0 };
    c.count++;
    c.bytes += snap.nodes[i + size];
    classes.set(snap.nodes[i + name], c);
  }
  console.log('  Top object classes by shallow size:');
  for (const [n, c] of [...classes].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 5)) {
    console.log(`    ${snap.strings[n].padEnd(24)} ${String(c.count).padStart(8)} objects ${mb(c.bytes).padStart(10)}`);
  }
}
