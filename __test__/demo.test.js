'use strict';
// `npm run demo` is the README's first command: it must keep working.
const assert = require('node:assert/strict');
const path = require('node:path');
const { test } = require('node:test');
const h = require('./helpers');

test('the demo catches the leaking service and summarises its bundle', async () => {
  const r = await h.runNode([path.join(h.ROOT, 'examples', 'demo.js')], { cwd: h.ROOT, timeoutMs: 300_000 });
  assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
  assert.match(r.stdout, /^memguard: wrote .*heap-1\.heapsnapshot\.gz/m);
  assert.match(r.stdout, /The service died as it would have without memguard: signal SIGABRT/);
  // The demo ends with `memguard report` on its bundle: the verdict first, naming the
  // class, the Map that holds it and the function (and line) that allocates it.
  const report = r.stdout.slice(r.stdout.indexOf('$ npx memguard report'));
  assert.match(report, /^Verdict: Leak suspect: [\d,]+ UserSession \([\d.]+ MB\) held by Map 'sessions', allocated by handle \(leaky-server\.js:20\); heap \+[\d.]+ MB\/min$/m);
  assert.ok(report.indexOf('Verdict:') < report.indexOf('Process:'), report.slice(0, 1500));
  assert.match(report, /^ {5}held by {4}Map 'sessions' \([\d.]+ MB retained\)/m);
  // When TurboFan inlines the UserSession constructor into handle(), the
  // sample has no constructor frame and the site is matched as the largest
  // app site instead: the same function and line either way.
  assert.match(report, /^ {5}allocated {2}handle \(leaky-server\.js:20\)( \(the largest app site; not tied to the class\))?$/m);
  assert.match(r.stdout, /Top classes by retained size:\n[\s\S]*^\s+UserSession\s+[\d,]+\s/m);
  assert.match(r.stdout, /Map 'sessions'/);
  // Objects each held by their own session are explained through their holders' class.
  assert.match(r.stdout, /^\s+\{[^}]*\}: [\d,]{5,} objects, .*\n\s+\(root\) → .* → UserSession → \{[^}]*\} 'headers'$/m);
  assert.match(r.stdout, /Where the live memory was allocated/);
  assert.match(r.stdout, /Timeline: heap used/);
});
