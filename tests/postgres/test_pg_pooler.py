"""The PostgreSQL port behind a real PgBouncer (Debian's pgbouncer), started on
loopback in front of a server started for this run, in transaction and
session pooling modes.

Two roles log in through it: `pooled_lease`, set to runs.owner_liveness =
'lease' (ALTER ROLE ... SET, as docs/postgres.md tells users behind a pooler),
and `pooled_session`, left at the default, where the server session's lock
judges owners. The second shows the naive setup failing: behind transaction
pooling, recycling server connections reclaims a live owner's run.

    /usr/bin/python3 tests/postgres/test_pg_pooler.py
"""

import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import psycopg2  # noqa: E402

from pg_server import PgBouncer, PgCase, create_schema  # noqa: E402

SCHEMA = "pooled"
ROLES = {"lease": "pooled_lease", "session": "pooled_session"}
DATABASES = {
    # name           pool_mode      role                     extra
    "tx_lease":      ("transaction", ROLES["lease"], ""),
    "tx_session":    ("transaction", ROLES["session"], ""),
    "tx_lease_one":  ("transaction", ROLES["lease"], "pool_size=1"),
    "tx_session_one": ("transaction", ROLES["session"], "pool_size=1"),
    "sess_session":  ("session", ROLES["session"], "pool_size=1"),
}


class PoolerTest(PgCase):
    bouncer = None
    keys = 0

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        create_schema(cls.server, SCHEMA)
        admin = psycopg2.connect(cls.server.dsn())
        admin.autocommit = True
        with admin.cursor() as cur:
            for role in ROLES.values():
                cur.execute(f"CREATE ROLE {role} LOGIN")
                cur.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {role}")
                cur.execute(f"GRANT SELECT, INSERT, UPDATE ON {SCHEMA}.runs TO {role}")
                cur.execute(f"ALTER ROLE {role} SET search_path = {SCHEMA}")
            cur.execute(f"ALTER ROLE {ROLES['lease']} SET runs.owner_liveness = 'lease'")
        admin.close()
        cls.bouncer = PgBouncer(cls.server, DATABASES).start()

    @classmethod
    def tearDownClass(cls):
        if cls.bouncer:
            cls.bouncer.stop()

    def key(self):
        PoolerTest.keys += 1
        return f"k{PoolerTest.keys}"

    def client(self, database):
        conn = psycopg2.connect(self.bouncer.dsn(database))
        conn.autocommit = True
        self.addCleanup(conn.close)
        return conn

    def direct(self):
        return self.connect(SCHEMA)

    def recycle(self, database, backends):
        """Closes the pool's server connections, as server_lifetime,
        server_idle_timeout, RECONNECT or a server-side timeout do routinely:
        RECONNECT marks them, and the server ends them at once (RECONNECT
        alone closes an idle one only when it is next picked)."""
        self.bouncer.command(f"RECONNECT {database}")
        self.value(self.connect(), "SELECT pg_terminate_backend(pid) FROM unnest(%s::integer[]) AS pid", backends)
        for pid in backends:
            self.wait_session_gone(pid)

    def start_owner(self, database, key, lease):
        owner = self.client(database)
        run, backend = self.rows(owner, "SELECT start_run('job', 'api', %s, %s), pg_backend_pid()", key, lease)[0]
        self.assertEqual(self.value(owner, "SELECT mark_run_running(%s)", run), "updated")
        return owner, run, backend

    def take_over(self, client, key, run, *lease):
        """client's start_run() for key (and lease, if given) reclaims run:
        (the new run's id, the reclaimed run's error_message)."""
        taken = self.value(client, "SELECT start_run('job', 'api', %s" + ", %s" * len(lease) + ")", key, *lease)
        return taken, self.value(self.direct(), "SELECT error_message FROM runs WHERE id = %s", run)

    # ------------------------------------------------ transaction pooling

    def test_transaction_pooling_recycled_server_connections_never_reclaim_a_live_leased_owner(self):
        direct = self.direct()
        for database, holds in [("tx_lease", True), ("tx_session", False)]:
            with self.subTest(database=database):
                key = self.key()
                owner, run, backend = self.start_owner(database, key, 60)
                backends = [r[0] for r in self.rows(direct, "SELECT pid FROM pg_stat_activity WHERE usename = %s",
                                                    DATABASES[database][1])]
                self.assertIn(backend, backends)
                self.recycle(database, backends)
                other = self.client(database)
                if holds:
                    code, message = self.error(other, "SELECT start_run('job', 'api', %s, 60)", key)
                    self.assertEqual((code, message.split(" (")[0]),
                                     ("23505", f"start_run(): run {run} is already active for concurrency_key '{key}'"))
                    self.assertEqual(self.value(other, "SELECT reap_stale_runs()"), 0)
                    self.assertEqual(self.value(owner, "SELECT heartbeat_run(%s)", run), "ok")
                    self.assertEqual(self.value(owner, "SELECT complete_run(%s)", run), "updated")
                else:
                    # The naive setup: the server session's lock went with
                    # the connection, and a live owner's run is reclaimed.
                    taken, message = self.take_over(other, key, run, 60)
                    self.assertEqual(message, f"abandoned: owner session {backend} from 127.0.0.1 is gone")
                    self.assertEqual(self.value(owner, "SELECT heartbeat_run(%s)", run), "lost")
                    self.assertEqual(self.value(other, "SELECT cancel_run(%s)", taken), "updated")

    def test_transaction_pooling_a_dead_owners_run_ends_with_its_lease(self):
        direct = self.direct()
        long_key, short_key = self.key(), self.key()
        owner, long_run, _ = self.start_owner("tx_lease", long_key, 60)
        owner.close()  # its server session lives on in the pool
        owner, short_run, _ = self.start_owner("tx_lease", short_key, 1)
        owner.close()
        self.recycle("tx_lease", [r[0] for r in self.rows(direct, "SELECT pid FROM pg_stat_activity"
                                                                  " WHERE usename = %s", ROLES["lease"])])
        other = self.client("tx_lease")
        self.assertEqual(self.error(other, "SELECT start_run('job', 'api', %s, 60)", long_key)[0], "23505")
        self.wait_until(direct, "SELECT clock_timestamp() > lease_expires_at FROM runs WHERE id = %s", short_run,
                        what="the short lease to end")
        taken, message = self.take_over(other, short_key, short_run, 60)
        self.assertRegex(message, r"^abandoned: its lease expired at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(self.value(other, "SELECT fail_run(%s, 'test over')", taken), "updated")
        self.assertEqual(self.value(direct, "SELECT status FROM runs WHERE id = %s", long_run), "running")

    def test_transaction_pooling_a_client_on_a_dead_owners_server_session_is_not_its_owner(self):
        direct = self.direct()
        for database in ["tx_lease_one", "tx_session_one"]:
            with self.subTest(database=database):
                key = self.key()
                owner, run, backend = self.start_owner(database, key, 60)
                owner.close()
                successor = self.client(database)
                self.assertEqual(self.value(successor, "SELECT pg_backend_pid()"), backend)  # pool_size=1
                owned = self.value(successor, "SELECT runs_owned_by_me(r) FROM runs AS r WHERE id = %s", run)
                if database == "tx_lease_one":
                    self.assertFalse(owned)
                    self.assertEqual(self.error(successor, "SELECT start_run('job', 'api', %s, 60)", key)[0], "23505")
                else:
                    # Without the setting, the next client of that server
                    # session is taken for the dead owner (docs/postgres.md).
                    self.assertTrue(owned)
                self.assertEqual(self.value(direct, "SELECT fail_run(%s, 'test over')", run), "updated")

    # ---------------------------------------------------- session pooling

    def test_session_pooling_keeps_a_connected_owner_and_frees_its_run_when_it_leaves(self):
        direct = self.direct()
        key = self.key()
        owner, run, backend = self.start_owner("sess_session", key, None)
        self.bouncer.command("RECONNECT sess_session")  # takes effect when the client leaves
        self.assertEqual(self.value(owner, "SELECT pg_backend_pid()"), backend)
        self.assertEqual(self.error(direct, "SELECT start_run('job', 'api', %s)", key)[0], "23505")
        self.assertEqual(self.value(owner, "SELECT heartbeat_run(%s)", run), "ok")
        owner.close()  # DISCARD ALL, then the server connection closes
        self.wait_session_gone(backend)
        successor = self.client("sess_session")
        taken, message = self.take_over(successor, key, run)
        self.assertEqual(message, f"abandoned: owner session {backend} from 127.0.0.1 is gone")
        self.assertEqual(self.value(successor, "SELECT cancel_run(%s)", taken), "updated")


if __name__ == "__main__":
    if not (shutil.which("pgbouncer") or os.path.exists("/usr/sbin/pgbouncer")):
        print("skipped: pgbouncer is not installed (apt-get install pgbouncer)")
        sys.exit(77)  # ctest's SKIP_RETURN_CODE
    unittest.main(verbosity=2)
