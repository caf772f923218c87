-- The migration files in sql/ applied by hand with .read, as
-- `sqlite3 -bail app.db < sql/001_create_runs.sql` would, and through
-- runs_migrate(): the schema they create, the database refusing a second
-- active run and an illegal status change without the extension,
-- re-application and a wrong order that change nothing, and an existing runs
-- table adopted, with the duplicate active runs that migration 002 repairs.
-- Error lines name lines of the files in sql/.
.bail on
.nullvalue NULL

-- A fresh database migrated by hand, without the extension.
.open hand.db
.read SOURCE_DIR/sql/001_create_runs.sql
.read SOURCE_DIR/sql/002_one_active_run.sql
.read SOURCE_DIR/sql/003_run_owners.sql
SELECT 'migrations', version, name, applied_at GLOB '????-??-??T??:??:??.???Z'
  FROM runs_schema_migrations ORDER BY version;
SELECT 'columns', group_concat(name || ' ' || type || iif("notnull", ' NOT NULL', '')
                               || iif(dflt_value IS NULL, '', ' DEFAULT ' || dflt_value), ', ')
  FROM (SELECT * FROM pragma_table_info('runs') ORDER BY cid);
SELECT 'index', sql FROM sqlite_schema WHERE name = 'runs_one_active';
SELECT 'triggers', group_concat(name, ', ')
  FROM (SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'runs' ORDER BY name);
SELECT 'temp objects', count(*) FROM temp.sqlite_schema;
-- The extension finds the schema complete.
.load EXTENSION
SELECT 'runs_migrate', runs_migrate();
SELECT 'migrations', count(*) FROM runs_schema_migrations;
INSERT INTO runs (scope, created_at) VALUES ('full', '2026-01-02T03:04:05.678Z');
INSERT INTO runs (scope, concurrency_key, created_at) VALUES ('full', 'k', '2026-01-02T03:04:05.678Z');

-- From here on, statements fail on purpose, and the shell must go on.
.bail off

-- Migration 003's triggers (and the index under them) refuse a second active
-- run per key, and the state machine an illegal status change, from any writer.
INSERT INTO runs (scope, created_at) VALUES ('delta', '2026-01-02T03:04:06.000Z');
UPDATE runs SET status = 'running' WHERE id = 2;
UPDATE runs SET concurrency_key = '' WHERE id = 2;
SELECT 'start_run', start_run('delta');
SELECT 'active', active_run(), active_run('k');
UPDATE runs SET status = 'completed' WHERE id = 1;
UPDATE runs SET status = 'cancelled' WHERE id = 1;
INSERT INTO runs (scope, created_at) VALUES ('delta', '2026-01-02T03:04:06.000Z');
SELECT 'runs', id, scope, status, quote(concurrency_key) FROM runs ORDER BY id;

-- Applying a file again rolls it back: the errors change nothing.
.read SOURCE_DIR/sql/001_create_runs.sql
.read SOURCE_DIR/sql/002_one_active_run.sql
.read SOURCE_DIR/sql/003_run_owners.sql
SELECT 'migrations', version, name FROM runs_schema_migrations ORDER BY version;
SELECT 'temp objects', count(*) FROM temp.sqlite_schema;
SELECT 'runs', count(*), sum(status IN ('pending', 'running')) FROM runs;
SELECT 'runs_migrate', runs_migrate();

-- 002 before 001 creates nothing.
.open wrong-order.db
.read SOURCE_DIR/sql/002_one_active_run.sql
SELECT 'tables', count(*) FROM sqlite_schema;
SELECT 'temp objects', count(*) FROM temp.sqlite_schema;

-- An existing runs table (GenGlossary's, here missing created_at) is checked,
-- refused with the missing column named, and left as it was.
.open legacy.db
.load EXTENSION
CREATE TABLE runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending', started_at TEXT, finished_at TEXT,
  triggered_by TEXT NOT NULL DEFAULT 'api', error_message TEXT,
  progress_current INTEGER DEFAULT 0, progress_total INTEGER DEFAULT 0, current_step TEXT);
INSERT INTO runs (scope, status, started_at, finished_at) VALUES
  ('full', 'running', '2026-01-01T00:00:00.000Z', NULL),
  ('full', 'pending', NULL, NULL),
  ('delta', 'completed', '2026-01-01T00:00:01.000Z', '2026-01-01T00:00:02.000Z'),
  ('full', 'running', '2026-01-01T00:00:03.000Z', NULL),
  ('delta', 'cancelled', NULL, '2026-01-01T00:00:04.000Z');
SELECT 'runs_migrate', runs_migrate();
SELECT 'tables', group_concat(name, ', ') FROM (SELECT name FROM sqlite_schema ORDER BY name);
SELECT 'temp objects', count(*) FROM temp.sqlite_schema;
.read SOURCE_DIR/sql/001_create_runs.sql
SELECT 'tables', group_concat(name, ', ') FROM (SELECT name FROM sqlite_schema ORDER BY name);
SELECT 'temp objects', count(*) FROM temp.sqlite_schema;
SELECT 'start_run', start_run('full');

-- With the column added, the table is adopted. Three runs were active at
-- once: the newest (4) stays active, 1 and 2 are failed, none deleted.
ALTER TABLE runs ADD COLUMN created_at TEXT;
UPDATE runs SET created_at = '2026-01-01T00:00:00.000Z';
SELECT 'runs_migrate', runs_migrate();
SELECT 'migrations', version, name FROM runs_schema_migrations ORDER BY version;
SELECT 'runs', id, scope, status, quote(started_at),
       coalesce(finished_at GLOB '????-??-??T??:??:??.???Z', 'NULL'),
       quote(error_message), quote(concurrency_key)
  FROM runs ORDER BY id;
SELECT 'active', active_run();
SELECT 'start_run', start_run('full');
SELECT 'complete', complete_run(4);
SELECT 'start_run', start_run('full');
SELECT 'ids', group_concat(id, ',') FROM runs;
