'use strict';
// Where memguard's two native binaries are for this machine: the addon (one
// per Node ABI, V8's C++ API being not ABI-stable) and the report analyser
// (one per platform). A local build (`npm run build`, into build/) wins; else
// the prebuilt platform package that npm installed beside memguard as an
// optional dependency (memguard-linux-x64-gnu, -linux-arm64-gnu, -linux-x64-musl).
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const buildDir = path.join(root, 'build');

/** The prebuilt platforms; each is an npm package `memguard-<tag>`. */
const PLATFORMS = ['linux-x64-gnu', 'linux-arm64-gnu', 'linux-x64-musl'];
/** The Node lines prebuilt: major → ABI (process.versions.modules). */
const NODE_ABIS = { 20: '115', 22: '127', 24: '137', 26: '147' };

let muslCache;
/** Whether this process runs on musl libc (Alpine) rather than glibc. */
function isMusl() {
  if (muslCache === undefined) muslCache = detectMusl();
  return muslCache;
}

function detectMusl() {
  if (process.platform !== 'linux') return false;
  // What this process actually mapped says it best; ldd's text is the
  // fallback napi-rs and detect-libc use where /proc is not mounted.
  for (const [file, marker] of [['/proc/self/maps', /\/ld-musl-|\/libc\.musl-/], ['/usr/bin/ldd', /musl/]]) {
    try {
      return marker.test(fs.readFileSync(file, 'latin1'));
    } catch {}
  }
  return false;
}

/** `linux-x64-gnu`, `linux-x64-musl`, … for this machine. */
function platformTag() {
  const libc = process.platform === 'linux' ? (isMusl() ? '-musl' : '-gnu') : '';
  return `${process.platform}-${process.arch}${libc}`;
}

/** The directory of the installed platform package, or null. */
function packageDir() {
  try {
    return path.dirname(require.resolve(`memguard-${platformTag()}/package.json`, { paths: [root] }));
  } catch {
    return null;
  }
}

const addonName = (abi) => `memguard.abi${abi}.node`;
const localAddonName = (abi) => `memguard-${process.platform}-${process.arch}-abi${abi}.node`;
const reportName = 'memguard-report';

/** The addon file for this Node's ABI, or null. */
function findAddon(abi = process.versions.modules) {
  const local = path.join(buildDir, localAddonName(abi));
  if (fs.existsSync(local)) return local;
  const dir = packageDir();
  const prebuilt = dir && path.join(dir, addonName(abi));
  return prebuilt && fs.existsSync(prebuilt) ? prebuilt : null;
}

/** The report analyser binary, or null. */
function findReport() {
  const local = path.join(buildDir, `${reportName}-${process.platform}-${process.arch}`);
  if (fs.existsSync(local)) return local;
  const dir = packageDir();
  const prebuilt = dir && path.join(dir, reportName);
  return prebuilt && fs.existsSync(prebuilt) ? prebuilt : null;
}

/** One line saying what exists and what is supported, for when findAddon() is null. */
function missingAddonMessage(abi = process.versions.modules) {
  const listed = (dir) => {
    try {
      return fs.readdirSync(dir).filter((f) => f.endsWith('.node'));
    } catch {
      return [];
    }
  };
  const found = [...listed(buildDir), ...(packageDir() ? listed(packageDir()) : [])];
  const supported = `prebuilt for ${PLATFORMS.join(', ')} × Node ${Object.keys(NODE_ABIS).join('/')}`;
  return (
    `no binary for Node ${process.version} (ABI ${abi}) on ${platformTag()} ` +
    `(found: ${found.length ? found.join(', ') : 'none'}; ${supported}); ` +
    `to build one from source (needs Rust, a C++ compiler and Node's headers): npm run build --prefix ${JSON.stringify(root)}`
  );
}

module.exports = {
  PLATFORMS,
  NODE_ABIS,
  isMusl,
  platformTag,
  findAddon,
  findReport,
  missingAddonMessage,
  addonName,
  localAddonName,
  reportName,
};
