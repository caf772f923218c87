"""sqlite-runs from Python's sqlite3 module, as an application would use it.

Run with Debian's /usr/bin/python3 (its sqlite3 module can load extensions)
and RUNS_EXTENSION set to the built runs.so:

    RUNS_EXTENSION=build/runs.so /usr/bin/python3 tests/python/test_client.py

With RUNS_LOADER=sqlite_runs instead, the connections load the extension
through the installed Python package (sqlite_runs.load(conn)): the package
tests (tests/packages) run it so in the venvs they install into.

Python maps SQLite's result codes to exceptions: SQLITE_CONSTRAINT to
IntegrityError, SQLITE_ERROR, SQLITE_BUSY and SQLITE_READONLY to
OperationalError, SQLITE_TOOBIG to DataError. Since Python 3.11 the exception also carries the extended
code (sqlite_errorcode) and its name (sqlite_errorname).
"""

import json
import os
import re
import sqlite3
import sys
import tempfile
import unittest

EXTENSION = os.environ.get("RUNS_EXTENSION", "")
LOADER = os.environ.get("RUNS_LOADER", "")
CASES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "clients", "cases.json")

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
END_IT = (": wait for it to finish, or end it with complete_run(), fail_run() "
          "or cancel_run()")
NO_WRITE_LOCK = ("start_run(): cannot run inside a transaction that does not hold the write "
                 "lock: begin it with BEGIN IMMEDIATE, or call it outside any transaction")
SQLITE_CONSTRAINT_UNIQUE = 2067


def setUpModule():
    if LOADER == "sqlite_runs":
        import sqlite_runs  # noqa: F401  (fails here when the package is not installed)
        return
    if LOADER:
        raise RuntimeError(f"RUNS_LOADER={LOADER!r}: only sqlite_runs is known")
    if not EXTENSION:
        raise RuntimeError("RUNS_EXTENSION is not set: set it to the path of the built runs.so")
    if not os.path.isfile(EXTENSION):
        raise RuntimeError(f"RUNS_EXTENSION={EXTENSION!r}: no such file; build the extension first")
    if not hasattr(sqlite3.Connection, "enable_load_extension"):
        raise RuntimeError(f"{sys.executable}: this Python's sqlite3 module cannot load "
                           "extensions; run the test with /usr/bin/python3")


def connect(path=":memory:", **kwargs):
    """A connection with the extension loaded, as an application opens one."""
    conn = sqlite3.connect(path, **kwargs)
    if LOADER:
        import sqlite_runs
        sqlite_runs.load(conn)
        return conn
    conn.enable_load_extension(True)
    conn.load_extension(EXTENSION)
    conn.enable_load_extension(False)
    return conn


def value(conn, sql, *args):
    return conn.execute(sql, args).fetchone()[0]


# The migrations of sql/NNN_name.sql, as runs_schema_migrations records them,
# and what runs_migrate() returns: the highest NNN.
MIGRATIONS = sorted(
    (int(name[:3]), name[:-4]) for name in os.listdir(os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "sql"))
    if re.fullmatch(r"\d{3}_.*\.sql", name))
LATEST_SCHEMA_VERSION = MIGRATIONS[-1][0]


class ClientTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.path = os.path.join(self.tmp.name, "app.db")

    def open(self, path=None, **kwargs):
        conn = connect(path or self.path, **kwargs)
        self.addCleanup(conn.close)
        return conn

    def migrated(self, **kwargs):
        conn = self.open(**kwargs)
        self.assertEqual(value(conn, "SELECT runs_migrate()"), LATEST_SCHEMA_VERSION)
        return conn


class SharedCasesTest(ClientTestCase):
    """tests/clients/cases.json, the cases every client runs."""

    def test_shared_client_cases(self):
        with open(CASES, encoding="utf-8") as f:
            steps = json.load(f)["steps"]
        self.assertGreater(len(steps), 0)
        conn = self.open()
        conn.execute("SELECT runs_busy_timeout(5000)")  # as every client opens its connection
        for number, step in enumerate(steps, start=1):
            sql, args = step["sql"], step.get("args", [])
            with self.subTest(step=number, sql=sql):
                if "error" in step:
                    error = step["error"]
                    with self.assertRaises(getattr(sqlite3, error["python"])) as raised:
                        conn.execute(sql, args)
                    self.assertIs(type(raised.exception), getattr(sqlite3, error["python"]))
                    self.assertEqual(re.sub(TIMESTAMP, "TIME", str(raised.exception)),
                                     error["message"])
                    self.assertEqual(raised.exception.sqlite_errorcode, error["code"])
                    self.assertEqual(raised.exception.sqlite_errorname, error["name"])
                    self.assertFalse(conn.in_transaction)
                else:
                    self.assertEqual(value(conn, sql, *args), step["result"])


class LifecycleTest(ClientTestCase):
    def test_migrate_start_refuse_and_finish(self):
        conn = self.open()
        self.assertEqual(value(conn, "SELECT runs_version()"), "v0.1.0")
        self.assertEqual(value(conn, "SELECT runs_migrate()"), LATEST_SCHEMA_VERSION)
        self.assertEqual(value(conn, "SELECT runs_migrate()"), LATEST_SCHEMA_VERSION)
        self.assertEqual(
            conn.execute("SELECT version, name FROM runs_schema_migrations ORDER BY version")
            .fetchall(),
            MIGRATIONS)
        self.assertIsNone(value(conn, "SELECT active_run()"))

        run_id = value(conn, "SELECT start_run(?)", "full")
        self.assertEqual(run_id, 1)
        self.assertEqual(value(conn, "SELECT active_run()"), run_id)
        self.assertEqual(value(conn, "SELECT run_status(?)", run_id), "pending")
        self.assertFalse(conn.in_transaction)

        with self.assertRaises(sqlite3.IntegrityError) as raised:
            conn.execute("SELECT start_run(?)", ("full",))
        message = str(raised.exception)
        self.assertIn("already active", message)
        self.assertIn("run 1", message)
        self.assertIn("scope 'full'", message)
        self.assertRegex(message, "^" + re.escape(
            "start_run(): run 1 is already active (scope 'full', status 'pending', since ")
            + TIMESTAMP + re.escape(")" + END_IT) + "$")
        self.assertEqual(raised.exception.sqlite_errorcode, SQLITE_CONSTRAINT_UNIQUE)
        self.assertEqual(raised.exception.sqlite_errorname, "SQLITE_CONSTRAINT_UNIQUE")
        self.assertFalse(conn.in_transaction)
        self.assertEqual(value(conn, "SELECT count(*) FROM runs"), 1)

        self.assertEqual(value(conn, "SELECT mark_run_running(?)", run_id), "updated")
        self.assertEqual(value(conn, "SELECT mark_run_running(?)", run_id),
                         "not_in_expected_state")
        self.assertEqual(value(conn, "SELECT mark_run_running(?)", 99), "not_found")
        self.assertEqual(
            value(conn, "SELECT update_run_progress(?, ?, ?, ?)", run_id, 5, 10, "extract"),
            "updated")
        self.assertEqual(
            conn.execute("SELECT progress_current, progress_total, current_step FROM runs"
                         " WHERE id = ?", (run_id,)).fetchone(),
            (5, 10, "extract"))
        self.assertEqual(
            value(conn, "SELECT update_run_progress(?, ?, ?, ?)", run_id, 10, 10, None),
            "updated")

        # A running run is quoted with its started_at.
        with self.assertRaises(sqlite3.IntegrityError) as raised:
            conn.execute("SELECT start_run('delta', 'cron')")
        self.assertRegex(str(raised.exception), re.escape(
            "run 1 is already active (scope 'full', status 'running', since "))

        self.assertEqual(value(conn, "SELECT complete_run(?)", run_id), "updated")
        self.assertEqual(value(conn, "SELECT complete_run(?)", run_id), "not_in_expected_state")
        self.assertEqual(value(conn, "SELECT run_status(?)", run_id), "completed")
        self.assertIsNone(value(conn, "SELECT run_status(?)", 99))
        self.assertIsNone(value(conn, "SELECT active_run()"))
        started, finished, step = conn.execute(
            "SELECT started_at, finished_at, current_step FROM runs WHERE id = ?",
            (run_id,)).fetchone()
        self.assertRegex(started, "^" + TIMESTAMP + "$")
        self.assertRegex(finished, "^" + TIMESTAMP + "$")
        self.assertLessEqual(started, finished)
        self.assertIsNone(step)

        # A new run may start once the first has finished: fail it, and
        # cancel a third.
        second = value(conn, "SELECT start_run('full', 'cron')")
        self.assertEqual(second, 2)
        self.assertEqual(value(conn, "SELECT fail_run(?, ?)", second, "source unreachable"),
                         "updated")
        self.assertEqual(
            conn.execute("SELECT status, triggered_by, error_message FROM runs WHERE id = ?",
                         (second,)).fetchone(),
            ("failed", "cron", "source unreachable"))
        third = value(conn, "SELECT start_run('full')")
        self.assertEqual(value(conn, "SELECT cancel_run(?)", third), "updated")
        self.assertEqual(value(conn, "SELECT cancel_run(?)", third), "not_in_expected_state")
        self.assertEqual(value(conn, "SELECT cancel_run(?)", 99), "not_found")
        self.assertEqual(
            conn.execute("SELECT id, status FROM runs ORDER BY id").fetchall(),
            [(1, "completed"), (2, "failed"), (3, "cancelled")])

    def test_concurrency_keys(self):
        conn = self.migrated()
        k1 = value(conn, "SELECT start_run('delta', 'api', 'k1')")
        default = value(conn, "SELECT start_run('full')")
        self.assertEqual((k1, default), (1, 2))
        self.assertEqual(value(conn, "SELECT active_run('k1')"), k1)
        self.assertEqual(value(conn, "SELECT active_run()"), default)
        with self.assertRaises(sqlite3.IntegrityError) as raised:
            conn.execute("SELECT start_run(?, ?, ?)", ("x", "api", "k1"))
        self.assertRegex(str(raised.exception), "^" + re.escape(
            "start_run(): run 1 is already active for concurrency_key 'k1' (scope 'delta', "
            "status 'pending', since ") + TIMESTAMP + re.escape(")" + END_IT) + "$")
        self.assertEqual(raised.exception.sqlite_errorcode, SQLITE_CONSTRAINT_UNIQUE)

    def test_last_insert_rowid_is_the_callers(self):
        conn = self.migrated(isolation_level=None)
        conn.execute("CREATE TABLE notes (text TEXT)")
        cursor = conn.execute("INSERT INTO notes VALUES ('a'), ('b'), ('c')")
        self.assertEqual(cursor.lastrowid, 3)
        self.assertEqual(value(conn, "SELECT start_run('full')"), 1)
        self.assertEqual(value(conn, "SELECT last_insert_rowid()"), 3)


class ArgumentErrorTest(ClientTestCase):
    def assert_error(self, conn, sql, args, message, errorname="SQLITE_ERROR",
                     exception=sqlite3.OperationalError):
        with self.assertRaises(exception) as raised:
            conn.execute(sql, args)
        self.assertEqual(str(raised.exception), message)
        self.assertEqual(raised.exception.sqlite_errorname, errorname)
        self.assertFalse(conn.in_transaction)

    def test_bad_arguments_raise_operational_error_with_exact_text(self):
        conn = self.migrated()
        self.assert_error(conn, "SELECT start_run(?)", (1,),
                          "start_run(): scope must be text, got integer")
        self.assert_error(conn, "SELECT start_run(?)", (None,),
                          "start_run(): scope must be text, got NULL")
        self.assert_error(conn, "SELECT start_run(?)", (b"full",),
                          "start_run(): scope must be text, got blob")
        self.assert_error(conn, "SELECT start_run(?)", ("",),
                          "start_run(): scope must not be empty")
        self.assert_error(conn, "SELECT start_run(?, ?)", ("full", ""),
                          "start_run(): triggered_by must not be empty")
        self.assert_error(conn, "SELECT start_run(?)", ("s" * 1025,),
                          "start_run(): scope is too long (1025 bytes, at most 1024)",
                          "SQLITE_TOOBIG", sqlite3.DataError)
        self.assert_error(conn, "SELECT mark_run_running(?)", (1.5,),
                          "mark_run_running(): id must be an integer, got real 1.5")
        self.assert_error(conn, "SELECT mark_run_running(?)", ("one",),
                          "mark_run_running(): id must be an integer, got text")
        self.assert_error(conn, "SELECT mark_run_running(?)", ("1.5",),
                          "mark_run_running(): id must be an integer, got text")
        self.assert_error(conn, "SELECT mark_run_running(?)", ("0x1",),
                          "mark_run_running(): id must be an integer, got text")
        self.assert_error(conn, "SELECT mark_run_running(?)", ("9223372036854775808",),
                          "mark_run_running(): id must be an integer, got text")
        self.assert_error(conn, "SELECT start_run('full', 'api', 'k', ?)", ("60s",),
                          "start_run(): lease_seconds must be an integer, got text")
        self.assert_error(conn, "SELECT update_run_progress(?, ?, ?, ?)", (1, -1, 10, None),
                          "update_run_progress(): current must not be negative, got -1")
        self.assert_error(conn, "SELECT fail_run(?, ?)", (1, b"x"),
                          "fail_run(): error_message must be text, got blob")
        self.assert_error(conn, "SELECT start_run()", (),
                          "wrong number of arguments to function start_run()")
        self.assertEqual(value(conn, "SELECT count(*) FROM runs"), 0)
        # Integral floats are ids too, and text that an INTEGER column would
        # store as an integer, for every integer argument.
        self.assertEqual(value(conn, "SELECT start_run('full')"), 1)
        self.assertEqual(value(conn, "SELECT mark_run_running(?)", 1.0), "updated")
        for text in ("1", " 1 ", "+1", "1.0", "1e0", "0001"):
            with self.subTest(id=text):
                self.assertEqual(value(conn, "SELECT run_status(?)", text), "running")
        self.assertEqual(value(conn, "SELECT update_run_progress(?, ?, ?, ?)", "1", "2", "4.0", None),
                         "updated")
        self.assertEqual(conn.execute("SELECT progress_current, progress_total FROM runs").fetchone(),
                         (2, 4))
        self.assertEqual(value(conn, "SELECT start_run('full', 'api', 'k', ?)", "60"), 2)
        self.assertEqual(value(conn, "SELECT lease_seconds FROM runs WHERE id = 2"), 60)

    def test_unmigrated_database(self):
        conn = self.open()
        self.assert_error(conn, "SELECT start_run('full')", (),
                          "start_run(): the database has no runs schema: "
                          "run SELECT runs_migrate() first")
        self.assert_error(conn, "SELECT active_run()", (),
                          "active_run(): the database has no runs schema: "
                          "run SELECT runs_migrate() first")
        self.assertEqual(value(conn, "SELECT count(*) FROM sqlite_schema"), 0)


class TransactionTest(ClientTestCase):
    """Python's sqlite3 (legacy isolation_level, the default) opens a
    transaction implicitly before INSERT, UPDATE, DELETE and REPLACE only."""

    def test_select_start_run_works_with_default_isolation_level(self):
        conn = self.migrated()
        self.assertEqual(conn.isolation_level, "")
        self.assertEqual(value(conn, "SELECT start_run('full')"), 1)
        self.assertFalse(conn.in_transaction)
        # Committed by start_run itself: another connection sees it at once.
        other = self.open()
        self.assertEqual(value(other, "SELECT active_run()"), 1)
        # Transitions are SELECTs too: no implicit transaction, autocommitted.
        self.assertEqual(value(conn, "SELECT mark_run_running(1)"), "updated")
        self.assertFalse(conn.in_transaction)
        self.assertEqual(value(other, "SELECT run_status(1)"), "running")

    def test_select_start_run_works_with_isolation_level_none(self):
        conn = self.migrated(isolation_level=None)
        self.assertEqual(value(conn, "SELECT start_run('full')"), 1)
        self.assertEqual(value(conn, "SELECT complete_run(1)"), "not_in_expected_state")
        self.assertEqual(value(conn, "SELECT cancel_run(1)"), "updated")
        self.assertEqual(value(conn, "SELECT start_run('full')"), 2)

    def test_start_run_after_begin_raises(self):
        conn = self.migrated(isolation_level=None)
        conn.execute("BEGIN")
        with self.assertRaises(sqlite3.OperationalError) as raised:
            conn.execute("SELECT start_run('full')")
        self.assertEqual(str(raised.exception), NO_WRITE_LOCK)
        self.assertTrue(conn.in_transaction)  # the caller's transaction is untouched
        conn.execute("ROLLBACK")
        self.assertEqual(value(conn, "SELECT start_run('full')"), 1)

    def test_start_run_after_begin_raises_with_default_isolation_level(self):
        conn = self.migrated()
        conn.execute("BEGIN")
        with self.assertRaises(sqlite3.OperationalError) as raised:
            conn.execute("SELECT start_run('full')")
        self.assertEqual(str(raised.exception), NO_WRITE_LOCK)
        conn.rollback()

    def test_start_run_joins_begin_immediate(self):
        conn = self.migrated(isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        self.assertEqual(value(conn, "SELECT start_run('full')"), 1)
        self.assertTrue(conn.in_transaction)
        conn.execute("ROLLBACK")
        self.assertIsNone(value(conn, "SELECT active_run()"))

    def test_implicit_transaction_before_dml_is_joined_by_start_run(self):
        # The default mode opens a transaction before INSERT; having written,
        # it holds the write lock, and start_run() joins it: the run commits,
        # or rolls back, with the application's own rows.
        conn = self.migrated()
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.execute("INSERT INTO notes VALUES ('queued')")  # implicit BEGIN
        self.assertTrue(conn.in_transaction)
        self.assertEqual(value(conn, "SELECT start_run('full')"), 1)
        self.assertTrue(conn.in_transaction)
        conn.rollback()
        self.assertIsNone(value(conn, "SELECT active_run()"))
        conn.execute("INSERT INTO notes VALUES ('queued')")
        self.assertEqual(value(conn, "SELECT start_run('full')"), 1)
        conn.commit()
        self.assertEqual(value(conn, "SELECT active_run()"), 1)

    def test_transitions_join_the_callers_transaction(self):
        conn = self.migrated(isolation_level=None)
        self.assertEqual(value(conn, "SELECT start_run('full')"), 1)
        conn.execute("BEGIN")
        self.assertEqual(value(conn, "SELECT mark_run_running(1)"), "updated")
        conn.execute("ROLLBACK")
        self.assertEqual(value(conn, "SELECT run_status(1)"), "pending")

    def test_unfinished_select_on_the_connection_blocks_start_run(self):
        conn = self.migrated()
        for scope in ("a", "b", "c"):
            run_id = value(conn, "SELECT start_run(?)", scope)
            self.assertEqual(value(conn, "SELECT cancel_run(?)", run_id), "updated")
        reading = conn.execute("SELECT id FROM runs ORDER BY id")
        self.assertEqual(reading.fetchone(), (1,))
        with self.assertRaises(sqlite3.OperationalError) as raised:
            conn.execute("SELECT start_run('full')")
        self.assertEqual(
            str(raised.exception),
            "start_run(): must be a statement of its own, with no FROM clause: this statement, "
            "or another one of this connection still being stepped, holds a read transaction")
        self.assertEqual(reading.fetchall(), [(2,), (3,)])
        self.assertEqual(value(conn, "SELECT start_run('full')"), 4)


class TwoConnectionsTest(ClientTestCase):
    def test_run_started_by_one_connection_blocks_the_other(self):
        a = self.migrated()
        b = self.open()
        run_id = value(a, "SELECT start_run('full', 'worker-a')")
        self.assertEqual(run_id, 1)
        with self.assertRaises(sqlite3.IntegrityError) as raised:
            b.execute("SELECT start_run('full', 'worker-b')")
        self.assertIn("already active", str(raised.exception))
        self.assertIn("run 1", str(raised.exception))
        self.assertIn("scope 'full'", str(raised.exception))
        self.assertEqual(raised.exception.sqlite_errorcode, SQLITE_CONSTRAINT_UNIQUE)
        self.assertEqual(value(b, "SELECT active_run()"), run_id)
        # B may end A's run; then B can start its own.
        self.assertEqual(value(b, "SELECT mark_run_running(1)"), "updated")
        self.assertEqual(value(b, "SELECT complete_run(1)"), "updated")
        self.assertEqual(value(b, "SELECT start_run('full', 'worker-b')"), 2)
        with self.assertRaises(sqlite3.IntegrityError):
            a.execute("SELECT start_run('full', 'worker-a')")
        self.assertEqual(
            a.execute("SELECT id, status, triggered_by FROM runs ORDER BY id").fetchall(),
            [(1, "completed", "worker-a"), (2, "pending", "worker-b")])

    def test_writer_holding_the_lock_gives_busy_after_timeout(self):
        a = self.migrated(isolation_level=None)
        b = self.open(timeout=0)
        a.execute("BEGIN IMMEDIATE")
        with self.assertRaises(sqlite3.OperationalError) as raised:
            b.execute("SELECT start_run('full')")
        self.assertEqual(
            str(raised.exception),
            "start_run(): the database is locked by another writer and busy_timeout ran out: "
            "retry, or give the connection a longer busy_timeout")
        self.assertEqual(raised.exception.sqlite_errorname, "SQLITE_BUSY")
        self.assertFalse(b.in_transaction)
        a.execute("COMMIT")
        self.assertEqual(value(b, "SELECT start_run('full')"), 1)

    def test_read_only_connection(self):
        writer = self.migrated()
        self.assertEqual(value(writer, "SELECT start_run('full')"), 1)
        reader = self.open(f"file:{self.path}?mode=ro", uri=True)
        self.assertEqual(value(reader, "SELECT active_run()"), 1)
        self.assertEqual(value(reader, "SELECT run_status(1)"), "pending")
        for sql, message in [
            ("SELECT start_run('delta', 'api', 'k')",
             "start_run(): the database is read-only: open it read-write to change runs"),
            ("SELECT runs_migrate()",
             "runs_migrate(): the database is read-only: open it read-write to change runs"),
            ("SELECT cancel_run(1)",
             "cancel_run(): the database is read-only: open it read-write to change runs"),
        ]:
            with self.subTest(sql=sql):
                with self.assertRaises(sqlite3.OperationalError) as raised:
                    reader.execute(sql)
                self.assertEqual(str(raised.exception), message)
                self.assertEqual(raised.exception.sqlite_errorname, "SQLITE_READONLY")
        self.assertEqual(value(writer, "SELECT run_status(1)"), "pending")


if __name__ == "__main__":
    unittest.main(verbosity=2)
