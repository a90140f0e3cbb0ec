#!/usr/bin/env node
// `npx memguard report <bundle-dir | snapshot> [options]`: runs the report
// analyser (build/memguard-report-<platform>-<arch>, pure Rust, built by
// `npm run build` beside the addon) with the same arguments and exit code.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const [command, ...rest] = process.argv.slice(2);
if (command !== 'report') {
  console.error('usage: memguard report <bundle-dir | file.heapsnapshot[.gz]> [--json] [--html <file>] [--top N] [--baseline <snapshot>] [--help]');
  process.exit(2);
}
const analyser = path.join(__dirname, '..', 'build', `memguard-report-${process.platform}-${process.arch}`);
if (!fs.existsSync(analyser)) {
  console.error(`memguard: error: ${path.relative(process.cwd(), analyser)} is missing; run \`npm run build\` in ${path.resolve(__dirname, '..')}`);
  process.exit(2);
}
const result = spawnSync(analyser, ['report', ...rest], { stdio: 'inherit' });
if (result.error) {
  console.error(`memguard: error: cannot run ${analyser}: ${result.error.message}`);
  process.exit(2);
}
if (result.signal) process.kill(process.pid, result.signal);
process.exit(result.status ?? 2);
