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

Only Debian's /usr/bin/python3 with python3-psycopg2 is assumed.
"""

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile

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
    def __init__(self):
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
        result = self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                           "-E", "UTF8", "--locale=C", "--no-sync", check=False)
        if result.returncode != 0:
            raise RuntimeError("initdb failed:\n" + result.stdout)
        # A port that was free a moment ago may be taken by the time the server
        # binds it: try a few.
        for _ in range(5):
            self.port = free_port()
            options = " ".join([
                f"-p {self.port}", "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.folder}",
                # Durability is not under test; the suite must be quick.
                "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
                "-c max_connections=60",
            ])
            result = self._run("pg_ctl", "-D", self.data, "-o", options,
                               "-l", os.path.join(self.folder, "server.log"), "-w", "-t", "60",
                               "start", check=False)
            if result.returncode == 0:
                self.started = True
                return self
        raise RuntimeError("pg_ctl start failed:\n" + result.stdout + "\n" + self.log())

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
