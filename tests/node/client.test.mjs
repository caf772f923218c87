// sqlite-runs from Node with better-sqlite3, as an application would use it.
//   RUNS_EXTENSION=build/runs.so node --test tests/node/client.test.mjs
// With RUNS_PROJECT=DIR instead, a project where the npm package sqlite-runs is
// installed, the databases load the extension through its load(db)
// (tests/packages runs it so).
// better-sqlite3 binds every JavaScript number as REAL and only a BigInt as
// INTEGER, so the functions must accept integral REAL ids and counts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import Database from 'better-sqlite3';

const project = process.env.RUNS_PROJECT;
const sqliteRuns = project ? createRequire(path.join(path.resolve(project), 'package.json'))('sqlite-runs') : null;
const extension = process.env.RUNS_EXTENSION;
if (!sqliteRuns && (!extension || !fs.existsSync(extension))) {
  throw new Error(
    `RUNS_EXTENSION=${JSON.stringify(extension ?? '')}: set it to the path of the built runs.so`);
}

// What runs_migrate() returns: the highest NNN of sql/NNN_*.sql.
const LATEST_SCHEMA_VERSION = Math.max(
  ...fs.readdirSync(new URL('../../sql/', import.meta.url))
    .filter((name) => /^\d{3}_.*\.sql$/.test(name))
    .map((name) => Number(name.slice(0, 3))));
const TIMESTAMP = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`;
const END_IT =
  ': wait for it to finish, or end it with complete_run(), fail_run() or cancel_run()';
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let tmp;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'runs-node-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

let opened = 0;
function open(file = ':memory:', options = {}) {
  const db = new Database(file, options);
  if (sqliteRuns) return sqliteRuns.load(db);
  db.loadExtension(extension);
  return db;
}
function fileDb() {
  return path.join(tmp, `app-${++opened}.db`);
}
// The single value of a one-column statement.
function value(db, sql, ...args) {
  return db.prepare(sql).pluck().get(...args);
}
function migrated(file, options) {
  const db = open(file, options);
  assert.equal(value(db, 'SELECT runs_migrate()'), LATEST_SCHEMA_VERSION);
  return db;
}
// Asserts that running sql throws a SqliteError with this code and message.
function assertError(db, sql, args, code, message) {
  assert.throws(
    () => db.prepare(sql).pluck().get(...args),
    (error) => {
      assert.ok(error instanceof Database.SqliteError, `not a SqliteError: ${error}`);
      assert.equal(error.code, code);
      if (message instanceof RegExp) {
        assert.match(error.message, message);
      } else {
        assert.equal(error.message, message);
      }
      return true;
    });
  assert.equal(db.inTransaction, false);
}

describe('shared client cases', () => {
  test('tests/clients/cases.json, the cases every client runs', () => {
    const cases = JSON.parse(
      fs.readFileSync(new URL('../clients/cases.json', import.meta.url), 'utf8'));
    assert.ok(cases.steps.length > 0);
    const db = open(fileDb());
    db.prepare('SELECT runs_busy_timeout(5000)').get();  // as every client opens its connection
    cases.steps.forEach((step, index) => {
      const args = step.args ?? [];
      const where = `step ${index + 1}: ${step.sql}`;
      if (step.error) {
        assert.throws(() => db.prepare(step.sql).pluck().get(...args), (error) => {
          assert.ok(error instanceof Database.SqliteError, `${where}: not a SqliteError: ${error}`);
          assert.equal(error.code, step.error.name, where);
          assert.equal(error.message.replace(new RegExp(TIMESTAMP, 'g'), 'TIME'),
            step.error.message, where);
          return true;
        }, where);
        assert.equal(db.inTransaction, false, where);
      } else {
        assert.equal(db.prepare(step.sql).pluck().get(...args), step.result, where);
      }
    });
    db.close();
  });
});

describe('lifecycle', () => {
  test('migrate, start, refuse a second run, transitions, finish', () => {
    const db = open();
    assert.equal(value(db, 'SELECT runs_version()'), 'v0.1.0');
    assert.equal(value(db, 'SELECT runs_migrate()'), LATEST_SCHEMA_VERSION);
    assert.equal(value(db, 'SELECT runs_migrate()'), LATEST_SCHEMA_VERSION);
    assert.equal(value(db, 'SELECT active_run()'), null);

    const id = value(db, 'SELECT start_run(?)', 'full');
    assert.equal(id, 1);
    assert.equal(value(db, 'SELECT active_run()'), 1);
    assert.equal(value(db, 'SELECT run_status(?)', id), 'pending');
    assert.equal(db.inTransaction, false);

    assert.throws(
      () => db.prepare('SELECT start_run(?)').get('full'),
      (error) => {
        assert.ok(error instanceof Database.SqliteError);
        assert.equal(error.code, 'SQLITE_CONSTRAINT_UNIQUE');
        assert.match(error.message, /already active/);
        assert.match(error.message, new RegExp('^' + escape(
          "start_run(): run 1 is already active (scope 'full', status 'pending', since ") +
          TIMESTAMP + escape(')' + END_IT) + '$'));
        return true;
      });
    assert.equal(value(db, 'SELECT count(*) FROM runs'), 1);

    // JavaScript numbers are bound as REAL.
    assert.equal(value(db, 'SELECT typeof(?)', 1), 'real');
    assert.equal(value(db, 'SELECT typeof(?)', 1n), 'integer');

    assert.equal(db.prepare('SELECT complete_run(?)').pluck().get(1), 'not_in_expected_state');
    assert.equal(value(db, 'SELECT mark_run_running(?)', id), 'updated');
    assert.equal(value(db, 'SELECT mark_run_running(?)', id), 'not_in_expected_state');
    assert.equal(value(db, 'SELECT mark_run_running(?)', 99), 'not_found');
    assert.equal(value(db, 'SELECT update_run_progress(?, ?, ?, ?)', id, 5, 10, 'extract'),
      'updated');
    assert.deepEqual(
      db.prepare('SELECT progress_current, progress_total, current_step FROM runs WHERE id = ?')
        .get(id),
      { progress_current: 5, progress_total: 10, current_step: 'extract' });
    assert.equal(value(db, 'SELECT typeof(progress_current) FROM runs WHERE id = ?', id),
      'integer');
    assert.equal(value(db, 'SELECT update_run_progress(?, ?, ?, ?)', id, 10, 10, null),
      'updated');
    assert.equal(db.prepare('SELECT complete_run(?)').pluck().get(1), 'updated');
    assert.equal(db.prepare('SELECT complete_run(?)').pluck().get(1), 'not_in_expected_state');
    assert.equal(value(db, 'SELECT run_status(?)', id), 'completed');
    assert.equal(value(db, 'SELECT run_status(?)', 99), null);
    assert.equal(value(db, 'SELECT active_run()'), null);
    const row = db.prepare('SELECT started_at, finished_at, current_step FROM runs WHERE id = ?')
      .get(id);
    assert.match(row.started_at, new RegExp(`^${TIMESTAMP}$`));
    assert.match(row.finished_at, new RegExp(`^${TIMESTAMP}$`));
    assert.ok(row.started_at <= row.finished_at);
    assert.equal(row.current_step, null);
    db.close();
  });

  test('BigInt ids and counts', () => {
    const db = open();
    db.defaultSafeIntegers(true);
    assert.equal(value(db, 'SELECT runs_migrate()'), BigInt(LATEST_SCHEMA_VERSION));
    const id = value(db, "SELECT start_run('full', 'cron')");
    assert.equal(id, 1n);
    assert.equal(value(db, 'SELECT active_run()'), 1n);
    assert.equal(value(db, 'SELECT mark_run_running(?)', id), 'updated');
    assert.equal(value(db, 'SELECT update_run_progress(?, ?, ?, ?)', id, 3n, 4n, 'load'),
      'updated');
    assert.equal(value(db, 'SELECT fail_run(?, ?)', id, 'source unreachable'), 'updated');
    assert.equal(value(db, 'SELECT fail_run(?, ?)', id, 'again'), 'not_in_expected_state');
    assert.deepEqual(
      db.prepare('SELECT status, triggered_by, error_message, progress_current FROM runs')
        .get(),
      { status: 'failed', triggered_by: 'cron', error_message: 'source unreachable',
        progress_current: 3n });
    const next = value(db, "SELECT start_run('full')");
    assert.equal(next, 2n);
    assert.equal(value(db, 'SELECT cancel_run(?)', next), 'updated');
    assert.equal(value(db, 'SELECT cancel_run(?)', 99n), 'not_found');
    db.close();
  });

  test('one active run per concurrency key', () => {
    const db = migrated();
    assert.equal(value(db, 'SELECT start_run(?, ?, ?)', 'delta', 'api', 'k1'), 1);
    assert.equal(value(db, 'SELECT start_run(?)', 'full'), 2);
    assert.equal(value(db, 'SELECT active_run(?)', 'k1'), 1);
    assert.equal(value(db, 'SELECT active_run()'), 2);
    assertError(db, 'SELECT start_run(?, ?, ?)', ['x', 'api', 'k1'], 'SQLITE_CONSTRAINT_UNIQUE',
      new RegExp('^' + escape(
        "start_run(): run 1 is already active for concurrency_key 'k1' (scope 'delta', " +
        "status 'pending', since ") + TIMESTAMP + escape(')' + END_IT) + '$'));
    db.close();
  });
});

describe('argument errors', () => {
  test('a non-integral number is refused with the exact error', () => {
    const db = migrated();
    assertError(db, 'SELECT mark_run_running(?)', [1.5], 'SQLITE_ERROR',
      'mark_run_running(): id must be an integer, got real 1.5');
    assertError(db, 'SELECT complete_run(?)', [Number.MAX_VALUE], 'SQLITE_ERROR',
      'complete_run(): id is out of the 64-bit integer range, got real 1.7976931348623157e+308');
    assertError(db, 'SELECT update_run_progress(?, ?, ?, ?)', [1, 0.5, 10, null], 'SQLITE_ERROR',
      'update_run_progress(): current must be an integer, got real 0.5');
    assertError(db, 'SELECT update_run_progress(?, ?, ?, ?)', [1, -1, 10, null], 'SQLITE_ERROR',
      'update_run_progress(): current must not be negative, got -1');
    assertError(db, 'SELECT cancel_run(?)', ['one'], 'SQLITE_ERROR',
      'cancel_run(): id must be an integer, got text');
    // A string that spells an integer is that id, as for an INTEGER column.
    assert.equal(db.prepare('SELECT run_status(?)').pluck().get('1'), null);
    assertError(db, 'SELECT start_run(?)', [1], 'SQLITE_ERROR',
      'start_run(): scope must be text, got real');
    assertError(db, 'SELECT start_run(?)', [1n], 'SQLITE_ERROR',
      'start_run(): scope must be text, got integer');
    assertError(db, 'SELECT start_run(?)', [Buffer.from('full')], 'SQLITE_ERROR',
      'start_run(): scope must be text, got blob');
    assertError(db, 'SELECT start_run(?)', [''], 'SQLITE_ERROR',
      'start_run(): scope must not be empty');
    assertError(db, 'SELECT start_run(?)', ['s'.repeat(1025)], 'SQLITE_TOOBIG',
      'start_run(): scope is too long (1025 bytes, at most 1024)');
    assertError(db, 'SELECT fail_run(?, ?)', [1, 2], 'SQLITE_ERROR',
      'fail_run(): error_message must be text, got real');
    assert.equal(value(db, 'SELECT count(*) FROM runs'), 0);
    db.close();
  });

  test('wrong number of arguments is SQLite\'s own error', () => {
    const db = migrated();
    assert.throws(() => db.prepare('SELECT start_run()'),
      { code: 'SQLITE_ERROR', message: 'wrong number of arguments to function start_run()' });
    db.close();
  });

  test('an unmigrated database says what to do', () => {
    const db = open();
    assertError(db, 'SELECT start_run(?)', ['full'], 'SQLITE_ERROR',
      'start_run(): the database has no runs schema: run SELECT runs_migrate() first');
    db.close();
  });
});

describe('transactions', () => {
  test('start_run inside db.transaction() is refused, and joins db.transaction().immediate()', () => {
    const db = migrated();
    const startInTransaction = db.transaction(() => value(db, "SELECT start_run('full')"));
    assert.throws(startInTransaction, {
      code: 'SQLITE_ERROR',
      message: 'start_run(): cannot run inside a transaction that does not hold the write lock: ' +
        'begin it with BEGIN IMMEDIATE, or call it outside any transaction',
    });
    assert.equal(db.inTransaction, false);
    // BEGIN IMMEDIATE: the run commits or rolls back with the transaction.
    const startThenAbort = db.transaction(() => {
      value(db, "SELECT start_run('full')");
      throw new Error('abort');
    });
    assert.throws(() => startThenAbort.immediate(), { message: 'abort' });
    assert.equal(value(db, 'SELECT active_run()'), null);
    assert.equal(startInTransaction.immediate(), 1);
    assert.equal(value(db, 'SELECT active_run()'), 1);
    assert.equal(value(db, 'SELECT cancel_run(1)'), 'updated');
    assert.equal(value(db, "SELECT start_run('full')"), 2);
    // Transitions join the caller's transaction and roll back with it.
    assert.throws(db.transaction(() => {
      assert.equal(value(db, 'SELECT mark_run_running(?)', 2), 'updated');
      throw new Error('abort');
    }), { message: 'abort' });
    assert.equal(value(db, 'SELECT run_status(2)'), 'pending');
    db.close();
  });

  test('start_run while another statement is being iterated is refused', () => {
    const db = migrated();
    for (const scope of ['a', 'b', 'c']) {
      const id = value(db, 'SELECT start_run(?)', scope);
      assert.equal(value(db, 'SELECT cancel_run(?)', id), 'updated');
    }
    const ids = [];
    for (const id of db.prepare('SELECT id FROM runs ORDER BY id').pluck().iterate()) {
      ids.push(id);
      if (id === 1) {
        assert.throws(() => db.prepare("SELECT start_run('full')").get(), {
          code: 'SQLITE_ERROR',
          message: 'start_run(): must be a statement of its own, with no FROM clause: this ' +
            'statement, or another one of this connection still being stepped, holds a read ' +
            'transaction',
        });
      }
    }
    assert.deepEqual(ids, [1, 2, 3]);
    assert.equal(value(db, "SELECT start_run('full')"), 4);
    db.close();
  });
});

describe('two connections to one file', () => {
  test('a run started by one connection blocks the other', () => {
    const file = fileDb();
    const a = migrated(file);
    const b = open(file);
    assert.equal(value(a, "SELECT start_run('full', 'worker-a')"), 1);
    assertError(b, "SELECT start_run('full', 'worker-b')", [], 'SQLITE_CONSTRAINT_UNIQUE',
      /^start_run\(\): run 1 is already active \(scope 'full', status 'pending', since /);
    assert.equal(value(b, 'SELECT active_run()'), 1);
    assert.equal(value(b, 'SELECT cancel_run(?)', 1), 'updated');
    assert.equal(value(b, "SELECT start_run('full', 'worker-b')"), 2);
    assert.deepEqual(a.prepare('SELECT id, status, triggered_by FROM runs ORDER BY id').all(), [
      { id: 1, status: 'cancelled', triggered_by: 'worker-a' },
      { id: 2, status: 'pending', triggered_by: 'worker-b' },
    ]);
    a.close();
    b.close();
  });

  test('a writer holding the lock gives SQLITE_BUSY once busy_timeout runs out', () => {
    const file = fileDb();
    const a = migrated(file);
    const b = open(file, { timeout: 0 });
    a.exec('BEGIN IMMEDIATE');
    assertError(b, "SELECT start_run('full')", [], 'SQLITE_BUSY',
      'start_run(): the database is locked by another writer and busy_timeout ran out: ' +
      'retry, or give the connection a longer busy_timeout');
    a.exec('COMMIT');
    assert.equal(value(b, "SELECT start_run('full')"), 1);
    a.close();
    b.close();
  });

  test('a read-only connection reads runs but cannot start one', () => {
    const file = fileDb();
    const writer = migrated(file);
    assert.equal(value(writer, "SELECT start_run('full')"), 1);
    const reader = open(file, { readonly: true });
    assert.equal(value(reader, 'SELECT active_run()'), 1);
    assert.equal(value(reader, 'SELECT run_status(?)', 1), 'pending');
    assertError(reader, "SELECT start_run('delta', 'api', 'k')", [], 'SQLITE_READONLY',
      'start_run(): the database is read-only: open it read-write to change runs');
    assertError(reader, 'SELECT complete_run(?)', [1], 'SQLITE_READONLY',
      'complete_run(): the database is read-only: open it read-write to change runs');
    reader.close();
    writer.close();
  });
});
