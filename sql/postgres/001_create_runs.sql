-- sqlite-runs for PostgreSQL, migration 001: the run table and the migration
-- bookkeeping, in the first schema of search_path (current_schema()).
--
-- The same columns as sql/001_create_runs.sql for SQLite. What differs: `id`
-- is a bigint identity (GENERATED ALWAYS: writers never choose ids) and the
-- time columns are timestamptz; the functions (migration 003) return times as
-- the same UTC text as on SQLite, 2026-01-01T00:00:00.000Z.
--
-- Apply every file in order, each in one transaction (docs/postgres.md):
--   psql -v ON_ERROR_STOP=1 --single-transaction -f sql/postgres/001_create_runs.sql
-- Applied twice, or on a database that already has a runs table, it fails
-- and, being one transaction, changes nothing.

-- Concurrent appliers take turns on a lock that ends with the transaction
-- (1920298611 is 'runs' in ASCII; it is never a process id, see 003).
-- A refusal names the schema where the table was found (any of search_path).
DO $migration$
DECLARE
  migrations_in text;
  runs_in text;
BEGIN
  PERFORM pg_advisory_xact_lock(1920298611, 0);
  migrations_in := (SELECT c.relnamespace::regnamespace::text FROM pg_catalog.pg_class AS c
                     WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('runs_schema_migrations'));
  runs_in := (SELECT c.relnamespace::regnamespace::text FROM pg_catalog.pg_class AS c
                     WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('runs'));
  IF migrations_in IS NOT NULL THEN
    RAISE EXCEPTION 'migration 001 is already applied: runs_schema_migrations exists in schema %', migrations_in
      USING ERRCODE = 'duplicate_table';
  END IF;
  IF runs_in IS NOT NULL THEN
    RAISE EXCEPTION 'migration 001 refused: a table runs exists already in schema %; rename it or apply the migrations in another schema', runs_in
      USING ERRCODE = 'duplicate_table';
  END IF;
END
$migration$;

CREATE TABLE runs_schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL
);

CREATE TABLE runs (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  scope            text NOT NULL,
  status           text NOT NULL DEFAULT 'pending',
  started_at       timestamptz,
  finished_at      timestamptz,
  triggered_by     text NOT NULL DEFAULT 'api',
  error_message    text,
  progress_current bigint DEFAULT 0,
  progress_total   bigint DEFAULT 0,
  current_step     text,
  created_at       timestamptz NOT NULL
);

INSERT INTO runs_schema_migrations (version, name, applied_at)
VALUES (1, '001_create_runs', date_trunc('milliseconds', clock_timestamp()));
