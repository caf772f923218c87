"""Failover: a primary and a streaming standby (pg_basebackup -R) on loopback,
owners working on the primary, the primary stopped hard (pg_ctl stop -m
immediate), the standby promoted.

To make "the standby has not received it yet" certain rather than a race, the
test stops the standby's WAL receiver (SIGSTOP) for the last writes, and kills
it (SIGKILL) when it stops the primary, so that nothing sent meanwhile
arrives:

- synchronous replication (synchronous_standby_names names the standby,
  synchronous_commit = on): a start_run() then never returns; every id that
  was returned is on the promoted standby, and the invariant holds there;
- asynchronous replication: start_run() returns ids the standby never got;
  the test counts them (what can be lost) and shows what happens to their
  owners and keys on the new primary.

Also: on the hot standby, run_info() judges leases only.

    /usr/bin/python3 tests/postgres/test_pg_failover.py
"""

import os
import signal
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import psycopg2  # noqa: E402

from pg_server import HANG_GUARD, PgCase, PgServer, create_schema  # noqa: E402

STANDBY_NAME = "standby1"
KEYS = ["a", "b", "c"]


class FailoverTest(PgCase):
    @classmethod
    def setUpClass(cls):
        pass  # each test starts the servers it needs

    def pair(self, synchronous):
        primary = PgServer({"synchronous_commit": "on"}).start()
        self.addCleanup(primary.stop)
        conn = self.connect(server=primary)
        create_schema(primary, "app")
        standby = PgServer({"cluster_name": STANDBY_NAME}, primary=primary).start()
        self.addCleanup(standby.stop)
        if synchronous:  # only now: until a standby confirms, every commit would wait
            self.value(conn, f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
            self.value(conn, "SELECT pg_reload_conf()")
        self.wait_until(conn, "SELECT count(*) = 1 FROM pg_stat_replication WHERE application_name = %s"
                              " AND state = 'streaming' AND sync_state = %s",
                        STANDBY_NAME, "sync" if synchronous else "async", what="the standby to stream")
        return primary, standby

    def owners(self, primary, count=3):
        """Owners on the primary, each with a run of its key, running, with a
        lease of 60 s; returns [(connection, id, key)]."""
        owners = []
        for key in KEYS[:count]:
            owner = self.connect("app", server=primary)
            run = self.value(owner, "SELECT start_run('job', 'worker', %s, 60)", key)
            self.assertEqual(self.value(owner, "SELECT mark_run_running(%s)", run), "updated")
            owners.append((owner, run, key))
        return owners

    def stop_receiver(self, standby):
        pid = self.value(self.connect(server=standby), "SELECT pid FROM pg_stat_wal_receiver")
        os.kill(pid, signal.SIGSTOP)
        self.addCleanup(self.resume, pid)
        return pid

    def resume(self, pid):
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def fail_over(self, primary, standby, receiver):
        """Stops the primary hard, then kills the stopped WAL receiver, so that
        what the primary sent meanwhile, still in the socket's buffer, is
        lost (the standby restarts its processes and recovers), and promotes
        the standby."""
        primary.crash()
        os.kill(receiver, signal.SIGKILL)
        self.resume(receiver)
        standby.promote()
        conn = self.connect("app", server=standby)
        self.assertFalse(self.value(conn, "SELECT pg_is_in_recovery()"))
        return conn

    def check_invariant(self, conn):
        self.assertEqual(self.rows(conn, "SELECT concurrency_key, count(*) FROM runs"
                                         " WHERE status IN ('pending', 'running')"
                                         " GROUP BY 1 HAVING count(*) > 1"), [])

    def test_synchronous_replication_loses_no_returned_id(self):
        primary, standby = self.pair(synchronous=True)
        owners = self.owners(primary)
        returned = {run: key for _, run, key in owners}
        # The hot standby judges leases only: it holds none of the owners'
        # locks, and its start time is not the primary's.
        expired = owners[1][1]
        self.value(self.connect("app", server=primary),
                   "UPDATE runs SET lease_expires_at = '2000-01-01Z' WHERE id = %s", expired)
        reader = self.connect("app", server=standby)
        self.wait_until(reader, "SELECT lease_expires_at < '2001-01-01Z' FROM runs WHERE id = %s", expired,
                        what="the standby to replay the update")
        self.assertEqual(self.rows(reader, "SELECT id, run_info(id) ->> 'stale_reason' FROM runs ORDER BY id"), [
            (owners[0][1], None),
            (expired, f"abandoned: its lease expired at 2000-01-01T00:00:00.000Z (owner session "
                      f"{self.value(owners[1][0], 'SELECT pg_backend_pid()')} from 127.0.0.1)"),
            (owners[2][1], None)])
        self.assertEqual(self.error(reader, "SELECT reap_stale_runs()")[0], "25006")  # read-only
        # More starts on a key of their own, all returned, all replicated.
        worker = self.connect("app", server=primary)
        for _ in range(5):
            run = self.value(worker, "SELECT start_run('batch', 'worker', 'd', 60)")
            returned[run] = "d"
            self.assertEqual(self.value(worker, "SELECT fail_run(%s, 'next')", run), "updated")
        receiver = self.stop_receiver(standby)
        # The standby hears nothing now: a start_run() commits on the primary
        # and waits for the standby's confirmation, so it never returns.
        pending = {}
        blocked = self.connect("app", server=primary)
        blocked_pid = self.value(blocked, "SELECT pg_backend_pid()")

        def start():
            try:
                pending["value"] = self.value(blocked, "SELECT start_run('late', 'worker', 'e', 60)")
            except psycopg2.Error as e:
                pending["value"] = type(e).__name__

        thread = threading.Thread(target=start)
        thread.start()
        self.wait_until(self.connect(server=primary), "SELECT wait_event = 'SyncRep' FROM pg_stat_activity"
                                                      " WHERE pid = %s", blocked_pid,
                        what="start_run() to wait for the standby")
        new = self.fail_over(primary, standby, receiver)
        thread.join(HANG_GUARD)
        self.assertIn(pending["value"], ("OperationalError", "InterfaceError"))  # never an id
        # Every returned id is there, with its key; the invariant holds.
        self.assertEqual(dict(self.rows(new, "SELECT id, concurrency_key FROM runs WHERE id = ANY(%s)",
                                        list(returned))), returned)
        self.check_invariant(new)
        # The old owners' sessions ended with the old primary: their runs are
        # abandoned on the new one, and a new worker takes each key.
        for owner, run, key in owners:
            with self.subTest(key=key):
                self.assertEqual(self.value(new, "SELECT run_info(%s) ->> 'stale_reason'", run),
                                 f"abandoned: owner session {self.owner_pid(new, run)} from 127.0.0.1 is gone: "
                                 "the server has restarted since")
                taken = self.value(new, "SELECT start_run('job', 'worker', %s, 60)", key)
                self.assertGreater(taken, max(returned))
        self.check_invariant(new)
        # An old owner, reconnecting, is told its run is lost.
        back = self.connect("app", server=standby)
        for _, run, _ in owners:
            self.assertEqual(self.value(back, "SELECT heartbeat_run(%s)", run), "lost")

    def owner_pid(self, conn, run):
        return self.value(conn, "SELECT owner_pid FROM runs WHERE id = %s", run)

    def test_asynchronous_replication_can_lose_returned_ids(self):
        primary, standby = self.pair(synchronous=False)
        owners = self.owners(primary)
        receiver = self.stop_receiver(standby)
        # The standby hears nothing now; the primary acknowledges anyway.
        late = self.connect("app", server=primary)
        lost = [self.value(late, "SELECT start_run('late', 'worker', %s, 60)", key) for key in ["e", "f"]]
        self.assertEqual(self.value(late, "SELECT fail_run(%s, 'done')", owners[0][1]), "updated")
        new = self.fail_over(primary, standby, receiver)
        found = self.rows(new, "SELECT id, status FROM runs ORDER BY id")
        # What was lost: every write after the receiver stopped, though the
        # primary returned each of them.
        self.assertEqual(found, [(run, "running") for _, run, _ in owners])
        print(f"\nasynchronous failover: {len(lost) + 1} acknowledged writes lost of {len(lost) + 1 + 2 * 3}"
              f" ({len(lost)} start_run() ids: {lost}; one fail_run())", file=sys.stderr)
        self.check_invariant(new)
        # A key whose start was lost starts again on the new primary: two
        # workers hold a run of it, but the old one's id is gone (fenced).
        second = self.value(new, "SELECT start_run('late', 'worker', 'e', 60)")
        back = self.connect("app", server=standby)
        self.assertEqual(self.value(back, "SELECT heartbeat_run(%s)", lost[0]),
                         "ok" if second == lost[0] else "lost")
        # The fail_run() was lost too: the run is active again, abandoned.
        self.assertEqual(self.value(new, "SELECT run_info(%s) ->> 'stale'", owners[0][1]), "true")
        self.assertNotIn(second, lost, "the new primary handed out an id the old one had returned")


if __name__ == "__main__":
    unittest.main(verbosity=2)
