-- sqlite-runs for PostgreSQL, migration 003: run owners, leases, cancel
-- requests, and the state machine. The functions that use them are in
-- sql/postgres/functions.sql, applied after the migrations.
--
-- Owner columns, as on SQLite (sql/003_run_owners.sql), but the owner is a
-- database session rather than an operating system process:
--   owner_host        the client's address as the server sees it, or '[local]'
--                     for a Unix socket (for people; never compared)
--   owner_boot_id     when the server started (pg_postmaster_start_time(), UTC
--                     text with microseconds): a restart ends every session
--   owner_pid_ns      NULL: pids need no namespace here
--   owner_pid         the session's backend process id (pg_backend_pid())
--   owner_start_time  when that session began, microseconds since 1970
--                     (pg_stat_activity.backend_start), so a reused backend
--                     pid is not taken for the owner
--
-- How the functions fill and judge these columns: sql/postgres/functions.sql.
--
-- Triggers refuse, from any writer: a status outside the five; an illegal
-- status change (both statuses named); a second active run of a key (before
-- ON CONFLICT, so DO NOTHING cannot drop it silently); an INSERT reusing an id.
--
-- Apply after 002, in one transaction, then sql/postgres/functions.sql:
--   psql -v ON_ERROR_STOP=1 --single-transaction -f sql/postgres/003_run_owners.sql

DO $migration$
BEGIN
  PERFORM pg_advisory_xact_lock(1920298611, 0);
  -- Two IFs: a query naming a missing table would fail before any test.
  IF to_regclass('runs_schema_migrations') IS NULL THEN
    RAISE EXCEPTION 'migration 003 needs migration 002 first: apply sql/postgres/002_one_active_run.sql'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM runs_schema_migrations WHERE version = 2) THEN
    RAISE EXCEPTION 'migration 003 needs migration 002 first: apply sql/postgres/002_one_active_run.sql'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF EXISTS (SELECT 1 FROM runs_schema_migrations WHERE version = 3) THEN
    RAISE EXCEPTION 'migration 003 is already applied in schema %', current_schema()
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF EXISTS (SELECT 1 FROM runs
              WHERE status NOT IN ('pending', 'running', 'completed', 'failed', 'cancelled')) THEN
    RAISE EXCEPTION 'migration 003 refused: runs holds a status other than pending, running, completed, failed or cancelled; correct those rows, then migrate again'
      USING ERRCODE = 'check_violation';
  END IF;
END
$migration$;

INSERT INTO runs_schema_migrations (version, name, applied_at)
VALUES (3, '003_run_owners', date_trunc('milliseconds', clock_timestamp()));

ALTER TABLE runs
  ADD COLUMN owner_host text,
  ADD COLUMN owner_boot_id text,
  ADD COLUMN owner_pid_ns bigint,
  ADD COLUMN owner_pid integer,
  ADD COLUMN owner_start_time bigint,
  ADD COLUMN heartbeat_at timestamptz,
  ADD COLUMN lease_seconds bigint,
  ADD COLUMN lease_expires_at timestamptz,
  ADD COLUMN cancel_requested_at timestamptz;

---------------------------------------------------------------------------
-- The state machine, enforced against every writer.
---------------------------------------------------------------------------

CREATE FUNCTION runs_insert_guard() RETURNS trigger LANGUAGE plpgsql
AS $$
BEGIN
  IF NEW.status IS NULL OR NEW.status NOT IN ('pending', 'running', 'completed', 'failed', 'cancelled') THEN
    RAISE EXCEPTION 'runs: unknown status: a run is pending, running, completed, failed or cancelled'
      USING ERRCODE = 'check_violation', TABLE = 'runs', COLUMN = 'status';
  END IF;
  IF EXISTS (SELECT 1 FROM runs WHERE id = NEW.id) THEN
    RAISE EXCEPTION 'runs: a run with this id exists: runs are never replaced'
      USING ERRCODE = 'unique_violation', TABLE = 'runs', CONSTRAINT = 'runs_pkey';
  END IF;
  IF NEW.status IN ('pending', 'running') AND EXISTS (
       SELECT 1 FROM runs
        WHERE concurrency_key = NEW.concurrency_key AND status IN ('pending', 'running')) THEN
    RAISE EXCEPTION 'runs: this concurrency_key already has an active run: end it first'
      USING ERRCODE = 'unique_violation', TABLE = 'runs', CONSTRAINT = 'runs_one_active';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER runs_insert_guard BEFORE INSERT ON runs
  FOR EACH ROW EXECUTE FUNCTION runs_insert_guard();

CREATE FUNCTION runs_update_guard() RETURNS trigger LANGUAGE plpgsql
AS $$
BEGIN
  IF NEW.status IS DISTINCT FROM OLD.status THEN
    IF NEW.status IS NULL OR NEW.status NOT IN ('pending', 'running', 'completed', 'failed', 'cancelled') THEN
      RAISE EXCEPTION 'runs: unknown status: a run is pending, running, completed, failed or cancelled'
        USING ERRCODE = 'check_violation', TABLE = 'runs', COLUMN = 'status';
    END IF;
    IF NOT ((OLD.status = 'pending' AND NEW.status IN ('running', 'failed', 'cancelled'))
            OR (OLD.status = 'running' AND NEW.status IN ('completed', 'failed', 'cancelled'))) THEN
      RAISE EXCEPTION '%', format('runs: illegal status change from %s to %s: %s', OLD.status, NEW.status,
          CASE WHEN OLD.status = 'pending' AND NEW.status = 'completed' THEN 'a run must be running first'
               WHEN OLD.status = 'running' AND NEW.status = 'pending' THEN 'a run never goes back'
               ELSE 'a finished run never changes status' END)
        USING ERRCODE = 'check_violation', TABLE = 'runs', COLUMN = 'status';
    END IF;
  END IF;
  IF NEW.status IN ('pending', 'running') AND EXISTS (
       SELECT 1 FROM runs
        WHERE concurrency_key = NEW.concurrency_key AND status IN ('pending', 'running')
          AND id <> OLD.id) THEN
    RAISE EXCEPTION 'runs: this concurrency_key already has an active run: end it first'
      USING ERRCODE = 'unique_violation', TABLE = 'runs', CONSTRAINT = 'runs_one_active';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER runs_update_guard BEFORE UPDATE OF status, concurrency_key ON runs
  FOR EACH ROW EXECUTE FUNCTION runs_update_guard();

-- The trigger functions resolve names in this schema only (then pg_temp), so
-- that a writer's search_path cannot send them to another table.
DO $migration$
BEGIN
  EXECUTE format('ALTER FUNCTION runs_insert_guard() SET search_path = %I, pg_temp', current_schema());
  EXECUTE format('ALTER FUNCTION runs_update_guard() SET search_path = %I, pg_temp', current_schema());
END
$migration$;
