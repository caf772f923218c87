"""What only the PostgreSQL port has: its migrations, the schema they pin the
functions to, the owner lock, transactions, and use without superuser rights.

The behaviour shared with SQLite is in tests/conformance/. Runs against a
server started for this run (pg_server.py):

    /usr/bin/python3 tests/postgres/test_pg_schema.py
"""

import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import psycopg2  # noqa: E402

from pg_server import FUNCTIONS, HANG_GUARD, ROOT, PgCase, apply_migrations, migration_files  # noqa: E402

class PgTest(PgCase):
    def my_locks(self, conn):
        """The advisory locks this session holds: (classid, objid) pairs."""
        return self.rows(conn, "SELECT classid::bigint, objid::bigint FROM pg_locks"
                               " WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"
                               " ORDER BY 1, 2")

    # ------------------------------------------------------------ migrations

    def test_migrations_record_their_versions(self):
        conn = self.connect(self.schema())
        self.assertEqual(self.rows(conn, "SELECT version, name FROM runs_schema_migrations ORDER BY 1"),
                         [(1, "001_create_runs"), (2, "002_one_active_run"), (3, "003_run_owners"),
                          (4, "004_run_guards")])
        self.assertEqual(self.value(conn, "SELECT count(*) FROM runs_schema_migrations"
                                          " WHERE applied_at > now() - interval '1 hour'"), 4)
        self.assertEqual(self.value(conn, "SELECT indexdef FROM pg_indexes WHERE indexname = 'runs_one_active'"
                                          " AND schemaname = current_schema()"),
                         f"CREATE UNIQUE INDEX runs_one_active ON {self.value(conn, 'SELECT current_schema()')}"
                         ".runs USING btree (concurrency_key) WHERE (status = ANY (ARRAY['pending'::text, "
                         "'running'::text]))")

    def test_a_migration_applied_twice_or_out_of_order_changes_nothing(self):
        name = self.schema(migrate=False)
        conn = self.connect(name)
        files = migration_files()
        with self.assertRaises(psycopg2.Error) as caught:
            apply_migrations(conn, files[1:2])
        self.assertEqual(caught.exception.diag.message_primary,
                         "migration 002 needs migration 001 first: apply sql/postgres/001_create_runs.sql")
        self.assertIsNone(self.value(conn, "SELECT to_regclass('runs_schema_migrations')"))
        for applied in (False, True):  # without the bookkeeping table, then with 001 only
            if applied:
                apply_migrations(conn, files[:1])
            with self.assertRaises(psycopg2.Error) as caught:
                apply_migrations(conn, files[3:4])
            self.assertEqual(caught.exception.diag.message_primary,
                             "migration 004 needs migration 003 first: apply sql/postgres/003_run_owners.sql")
        with self.assertRaises(psycopg2.Error) as caught:
            apply_migrations(conn, files[2:3])
        self.assertEqual(caught.exception.diag.message_primary,
                         "migration 003 needs migration 002 first: apply sql/postgres/002_one_active_run.sql")
        with self.assertRaises(psycopg2.Error) as caught:
            apply_migrations(conn, files[:1])
        self.assertEqual(caught.exception.diag.message_primary,
                         f"migration 001 is already applied: runs_schema_migrations exists in schema {name}")
        apply_migrations(conn, files[1:])
        for index, version in [(1, 2), (2, 3), (3, 4)]:
            with self.assertRaises(psycopg2.Error) as caught:
                apply_migrations(conn, files[index:index + 1])
            self.assertEqual(caught.exception.diag.message_primary,
                             f"migration 00{version} is already applied in schema {name}")
        self.assertEqual(self.value(conn, "SELECT string_agg(version::text, ',' ORDER BY version)"
                                          " FROM runs_schema_migrations"), "1,2,3,4")
        self.assertIsNone(self.value(conn, "SELECT to_regproc('start_run')"))  # functions.sql has them
        apply_migrations(conn, [FUNCTIONS])
        self.assertEqual(self.value(conn, "SELECT start_run('full')"), 1)

    def test_migration_002_fails_all_but_the_newest_active_run_of_a_key(self):
        conn = self.connect(self.schema(migrate=False))
        files = migration_files()
        apply_migrations(conn, files[:1])
        self.value(conn, "INSERT INTO runs (scope, status, created_at) VALUES"
                         " ('a', 'pending', now()), ('b', 'running', now()), ('c', 'completed', now()),"
                         " ('d', 'pending', now())")
        apply_migrations(conn, files[1:])
        self.assertEqual(self.rows(conn, "SELECT id, status, error_message FROM runs ORDER BY id"), [
            (1, "failed", "abandoned: run 4 was active for the same key at the same time; migration 002 "
                          "kept the newest active run and failed this one"),
            (2, "failed", "abandoned: run 4 was active for the same key at the same time; migration 002 "
                          "kept the newest active run and failed this one"),
            (3, "completed", None),
            (4, "pending", None)])

    def test_migration_003_refuses_unknown_statuses(self):
        conn = self.connect(self.schema(migrate=False))
        files = migration_files()
        apply_migrations(conn, files[:2])
        self.value(conn, "INSERT INTO runs (scope, status, created_at) VALUES ('a', 'done', now())")
        with self.assertRaises(psycopg2.Error) as caught:
            apply_migrations(conn, files[2:])
        self.assertEqual(caught.exception.diag.message_primary,
                         "migration 003 refused: runs holds a status other than pending, running, completed, "
                         "failed or cancelled; correct those rows, then migrate again")
        self.assertEqual(self.value(conn, "SELECT max(version) FROM runs_schema_migrations"), 2)
        self.assertIsNone(self.value(conn, "SELECT to_regproc('start_run')"))

    def test_a_refusal_names_the_schema_where_the_table_was_found(self):
        there, here = self.schema(), self.schema(migrate=False)
        conn = self.connect(f"{here},{there}")  # objects are created in here, found in there
        with self.assertRaises(psycopg2.Error) as caught:
            apply_migrations(conn, migration_files()[:1])
        self.assertEqual(caught.exception.diag.message_primary,
                         f"migration 001 is already applied: runs_schema_migrations exists in schema {there}")
        self.value(conn, f"DROP TABLE {there}.runs_schema_migrations")
        with self.assertRaises(psycopg2.Error) as caught:
            apply_migrations(conn, migration_files()[:1])
        self.assertEqual(caught.exception.diag.message_primary,
                         f"migration 001 refused: a table runs exists already in schema {there}; rename it or "
                         "apply the migrations in another schema")

    # ------------------------------------------------------- migration 004

    def test_a_runs_id_never_changes_and_an_active_run_is_never_deleted(self):
        conn = self.connect(self.schema())
        self.assertEqual(self.value(conn, "SELECT start_run('a')"), 1)
        self.assertEqual(self.value(conn, "SELECT start_run('b', 'api', 'k')"), 2)
        self.assertEqual(self.value(conn, "SELECT fail_run(2, 'done')"), "updated")
        dump = "SELECT id, status FROM runs ORDER BY id"
        before = self.rows(conn, dump)
        id_refusal = ("23514", "runs: the id of a run never changes: it is the run's fencing token; "
                               "start a new run instead")
        delete_refusal = ("23514", "runs: an active run is never deleted: end it first with complete_run(), "
                                   "fail_run() or cancel_run(); finished runs may be deleted")
        for sql, refusal in [
                ("UPDATE runs SET id = DEFAULT WHERE id = 1", id_refusal),
                ("UPDATE runs SET id = DEFAULT WHERE id = 2", id_refusal),
                ("UPDATE runs SET id = 7 WHERE id = 2", ("428C9", 'column "id" can only be updated to DEFAULT')),
                ("DELETE FROM runs WHERE id = 1", delete_refusal),
                ("DELETE FROM runs", delete_refusal),
                ("TRUNCATE runs", delete_refusal)]:
            with self.subTest(sql=sql):
                self.assertEqual(self.error(conn, sql), refusal)
                self.assertEqual(self.rows(conn, dump), before)
        self.value(conn, "DELETE FROM runs WHERE id = 2")  # history may be pruned
        self.assertEqual(self.value(conn, "SELECT cancel_run(1)"), "updated")
        self.value(conn, "TRUNCATE runs")
        self.assertEqual(self.rows(conn, dump), [])
        self.assertIsNone(self.value(conn, "SELECT run_info(1)"))

    # ------------------------------------------------------------ upgrade

    RELEASED_003 = "db09b55"  # the last commit whose 003 held the functions

    def released_003(self):
        try:
            return subprocess.run(["git", "-C", ROOT, "show", f"{self.RELEASED_003}:sql/postgres/003_run_owners.sql"],
                                  check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            self.skipTest(f"the released 003 (git show {self.RELEASED_003}) is not available here: {e}")

    def test_a_schema_at_version_3_upgrades_with_004_and_the_functions_while_an_owner_works(self):
        old_003 = self.released_003()
        name = self.schema(migrate=False)
        conn = self.connect(name)
        apply_migrations(conn, migration_files()[:2])
        self.value(conn, "BEGIN")
        self.value(conn, old_003)
        self.value(conn, "COMMIT")
        owner, other = self.connect(name), self.connect(name)
        self.assertEqual(self.value(owner, "SELECT start_run('full', 'api', 'k')"), 1)
        self.assertEqual(self.value(owner, "SELECT mark_run_running(1)"), "updated")
        apply_migrations(conn, migration_files()[3:] + [FUNCTIONS])
        self.assertEqual(self.value(conn, "SELECT max(version) FROM runs_schema_migrations"), 4)
        self.assertIsNone(self.value(conn, "SELECT to_regproc('runs_session_start')"))
        # The owner's lock of the old identity still protects its run.
        self.assertEqual(self.error(other, "SELECT start_run('full', 'api', 'k')")[0], "23505")
        self.assertEqual(self.value(other, "SELECT reap_stale_runs()"), 0)
        self.assertEqual(self.value(owner, "SELECT heartbeat_run(1)"), "ok")
        pid = self.value(owner, "SELECT pg_backend_pid()")
        owner.close()
        self.wait_session_gone(pid)
        self.assertEqual(self.value(other, "SELECT start_run('full', 'api', 'k')"), 2)
        self.assertEqual(self.value(other, "SELECT error_message FROM runs WHERE id = 1"),
                         f"abandoned: owner session {pid} from 127.0.0.1 is gone")

    # ------------------------------------------------------------ functions

    def test_the_functions_file_can_be_applied_again_and_needs_the_migrations(self):
        name = self.schema(migrate=False)
        conn = self.connect(name)
        with self.assertRaises(psycopg2.Error) as caught:
            apply_migrations(conn, [FUNCTIONS])
        self.assertEqual(caught.exception.diag.message_primary,
                         f"functions.sql: schema {name} has no runs_schema_migrations: apply the migrations "
                         "(sql/postgres/0*.sql) first")
        apply_migrations(conn, migration_files()[:2])
        with self.assertRaises(psycopg2.Error) as caught:
            apply_migrations(conn, [FUNCTIONS])
        self.assertEqual(caught.exception.diag.message_primary,
                         f"functions.sql needs migration 004 in schema {name}: apply sql/postgres/0*.sql first")
        apply_migrations(conn, migration_files()[2:] + [FUNCTIONS])
        self.assertEqual(self.value(conn, "SELECT start_run('full')"), 1)
        # Applied again over a run in progress: same functions, same data.
        apply_migrations(conn, [FUNCTIONS, FUNCTIONS])
        self.assertEqual(self.value(conn, "SELECT mark_run_running(1)"), "updated")
        self.assertEqual(self.error(conn, "SELECT start_run('full')")[0], "23505")

    # -------------------------------------------------------- search_path

    def test_functions_use_their_own_schema_whatever_the_callers_search_path(self):
        a, b = self.schema(), self.schema()
        conn = self.connect()  # search_path: the default, neither schema
        self.assertEqual(self.value(conn, f"SELECT {a}.start_run('full')"), 1)
        self.assertEqual(self.value(conn, f"SELECT {b}.start_run('full')"), 1)
        self.assertEqual(self.value(conn, f"SELECT {b}.start_run('other', 'api', 'k')"), 2)
        self.assertEqual(self.value(conn, f"SELECT count(*) FROM {a}.runs"), 1)
        self.assertEqual(self.value(conn, f"SELECT count(*) FROM {b}.runs"), 2)
        # A temporary table called runs comes first in the caller's search_path.
        self.value(conn, "CREATE TEMP TABLE runs (id bigint, concurrency_key text, status text)")
        self.value(conn, "INSERT INTO runs VALUES (99, '', 'pending')")
        self.value(conn, f"SET search_path = {a}")
        self.assertEqual(self.value(conn, "SELECT active_run()"), 1)
        self.assertEqual(self.value(conn, "SELECT complete_run(99)"), "not_found")
        self.assertEqual(self.value(conn, "SELECT mark_run_running(1)"), "updated")
        self.assertEqual(self.value(conn, "SELECT count(*) FROM pg_temp.runs"), 1)

    # ------------------------------------------------------------ owner lock

    def test_an_owner_holds_one_lock_for_all_its_runs_until_it_ends(self):
        name = self.schema()
        owner, other = self.connect(name), self.connect(name)
        pid = self.value(owner, "SELECT pg_backend_pid()")
        self.assertEqual(self.my_locks(owner), [])
        self.assertEqual(self.value(owner, "SELECT start_run('a', 'api', 'k1')"), 1)
        self.assertEqual(self.value(owner, "SELECT start_run('b', 'api', 'k2')"), 2)
        self.assertEqual(self.value(owner, "SELECT mark_run_running(2)"), "updated")
        objid = self.value(owner, "SELECT runs_owner_lock_objid(owner_start_time)::oid::bigint FROM runs WHERE id = 1")
        self.assertEqual(self.my_locks(owner), [(pid, objid)])
        self.assertEqual(self.value(owner, "SELECT complete_run(2)"), "updated")
        self.assertEqual(self.my_locks(owner), [(pid, objid)])  # kept: the session owns run 1
        # Probes by others take nothing and leave nothing.
        self.assertFalse(self.value(other, "SELECT (run_info(1) ->> 'stale')::boolean"))
        self.assertEqual(self.value(other, "SELECT reap_stale_runs()"), 0)
        self.assertEqual(self.value(other, "SELECT cancel_run(1)"), "updated")  # pending: at once
        self.assertEqual(self.my_locks(other), [])
        owner.close()
        self.value(other, "SET lock_timeout = '60s'")
        self.value(other, "SELECT pg_advisory_lock(%s, %s::bigint::bit(32)::integer)", pid, objid)
        self.assertEqual(self.value(other, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                           " AND classid = %s::oid AND pid <> pg_backend_pid()", pid), 0)

    def test_a_restarted_server_ends_every_owner(self):
        conn = self.connect(self.schema())
        self.assertEqual(self.value(conn, "SELECT start_run('full')"), 1)
        # What a run written before a restart looks like: another boot id.
        self.value(conn, "UPDATE runs SET owner_boot_id = '2000-01-01T00:00:00.000000Z'")
        pid = self.value(conn, "SELECT pg_backend_pid()")
        self.assertEqual(self.value(conn, "SELECT run_info(1) ->> 'stale_reason'"),
                         f"abandoned: owner session {pid} from 127.0.0.1 is gone: the server has restarted since")
        self.assertEqual(self.value(conn, "SELECT start_run('full')"), 2)

    def test_runs_without_an_owner_end_only_by_lease_or_by_hand(self):
        conn = self.connect(self.schema())
        self.value(conn, "INSERT INTO runs (scope, created_at) VALUES ('raw', now())")
        self.assertIsNone(self.value(conn, "SELECT run_info(1) -> 'owner' ->> 'pid'"))
        self.assertEqual(self.value(conn, "SELECT reap_stale_runs()"), 0)
        self.assertEqual(self.error(conn, "SELECT start_run('full')")[0], "23505")
        self.value(conn, "UPDATE runs SET lease_expires_at = '2000-01-01T00:00:00Z'")
        self.assertEqual(self.value(conn, "SELECT run_info(1) ->> 'stale_reason'"),
                         "abandoned: its lease expired at 2000-01-01T00:00:00.000Z")
        self.assertEqual(self.value(conn, "SELECT start_run('full')"), 2)

    # ---------------------------------------------------------- transactions

    def test_start_run_waits_for_an_uncommitted_start_of_the_key(self):
        name = self.schema()
        a, b = self.connect(name), self.connect(name)
        b_pid = self.value(b, "SELECT pg_backend_pid()")
        # After ROLLBACK b's insert goes through: id 4, since the identity
        # values b's refused insert (2) and a's rolled back one (3) took are
        # not handed out again.
        for ending, outcome in [("COMMIT", ("23505", "start_run(): run 1 is already active")),
                                ("ROLLBACK", 4)]:
            with self.subTest(ending=ending):
                self.value(a, "BEGIN")
                started = self.value(a, "SELECT start_run('full')")
                result = {}

                def second():
                    try:
                        result["value"] = self.value(b, "SELECT start_run('full')")
                    except psycopg2.Error as e:
                        result["value"] = (e.pgcode, e.diag.message_primary.split(" (")[0])

                thread = threading.Thread(target=second)
                thread.start()
                # Synchronise on the server's own state: b waits for a's lock.
                deadline = time.monotonic() + HANG_GUARD
                while self.value(self.connect(), "SELECT cardinality(pg_blocking_pids(%s))", b_pid) == 0:
                    self.assertLess(time.monotonic(), deadline, "b never waited for a")
                self.value(a, ending)
                thread.join(HANG_GUARD)
                self.assertEqual(result["value"], outcome)
                if ending == "COMMIT":
                    self.assertEqual(started, 1)
                    self.assertEqual(self.value(a, "SELECT cancel_run(1)"), "updated")

    def test_a_snapshot_that_cannot_see_the_active_run_is_told_to_retry(self):
        for level in ["REPEATABLE READ", "SERIALIZABLE"]:
            with self.subTest(level=level):
                name = self.schema()
                a, b = self.connect(name), self.connect(name)
                self.value(b, f"BEGIN ISOLATION LEVEL {level}")
                self.assertIsNone(self.value(b, "SELECT active_run()"))  # b's snapshot is taken here
                self.assertEqual(self.value(a, "SELECT start_run('full')"), 1)
                self.assertEqual(self.error(b, "SELECT start_run('full')"), (
                    "23505", "start_run(): another transaction started a run that this transaction's "
                             "snapshot does not show: retry in a new transaction"))
                self.value(b, "ROLLBACK")
                self.assertEqual(self.error(b, "SELECT start_run('full')")[0], "23505")
                self.assertEqual(self.value(b, "SELECT count(*) FROM runs"), 1)

    # ------------------------------------------------------------ privileges

    def test_an_ordinary_role_can_own_and_reclaim_runs(self):
        name = self.schema()
        admin = self.connect()
        role = f"app_{name}"
        self.value(admin, f"CREATE ROLE {role} LOGIN")
        self.value(admin, f"GRANT USAGE ON SCHEMA {name} TO {role}")
        self.value(admin, f"GRANT SELECT, INSERT, UPDATE ON {name}.runs TO {role}")
        self.addCleanup(lambda: self.value(self.connect(), f"DROP OWNED BY {role}; DROP ROLE {role}"))
        owner, other = self.connect(name, user=role), self.connect(name, user=role)
        self.assertEqual(self.value(owner, "SELECT start_run('full')"), 1)
        self.assertEqual(self.value(owner, "SELECT mark_run_running(1)"), "updated")
        self.assertEqual(self.error(other, "SELECT start_run('full')")[0], "23505")
        self.assertEqual(self.value(other, "SELECT cancel_run(1)"), "cancel_requested")
        self.assertEqual(self.value(owner, "SELECT heartbeat_run(1)"), "cancel_requested")
        pid = self.value(owner, "SELECT pg_backend_pid()")
        objid = self.value(other, "SELECT runs_owner_lock_objid(owner_start_time) FROM runs WHERE id = 1")
        owner.close()
        self.value(other, "SET lock_timeout = '60s'")
        self.value(other, "SELECT pg_advisory_lock(%s, %s)", pid, objid)
        self.value(other, "SELECT pg_advisory_unlock(%s, %s)", pid, objid)
        self.assertEqual(self.value(other, "SELECT start_run('full')"), 2)
        self.assertEqual(self.value(other, "SELECT error_message FROM runs WHERE id = 1"),
                         f"abandoned: owner session {pid} from 127.0.0.1 is gone")


if __name__ == "__main__":
    unittest.main(verbosity=2)
