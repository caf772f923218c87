"""A throwaway PostgreSQL server for the tests, and the schema they test.

PgServer() runs initdb into a new temporary folder, starts the server on a free
loopback port (TCP on 127.0.0.1 only, its Unix socket inside that folder) and,
on stop(), stops it and deletes the folder. PostgreSQL refuses to run as root:
as root, initdb and pg_ctl run as the system user `postgres` (Debian's
postgresql package creates it) through runuser; as any other user, as that
user. The server binaries come from PG_BINDIR, else the newest
/usr/lib/postgresql/*/bin (Debian), else `pg_config --bindir`.

apply_migrations(conn) applies sql/postgres/NNN_*.sql in order, then
sql/postgres/functions.sql, each in its own transaction, as docs/postgres.md
tells users to; apply_migrations(conn, files) applies only the files given.

PgCase is the unittest base class of the PostgreSQL tests: one server for the
whole test program (started on first use, stopped at exit), a fresh migrated
schema per call of schema(), and connections closed after each test.

Only Debian's /usr/bin/python3 with python3-psycopg2 is assumed.
"""

import atexit
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import psycopg2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MIGRATIONS = os.path.join(ROOT, "sql", "postgres")
FUNCTIONS = os.path.join(MIGRATIONS, "functions.sql")
SERVER_USER = "postgres"  # the system user that runs the server when we are root


def migration_files():
    files = sorted(glob.glob(os.path.join(MIGRATIONS, "[0-9][0-9][0-9]_*.sql")))
    if not files:
        raise RuntimeError(f"no migrations in {MIGRATIONS}")
    return files


def apply_migrations(conn, files=None):
    """Applies each file in its own transaction; conn must be in autocommit.
    Without files: every migration, then the functions."""
    for path in files or migration_files() + [FUNCTIONS]:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            try:
                cur.execute(text)
            except Exception:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")


def create_schema(server, name, files=None, migrate=True):
    """Creates schema name on server (a PgServer, or anything with connect()
    taking search_path) and, unless migrate is false, applies the migrations
    and the functions (or only files) there. Returns name."""
    admin = server.connect()
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE SCHEMA {name}")
    finally:
        admin.close()
    if migrate:
        conn = server.connect(search_path=name)
        try:
            apply_migrations(conn, files)
        finally:
            conn.close()
    return name


def bindir():
    configured = os.environ.get("PG_BINDIR")
    if configured:
        return configured
    def version(path):
        m = re.search(r"/postgresql/(\d+)/bin$", path)
        return int(m.group(1)) if m else 0
    found = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.path.exists(os.path.join(d, "initdb"))]
    if found:
        return max(found, key=version)
    if shutil.which("pg_config"):
        return subprocess.run(["pg_config", "--bindir"], check=True, stdout=subprocess.PIPE,
                              text=True).stdout.strip()
    raise RuntimeError("no PostgreSQL server binaries: apt-get install postgresql, or set PG_BINDIR")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, settings=None, primary=None):
        """settings: server settings over the quick defaults below (they come
        last on the command line, which wins). primary: a started PgServer to
        make this one a streaming standby of (pg_basebackup -R)."""
        self.settings = dict(settings or {})
        self.primary = primary
        self.bin = bindir()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                self.user = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise RuntimeError(f"running as root, and there is no system user {SERVER_USER!r} "
                                   "to run PostgreSQL as: apt-get install postgresql creates it")
        self.folder = None
        self.port = None
        self.started = False

    def _run(self, *args, check=True):
        command = [os.path.join(self.bin, args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        return subprocess.run(command, cwd=self.folder, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, check=check, timeout=120)

    def start(self):
        base = os.environ.get("TMPDIR") or "/tmp"
        self.folder = tempfile.mkdtemp(prefix="runs-pg-", dir=base)
        if self.as_root:
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
        self.data = os.path.join(self.folder, "data")
        if self.primary:
            result = self._run("pg_basebackup", "-D", self.data, "-R", "-X", "stream", "-c", "fast",
                               "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres", check=False)
        else:
            result = self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                               "-E", "UTF8", "--locale=C", "--no-sync", check=False)
        if result.returncode != 0:
            raise RuntimeError(("pg_basebackup" if self.primary else "initdb") + " failed:\n" + result.stdout)
        # A port that was free a moment ago may be taken by the time the server
        # binds it: try a few.
        for _ in range(5):
            self.port = free_port()
            settings = {
                "listen_addresses": "127.0.0.1", "unix_socket_directories": self.folder,
                # Durability is not under test unless settings say so; the
                # suite must be quick. (A hard stop of the server keeps what it
                # wrote in the operating system's cache.)
                "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                "max_connections": "60", **self.settings}
            options = " ".join([f"-p {self.port}"] + [f"-c {k}={v}" for k, v in settings.items()])
            result = self._run("pg_ctl", "-D", self.data, "-o", options,
                               "-l", os.path.join(self.folder, "server.log"), "-w", "-t", "60",
                               "start", check=False)
            if result.returncode == 0:
                self.started = True
                return self
        raise RuntimeError("pg_ctl start failed:\n" + result.stdout + "\n" + self.log())

    def crash(self):
        """Stops the server hard: no checkpoint, no goodbye to clients."""
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        self.started = False

    def promote(self):
        self._run("pg_ctl", "-D", self.data, "-w", "-t", "60", "promote")

    def log(self):
        try:
            with open(os.path.join(self.folder, "server.log"), encoding="utf-8",
                      errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        try:
            if self.started:
                self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop", check=False)
                self.started = False
        finally:
            if self.folder:
                shutil.rmtree(self.folder, ignore_errors=True)
                self.folder = None

    def dsn(self, dbname="postgres", search_path=None):
        dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"
        if search_path:
            dsn += f" options='-c search_path={search_path}'"
        return dsn

    def connect(self, dbname="postgres", search_path=None):
        conn = psycopg2.connect(self.dsn(dbname, search_path))
        conn.autocommit = True
        return conn

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


HANG_GUARD = 60.0  # seconds, against a hung wait; never a timing assertion


class PgCase(unittest.TestCase):
    server = None
    count = 0

    @classmethod
    def setUpClass(cls):
        if PgCase.server is None:
            PgCase.server = PgServer().start()
            atexit.register(PgCase.server.stop)

    def schema(self, migrate=True, files=None):
        """A new schema, migrated (migrations and functions, or only files)
        unless told not to."""
        PgCase.count += 1
        return create_schema(self.server, f"s{PgCase.count}", files=files, migrate=migrate)

    def connect(self, schema=None, user="postgres", server=None):
        dsn = (server or self.server).dsn(search_path=schema).replace("user=postgres", f"user={user}")
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        self.addCleanup(conn.close)
        return conn

    def value(self, conn, sql, *params):
        with conn.cursor() as cur:
            cur.execute(sql, params or None)
            return cur.fetchone()[0] if cur.description else None

    def rows(self, conn, sql, *params):
        with conn.cursor() as cur:
            cur.execute(sql, params or None)
            return cur.fetchall()

    def error(self, conn, sql, *params):
        """(SQLSTATE, primary message) of a statement that must fail."""
        with self.assertRaises(psycopg2.Error, msg=sql) as caught:
            self.value(conn, sql, *params)
        return caught.exception.pgcode, caught.exception.diag.message_primary

    def role(self, name, *grants, login=True):
        """A role, dropped with what it owns after the test."""
        admin = self.connect()
        self.value(admin, f"CREATE ROLE {name} {'LOGIN' if login else 'NOLOGIN'}")
        for grant in grants:
            self.value(admin, grant)
        self.addCleanup(lambda: self.value(self.connect(), f"DROP OWNED BY {name}; DROP ROLE {name}"))
        return name

    def wait_until(self, conn, sql, *params, what="the server to get there"):
        """Polls a query of the server's own state until it is true."""
        deadline = time.monotonic() + HANG_GUARD
        while not self.value(conn, sql, *params):
            self.assertLess(time.monotonic(), deadline, f"waited {HANG_GUARD} s for {what}")

    def wait_blocked(self, pid):
        """Returns once backend pid waits for another session's lock."""
        self.wait_until(self.connect(), "SELECT cardinality(pg_blocking_pids(%s)) > 0", pid,
                        what=f"backend {pid} to wait for a lock")

    def wait_session_gone(self, pid):
        self.wait_until(self.connect(), "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)",
                        pid, what=f"session {pid} to end")


class PgBouncer:
    """Debian's pgbouncer in front of a PgServer, on a free loopback port.

    databases: {name: (pool_mode, role, extra)}: each pgbouncer database logs
    in to the server's `postgres` database as that role (auth_type = any: the
    client's user name is ignored), with that pool_mode; extra is appended to
    the [databases] line (pool_size=1, say). The admin console (database
    `pgbouncer`, user postgres) takes RECONNECT, SHOW SERVERS, ... Runs as the
    server's system user when we are root (pgbouncer refuses root)."""

    def __init__(self, server, databases, settings=None):
        self.binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not os.path.exists(self.binary):
            raise RuntimeError("no pgbouncer: apt-get install pgbouncer")
        self.server = server
        self.databases = databases
        self.settings = settings or {}
        self.proc = None

    def start(self):
        folder = self.server.folder
        self.port = free_port()
        lines = ["[databases]"]
        for name, (mode, role, extra) in self.databases.items():
            lines.append(f"{name} = host=127.0.0.1 port={self.server.port} dbname=postgres user={role}"
                         f" pool_mode={mode} {extra}".rstrip())
        settings = {
            "listen_addr": "127.0.0.1", "listen_port": str(self.port), "unix_socket_dir": "",
            "auth_type": "any", "admin_users": "postgres", "pool_mode": "session",
            "logfile": os.path.join(folder, "pgbouncer.log"), "pidfile": "",
            "server_reset_query": "DISCARD ALL", "ignore_startup_parameters": "extra_float_digits,options",
            "default_pool_size": "4",
        }
        settings.update(self.settings)
        lines.append("[pgbouncer]")
        lines += [f"{k} = {v}" for k, v in settings.items()]
        self.ini = os.path.join(folder, f"pgbouncer-{self.port}.ini")
        with open(self.ini, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        command = [self.binary, self.ini]
        if os.geteuid() == 0:
            os.chmod(self.ini, 0o644)
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + HANG_GUARD
        while True:
            try:
                self.admin().close()
                return self
            except psycopg2.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("pgbouncer did not start:\n" + self.log())
                time.sleep(0.05)  # polling for the listener, not standing in for an event

    def log(self):
        try:
            with open(os.path.join(self.server.folder, "pgbouncer.log"), encoding="utf-8", errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return (self.proc.stdout.read().decode(errors="replace") if self.proc and self.proc.poll() is not None
                    else "")

    def dsn(self, database):
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def admin(self):
        conn = psycopg2.connect(self.dsn("pgbouncer"))
        conn.autocommit = True
        return conn

    def command(self, text):
        conn = self.admin()
        try:
            with conn.cursor() as cur:
                cur.execute(text)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=HANG_GUARD)
