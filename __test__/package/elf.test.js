'use strict';
// The prebuilt binaries, read as ELF files (readelf reads every architecture):
// the right machine, nothing needed beyond what Node itself needs, glibc no
// newer than the floor, and — since V8's C++ API is not ABI-stable — exactly
// the V8/Node symbols the native g++ build imports for the same ABI. This is
// the check the musl build gets: no musl Node runs on this Debian machine.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const h = require('../helpers');
const { PREBUILDS } = require('./packaged');
const { PLATFORMS, addonName, localAddonName, reportName } = require('../../lib/platform');

const readelf = (args, file) => execFileSync('readelf', ['-W', ...args, file], { encoding: 'utf8' });
const GLIBC_FLOOR = [2, 17];

const EXPECT = {
  'linux-x64-gnu': { machine: /X86-64/, interp: '/lib64/ld-linux-x86-64.so.2', needed: /^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libgcc_s\.so\.1|ld-linux-x86-64\.so\.2)$/ },
  'linux-arm64-gnu': { machine: /AArch64/, interp: '/lib/ld-linux-aarch64.so.1', needed: /^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libgcc_s\.so\.1|ld-linux-aarch64\.so\.1)$/ },
  // The musl report binary is static (static-pie): it runs on any x64 Linux.
  'linux-x64-musl': { machine: /X86-64/, interp: null, needed: /^libc\.so$/ },
};

function elf(file) {
  const needed = [...readelf(['-d'], file).matchAll(/\(NEEDED\)\s+Shared library: \[(.+)\]/g)].map((m) => m[1]);
  const interp = (/Requesting program interpreter: (.+)\]/.exec(readelf(['-l'], file)) || [])[1] || null;
  const machine = /Machine:\s+(.+)/.exec(readelf(['-h'], file))[1];
  const symbols = readelf(['--dyn-syms'], file)
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols.length >= 8 && /^\d+:$/.test(cols[0]));
  const undefinedSyms = symbols.filter((c) => c[6] === 'UND').map((c) => c[7]);
  const defined = symbols.filter((c) => c[6] !== 'UND' && c[4] === 'GLOBAL').map((c) => c[7].split('@')[0]);
  const glibc = undefinedSyms.flatMap((s) => [...s.matchAll(/@GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]));
  // What the addon takes from the node binary: V8's and Node's C++ API, libuv, Node-API.
  const fromNode = undefinedSyms
    .map((s) => s.split('@')[0])
    .filter((s) => /^(_ZN?K?2v8|_ZN?K?4node|uv_|napi_)/.test(s))
    .sort();
  return { needed, interp, machine, glibc, fromNode, defined };
}

const newer = ([a, b], [c, d]) => a > c || (a === c && b > d);

for (const platform of PLATFORMS) {
  test(`${platform}: the addons and the report binary are what that platform can load`, () => {
    const dir = path.join(PREBUILDS, platform);
    assert.ok(fs.existsSync(dir), `${dir} is missing: run npm run test:package (or npm run prebuilds)`);
    const addons = fs.readdirSync(dir).filter((f) => f.endsWith('.node'));
    assert.ok(addons.length > 0, `no addon in ${dir}`);
    const expect = EXPECT[platform];
    for (const file of [...addons, reportName]) {
      const info = elf(path.join(dir, file));
      assert.match(info.machine, expect.machine, file);
      for (const lib of info.needed) assert.match(lib, expect.needed, `${platform}/${file} needs ${lib}`);
      const newest = info.glibc.reduce((a, b) => (newer(b, a) ? b : a), [0, 0]);
      assert.ok(!newer(newest, GLIBC_FLOOR), `${platform}/${file} needs glibc ${newest.join('.')} (floor ${GLIBC_FLOOR.join('.')})`);
      if (platform.endsWith('musl')) assert.equal(info.glibc.length, 0, `${file} asks for glibc symbols`);
      if (file === reportName) {
        assert.equal(info.interp, expect.interp, `${platform}/${file} interpreter`);
      } else {
        assert.equal(info.interp, null, `${file} is a shared object`);
        assert.ok(info.defined.includes('napi_register_module_v1'), `${file} exports napi_register_module_v1`);
        assert.ok(info.fromNode.some((s) => s.startsWith('_ZN2v87Isolate')), `${file} imports V8's Isolate API`);
      }
    }
  });
}

test('every prebuilt addon imports the same V8/Node symbols as the native build of its ABI', () => {
  const native = path.join(h.ROOT, 'build', localAddonName(process.versions.modules));
  assert.ok(fs.existsSync(native), `${native} is missing: npm run build`);
  const reference = { [process.versions.modules]: elf(native).fromNode };
  let compared = 0;
  for (const platform of PLATFORMS) {
    const dir = path.join(PREBUILDS, platform);
    for (const file of fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.node')) : []) {
      const abi = /abi(\d+)/.exec(file)[1];
      const symbols = elf(path.join(dir, file)).fromNode;
      if (!reference[abi]) {
        reference[abi] = symbols; // the first platform with this ABI is the reference for the others
        continue;
      }
      assert.deepEqual(symbols, reference[abi], `${platform}/${file} vs the reference for ABI ${abi}`);
      compared++;
      assert.equal(file, addonName(abi));
    }
  }
  assert.ok(compared >= PLATFORMS.length - 1, `compared ${compared} addons`);
});

test('the musl report binary, being static, runs here: it reads a snapshot the native addon wrote', async (t) => {
  const bin = path.join(PREBUILDS, 'linux-x64-musl', reportName);
  assert.ok(fs.existsSync(bin), `${bin} is missing: run npm run test:package`);
  assert.deepEqual(elf(bin).needed, [], 'no shared library needed');
  const dir = h.tempDir(t);
  const r = await h.runNode(['-e', `
    class MuslCheck { constructor(i) { this.i = i; } }
    globalThis.keep = Array.from({ length: 3000 }, (_, i) => new MuslCheck(i));
    console.log(require(${JSON.stringify(h.MEMGUARD)}).snapshot('musl'));`], { env: { MEMGUARD_DIR: dir } });
  assert.equal(r.code, 0, r.stderr);
  const report = execFileSync(bin, ['report', r.stdout.trim(), '--json', '--top', '500'], { encoding: 'utf8' });
  const classes = JSON.stringify(JSON.parse(report));
  assert.match(classes, /MuslCheck/);
});
