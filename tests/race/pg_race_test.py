"""The cross-process race on PostgreSQL, with the overlap check of race_test.cpp.

Several processes (pg_race_worker.py, started with fork+exec, each with its
own connection: as many "hosts" as the server can tell apart) start and
finish runs of one key at once on a PostgreSQL server started for this test
(tests/postgres/pg_server.py), some of them killed with SIGKILL while they own
the active run.

The history: a trigger on `runs`, created by the setup, appends 'active' when
a run becomes pending/running and 'inactive' when it leaves those states to
race_history. It runs inside the statement that fired it, so inside the write
transaction, and first takes a self-conflicting lock on race_history that it
holds until that transaction ends: writers that record an event take turns
from there to their commit, so seq is the commit order of the events (the
guards under test, runs_one_active and the functions' row locks, act before
the trigger). Replaying it per key gives how many runs were active at once.

  (a) naive check-then-insert on migration 001 alone: runs overlap.
  (b) the same with all migrations: never; the losers get unique_violation.
  (c) start_run(): never, in lockstep and running free.
  (d) start_run() with victims killed by SIGKILL while they own the active
      run: never an overlap; every victim's run ends failed, "abandoned:
      owner session ... is gone", reclaimed by a racer's start_run() or by
      reap_stale_runs() at the end.
Lockstep makes the counts exact; free-running asserts the invariants. No
sleeps, no timing assertions; a hang guard kills the workers after 120 s.

    /usr/bin/python3 tests/race/pg_race_test.py
"""

import collections
import os
import select
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "postgres"))

from pg_server import PgCase, migration_files  # noqa: E402

PYTHON = "/usr/bin/python3"
WORKER = os.path.join(HERE, "pg_race_worker.py")
WORKERS = 6
HANG_GUARD = 120.0  # seconds; a guard against a hung worker, not a timing assertion

HISTORY = """
CREATE TABLE race_history (
  seq bigserial PRIMARY KEY,
  run_id bigint NOT NULL,
  concurrency_key text NOT NULL,
  event text NOT NULL CHECK (event IN ('active', 'inactive')));
CREATE FUNCTION race_history_record() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  was boolean := TG_OP = 'UPDATE' AND OLD.status IN ('pending', 'running');
  now_active boolean := NEW.status IN ('pending', 'running');
BEGIN
  IF was IS DISTINCT FROM now_active THEN
    -- One recording writer at a time, from here to its commit.
    LOCK TABLE race_history IN SHARE ROW EXCLUSIVE MODE;
    INSERT INTO race_history (run_id, concurrency_key, event)
    VALUES (NEW.id, coalesce(to_jsonb(NEW) ->> 'concurrency_key', ''),
            CASE WHEN now_active THEN 'active' ELSE 'inactive' END);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER race_history AFTER INSERT OR UPDATE OF status ON runs
  FOR EACH ROW EXECUTE FUNCTION race_history_record();
"""


class Worker:
    def __init__(self, dsn, mode, iterations, key, name, lockstep):
        args = [PYTHON, WORKER, "--dsn", dsn, "--mode", mode, "--iterations", str(iterations),
                "--key", key, "--name", name]
        if lockstep:
            args.append("--lockstep")
        self.name = name
        self.mode = mode
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self.killed = False
        self.counts = {}
        self.output = b""

    def read_byte(self, deadline):
        ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"worker {self.name}: no answer within the hang guard")
        return os.read(self.proc.stdout.fileno(), 1)

    def send(self):
        self.proc.stdin.write(b"g")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.killed = True

    def finish(self, deadline):
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        if self.killed:
            self.proc.stdout.close()
            return
        rest = b""
        while True:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                self.proc.kill()
                raise AssertionError(f"worker {self.name} does not finish")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                break
            rest += chunk
        self.proc.stdout.close()
        self.proc.wait()
        self.output = rest
        for word in rest.split():
            name, _, value = word.decode().partition("=")
            self.counts[name] = int(value)


def replay(conn):
    """Per key: most runs active at once, and 'active' events that found one
    active already; per run: its events ('AI' = active, then inactive)."""
    with conn.cursor() as cur:
        cur.execute("SELECT run_id, concurrency_key, event FROM race_history ORDER BY seq")
        rows = cur.fetchall()
    active = collections.Counter()
    max_active = collections.Counter()
    overlaps = collections.Counter()
    events = collections.defaultdict(str)
    anomalies = []
    for run_id, key, event in rows:
        if event == "active":
            if active[key] > 0:
                overlaps[key] += 1
            active[key] += 1
            events[run_id] += "A"
        else:
            if active[key] == 0:
                anomalies.append(f"run {run_id} inactive twice")
            active[key] -= 1
            events[run_id] += "I"
        max_active[key] = max(max_active[key], active[key])
    return max_active, overlaps, events, anomalies


class PgRace(PgCase):
    def database(self, all_migrations=True):
        """A fresh schema with the migrations (all, or 001 alone) and the
        history trigger; its dsn."""
        schema = self.schema(files=None if all_migrations else migration_files()[:1])
        self.conn = self.connect(schema)
        self.value(self.conn, HISTORY)
        return self.server.dsn(search_path=schema)

    def race(self, dsn, mode, iterations, lockstep, keys=("",)):
        deadline = time.monotonic() + HANG_GUARD
        workers = [Worker(dsn, mode, iterations, keys[i % len(keys)], f"worker-{i}", lockstep)
                   for i in range(WORKERS)]
        try:
            for w in workers:
                self.assertEqual(w.read_byte(deadline), b".", f"{w.name} getting ready")
            if lockstep:
                for w in workers:
                    w.send()
                steps = 3 if mode == "naive" else 2
                for _ in range(iterations * steps):
                    for w in workers:
                        self.assertEqual(w.read_byte(deadline), b".", f"{w.name} in lockstep")
                    for w in workers:
                        w.send()
            else:
                for w in workers:
                    w.proc.stdin.close()  # the start barrier opens for all at once
            for w in workers:
                w.finish(deadline)
        except BaseException:
            for w in workers:
                if w.proc.poll() is None:
                    w.proc.kill()
            raise
        for w in workers:
            self.assertEqual(w.proc.returncode, 0, f"{w.name} printed {w.output!r}")
            c = w.counts
            self.assertEqual(c["errors"], 0, w.name)
            self.assertEqual(c["attempts"], iterations, w.name)
            self.assertEqual(c["wins"] + c["refusals"] + c["unique_errors"], c["attempts"], w.name)
        return workers

    def total(self, workers, name):
        return sum(w.counts.get(name, 0) for w in workers)

    def expect_consistent(self, workers, history):
        max_active, overlaps, events, anomalies = history
        wins = self.total(workers, "wins")
        self.assertGreaterEqual(wins, 1)
        self.assertEqual(self.value(self.conn, "SELECT count(*) FROM runs"), wins)
        self.assertEqual(self.value(self.conn, "SELECT count(*) FROM runs WHERE status = 'completed'"), wins)
        self.assertEqual(self.value(self.conn,
            "SELECT count(*) FROM runs WHERE started_at IS NULL OR finished_at IS NULL"
            " OR started_at < created_at OR finished_at < started_at"), 0)
        self.assertEqual(sorted(set(events.values())), ["AI"])
        self.assertEqual(len(events), wins)
        self.assertEqual(anomalies, [])

    def raced(self, name, mode, iterations, lockstep, all_migrations=True, keys=("",)):
        """Races the workers on a fresh database, reports, checks the
        outcome's consistency; (workers, max_active, overlaps) per key."""
        began = time.monotonic()
        workers = self.race(self.database(all_migrations), mode, iterations, lockstep, keys)
        history = replay(self.conn)
        self.report(name, workers, history, began)
        self.expect_consistent(workers, history)
        max_active, overlaps, _, _ = history
        return workers, max_active, overlaps

    def report(self, name, workers, history, began):
        max_active, overlaps, _, _ = history
        print(f"[ pg race ] {name}: wins={self.total(workers, 'wins')} "
              f"refusals={self.total(workers, 'refusals')} "
              f"unique_errors={self.total(workers, 'unique_errors')} "
              f"max_active={dict(max_active)} overlaps={dict(overlaps)} "
              f"in {int((time.monotonic() - began) * 1000)} ms", file=sys.stderr)

    # (a) Nothing in migration 001 stops a second active run: in lockstep every
    # worker checks (none active), then every worker inserts.
    def test_naive_check_then_insert_overlaps(self):
        iterations = 20
        workers, max_active, overlaps = self.raced("naive, migration 001, lockstep", "naive", iterations,
                                                   lockstep=True, all_migrations=False)
        self.assertEqual(max_active[""], WORKERS)
        self.assertEqual(overlaps[""], (WORKERS - 1) * iterations)
        self.assertEqual(self.total(workers, "wins"), WORKERS * iterations)

    # (b) The same workers after all migrations: runs_one_active (and the insert
    # guard, for an active run already committed) refuse all but one insert.
    def test_naive_check_then_insert_with_index_never_overlaps(self):
        self.one_winner_per_iteration("naive, migrated, lockstep", "naive", "unique_errors")

    # (b) running free: whatever interleaving happens, no overlap.
    def test_naive_check_then_insert_with_index_free_never_overlaps(self):
        _, max_active, overlaps = self.raced("naive, migrated, free", "naive", 300, lockstep=False)
        self.assertEqual(dict(max_active), {"": 1})
        self.assertEqual(dict(overlaps), {})

    # (c) start_run() in lockstep: one winner per iteration.
    def test_start_run_lockstep_one_winner_per_iteration(self):
        self.one_winner_per_iteration("start_run, lockstep", "start", "refusals")

    def one_winner_per_iteration(self, name, mode, losers):
        """Lockstep after all migrations: one winner per iteration, every
        other worker counted under `losers`, never two runs active."""
        iterations = 20
        workers, max_active, overlaps = self.raced(name, mode, iterations, lockstep=True)
        self.assertEqual(max_active[""], 1)
        self.assertEqual(overlaps[""], 0)
        self.assertEqual(self.total(workers, "wins"), iterations)
        self.assertEqual(self.total(workers, losers), (WORKERS - 1) * iterations)

    # (c) start_run() running free, two keys: never two runs of a key at once.
    def test_start_run_free_never_overlaps(self):
        _, max_active, overlaps = self.raced("start_run, two keys, free", "start", 300, lockstep=False,
                                             keys=("even", "odd"))
        self.assertEqual(dict(max_active), {"even": 1, "odd": 1})
        self.assertEqual(sum(overlaps.values()), 0)

    # (d) Racers running free, and victims that win a run, mark it running and
    # are killed with SIGKILL while they own it. The server ends a victim's
    # session when it reads the closed connection, which releases its lock;
    # the next start_run() (or, at the end, reap_stale_runs()) reclaims the run.
    def test_start_run_with_owners_killed_never_overlaps(self):
        began = time.monotonic()
        dsn = self.database()
        deadline = time.monotonic() + HANG_GUARD
        racers = [Worker(dsn, "start", 150, "", f"racer-{i}", False) for i in range(WORKERS - 2)]
        victims = [Worker(dsn, "victim", 100000, "", f"victim-{i}", False) for i in range(2)]
        victim_runs = {}
        try:
            for w in racers + victims:
                self.assertEqual(w.read_byte(deadline), b".", f"{w.name} getting ready")
            for w in victims:
                w.send()
            for w in racers:
                w.proc.stdin.close()  # the start barrier opens
            waiting = {w.proc.stdout.fileno(): w for w in victims}
            lines = collections.defaultdict(bytes)
            while waiting:
                ready, _, _ = select.select(list(waiting), [], [], max(0.0, deadline - time.monotonic()))
                self.assertTrue(ready, "a victim never won a run")
                for fd in ready:
                    w = waiting[fd]
                    byte = os.read(fd, 1)
                    if not byte:
                        self.fail(f"{w.name} exited early, status {w.proc.wait()}")
                    lines[w.name] += byte
                    if byte == b"\n":
                        tag, run_id = lines[w.name].split()
                        self.assertEqual(tag, b"h")
                        w.kill()  # while it owns the active run
                        victim_runs[w.name] = int(run_id)
                        del waiting[fd]
            for w in racers + victims:
                w.finish(deadline)
        except BaseException:
            for w in racers + victims:
                if w.proc.poll() is None:
                    w.proc.kill()
            raise
        for w in racers:
            self.assertEqual(w.proc.returncode, 0, f"{w.name} printed {w.output!r}")
            self.assertEqual(w.counts["errors"], 0, w.name)
            self.assertEqual(w.counts["wins"] + w.counts["refusals"], w.counts["attempts"], w.name)
        self.assertEqual(len(victim_runs), 2)
        # Wait until the server has ended each victim's session: its owner
        # lock is free then. Whatever no start_run() reclaimed, reap.
        self.value(self.conn, "SET lock_timeout = '60s'")
        for run_id in victim_runs.values():
            self.value(self.conn, "SELECT pg_advisory_lock(owner_pid, runs_owner_lock_objid(owner_start_time))"
                       " FROM runs WHERE id = %s", run_id)
            self.value(self.conn, "SELECT pg_advisory_unlock(owner_pid, runs_owner_lock_objid(owner_start_time))"
                       " FROM runs WHERE id = %s", run_id)
        reaped = self.value(self.conn, "SELECT reap_stale_runs()")
        history = replay(self.conn)
        self.report(f"start_run, free, 2 victims killed (reclaimed by start_run: {2 - reaped}, "
                    f"reaped: {reaped})", racers, history, began)
        max_active, overlaps, events, anomalies = history
        self.assertEqual(dict(max_active), {"": 1})
        self.assertEqual(dict(overlaps), {})
        self.assertEqual(anomalies, [])
        self.assertEqual(sorted(set(events.values())), ["AI"])
        self.assertEqual(self.value(self.conn, "SELECT count(*) FROM runs WHERE status IN ('pending', 'running')"), 0)
        for name, run_id in victim_runs.items():
            with self.conn.cursor() as cur:
                cur.execute("SELECT status, error_message, triggered_by, owner_pid FROM runs WHERE id = %s",
                            (run_id,))
                status, message, by, pid = cur.fetchone()
            self.assertEqual((status, by), ("failed", name))
            self.assertEqual(message, f"abandoned: owner session {pid} from 127.0.0.1 is gone")
        self.assertEqual(self.value(self.conn, "SELECT count(*) FROM runs WHERE status = 'failed'"), 2)
        racer_wins = self.total(racers, "wins")
        self.assertEqual(self.value(self.conn, "SELECT count(*) FROM runs WHERE status = 'completed'"
                                    " AND triggered_by LIKE 'racer-%%'"), racer_wins)
        self.assertEqual(self.value(self.conn, "SELECT count(*) FROM runs"), racer_wins + 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
