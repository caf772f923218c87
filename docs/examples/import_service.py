"""An application whose processes share one SQLite database and use sqlite-runs
only through its SQL functions: docs/integration.md walks through it.

    export SQLITE_RUNS_EXTENSION=/usr/lib/x86_64-linux-gnu/sqlite-runs/runs.so
    python3 import_service.py serve app.db 8080   # the web process
    python3 import_service.py work app.db 1       # a worker process, for run 1

The web process takes import requests: POST /imports with {"user": ..., "readings":
["12", "7", ...]} starts a run and answers 202, or 409 while an import is already
active. GET /imports/active is the UI's view of the active import, GET /imports/ID
one import. The worker imports the readings of one run into the table readings,
reporting progress, and completes or fails the run.
"""

import json
import os
import sqlite3
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = "imports"  # the concurrency key: one active import at a time


def connect(path):
    """A connection as every process opens one: the library loaded, WAL, and its
    busy handler, so that a function waits for another process's write lock,
    and no process starves behind the others."""
    db = sqlite3.connect(path, isolation_level=None)
    db.enable_load_extension(True)
    db.load_extension(os.environ["SQLITE_RUNS_EXTENSION"])
    db.enable_load_extension(False)
    db.execute("SELECT runs_busy_timeout(5000)")
    db.execute("PRAGMA journal_mode = WAL")
    return db


def value(db, sql, *args):
    return db.execute(sql, args).fetchone()[0]


def migrate(db):
    """Every process runs this at start: cheap when there is nothing to do."""
    value(db, "SELECT runs_migrate()")
    db.execute("CREATE TABLE IF NOT EXISTS import_batches"
               " (run_id INTEGER PRIMARY KEY, readings TEXT NOT NULL)")
    db.execute("CREATE TABLE IF NOT EXISTS readings (run_id INTEGER NOT NULL, value INTEGER NOT NULL)")


# ---- the web process ---------------------------------------------------------

def start_import(db, user, readings):
    """(HTTP status, JSON body) for a request to import readings."""
    try:
        run_id = value(db, "SELECT start_run('import', ?, ?, 60)", user, KEY)
    except sqlite3.IntegrityError as e:  # already active
        return 409, {"error": str(e), "active_run": value(db, "SELECT active_run(?)", KEY)}
    # start_run() has committed the run. If storing the batch fails, fail the
    # run too, or it would stay pending and block every later import.
    try:
        db.execute("INSERT INTO import_batches (run_id, readings) VALUES (?, ?)",
                   (run_id, json.dumps(readings)))
    except sqlite3.Error as e:
        value(db, "SELECT fail_run(?, ?)", run_id, f"could not store the batch: {e}")
        return 500, {"error": str(e), "run_id": run_id}
    return 202, {"run_id": run_id}


RUN_COLUMNS = ("id", "status", "triggered_by", "created_at", "started_at", "finished_at",
               "progress_current", "progress_total", "current_step", "error_message")


def show_run(db, run_id):
    """The UI's query: one run, as JSON, or None."""
    row = db.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE id = ?",
                     (run_id,)).fetchone()
    return None if row is None else dict(zip(RUN_COLUMNS, row))


class Handler(BaseHTTPRequestHandler):
    database = None  # set by serve()

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        if self.path != "/imports":
            return self.answer(404, {"error": "no such resource"})
        try:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            user, readings = request["user"], request["readings"]
            if not (isinstance(user, str) and user and isinstance(readings, list)
                    and all(isinstance(r, str) for r in readings)):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return self.answer(400, {"error": 'send {"user": "name", "readings": ["1", ...]}'})
        db = connect(self.database)
        try:
            self.answer(*start_import(db, user, readings))
        finally:
            db.close()

    def do_GET(self):
        db = connect(self.database)
        try:
            if self.path == "/imports/active":
                run_id = value(db, "SELECT active_run(?)", KEY)
                return self.answer(200, {"active": show_run(db, run_id)})
            prefix, _, run_id = self.path.rpartition("/")
            run = show_run(db, int(run_id)) if prefix == "/imports" and run_id.isdigit() else None
            self.answer(200 if run else 404, run or {"error": "no such import"})
        finally:
            db.close()


def serve(path, port):
    db = connect(path)
    migrate(db)
    db.close()
    Handler.database = path
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


# ---- the worker process ------------------------------------------------------

def work(db, run_id):
    """Imports the batch of run_id. Returns the process's exit status."""
    migrate(db)
    taken = value(db, "SELECT mark_run_running(?)", run_id)
    if taken != "updated":  # 'not_found', or not pending: another worker has it, or it ended
        print(f"run {run_id}: {taken}, nothing to do")
        return 0
    batch = db.execute("SELECT readings FROM import_batches WHERE run_id = ?", (run_id,)).fetchone()
    if batch is None:
        value(db, "SELECT fail_run(?, ?)", run_id, "no batch stored for this run")
        print(f"run {run_id}: no batch stored for this run")
        return 1
    readings = json.loads(batch[0])
    done = 0
    try:
        for done, reading in enumerate(readings, start=1):
            # The reading and the progress that counts it commit together, and
            # only while the run is still ours (fencing: a reclaimed run refuses).
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("INSERT INTO readings (run_id, value) VALUES (?, ?)",
                           (run_id, int(reading)))
                counted = value(db, "SELECT update_run_progress(?, ?, ?, ?)",
                                run_id, done, len(readings), reading)
                if counted != "updated":
                    db.execute("ROLLBACK")
                    print(f"run {run_id}: lost at reading {done}")
                    return 1
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            # Still ours? Someone may have asked us to stop, or reclaimed the run.
            beat = value(db, "SELECT heartbeat_run(?)", run_id)
            if beat == "cancel_requested":
                value(db, "SELECT cancel_run(?)", run_id)
                print(f"run {run_id}: cancelled at reading {done}")
                return 0
            if beat == "lost":
                print(f"run {run_id}: lost at reading {done}")
                return 1
        value(db, "SELECT complete_run(?)", run_id)
    except Exception as e:
        value(db, "SELECT fail_run(?, ?)", run_id, f"reading {done}: {type(e).__name__}: {e}")
        print(f"run {run_id}: failed at reading {done}: {e}")
        return 1
    print(f"run {run_id}: imported {len(readings)} readings")
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "serve":
        serve(argv[2], int(argv[3]))
    elif len(argv) == 4 and argv[1] == "work":
        db = connect(argv[2])
        try:
            return work(db, int(argv[3]))
        finally:
            db.close()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
