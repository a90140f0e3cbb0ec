#!/usr/bin/env node
// `npm run bench:soak`: a real HTTP service (fastify, bench/soak-server.js)
// under autocannon on 127.0.0.1, with memguard at its defaults vs without,
// for SOAK_MINUTES of load per side (default 10). Both servers live for the
// whole run; the load alternates between them in SOAK_SLICE_S slices
// (default 30 s; the order flips every round), so both see the same machine.
// Reports requests/s and p99 latency (medians of the slices, spread, ratio),
// memguard's RSS over the run (vs the server without it), memguard's own CPU
// accounting, the bundle's disk use vs its budget, dropped timeline records,
// and the disk per day and per month extrapolated from the measured bytes.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');
const autocannon = require('autocannon');
const { startSoakServer } = require('./soak-spawn');

const MINUTES = Number(process.env.SOAK_MINUTES || 10);
const SLICE_S = Number(process.env.SOAK_SLICE_S || 30);
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS || 10);
const WARMUP_S = Number(process.env.SOAK_WARMUP_S || 20);
const TIMELINE_BUDGET = 64 * 2 ** 20; // MEMGUARD_TIMELINE_MAX's default

const facts = async (server) => (await fetch(`${server.url}/__soak`)).json();

async function load(server, seconds) {
  const r = await autocannon({ url: `${server.url}/api/orders`, connections: CONNECTIONS, duration: seconds });
  if (r.errors || r.non2xx) throw new Error(`${server.name}: ${r.errors} errors, ${r.non2xx} non-2xx responses`);
  return { rps: r.requests.average, p99: r.latency.p99, p50: r.latency.p50 };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const range = (xs, digits = 0) => `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;
const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** Sizes of the bundle's files by kind; the timeline's share of GC records (by uncompressed length). */
function bundleBytes(dir) {
  const out = { timeline: 0, history: 0, other: 0, gcShare: 0 };
  let gcChars = 0;
  let allChars = 0;
  for (const f of fs.readdirSync(dir)) {
    const size = fs.statSync(path.join(dir, f)).size;
    if (/^timeline(-\d+)?\.ndjson\.gz$/.test(f)) {
      out.timeline += size;
      for (const line of zlib.gunzipSync(fs.readFileSync(path.join(dir, f))).toString().split('\n')) {
        allChars += line.length + 1;
        if (line.startsWith('{"type":"gc"')) gcChars += line.length + 1;
      }
    } else if (f === 'history.ndjson.gz') out.history += size;
    else out.other += size;
  }
  out.gcShare = allChars ? gcChars / allChars : 0;
  return out;
}

(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memguard-soak-'));
  const plain = { ...(await startSoakServer('without memguard', { memguard: false, dir })), slices: [], rss: [] };
  const guarded = { ...(await startSoakServer('memguard (defaults)', { memguard: true, dir })), slices: [], rss: [] };
  const started = Date.now();
  try {
    console.log(`Soak: ${MINUTES} min of load per side in ${SLICE_S} s slices, ${CONNECTIONS} connections, after ${WARMUP_S} s of warm-up each (Node ${process.version}, ${os.cpus().length} CPUs)`);
    for (const s of [plain, guarded]) await load(s, WARMUP_S);
    const warm = { plain: (await facts(plain)).rss, guarded: await facts(guarded) };
    const rounds = Math.max(1, Math.round((MINUTES * 60) / SLICE_S));
    for (let i = 0; i < rounds; i++) {
      const order = i % 2 ? [guarded, plain] : [plain, guarded];
      for (const s of order) s.slices.push(await load(s, SLICE_S));
      const [a, b] = [await facts(plain), await facts(guarded)];
      plain.rss.push(a.rss);
      guarded.rss.push(b.rss);
      process.stderr.write(`  round ${i + 1}/${rounds}: ${plain.slices.at(-1).rps.toFixed(0)} vs ${guarded.slices.at(-1).rps.toFixed(0)} req/s, RSS ${mib(a.rss)} vs ${mib(b.rss)}\n`);
    }
    const end = await facts(guarded);
    const lifetimeS = (Date.now() - started) / 1000;
    const bytes = bundleBytes(end.memguard.bundleDir);
    const gcEvents = Object.values(end.memguard.gc).reduce((n, g) => n + g.count, 0);

    const col = (s, k) => s.slices.map((x) => x[k]);
    const ratios = plain.slices.map((p, i) => guarded.slices[i].rps / p.rps);
    const p99ratios = plain.slices.map((p, i) => guarded.slices[i].p99 / Math.max(p.p99, 1));
    console.log('\n| side | requests/s (median) | spread | p99 latency (median) | spread |');
    console.log('|---|---|---|---|---|');
    for (const s of [plain, guarded]) {
      console.log(`| ${s.name} | ${median(col(s, 'rps')).toFixed(0)} | ${range(col(s, 'rps'))} | ${median(col(s, 'p99')).toFixed(0)} ms | ${range(col(s, 'p99'))} ms |`);
    }
    console.log(`\nThroughput with memguard / without: ${median(ratios).toFixed(4)} (median of ${ratios.length} slice pairs, spread ${range(ratios, 3)}); p99 ratio ${median(p99ratios).toFixed(3)} (spread ${range(p99ratios, 2)})`);
    const sc = end.memguard.selfCost;
    const gcPerS = gcEvents / lifetimeS;
    console.log(`memguard's own accounting: ${(sc.share * 100).toFixed(3)} % of the process's CPU time (threads ${Object.entries(sc.threadsCpuMs).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', ')}; callbacks ${sc.callbacksMs.toFixed(0)} ms over ${sc.callbacks} calls; process ${(sc.processCpuMs / 1000).toFixed(1)} s) at ${gcPerS.toFixed(1)} GC events/s`);
    const extra = guarded.rss.map((r, i) => r - plain.rss[i]);
    console.log(`RSS: with memguard ${mib(warm.guarded.rss)} after warm-up → ${mib(guarded.rss.at(-1))} at the end; without ${mib(warm.plain)} → ${mib(plain.rss.at(-1))}; memguard's extra RSS (with − without) first slice ${mib(extra[0])}, last ${mib(extra.at(-1))}, max ${mib(Math.max(...extra))}`);
    console.log(`Dropped timeline records: ${end.memguard.timelineDropped}`);
    const total = bytes.timeline + bytes.history + bytes.other;
    console.log(`Bundle on disk after ${(lifetimeS / 60).toFixed(1)} min: ${(total / 1024).toFixed(0)} kB (timeline ${(bytes.timeline / 1024).toFixed(0)} kB, history ${(bytes.history / 1024).toFixed(1)} kB, other ${(bytes.other / 1024).toFixed(1)} kB); the timeline ring's budget is ${mib(TIMELINE_BUDGET)}, the disk budget auto (≥ 4 GiB)`);

    // Extrapolation: the timeline grows with GC events (their records' share
    // of its bytes) and with the 1 s samples (the rest) until its ring is
    // full; the history by one record per minute, whatever the load.
    const perGc = (bytes.timeline * bytes.gcShare) / gcEvents;
    const restPerS = (bytes.timeline * (1 - bytes.gcShare)) / lifetimeS;
    const historyPerDay = (bytes.history / lifetimeS) * 86400;
    const row = (label, gcRate) => {
      const perDay = (perGc * gcRate + restPerS) * 86400;
      const fullAfterH = TIMELINE_BUDGET / (perDay / 24);
      // The history keeps a week of periods; older ones are merged 60 into one.
      const history = (days) => historyPerDay * Math.min(days, 7) + (historyPerDay / 60) * Math.max(0, days - 7);
      const disk = (days) => Math.min(TIMELINE_BUDGET, perDay * days) + history(days);
      console.log(`| ${label} | ${gcRate.toFixed(0)} | ${mib(perDay)} | ${fullAfterH > 24 * 365 ? 'never within a year' : fullAfterH >= 48 ? `${(fullAfterH / 24).toFixed(0)} days` : `${fullAfterH.toFixed(1)} h`} | ${mib(disk(1))} | ${mib(disk(30))} |`);
    };
    console.log(`\nDisk per day and month (measured: ${perGc.toFixed(2)} bytes on disk per GC record, ${restPerS.toFixed(1)} bytes/s of samples and markers, history ${(historyPerDay / 1024).toFixed(0)} kB/day):`);
    console.log('| load | GC events/s | timeline written per day | ring full after | on disk after a day | after a month |');
    console.log('|---|---|---|---|---|---|');
    row('this soak', gcPerS);
    row('busy service', 50);
    row('GC-heavy', 2000);
  } finally {
    for (const s of [plain, guarded]) s.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    fs.rmSync(dir, { recursive: true, force: true });
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
