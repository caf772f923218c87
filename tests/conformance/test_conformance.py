"""One behavioural contract, two engines: the SQLite extension and sql/postgres/.

Every case below is written once and runs against the engine RUNS_ENGINE names
(ctest runs the file twice: conformance.sqlite and conformance.postgres):

    RUNS_ENGINE=sqlite RUNS_EXTENSION=build/runs.so /usr/bin/python3 tests/conformance/test_conformance.py
    RUNS_ENGINE=postgres /usr/bin/python3 tests/conformance/test_conformance.py
    RUNS_ENGINE=postgres RUNS_PG_DSN='host=... dbname=... user=...' /usr/bin/python3 tests/conformance/test_conformance.py

(the last against a server you run, for example another PostgreSQL-compatible
engine).

An expectation is a value, an Err (a failure: its kind, and the exact
message), or per_engine(sqlite=..., postgres=...) where the engines differ
by design; each such difference says why beside it. docs/postgres.md lists
them. Each test gets a fresh, migrated database (SQLite: a file; PostgreSQL:
a schema of a server started for this run). Owners "on another host" are
connections in processes of their own (remote.py, fork+exec), killed with
SIGKILL where a case needs a dead owner.

The cases marked @crash_recovery (leases, heartbeat_run, reap_stale_runs,
run_info, the cancel protocol, the state-machine triggers) run as a ctest
entry of their own, conformance.sqlite.crash_recovery, on SQLite; PostgreSQL
runs every case. RUNS_CASES=core or crash_recovery selects one half.
"""

import functools
import json
import os
import re
import sys
import unittest
from datetime import datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from engines import RunsError, make_engine  # noqa: E402

ENGINE_NAME = os.environ.get("RUNS_ENGINE", "sqlite")
ENGINE = None  # set up once per run (PostgreSQL: one server)

# How each engine reports a kind of failure: SQLite's extended result code,
# PostgreSQL's SQLSTATE. Python's drivers raise IntegrityError for both
# constraint classes (SQLITE_CONSTRAINT*, SQLSTATE class 23).
KINDS = {
    # kind               SQLite                            PostgreSQL
    "already_active": (2067, "23505"),  # SQLITE_CONSTRAINT_UNIQUE    unique_violation
    "bad_argument":   (1,    "22023"),  # SQLITE_ERROR                invalid_parameter_value
    "too_long":       (18,   "22001"),  # SQLITE_TOOBIG               string_data_right_truncation
    "guard_active":   (1811, "23505"),  # SQLITE_CONSTRAINT_TRIGGER   unique_violation
    "guard_status":   (1811, "23514"),  # SQLITE_CONSTRAINT_TRIGGER   check_violation
    "guard_id":       (1811, "23505"),  # SQLITE_CONSTRAINT_TRIGGER   unique_violation
    "guard_004":      (1811, "23514"),  # SQLITE_CONSTRAINT_TRIGGER   check_violation (migration 004)
}

PINNED = "2026-01-01T00:00:00.000Z"
# Now, as each engine's SQL writes it.
NOW_SQL = {"sqlite": "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')", "postgres": "now()"}
PAST = "2000-01-01T00:00:00.000Z"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ACTIVE_TAIL = "wait for it to finish, or end it with complete_run(), fail_run() or cancel_run()"
RUN_INFO_KEYS = {
    "id", "scope", "status", "triggered_by", "concurrency_key", "created_at", "started_at",
    "finished_at", "error_message", "progress_current", "progress_total", "current_step",
    "heartbeat_at", "lease_seconds", "lease_expires_at", "cancel_requested_at", "owner", "stale",
    "stale_reason"}
OWNER_KEYS = {"host", "boot_id", "pid_namespace", "pid", "start_time"}
# SQLite also says how each run is judged ("liveness", issue 11) and records
# the owner's time namespace; the PostgreSQL port does not (yet).
if ENGINE_NAME == "sqlite":
    RUN_INFO_KEYS = RUN_INFO_KEYS | {"liveness"}
    OWNER_KEYS = OWNER_KEYS | {"time_namespace"}


class Err:
    """A failure: `kind` (a key of KINDS) or an engine's own code, and the
    message, exact (str) or matched in full (re.Pattern)."""

    def __init__(self, kind, message):
        self.kind = kind
        self.message = message

    def code(self):
        if self.kind in KINDS:
            return KINDS[self.kind][0 if ENGINE_NAME == "sqlite" else 1]
        return self.kind

    def __repr__(self):
        return f"Err({self.kind!r} -> {self.code()!r}, {self.message!r})"


class PerEngine:
    def __init__(self, sqlite, postgres):
        self.choices = {"sqlite": sqlite, "postgres": postgres}


def per_engine(sqlite, postgres):
    return PerEngine(sqlite, postgres)


def resolve(x):
    return x.choices[ENGINE_NAME] if isinstance(x, PerEngine) else x


def crash_recovery(test):
    """Marks a case of crash recovery (RUNS_CASES=crash_recovery selects them)."""
    test.crash_recovery = True
    return test


def iso_time(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


class Conformance(unittest.TestCase):
    def setUp(self):
        self.db = ENGINE.fresh()
        self.opened = [self.db]

    def tearDown(self):
        for thing in reversed(self.opened):
            thing.close()

    def remote(self):
        r = ENGINE.remote()
        self.opened.append(r)
        return r

    def check(self, conn, sql, *params, expect):
        sql, expect = resolve(sql), resolve(expect)
        if isinstance(expect, Err):
            with self.assertRaises(RunsError, msg=f"{sql} should fail with {expect}") as caught:
                conn.value(sql, *params)
            got = caught.exception
            if isinstance(expect.message, re.Pattern):
                self.assertRegex(got.message, expect.message, sql)
                self.assertTrue(expect.message.fullmatch(got.message), f"{sql}: {got.message!r}")
            else:
                self.assertEqual(got.message, expect.message, sql)
            self.assertEqual(got.code, expect.code(), f"{sql}: {got.message}")
        else:
            self.assertEqual(conn.value(sql, *params), expect, sql)

    def status(self, run_id):
        return self.db.value("SELECT run_status(?)", run_id)

    # ------------------------------------------------------------ core

    def test_start_returns_ids_and_active_run_finds_them(self):
        db = self.db
        self.check(db, "SELECT active_run()", expect=None)
        self.check(db, "SELECT start_run('full')", expect=1)
        self.check(db, "SELECT start_run('extract', 'cli', 'k2')", expect=2)
        self.check(db, "SELECT active_run()", expect=1)
        self.check(db, "SELECT active_run('')", expect=1)
        self.check(db, "SELECT active_run('k2')", expect=2)
        self.check(db, "SELECT active_run('k3')", expect=None)
        self.check(db, "SELECT run_status(1)", expect="pending")
        self.check(db, "SELECT triggered_by FROM runs WHERE id = 1", expect="api")
        self.check(db, "SELECT concurrency_key FROM runs WHERE id = 1", expect="")
        self.check(db, "SELECT triggered_by FROM runs WHERE id = 2", expect="cli")
        self.check(db, "SELECT progress_current + progress_total FROM runs WHERE id = 1", expect=0)
        self.check(db, "SELECT count(*) FROM runs WHERE started_at IS NULL AND finished_at IS NULL"
                       " AND error_message IS NULL AND current_step IS NULL", expect=2)

    def test_second_start_is_refused_naming_the_active_run(self):
        db = self.db
        self.check(db, "SELECT start_run('full')", expect=1)
        db.value("UPDATE runs SET created_at = ? WHERE id = 1", PINNED)
        self.check(db, "SELECT start_run('full', 'cli')", expect=Err(
            "already_active",
            f"start_run(): run 1 is already active (scope 'full', status 'pending', since {PINNED}): "
            + ACTIVE_TAIL))
        self.check(db, "SELECT mark_run_running(1)", expect="updated")
        db.value("UPDATE runs SET started_at = ? WHERE id = 1", "2026-01-02T03:04:05.678Z")
        self.check(db, "SELECT start_run('other')", expect=Err(
            "already_active",
            "start_run(): run 1 is already active (scope 'full', status 'running', since "
            "2026-01-02T03:04:05.678Z): " + ACTIVE_TAIL))
        self.check(db, "SELECT start_run('it''s', 'cli', 'tenant ''42''')", expect=2)
        db.value("UPDATE runs SET created_at = ? WHERE id = 2", PINNED)
        self.check(db, "SELECT start_run('y', 'api', 'tenant ''42''')", expect=Err(
            "already_active",
            "start_run(): run 2 is already active for concurrency_key 'tenant ''42''' (scope "
            f"'it''s', status 'pending', since {PINNED}): " + ACTIVE_TAIL))
        self.check(db, "SELECT count(*) FROM runs", expect=2)

    def test_keys_are_independent(self):
        db = self.db
        self.check(db, "SELECT start_run('a', 'api', 'k1')", expect=1)
        self.check(db, "SELECT start_run('b', 'api', 'k2')", expect=2)
        self.check(db, "SELECT start_run('c')", expect=3)
        self.check(db, "SELECT start_run('a', 'api', 'k1')",
                   expect=Err("already_active", re.compile(r"start_run\(\): run 1 is already active for concurrency_key 'k1' .*")))
        self.check(db, "SELECT complete_run(1)", expect="not_in_expected_state")
        self.check(db, "SELECT cancel_run(1)", expect="updated")
        self.check(db, "SELECT start_run('a', 'api', 'k1')", expect=4)
        self.check(db, "SELECT active_run('k2')", expect=2)
        self.check(db, "SELECT active_run()", expect=3)

    def test_transitions_and_their_results(self):
        db = self.db
        self.check(db, "SELECT start_run('full')", expect=1)
        self.check(db, "SELECT complete_run(1)", expect="not_in_expected_state")
        self.check(db, "SELECT update_run_progress(1, 1, 10, 'extract')", expect="updated")
        self.check(db, "SELECT mark_run_running(1)", expect="updated")
        self.check(db, "SELECT mark_run_running(1)", expect="not_in_expected_state")
        self.check(db, "SELECT run_status(1)", expect="running")
        self.check(db, "SELECT update_run_progress(1, 5, 10, NULL)", expect="updated")
        self.check(db, "SELECT complete_run(1)", expect="updated")
        for sql in ["SELECT complete_run(1)", "SELECT mark_run_running(1)", "SELECT cancel_run(1)",
                    "SELECT fail_run(1, 'late')", "SELECT update_run_progress(1, 9, 10, 'late')"]:
            self.check(db, sql, expect="not_in_expected_state")
        self.check(db, "SELECT run_status(1)", expect="completed")
        self.check(db, "SELECT progress_current FROM runs WHERE id = 1", expect=5)
        self.check(db, "SELECT current_step FROM runs WHERE id = 1", expect=None)
        self.check(db, "SELECT error_message FROM runs WHERE id = 1", expect=None)
        for sql in ["SELECT complete_run(99)", "SELECT mark_run_running(99)", "SELECT cancel_run(99)",
                    "SELECT fail_run(99, 'x')", "SELECT update_run_progress(99, 1, 2, 'x')"]:
            self.check(db, sql, expect="not_found")
        self.check(db, "SELECT run_status(99)", expect=None)
        self.check(db, "SELECT start_run('full')", expect=2)
        self.check(db, "SELECT fail_run(2, 'boom')", expect="updated")
        self.check(db, "SELECT error_message FROM runs WHERE id = 2", expect="boom")
        self.check(db, "SELECT run_status(2)", expect="failed")
        self.check(db, "SELECT start_run('full')", expect=3)
        self.check(db, "SELECT cancel_run(3)", expect="updated")
        self.check(db, "SELECT run_status(3)", expect="cancelled")
        self.check(db, "SELECT start_run('full')", expect=4)
        self.check(db, "SELECT count(*) FROM runs WHERE finished_at IS NOT NULL", expect=3)
        self.check(db, "SELECT count(*) FROM runs WHERE started_at IS NOT NULL", expect=1)
        self.check(db, "SELECT active_run()", expect=4)

    def test_bad_arguments_change_nothing(self):
        db = self.db
        self.check(db, "SELECT start_run('full')", expect=1)
        not_a_function = "42883"  # undefined_function: PostgreSQL resolves functions by argument type
        cases = [
            ("SELECT start_run('')", (), Err("bad_argument", "start_run(): scope must not be empty")),
            ("SELECT start_run(NULL)", (), Err("bad_argument", "start_run(): scope must be text, got NULL")),
            ("SELECT start_run('full', NULL)", (),
             Err("bad_argument", "start_run(): triggered_by must be text, got NULL")),
            ("SELECT start_run('full', '')", (),
             Err("bad_argument", "start_run(): triggered_by must not be empty")),
            ("SELECT start_run('full', 'api', NULL)", (),
             Err("bad_argument", "start_run(): concurrency_key must be text, got NULL")),
            ("SELECT start_run(?)", ("x" * 1025,),
             Err("too_long", "start_run(): scope is too long (1025 bytes, at most 1024)")),
            # bytes of UTF-8, not characters
            ("SELECT start_run('full', 'api', ?)", ("\u00e9" * 513,),
             Err("too_long", "start_run(): concurrency_key is too long (1026 bytes, at most 1024)")),
            ("SELECT start_run(1)", (), per_engine(
                sqlite=Err("bad_argument", "start_run(): scope must be text, got integer"),
                postgres=Err(not_a_function, "function start_run(integer) does not exist"))),
            ("SELECT start_run()", (), per_engine(
                sqlite=Err(1, "wrong number of arguments to function start_run()"),
                postgres=Err(not_a_function, "function start_run() does not exist"))),
            ("SELECT active_run(NULL)", (),
             Err("bad_argument", "active_run(): concurrency_key must be text, got NULL")),
            ("SELECT active_run(?)", ("k" * 1025,),
             Err("too_long", "active_run(): concurrency_key is too long (1025 bytes, at most 1024)")),
            ("SELECT mark_run_running(NULL)", (),
             Err("bad_argument", "mark_run_running(): id must be an integer, got NULL")),
            ("SELECT complete_run(NULL)", (),
             Err("bad_argument", "complete_run(): id must be an integer, got NULL")),
            ("SELECT cancel_run(NULL)", (), Err("bad_argument", "cancel_run(): id must be an integer, got NULL")),
            ("SELECT fail_run(NULL, 'x')", (), Err("bad_argument", "fail_run(): id must be an integer, got NULL")),
            ("SELECT fail_run(1, ?)", ("x" * 1048577,),
             Err("too_long", "fail_run(): error_message is too long (1048577 bytes, at most 1048576)")),
            ("SELECT run_status(NULL)", (), Err("bad_argument", "run_status(): id must be an integer, got NULL")),
            ("SELECT update_run_progress(NULL, 0, 0, NULL)", (),
             Err("bad_argument", "update_run_progress(): id must be an integer, got NULL")),
            ("SELECT update_run_progress(1, NULL, 0, NULL)", (),
             Err("bad_argument", "update_run_progress(): current must be an integer, got NULL")),
            ("SELECT update_run_progress(1, -1, 10, 'x')", (),
             Err("bad_argument", "update_run_progress(): current must not be negative, got -1")),
            ("SELECT update_run_progress(1, 0, -2, 'x')", (),
             Err("bad_argument", "update_run_progress(): total must not be negative, got -2")),
            ("SELECT update_run_progress(1, 1, 10, ?)", ("s" * 1025,),
             Err("too_long", "update_run_progress(): current_step is too long (1025 bytes, at most 1024)")),
            ("SELECT update_run_progress(1, 5, 10, 3)", (), per_engine(
                sqlite=Err("bad_argument", "update_run_progress(): current_step must be text, got integer"),
                postgres=Err(not_a_function,
                             "function update_run_progress(integer, integer, integer, integer) does not exist"))),
            # SQLite accepts an integral REAL (JavaScript drivers bind numbers
            # as REAL); PostgreSQL has no implicit cast from numeric to bigint.
            ("SELECT mark_run_running(1.5)", (), per_engine(
                sqlite=Err("bad_argument", "mark_run_running(): id must be an integer, got real 1.5"),
                postgres=Err(not_a_function, "function mark_run_running(numeric) does not exist"))),
            ("SELECT run_status(1.0)", (), per_engine(
                sqlite="pending",
                postgres=Err(not_a_function, "function run_status(numeric) does not exist"))),
            # Text that spells an integer is an id: SQLite converts it as a
            # column of INTEGER affinity would; in PostgreSQL a quoted literal
            # has no type yet and becomes bigint, and so does a text parameter.
            ("SELECT run_status('1')", (), "pending"),
            ("SELECT run_status(?)", ("1",), "pending"),
            ("SELECT update_run_progress(?, ?, ?, NULL)", ("1", "0", "10"), "updated"),
            ("SELECT run_status(?)", ("one",), per_engine(
                sqlite=Err("bad_argument", "run_status(): id must be an integer, got text"),
                postgres=Err("22P02", 'invalid input syntax for type bigint: "one"'))),
            # A value typed text (a driver that binds strings as text or
            # varchar, as JDBC's setString() does) finds no function on
            # PostgreSQL: only an untyped literal or parameter becomes bigint.
            ("SELECT run_status(CAST(? AS TEXT))", ("1",), per_engine(
                sqlite="pending",
                postgres=Err(not_a_function, "function run_status(text) does not exist"))),
            # bigint's input syntax takes no decimal point; INTEGER affinity does.
            ("SELECT run_status(?)", ("1.0",), per_engine(
                sqlite="pending",
                postgres=Err("22P02", 'invalid input syntax for type bigint: "1.0"'))),
        ]
        for sql, params, expect in cases:
            with self.subTest(sql=sql):
                self.check(db, sql, *params, expect=expect)
        self.check(db, "SELECT count(*) FROM runs", expect=1)
        self.check(db, "SELECT run_status(1)", expect="pending")
        self.check(db, "SELECT progress_current FROM runs WHERE id = 1", expect=0)

    def test_runs_version_is_the_release(self):
        with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__)))), "CMakeLists.txt"), encoding="utf-8") as f:
            version = re.search(r"project\(sqlite_runs VERSION (\S+)", f.read()).group(1)
        self.check(self.db, "SELECT runs_version()", expect="v" + version)

    def test_start_run_inside_a_transaction_without_the_write_lock(self):
        db = self.db
        db.value("BEGIN")
        # SQLite: a deferred transaction that has not written holds no write
        # lock, and could not take it later without failing at once
        # (SQLITE_BUSY) once another connection has written. PostgreSQL has
        # no such lock: every transaction may write, and start_run() joins it.
        no_write_lock = ("cannot run inside a transaction that does not hold the write lock: "
                         "begin it with BEGIN IMMEDIATE, or call it outside any transaction")
        self.check(db, "SELECT start_run('full')", expect=per_engine(
            sqlite=Err(1, "start_run(): " + no_write_lock), postgres=1))
        self.check(db, "SELECT try_start_run('full')", expect=per_engine(
            sqlite=Err(1, "try_start_run(): " + no_write_lock),
            postgres={"started": False, "id": 1, "scope": "full", "status": "pending",
                      "since": db.value("SELECT run_info(1)")["created_at"]
                      if ENGINE_NAME == "postgres" else None}))
        db.value("ROLLBACK")
        self.check(db, "SELECT active_run()", expect=None)
        # PostgreSQL never hands out an identity value twice, even one a
        # rolled back transaction took.
        self.check(db, "SELECT start_run('full')", expect=per_engine(sqlite=1, postgres=2))

    def test_start_run_joins_the_callers_write_transaction(self):
        db = self.db
        db.value("CREATE TABLE jobs (x integer)")
        begin_write = per_engine(sqlite="BEGIN IMMEDIATE", postgres="BEGIN")
        db.value(resolve(begin_write))
        db.value("INSERT INTO jobs VALUES (1)")
        first = db.value("SELECT start_run('full')")
        self.check(db, "SELECT active_run()", expect=first)
        self.check(db, "SELECT run_status(?)", first, expect="pending")
        db.value("ROLLBACK")  # the run goes with the caller's work
        self.check(db, "SELECT active_run()", expect=None)
        self.check(db, "SELECT count(*) FROM runs", expect=0)
        self.check(db, "SELECT count(*) FROM jobs", expect=0)
        # A deferred transaction that has written holds the lock too.
        for key, begin in [("k1", resolve(begin_write)), ("k2", "BEGIN")]:
            with self.subTest(begin=begin):
                db.value(begin)
                db.value("INSERT INTO jobs VALUES (2)")
                run = db.value("SELECT start_run('full', 'api', ?)", key)
                self.check(db, "SELECT run_status(?)", run, expect="pending")
                db.value("COMMIT")  # and commits with it
                self.check(db, "SELECT active_run(?)", key, expect=run)
        self.check(db, "SELECT count(*) FROM jobs", expect=2)
        self.check(db, "SELECT count(*) FROM runs", expect=2)

    def answer(self, conn, sql, *params):
        """try_start_run()'s answer as a dict (SQLite returns JSON text, PostgreSQL jsonb)."""
        value = conn.value(sql, *params)
        return json.loads(value) if isinstance(value, str) else value

    def test_try_start_run_answers_who_holds_the_key(self):
        db = self.db
        started = self.answer(db, "SELECT try_start_run('full', 'cli', 'k', 60)")
        info = db.run_info(1)
        self.assertEqual(started, {"started": True, "id": 1, "scope": "full", "status": "pending",
                                   "since": info["created_at"]})
        self.assertEqual((info["triggered_by"], info["concurrency_key"], info["lease_seconds"]),
                         ("cli", "k", 60))
        self.assertEqual(self.answer(db, "SELECT try_start_run('other', 'api', 'k')"),
                         {"started": False, "id": 1, "scope": "full", "status": "pending",
                          "since": info["created_at"]})
        self.check(db, "SELECT count(*) FROM runs", expect=1)
        self.check(db, "SELECT mark_run_running(1)", expect="updated")
        since = db.run_info(1)["started_at"]
        self.assertEqual(self.answer(db, "SELECT try_start_run('other', 'api', 'k')"),
                         {"started": False, "id": 1, "scope": "full", "status": "running", "since": since})
        # An abandoned holder is reclaimed, as by start_run().
        db.value("UPDATE runs SET lease_expires_at = ? WHERE id = 1", PAST)
        answer = self.answer(db, "SELECT try_start_run('other', 'api', 'k')")
        self.assertEqual((answer["started"], answer["id"], answer["scope"]), (True, 2, "other"))
        self.check(db, "SELECT run_status(1)", expect="failed")
        # Bad arguments still raise.
        self.check(db, "SELECT try_start_run('')", expect=Err(
            "bad_argument", "try_start_run(): scope must not be empty"))
        self.check(db, "SELECT try_start_run('x', 'api', NULL)", expect=Err(
            "bad_argument", "try_start_run(): concurrency_key must be text, got NULL"))
        self.check(db, "SELECT try_start_run('x', 'api', 'k2', 0)", expect=Err(
            "bad_argument", "try_start_run(): lease_seconds must be between 1 and 31536000 (365 days), "
                            "got 0; pass NULL for no time-based expiry"))
        self.check(db, "SELECT count(*) FROM runs", expect=2)

    def test_fail_run_takes_a_null_message(self):
        db = self.db
        self.check(db, "SELECT start_run('full')", expect=1)
        self.check(db, "SELECT fail_run(1, NULL)", expect="updated")
        self.check(db, "SELECT error_message FROM runs WHERE id = 1", expect=None)
        self.check(db, "SELECT run_status(1)", expect="failed")
        self.check(db, "SELECT fail_run(1, NULL)", expect="not_in_expected_state")
        self.check(db, "SELECT fail_run(2, NULL)", expect="not_found")

    def test_progress_may_exceed_an_estimated_or_unknown_total(self):
        db = self.db
        self.check(db, "SELECT start_run('full')", expect=1)
        self.check(db, "SELECT update_run_progress(1, 11, 10, 'more than estimated')", expect="updated")
        self.check(db, "SELECT progress_current FROM runs WHERE id = 1", expect=11)
        self.check(db, "SELECT progress_total FROM runs WHERE id = 1", expect=10)
        self.check(db, "SELECT update_run_progress(1, 12, NULL, NULL)", expect="updated")
        self.check(db, "SELECT progress_total FROM runs WHERE id = 1", expect=None)
        self.check(db, "SELECT update_run_progress(1, -1, NULL, NULL)", expect=Err(
            "bad_argument", "update_run_progress(): current must not be negative, got -1"))
        self.check(db, "SELECT update_run_progress(1, 1, -5, NULL)", expect=Err(
            "bad_argument", "update_run_progress(): total must not be negative, got -5"))
        self.check(db, "SELECT update_run_progress(1, NULL, 5, NULL)", expect=Err(
            "bad_argument", "update_run_progress(): current must be an integer, got NULL"))
        self.check(db, "SELECT progress_current FROM runs WHERE id = 1", expect=12)

    # -------------------------------------------- raw writers, state machine

    @crash_recovery
    def test_state_machine_refuses_illegal_status_changes(self):
        db = self.db
        self.check(db, "SELECT start_run('a')", expect=1)
        self.check(db, "SELECT mark_run_running(1)", expect="updated")
        self.check(db, "SELECT complete_run(1)", expect="updated")
        illegal = "runs: illegal status change from {} to {}: {}"
        self.check(db, "UPDATE runs SET status = 'running' WHERE id = 1", expect=Err(
            "guard_status", illegal.format("completed", "running", "a finished run never changes status")))
        self.check(db, "UPDATE runs SET status = 'failed' WHERE id = 1", expect=Err(
            "guard_status", illegal.format("completed", "failed", "a finished run never changes status")))
        self.check(db, "SELECT start_run('b')", expect=2)
        self.check(db, "UPDATE runs SET status = 'completed' WHERE id = 2", expect=Err(
            "guard_status", illegal.format("pending", "completed", "a run must be running first")))
        self.check(db, "SELECT mark_run_running(2)", expect="updated")
        self.check(db, "UPDATE runs SET status = 'pending' WHERE id = 2", expect=Err(
            "guard_status", illegal.format("running", "pending", "a run never goes back")))
        self.check(db, "UPDATE runs SET status = 'done' WHERE id = 2", expect=Err(
            "guard_status", "runs: unknown status: a run is pending, running, completed, failed or cancelled"))
        self.check(db, "SELECT run_status(1)", expect="completed")
        self.check(db, "SELECT run_status(2)", expect="running")
        self.check(db, "UPDATE runs SET status = 'failed' WHERE id = 2", expect=None)  # legal
        self.check(db, "SELECT run_status(2)", expect="failed")

    @crash_recovery
    @crash_recovery
    def test_guard004_deletes_only_finished_runs_and_never_changes_an_id(self):
        db = self.db
        if db.value("SELECT max(version) FROM runs_schema_migrations") < 4:
            self.skipTest("this engine's migrations stop before 004 (the run guards)")
        self.check(db, "SELECT start_run('a')", expect=1)
        self.check(db, "SELECT start_run('b', 'api', 'k')", expect=2)
        self.check(db, "SELECT mark_run_running(2)", expect="updated")
        self.check(db, "SELECT start_run('c', 'api', 'done')", expect=3)
        self.check(db, "SELECT cancel_run(3)", expect="updated")
        refused = Err("guard_004", "runs: an active run is never deleted: end it first with complete_run(), "
                                   "fail_run() or cancel_run(); finished runs may be deleted")
        for sql in ["DELETE FROM runs WHERE id = 1", "DELETE FROM runs WHERE id = 2", "DELETE FROM runs"]:
            self.check(db, sql, expect=refused)
        self.check(db, "SELECT count(*) FROM runs", expect=3)
        # An id is the run's fencing token: PostgreSQL's GENERATED ALWAYS
        # identity refuses any value but DEFAULT, which meets the guard.
        self.check(db, per_engine(sqlite="UPDATE runs SET id = 9 WHERE id = 2",
                                  postgres="UPDATE runs SET id = DEFAULT WHERE id = 2"),
                   expect=Err("guard_004", "runs: the id of a run never changes: it is the run's fencing token; "
                                           "start a new run instead"))
        self.check(db, "SELECT heartbeat_run(2)", expect="ok")
        self.check(db, "DELETE FROM runs WHERE id = 3", expect=None)  # history may be pruned
        self.check(db, "SELECT run_status(3)", expect=None)
        self.check(db, "SELECT complete_run(2)", expect="updated")
        self.check(db, "DELETE FROM runs WHERE status = 'completed'", expect=None)
        self.check(db, "SELECT count(*) FROM runs", expect=1)

    def test_raw_inserts_cannot_add_a_second_active_run_or_replace_one(self):
        db = self.db
        self.check(db, "SELECT start_run('a')", expect=1)
        second = Err("guard_active", "runs: this concurrency_key already has an active run: end it first")
        self.check(db, "INSERT INTO runs (scope, status, created_at) VALUES ('raw', 'pending', ?)",
                   PINNED, expect=second)
        # The guard fires before conflict resolution: not dropped silently.
        self.check(db, "INSERT INTO runs (scope, status, created_at) VALUES ('raw', 'running', ?)"
                       " ON CONFLICT DO NOTHING", PINNED, expect=second)
        self.check(db, "INSERT INTO runs (scope, status, created_at) VALUES ('raw', 'bogus', ?)",
                   PINNED, expect=Err("guard_status",
                                      "runs: unknown status: a run is pending, running, completed, failed or cancelled"))
        reuse = Err("guard_id", "runs: a run with this id exists: runs are never replaced")
        # PostgreSQL's id is GENERATED ALWAYS: a writer must say OVERRIDING
        # SYSTEM VALUE to choose one, and then meets the same guard.
        self.check(db, "INSERT INTO runs (id, scope, status, created_at) VALUES (1, 'raw', 'completed', ?)",
                   PINNED, expect=per_engine(
                       sqlite=reuse,
                       postgres=Err("428C9", 'cannot insert a non-DEFAULT value into column "id"')))
        self.check(db, per_engine(
            sqlite="INSERT INTO runs (id, scope, status, created_at) VALUES (1, 'raw', 'completed', ?)",
            postgres="INSERT INTO runs (id, scope, status, created_at) OVERRIDING SYSTEM VALUE"
                     " VALUES (1, 'raw', 'completed', ?)"), PINNED, expect=reuse)
        # SQLite's REPLACE, PostgreSQL's upsert: neither overwrites a run.
        self.check(db, per_engine(
            sqlite="REPLACE INTO runs (id, scope, status, created_at) VALUES (1, 'raw', 'completed', ?)",
            postgres="INSERT INTO runs (id, scope, status, created_at) OVERRIDING SYSTEM VALUE"
                     " VALUES (1, 'raw', 'completed', ?) ON CONFLICT (id) DO UPDATE SET scope = excluded.scope"),
            PINNED, expect=reuse)
        self.check(db, "INSERT INTO runs (scope, status, created_at) VALUES ('history', 'completed', ?)",
                   PINNED, expect=None)
        # PostgreSQL does not hand out again the identity values that the three
        # refused inserts without an id took.
        k2 = per_engine(sqlite=3, postgres=6)
        self.check(db, "SELECT start_run('b', 'api', 'k2')", expect=k2)
        self.check(db, "UPDATE runs SET concurrency_key = '' WHERE id = ?", resolve(k2), expect=second)
        self.check(db, "SELECT count(*) FROM runs WHERE status IN ('pending', 'running')", expect=2)
        self.check(db, "SELECT scope FROM runs WHERE id = 1", expect="a")
        self.check(db, "SELECT active_run()", expect=1)

    # ------------------------------------------------------- crash recovery

    @crash_recovery
    def test_run_info_of_a_fresh_run(self):
        db = self.db
        self.check(db, "SELECT start_run('full', 'cli', 'k', 30)", expect=1)
        info = db.run_info(1)
        self.assertEqual(set(info), RUN_INFO_KEYS)
        expected = {"id": 1, "scope": "full", "status": "pending", "triggered_by": "cli",
                    "concurrency_key": "k", "started_at": None, "finished_at": None,
                    "error_message": None, "progress_current": 0, "progress_total": 0,
                    "current_step": None, "lease_seconds": 30, "cancel_requested_at": None,
                    "stale": False, "stale_reason": None}
        self.assertEqual({k: info[k] for k in expected}, expected)
        for key in ["created_at", "heartbeat_at", "lease_expires_at"]:
            self.assertRegex(info[key], ISO, key)
        self.assertEqual(iso_time(info["lease_expires_at"]) - iso_time(info["heartbeat_at"]),
                         timedelta(seconds=30))
        owner = info["owner"]
        self.assertEqual(set(owner), OWNER_KEYS)
        # SQLite's owner is this process; PostgreSQL's, this connection's session.
        self.assertEqual(owner["pid"], ENGINE.self_pid(db))
        self.assertIsInstance(owner["start_time"], int)
        self.assertIsInstance(owner["host"], str)
        # pids compare within a pid namespace on Linux; a backend pid needs none.
        if ENGINE_NAME == "sqlite":
            self.assertIsInstance(owner["pid_namespace"], int)
        else:
            self.assertIsNone(owner["pid_namespace"])
            self.assertEqual(owner["host"], ENGINE.client_host(db))
        self.assertIsNone(db.run_info(2))
        self.check(db, "SELECT run_info(NULL)", expect=Err(
            "bad_argument", "run_info(): id must be an integer, got NULL"))

    @crash_recovery
    def test_heartbeat_extends_the_lease(self):
        db = self.db
        self.check(db, "SELECT start_run('full', 'api', '', 60)", expect=1)
        before = db.run_info(1)
        self.check(db, "SELECT heartbeat_run(1)", expect="ok")
        after = db.run_info(1)
        self.assertGreaterEqual(after["heartbeat_at"], before["heartbeat_at"])
        self.assertEqual(iso_time(after["lease_expires_at"]) - iso_time(after["heartbeat_at"]),
                         timedelta(seconds=60))
        self.check(db, "SELECT mark_run_running(1)", expect="updated")
        self.check(db, "SELECT update_run_progress(1, 1, 2, 'x')", expect="updated")
        info = db.run_info(1)
        self.assertEqual(iso_time(info["lease_expires_at"]) - iso_time(info["heartbeat_at"]),
                         timedelta(seconds=60))
        self.check(db, "SELECT heartbeat_run(99)", expect="lost")
        self.check(db, "SELECT complete_run(1)", expect="updated")
        self.check(db, "SELECT heartbeat_run(1)", expect="lost")
        self.check(db, "SELECT start_run('nolease', 'api', 'k2')", expect=2)
        self.check(db, "SELECT heartbeat_run(2)", expect="ok")
        self.assertIsNone(db.run_info(2)["lease_expires_at"])
        self.assertIsNone(db.run_info(2)["lease_seconds"])
        self.check(db, "SELECT heartbeat_run(NULL)", expect=Err(
            "bad_argument", "heartbeat_run(): id must be an integer, got NULL"))
        self.check(db, "SELECT start_run('x', 'api', 'k3', 0)", expect=Err(
            "bad_argument", "start_run(): lease_seconds must be between 1 and 31536000 (365 days), got 0; pass NULL for no time-based expiry"))
        self.check(db, "SELECT active_run('k3')", expect=None)

    @crash_recovery
    def test_expired_lease_is_reclaimed_and_the_old_id_is_fenced(self):
        db = self.db
        self.check(db, "SELECT start_run('job', 'api', 'k', 60)", expect=1)
        self.check(db, "SELECT mark_run_running(1)", expect="updated")
        db.value("UPDATE runs SET lease_expires_at = ? WHERE id = 1", PAST)
        info = db.run_info(1)
        self.assertTrue(info["stale"])
        me = ENGINE.self_pid(db)
        # A lease that ran out ends the run even though its owner (this very
        # connection) lives: it stopped heartbeating.
        self.assertTrue(resolve(per_engine(
            sqlite=re.compile(rf"abandoned: (its )?lease expired at {re.escape(PAST)} \(owner process {me} on .+\)"),
            postgres=re.compile(re.escape(f"abandoned: its lease expired at {PAST} (owner session {me} from {ENGINE.client_host(db)})")),
        )).fullmatch(info["stale_reason"]), info["stale_reason"])
        self.check(db, "SELECT start_run('job', 'api', 'k')", expect=2)
        self.check(db, "SELECT run_status(1)", expect="failed")
        self.check(db, "SELECT error_message FROM runs WHERE id = 1", expect=info["stale_reason"])
        self.assertFalse(db.run_info(1)["stale"])
        for sql in ["SELECT complete_run(1)", "SELECT fail_run(1, 'x')", "SELECT cancel_run(1)",
                    "SELECT mark_run_running(1)", "SELECT update_run_progress(1, 1, 1, NULL)"]:
            self.check(db, sql, expect="not_in_expected_state")
        self.check(db, "SELECT heartbeat_run(1)", expect="lost")
        self.check(db, "SELECT run_status(1)", expect="failed")
        self.check(db, "SELECT active_run('k')", expect=2)

    @crash_recovery
    def test_reap_stale_runs_counts_what_it_ended(self):
        db = self.db
        self.check(db, "SELECT start_run('a', 'api', 'k1', 60)", expect=1)
        self.check(db, "SELECT start_run('b', 'api', 'k2', 60)", expect=2)
        self.check(db, "SELECT start_run('c', 'api', 'k3')", expect=3)
        db.value("UPDATE runs SET lease_expires_at = ? WHERE id IN (1, 2)", PAST)
        self.check(db, "SELECT reap_stale_runs('k3')", expect=0)
        self.check(db, "SELECT reap_stale_runs('k1')", expect=1)
        self.assertEqual([self.status(i) for i in (1, 2, 3)], ["failed", "pending", "pending"])
        self.check(db, "SELECT reap_stale_runs()", expect=1)
        self.assertEqual([self.status(i) for i in (1, 2, 3)], ["failed", "failed", "pending"])
        self.check(db, "SELECT reap_stale_runs()", expect=0)
        self.check(db, "SELECT reap_stale_runs(NULL)", expect=Err(
            "bad_argument", "reap_stale_runs(): concurrency_key must be text, got NULL"))

    @crash_recovery
    def test_reap_stale_runs_ends_ownerless_runs_older_than_it_is_told(self):
        db = self.db
        # Active runs written before migration 3, or by code without the
        # extension: no owner, no lease. Only an age given by the caller ends them.
        old = "2020-01-01T00:00:00.000Z"
        for status, key, created in [("running", "a", old), ("pending", "b", old), ("pending", "c", None)]:
            db.value("INSERT INTO runs (scope, status, concurrency_key, created_at, started_at)"
                     " VALUES ('old', ?, ?, coalesce(?, " + NOW_SQL[ENGINE_NAME] + "), ?)",
                     status, key, created, created if status == "running" else None)
        self.check(db, "SELECT start_run('mine', 'api', 'd')", expect=4)
        mine = 4
        db.value("UPDATE runs SET created_at = ? WHERE id = ?", old, mine)
        self.check(db, "SELECT reap_stale_runs()", expect=0)
        self.check(db, "SELECT start_run('x', 'api', 'a')", expect=Err(
            "already_active", re.compile(r"start_run\(\): run 1 is already active for concurrency_key 'a' .*")))
        self.check(db, "SELECT reap_stale_runs('zz', 3600)", expect=0)
        self.check(db, "SELECT reap_stale_runs('a', 3600)", expect=1)
        self.check(db, "SELECT reap_stale_runs(NULL, 3600)", expect=1)
        self.check(db, "SELECT reap_stale_runs(NULL, 3600)", expect=0)
        self.assertEqual([self.status(i) for i in (1, 2, 3, mine)], ["failed", "failed", "pending", "pending"])
        self.check(db, "SELECT error_message FROM runs WHERE id = 1", expect=
                   f"abandoned: no owner recorded, and running since {old}, more than 3600 seconds ago")
        self.check(db, "SELECT error_message FROM runs WHERE id = 2", expect=
                   f"abandoned: no owner recorded, and pending since {old}, more than 3600 seconds ago")
        self.check(db, "SELECT start_run('x', 'api', 'a')", expect=5)
        self.check(db, "SELECT reap_stale_runs(NULL, -1)", expect=Err(
            "bad_argument", "reap_stale_runs(): ownerless_after_seconds must not be negative, got -1"))
        self.check(db, "SELECT reap_stale_runs(NULL, NULL)", expect=Err(
            "bad_argument", "reap_stale_runs(): ownerless_after_seconds must be an integer, got NULL"))
        self.check(db, "SELECT reap_stale_runs(NULL)", expect=Err(
            "bad_argument", "reap_stale_runs(): concurrency_key must be text, got NULL"))

    @crash_recovery
    def test_cancel_of_a_pending_or_own_run_is_immediate(self):
        db = self.db
        self.check(db, "SELECT start_run('a')", expect=1)
        self.check(db, "SELECT cancel_run(1)", expect="updated")
        self.check(db, "SELECT start_run('b')", expect=2)
        self.check(db, "SELECT mark_run_running(2)", expect="updated")
        self.check(db, "SELECT cancel_run(2)", expect="updated")
        self.check(db, "SELECT run_status(2)", expect="cancelled")
        self.check(db, "SELECT cancel_run(2)", expect="not_in_expected_state")
        self.check(db, "SELECT cancel_run(9)", expect="not_found")
        self.assertIsNone(db.run_info(2)["cancel_requested_at"])

    @crash_recovery
    def test_cancel_protocol_with_a_live_owner_elsewhere(self):
        db = self.db
        worker = self.remote()
        self.check(worker, "SELECT start_run('job', 'worker')", expect=1)
        self.check(worker, "SELECT mark_run_running(1)", expect="updated")
        self.check(db, "SELECT cancel_run(1)", expect="cancel_requested")
        self.check(db, "SELECT run_status(1)", expect="running")
        info = db.run_info(1)
        self.assertRegex(info["cancel_requested_at"], ISO)
        self.assertFalse(info["stale"])
        self.assertEqual(info["owner"]["pid"], ENGINE.owner_pid(worker))
        self.check(db, "SELECT cancel_run(1)", expect="cancel_requested")
        self.check(db, "SELECT start_run('job')", expect=Err(
            "already_active", re.compile(r"start_run\(\): run 1 is already active \(scope 'job', status 'running', .*")))
        self.check(worker, "SELECT heartbeat_run(1)", expect="cancel_requested")
        self.check(worker, "SELECT update_run_progress(1, 5, 10, 'stopping')", expect="updated")
        self.check(worker, "SELECT cancel_run(1)", expect="updated")
        self.check(db, "SELECT run_status(1)", expect="cancelled")
        self.check(db, "SELECT start_run('job')", expect=2)
        # A pending run is cancelled at once, whoever owns it.
        self.check(worker, "SELECT start_run('p', 'worker', 'kp')", expect=3)
        self.check(db, "SELECT cancel_run(3)", expect="updated")

    @crash_recovery
    def test_a_killed_owner_is_reclaimed_and_fenced(self):
        db = self.db
        worker = self.remote()
        self.check(worker, "SELECT start_run('job', 'worker', 'k')", expect=1)
        self.check(worker, "SELECT mark_run_running(1)", expect="updated")
        pid = ENGINE.owner_pid(worker)
        self.check(db, "SELECT start_run('job', 'api', 'k')", expect=Err(
            "already_active", re.compile(r"start_run\(\): run 1 is already active for concurrency_key 'k' .*")))
        self.assertFalse(db.run_info(1)["stale"])
        worker.kill()
        ENGINE.wait_owner_gone(db, 1)
        info = db.run_info(1)
        self.assertTrue(info["stale"])
        self.assertTrue(resolve(per_engine(
            sqlite=re.compile(rf"abandoned: owner process {pid} on .+ is gone"),
            postgres=re.compile(re.escape(f"abandoned: owner session {pid} from {ENGINE.client_host(db)} is gone")),
        )).fullmatch(info["stale_reason"]), info["stale_reason"])
        self.check(db, "SELECT start_run('job', 'api', 'k')", expect=2)
        self.check(db, "SELECT run_status(1)", expect="failed")
        self.check(db, "SELECT error_message FROM runs WHERE id = 1", expect=info["stale_reason"])
        for sql in ["SELECT complete_run(1)", "SELECT fail_run(1, 'x')", "SELECT cancel_run(1)",
                    "SELECT mark_run_running(1)", "SELECT update_run_progress(1, 1, 1, NULL)"]:
            self.check(db, sql, expect="not_in_expected_state")
        self.check(db, "SELECT heartbeat_run(1)", expect="lost")
        self.check(db, "SELECT reap_stale_runs()", expect=0)

    @crash_recovery
    def test_killed_owners_are_reaped_or_cancelled(self):
        db = self.db
        a, b = self.remote(), self.remote()
        self.check(a, "SELECT start_run('a', 'worker', 'k1')", expect=1)
        self.check(a, "SELECT mark_run_running(1)", expect="updated")
        self.check(b, "SELECT start_run('b', 'worker', 'k2')", expect=2)
        self.check(b, "SELECT mark_run_running(2)", expect="updated")
        self.check(db, "SELECT start_run('c', 'api', 'k3')", expect=3)
        self.check(db, "SELECT cancel_run(2)", expect="cancel_requested")
        self.check(db, "SELECT reap_stale_runs()", expect=0)
        a.kill()
        b.kill()
        ENGINE.wait_owner_gone(db, 1)
        ENGINE.wait_owner_gone(db, 2)
        self.check(db, "SELECT cancel_run(2)", expect="updated")  # its owner is gone
        self.check(db, "SELECT run_status(2)", expect="cancelled")
        self.check(db, "SELECT reap_stale_runs()", expect=1)
        self.assertEqual([self.status(i) for i in (1, 2, 3)], ["failed", "cancelled", "pending"])
        self.assertTrue(db.value("SELECT error_message FROM runs WHERE id = 1").startswith("abandoned: "))
        self.check(db, "SELECT reap_stale_runs()", expect=0)

    @crash_recovery
    def test_mark_run_running_moves_ownership(self):
        db = self.db
        self.check(db, "SELECT start_run('job', 'scheduler', 'k')", expect=1)
        worker = self.remote()
        self.check(worker, "SELECT mark_run_running(1)", expect="updated")
        self.assertEqual(db.run_info(1)["owner"]["pid"], ENGINE.owner_pid(worker))
        self.check(db, "SELECT cancel_run(1)", expect="cancel_requested")
        worker.kill()
        ENGINE.wait_owner_gone(db, 1)
        # The scheduler that started the run still lives; its owner, the
        # worker, does not.
        self.check(db, "SELECT start_run('job', 'scheduler', 'k')", expect=2)
        self.check(db, "SELECT run_status(1)", expect="failed")

    @crash_recovery
    def test_a_stalled_owner_is_fenced_off(self):
        db = self.db
        worker = self.remote()
        self.check(worker, "SELECT start_run('job', 'worker', 'k', 60)", expect=1)
        self.check(worker, "SELECT mark_run_running(1)", expect="updated")
        db.value("UPDATE runs SET lease_expires_at = ? WHERE id = 1", PAST)
        self.check(db, "SELECT start_run('job', 'api', 'k')", expect=2)
        pid = ENGINE.owner_pid(worker)
        self.assertTrue(resolve(per_engine(
            sqlite=re.compile(rf"abandoned: (its )?lease expired at {re.escape(PAST)} \(owner process {pid} on .+\)"),
            postgres=re.compile(re.escape(f"abandoned: its lease expired at {PAST} (owner session {pid} from {ENGINE.client_host(db)})")),
        )).fullmatch(db.value("SELECT error_message FROM runs WHERE id = 1")))
        # The worker lives on, but its run id no longer lets it change anything.
        self.check(worker, "SELECT heartbeat_run(1)", expect="lost")
        self.check(worker, "SELECT update_run_progress(1, 1, 2, NULL)", expect="not_in_expected_state")
        self.check(worker, "SELECT complete_run(1)", expect="not_in_expected_state")
        self.check(worker, "SELECT start_run('job', 'worker', 'k')", expect=Err(
            "already_active", re.compile(r"start_run\(\): run 2 is already active for concurrency_key 'k' .*")))
        self.assertEqual([self.status(1), self.status(2)], ["failed", "pending"])


def load_tests(loader, tests, pattern):
    """RUNS_CASES=core or crash_recovery runs only those cases (default: all)."""
    which = os.environ.get("RUNS_CASES", "all")
    if which not in ("all", "core", "crash_recovery"):
        raise RuntimeError(f"RUNS_CASES={which!r}: use all, core or crash_recovery")
    suite = unittest.TestSuite()
    for name in loader.getTestCaseNames(Conformance):
        marked = getattr(getattr(Conformance, name), "crash_recovery", False)
        if which == "all" or marked == (which == "crash_recovery"):
            suite.addTest(Conformance(name))
    return suite


def setUpModule():
    global ENGINE
    ENGINE = make_engine(ENGINE_NAME)


def tearDownModule():
    if ENGINE is not None:
        ENGINE.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
