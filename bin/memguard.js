#!/usr/bin/env node
// `npx memguard report <bundle-dir | snapshot | s3://…> [options]`, `list`,
// `fetch`, `upload`: runs the report analyser (pure Rust, no Node ABI: built
// by `npm run build` into build/, or prebuilt in the platform package) with
// the same arguments and exit code.
'use strict';
const { spawnSync } = require('node:child_process');
const { findReport, platformTag } = require('../lib/platform');

const [command, ...rest] = process.argv.slice(2);
const COMMANDS = ['report', 'list', 'fetch', 'upload'];
if (!COMMANDS.includes(command)) {
  console.error(
    [
      'usage: memguard report <bundle-dir | file.heapsnapshot[.gz] | s3://…/<bundle>> [--json] [--html <file>] [--top N] [--baseline <snapshot>] [--help]',
      '       memguard list s3://bucket/prefix [--service S] [--since 7d] [--json]',
      '       memguard fetch s3://bucket/prefix/<service>/<host>/<bundle> [--to DIR]',
      '       memguard upload <bundle-dir>…   (MEMGUARD_UPLOAD=s3://bucket/prefix; see docs/upload.md)',
    ].join('\n'),
  );
  process.exit(2);
}
const analyser = findReport();
if (!analyser) {
  console.error(
    `memguard: error: no report binary for ${platformTag()} (no memguard-${platformTag()} package installed, nothing built); ` +
      `build it with \`npm run build\` in ${require('node:path').resolve(__dirname, '..')}`,
  );
  process.exit(2);
}
const result = spawnSync(analyser, [command, ...rest], { stdio: 'inherit' });
if (result.error) {
  console.error(`memguard: error: cannot run ${analyser}: ${result.error.message}`);
  process.exit(2);
}
if (result.signal) process.kill(process.pid, result.signal);
process.exit(result.status ?? 2);
