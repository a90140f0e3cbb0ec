'use strict';
// Shared by the packaging tests (`npm run test:package`, which builds the
// prebuilds and tarballs they read): where those are, and how to install them
// as a user would — a new directory, no network, and a PATH with node, npm
// and sh only (no cargo, rustc, cc, gcc, g++, make, python3).
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const h = require('../helpers');

const DIST = path.join(h.ROOT, 'dist');
const PREBUILDS = path.join(h.ROOT, 'prebuilds');
const NPM_CLI = require('../../scripts/node-dist').npmBinDir();
const { version } = require(path.join(h.ROOT, 'package.json'));

/** The packed tarball of `name` (`memguard` or `memguard-<platform>`), which must exist. */
function tarball(name) {
  const file = path.join(DIST, `${name}-${version}.tgz`);
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run the packaging tests with npm run test:package`);
  return file;
}

/** A bin/ directory holding only `node` (the given binary), npm, npx and sh. */
function minimalPath(dir, nodeBinary) {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.symlinkSync(nodeBinary, path.join(bin, 'node'));
  fs.symlinkSync(path.join(NPM_CLI, 'npm-cli.js'), path.join(bin, 'npm'));
  fs.symlinkSync(path.join(NPM_CLI, 'npx-cli.js'), path.join(bin, 'npx'));
  fs.symlinkSync('/bin/sh', path.join(bin, 'sh')); // npm runs install scripts through sh
  return bin;
}

/** Runs a command with nothing of the parent's environment but `env`. */
function runClean(cmd, args, { cwd, env }) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 180_000, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return r;
}

/** `npm install --offline` of the tarballs into a new app in `dir`; returns the app dir and its env. */
function installApp(dir, nodeBinary, tarballs, npmArgs = []) {
  const bin = minimalPath(dir, nodeBinary);
  const app = path.join(dir, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  const env = { PATH: bin, HOME: path.join(dir, 'home'), npm_config_update_notifier: 'false' };
  const r = runClean(path.join(bin, 'npm'), ['install', '--offline', '--no-audit', '--no-fund', ...npmArgs, ...tarballs], { cwd: app, env });
  if (r.status !== 0) throw new Error(`npm install failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { app, env, bin, output: r.stdout + r.stderr };
}

module.exports = { DIST, PREBUILDS, version, tarball, installApp, runClean };
