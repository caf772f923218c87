"""A GenGlossary-shaped application after its move to sqlite-runs: its own
`runs` table, now migrated, and a RunManager whose start and guarded updates
are the extension's functions. docs/adopting.md walks through it.

    export SQLITE_RUNS_EXTENSION=/usr/lib/x86_64-linux-gnu/sqlite-runs/runs.so
    python3 run_manager.py start app.db full   # start a run, hold it until stdin closes
    python3 run_manager.py show app.db         # every run, one line each

`start` prints "started N" (then works on run N until its standard input
closes, and completes it) or "409 {...}" (another run is active: the body an
HTTP handler would send); the test suite races several of them.
"""

import json
import os
import sqlite3
import sys


def connect(path):
    """Every connection the application opens: the extension loaded on it,
    and its busy handler (docs/functions/runs_busy_timeout.md)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.enable_load_extension(True)
    db.load_extension(os.environ["SQLITE_RUNS_EXTENSION"])
    db.enable_load_extension(False)
    db.execute("SELECT runs_busy_timeout(5000)")
    return db


def migrate(db):
    """At start-up: adopt the existing runs table, end the runs a crash left active."""
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("SELECT runs_migrate()")
    db.execute("SELECT reap_stale_runs(NULL, 3600)")


class RunAlreadyActive(Exception):
    """Another run holds the key: HTTP 409, with the run that holds it."""

    def __init__(self, holder):
        super().__init__(f"run {holder['id']} is already active")
        self.holder = holder

    def http(self):
        return 409, {"error": str(self), "run_id": self.holder["id"],
                     "status": self.holder["status"], "since": self.holder["since"]}


class RunManager:
    def __init__(self, db):
        self.db = db

    def start_run(self, scope, triggered_by="api"):
        """The new run's id; RunAlreadyActive while another run is active."""
        answer = json.loads(self.db.execute("SELECT try_start_run(?, ?)",
                                            (scope, triggered_by)).fetchone()[0])
        if not answer["started"]:
            raise RunAlreadyActive(answer)
        return answer["id"]

    def start_run_with(self, scope, write):
        """Starts a run and runs write(db, run_id) in the same transaction:
        both commit, or neither."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            run_id = self.start_run(scope)
            write(self.db, run_id)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return run_id

    def _transition(self, sql, *args):
        """'updated', or why not: 'not_found', 'not_in_expected_state'."""
        return self.db.execute(sql, args).fetchone()[0]

    def mark_running(self, run_id):
        return self._transition("SELECT mark_run_running(?)", run_id)

    def update_progress(self, run_id, current, total, step=None):
        return self._transition("SELECT update_run_progress(?, ?, ?, ?)", run_id, current, total, step)

    def complete(self, run_id):
        return self._transition("SELECT complete_run(?)", run_id)

    def fail(self, run_id, message=None):
        return self._transition("SELECT fail_run(?, ?)", run_id, message)

    def cancel(self, run_id):
        return self._transition("SELECT cancel_run(?)", run_id)


def start(path, scope):
    db = connect(path)
    migrate(db)
    manager = RunManager(db)
    try:
        run_id = manager.start_run(scope, "cli")
    except RunAlreadyActive as e:
        status, body = e.http()
        print(status, json.dumps(body), flush=True)
        return 0
    manager.mark_running(run_id)
    print("started", run_id, flush=True)
    lines = 0
    for lines, _ in enumerate(sys.stdin, start=1):  # the work: one step per line
        manager.update_progress(run_id, lines, None, "working")
    print(manager.complete(run_id), flush=True)
    return 0


def show(path):
    db = connect(path)
    for row in db.execute("SELECT id, status, coalesce(error_message, '') FROM runs ORDER BY id"):
        print("|".join(str(v) for v in row))
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "start":
        return start(argv[2], argv[3])
    if len(argv) == 3 and argv[1] == "show":
        return show(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
