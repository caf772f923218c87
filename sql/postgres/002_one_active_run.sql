-- sqlite-runs for PostgreSQL, migration 002: at most one active run per
-- concurrency key, as sql/002_one_active_run.sql does for SQLite.
--
-- Adds `concurrency_key` (default '': one active run per schema) and the
-- partial unique index `runs_one_active`. Rows written between 001 and 002 may
-- hold several active runs of one key; as on SQLite, the newest stays active
-- and every older one becomes `failed`, with a message that says why.
--
-- Apply after 001, in one transaction:
--   psql -v ON_ERROR_STOP=1 --single-transaction -f sql/postgres/002_one_active_run.sql

DO $migration$
DECLARE
  found_in text := (SELECT c.relnamespace::regnamespace::text FROM pg_catalog.pg_class AS c
                     WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('runs_schema_migrations'));
BEGIN
  PERFORM pg_advisory_xact_lock(1920298611, 0);
  -- Two IFs: a query naming a missing table would fail before any test.
  IF found_in IS NULL THEN
    RAISE EXCEPTION 'migration 002 needs migration 001 first: apply sql/postgres/001_create_runs.sql'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM runs_schema_migrations WHERE version = 1) THEN
    RAISE EXCEPTION 'migration 002 needs migration 001 first: apply sql/postgres/001_create_runs.sql'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF EXISTS (SELECT 1 FROM runs_schema_migrations WHERE version = 2) THEN
    RAISE EXCEPTION 'migration 002 is already applied in schema %', found_in
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
END
$migration$;

INSERT INTO runs_schema_migrations (version, name, applied_at)
VALUES (2, '002_one_active_run', date_trunc('milliseconds', clock_timestamp()));

ALTER TABLE runs ADD COLUMN concurrency_key text NOT NULL DEFAULT '';

UPDATE runs
   SET status = 'failed',
       finished_at = date_trunc('milliseconds', clock_timestamp()),
       error_message = 'abandoned: run ' || newest.id
         || ' was active for the same key at the same time; migration 002 kept the newest active run and failed this one'
  FROM (SELECT concurrency_key, max(id) AS id FROM runs
         WHERE status IN ('pending', 'running') GROUP BY concurrency_key) AS newest
 WHERE runs.concurrency_key = newest.concurrency_key
   AND runs.status IN ('pending', 'running')
   AND runs.id < newest.id;

-- PostgreSQL uses a partial index for any query whose WHERE implies the
-- index's; spelling it as on SQLite costs nothing.
CREATE UNIQUE INDEX runs_one_active ON runs (concurrency_key)
 WHERE status IN ('pending', 'running');
