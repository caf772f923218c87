-- sqlite-runs migration 001: the run table and the migration bookkeeping.
--
-- Creates `runs` (GenGlossary's run table) unless it exists. An existing `runs`
-- table is adopted as it is, provided it has every column below and `id` is
-- its INTEGER PRIMARY KEY; otherwise the migration fails, naming the first
-- missing column, and changes nothing. Names say `main.`, so that a TEMP
-- table called runs cannot take the migration's place.
--
-- Apply with `SELECT runs_migrate()`, a migration tool, or by hand:
--   sqlite3 -bail app.db < sql/001_create_runs.sql
-- The file is one SAVEPOINT, so it is atomic on its own and nests inside the
-- transaction of runs_migrate() or of a migration tool. Its guards roll the
-- whole file back (RAISE(ROLLBACK), INSERT OR ROLLBACK), so even without -bail
-- a refused or repeated application leaves the database as it was.
SAVEPOINT runs_migration_001;

CREATE TABLE IF NOT EXISTS main.runs_schema_migrations (
  version    INTEGER PRIMARY KEY,
  name       TEXT NOT NULL,
  applied_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS main.runs (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  scope            TEXT NOT NULL,
  status           TEXT NOT NULL DEFAULT 'pending',
  started_at       TEXT,
  finished_at      TEXT,
  triggered_by     TEXT NOT NULL DEFAULT 'api',
  error_message    TEXT,
  progress_current INTEGER DEFAULT 0,
  progress_total   INTEGER DEFAULT 0,
  current_step     TEXT,
  created_at       TEXT NOT NULL
);

-- RAISE() takes only a literal, so the check names each column in its own line.
CREATE TEMP TRIGGER runs_migration_001_check BEFORE INSERT ON main.runs_schema_migrations
BEGIN
  SELECT RAISE(ROLLBACK, 'table runs exists but has no column id: add it or rename the table, then migrate again')
   WHERE NOT EXISTS (SELECT 1 FROM pragma_table_info('runs', 'main') WHERE name = 'id');
  SELECT RAISE(ROLLBACK, 'table runs exists but its id column is not INTEGER PRIMARY KEY: run ids must be rowids')
   WHERE NOT EXISTS (SELECT 1 FROM pragma_table_info('runs', 'main')
                      WHERE name = 'id' AND pk = 1 AND upper(type) = 'INTEGER');
  SELECT RAISE(ROLLBACK, 'table runs exists but has no column scope: add it or rename the table, then migrate again')
   WHERE NOT EXISTS (SELECT 1 FROM pragma_table_info('runs', 'main') WHERE name = 'scope');
  SELECT RAISE(ROLLBACK, 'table runs exists but has no column status: add it or rename the table, then migrate again')
   WHERE NOT EXISTS (SELECT 1 FROM pragma_table_info('runs', 'main') WHERE name = 'status');
  SELECT RAISE(ROLLBACK, 'table runs exists but has no column started_at: add it or rename the table, then migrate again')
   WHERE NOT EXISTS (SELECT 1 FROM pragma_table_info('runs', 'main') WHERE name = 'started_at');
  SELECT RAISE(ROLLBACK, 'table runs exists but has no column finished_at: add it or rename the table, then migrate again')
   WHERE NOT EXISTS (SELECT 1 FROM pragma_table_info('runs', 'main') WHERE name = 'finished_at');
  SELECT RAISE(ROLLBACK, 'table runs exists but has no column triggered_by: add it or rename the table, then migrate again')
   WHERE NOT EXISTS (SELECT 1 FROM pragma_table_info('runs', 'main') WHERE name = 'triggered_by');
  SELECT RAISE(ROLLBACK, 'table runs exists but has no column error_message: add it or rename the table, then migrate again')
   WHERE NOT EXISTS (SELECT 1 FROM pragma_table_info('runs', 'main') WHERE name = 'error_message');
  SELECT RAISE(ROLLBACK, 'table runs exists but has no column progress_current: add it or rename the table, then migrate again')
   WHERE NOT EXISTS (SELECT 1 FROM pragma_table_info('runs', 'main') WHERE name = 'progress_current');
  SELECT RAISE(ROLLBACK, 'table runs exists but has no column progress_total: add it or rename the table, then migrate again')
   WHERE NOT EXISTS (SELECT 1 FROM pragma_table_info('runs', 'main') WHERE name = 'progress_total');
  SELECT RAISE(ROLLBACK, 'table runs exists but has no column current_step: add it or rename the table, then migrate again')
   WHERE NOT EXISTS (SELECT 1 FROM pragma_table_info('runs', 'main') WHERE name = 'current_step');
  SELECT RAISE(ROLLBACK, 'table runs exists but has no column created_at: add it or rename the table, then migrate again')
   WHERE NOT EXISTS (SELECT 1 FROM pragma_table_info('runs', 'main') WHERE name = 'created_at');
END;

-- Recording the version fires the check; a version already recorded rolls back.
INSERT OR ROLLBACK INTO main.runs_schema_migrations (version, name, applied_at)
VALUES (1, '001_create_runs', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));

DROP TRIGGER temp.runs_migration_001_check;

RELEASE runs_migration_001;
