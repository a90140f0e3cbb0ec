// Starts bench/soak-server.js for the soak benches (soak.js, soak-rss.js):
// with or without `-r memguard`, memguard's settings from `vars` only (any
// MEMGUARD_* of the caller's environment is dropped, so "defaults" means the
// defaults), bundles in `dir`. Resolves once the server listens.
'use strict';
const { spawn } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

function startSoakServer(name, { memguard, dir, vars = {} }) {
  const args = [...(memguard ? ['-r', root] : []), path.join(__dirname, 'soak-server.js'), '0'];
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('MEMGUARD_')) delete env[k];
  Object.assign(env, { MEMGUARD_DIR: dir }, vars);
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`${name} exited (${code})`)));
    child.stdout.on('data', (d) => {
      const m = /listening (\S+)/.exec(String(d));
      if (m) resolve({ name, child, url: m[1] });
    });
  });
}

module.exports = { startSoakServer };
