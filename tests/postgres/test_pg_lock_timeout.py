"""On PostgreSQL, lock_timeout and statement_timeout play the part of
runs_busy_timeout(): a start_run() that waits for another transaction's
start_run() of the same key is answered within them.

PostgreSQL queues lock waiters itself, so there is no busy handler to choose;
what an application chooses is how long a waiter may wait. A start_run() that
meets another transaction's uncommitted run of its key waits for that
transaction (the unique index's wait on its transaction id). It is answered:
- when that transaction commits: `already active` (23505);
- when it rolls back: the new run's id;
- when lock_timeout runs out first: lock_not_available (55P03);
- when statement_timeout runs out first: query_canceled (57014).
Each case asserts the exact answer, not a time. The waiter is seen waiting in
pg_stat_activity (wait_event_type 'Lock') before the holder ends, so the test
proves that a waiting call is answered, without sleeps standing in for
synchronisation. docs/postgres.md#waiting-for-a-lock says the same.

    /usr/bin/python3 tests/postgres/test_pg_lock_timeout.py
"""

import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import psycopg2  # noqa: E402

from pg_server import HANG_GUARD, PgCase  # noqa: E402


class LockTimeoutTest(PgCase):
    def setUp(self):
        # A schema of its own per test: active runs are never deleted.
        schema = self.schema()
        self.holder = self.connect(schema)
        self.waiter = self.connect(schema)
        self.stats = self.connect(schema)
        self.waiter_pid = self.value(self.waiter, "SELECT pg_backend_pid()")

    def hold_a_run(self):
        """The holder's transaction starts a run of key 'k' and stays open."""
        with self.holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT start_run('full', 'holder', 'k')")

    def start_waiting(self, settings):
        """The waiter calls start_run() for 'k' in a thread; returns a function
        that joins it and gives (SQLSTATE or None, result)."""
        outcome = {}

        def call():
            try:
                with self.waiter.cursor() as cur:
                    for setting in settings:
                        cur.execute(setting)
                    cur.execute("SELECT start_run('full', 'waiter', 'k')")
                    outcome["result"] = cur.fetchone()[0]
            except psycopg2.Error as e:
                outcome["code"] = e.pgcode
                outcome["message"] = e.pgerror

        thread = threading.Thread(target=call)
        thread.start()

        def join():
            thread.join(HANG_GUARD)
            self.assertFalse(thread.is_alive(), "start_run() was never answered")
            return outcome.get("code"), outcome.get("result", outcome.get("message"))
        return join

    def end_holder(self, statement):
        """The holder's transaction ends: COMMIT or ROLLBACK."""
        with self.holder.cursor() as cur:
            cur.execute(statement)

    def answer_while_held(self, settings):
        """(SQLSTATE or None, result) of the waiter's start_run() with
        settings, while the holder's run stays uncommitted."""
        self.hold_a_run()
        return self.start_waiting(settings)()

    def answer_once_the_holder_ends(self, statement):
        """(SQLSTATE or None, result) of the waiter's start_run(), seen
        waiting for the lock in pg_stat_activity (its own connection in
        autocommit: a transaction keeps one snapshot of it), once the holder
        ends with statement."""
        self.hold_a_run()
        join = self.start_waiting(["SET lock_timeout = '60s'"])
        self.wait_until(self.stats, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                        self.waiter_pid, what="the waiter to wait for a lock")
        self.end_holder(statement)
        return join()

    def test_lock_timeout_answers_a_waiting_start_run(self):
        code, message = self.answer_while_held(["SET lock_timeout = '200ms'", "SET statement_timeout = '60s'"])
        self.assertEqual(code, "55P03", message)  # lock_not_available
        self.assertIn("lock timeout", message)
        self.end_holder("COMMIT")
        self.assertEqual(self.value(self.waiter, "SELECT count(*) FROM runs"), 1)

    def test_statement_timeout_answers_a_waiting_start_run(self):
        code, message = self.answer_while_held(["SET lock_timeout = 0", "SET statement_timeout = '200ms'"])
        self.assertEqual(code, "57014", message)  # query_canceled
        self.assertIn("statement timeout", message)
        self.end_holder("ROLLBACK")

    def test_a_waiter_is_answered_when_the_holder_commits(self):
        code, message = self.answer_once_the_holder_ends("COMMIT")
        self.assertEqual(code, "23505", message)  # unique_violation: already active
        self.assertIn("is already active", message)

    def test_a_waiter_is_answered_when_the_holder_rolls_back(self):
        code, result = self.answer_once_the_holder_ends("ROLLBACK")
        self.assertIsNone(code, result)
        self.assertEqual(self.value(self.holder, "SELECT triggered_by FROM runs WHERE id = %d" % result),
                         "waiter")


if __name__ == "__main__":
    unittest.main(verbosity=2)
