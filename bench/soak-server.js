// The service bench/soak.js loads: fastify on 127.0.0.1, a JSON API with
// the allocation pattern of an ordinary service — a bounded LRU cache of
// users, a response built per request, JSON serialisation — and no leak.
// Run with `-r memguard` on one side and without on the other; GET /__soak
// reports the process's own facts (RSS, and memguard's when it is loaded).
'use strict';
const fastify = require('fastify')({ logger: false });

const CACHE_MAX = 20_000;
const cache = new Map();
function user(id) {
  let u = cache.get(id);
  if (u) {
    cache.delete(id); // most recently used last
  } else {
    u = { id, name: `user-${id}`, email: `user${id}@example.com`, roles: ['reader', id % 7 === 0 ? 'admin' : 'member'], created: Date.now() };
    if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value);
  }
  cache.set(id, u);
  return u;
}

let seq = 0;
fastify.get('/api/orders', async () => {
  const u = user((seq++ * 7919) % 50_000);
  const orders = Array.from({ length: 20 }, (_, i) => ({ id: `${u.id}-${i}`, total: (i * 13.7) % 100, items: [{ sku: `sku-${i % 50}`, qty: 1 + (i % 3) }] }));
  return { user: u, orders, at: new Date().toISOString() };
});

fastify.get('/__soak', async () => {
  const memguard = globalThis[Symbol.for('memguard.instance')];
  const out = { rss: process.memoryUsage.rss(), heapUsed: process.memoryUsage().heapUsed };
  if (memguard && memguard.active) {
    const m = memguard.metrics.snapshot();
    out.memguard = { selfCost: memguard.selfCost(), bundleDir: memguard.bundleDir, gc: m.gc, timelineDropped: m.timelineDropped };
  }
  return out;
});

fastify.listen({ host: '127.0.0.1', port: Number(process.argv[2] || 0) }).then((address) => {
  process.stdout.write(`listening ${address}\n`);
});
