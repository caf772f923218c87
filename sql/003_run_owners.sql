-- sqlite-runs migration 003: run owners, leases, cancel requests, and the
-- state machine, enforced by the database against every writer.
--
-- Each run records the process that owns it: host name, the kernel's boot id
-- and pid namespace (pids compare only within one boot and one namespace),
-- pid and the process start time (so a reused pid is not taken for the
-- owner). Plus the last heartbeat, the lease (NULL: no time-based expiry) and
-- when a cancel was requested. Runs created before this migration have no
-- owner: nothing can tell whether they are abandoned, so only a person ends
-- them (cancel_run() or fail_run()).
--
-- The triggers refuse, from any writer:
--   * a status other than pending, running, completed, failed, cancelled;
--   * a status change other than pending -> running, failed, cancelled and
--     running -> completed, failed, cancelled (a finished run stays finished);
--   * a second active run for a concurrency_key, before conflict resolution,
--     so INSERT OR REPLACE cannot delete the active run and INSERT OR IGNORE
--     or ON CONFLICT DO NOTHING cannot drop the new one silently;
--   * an INSERT that reuses the id of an existing run (REPLACE would delete
--     history); ids of 0 and below, which the functions never write, are not
--     checked.
-- RAISE() takes only a literal, so each refused change has its own line.
--
-- Apply after 002, with `SELECT runs_migrate()`, a migration tool, or by hand:
--   sqlite3 -bail app.db < sql/003_run_owners.sql
-- A database whose runs hold another status is refused and left unchanged;
-- so is one without 002, and one where 003 is already recorded.
SAVEPOINT runs_migration_003;

-- Recording the version first: a version already recorded rolls back the
-- file at once, and what follows then fails without changing anything.
INSERT OR ROLLBACK INTO main.runs_schema_migrations (version, name, applied_at)
VALUES (3, '003_run_owners', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));

ALTER TABLE main.runs ADD COLUMN owner_host TEXT;
ALTER TABLE main.runs ADD COLUMN owner_boot_id TEXT;
ALTER TABLE main.runs ADD COLUMN owner_pid_ns INTEGER;
ALTER TABLE main.runs ADD COLUMN owner_pid INTEGER;
ALTER TABLE main.runs ADD COLUMN owner_start_time INTEGER;
ALTER TABLE main.runs ADD COLUMN heartbeat_at TEXT;
ALTER TABLE main.runs ADD COLUMN lease_seconds INTEGER;
ALTER TABLE main.runs ADD COLUMN lease_expires_at TEXT;
ALTER TABLE main.runs ADD COLUMN cancel_requested_at TEXT;

CREATE TRIGGER main.runs_insert_guard BEFORE INSERT ON runs
BEGIN
  SELECT RAISE(ABORT, 'runs: unknown status: a run is pending, running, completed, failed or cancelled')
   WHERE NEW.status IS NULL
      OR NEW.status NOT IN ('pending', 'running', 'completed', 'failed', 'cancelled');
  -- NEW.id reads -1 when the INSERT leaves the id to SQLite; the functions'
  -- ids are positive.
  SELECT RAISE(ABORT, 'runs: a run with this id exists: runs are never replaced')
   WHERE NEW.id > 0 AND EXISTS (SELECT 1 FROM runs WHERE id = NEW.id);
  SELECT RAISE(ABORT, 'runs: this concurrency_key already has an active run: end it first')
   WHERE NEW.status IN ('pending', 'running')
     AND EXISTS (SELECT 1 FROM runs
                  WHERE concurrency_key = NEW.concurrency_key AND status IN ('pending', 'running'));
END;

CREATE TRIGGER main.runs_one_active_guard BEFORE UPDATE OF status, concurrency_key ON runs
WHEN NEW.status IN ('pending', 'running')
BEGIN
  SELECT RAISE(ABORT, 'runs: this concurrency_key already has an active run: end it first')
   WHERE EXISTS (SELECT 1 FROM runs
                  WHERE concurrency_key = NEW.concurrency_key AND status IN ('pending', 'running')
                    AND id <> OLD.id);
END;

CREATE TRIGGER main.runs_status_guard BEFORE UPDATE OF status ON runs
WHEN NEW.status IS NOT OLD.status
BEGIN
  SELECT CASE
    WHEN OLD.status = 'pending' AND NEW.status IN ('running', 'failed', 'cancelled') THEN NULL
    WHEN OLD.status = 'running' AND NEW.status IN ('completed', 'failed', 'cancelled') THEN NULL
    WHEN OLD.status = 'pending' AND NEW.status = 'completed' THEN
      RAISE(ABORT, 'runs: illegal status change from pending to completed: a run must be running first')
    WHEN OLD.status = 'running' AND NEW.status = 'pending' THEN
      RAISE(ABORT, 'runs: illegal status change from running to pending: a run never goes back')
    WHEN OLD.status = 'completed' AND NEW.status = 'pending' THEN
      RAISE(ABORT, 'runs: illegal status change from completed to pending: a finished run never changes status')
    WHEN OLD.status = 'completed' AND NEW.status = 'running' THEN
      RAISE(ABORT, 'runs: illegal status change from completed to running: a finished run never changes status')
    WHEN OLD.status = 'completed' AND NEW.status = 'failed' THEN
      RAISE(ABORT, 'runs: illegal status change from completed to failed: a finished run never changes status')
    WHEN OLD.status = 'completed' AND NEW.status = 'cancelled' THEN
      RAISE(ABORT, 'runs: illegal status change from completed to cancelled: a finished run never changes status')
    WHEN OLD.status = 'failed' AND NEW.status = 'pending' THEN
      RAISE(ABORT, 'runs: illegal status change from failed to pending: a finished run never changes status')
    WHEN OLD.status = 'failed' AND NEW.status = 'running' THEN
      RAISE(ABORT, 'runs: illegal status change from failed to running: a finished run never changes status')
    WHEN OLD.status = 'failed' AND NEW.status = 'completed' THEN
      RAISE(ABORT, 'runs: illegal status change from failed to completed: a finished run never changes status')
    WHEN OLD.status = 'failed' AND NEW.status = 'cancelled' THEN
      RAISE(ABORT, 'runs: illegal status change from failed to cancelled: a finished run never changes status')
    WHEN OLD.status = 'cancelled' AND NEW.status = 'pending' THEN
      RAISE(ABORT, 'runs: illegal status change from cancelled to pending: a finished run never changes status')
    WHEN OLD.status = 'cancelled' AND NEW.status = 'running' THEN
      RAISE(ABORT, 'runs: illegal status change from cancelled to running: a finished run never changes status')
    WHEN OLD.status = 'cancelled' AND NEW.status = 'completed' THEN
      RAISE(ABORT, 'runs: illegal status change from cancelled to completed: a finished run never changes status')
    WHEN OLD.status = 'cancelled' AND NEW.status = 'failed' THEN
      RAISE(ABORT, 'runs: illegal status change from cancelled to failed: a finished run never changes status')
    ELSE
      RAISE(ABORT, 'runs: unknown status: a run is pending, running, completed, failed or cancelled')
  END;
END;

-- The checks come last, so that a refusal rolls back everything above, even
-- in a shell that goes on after errors (no -bail). Touching the version row
-- fires them.
CREATE TEMP TRIGGER runs_migration_003_check BEFORE UPDATE ON main.runs_schema_migrations
WHEN NEW.version = 3
BEGIN
  SELECT RAISE(ROLLBACK, 'migration 003 needs migration 002 first: apply sql/002_one_active_run.sql')
   WHERE NOT EXISTS (SELECT 1 FROM main.runs_schema_migrations WHERE version = 2);
  SELECT RAISE(ROLLBACK, 'migration 003 refused: runs holds a status other than pending, running, completed, failed or cancelled; correct those rows, then migrate again')
   WHERE EXISTS (SELECT 1 FROM main.runs
                  WHERE status NOT IN ('pending', 'running', 'completed', 'failed', 'cancelled'));
END;
UPDATE main.runs_schema_migrations SET applied_at = applied_at WHERE version = 3;
DROP TRIGGER temp.runs_migration_003_check;

RELEASE runs_migration_003;
