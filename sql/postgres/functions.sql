-- sqlite-runs for PostgreSQL: the functions, with the names, arguments and
-- results of the SQLite extension (docs/functions/, docs/postgres.md).
--
-- Not a migration: the migrations (NNN_*.sql) hold the tables, indexes and
-- triggers; this file holds the functions and is applied after them, and again
-- after every upgrade of sqlite-runs. It only creates or replaces functions
-- (and drops helpers that earlier releases had), so it can be applied any
-- number of times; it refuses a schema whose migrations are not the ones it
-- was written for.
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
--   owner_start_time  with owner_pid, the session's identity: the low 32 bits
--                     of the clock, in microseconds since 1970, when the
--                     session first became an owner (a later session with the
--                     same pid became an owner later). From the clock, not from
--                     pg_stat_activity, whose backend_start a session working
--                     through SET ROLE or a SECURITY DEFINER function cannot
--                     read. The session keeps it in the setting
--                     runs.owner_session and, since a rolled back transaction
--                     takes the setting back but not the session-level lock,
--                     finds it again in its own lock (pg_locks); runs written
--                     before this file hold the full backend_start, of which
--                     the lock has the low 32 bits too
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
-- Behind a connection pooler the server session is not the client's, and its
-- lock says nothing about the client: a session with the setting
-- runs.owner_liveness = 'lease' records no lock identity, and its runs, which
-- must then have a lease, are judged by their lease alone (docs/postgres.md).
-- On a hot standby, which holds no session's lock and has its own start time,
-- only leases are judged.
--
-- Hardening: every function resolves names in the schema it was created in,
-- then pg_temp (SET search_path FROM CURRENT, with the search_path set
-- below), so that the caller's search_path, or a temporary table called runs,
-- cannot send it to another table. pg_catalog, searched first, cannot be
-- written by ordinary roles; but a role that can create objects in this
-- schema could add an operator or function whose argument types match a call
-- better than the built-in one (||(text, bigint) over ||(text, anynonarray)),
-- which would then run with the caller's rights. So every operator is written
-- OPERATOR(pg_catalog.x), every built-in function pg_catalog.f(), and the
-- helpers below are called with arguments of exactly their types, without
-- defaults (tests/postgres/test_pg_security.py plants such objects).

DO $functions$
BEGIN
  IF pg_catalog.current_schema() IS NULL THEN
    RAISE EXCEPTION 'functions.sql: no schema of search_path exists: apply the migrations first'
      USING ERRCODE = 'invalid_schema_name';
  END IF;
  IF pg_catalog.to_regclass(pg_catalog.format('%I.runs_schema_migrations', pg_catalog.current_schema())) IS NULL THEN
    RAISE EXCEPTION '%', pg_catalog.format('functions.sql: schema %s has no runs_schema_migrations: apply the migrations (sql/postgres/0*.sql) first', pg_catalog.current_schema())
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM runs_schema_migrations WHERE version OPERATOR(pg_catalog.=) 4) THEN
    RAISE EXCEPTION '%', pg_catalog.format('functions.sql needs migration 004 in schema %s: apply sql/postgres/0*.sql first', pg_catalog.current_schema())
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF EXISTS (SELECT 1 FROM runs_schema_migrations WHERE version OPERATOR(pg_catalog.>) 4) THEN
    RAISE EXCEPTION '%', pg_catalog.format('functions.sql is older than the schema in %s (migration %s): apply the functions.sql of that release',
                                pg_catalog.current_schema(), (SELECT pg_catalog.max(version) FROM runs_schema_migrations))
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  -- What every function below captures (SET search_path FROM CURRENT). For
  -- the session, not the transaction, so that it holds whether or not the
  -- file runs in one transaction (it should).
  PERFORM pg_catalog.set_config('search_path', pg_catalog.format('%I, pg_temp', pg_catalog.current_schema()), false);
END
$functions$;

-- Helpers of earlier releases that are gone or changed their arguments or
-- results (CREATE OR REPLACE cannot change those). Nothing depends on them.
DROP FUNCTION IF EXISTS runs_session_start();
DROP FUNCTION IF EXISTS runs_check_text(text, text, text, boolean, integer);
DROP FUNCTION IF EXISTS runs_claim_owner_lock();
DROP FUNCTION IF EXISTS runs_raise_active(text, runs);
DROP FUNCTION IF EXISTS runs_outcome(boolean, bigint);

---------------------------------------------------------------------------
-- Helpers. Internal: their names and arguments may change between releases.
---------------------------------------------------------------------------

-- Now, to the millisecond, as SQLite's strftime('%Y-%m-%dT%H:%M:%fZ').
-- clock_timestamp(), not now(): now() is when the transaction began, and a
-- write that waited on a lock, or a heartbeat inside a long transaction, must
-- not write a time, nor start a lease, from before it.
CREATE OR REPLACE FUNCTION runs_now() RETURNS timestamptz LANGUAGE sql VOLATILE
SET search_path FROM CURRENT
AS $$ SELECT pg_catalog.date_trunc('milliseconds'::text, pg_catalog.clock_timestamp()) $$;

-- Where a lease ends: lease_seconds after now_ts; a run without lease_seconds
-- keeps whatever end it has (as on SQLite).
CREATE OR REPLACE FUNCTION runs_lease_end(lease_seconds bigint, lease_expires_at timestamptz, now_ts timestamptz)
RETURNS timestamptz LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$ SELECT CASE WHEN lease_seconds IS NULL THEN lease_expires_at
                  ELSE now_ts OPERATOR(pg_catalog.+)
                       pg_catalog.make_interval(secs => lease_seconds::double precision) END $$;

-- A time as the functions return it: UTC text with milliseconds.
CREATE OR REPLACE FUNCTION runs_text(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$ SELECT pg_catalog.to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'::text) $$;

-- 'text' quoted as SQL quotes it (as in SQLite's messages).
CREATE OR REPLACE FUNCTION runs_quoted(t text) RETURNS text LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$ SELECT pg_catalog.format('''%s''', pg_catalog.replace(t, '''', '''''')) $$;

-- This server's start: every session began after it.
CREATE OR REPLACE FUNCTION runs_server_boot() RETURNS text LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$ SELECT pg_catalog.to_char(pg_catalog.pg_postmaster_start_time() AT TIME ZONE 'UTC',
                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'::text) $$;

-- The calling session's owner identity (owner_start_time), or NULL before it
-- first became an owner: the setting, or else the owner lock the session holds
-- (the setting went with a rolled back transaction; the lock stays). Taking a
-- new identity there instead would leave one more lock per rollback.
CREATE OR REPLACE FUNCTION runs_session_id() RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
  kept constant text := pg_catalog.current_setting('runs.owner_session', true);
  held bigint;
BEGIN
  IF kept IS NOT NULL AND kept OPERATOR(pg_catalog.<>) '' THEN
    RETURN kept::bigint;
  END IF;
  SELECT l.objid::bigint INTO held FROM pg_catalog.pg_locks AS l
   WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'::text
     AND l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
     AND l.classid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()::oid
     AND l.objsubid OPERATOR(pg_catalog.=) 2::smallint AND l.granted
   ORDER BY l.objid LIMIT 1;
  RETURN held;
END
$$;

-- The second key of an owner session's advisory lock (the first is its pid).
CREATE OR REPLACE FUNCTION runs_owner_lock_objid(start_time bigint) RETURNS integer LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$ SELECT start_time::bit(32)::integer $$;

-- Argument checks, with the SQLite extension's messages.
CREATE OR REPLACE FUNCTION runs_check_text(fn text, name text, value text, empty_allowed boolean, max_bytes integer)
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
BEGIN
  IF value IS NULL THEN
    RAISE EXCEPTION USING MESSAGE = pg_catalog.format('%s(): %s must be text, got NULL', fn, name),
                          ERRCODE = 'invalid_parameter_value';
  END IF;
  IF value OPERATOR(pg_catalog.=) '' AND NOT empty_allowed THEN
    RAISE EXCEPTION USING MESSAGE = pg_catalog.format('%s(): %s must not be empty', fn, name),
                          ERRCODE = 'invalid_parameter_value';
  END IF;
  IF pg_catalog.octet_length(value) OPERATOR(pg_catalog.>) max_bytes THEN
    RAISE EXCEPTION USING MESSAGE = pg_catalog.format('%s(): %s is too long (%s bytes, at most %s)',
                                                      fn, name, pg_catalog.octet_length(value), max_bytes),
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
    RAISE EXCEPTION USING MESSAGE = pg_catalog.format('%s(): %s must be an integer, got NULL', fn, name),
                          ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;

-- True when the calling session's runs are judged by their lease alone: the
-- setting runs.owner_liveness is 'lease' (behind a connection pooler). Unset,
-- empty or 'session': the owner session's lock judges them.
CREATE OR REPLACE FUNCTION runs_lease_only(fn text) RETURNS boolean LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
  setting constant text := coalesce(pg_catalog.current_setting('runs.owner_liveness', true), '');
BEGIN
  IF setting OPERATOR(pg_catalog.=) 'lease' THEN
    RETURN true;
  END IF;
  IF setting OPERATOR(pg_catalog.=) '' OR setting OPERATOR(pg_catalog.=) 'session' THEN
    RETURN false;
  END IF;
  RAISE EXCEPTION USING MESSAGE = pg_catalog.format('%s(): the setting runs.owner_liveness must be ''session'' or ''lease'', got %s',
                                                    fn, runs_quoted(setting)),
                        ERRCODE = 'invalid_parameter_value';
END
$$;

-- Makes the calling session an owner and returns its identity: takes its
-- advisory lock, once per session in effect (taking it again only counts up).
-- Done before the session writes itself into a run, so a committed run's owner
-- always holds it. Waits only while another session probes it (microseconds).
CREATE OR REPLACE FUNCTION runs_claim_owner_lock() RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
  session bigint := runs_session_id();
BEGIN
  IF session IS NULL THEN
    session := (extract(epoch FROM pg_catalog.clock_timestamp()) OPERATOR(pg_catalog.*) 1000000::numeric)::bigint
               OPERATOR(pg_catalog.%) 4294967296::bigint;
  END IF;
  PERFORM pg_catalog.set_config('runs.owner_session', session::text, false);
  PERFORM pg_catalog.pg_advisory_lock(pg_catalog.pg_backend_pid(), runs_owner_lock_objid(session));
  RETURN session;
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
  IF pg_catalog.pg_try_advisory_lock_shared(pid, objid) THEN
    PERFORM pg_catalog.pg_advisory_unlock_shared(pid, objid);
    RETURN true;
  END IF;
  RETURN false;
END
$$;

-- True when the run's owner is the calling session.
-- The pid first: only a session with the owner's pid needs its own identity.
CREATE OR REPLACE FUNCTION runs_owned_by_me(r runs) RETURNS boolean LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
  session bigint;
BEGIN
  IF r.owner_pid IS NULL OR r.owner_start_time IS NULL
     OR r.owner_pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid() THEN
    RETURN false;
  END IF;
  session := runs_session_id();
  RETURN session IS NOT NULL AND r.owner_boot_id OPERATOR(pg_catalog.=) runs_server_boot()
     AND runs_owner_lock_objid(r.owner_start_time) OPERATOR(pg_catalog.=) runs_owner_lock_objid(session);
END
$$;

-- Why the active run r is abandoned ('abandoned: ...'), or NULL while its
-- owner may still be working. Exact for the owner session (its lock); the
-- lease, when there is one, ends any run whose owner stopped heartbeating.
-- A hot standby cannot tell: it holds no session's lock, and its start time
-- is not the primary's; it judges leases only.
CREATE OR REPLACE FUNCTION runs_stale_reason(r runs) RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  owner text;
BEGIN
  IF r.status IS NULL OR NOT (r.status OPERATOR(pg_catalog.=) ANY ('{pending,running}'::text[])) THEN
    RETURN NULL;
  END IF;
  IF r.owner_pid IS NOT NULL THEN
    owner := pg_catalog.format('owner session %s from %s', r.owner_pid, coalesce(r.owner_host, '?'));
  END IF;
  IF r.owner_pid IS NOT NULL AND r.owner_start_time IS NOT NULL AND r.owner_boot_id IS NOT NULL
     AND NOT pg_catalog.pg_is_in_recovery() THEN
    IF r.owner_boot_id OPERATOR(pg_catalog.<>) runs_server_boot() THEN
      RETURN pg_catalog.format('abandoned: %s is gone: the server has restarted since', owner);
    END IF;
    IF NOT runs_owned_by_me(r) AND runs_owner_gone(r.owner_pid, r.owner_start_time) THEN
      RETURN pg_catalog.format('abandoned: %s is gone', owner);
    END IF;
  END IF;
  IF r.lease_expires_at IS NOT NULL AND r.lease_expires_at OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp() THEN
    RETURN pg_catalog.format('abandoned: its lease expired at %s%s', runs_text(r.lease_expires_at),
                             CASE WHEN owner IS NULL THEN '' ELSE pg_catalog.format(' (%s)', owner) END);
  END IF;
  RETURN NULL;
END
$$;

-- The first step of a transition of run run_id: locks its row when its status
-- is one of from_states and returns NULL; otherwise locks nothing and returns
-- why not, 'not_found' or 'not_in_expected_state'.
CREATE OR REPLACE FUNCTION runs_lock_in_state(run_id bigint, from_states text[]) RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM FROM runs AS r
   WHERE r.id OPERATOR(pg_catalog.=) run_id AND r.status OPERATOR(pg_catalog.=) ANY (from_states)
     FOR NO KEY UPDATE;
  IF FOUND THEN
    RETURN NULL;
  END IF;
  RETURN CASE WHEN EXISTS (SELECT 1 FROM runs AS r WHERE r.id OPERATOR(pg_catalog.=) run_id)
              THEN 'not_in_expected_state' ELSE 'not_found' END;
END
$$;

-- Ends the run run_id, whose row the caller has locked, as new_status
-- ('completed', 'failed' or 'cancelled'); message becomes the error_message of
-- a failed run, other ends keep theirs.
CREATE OR REPLACE FUNCTION runs_end(run_id bigint, new_status text, message text) RETURNS void LANGUAGE sql
SET search_path FROM CURRENT
AS $$
  UPDATE runs AS r
     SET status = new_status, finished_at = runs_now(),
         error_message = CASE WHEN new_status OPERATOR(pg_catalog.=) 'failed' THEN message ELSE r.error_message END
   WHERE r.id OPERATOR(pg_catalog.=) run_id
$$;

-- complete_run() and fail_run(): ends run run_id as new_status when its status
-- is one of from_states and returns 'updated'; otherwise returns why not.
CREATE OR REPLACE FUNCTION runs_finish(run_id bigint, from_states text[], new_status text, message text)
RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  refused constant text := runs_lock_in_state(run_id, from_states);
BEGIN
  IF refused IS NOT NULL THEN
    RETURN refused;
  END IF;
  PERFORM runs_end(run_id, new_status, message);
  RETURN 'updated';
END
$$;

-- start_run()'s refusal while the key's active run r may still be worked on.
CREATE OR REPLACE FUNCTION runs_raise_active(fn text, key text, r runs) RETURNS void LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  RAISE EXCEPTION USING
    MESSAGE = pg_catalog.format('%s(): run %s is already active%s (scope %s, status %s, since %s): wait for it to finish, or end it with complete_run(), fail_run() or cancel_run()',
                                fn, r.id,
                                CASE WHEN key OPERATOR(pg_catalog.<>) '' THEN pg_catalog.format(' for concurrency_key %s', runs_quoted(key)) ELSE '' END,
                                runs_quoted(r.scope), runs_quoted(r.status),
                                runs_text(coalesce(r.started_at, r.created_at))),
    ERRCODE = 'unique_violation', TABLE = 'runs', CONSTRAINT = 'runs_one_active';
END
$$;

-- The active run r, row-locked, or NULL (not found) when another transaction
-- holds its row: its owner writing it (a heartbeat inside a transaction), or
-- another session ending or reclaiming it. Never waits for them: a run whose
-- row a live transaction holds is not abandoned.
CREATE OR REPLACE FUNCTION runs_lock_active(run_id bigint) RETURNS runs LANGUAGE sql VOLATILE
SET search_path FROM CURRENT
AS $$
  SELECT * FROM runs AS x
   WHERE x.id OPERATOR(pg_catalog.=) run_id AND x.status OPERATOR(pg_catalog.=) ANY ('{pending,running}'::text[])
     FOR UPDATE SKIP LOCKED
$$;

---------------------------------------------------------------------------
-- The functions of the SQLite extension.
---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION runs_version() RETURNS text LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$ SELECT 'v0.1.0'::text $$;

-- start_run() and try_start_run(), one path (fn names the caller in
-- messages). Inserts a pending run owned by the calling session and returns
-- the answer of try_start_run() about it; while the key's active run may still
-- be worked on, returns the answer about that run when `answer`, and else
-- fails with unique_violation. A stale active run (its owner session gone, or
-- its lease expired) is marked failed first, in the same transaction. It runs
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
  lease_only constant boolean := runs_lease_only(fn);
  session bigint;
BEGIN
  PERFORM runs_check_text(fn, 'scope'::text, runs_start.scope, false, 1024);
  PERFORM runs_check_text(fn, 'triggered_by'::text, runs_start.triggered_by, false, 1024);
  PERFORM runs_check_text(fn, 'concurrency_key'::text, runs_start.concurrency_key, true, 1024);
  IF runs_start.lease_seconds OPERATOR(pg_catalog.<) 1::bigint
     OR runs_start.lease_seconds OPERATOR(pg_catalog.>) 31536000::bigint THEN
    RAISE EXCEPTION USING MESSAGE = pg_catalog.format('%s(): lease_seconds must be between 1 and 31536000 (365 days), got %s; pass NULL for no time-based expiry', fn, runs_start.lease_seconds),
                          ERRCODE = 'invalid_parameter_value';
  END IF;
  IF lease_only AND runs_start.lease_seconds IS NULL THEN
    RAISE EXCEPTION USING MESSAGE = pg_catalog.format('%s(): lease_seconds must not be NULL while the setting runs.owner_liveness is ''lease'': nothing but a lease ends the run of an owner that died behind a connection pooler', fn),
                          ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT lease_only THEN
    session := runs_claim_owner_lock();
  END IF;
  LOOP
    attempt := attempt OPERATOR(pg_catalog.+) 1;
    SELECT * INTO active FROM runs AS r
     WHERE r.concurrency_key OPERATOR(pg_catalog.=) runs_start.concurrency_key
       AND r.status OPERATOR(pg_catalog.=) ANY ('{pending,running}'::text[]);
    IF FOUND THEN
      -- The row lock makes the check and the reclaim below atomic with every
      -- other start_run(), reap_stale_runs() and cancel_run() of the run.
      SELECT * INTO active FROM runs_lock_active(active.id) AS l WHERE l.id IS NOT NULL;
      IF FOUND THEN
        reason := runs_stale_reason(active);
        IF reason IS NULL THEN
          EXIT WHEN answer;
          PERFORM runs_raise_active(fn, runs_start.concurrency_key, active);
        END IF;
        PERFORM runs_end(active.id, 'failed'::text, reason);
      ELSE
        -- Another transaction holds the row (then the run is not abandoned),
        -- or the run ended since the lookup above (then the key is free).
        SELECT * INTO active FROM runs AS r
         WHERE r.concurrency_key OPERATOR(pg_catalog.=) runs_start.concurrency_key
           AND r.status OPERATOR(pg_catalog.=) ANY ('{pending,running}'::text[]);
        IF FOUND THEN
          EXIT WHEN answer;
          PERFORM runs_raise_active(fn, runs_start.concurrency_key, active);
        END IF;
      END IF;
    END IF;
    now_ts := runs_now();
    BEGIN
      INSERT INTO runs (scope, status, triggered_by, concurrency_key, created_at,
                        owner_host, owner_boot_id, owner_pid_ns, owner_pid, owner_start_time,
                        heartbeat_at, lease_seconds, lease_expires_at)
      VALUES (runs_start.scope, 'pending', runs_start.triggered_by, runs_start.concurrency_key, now_ts,
              coalesce(pg_catalog.host(pg_catalog.inet_client_addr()), '[local]'), runs_server_boot(),
              NULL, CASE WHEN lease_only THEN NULL ELSE pg_catalog.pg_backend_pid() END, session,
              now_ts, runs_start.lease_seconds, runs_lease_end(runs_start.lease_seconds, NULL::timestamptz, now_ts))
      RETURNING id INTO new_id;
    EXCEPTION WHEN unique_violation THEN
      GET STACKED DIAGNOSTICS conflict = CONSTRAINT_NAME;
      IF conflict IS NULL OR conflict OPERATOR(pg_catalog.<>) 'runs_one_active' THEN
        RAISE;
      END IF;
      -- Another transaction made a run of the key active after the lookup
      -- above (the index waited for it to commit). Look again: a new
      -- statement sees it, unless this transaction reads from one snapshot.
      IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed'
         OR attempt OPERATOR(pg_catalog.>=) 10 THEN
        RAISE EXCEPTION USING
          MESSAGE = pg_catalog.format('%s(): another transaction started a run%s that this transaction''s snapshot does not show: retry in a new transaction',
                                      fn, CASE WHEN runs_start.concurrency_key OPERATOR(pg_catalog.<>) ''
                                           THEN pg_catalog.format(' for concurrency_key %s', runs_quoted(runs_start.concurrency_key))
                                           ELSE '' END),
          ERRCODE = 'unique_violation', TABLE = 'runs', CONSTRAINT = 'runs_one_active';
      END IF;
    END;
    IF new_id IS NOT NULL THEN
      -- The insert waited for another transaction's insert of the key, which
      -- then rolled back: the run's times, and its lease, start now.
      IF runs_now() OPERATOR(pg_catalog.<>) now_ts THEN
        now_ts := runs_now();
        UPDATE runs AS r
           SET created_at = now_ts, heartbeat_at = now_ts,
               lease_expires_at = runs_lease_end(r.lease_seconds, NULL::timestamptz, now_ts)
         WHERE r.id OPERATOR(pg_catalog.=) new_id;
      END IF;
      RETURN pg_catalog.jsonb_build_object('started', true, 'id', new_id, 'scope', runs_start.scope,
                                           'status', 'pending'::text, 'since', runs_text(now_ts));
    END IF;
  END LOOP;
  -- The key's active run may still be worked on, and the caller asked for an
  -- answer (try_start_run()).
  RETURN pg_catalog.jsonb_build_object('started', false, 'id', active.id, 'scope', active.scope,
                                       'status', active.status,
                                       'since', runs_text(coalesce(active.started_at, active.created_at)));
END
$$;

-- Inserts a pending run owned by the calling session and returns its id, or
-- fails with unique_violation while the key's active run may still be worked
-- on.
CREATE OR REPLACE FUNCTION start_run(scope text, triggered_by text DEFAULT 'api', concurrency_key text DEFAULT '',
                                     lease_seconds bigint DEFAULT NULL)
RETURNS bigint LANGUAGE sql
SET search_path FROM CURRENT
AS $$ SELECT (runs_start('start_run'::text, scope, triggered_by, concurrency_key, lease_seconds, false)
              OPERATOR(pg_catalog.->>) 'id'::text)::bigint $$;

-- start_run(), but a key held by an active run is an answer: {"started",
-- "id", "scope", "status", "since"} of the run that holds the key.
CREATE OR REPLACE FUNCTION try_start_run(scope text, triggered_by text DEFAULT 'api', concurrency_key text DEFAULT '',
                                         lease_seconds bigint DEFAULT NULL)
RETURNS jsonb LANGUAGE sql
SET search_path FROM CURRENT
AS $$ SELECT runs_start('try_start_run'::text, scope, triggered_by, concurrency_key, lease_seconds, true) $$;

CREATE OR REPLACE FUNCTION active_run(concurrency_key text DEFAULT '') RETURNS bigint LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM runs_check_text('active_run'::text, 'concurrency_key'::text, active_run.concurrency_key, true, 1024);
  RETURN (SELECT r.id FROM runs AS r
           WHERE r.concurrency_key OPERATOR(pg_catalog.=) active_run.concurrency_key
             AND r.status OPERATOR(pg_catalog.=) ANY ('{pending,running}'::text[]));
END
$$;

-- Every function that writes a run first locks its row, then reads the clock:
-- a write that waited for another transaction writes the time it happened.

-- pending -> running; the calling session becomes the owner.
CREATE OR REPLACE FUNCTION mark_run_running(id bigint) RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  lease_only constant boolean := runs_lease_only('mark_run_running'::text);
  session bigint;
  refused text;
  now_ts timestamptz;
BEGIN
  PERFORM runs_check_integer('mark_run_running'::text, 'id'::text, mark_run_running.id);
  IF NOT lease_only THEN
    session := runs_claim_owner_lock();
  END IF;
  refused := runs_lock_in_state(mark_run_running.id, '{pending}'::text[]);
  IF refused IS NOT NULL THEN
    RETURN refused;
  END IF;
  IF lease_only AND (SELECT r.lease_seconds IS NULL FROM runs AS r WHERE r.id OPERATOR(pg_catalog.=) mark_run_running.id) THEN
    RAISE EXCEPTION USING MESSAGE = pg_catalog.format('mark_run_running(): run %s has no lease, and the setting runs.owner_liveness is ''lease'': nothing would end it if this owner died behind a connection pooler; start runs with lease_seconds', mark_run_running.id),
                          ERRCODE = 'invalid_parameter_value';
  END IF;
  now_ts := runs_now();
  UPDATE runs AS r
     SET status = 'running', started_at = now_ts,
         owner_host = coalesce(pg_catalog.host(pg_catalog.inet_client_addr()), '[local]'),
         owner_boot_id = runs_server_boot(), owner_pid_ns = NULL,
         owner_pid = CASE WHEN lease_only THEN NULL ELSE pg_catalog.pg_backend_pid() END,
         owner_start_time = session,
         heartbeat_at = now_ts, lease_expires_at = runs_lease_end(r.lease_seconds, r.lease_expires_at, now_ts)
   WHERE r.id OPERATOR(pg_catalog.=) mark_run_running.id;
  RETURN 'updated';
END
$$;

CREATE OR REPLACE FUNCTION complete_run(id bigint) RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM runs_check_integer('complete_run'::text, 'id'::text, complete_run.id);
  RETURN runs_finish(complete_run.id, '{running}'::text[], 'completed'::text, NULL::text);
END
$$;

CREATE OR REPLACE FUNCTION fail_run(id bigint, error_message text) RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM runs_check_integer('fail_run'::text, 'id'::text, fail_run.id);
  IF fail_run.error_message IS NOT NULL THEN  -- NULL: no message
    PERFORM runs_check_text('fail_run'::text, 'error_message'::text, fail_run.error_message, true, 1048576);
  END IF;
  RETURN runs_finish(fail_run.id, '{pending,running}'::text[], 'failed'::text, fail_run.error_message);
END
$$;

-- Cancels at once ('updated') a pending run, a run owned by the calling
-- session, one whose owner is stale or unrecorded; asks a live owner in
-- another session to stop ('cancel_requested'): it confirms with its own
-- cancel_run(), or turns stale. Never waits for another transaction that
-- holds the run's row: fails with lock_not_available instead.
CREATE OR REPLACE FUNCTION cancel_run(id bigint) RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  r runs;
BEGIN
  PERFORM runs_check_integer('cancel_run'::text, 'id'::text, cancel_run.id);
  SELECT * INTO r FROM runs_lock_active(cancel_run.id) AS l WHERE l.id IS NOT NULL;
  IF NOT FOUND THEN
    SELECT * INTO r FROM runs AS x WHERE x.id OPERATOR(pg_catalog.=) cancel_run.id;
    IF NOT FOUND THEN
      RETURN 'not_found';
    END IF;
    IF NOT (r.status OPERATOR(pg_catalog.=) ANY ('{pending,running}'::text[])) THEN
      RETURN 'not_in_expected_state';
    END IF;
    RAISE EXCEPTION USING MESSAGE = pg_catalog.format('cancel_run(): run %s is being written by another transaction (its owner''s, or one that ends it): retry when that transaction has ended', cancel_run.id),
                          ERRCODE = 'lock_not_available';
  END IF;
  IF r.status OPERATOR(pg_catalog.=) 'pending' OR r.owner_pid IS NULL OR runs_owned_by_me(r)
     OR runs_stale_reason(r) IS NOT NULL THEN
    PERFORM runs_end(r.id, 'cancelled'::text, NULL::text);
    RETURN 'updated';
  END IF;
  UPDATE runs AS x SET cancel_requested_at = coalesce(x.cancel_requested_at, runs_now())
   WHERE x.id OPERATOR(pg_catalog.=) r.id;
  RETURN 'cancel_requested';
END
$$;

CREATE OR REPLACE FUNCTION update_run_progress(id bigint, current bigint, total bigint, current_step text)
RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  refused text;
  now_ts timestamptz;
BEGIN
  PERFORM runs_check_integer('update_run_progress'::text, 'id'::text, update_run_progress.id);
  PERFORM runs_check_integer('update_run_progress'::text, 'current'::text, update_run_progress.current);
  -- total NULL: not known. current may exceed total: estimates change.
  IF update_run_progress.current OPERATOR(pg_catalog.<) 0::bigint THEN
    RAISE EXCEPTION USING MESSAGE = pg_catalog.format('update_run_progress(): current must not be negative, got %s', update_run_progress.current),
                          ERRCODE = 'invalid_parameter_value';
  END IF;
  IF update_run_progress.total OPERATOR(pg_catalog.<) 0::bigint THEN
    RAISE EXCEPTION USING MESSAGE = pg_catalog.format('update_run_progress(): total must not be negative, got %s', update_run_progress.total),
                          ERRCODE = 'invalid_parameter_value';
  END IF;
  IF update_run_progress.current_step IS NOT NULL THEN
    PERFORM runs_check_text('update_run_progress'::text, 'current_step'::text, update_run_progress.current_step, true, 1024);
  END IF;
  refused := runs_lock_in_state(update_run_progress.id, '{pending,running}'::text[]);
  IF refused IS NOT NULL THEN
    RETURN refused;
  END IF;
  now_ts := runs_now();
  UPDATE runs AS r
     SET progress_current = update_run_progress.current, progress_total = update_run_progress.total,
         current_step = update_run_progress.current_step,
         heartbeat_at = now_ts, lease_expires_at = runs_lease_end(r.lease_seconds, r.lease_expires_at, now_ts)
   WHERE r.id OPERATOR(pg_catalog.=) update_run_progress.id;
  RETURN 'updated';
END
$$;

CREATE OR REPLACE FUNCTION run_status(id bigint) RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM runs_check_integer('run_status'::text, 'id'::text, run_status.id);
  RETURN (SELECT r.status FROM runs AS r WHERE r.id OPERATOR(pg_catalog.=) run_status.id);
END
$$;

-- 'ok', 'cancel_requested' (another session asked to cancel), or 'lost' (no
-- such run, or it is no longer active: stop working on it).
CREATE OR REPLACE FUNCTION heartbeat_run(id bigint) RETURNS text LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  now_ts timestamptz;
  requested timestamptz;
BEGIN
  PERFORM runs_check_integer('heartbeat_run'::text, 'id'::text, heartbeat_run.id);
  SELECT r.cancel_requested_at INTO requested FROM runs AS r
   WHERE r.id OPERATOR(pg_catalog.=) heartbeat_run.id
     AND r.status OPERATOR(pg_catalog.=) ANY ('{pending,running}'::text[])
     FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RETURN 'lost';
  END IF;
  now_ts := runs_now();
  UPDATE runs AS r
     SET heartbeat_at = now_ts, lease_expires_at = runs_lease_end(r.lease_seconds, r.lease_expires_at, now_ts)
   WHERE r.id OPERATOR(pg_catalog.=) heartbeat_run.id;
  RETURN CASE WHEN requested IS NULL THEN 'ok' ELSE 'cancel_requested' END;
END
$$;

-- Marks every stale active run failed (of one key, or of all); returns how
-- many. Skips the runs whose rows other transactions hold (their owners'
-- heartbeats, other reapers): it never waits for them.
CREATE OR REPLACE FUNCTION runs_reap(only_key text) RETURNS integer LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  r runs;
  reason text;
  reaped integer := 0;
BEGIN
  FOR r IN SELECT * FROM runs AS x
            WHERE x.status OPERATOR(pg_catalog.=) ANY ('{pending,running}'::text[])
              AND (only_key IS NULL OR x.concurrency_key OPERATOR(pg_catalog.=) only_key)
            ORDER BY x.id FOR UPDATE SKIP LOCKED
  LOOP
    reason := runs_stale_reason(r);
    IF reason IS NOT NULL THEN
      PERFORM runs_end(r.id, 'failed'::text, reason);
      reaped := reaped OPERATOR(pg_catalog.+) 1;
    END IF;
  END LOOP;
  RETURN reaped;
END
$$;

CREATE OR REPLACE FUNCTION reap_stale_runs() RETURNS integer LANGUAGE sql
SET search_path FROM CURRENT
AS $$ SELECT runs_reap(NULL::text) $$;

CREATE OR REPLACE FUNCTION reap_stale_runs(concurrency_key text) RETURNS integer LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  PERFORM runs_check_text('reap_stale_runs'::text, 'concurrency_key'::text, reap_stale_runs.concurrency_key, true, 1024);
  RETURN runs_reap(reap_stale_runs.concurrency_key);
END
$$;

-- Also ends the active runs without a recorded owner (from before migration
-- 003, or raw inserts: no owner_pid and no owner_boot_id; runs of sessions set
-- to lease liveness record the boot id and have a lease) started (or, pending,
-- created) more than ownerless_after_seconds ago; a NULL key means every key.
-- Skips rows other transactions hold, as runs_reap() does.
CREATE OR REPLACE FUNCTION reap_stale_runs(concurrency_key text, ownerless_after_seconds bigint)
RETURNS integer LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
  reaped integer;
  ownerless integer;
BEGIN
  IF reap_stale_runs.concurrency_key IS NOT NULL THEN
    PERFORM runs_check_text('reap_stale_runs'::text, 'concurrency_key'::text, reap_stale_runs.concurrency_key, true, 1024);
  END IF;
  PERFORM runs_check_integer('reap_stale_runs'::text, 'ownerless_after_seconds'::text, reap_stale_runs.ownerless_after_seconds);
  IF reap_stale_runs.ownerless_after_seconds OPERATOR(pg_catalog.<) 0::bigint THEN
    RAISE EXCEPTION USING MESSAGE = pg_catalog.format('reap_stale_runs(): ownerless_after_seconds must not be negative, got %s',
                                                      reap_stale_runs.ownerless_after_seconds),
                          ERRCODE = 'invalid_parameter_value';
  END IF;
  reaped := runs_reap(reap_stale_runs.concurrency_key);
  UPDATE runs AS r
     SET status = 'failed', finished_at = runs_now(),
         error_message = pg_catalog.format('abandoned: no owner recorded, and %s since %s, more than %s seconds ago',
                                           r.status, runs_text(coalesce(r.started_at, r.created_at)),
                                           reap_stale_runs.ownerless_after_seconds)
   WHERE r.id OPERATOR(pg_catalog.=) ANY (ARRAY(
           SELECT x.id FROM runs AS x
            WHERE x.status OPERATOR(pg_catalog.=) ANY ('{pending,running}'::text[])
              AND x.owner_pid IS NULL AND x.owner_boot_id IS NULL
              AND (reap_stale_runs.concurrency_key IS NULL
                   OR x.concurrency_key OPERATOR(pg_catalog.=) reap_stale_runs.concurrency_key)
              AND coalesce(x.started_at, x.created_at) OPERATOR(pg_catalog.<)
                  (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-)
                   pg_catalog.make_interval(secs => reap_stale_runs.ownerless_after_seconds::double precision))
              FOR UPDATE SKIP LOCKED));
  GET DIAGNOSTICS ownerless = ROW_COUNT;
  RETURN reaped OPERATOR(pg_catalog.+) ownerless;
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
  PERFORM runs_check_integer('run_info'::text, 'id'::text, run_info.id);
  SELECT * INTO r FROM runs AS x WHERE x.id OPERATOR(pg_catalog.=) run_info.id;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  reason := runs_stale_reason(r);
  RETURN pg_catalog.jsonb_build_object(
    'id', r.id, 'scope', r.scope, 'status', r.status, 'triggered_by', r.triggered_by,
    'concurrency_key', r.concurrency_key, 'created_at', runs_text(r.created_at),
    'started_at', runs_text(r.started_at), 'finished_at', runs_text(r.finished_at),
    'error_message', r.error_message, 'progress_current', r.progress_current,
    'progress_total', r.progress_total, 'current_step', r.current_step,
    'heartbeat_at', runs_text(r.heartbeat_at), 'lease_seconds', r.lease_seconds,
    'lease_expires_at', runs_text(r.lease_expires_at),
    'cancel_requested_at', runs_text(r.cancel_requested_at),
    'owner', CASE WHEN r.owner_pid IS NULL THEN NULL ELSE pg_catalog.jsonb_build_object(
               'host', r.owner_host, 'boot_id', r.owner_boot_id, 'pid_namespace', r.owner_pid_ns,
               'pid', r.owner_pid, 'start_time', r.owner_start_time) END,
    'stale', reason IS NOT NULL,
    'stale_reason', reason);
END
$$;
