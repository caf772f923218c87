"""The two engines behind one interface, for the conformance suite.

An Engine makes a fresh, migrated database for each test (SQLite: a new file,
migrated with runs_migrate(); PostgreSQL: a new schema of one test server,
migrated with sql/postgres/), and opens connections to it:

- Conn.value(sql, *params): the first column of the first row, or None. SQL
  is written once with `?` placeholders. A failure raises RunsError(code,
  message): SQLite's extended result code (an int, 2067) or PostgreSQL's
  SQLSTATE (a str, '23505'), and the message alone (PostgreSQL's primary
  message, without CONTEXT).
- Conn.run_info(id): run_info() as a dict (SQLite returns JSON text, PostgreSQL
  jsonb), or None.
- Engine.remote(): a connection in another process (remote.py, started with
  fork+exec), to play an owner on another host: its requests travel over a
  pipe, and kill() ends it with SIGKILL.
- Engine.wait_owner_gone(conn, run_id): returns once the database can tell
  that the killed owner of run_id is gone. SQLite: at once (the process was
  reaped by kill()). PostgreSQL: the server ends the owner's session when it
  reads the closed connection; this blocks on the owner's advisory lock,
  which the server releases then (lock_timeout guards against a hang).
"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "postgres"))

PYTHON = "/usr/bin/python3"  # Debian's: the one that can load extensions


class RunsError(Exception):
    def __init__(self, code, message):
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message


def portable(sql):
    """`?` placeholders as psycopg2 writes them."""
    return sql.replace("%", "%%").replace("?", "%s")


# ----------------------------------------------------------------- SQLite

class SqliteConn:
    def __init__(self, path, extension):
        self.db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        self.db.enable_load_extension(True)
        self.db.load_extension(extension)
        self.db.enable_load_extension(False)

    def value(self, sql, *params):
        try:
            row = self.db.execute(sql, params).fetchone()
        except sqlite3.Error as e:
            raise RunsError(getattr(e, "sqlite_errorcode", None), str(e)) from None
        return row[0] if row else None

    def run_info(self, run_id):
        text = self.value("SELECT run_info(?)", run_id)
        return None if text is None else json.loads(text)

    def close(self):
        self.db.close()


class SqliteEngine:
    name = "sqlite"

    def __init__(self, extension):
        if not extension or not os.path.isfile(extension):
            raise RuntimeError(f"RUNS_EXTENSION={extension!r}: build the extension and point to it")
        self.extension = extension
        self.folder = tempfile.mkdtemp(prefix="runs-conformance-")
        self.count = 0
        self.path = None

    def close(self):
        shutil.rmtree(self.folder, ignore_errors=True)

    def fresh(self):
        """A new migrated database; returns a connection to it."""
        self.count += 1
        self.path = os.path.join(self.folder, f"case{self.count}.db")
        conn = self.connect()
        conn.value("PRAGMA journal_mode = WAL")
        conn.value("SELECT runs_migrate()")
        return conn

    def connect(self):
        return SqliteConn(self.path, self.extension)

    def has_function(self, conn, name):
        return conn.value("SELECT count(*) FROM pragma_function_list WHERE name = ?", name) > 0

    def remote(self):
        return Remote({"engine": "sqlite", "path": self.path, "extension": self.extension})

    def owner_pid(self, remote):
        return remote.pid

    def wait_owner_gone(self, conn, run_id):
        pass  # kill() reaped the process: its pid has no process now

    def self_pid(self, conn):
        return os.getpid()

    def client_host(self, conn):
        return None  # SQLite records the host name; the cases match it loosely


# ------------------------------------------------------------- PostgreSQL

class PostgresConn:
    def __init__(self, dsn):
        import psycopg2
        self.psycopg2 = psycopg2
        self.db = psycopg2.connect(dsn)
        self.db.autocommit = True

    def value(self, sql, *params):
        try:
            with self.db.cursor() as cur:
                cur.execute(portable(sql) if params else sql, params or None)
                row = cur.fetchone() if cur.description else None
        except self.psycopg2.Error as e:
            raise RunsError(e.pgcode, e.diag.message_primary) from None
        return row[0] if row else None

    def run_info(self, run_id):
        return self.value("SELECT run_info(?)", run_id)

    def close(self):
        self.db.close()


class ExistingServer:
    """A server the caller runs (RUNS_PG_DSN, a libpq key=value string)."""

    def __init__(self, dsn):
        self.base = dsn

    def dsn(self, search_path=None):
        return self.base + (f" options='-c search_path={search_path}'" if search_path else "")

    def connect(self, search_path=None):
        import psycopg2
        conn = psycopg2.connect(self.dsn(search_path))
        conn.autocommit = True
        return conn

    def stop(self):
        pass


class PostgresEngine:
    """A server started for the run; or, with RUNS_PG_DSN set, an existing
    one (another PostgreSQL-compatible engine, say): each case gets a schema
    of its own there, dropped at the end."""

    name = "postgres"

    def __init__(self):
        from pg_server import PgServer
        existing = os.environ.get("RUNS_PG_DSN")
        self.server = ExistingServer(existing) if existing else PgServer().start()
        self.prefix = f"runs_conformance_{os.getpid()}_" if existing else "case"
        self.count = 0
        self.schema = None

    def close(self):
        if isinstance(self.server, ExistingServer):
            admin = self.server.connect()
            with admin.cursor() as cur:
                for n in range(1, self.count + 1):
                    cur.execute(f"DROP SCHEMA IF EXISTS {self.prefix}{n} CASCADE")
            admin.close()
        self.server.stop()

    def fresh(self):
        from pg_server import create_schema
        self.count += 1
        self.schema = create_schema(self.server, f"{self.prefix}{self.count}")
        return self.connect()

    def dsn(self):
        return self.server.dsn(search_path=self.schema)

    def connect(self):
        return PostgresConn(self.dsn())

    def has_function(self, conn, name):
        return True

    def remote(self):
        return Remote({"engine": "postgres", "dsn": self.dsn()})

    def owner_pid(self, remote):
        return remote.backend_pid

    def wait_owner_gone(self, conn, run_id):
        conn.value("SET lock_timeout = '60s'")
        conn.value("SELECT pg_advisory_lock(owner_pid, runs_owner_lock_objid(owner_start_time))"
                   " FROM runs WHERE id = ?", run_id)
        conn.value("SELECT pg_advisory_unlock(owner_pid, runs_owner_lock_objid(owner_start_time))"
                   " FROM runs WHERE id = ?", run_id)
        conn.value("RESET lock_timeout")

    def self_pid(self, conn):
        return conn.value("SELECT pg_backend_pid()")

    def client_host(self, conn):
        """How the server names this machine's connections (owner_host)."""
        return conn.value("SELECT coalesce(host(inet_client_addr()), '[local]')")


# ------------------------------------------------------------ other process

class Remote:
    """A connection in another process: remote.py, started with fork+exec."""

    def __init__(self, config):
        self.proc = subprocess.Popen([PYTHON, os.path.join(HERE, "remote.py"), json.dumps(config)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = self._receive()
        self.pid = hello["pid"]
        self.backend_pid = hello.get("backend_pid")
        if self.pid != self.proc.pid:
            raise RuntimeError(f"remote.py reports pid {self.pid}, started as {self.proc.pid}")

    def _receive(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("remote.py exited")
        return json.loads(line)

    def value(self, sql, *params):
        self.proc.stdin.write(json.dumps({"sql": sql, "params": list(params)}) + "\n")
        self.proc.stdin.flush()
        answer = self._receive()
        if "error" in answer:
            raise RunsError(answer["error"]["code"], answer["error"]["message"])
        return answer["value"]

    def kill(self):
        """SIGKILL: no chance to close the connection or end the run."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
            self.proc.stdout.close()


def make_engine(name):
    if name == "sqlite":
        return SqliteEngine(os.environ.get("RUNS_EXTENSION", ""))
    if name == "postgres":
        return PostgresEngine()
    raise RuntimeError(f"RUNS_ENGINE={name!r}: use sqlite or postgres")
