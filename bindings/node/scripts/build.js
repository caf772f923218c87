// The install script: builds the extension with the repository's own CMake
// build (target `runs`) and puts runs.so and the migrations (sql/*.sql) in
// lib/. No node-gyp: the extension is no Node addon, and builds offline.
// Needs cmake, a C++20 compiler and sqlite3ext.h (Debian, Ubuntu:
// apt-get install cmake g++ libsqlite3-dev).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { packageDir, COMMIT_FILE, sourceRoot } = require('./sources.js');

const NEEDS = 'building it needs cmake, a C++20 compiler and sqlite3ext.h ' +
  '(Debian, Ubuntu: apt-get install cmake g++ libsqlite3-dev)';

function run(command, args) {
  console.log(`sqlite-runs: ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { stdio: 'inherit' });
  if (result.error) {
    throw new Error(`sqlite-runs: cannot run ${command} (${result.error.message}): ${NEEDS}`);
  }
  if (result.status !== 0) {
    throw new Error(`sqlite-runs: ${command} failed (exit status ${result.status}): ${NEEDS}`);
  }
}

function main() {
  const root = sourceRoot();
  const lib = path.join(packageDir, 'lib');
  const configure = ['-S', root, '-DCMAKE_BUILD_TYPE=Release', '-DRUNS_BUILD_TESTS=OFF',
    '-DCMAKE_COMPILE_WARNING_AS_ERROR=OFF'];
  const commit = path.join(root, COMMIT_FILE);
  if (fs.existsSync(commit)) {
    configure.push(`-DRUNS_SOURCE_COMMIT=${fs.readFileSync(commit, 'utf8').trim()}`);
  }
  const jobs = process.env.CMAKE_BUILD_PARALLEL_LEVEL || String(os.availableParallelism?.() ?? os.cpus().length);
  // A fresh build folder each time: a cached one may belong to other sources.
  const build = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite-runs-build-'));
  try {
    run('cmake', [...configure, '-B', build]);
    run('cmake', ['--build', build, '--target', 'runs', '--parallel', jobs]);
    fs.rmSync(lib, { recursive: true, force: true });
    fs.mkdirSync(path.join(lib, 'sql'), { recursive: true });
    fs.copyFileSync(path.join(build, 'runs.so'), path.join(lib, 'runs.so'));
  } finally {
    fs.rmSync(build, { recursive: true, force: true });
  }
  // Whatever sql/ holds: the migrations are never listed here.
  for (const name of fs.readdirSync(path.join(root, 'sql')).filter((f) => /^\d{3}_.*\.sql$/.test(f)).sort()) {
    fs.copyFileSync(path.join(root, 'sql', name), path.join(lib, 'sql', name));
  }
}

try {
  main();
} catch (error) {
  console.error(error.message);
  process.exit(1);
}
