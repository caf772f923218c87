-- The life of runs in the sqlite3 shell: migrate, start, refuse a second
-- active run, every transition with each of its three results, progress,
-- run_status and concurrency keys. Each line of output is "label|result".
-- Timestamps vary, so they are checked by shape (GLOB) and order; the
-- refusal messages quote one, so the script pins it first with an UPDATE.
.bail on
.open lifecycle.db
.load EXTENSION
.nullvalue NULL

SELECT 'version', runs_version();
SELECT 'migrate', runs_migrate();
SELECT 'migrate again', runs_migrate();
SELECT 'migrations', version, name, applied_at GLOB '????-??-??T??:??:??.???Z'
  FROM runs_schema_migrations ORDER BY version;
SELECT 'index', name, tbl_name FROM sqlite_schema WHERE name = 'runs_one_active';
SELECT 'no active run', active_run();

-- start_run() returns the new id; the caller's last_insert_rowid() is kept.
CREATE TABLE notes (text TEXT);
INSERT INTO notes VALUES ('before');
SELECT 'start', start_run('full');
SELECT 'last_insert_rowid kept', last_insert_rowid();
SELECT 'active', active_run();
SELECT 'status', run_status(1);
SELECT 'row', id, scope, status, triggered_by, quote(concurrency_key), quote(started_at),
       quote(finished_at), quote(error_message), progress_current, progress_total,
       quote(current_step), created_at GLOB '????-??-??T??:??:??.???Z'
  FROM runs;

-- The refusal quotes created_at of the pending run: pin it.
UPDATE runs SET created_at = '2000-01-02T03:04:05.678Z' WHERE id = 1;

-- From here on, statements fail on purpose, and the shell must go on.
.bail off
SELECT 'second start', start_run('full');
SELECT 'second start, other scope', start_run('delta', 'cron');
SELECT 'runs after refusals', count(*) FROM runs;

-- pending -> running sets started_at.
SELECT 'mark_run_running', mark_run_running(1);
SELECT 'mark_run_running again', mark_run_running(1);
SELECT 'mark_run_running unknown', mark_run_running(99);
SELECT 'started', status, started_at GLOB '????-??-??T??:??:??.???Z', started_at >= created_at,
       quote(finished_at)
  FROM runs WHERE id = 1;
-- A running run is quoted with its started_at.
UPDATE runs SET started_at = '2000-01-02T03:04:06.000Z' WHERE id = 1;
SELECT 'start while running', start_run('full');

-- Progress, while active only; current_step may be NULL.
SELECT 'progress', update_run_progress(1, 5, 10, 'extract');
SELECT 'progress row', progress_current, progress_total, current_step FROM runs WHERE id = 1;
SELECT 'progress, no step', update_run_progress(1, 10, 10, NULL);
SELECT 'progress row', progress_current, progress_total, quote(current_step) FROM runs WHERE id = 1;
SELECT 'progress, unknown total', update_run_progress(1, 11, 0, '');
SELECT 'progress row', progress_current, progress_total, quote(current_step) FROM runs WHERE id = 1;
SELECT 'progress unknown', update_run_progress(99, 0, 0, NULL);

-- running -> completed sets finished_at; the key is free again.
SELECT 'complete', complete_run(1);
SELECT 'complete again', complete_run(1);
SELECT 'complete unknown', complete_run(99);
SELECT 'completed', status, finished_at GLOB '????-??-??T??:??:??.???Z',
       finished_at >= started_at, quote(error_message)
  FROM runs WHERE id = 1;
SELECT 'status', run_status(1);
SELECT 'no active run', active_run();
SELECT 'finished run refuses', mark_run_running(1), fail_run(1, 'x'), cancel_run(1),
       update_run_progress(1, 1, 1, NULL);

-- pending -> failed: complete_run() needs a running run.
SELECT 'start', start_run('full', 'cron');
SELECT 'complete pending', complete_run(2);
SELECT 'fail', fail_run(2, 'source unreachable');
SELECT 'fail again', fail_run(2, 'again');
SELECT 'fail unknown', fail_run(99, 'x');
SELECT 'failed', status, triggered_by, error_message, quote(started_at),
       finished_at GLOB '????-??-??T??:??:??.???Z'
  FROM runs WHERE id = 2;

-- running -> cancelled; pending -> cancelled.
SELECT 'start', start_run('full');
SELECT 'mark_run_running', mark_run_running(3);
SELECT 'cancel', cancel_run(3);
SELECT 'cancel again', cancel_run(3);
SELECT 'cancel unknown', cancel_run(99);
SELECT 'start', start_run('full');
SELECT 'cancel pending', cancel_run(4);
SELECT 'cancelled', id, status, quote(error_message),
       finished_at GLOB '????-??-??T??:??:??.???Z'
  FROM runs WHERE id IN (3, 4) ORDER BY id;

-- One active run per concurrency key; '' is the default key.
SELECT 'start k1', start_run('delta', 'api', 'k1');
SELECT 'start default key', start_run('full');
SELECT 'start k2', start_run('delta', 'cron', 'k2');
SELECT 'active', active_run(), active_run(''), active_run('k1'), active_run('k2'),
       active_run('k3');
UPDATE runs SET created_at = '2000-01-02T03:04:07.000Z' WHERE id = 5;
SELECT 'second start k1', start_run('full', 'api', 'k1');
-- A key is quoted as SQL quotes it.
SELECT 'start quoted key', start_run('it''s', 'api', 'o''clock');
UPDATE runs SET created_at = '2000-01-02T03:04:08.000Z' WHERE id = 8;
SELECT 'second start quoted key', start_run('x', 'api', 'o''clock');
SELECT 'keys', id, scope, status, triggered_by, quote(concurrency_key)
  FROM runs WHERE id >= 5 ORDER BY id;
SELECT 'cancel k1', cancel_run(5);
SELECT 'cancel default key', cancel_run(6);
SELECT 'complete pending k2', complete_run(7);
SELECT 'mark_run_running k2', mark_run_running(7);
SELECT 'complete k2', complete_run(7);
SELECT 'cancel quoted key', cancel_run(8);
SELECT 'no active run', active_run(), active_run('k1'), active_run('k2'), active_run('o''clock');

-- An id may be a REAL with an integral value.
SELECT 'real id', run_status(2.0), run_status(99), mark_run_running(3.0);

SELECT 'all', id, scope, status FROM runs ORDER BY id;
SELECT 'notes', rowid, text FROM notes;
