#!/usr/bin/python3
"""The run cycle from Python's standard sqlite3 module: the extension against
the usual application code.

  /usr/bin/python3 tests/bench/python_cycle.py EXTENSION [--brief] [--json FILE]

Debian's /usr/bin/python3: the pyenv python3 first on PATH cannot load
extensions. Variants, each on a fresh WAL database file with 1,000 finished
runs, busy_timeout 5000, isolation_level=None (autocommit):

  extension    SELECT start_run(...), SELECT mark_run_running(?),
               SELECT complete_run(?)
  application  what applications write by hand: an immediate_transaction()
               context manager around "is a run active?" and an INSERT, then
               two guarded UPDATEs (to running, to completed)

Both sides are driven the same way (Connection.execute, whose statement cache
keeps the prepared statements). In each round the two run one cycle each in
turn, so that both meet the same moments of a noisy machine; at
synchronous=NORMAL and FULL. The result is the median over the rounds of the
time per cycle of each and of their ratio. It prints one JSON object.
"""
import contextlib
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time

from bench_json import emit, json_path


@contextlib.contextmanager
def immediate_transaction(db):
    """The usual helper: BEGIN IMMEDIATE, COMMIT on success, else ROLLBACK."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class RunAlreadyActive(Exception):
    pass


def application_cycle(db, key=""):
    with immediate_transaction(db):
        active = db.execute(
            "SELECT id FROM runs WHERE concurrency_key = ? AND status IN ('pending', 'running')",
            (key,),
        ).fetchone()
        if active is not None:
            raise RunAlreadyActive(active[0])
        run_id = db.execute(
            "INSERT INTO runs (scope, status, triggered_by, concurrency_key, created_at)"
            " VALUES (?, 'pending', ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            ("bench", "bench", key),
        ).lastrowid
    updated = db.execute(
        "UPDATE runs SET status = 'running', started_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
        " WHERE id = ? AND status = 'pending'",
        (run_id,),
    ).rowcount
    assert updated == 1
    updated = db.execute(
        "UPDATE runs SET status = 'completed', finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
        " WHERE id = ? AND status = 'running'",
        (run_id,),
    ).rowcount
    assert updated == 1
    return run_id


def extension_cycle(db, key=""):
    (run_id,) = db.execute("SELECT start_run(?, ?, ?)", ("bench", "bench", key)).fetchone()
    (result,) = db.execute("SELECT mark_run_running(?)", (run_id,)).fetchone()
    assert result == "updated"
    (result,) = db.execute("SELECT complete_run(?)", (run_id,)).fetchone()
    assert result == "updated"
    return run_id


VARIANTS = {"extension": extension_cycle, "application": application_cycle}


def connect(path, extension, synchronous):
    db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.enable_load_extension(True)
    db.load_extension(extension)
    db.enable_load_extension(False)
    return db


def fresh_db(directory, name, extension):
    path = os.path.join(directory, name)
    db = connect(path, extension, "NORMAL")
    db.execute("SELECT runs_migrate()")
    db.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)"
        " INSERT INTO runs (scope, status, triggered_by, created_at, finished_at)"
        " SELECT 'history', 'completed', 'bench', '2020-01-01T00:00:00.000Z',"
        " '2020-01-01T00:00:01.000Z' FROM n"
    )
    db.close()
    return path


def remove_db(path):
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)


def paired_round(directory, extension, synchronous, cycles, index):
    """One round: `cycles` cycles of each variant, one of each in turn (the
    first alternating), each on its own fresh database. Returns
    {variant: (wall seconds per cycle, CPU seconds per cycle)}."""
    dbs, paths = {}, {}
    for variant in VARIANTS:
        paths[variant] = fresh_db(directory, f"{variant}-{synchronous}-{index}.db", extension)
        dbs[variant] = connect(paths[variant], extension, synchronous)
        for _ in range(20):  # warm the statement caches
            VARIANTS[variant](dbs[variant])
    wall = dict.fromkeys(VARIANTS, 0.0)
    cpu = dict.fromkeys(VARIANTS, 0.0)
    order = list(VARIANTS)
    for _ in range(cycles):
        for variant in order:
            w, c = time.perf_counter(), time.thread_time()
            VARIANTS[variant](dbs[variant])
            cpu[variant] += time.thread_time() - c
            wall[variant] += time.perf_counter() - w
        order.reverse()
    for variant in VARIANTS:
        dbs[variant].close()
        remove_db(paths[variant])
    return {variant: (wall[variant] / cycles, cpu[variant] / cycles) for variant in VARIANTS}


def main(argv):
    if len(argv) < 2 or argv[1].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    extension = argv[1]
    brief = "--brief" in argv
    out = json_path(argv)
    rounds = 2 if brief else 15
    cycles = {"NORMAL": 50 if brief else 2000, "FULL": 5 if brief else 300}
    directory = tempfile.mkdtemp(prefix="runs-bench-", dir=os.environ.get("RUNS_BENCH_DIR", "."))
    results = {}
    try:
        for synchronous in ("NORMAL", "FULL"):
            rounds_data = [paired_round(directory, extension, synchronous,
                                        cycles[synchronous], index)
                           for index in range(rounds)]
            entry = {"cycles_per_round": cycles[synchronous], "rounds": rounds}
            for variant in VARIANTS:
                walls = [r[variant][0] for r in rounds_data]
                cpus = [r[variant][1] for r in rounds_data]
                entry[variant] = {
                    "wall_us_median": statistics.median(walls) * 1e6,
                    "cpu_us_median": statistics.median(cpus) * 1e6,
                    "wall_us_rounds": [round(w * 1e6, 1) for w in walls],
                }
            ratios = [r["extension"][0] / r["application"][0] for r in rounds_data]
            entry["ratio_wall"] = statistics.median(ratios)
            entry["ratio_wall_range"] = [min(ratios), max(ratios)]
            entry["ratio_cpu"] = statistics.median(
                r["extension"][1] / r["application"][1] for r in rounds_data)
            results[f"sync:{synchronous}"] = entry
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return emit({"python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version,
                 "results": results}, out)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
