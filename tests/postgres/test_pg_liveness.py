"""The PostgreSQL port's owners under adversarial use, with real sessions:
leases measured from after a wait, owners working through SET ROLE or a
SECURITY DEFINER function, callers that never wait for an owner's open
transaction, sessions whose runs leases alone judge (behind a pooler), and
REPEATABLE READ callers.

    /usr/bin/python3 tests/postgres/test_pg_liveness.py
"""

import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import psycopg2  # noqa: E402

from pg_server import HANG_GUARD, PgCase  # noqa: E402


class Background:
    """A statement run in a thread; join() returns its value or (SQLSTATE, message)."""

    def __init__(self, case, conn, sql):
        self.result = None

        def run():
            try:
                self.result = case.value(conn, sql)
            except psycopg2.Error as e:
                self.result = (e.pgcode, e.diag.message_primary)

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def join(self):
        self.thread.join(HANG_GUARD)
        return self.result


class LivenessTest(PgCase):
    def pid(self, conn):
        return self.value(conn, "SELECT pg_backend_pid()")

    def clock_past_query_start(self, watcher, pid):
        """Waits on the server's clock until it is past backend pid's query
        start by 2 ms, and returns that clock reading: what a time taken
        before pid's wait (now(), or a clock read before it) cannot reach."""
        self.wait_until(watcher, "SELECT clock_timestamp() > query_start + interval '2 ms'"
                                 " FROM pg_stat_activity WHERE pid = %s", pid, what="the clock to move")
        return self.value(watcher, "SELECT date_trunc('milliseconds', clock_timestamp())")

    # -------------------------------------------------------- clocks

    def test_a_start_that_waited_gets_its_times_and_lease_from_after_the_wait(self):
        name = self.schema()
        a, b, watcher = self.connect(name), self.connect(name), self.connect(name)
        b_pid = self.pid(b)
        self.value(a, "BEGIN")
        self.assertEqual(self.value(a, "SELECT start_run('first', 'api', 'k', 2)"), 1)
        second = Background(self, b, "SELECT start_run('second', 'api', 'k', 2)")
        self.wait_blocked(b_pid)
        # b waits for a's uncommitted run of the key; what now() gives b:
        began = self.value(watcher, "SELECT xact_start FROM pg_stat_activity WHERE pid = %s", b_pid)
        released = self.clock_past_query_start(watcher, b_pid)
        self.value(a, "ROLLBACK")
        self.assertEqual(second.join(), 2)  # the id its insert took before waiting
        created, expires = self.rows(watcher, "SELECT created_at, lease_expires_at FROM runs WHERE id = 2")[0]
        self.assertGreater(released, began)
        self.assertGreaterEqual(created, released)
        self.assertEqual((expires - created).total_seconds(), 2)
        self.assertEqual(self.value(watcher, "SELECT (run_info(2) ->> 'stale')::boolean"), False)

    def test_a_heartbeat_that_waited_renews_the_lease_from_after_the_wait(self):
        name = self.schema()
        owner, holder, watcher = self.connect(name), self.connect(name), self.connect(name)
        owner_pid = self.pid(owner)
        self.assertEqual(self.value(owner, "SELECT start_run('full', 'api', 'k', 2)"), 1)
        self.value(holder, "BEGIN")
        self.value(holder, "SELECT 1 FROM runs WHERE id = 1 FOR UPDATE")
        beat = Background(self, owner, "SELECT heartbeat_run(1)")
        self.wait_blocked(owner_pid)
        released = self.clock_past_query_start(watcher, owner_pid)
        self.value(holder, "COMMIT")
        self.assertEqual(beat.join(), "ok")
        beaten, expires = self.rows(watcher, "SELECT heartbeat_at, lease_expires_at FROM runs WHERE id = 1")[0]
        self.assertGreaterEqual(beaten, released)
        self.assertEqual((expires - beaten).total_seconds(), 2)

    # -------------------------------------------------------- identities

    def test_an_owner_working_through_set_role_or_security_definer_is_reclaimed_when_it_dies(self):
        name = self.schema()
        worker = self.role(f"worker_{name}", f"GRANT USAGE ON SCHEMA {name} TO worker_{name}",
                           f"GRANT SELECT, INSERT, UPDATE ON {name}.runs TO worker_{name}", login=False)
        authenticator = self.role(f"auth_{name}", f"GRANT worker_{name} TO auth_{name}")
        admin = self.connect(name)
        # A SECURITY DEFINER wrapper owned by the worker role, called by a
        # role that may not touch runs itself.
        self.value(admin, "CREATE FUNCTION start_job(key text) RETURNS bigint LANGUAGE sql SECURITY DEFINER"
                          f" SET search_path = {name}, pg_temp AS $$ SELECT start_run('job', 'api', key) $$")
        self.value(admin, "CREATE FUNCTION my_backend_start() RETURNS timestamptz LANGUAGE sql SECURITY DEFINER"
                          f" SET search_path = {name}, pg_temp"
                          " AS $$ SELECT backend_start FROM pg_stat_get_activity(pg_backend_pid()) $$")
        for function in ["start_job(text)", "my_backend_start()"]:
            self.value(admin, f"ALTER FUNCTION {function} OWNER TO {worker}")
        caller = self.role(f"caller_{name}", f"GRANT USAGE ON SCHEMA {name} TO caller_{name}")
        for how in ["set role", "security definer"]:
            with self.subTest(how=how):
                key = how.replace(" ", "_")
                if how == "set role":
                    owner = self.connect(name, user=authenticator)
                    self.value(owner, f"SET ROLE {worker}")
                    run = self.value(owner, "SELECT start_run('job', 'api', %s)", key)
                    self.assertIsNone(self.value(owner, "SELECT backend_start FROM pg_stat_get_activity(pg_backend_pid())"))
                else:
                    owner = self.connect(name, user=caller)
                    run = self.value(owner, "SELECT start_job(%s)", key)
                # What the session start time used to come from: unreadable.
                self.assertIsNone(self.value(owner, "SELECT my_backend_start()"))
                pid = self.pid(owner)
                self.assertEqual(self.value(admin, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                                   " AND pid = %s AND granted", pid), 1)
                other = self.connect(name)
                self.assertEqual(self.error(other, "SELECT start_run('job', 'api', %s)", key)[0], "23505")
                self.assertFalse(self.value(other, f"SELECT (run_info({run}) ->> 'stale')::boolean"))
                owner.close()
                self.wait_session_gone(pid)
                taken = self.value(other, "SELECT start_run('job', 'api', %s)", key)
                self.assertEqual(self.value(other, "SELECT error_message FROM runs WHERE id = %s", run),
                                 f"abandoned: owner session {pid} from 127.0.0.1 is gone")
                self.assertEqual(self.value(other, "SELECT status FROM runs WHERE id = %s", taken), "pending")

    def test_an_owner_keeps_one_lock_however_often_its_transactions_roll_back(self):
        name = self.schema()
        owner, other = self.connect(name), self.connect(name)
        self.assertEqual(self.value(other, "SELECT start_run('busy', 'api', 'busy')"), 1)
        locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        for attempt in range(5):
            self.value(owner, "BEGIN")
            self.assertEqual(self.error(owner, "SELECT start_run('job', 'api', 'busy')")[0], "23505")
            self.value(owner, "ROLLBACK")
            self.value(owner, "BEGIN")
            self.assertEqual(self.value(owner, "SELECT start_run('job', 'api', 'free')"), 2 + attempt)
            self.value(owner, "ROLLBACK")
            self.assertEqual(self.value(owner, locks), 1)
        run = self.value(owner, "SELECT start_run('job', 'api', 'free')")
        self.assertEqual(self.value(owner, locks), 1)
        self.assertTrue(self.value(owner, "SELECT runs_owned_by_me(r) FROM runs AS r WHERE id = %s", run))
        self.assertEqual(self.value(owner, "SELECT cancel_run(%s)", run), "updated")  # its own: at once

    # ---------------------------------------------------------- waiting

    def test_reap_start_and_cancel_never_wait_for_an_owners_open_transaction(self):
        name = self.schema()
        owner, dead, other = self.connect(name), self.connect(name), self.connect(name)
        self.assertEqual(self.value(owner, "SELECT start_run('live', 'api', 'k', 1)"), 1)
        self.assertEqual(self.value(dead, "SELECT start_run('dead', 'api', 'd')"), 2)
        dead_pid = self.pid(dead)
        dead.close()
        self.wait_session_gone(dead_pid)
        # The owner heartbeats inside a transaction and keeps working; its
        # lease (1 s) may even run out meanwhile.
        self.value(owner, "BEGIN")
        self.assertEqual(self.value(owner, "SELECT heartbeat_run(1)"), "ok")
        self.value(other, "SET lock_timeout = '30s'")  # a guard: a wait would end in 55P03
        # The naive pattern waits: a plain row lock on every active run.
        self.value(other, "SET lock_timeout = '100ms'")
        self.assertEqual(self.error(other, "SELECT id FROM runs WHERE status IN ('pending', 'running') FOR UPDATE")[0],
                         "55P03")
        self.value(other, "SET lock_timeout = '30s'")
        self.assertEqual(self.value(other, "SELECT reap_stale_runs()"), 1)
        self.assertEqual(self.value(other, "SELECT status FROM runs WHERE id = 2"), "failed")
        code, message = self.error(other, "SELECT start_run('second', 'api', 'k')")
        self.assertEqual((code, message.split(" (")[0]),
                         ("23505", "start_run(): run 1 is already active for concurrency_key 'k'"))
        self.assertEqual(self.error(other, "SELECT cancel_run(1)"), (
            "55P03", "cancel_run(): run 1 is being written by another transaction (its owner's, or one that "
                     "ends it): retry when that transaction has ended"))
        self.assertEqual(self.value(other, "SELECT reap_stale_runs('k')"), 0)
        self.value(owner, "COMMIT")
        self.assertEqual(self.value(other, "SELECT status FROM runs WHERE id = 1"), "pending")
        self.assertEqual(self.value(other, "SELECT cancel_run(1)"), "updated")

    def test_a_repeatable_read_caller_may_be_told_to_retry_with_40001(self):
        name = self.schema()
        owner, reader = self.connect(name), self.connect(name)
        self.assertEqual(self.value(owner, "SELECT start_run('full', 'api', 'k', 60)"), 1)
        self.assertEqual(self.value(owner, "SELECT mark_run_running(1)"), "updated")
        for sql in ["SELECT start_run('full', 'api', 'k')", "SELECT cancel_run(1)"]:
            with self.subTest(sql=sql):
                self.value(reader, "BEGIN ISOLATION LEVEL REPEATABLE READ")
                self.assertEqual(self.value(reader, "SELECT active_run('k')"), 1)  # the snapshot
                self.assertEqual(self.value(owner, "SELECT heartbeat_run(1)"), "ok")
                self.assertEqual(self.error(reader, sql),
                                 ("40001", "could not serialize access due to concurrent update"))
                self.value(reader, "ROLLBACK")

    # ------------------------------------------------------ lease only

    def test_sessions_set_to_lease_liveness_are_judged_by_their_lease_alone(self):
        name = self.schema()
        pooled = self.role(f"pooled_{name}", f"GRANT USAGE ON SCHEMA {name} TO pooled_{name}",
                           f"GRANT SELECT, INSERT, UPDATE ON {name}.runs TO pooled_{name}",
                           f"ALTER ROLE pooled_{name} SET runs.owner_liveness = 'lease'")
        owner, other = self.connect(name, user=pooled), self.connect(name)
        self.assertEqual(self.error(owner, "SELECT start_run('full')"), (
            "22023", "start_run(): lease_seconds must not be NULL while the setting runs.owner_liveness is "
                     "'lease': nothing but a lease ends the run of an owner that died behind a connection pooler"))
        self.assertEqual(self.value(owner, "SELECT start_run('full', 'api', 'k', 60)"), 1)
        self.assertEqual(self.value(owner, "SELECT mark_run_running(1)"), "updated")
        self.assertEqual(self.value(owner, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                           " AND pid = pg_backend_pid()"), 0)
        self.assertEqual(self.rows(other, "SELECT owner_pid, owner_start_time, owner_host FROM runs WHERE id = 1"),
                         [(None, None, "127.0.0.1")])
        # Its session ends: the lease, not the lock, decides.
        pid = self.pid(owner)
        owner.close()
        self.wait_session_gone(pid)
        self.assertEqual(self.error(other, "SELECT start_run('full', 'api', 'k')")[0], "23505")
        self.assertEqual(self.value(other, "SELECT reap_stale_runs()"), 0)
        self.assertEqual(self.value(other, "SELECT reap_stale_runs(NULL, 0)"), 0)  # not ownerless
        self.value(other, "UPDATE runs SET lease_expires_at = '2000-01-01Z' WHERE id = 1")
        self.assertEqual(self.value(other, "SELECT start_run('full', 'api', 'k')"), 2)
        self.assertEqual(self.value(other, "SELECT error_message FROM runs WHERE id = 1"),
                         "abandoned: its lease expired at 2000-01-01T00:00:00.000Z")
        # A run without a lease cannot be taken over in that mode.
        again = self.connect(name, user=pooled)
        self.assertEqual(self.error(again, "SELECT mark_run_running(2)"), (
            "22023", "mark_run_running(): run 2 has no lease, and the setting runs.owner_liveness is 'lease': "
                     "nothing would end it if this owner died behind a connection pooler; start runs with "
                     "lease_seconds"))
        self.value(again, "SET runs.owner_liveness = 'pooled'")
        self.assertEqual(self.error(again, "SELECT start_run('full', 'api', 'x', 60)"), (
            "22023", "start_run(): the setting runs.owner_liveness must be 'session' or 'lease', got 'pooled'"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
