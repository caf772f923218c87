-- sqlite-runs migration 002: at most one active run per concurrency key.
--
-- Adds `concurrency_key` (default '': one active run per database) and the
-- partial unique index `runs_one_active`, which makes the database itself
-- refuse a second `pending` or `running` run for a key, from any writer.
--
-- A database where the check-then-insert race already happened holds several
-- active runs for one key, and the index could not be built. So first the
-- newest active run of each key (highest id) stays active and every older one
-- becomes `failed`, with `finished_at` set and an `error_message` that says
-- why. No row is deleted.
--
-- Apply after 001, with `SELECT runs_migrate()`, a migration tool, or by hand:
--   sqlite3 -bail app.db < sql/002_one_active_run.sql
-- Re-applying it rolls it back whole. Use -bail: the shell goes on after an
-- error, so a file applied out of order would run its later statements alone.
SAVEPOINT runs_migration_002;

CREATE TEMP TRIGGER runs_migration_002_check BEFORE INSERT ON main.runs_schema_migrations
WHEN NOT EXISTS (SELECT 1 FROM main.runs_schema_migrations WHERE version = 1)
BEGIN
  SELECT RAISE(ROLLBACK, 'migration 002 needs migration 001 first: apply sql/001_create_runs.sql');
END;

-- Recording the version first: a version already recorded rolls back the file.
INSERT OR ROLLBACK INTO main.runs_schema_migrations (version, name, applied_at)
VALUES (2, '002_one_active_run', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));

DROP TRIGGER temp.runs_migration_002_check;

ALTER TABLE main.runs ADD COLUMN concurrency_key TEXT NOT NULL DEFAULT '';

UPDATE main.runs
   SET status = 'failed',
       finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
       error_message = 'abandoned: run ' || (
         SELECT max(newer.id) FROM main.runs AS newer
          WHERE newer.concurrency_key = runs.concurrency_key
            AND newer.status IN ('pending', 'running'))
         || ' was active for the same key at the same time; migration 002 kept the newest active run and failed this one'
 WHERE status IN ('pending', 'running')
   AND id < (SELECT max(newer.id) FROM main.runs AS newer
              WHERE newer.concurrency_key = runs.concurrency_key
                AND newer.status IN ('pending', 'running'));

-- The planner uses this index only for queries that spell the same condition:
-- status IN ('pending', 'running'), these literals, in this order.
CREATE UNIQUE INDEX main.runs_one_active ON runs (concurrency_key)
 WHERE status IN ('pending', 'running');

RELEASE runs_migration_002;
