#!/usr/bin/env node
// `npm test` and `npm run bench` on a fresh clone: the tests and benchmarks
// compare against peers (DevTools' heap snapshot code, memlab, prom-client,
// puppeteer-core for the HTML page), which are devDependencies. A fresh clone
// has none installed, so install them from the lockfile first, once.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const { devDependencies = {} } = require(path.join(root, 'package.json'));
const missing = Object.keys(devDependencies).filter((name) => !fs.existsSync(path.join(root, 'node_modules', name, 'package.json')));
if (missing.length) {
  console.error(`memguard: installing dev dependencies (missing: ${missing.join(', ')}): npm ci …`);
  const npm = process.env.npm_execpath
    ? [process.execPath, [process.env.npm_execpath]]
    : ['npm', []];
  const r = spawnSync(npm[0], [...npm[1], 'ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.error || r.status !== 0) {
    console.error('memguard: npm ci failed; the tests that compare with those packages will fail');
    process.exit(1);
  }
}
