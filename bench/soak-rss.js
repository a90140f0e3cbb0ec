#!/usr/bin/env node
// `npm run bench:soak-rss`: what memguard adds to a service's RSS, beside
// how much two identical servers without it differ. Five copies of
// bench/soak-server.js take the same autocannon load at the same time for
// RSS_MINUTES (default 4): memguard at its defaults, with allocation
// sampling off, with the flight recorder off, and two without memguard.
// RSS (VmRSS) of each every 15 s; at the end, the medians of the second half
// against the mean of the two servers without memguard, and each one's
// growth per minute after warm-up.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const autocannon = require('autocannon');
const { startSoakServer } = require('./soak-spawn');

const MINUTES = Number(process.env.RSS_MINUTES || 4);
const CONNECTIONS = Number(process.env.RSS_CONNECTIONS || 4);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memguard-bench-rss-'));

const SERVERS = [
  ['memguard', true, {}],
  ['memguard, sampling off', true, { MEMGUARD_ALLOC_SAMPLING: 'off' }],
  ['memguard, timeline off', true, { MEMGUARD_TIMELINE: 'off' }],
  ['without (1)', false, {}],
  ['without (2)', false, {}],
];

const start = async ([name, memguard, vars]) => ({ ...(await startSoakServer(name, { memguard, dir, vars })), rss: [] });

const rssMiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

(async () => {
  const servers = await Promise.all(SERVERS.map(start));
  const t0 = Date.now();
  const sample = () => {
    for (const s of servers) s.rss.push(rssMiB(s.child.pid));
    console.log([((Date.now() - t0) / 1000).toFixed(0).padStart(4), ...servers.map((s) => s.rss.at(-1).toFixed(1).padStart(8))].join(' '));
  };
  console.log(['   t', ...servers.map((s) => s.name)].join(' | '));
  sample();
  const timer = setInterval(sample, 15_000);
  try {
    await Promise.all(servers.map((s) => autocannon({ url: `${s.url}/api/orders`, connections: CONNECTIONS, duration: MINUTES * 60 })));
    sample();
  } finally {
    clearInterval(timer);
    for (const s of servers) s.child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // The second half: after warm-up. Growth: the last quarter's median
  // against the second quarter's, per minute between them (medians, so a
  // single GC's spike does not count).
  const late = (s) => median(s.rss.slice(s.rss.length >> 1));
  const quarter = (s, k) => median(s.rss.slice((s.rss.length * k) >> 2, (s.rss.length * (k + 1)) >> 2));
  const minutesApart = MINUTES / 2; // the two quarters' middles
  const without = (late(servers[3]) + late(servers[4])) / 2;
  const signed = (x, digits) => `${x >= 0 ? '+' : ''}${x.toFixed(digits)}`;
  console.log(`\n| server | RSS, median of the second half | vs without memguard | growth after warm-up |`);
  console.log(`|---|---|---|---|`);
  for (const s of servers) {
    const growth = (quarter(s, 3) - quarter(s, 1)) / minutesApart;
    console.log(`| ${s.name} | ${late(s).toFixed(1)} MiB | ${signed(late(s) - without, 1)} MiB | ${signed(growth, 2)} MiB/min |`);
  }
})();
