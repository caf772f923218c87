-- Every error a caller can meet in the sqlite3 shell, with its exact text:
-- an unmigrated or half-migrated database, bad arguments, calls inside a
-- transaction or another statement, schema objects that call the
-- functions, a read-only database and a locked one. After each refusal the
-- script shows that nothing was written. The shell appends the result code
-- when it is not SQLITE_ERROR: (19) constraint, (18) too big, (8) read-only,
-- (5) busy.
.bail on
.open errors.db
.load EXTENSION
.nullvalue NULL
SELECT 'version', runs_version();

-- From here on, statements fail on purpose, and the shell must go on.
.bail off

-- A database without the runs schema: each function says what to do.
SELECT 'unmigrated', start_run('full');
SELECT 'unmigrated', active_run();
SELECT 'unmigrated', active_run('k');
SELECT 'unmigrated', run_status(1);
SELECT 'unmigrated', mark_run_running(1);
SELECT 'unmigrated', complete_run(1);
SELECT 'unmigrated', fail_run(1, 'x');
SELECT 'unmigrated', cancel_run(1);
SELECT 'unmigrated', update_run_progress(1, 0, 0, NULL);
SELECT 'tables', count(*) FROM sqlite_schema;

-- Only migration 001 applied, by hand: start_run() needs 002.
.read SOURCE_DIR/sql/001_create_runs.sql
SELECT 'migrations', version, name FROM runs_schema_migrations;
SELECT 'version 1', start_run('full');
SELECT 'version 1', active_run();
SELECT 'runs', count(*) FROM runs;
SELECT 'migrate', runs_migrate();
SELECT 'migrations', version, name FROM runs_schema_migrations ORDER BY version;
SELECT 'start', start_run('full');
SELECT 'cancel', cancel_run(1);

-- Arguments: text must be TEXT.
SELECT 'scope', start_run(1);
SELECT 'scope', start_run(1.5);
SELECT 'scope', start_run(x'66756c6c');
SELECT 'scope', start_run(NULL);
SELECT 'scope', start_run('');
SELECT 'triggered_by', start_run('full', 7);
SELECT 'triggered_by', start_run('full', '');
SELECT 'concurrency_key', start_run('full', 'api', 7);
SELECT 'concurrency_key', start_run('full', 'api', NULL);
SELECT 'concurrency_key', active_run(7);
SELECT 'error_message', fail_run(1, 1.5);
SELECT 'error_message', fail_run(1, 42);
SELECT 'current_step', update_run_progress(1, 0, 0, 3);
SELECT 'runs', count(*) FROM runs;

-- Lengths: 1024 bytes for names, 1048576 for error_message (SQLITE_TOOBIG).
SELECT 'scope', start_run(printf('%.*c', 1025, 's'));
SELECT 'triggered_by', start_run('full', printf('%.*c', 1025, 't'));
SELECT 'concurrency_key', start_run('full', 'api', printf('%.*c', 1025, 'k'));
SELECT 'concurrency_key', active_run(printf('%.*c', 1025, 'k'));
-- Lengths count bytes: 513 two-byte characters are 1026 bytes.
SELECT 'multi-byte scope', start_run(printf('%.*c', 513, 'é'));
SELECT 'longest', start_run(printf('%.*c', 1024, 's'), printf('%.*c', 1024, 't'),
                            printf('%.*c', 1024, 'k'));
SELECT 'current_step', update_run_progress(2, 0, 0, printf('%.*c', 1025, 'c'));
SELECT 'current_step', update_run_progress(2, 0, 0, printf('%.*c', 1024, 'c'));
SELECT 'error_message', fail_run(2, printf('%.*c', 1048577, 'e'));
SELECT 'error_message', fail_run(2, printf('%.*c', 1048576, 'e'));
SELECT 'longest run', id, length(scope), length(triggered_by), length(concurrency_key),
       length(current_step), status, length(error_message)
  FROM runs WHERE id = 2;
-- An empty error_message is allowed.
SELECT 'start', start_run('full');
SELECT 'empty error_message', fail_run(3, '');
SELECT 'failed', id, status, quote(error_message) FROM runs WHERE id = 3;

-- ids: an INTEGER, or a REAL with an integral value.
SELECT 'id', mark_run_running('1');
SELECT 'id', mark_run_running(1.5);
SELECT 'id', complete_run(-0.25);
SELECT 'id', fail_run(1e19, 'x');  -- not 1e300: inexact under valgrind (x87 emulation)
SELECT 'id', cancel_run(NULL);
SELECT 'id', run_status(x'01');
SELECT 'id', update_run_progress('1', 0, 0, NULL);
SELECT 'id', run_status(3.0), run_status(-1), run_status(9223372036854775807);

-- Progress counts: non-negative integers; current may exceed total (an estimate).
SELECT 'start', start_run('full');
SELECT 'current', update_run_progress(4, -1, 10, NULL);
SELECT 'total', update_run_progress(4, 0, -10, NULL);
SELECT 'current', update_run_progress(4, 1.5, 10, NULL);
SELECT 'total', update_run_progress(4, 1, '10', NULL);
SELECT 'current', update_run_progress(4, 11, 10, 'extract');
SELECT 'progress row', progress_current, progress_total, quote(current_step) FROM runs WHERE id = 4;
SELECT 'counts as reals', update_run_progress(4.0, 10.0, 10.0, 'done');
SELECT 'progress row', progress_current, progress_total, quote(current_step) FROM runs WHERE id = 4;

-- Wrong number of arguments: SQLite's own error.
SELECT 'arity', start_run();
SELECT 'arity', start_run('a', 'b', 'c', 1, 'e');
SELECT 'arity', fail_run(4);
SELECT 'arity', update_run_progress(4, 1, 2);
SELECT 'arity', runs_migrate(1);

-- runs_migrate() commits its own transaction: not inside the caller's, nor
-- inside another statement. start_run() joins the caller's transaction only
-- when it holds the write lock (BEGIN IMMEDIATE), never another statement.
BEGIN;
SELECT 'in transaction', start_run('other', 'api', 'k');
SELECT 'in transaction', runs_migrate();
-- Transitions do join the caller's transaction.
SELECT 'in transaction', mark_run_running(4);
SELECT 'in transaction', run_status(4);
ROLLBACK;
SELECT 'after rollback', run_status(4);
BEGIN IMMEDIATE;
SELECT 'in write transaction', start_run('other', 'api', 'k');
ROLLBACK;
SELECT 'with FROM', start_run('other', 'api', 'k') FROM runs WHERE id = 4;
SELECT 'with FROM', runs_migrate() FROM runs WHERE id = 4;
CREATE TABLE log (id INTEGER);
INSERT INTO log SELECT start_run('other', 'api', 'k');
INSERT INTO log SELECT runs_migrate();
CREATE TABLE checked (x INTEGER CHECK (start_run('other', 'api', 'k') > 0));
INSERT INTO checked VALUES (1);
SELECT 'nothing written', count(*), (SELECT count(*) FROM log), (SELECT count(*) FROM checked)
  FROM runs WHERE concurrency_key = 'k';
-- The connection is back in autocommit: the next call works.
SELECT 'start', start_run('other', 'api', 'k');
SELECT 'cancel', cancel_run(5);

-- Triggers and views cannot call the functions (SQLITE_DIRECTONLY);
-- runs_version() is innocuous.
CREATE VIEW starter AS SELECT start_run('view') AS id;
SELECT 'view', id FROM starter;
CREATE VIEW statuses AS SELECT run_status(4) AS status;
SELECT 'view', status FROM statuses;
CREATE VIEW versions AS SELECT runs_version() AS version;
SELECT 'view', version FROM versions;
CREATE TRIGGER log_starts AFTER INSERT ON log BEGIN SELECT start_run('trigger'); END;
INSERT INTO log VALUES (1);
DROP TRIGGER log_starts;
CREATE TRIGGER log_cancels AFTER INSERT ON log BEGIN SELECT cancel_run(4); END;
INSERT INTO log VALUES (2);
SELECT 'nothing written', count(*), (SELECT count(*) FROM log), run_status(4) FROM runs;

-- A read-only connection can read runs but not start, migrate or change them.
.open --readonly errors.db
.load EXTENSION
SELECT 'read-only', active_run(), run_status(4);
SELECT 'read-only', start_run('other', 'api', 'k');
SELECT 'read-only', runs_migrate();
SELECT 'read-only', mark_run_running(4);
SELECT 'read-only', update_run_progress(4, 1, 10, NULL);
SELECT 'read-only', cancel_run(4);

-- Another connection holds the write lock and busy_timeout is 0.
.open errors.db
.load EXTENSION
.connection 1
.open errors.db
.load EXTENSION
BEGIN IMMEDIATE;
.connection 0
.timeout 0
SELECT 'locked', start_run('other', 'api', 'k');
SELECT 'locked', runs_migrate();
SELECT 'locked', mark_run_running(4);
.connection 1
ROLLBACK;
.connection 0
SELECT 'unlocked', mark_run_running(4);
SELECT 'all', id, length(scope), status, length(triggered_by), length(concurrency_key)
  FROM runs ORDER BY id;
