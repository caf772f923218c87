"""reap_stale_runs() over many active runs whose owners live: how long it takes,
and how long it keeps other writers out.

    RUNS_EXTENSION=build/runs.so /usr/bin/python3 tests/bench/reap_bench.py [RUNS]

Creates a database with RUNS (default 100,000) active runs, each of its own
key, all owned by this process (alive), then calls reap_stale_runs() while a
second connection in another thread writes in a loop (BEGIN IMMEDIATE; COMMIT
with busy_timeout 0, so that every moment the lock is held shows as a refused
write). Prints the time reap_stale_runs() took, and the writer's commits and
refusals during it. No run is abandoned, so a reap that judges liveness outside
the write lock never takes it: zero refusals.
"""

import os
import sqlite3
import sys
import tempfile
import threading
import time

EXTENSION = os.environ.get("RUNS_EXTENSION", "")


def connect(path):
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.enable_load_extension(True)
    conn.load_extension(os.path.abspath(EXTENSION))
    return conn


def main():
    if not EXTENSION:
        raise SystemExit("set RUNS_EXTENSION to the built runs.so")
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory(prefix="sqlite-runs-reap-bench-") as tmp:
        path = os.path.join(tmp, "bench.db")
        db = connect(path)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("SELECT runs_migrate()")
        db.execute("SELECT start_run('bench', 'bench', 'k0')")
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO runs (scope, status, triggered_by, concurrency_key, created_at,"
            " owner_host, owner_boot_id, owner_pid_ns, owner_pid, owner_start_time, owner_time_ns)"
            " SELECT scope, status, triggered_by, 'k' || i, created_at, owner_host, owner_boot_id,"
            " owner_pid_ns, owner_pid, owner_start_time, owner_time_ns FROM runs, n WHERE id = 1",
            (runs - 1,))
        db.execute("COMMIT")
        db.execute("CREATE TABLE IF NOT EXISTS writes(x)")

        writer = connect(path)
        writer.execute("PRAGMA busy_timeout = 0")
        done = threading.Event()
        counts = {"committed": 0, "refused": 0}

        def write():
            while not done.is_set():
                try:
                    writer.execute("BEGIN IMMEDIATE")
                    writer.execute("INSERT INTO writes VALUES (1)")
                    writer.execute("COMMIT")
                    counts["committed"] += 1
                except sqlite3.OperationalError:
                    counts["refused"] += 1
                    if writer.in_transaction:
                        writer.execute("ROLLBACK")

        thread = threading.Thread(target=write)
        thread.start()
        started = time.perf_counter()
        (reaped,) = db.execute("SELECT reap_stale_runs()").fetchone()
        elapsed = time.perf_counter() - started
        done.set()
        thread.join()
        (active,) = db.execute(
            "SELECT count(*) FROM runs WHERE status IN ('pending', 'running')").fetchone()
        print(f"active runs: {active}, owners alive; reap_stale_runs() = {reaped} in {elapsed:.2f} s")
        print(f"a writer meanwhile (busy_timeout 0): {counts['committed']} commits,"
              f" {counts['refused']} refused for the lock")
        writer.close()
        db.close()


if __name__ == "__main__":
    main()
