#!/usr/bin/env node
// Writes a heap snapshot of a service-like heap for the report benchmark:
// class instances in Maps (a session cache), arrays, closures, strings and a
// WeakMap — the shapes a leaking Node service is made of.
//
//   node --max-old-space-size=16384 bench/make-snapshot.js <sessions> <out.heapsnapshot>
'use strict';
const v8 = require('node:v8');
const fs = require('node:fs');

const sessions = Number(process.argv[2]);
const out = process.argv[3];
class Session {
  constructor(i) {
    this.id = i;
    this.user = { name: `user-${i}`, roles: ['reader', i % 7 === 0 ? 'admin' : 'user'] };
    this.history = [i, i + 1, i + 2, i + 3];
    this.onClose = () => this.id; // a closure with a context
  }
}
class Order {
  constructor(session, i) {
    this.session = session;
    this.total = i * 1.5;
    this.items = [{ sku: i % 1000, qty: 1 }];
  }
}
const cache = new Map();
const orders = [];
const meta = new WeakMap();
for (let i = 0; i < sessions; i++) {
  const s = new Session(i);
  cache.set(`session-${i}`, s);
  if (i % 2 === 0) orders.push(new Order(s, i));
  if (i % 5 === 0) meta.set(s, { seen: i });
}
global.retained = { cache, orders, meta };
const started = Date.now();
v8.writeHeapSnapshot(out);
const { size } = fs.statSync(out);
console.log(JSON.stringify({ out, sessions, bytes: size, ms: Date.now() - started }));
