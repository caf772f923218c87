-- sqlite-runs for PostgreSQL: the functions, with the names, arguments and
-- results of the SQLite extension (docs/functions/, docs/postgres.md).
--
-- Not a migration: the migrations (NNN_*.sql) hold the tables, indexes and
-- triggers; this file holds the functions and is applied after them, and again
-- after every upgrade of sqlite-runs. It only creates or replaces functions, so
-- it can be applied any number of times; it refuses a schema whose migrations
-- are not the ones it was written for.
--
--   psql -v ON_ERROR_STOP=1 --single-transaction -f sql/postgres/functions.sql
--
-- Owner columns (sql/postgres/003_run_owners.sql) hold a database session
-- rather than an operating system process:
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
-- Liveness: a session that becomes an owner (start_run, mark_run_running)
-- takes the session-level advisory lock (owner_pid, low 32 bits of
-- owner_start_time) and keeps it until it ends. The server releases it when
-- the session ends, however it ends: the client exits or is killed, its host
-- dies (once TCP keepalive notices), the server restarts. A run whose owner's
-- lock can be taken (pg_try_advisory_lock_shared succeeds, and is undone at
-- once) is abandoned. One lock per session, not per run: ownership moves
-- between sessions at mark_run_running(), and an advisory lock cannot be
-- handed to another session, nor is it released by ROLLBACK.
--
-- Every function resolves names in the schema it was created in, then pg_temp
-- (SET search_path FROM CURRENT, with the search_path set below), so that the
-- caller's search_path, or a temporary table called runs, cannot send it to
-- another table.

-- The schema the migrations were applied in: the first of search_path.
DO $functions$
BEGIN
  IF current_schema() IS NULL THEN
    RAISE EXCEPTION 'functions.sql: no schema of search_path exists: apply the migrations first'
      USING ERRCODE = 'invalid_schema_name';
  END IF;
  IF to_regclass(format('%I.runs_schema_migrations', current_schema())) IS NULL THEN
    RAISE EXCEPTION '%', format('functions.sql: schema %s has no runs_schema_migrations: apply the migrations (sql/postgres/0*.sql) first', current_schema())
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM runs_schema_migrations WHERE version = 3) THEN
    RAISE EXCEPTION '%', format('functions.sql needs migration 003 in schema %s: apply sql/postgres/0*.sql first', current_schema())
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF EXISTS (SELECT 1 FROM runs_schema_migrations WHERE version > 3) THEN
    RAISE EXCEPTION '%', format('functions.sql is older than the schema in %s (migration %s): apply the functions.sql of that release',
                                current_schema(), (SELECT max(version) FROM runs_schema_migrations))
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  -- What every function below captures (SET search_path FROM CURRENT). For
  -- the session, not the transaction, so that it holds whether or not the
  -- file runs in one transaction (it should).
  PERFORM set_config('search_path', format('%I, pg_temp', current_schema()), false);
END
$functions$;

---------------------------------------------------------------------------
-- Helpers. Internal: their names and arguments may change between releases.
---------------------------------------------------------------------------

-- Now, to the millisecond, as SQLite's strftime('%Y-%m-%dT%H:%M:%fZ').
-- clock_timestamp(), not now(): a heartbeat inside a long transaction must
-- not write the transaction's start time.
CREATE OR REPLACE FUNCTION runs_now() RETURNS timestamptz LANGUAGE sql VOLATILE
SET search_path FROM CURRENT
AS $$ SELECT date_trunc('milliseconds', clock_timestamp()) $$;

-- Where a renewed lease ends: lease_seconds after now_ts; a run without
-- lease_seconds keeps whatever end it has (as on SQLite).
CREATE OR REPLACE FUNCTION runs_lease_end(lease_seconds bigint, lease_expires_at timestamptz, now_ts timestamptz)
RETURNS timestamptz LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$ SELECT CASE WHEN lease_seconds IS NULL THEN lease_expires_at
                  ELSE now_ts + make_interval(secs => lease_seconds) END $$;

-- A time as the functions return it: UTC text with milliseconds.
CREATE OR REPLACE FUNCTION runs_text(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

-- 'text' quoted as SQL quotes it (as in SQLite's messages).
CREATE OR REPLACE FUNCTION runs_quoted(t text) RETURNS text LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$ SELECT '''' || replace(t, '''', '''''') || '''' $$;

-- This server's start: every session began after it.
CREATE OR REPLACE FUNCTION runs_server_boot() RETURNS text LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$ SELECT to_char(pg_postmaster_start_time() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

-- When the calling session began, microseconds since 1970.
CREATE OR REPLACE FUNCTION runs_session_start() RETURNS bigint LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$ SELECT (extract(epoch FROM backend_start) * 1000000)::bigint
        FROM pg_stat_get_activity(pg_backend_pid()) $$;

-- The second key of an owner session's advisory lock (the first is its pid).
CREATE OR REPLACE FUNCTION runs_owner_lock_objid(start_time bigint) RETURNS integer LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$ SELECT start_time::bit(32)::integer $$;

-- Argument checks, with the SQLite extension's messages.
CREATE OR REPLACE FUNCTION runs_check_text(fn text, name text, value text, empty_allowed boolean,
                                max_bytes integer DEFAULT 1024)
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
BEGIN
  IF value IS NULL THEN
    RAISE EXCEPTION USING MESSAGE = format('%s(): %s must be text, got NULL', fn, name),
                          ERRCODE = 'invalid_parameter_value';
  END IF;
  IF value = '' AND NOT empty_allowed THEN
    RAISE EXCEPTION USING MESSAGE = format('%s(): %s must not be empty', fn, name),
                          ERRCODE = 'invalid_parameter_value';
  END IF;
  IF octet_length(value) > max_bytes THEN
    RAISE EXCEPTION USING MESSAGE = format('%s(): %s is too long (%s bytes, at most %s)',
                                           fn, name, octet_length(value), max_bytes),
                          ERRCODE = 'string_data_right_truncation';
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION runs_check_integer(fn text, name text, value bigint) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
BEGIN
  IF value IS NULL THEN
    RAISE EXCEPTION USING MESSAGE = format('%s(): %s must be an integer, got NULL', fn, name),
                          ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;

-- Makes the calling session an owner: takes its advisory lock, once per
-- session in effect (taking it again only counts up). Done before the session
-- writes itself into a run, so a committed run's owner always holds it. Waits
-- only while another session probes the key (microseconds).
CREATE OR REPLACE FUNCTION runs_claim_owner_lock() RETURNS void LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM pg_advisory_lock(pg_backend_pid(), runs_owner_lock_objid(runs_session_start()));
END
$$;

-- True when no session holds the owner lock (pid, objid of start_time): the
-- owner session has ended. Takes the lock in shared mode and gives it back at
-- once, so probes of one owner never disturb each other.
CREATE OR REPLACE FUNCTION runs_owner_gone(pid integer, start_time bigint) RETURNS boolean LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  objid constant integer := runs_owner_lock_objid(start_time);
BEGIN
  IF pg_try_advisory_lock_shared(pid, objid) THEN
    PERFORM pg_advisory_unlock_shared(pid, objid);
    RETURN true;
  END IF;
  RETURN false;
END
$$;

-- True when the run's owner is the calling session.
CREATE OR REPLACE FUNCTION runs_owned_by_me(r runs) RETURNS boolean LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
  SELECT r.owner_pid IS NOT NULL AND r.owner_pid = pg_backend_pid()
     AND r.owner_start_time = runs_session_start()
     AND r.owner_boot_id = runs_server_boot()
$$;

-- Why the active run r is abandoned ('abandoned: ...'), or NULL while its
-- owner may still be working. Exact for the owner session (its lock); the
-- lease, when there is one, ends any run whose owner stopped heartbeating.
CREATE OR REPLACE FUNCTION runs_stale_reason(r runs) RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  owner text;
BEGIN
  IF r.status IS NULL OR r.status NOT IN ('pending', 'running') THEN
    RETURN NULL;
  END IF;
  IF r.owner_pid IS NOT NULL AND r.owner_start_time IS NOT NULL AND r.owner_boot_id IS NOT NULL THEN
    owner := format('owner session %s from %s', r.owner_pid, coalesce(r.owner_host, '?'));
    IF r.owner_boot_id <> runs_server_boot() THEN
      RETURN 'abandoned: ' || owner || ' is gone: the server has restarted since';
    END IF;
    IF NOT runs_owned_by_me(r) AND runs_owner_gone(r.owner_pid, r.owner_start_time) THEN
      RETURN 'abandoned: ' || owner || ' is gone';
    END IF;
  END IF;
  IF r.lease_expires_at IS NOT NULL AND r.lease_expires_at <= clock_timestamp() THEN
    RETURN 'abandoned: its lease expired at ' || runs_text(r.lease_expires_at)
           || coalesce(' (' || owner || ')', '');
  END IF;
  RETURN NULL;
END
$$;

-- 'updated', or why not: 'not_found' or 'not_in_expected_state'.
CREATE OR REPLACE FUNCTION runs_outcome(changed boolean, run_id bigint) RETURNS text LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
  SELECT CASE WHEN changed THEN 'updated'
              WHEN EXISTS (SELECT 1 FROM runs WHERE id = run_id) THEN 'not_in_expected_state'
              ELSE 'not_found' END
$$;

---------------------------------------------------------------------------
-- The functions of the SQLite extension.
---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION runs_version() RETURNS text LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$ SELECT 'v0.1.0'::text $$;

-- start_run() and try_start_run(), one path (fn names the caller in
-- messages). Inserts a pending run owned by the calling session and returns
-- the answer of try_start_run() about it; while the key's active run has a
-- live owner, returns the answer about that run when `answer`, and else fails
-- with unique_violation. A stale active run (its owner session gone, or its
-- lease expired) is marked failed first, in the same transaction. It runs
-- inside the caller's transaction (as SQLite's does inside one that holds the
-- write lock): the run is visible, and a concurrent start_run() for the key
-- waits on runs_one_active, until the caller commits.
CREATE OR REPLACE FUNCTION runs_start(fn text, scope text, triggered_by text, concurrency_key text,
                                      lease_seconds bigint, answer boolean)
RETURNS jsonb LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  active runs;
  reason text;
  new_id bigint;
  now_ts timestamptz;
  conflict text;
  attempt integer := 0;
BEGIN
  PERFORM runs_check_text(fn, 'scope', runs_start.scope, false);
  PERFORM runs_check_text(fn, 'triggered_by', runs_start.triggered_by, false);
  PERFORM runs_check_text(fn, 'concurrency_key', runs_start.concurrency_key, true);
  IF runs_start.lease_seconds < 1 OR runs_start.lease_seconds > 31536000 THEN
    RAISE EXCEPTION USING MESSAGE = format('%s(): lease_seconds must be between 1 and 31536000 (365 days), got %s; pass NULL for no time-based expiry', fn, runs_start.lease_seconds),
                          ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM runs_claim_owner_lock();
  LOOP
    attempt := attempt + 1;
    -- The row lock makes this check and the reclaim below atomic with every
    -- other start_run(), reap_stale_runs() and cancel_run() of the run.
    SELECT * INTO active FROM runs AS r
     WHERE r.concurrency_key = runs_start.concurrency_key AND r.status IN ('pending', 'running')
       FOR UPDATE;
    IF FOUND THEN
      reason := runs_stale_reason(active);
      IF reason IS NULL AND answer THEN
        RETURN jsonb_build_object('started', false, 'id', active.id, 'scope', active.scope,
                                  'status', active.status,
                                  'since', runs_text(coalesce(active.started_at, active.created_at)));
      END IF;
      IF reason IS NULL THEN
        RAISE EXCEPTION USING
          MESSAGE = fn || '(): run ' || active.id || ' is already active'
            || CASE WHEN runs_start.concurrency_key <> ''
                    THEN ' for concurrency_key ' || runs_quoted(runs_start.concurrency_key) ELSE '' END
            || ' (scope ' || runs_quoted(active.scope) || ', status ' || runs_quoted(active.status)
            || ', since ' || runs_text(coalesce(active.started_at, active.created_at))
            || '): wait for it to finish, or end it with complete_run(), fail_run() or cancel_run()',
          ERRCODE = 'unique_violation', TABLE = 'runs', CONSTRAINT = 'runs_one_active';
      END IF;
      UPDATE runs SET status = 'failed', finished_at = runs_now(), error_message = reason
       WHERE id = active.id;
    END IF;
    now_ts := runs_now();
    BEGIN
      INSERT INTO runs (scope, status, triggered_by, concurrency_key, created_at,
                        owner_host, owner_boot_id, owner_pid_ns, owner_pid, owner_start_time,
                        heartbeat_at, lease_seconds, lease_expires_at)
      VALUES (runs_start.scope, 'pending', runs_start.triggered_by, runs_start.concurrency_key, now_ts,
              coalesce(host(inet_client_addr()), '[local]'), runs_server_boot(), NULL,
              pg_backend_pid(), runs_session_start(),
              now_ts, runs_start.lease_seconds,
              now_ts + make_interval(secs => runs_start.lease_seconds))
      RETURNING id INTO new_id;
      RETURN jsonb_build_object('started', true, 'id', new_id, 'scope', runs_start.scope,
                                'status', 'pending', 'since', runs_text(now_ts));
    EXCEPTION WHEN unique_violation THEN
      GET STACKED DIAGNOSTICS conflict = CONSTRAINT_NAME;
      IF conflict IS DISTINCT FROM 'runs_one_active' THEN
        RAISE;
      END IF;
      -- Another transaction made a run of the key active after the lookup
      -- above (the index waited for it to commit). Look again: a new
      -- statement sees it, unless this transaction reads from one snapshot.
      IF current_setting('transaction_isolation') <> 'read committed' OR attempt >= 10 THEN
        RAISE EXCEPTION USING
          MESSAGE = fn || '(): another transaction started a run'
            || CASE WHEN runs_start.concurrency_key <> ''
                    THEN ' for concurrency_key ' || runs_quoted(runs_start.concurrency_key) ELSE '' END
            || ' that this transaction''s snapshot does not show: retry in a new transaction',
          ERRCODE = 'unique_violation', TABLE = 'runs', CONSTRAINT = 'runs_one_active';
      END IF;
    END;
  END LOOP;
END
$$;

-- Inserts a pending run owned by the calling session and returns its id, or
-- fails with unique_violation while the key's active run has a live owner.
CREATE OR REPLACE FUNCTION start_run(scope text, triggered_by text DEFAULT 'api', concurrency_key text DEFAULT '',
                          lease_seconds bigint DEFAULT NULL)
RETURNS bigint LANGUAGE sql
SET search_path FROM CURRENT
AS $$ SELECT (runs_start('start_run', scope, triggered_by, concurrency_key, lease_seconds, false)->>'id')::bigint $$;

-- start_run(), but a key held by an active run is an answer: {"started",
-- "id", "scope", "status", "since"} of the run that holds the key.
CREATE OR REPLACE FUNCTION try_start_run(scope text, triggered_by text DEFAULT 'api', concurrency_key text DEFAULT '',
                              lease_seconds bigint DEFAULT NULL)
RETURNS jsonb LANGUAGE sql
SET search_path FROM CURRENT
AS $$ SELECT runs_start('try_start_run', scope, triggered_by, concurrency_key, lease_seconds, true) $$;

CREATE OR REPLACE FUNCTION active_run(concurrency_key text DEFAULT '') RETURNS bigint LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM runs_check_text('active_run', 'concurrency_key', active_run.concurrency_key, true);
  RETURN (SELECT r.id FROM runs AS r
           WHERE r.concurrency_key = active_run.concurrency_key AND r.status IN ('pending', 'running'));
END
$$;

-- pending -> running; the calling session becomes the owner.
CREATE OR REPLACE FUNCTION mark_run_running(id bigint) RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  now_ts timestamptz;
BEGIN
  PERFORM runs_check_integer('mark_run_running', 'id', mark_run_running.id);
  PERFORM runs_claim_owner_lock();
  now_ts := runs_now();
  UPDATE runs AS r
     SET status = 'running', started_at = now_ts,
         owner_host = coalesce(host(inet_client_addr()), '[local]'), owner_boot_id = runs_server_boot(),
         owner_pid_ns = NULL, owner_pid = pg_backend_pid(), owner_start_time = runs_session_start(),
         heartbeat_at = now_ts, lease_expires_at = runs_lease_end(r.lease_seconds, r.lease_expires_at, now_ts)
   WHERE r.id = mark_run_running.id AND r.status = 'pending';
  RETURN runs_outcome(FOUND, mark_run_running.id);
END
$$;

CREATE OR REPLACE FUNCTION complete_run(id bigint) RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM runs_check_integer('complete_run', 'id', complete_run.id);
  UPDATE runs AS r SET status = 'completed', finished_at = runs_now()
   WHERE r.id = complete_run.id AND r.status = 'running';
  RETURN runs_outcome(FOUND, complete_run.id);
END
$$;

CREATE OR REPLACE FUNCTION fail_run(id bigint, error_message text) RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM runs_check_integer('fail_run', 'id', fail_run.id);
  IF fail_run.error_message IS NOT NULL THEN  -- NULL: no message
    PERFORM runs_check_text('fail_run', 'error_message', fail_run.error_message, true, 1048576);
  END IF;
  UPDATE runs AS r SET status = 'failed', finished_at = runs_now(), error_message = fail_run.error_message
   WHERE r.id = fail_run.id AND r.status IN ('pending', 'running');
  RETURN runs_outcome(FOUND, fail_run.id);
END
$$;

-- Cancels at once ('updated') a pending run, a run owned by the calling
-- session, one whose owner is stale or unrecorded; asks a live owner in
-- another session to stop ('cancel_requested'): it confirms with its own
-- cancel_run(), or turns stale.
CREATE OR REPLACE FUNCTION cancel_run(id bigint) RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  r runs;
BEGIN
  PERFORM runs_check_integer('cancel_run', 'id', cancel_run.id);
  SELECT * INTO r FROM runs AS x WHERE x.id = cancel_run.id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 'not_found';
  END IF;
  IF r.status NOT IN ('pending', 'running') THEN
    RETURN 'not_in_expected_state';
  END IF;
  IF r.status = 'pending' OR r.owner_pid IS NULL OR runs_owned_by_me(r)
     OR runs_stale_reason(r) IS NOT NULL THEN
    UPDATE runs AS x SET status = 'cancelled', finished_at = runs_now() WHERE x.id = r.id;
    RETURN 'updated';
  END IF;
  UPDATE runs AS x SET cancel_requested_at = coalesce(x.cancel_requested_at, runs_now())
   WHERE x.id = r.id;
  RETURN 'cancel_requested';
END
$$;

CREATE OR REPLACE FUNCTION update_run_progress(id bigint, current bigint, total bigint, current_step text)
RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  now_ts timestamptz;
BEGIN
  PERFORM runs_check_integer('update_run_progress', 'id', update_run_progress.id);
  PERFORM runs_check_integer('update_run_progress', 'current', update_run_progress.current);
  -- total NULL: not known. current may exceed total: estimates change.
  IF update_run_progress.current < 0 THEN
    RAISE EXCEPTION USING MESSAGE = format('update_run_progress(): current must not be negative, got %s', update_run_progress.current),
                          ERRCODE = 'invalid_parameter_value';
  END IF;
  IF update_run_progress.total < 0 THEN
    RAISE EXCEPTION USING MESSAGE = format('update_run_progress(): total must not be negative, got %s', update_run_progress.total),
                          ERRCODE = 'invalid_parameter_value';
  END IF;
  IF update_run_progress.current_step IS NOT NULL THEN
    PERFORM runs_check_text('update_run_progress', 'current_step', update_run_progress.current_step, true);
  END IF;
  now_ts := runs_now();
  UPDATE runs AS r
     SET progress_current = update_run_progress.current, progress_total = update_run_progress.total,
         current_step = update_run_progress.current_step,
         heartbeat_at = now_ts, lease_expires_at = runs_lease_end(r.lease_seconds, r.lease_expires_at, now_ts)
   WHERE r.id = update_run_progress.id AND r.status IN ('pending', 'running');
  RETURN runs_outcome(FOUND, update_run_progress.id);
END
$$;

CREATE OR REPLACE FUNCTION run_status(id bigint) RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM runs_check_integer('run_status', 'id', run_status.id);
  RETURN (SELECT r.status FROM runs AS r WHERE r.id = run_status.id);
END
$$;

-- 'ok', 'cancel_requested' (another session asked to cancel), or 'lost' (no
-- such run, or it is no longer active: stop working on it).
CREATE OR REPLACE FUNCTION heartbeat_run(id bigint) RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  now_ts timestamptz := runs_now();
  requested timestamptz;
BEGIN
  PERFORM runs_check_integer('heartbeat_run', 'id', heartbeat_run.id);
  UPDATE runs AS r
     SET heartbeat_at = now_ts, lease_expires_at = runs_lease_end(r.lease_seconds, r.lease_expires_at, now_ts)
   WHERE r.id = heartbeat_run.id AND r.status IN ('pending', 'running')
  RETURNING r.cancel_requested_at INTO requested;
  IF NOT FOUND THEN
    RETURN 'lost';
  END IF;
  RETURN CASE WHEN requested IS NULL THEN 'ok' ELSE 'cancel_requested' END;
END
$$;

-- Marks every stale active run failed (of one key, or of all); returns how many.
CREATE OR REPLACE FUNCTION runs_reap(only_key text) RETURNS integer LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  r runs;
  reason text;
  reaped integer := 0;
BEGIN
  FOR r IN SELECT * FROM runs AS x
            WHERE x.status IN ('pending', 'running') AND (only_key IS NULL OR x.concurrency_key = only_key)
            ORDER BY x.id FOR UPDATE
  LOOP
    reason := runs_stale_reason(r);
    IF reason IS NOT NULL THEN
      UPDATE runs AS x SET status = 'failed', finished_at = runs_now(), error_message = reason
       WHERE x.id = r.id;
      reaped := reaped + 1;
    END IF;
  END LOOP;
  RETURN reaped;
END
$$;

CREATE OR REPLACE FUNCTION reap_stale_runs() RETURNS integer LANGUAGE sql
SET search_path FROM CURRENT
AS $$ SELECT runs_reap(NULL) $$;

CREATE OR REPLACE FUNCTION reap_stale_runs(concurrency_key text) RETURNS integer LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM runs_check_text('reap_stale_runs', 'concurrency_key', reap_stale_runs.concurrency_key, true);
  RETURN runs_reap(reap_stale_runs.concurrency_key);
END
$$;

-- Also ends the active runs without a recorded owner (from before migration
-- 003, or raw inserts) started (or, pending, created) more than
-- ownerless_after_seconds ago; a NULL key means every key.
CREATE OR REPLACE FUNCTION reap_stale_runs(concurrency_key text, ownerless_after_seconds bigint)
RETURNS integer LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  reaped integer;
  ownerless integer;
BEGIN
  IF reap_stale_runs.concurrency_key IS NOT NULL THEN
    PERFORM runs_check_text('reap_stale_runs', 'concurrency_key', reap_stale_runs.concurrency_key, true);
  END IF;
  PERFORM runs_check_integer('reap_stale_runs', 'ownerless_after_seconds', reap_stale_runs.ownerless_after_seconds);
  IF reap_stale_runs.ownerless_after_seconds < 0 THEN
    RAISE EXCEPTION USING MESSAGE = format('reap_stale_runs(): ownerless_after_seconds must not be negative, got %s',
                                           reap_stale_runs.ownerless_after_seconds),
                          ERRCODE = 'invalid_parameter_value';
  END IF;
  reaped := runs_reap(reap_stale_runs.concurrency_key);
  UPDATE runs AS r
     SET status = 'failed', finished_at = runs_now(),
         error_message = 'abandoned: no owner recorded, and ' || r.status || ' since '
           || runs_text(coalesce(r.started_at, r.created_at)) || ', more than '
           || reap_stale_runs.ownerless_after_seconds || ' seconds ago'
   WHERE r.status IN ('pending', 'running') AND r.owner_pid IS NULL
     AND (reap_stale_runs.concurrency_key IS NULL OR r.concurrency_key = reap_stale_runs.concurrency_key)
     AND coalesce(r.started_at, r.created_at)
         < clock_timestamp() - make_interval(secs => reap_stale_runs.ownerless_after_seconds);
  GET DIAGNOSTICS ownerless = ROW_COUNT;
  RETURN reaped + ownerless;
END
$$;

-- Every column of the run, its owner, and whether it is stale; NULL when no
-- run has the id. Times are UTC text, as on SQLite.
CREATE OR REPLACE FUNCTION run_info(id bigint) RETURNS jsonb LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  r runs;
  reason text;
BEGIN
  PERFORM runs_check_integer('run_info', 'id', run_info.id);
  SELECT * INTO r FROM runs AS x WHERE x.id = run_info.id;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  reason := runs_stale_reason(r);
  RETURN jsonb_build_object(
    'id', r.id, 'scope', r.scope, 'status', r.status, 'triggered_by', r.triggered_by,
    'concurrency_key', r.concurrency_key, 'created_at', runs_text(r.created_at),
    'started_at', runs_text(r.started_at), 'finished_at', runs_text(r.finished_at),
    'error_message', r.error_message, 'progress_current', r.progress_current,
    'progress_total', r.progress_total, 'current_step', r.current_step,
    'heartbeat_at', runs_text(r.heartbeat_at), 'lease_seconds', r.lease_seconds,
    'lease_expires_at', runs_text(r.lease_expires_at),
    'cancel_requested_at', runs_text(r.cancel_requested_at),
    'owner', CASE WHEN r.owner_pid IS NULL THEN NULL ELSE jsonb_build_object(
               'host', r.owner_host, 'boot_id', r.owner_boot_id, 'pid_namespace', r.owner_pid_ns,
               'pid', r.owner_pid, 'start_time', r.owner_start_time) END,
    'stale', reason IS NOT NULL,
    'stale_reason', reason);
END
$$;
