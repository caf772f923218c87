-- sqlite-runs for PostgreSQL, migration 004: the rest of the state machine,
-- as sql/004_run_guards.sql does for SQLite, and hardened triggers.
--
-- Adds `owner_time_ns` (the owner's time namespace on SQLite; always NULL
-- here, as owner_pid_ns: an owner is a database session).
--
-- The triggers refuse, from any writer:
--   * changing a run's id (UPDATE ... SET id = DEFAULT; a GENERATED ALWAYS
--     identity refuses any other value already): the id is the run's fencing
--     token and never changes;
--   * deleting an active (pending or running) run, by DELETE or TRUNCATE: end
--     it first. Finished runs may be deleted freely, so that history can be
--     pruned.
-- And 003's two trigger functions are replaced by the same rules with every
-- operator and function schema-qualified (OPERATOR(pg_catalog.=)), so that no
-- object another role creates in this schema can run inside them with the
-- writer's rights (sql/postgres/functions.sql says why).
--
-- Apply after 003, in one transaction, then sql/postgres/functions.sql:
--   psql -v ON_ERROR_STOP=1 --single-transaction -f sql/postgres/004_run_guards.sql

DO $migration$
DECLARE
  found_in text := (SELECT c.relnamespace::regnamespace::text FROM pg_catalog.pg_class AS c
                     WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('runs_schema_migrations'));
  recorded integer[];
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(1920298611, 0);
  -- Read only where the table exists: a query naming a missing one fails.
  IF found_in IS NOT NULL THEN
    EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(version) FROM %I.runs_schema_migrations', found_in)
      INTO recorded;
  END IF;
  IF NOT coalesce(3 OPERATOR(pg_catalog.=) ANY (recorded), false) THEN
    RAISE EXCEPTION 'migration 004 needs migration 003 first: apply sql/postgres/003_run_owners.sql'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF 4 OPERATOR(pg_catalog.=) ANY (recorded) THEN
    RAISE EXCEPTION 'migration 004 is already applied in schema %', found_in
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  -- What the trigger functions below capture (SET search_path FROM CURRENT).
  PERFORM pg_catalog.set_config('search_path', pg_catalog.format('%I, pg_temp', found_in), false);
END
$migration$;

INSERT INTO runs_schema_migrations (version, name, applied_at)
VALUES (4, '004_run_guards', pg_catalog.date_trunc('milliseconds'::text, pg_catalog.clock_timestamp()));

ALTER TABLE runs ADD COLUMN owner_time_ns bigint;

-- The two rules both guards apply: a known status, and one active run per key
-- (other_than: the run being updated; NULL for an insert).
CREATE FUNCTION runs_guard_status(new_status text) RETURNS void LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  IF new_status IS NULL
     OR NOT (new_status OPERATOR(pg_catalog.=) ANY ('{pending,running,completed,failed,cancelled}'::text[])) THEN
    RAISE EXCEPTION 'runs: unknown status: a run is pending, running, completed, failed or cancelled'
      USING ERRCODE = 'check_violation', TABLE = 'runs', COLUMN = 'status';
  END IF;
END
$$;

CREATE FUNCTION runs_guard_one_active(new_status text, key text, other_than bigint) RETURNS void LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  IF new_status OPERATOR(pg_catalog.=) ANY ('{pending,running}'::text[]) AND EXISTS (
       SELECT 1 FROM runs AS r
        WHERE r.concurrency_key OPERATOR(pg_catalog.=) key
          AND r.status OPERATOR(pg_catalog.=) ANY ('{pending,running}'::text[])
          AND (other_than IS NULL OR r.id OPERATOR(pg_catalog.<>) other_than)) THEN
    RAISE EXCEPTION 'runs: this concurrency_key already has an active run: end it first'
      USING ERRCODE = 'unique_violation', TABLE = 'runs', CONSTRAINT = 'runs_one_active';
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION runs_insert_guard() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM runs_guard_status(NEW.status);
  IF EXISTS (SELECT 1 FROM runs WHERE id OPERATOR(pg_catalog.=) NEW.id) THEN
    RAISE EXCEPTION 'runs: a run with this id exists: runs are never replaced'
      USING ERRCODE = 'unique_violation', TABLE = 'runs', CONSTRAINT = 'runs_pkey';
  END IF;
  PERFORM runs_guard_one_active(NEW.status, NEW.concurrency_key, NULL::bigint);
  RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION runs_update_guard() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  IF NEW.status IS NULL OR OLD.status IS NULL OR NEW.status OPERATOR(pg_catalog.<>) OLD.status THEN
    PERFORM runs_guard_status(NEW.status);
    IF NOT ((OLD.status OPERATOR(pg_catalog.=) 'pending'
             AND NEW.status OPERATOR(pg_catalog.=) ANY ('{running,failed,cancelled}'::text[]))
            OR (OLD.status OPERATOR(pg_catalog.=) 'running'
                AND NEW.status OPERATOR(pg_catalog.=) ANY ('{completed,failed,cancelled}'::text[]))) THEN
      RAISE EXCEPTION '%', pg_catalog.format('runs: illegal status change from %s to %s: %s', OLD.status, NEW.status,
          CASE WHEN OLD.status OPERATOR(pg_catalog.=) 'pending' AND NEW.status OPERATOR(pg_catalog.=) 'completed'
               THEN 'a run must be running first'
               WHEN OLD.status OPERATOR(pg_catalog.=) 'running' AND NEW.status OPERATOR(pg_catalog.=) 'pending'
               THEN 'a run never goes back'
               ELSE 'a finished run never changes status' END)
        USING ERRCODE = 'check_violation', TABLE = 'runs', COLUMN = 'status';
    END IF;
  END IF;
  PERFORM runs_guard_one_active(NEW.status, NEW.concurrency_key, OLD.id);
  RETURN NEW;
END
$$;

CREATE FUNCTION runs_id_guard() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  IF NEW.id IS NULL OR NEW.id OPERATOR(pg_catalog.<>) OLD.id THEN
    RAISE EXCEPTION 'runs: the id of a run never changes: it is the run''s fencing token; start a new run instead'
      USING ERRCODE = 'check_violation', TABLE = 'runs', COLUMN = 'id';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER runs_id_guard BEFORE UPDATE OF id ON runs
  FOR EACH ROW EXECUTE FUNCTION runs_id_guard();

CREATE FUNCTION runs_delete_guard() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  -- TRUNCATE (a statement trigger): refused while any run is active.
  IF (CASE WHEN TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE'
           THEN EXISTS (SELECT 1 FROM runs WHERE status OPERATOR(pg_catalog.=) ANY ('{pending,running}'::text[]))
           ELSE OLD.status OPERATOR(pg_catalog.=) ANY ('{pending,running}'::text[]) END) THEN
    RAISE EXCEPTION 'runs: an active run is never deleted: end it first with complete_run(), fail_run() or cancel_run(); finished runs may be deleted'
      USING ERRCODE = 'check_violation', TABLE = 'runs';
  END IF;
  RETURN OLD;
END
$$;

CREATE TRIGGER runs_delete_guard BEFORE DELETE ON runs
  FOR EACH ROW EXECUTE FUNCTION runs_delete_guard();
CREATE TRIGGER runs_truncate_guard BEFORE TRUNCATE ON runs
  FOR EACH STATEMENT EXECUTE FUNCTION runs_delete_guard();
