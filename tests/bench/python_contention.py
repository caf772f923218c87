#!/usr/bin/python3
"""Lock contention from Python's standard sqlite3 module: what a Python
application gets from SQLite's busy handler (timeout=5.0) and from
runs_busy_timeout(5000), side by side. contention.cpp measures the same in C.

  /usr/bin/python3 tests/bench/python_contention.py EXTENSION [--processes 4,12]
      [--keys one,separate] [--load idle,busy] [--seconds S] [--rounds R] [--json FILE]

Debian's /usr/bin/python3: the pyenv python3 first on PATH cannot load
extensions. N worker processes (fresh interpreters, started with subprocess:
no connection crosses a fork) open their own connection to one WAL database
(isolation_level=None, synchronous=NORMAL) and, until S seconds have passed,
call SELECT start_run('bench', 'python', KEY) and, when it starts a run,
mark_run_running(id) and complete_run(id), on one key or on a key each.
Handlers:
  python                       sqlite3.connect(path, timeout=5.0): SQLite's
  python+runs_busy_timeout     the same, then SELECT runs_busy_timeout(5000)
Each worker reports its counts and the wait of every call. A call that raises
`database is locked` is an escape (a finishing step is retried so that no run
stays active). Start barrier: each worker prints one line when ready and
reads its stdin until EOF; the parent closes every stdin at once. --load busy
keeps one more process spinning on a CPU. --rounds R runs every configuration
R times, the handlers in turn, in reverse order every other round. Prints a
line per configuration; --json FILE writes one JSON object per line in the
format of contention.cpp's (variant, keys, load, round, processes, ...).
"""
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

HANDLERS = ("python", "python+runs_busy_timeout")


def worker(path, extension, key, handler, seconds):
    db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    db.enable_load_extension(True)
    db.load_extension(extension)
    db.execute("PRAGMA synchronous = NORMAL")
    if handler == "python+runs_busy_timeout":
        assert db.execute("SELECT runs_busy_timeout(5000)").fetchone()[0] == 5000
    print("ready", flush=True)
    sys.stdin.read()  # the start barrier
    counts = {"calls": 0, "wins": 0, "refusals": 0, "busy": 0, "finish_busy": 0}
    waits = []
    clock = time.monotonic
    end = clock() + seconds

    def attempt(sql, params):
        """Runs sql once, its wait timed into waits: its first row, or None
        when the database was locked."""
        t0 = clock()
        try:
            return db.execute(sql, params).fetchone()
        except sqlite3.OperationalError as e:
            if "locked" not in str(e):
                raise
            return None
        finally:
            waits.append(clock() - t0)

    while clock() < end:
        counts["calls"] += 1
        try:
            row = attempt("SELECT start_run('bench', 'python', ?)", (key,))
        except sqlite3.IntegrityError:
            counts["refusals"] += 1
            continue
        if row is None:
            counts["busy"] += 1
            continue
        counts["wins"] += 1
        for sql in ("SELECT mark_run_running(?)", "SELECT complete_run(?)"):
            while attempt(sql, (row[0],)) is None:
                counts["finish_busy"] += 1
    counts["waits"] = waits
    print(json.dumps(counts), flush=True)


def percentile(sorted_values, q):
    return sorted_values[int(q * (len(sorted_values) - 1))] if sorted_values else 0.0


def run_config(folder, extension, handler, keys, processes, seconds, load, index):
    path = os.path.join(folder, f"contention-{index}.db")
    setup = sqlite3.connect(path, isolation_level=None)
    setup.enable_load_extension(True)
    setup.load_extension(extension)
    setup.execute("PRAGMA journal_mode = WAL")
    setup.execute("SELECT runs_migrate()")
    setup.close()
    spinner = None
    if load == "busy":
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    children = []
    for i in range(processes):
        key = "" if keys == "one" else f"key-{i}"
        children.append(subprocess.Popen(
            [sys.executable, __file__, "--worker", path, extension, key, handler, str(seconds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for child in children:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("a worker failed to get ready")
    for child in children:
        child.stdin.close()  # the start barrier opens
    results = []
    for child in children:
        line = child.stdout.readline()
        if child.wait() != 0 or not line:
            raise RuntimeError("a worker failed")
        results.append(json.loads(line))
    if spinner is not None:
        spinner.kill()
        spinner.wait()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    waits = sorted(w for r in results for w in r["waits"])
    total = {k: sum(r[k] for r in results) for k in ("calls", "wins", "refusals", "busy", "finish_busy")}
    wins = [r["wins"] for r in results]
    return dict(variant=handler, keys=keys, load=load, processes=processes, seconds=seconds,
                **total, wins_per_s=total["wins"] / seconds, calls_per_s=total["calls"] / seconds,
                wait_p50_ms=percentile(waits, 0.50) * 1e3, wait_p99_ms=percentile(waits, 0.99) * 1e3,
                wait_max_ms=(waits[-1] if waits else 0.0) * 1e3, min_wins=min(wins), max_wins=max(wins))


def main(argv):
    if len(argv) > 1 and argv[1] == "--worker":
        path, extension, key, handler, seconds = argv[2:7]
        worker(path, extension, key, handler, float(seconds))
        return 0
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    extension = argv[1]
    options = {"--processes": "4,12", "--keys": "one,separate", "--load": "idle",
               "--seconds": "2", "--rounds": "1", "--json": ""}
    rest = argv[2:]
    while rest:
        if rest[0] not in options or len(rest) < 2:
            print(__doc__, file=sys.stderr)
            return 2
        options[rest[0]] = rest[1]
        rest = rest[2:]
    out = open(options["--json"], "w") if options["--json"] else None
    index = 0
    with tempfile.TemporaryDirectory(prefix="runs-python-contention-",
                                     dir=os.environ.get("RUNS_BENCH_DIR")) as folder:
        for round_ in range(1, int(options["--rounds"]) + 1):
            for load in options["--load"].split(","):
                for keys in options["--keys"].split(","):
                    for processes in options["--processes"].split(","):
                        order = HANDLERS if round_ % 2 else tuple(reversed(HANDLERS))
                        for handler in order:
                            index += 1
                            r = run_config(folder, extension, handler, keys, int(processes),
                                           float(options["--seconds"]), load, index)
                            r["round"] = round_
                            print(f"{handler:26} {keys:9} {load:5} {processes:>3} runs/s"
                                  f" {r['wins_per_s']:8.1f} p99 {r['wait_p99_ms']:8.2f} ms max"
                                  f" {r['wait_max_ms']:8.1f} ms busy {r['busy']}/{r['finish_busy']}"
                                  f" wins {r['min_wins']}-{r['max_wins']}", file=sys.stderr)
                            if out:
                                out.write(json.dumps(r) + "\n")
                                out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
