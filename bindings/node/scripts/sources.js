// Where the extension's sources are: runs-src/ inside a packed tarball (npm
// pack copies them there), else the repository this folder belongs to
// (bindings/node in a checkout). Shared by build.js and pack-sources.js.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const packageDir = path.resolve(__dirname, '..');
const vendored = path.join(packageDir, 'runs-src');
const COMMIT_FILE = 'COMMIT'; // in runs-src/: the commit the tarball was packed from

function isSourceRoot(dir) {
  const cmakelists = path.join(dir, 'CMakeLists.txt');
  return fs.existsSync(cmakelists) && fs.existsSync(path.join(dir, 'ext')) &&
    fs.readFileSync(cmakelists, 'utf8').includes('project(sqlite_runs ');
}

function checkoutRoot() {
  const root = path.resolve(packageDir, '..', '..');
  return isSourceRoot(root) ? root : null;
}

// What the CMake build of target `runs` reads, relative to the repository's
// root: bindings/sources.txt in the checkout, the list the Python package reads too.
function sourceList(root) {
  return fs.readFileSync(path.join(root, 'bindings', 'sources.txt'), 'utf8').split('\n')
    .map((line) => line.trim()).filter((line) => line && !line.startsWith('#'));
}

function sourceRoot() {
  if (isSourceRoot(vendored)) return vendored;
  const root = checkoutRoot();
  if (root) return root;
  throw new Error(`sqlite-runs: no extension sources in ${vendored} or ${path.resolve(packageDir, '..', '..')}: ` +
    'install from a checkout of the repository (bindings/node) or from its npm pack tarball');
}

module.exports = { packageDir, vendored, COMMIT_FILE, checkoutRoot, sourceList, sourceRoot };
