-- sqlite-runs migration 004: owner identities that say when they are unknown,
-- the owner's time namespace, and the rest of the state machine.
--
-- Adds `owner_time_ns`, the inode of the owner's time namespace: a process in
-- another time namespace reads process start times shifted by its boot-time
-- offset, so start times compare only within one time namespace. NULL where
-- the kernel has no time namespaces.
--
-- An owner that could not read its identity used to record an empty boot id
-- and zeros; such rows now hold NULL in owner_boot_id, owner_pid_ns and
-- owner_start_time, which is how the library records an unknown identity: the
-- run is judged by its lease only. An empty owner_host becomes NULL too.
--
-- The triggers refuse, from any writer:
--   * changing a run's id (UPDATE ... SET id, UPDATE OR REPLACE ... SET id =
--     <another run's id>, which would delete that run): the id is the run's
--     fencing token and never changes;
--   * deleting an active (pending or running) run: end it first. Finished runs
--     may be deleted freely, so that history can be pruned.
-- With 003's triggers, INSERT OR REPLACE / REPLACE can replace no run either.
--
-- Apply after 003, with `SELECT runs_migrate()`, a migration tool, or by hand:
--   sqlite3 -bail app.db < sql/004_run_guards.sql
-- One where 004 is already recorded, or without 003, is refused and left
-- unchanged.
SAVEPOINT runs_migration_004;

-- Recording the version first: a version already recorded rolls back the
-- file at once, and what follows then fails without changing anything.
INSERT OR ROLLBACK INTO main.runs_schema_migrations (version, name, applied_at)
VALUES (4, '004_run_guards', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));

ALTER TABLE main.runs ADD COLUMN owner_time_ns INTEGER;

UPDATE main.runs
   SET owner_boot_id = NULL, owner_pid_ns = NULL, owner_start_time = NULL
 WHERE owner_boot_id = '' OR owner_pid_ns = 0 OR owner_start_time = 0;
UPDATE main.runs SET owner_host = NULL WHERE owner_host = '';

CREATE TRIGGER main.runs_id_guard BEFORE UPDATE OF id ON runs
WHEN NEW.id IS NOT OLD.id
BEGIN
  SELECT RAISE(ABORT, 'runs: the id of a run never changes: it is the run''s fencing token; start a new run instead');
END;

CREATE TRIGGER main.runs_delete_guard BEFORE DELETE ON runs
WHEN OLD.status IN ('pending', 'running')
BEGIN
  SELECT RAISE(ABORT, 'runs: an active run is never deleted: end it first with complete_run(), fail_run() or cancel_run(); finished runs may be deleted');
END;

-- The checks come last, so that a refusal rolls back everything above, even
-- in a shell that goes on after errors (no -bail). Touching the version row
-- fires them.
CREATE TEMP TRIGGER runs_migration_004_check BEFORE UPDATE ON main.runs_schema_migrations
WHEN NEW.version = 4
BEGIN
  SELECT RAISE(ROLLBACK, 'migration 004 needs migration 003 first: apply sql/003_run_owners.sql')
   WHERE NOT EXISTS (SELECT 1 FROM main.runs_schema_migrations WHERE version = 3);
END;
UPDATE main.runs_schema_migrations SET applied_at = applied_at WHERE version = 4;
DROP TRIGGER temp.runs_migration_004_check;

RELEASE runs_migration_004;
