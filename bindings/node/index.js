// sqlite-runs for Node: the extension built when the package was installed.
//
//   const Database = require('better-sqlite3');
//   const sqliteRuns = require('sqlite-runs');
//   const db = new Database('app.db');
//   sqliteRuns.load(db);
//   db.prepare('SELECT runs_busy_timeout(5000)').get();   // the library's busy handler
//   db.prepare('SELECT runs_migrate()').pluck().get();
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const lib = path.join(__dirname, 'lib');

/** The path of the extension (runs.so), for db.loadExtension(). */
function getLoadablePath() {
  const file = path.join(lib, 'runs.so');
  if (!fs.existsSync(file)) {
    throw new Error(`sqlite-runs: ${file} does not exist: the install script builds it, and did not run ` +
      '(npm install --ignore-scripts, or install scripts not allowed: npm install-scripts approve sqlite-runs), ' +
      'or failed: run npm rebuild sqlite-runs');
  }
  return file;
}

/** The folder of the migrations, sql/NNN_name.sql, in version order by name. */
function getMigrationsDir() {
  return path.join(lib, 'sql');
}

/** Loads the extension into db, a better-sqlite3 Database (or any with loadExtension()); returns db. */
function load(db) {
  if (db === null || typeof db !== 'object' || typeof db.loadExtension !== 'function') {
    throw new TypeError('sqlite-runs: load(db) takes a better-sqlite3 Database (an object with loadExtension())');
  }
  db.loadExtension(getLoadablePath());
  return db;
}

module.exports = { getLoadablePath, getMigrationsDir, load };
