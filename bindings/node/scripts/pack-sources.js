// npm pack's prepack and postpack: copies the sources the install script
// builds from into runs-src/ (with the commit they are from), so that the
// tarball installs anywhere; --clean removes them again.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { vendored, COMMIT_FILE, checkoutRoot, sourceList } = require('./sources.js');

fs.rmSync(vendored, { recursive: true, force: true });
if (process.argv[2] !== '--clean') {
  const root = checkoutRoot();
  if (!root) {
    console.error('sqlite-runs: npm pack needs the repository checkout around bindings/node');
    process.exit(1);
  }
  for (const name of sourceList(root)) {
    fs.cpSync(path.join(root, name), path.join(vendored, name), { recursive: true });
  }
  const described = spawnSync('git', ['-C', root, 'describe', '--always', '--dirty'], { encoding: 'utf8' });
  if (described.status === 0 && described.stdout.trim()) {
    fs.writeFileSync(path.join(vendored, COMMIT_FILE), `${described.stdout.trim()}\n`);
  }
}
