"""The migration tools' recipes of docs/migrations.md ("With a migration tool"),
run as written there with the real tools: dbmate and knex (npm, from
tests/node/node_modules), Alembic, Django and sqitch (Debian's).

For each tool, in a fresh folder: the recipe's files (`<!-- file: PATH -->`
before a fenced block) are written and its commands (`<!-- run: sh -->`) run
with sh, with $RUNS_SQL the repository's sql/. Then, on the database app.db:
  - runs_migrate() returns the latest version and changes nothing;
  - running the tool again (the recipe's last command) changes nothing;
  - the functions work (start_run('full') is run 1).
Then a refusal: the commands on a database whose `runs` table lacks a column
(an older GenGlossary table) fail with the tool's report of the guard, and
leave the database as it was (the tool's bookkeeping table, if it created one,
holds no row).

With --postgres, instead: the recipe "sqitch on PostgreSQL" on a throwaway
server (tests/postgres/pg_server.py), with the same checks but runs_migrate()
(PostgreSQL has none), the database compared with pg_dump (sqitch's registry
schema aside), and a refusal on a database that already has a runs table.

The recipes load the extension with the packages' load() (sqlite_runs,
sqlite-runs); here a stand-in module of each name loads RUNS_EXTENSION, the
built runs.so (tests/packages tests the packages themselves).

    RUNS_EXTENSION=build/runs.so /usr/bin/python3 tests/migrations/test_migration_tools.py [--postgres]
"""
import glob
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(REPO, "docs", "migrations.md")
SQL_DIR = os.path.join(REPO, "sql")
PG_SQL_DIR = os.path.join(REPO, "sql", "postgres")
NODE_BIN = os.path.join(REPO, "tests", "node", "node_modules", ".bin")
EXTENSION = os.environ.get("RUNS_EXTENSION", "")
LATEST = len(glob.glob(os.path.join(SQL_DIR, "[0-9][0-9][0-9]_*.sql")))
GUARD = "table runs exists but has no column status: add it or rename the table, then migrate again"

PYTHON_STAND_IN = '''# Stand-in for the sqlite_runs package: loads RUNS_EXTENSION.
import os


def load(conn):
    conn.enable_load_extension(True)
    conn.load_extension(os.environ["RUNS_EXTENSION"])
    conn.enable_load_extension(False)
'''
NODE_STAND_IN = '''// Stand-in for the sqlite-runs package: loads RUNS_EXTENSION.
module.exports = { load: (db) => db.loadExtension(process.env.RUNS_EXTENSION) };
'''


def recipe(tool):
    """The files and commands of the tool's section of docs/migrations.md."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    section = re.search(rf"^### {re.escape(tool)}\n(.*?)(?=^##)", text, re.S | re.M)
    if not section:
        raise AssertionError(f"docs/migrations.md has no section ### {tool}")
    files, commands = {}, []
    for marker, body in re.findall(r"^<!-- (file: \S+|run: sh) -->\n```\w*\n(.*?)^```$", section.group(1),
                                   re.S | re.M):
        if marker.startswith("file: "):
            files[marker[len("file: "):]] = body
        else:
            commands.append(body)
    if not commands:
        raise AssertionError(f"### {tool}: no <!-- run: sh --> block")
    return files, commands


def dump(path, ignore=()):
    """Schema and rows of every table but the ignored ones."""
    conn = sqlite3.connect(path)
    try:
        out = list(conn.execute("SELECT type, name, sql FROM sqlite_schema "
                                "WHERE tbl_name NOT IN (%s) ORDER BY name" % ",".join("?" * len(ignore)),
                                ignore))
        for (table,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name"):
            if table not in ignore:
                out.append((table, sorted(conn.execute(f'SELECT * FROM "{table}"'), key=repr)))
        return out
    finally:
        conn.close()


def with_extension(path):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.enable_load_extension(True)
    conn.load_extension(EXTENSION)
    conn.enable_load_extension(False)
    return conn


class MigrationToolTest:
    tool = None           # the section's title
    bookkeeping = ()      # the tool's own tables in the database (rows not compared on refusal)
    empty_bookkeeping = ()  # of those, the ones that must hold no row after a refusal
    refusal = None        # a regular expression the tool's output matches on refusal
    refusal_code = 1      # the tool's exit status on refusal
    needs = ()            # programs the tool needs, checked before it runs

    def setUp(self):
        for program in self.needs:
            if shutil.which(program, path=self.path()) is None:
                self.skipTest(f"{program} not found (see .ci/packages/packages.txt, npm install --prefix tests/node)")
        self.tmp = tempfile.mkdtemp(prefix=f"runs-{self.tool.lower()}-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    @staticmethod
    def path():
        # Debian's python3 first: the recipes' python3 must load extensions.
        return os.pathsep.join([NODE_BIN, "/usr/bin", os.environ.get("PATH", "")])

    def project(self, name):
        """A folder with the recipe's files and the stand-ins."""
        folder = os.path.join(self.tmp, name)
        files, self.commands = recipe(self.tool)
        for relative, body in files.items():
            target = os.path.join(folder, relative)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8") as f:
                f.write(body)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "sqlite_runs.py"), "w", encoding="utf-8") as f:
            f.write(PYTHON_STAND_IN)
        modules = os.path.join(folder, "node_modules")
        os.makedirs(os.path.join(modules, "sqlite-runs"))
        with open(os.path.join(modules, "sqlite-runs", "index.js"), "w", encoding="utf-8") as f:
            f.write(NODE_STAND_IN)
        with open(os.path.join(folder, "package.json"), "w", encoding="utf-8") as f:
            f.write('{"name": "tool-test", "private": true}\n')
        for package in ("knex",):  # the tool itself, from tests/node
            source = os.path.join(REPO, "tests", "node", "node_modules", package)
            if os.path.isdir(source):
                os.symlink(source, os.path.join(modules, package))
                os.makedirs(os.path.join(modules, ".bin"), exist_ok=True)
                os.symlink(os.path.join(source, "bin", "cli.js"), os.path.join(modules, ".bin", package))
        return folder

    def run_tool(self, folder, again=False, **extra):
        """The recipe's commands; again: its last one only (the tool, run again)."""
        env = dict(os.environ, RUNS_SQL=SQL_DIR, RUNS_PG_SQL=PG_SQL_DIR, RUNS_EXTENSION=EXTENSION,
                   PATH=self.path(), PYTHONPATH=folder, PYTHONDONTWRITEBYTECODE="1", npm_config_offline="true",
                   **extra)
        env.pop("DATABASE_URL", None)
        outputs, code = [], 0
        for command in self.commands[-1:] if again else self.commands:
            result = subprocess.run(["sh", "-e", "-c", command], cwd=folder, env=env, capture_output=True,
                                    text=True, timeout=300)
            outputs.append(result.stdout + result.stderr)
            code = result.returncode
            if code != 0:
                break
        return code, "".join(outputs)

    def test_applies_the_schema_and_refuses_cleanly(self):
        folder = self.project("app")
        code, output = self.run_tool(folder)
        self.assertEqual(code, 0, output)
        db = os.path.join(folder, "app.db")
        applied = dump(db)
        conn = with_extension(db)
        self.assertEqual(conn.execute("SELECT runs_migrate()").fetchone(), (LATEST,))
        self.assertEqual(conn.execute("SELECT group_concat(version) FROM runs_schema_migrations").fetchone(),
                         (",".join(str(v) for v in range(1, LATEST + 1)),))
        conn.close()
        self.assertEqual(dump(db), applied, "runs_migrate() changed the database")
        code, output = self.run_tool(folder, again=True)
        self.assertEqual(code, 0, output)
        self.assertEqual(dump(db), applied, "running the tool again changed the database")
        conn = with_extension(db)
        self.assertEqual(conn.execute("SELECT start_run('full')").fetchone(), (1,))
        self.assertEqual(conn.execute("SELECT active_run()").fetchone(), (1,))
        conn.close()

        # A refused migration: runs lacks columns the library needs.
        folder = self.project("refused")
        db = os.path.join(folder, "app.db")
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, scope TEXT NOT NULL)")
        conn.execute("INSERT INTO runs (scope) VALUES ('full')")
        conn.commit()
        conn.close()
        before = dump(db)
        code, output = self.run_tool(folder)
        self.assertEqual(code, self.refusal_code, output)
        self.assertRegex(output, self.refusal)
        self.assertEqual(dump(db, self.bookkeeping), before)
        conn = sqlite3.connect(db)
        for table in self.empty_bookkeeping:
            exists = conn.execute("SELECT count(*) FROM sqlite_schema WHERE name = ?", (table,)).fetchone()[0]
            if exists:
                self.assertEqual(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone(), (0,), table)
        conn.close()


class Dbmate(MigrationToolTest, unittest.TestCase):
    tool = "dbmate"
    needs = ("dbmate",)
    bookkeeping = ("schema_migrations",)
    empty_bookkeeping = ("schema_migrations",)
    # The guard rolled back dbmate's transaction; dbmate reports its failed ROLLBACK.
    refusal = r"Error: cannot rollback - no transaction is active"
    refusal_code = 2


class Alembic(MigrationToolTest, unittest.TestCase):
    tool = "Alembic"
    needs = ("python3",)
    bookkeeping = ("alembic_version",)
    empty_bookkeeping = ("alembic_version",)
    refusal = (r"sqlalchemy\.exc\.OperationalError: \(sqlite3\.OperationalError\) runs_migrate\(\): migration "
               r"001_create_runs failed: " + re.escape(GUARD + " (this rolled back the caller's transaction)"))


class Django(MigrationToolTest, unittest.TestCase):
    tool = "Django"
    needs = ("python3",)
    bookkeeping = ("django_migrations", "sqlite_sequence")
    empty_bookkeeping = ("django_migrations",)
    refusal = (r"django\.db\.utils\.OperationalError: runs_migrate\(\): migration 001_create_runs failed: "
               + re.escape(GUARD + " (this rolled back the caller's transaction)"))


class Knex(MigrationToolTest, unittest.TestCase):
    tool = "knex"
    needs = ("npx",)
    bookkeeping = ("knex_migrations", "knex_migrations_lock", "sqlite_sequence")
    empty_bookkeeping = ("knex_migrations",)
    refusal = (r"migration failed with error: SELECT runs_migrate\(\) - runs_migrate\(\): migration "
               r"001_create_runs failed: " + re.escape(GUARD))


class Sqitch(MigrationToolTest, unittest.TestCase):
    tool = "sqitch"
    needs = ("sqitch", "sqlite3")
    refusal = r"runs_001_create_runs \.+ not ok(.|\n)*" + re.escape(GUARD) + r"(.|\n)*Deploy failed"
    refusal_code = 2


class SqitchPostgres(MigrationToolTest, unittest.TestCase):
    tool = "sqitch on PostgreSQL"
    needs = ("sqitch", "psql")

    def setUp(self):
        super().setUp()
        if subprocess.run(["perl", "-MDBD::Pg", "-e", "1"], capture_output=True).returncode != 0:
            self.skipTest("perl's DBD::Pg is missing (Debian: libdbd-pg-perl)")
        sys.path.insert(0, os.path.join(REPO, "tests", "postgres"))
        from pg_server import PgServer
        self.pg = PgServer()
        self.pg.start()
        self.addCleanup(self.pg.stop)
        admin = self.pg.connect()
        admin.autocommit = True
        admin.cursor().execute("CREATE DATABASE app")
        admin.cursor().execute("CREATE DATABASE refused")
        admin.close()

    def target(self, dbname):
        return f"db:pg://postgres@127.0.0.1:{self.pg.port}/{dbname}"

    def pg_dump(self, dbname):
        out = subprocess.run([os.path.join(self.pg.bin, "pg_dump"), "-h", "127.0.0.1", "-p", str(self.pg.port),
                              "-U", "postgres", "-N", "sqitch", dbname], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        # Recent pg_dump guards its output with a random \restrict key.
        return "".join(line for line in out.stdout.splitlines(True) if not line.startswith(("\\restrict", "\\unrestrict")))

    def query(self, dbname, sql):
        conn = self.pg.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                rows = cur.fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()

    def test_applies_the_schema_and_refuses_cleanly(self):
        folder = self.project("app")
        code, output = self.run_tool(folder, TARGET=self.target("app"))
        self.assertEqual(code, 0, output)
        versions = len(glob.glob(os.path.join(PG_SQL_DIR, "[0-9][0-9][0-9]_*.sql")))
        self.assertEqual(self.query("app", "SELECT version FROM runs_schema_migrations ORDER BY 1"),
                         [(v,) for v in range(1, versions + 1)])
        applied = self.pg_dump("app")
        code, output = self.run_tool(folder, again=True, TARGET=self.target("app"))
        self.assertEqual(code, 0, output)
        self.assertIn("Nothing to deploy (up-to-date)", output)
        self.assertEqual(self.pg_dump("app"), applied, "running the tool again changed the database")
        self.assertEqual(self.query("app", "SELECT start_run('full')"), [(1,)])

        folder = self.project("refused")
        self.query("refused", "CREATE TABLE runs (id bigint PRIMARY KEY, scope text); SELECT 1")
        before = self.pg_dump("refused")
        code, output = self.run_tool(folder, TARGET=self.target("refused"))
        self.assertEqual(code, 2, output)
        self.assertRegex(output, r"runs_001_create_runs \.+ not ok(.|\n)*migration 001 refused: a table runs exists "
                                 r"already(.|\n)*Deploy failed")
        self.assertEqual(self.pg_dump("refused"), before)
        self.assertEqual(self.query("refused", "SELECT count(*) FROM sqitch.changes"), [(0,)])


if __name__ == "__main__":
    if not EXTENSION or not os.path.isfile(EXTENSION):
        raise SystemExit(f"RUNS_EXTENSION={EXTENSION!r}: set it to the built runs.so")
    postgres = "--postgres" in sys.argv
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for case in (SqitchPostgres,) if postgres else (Dbmate, Alembic, Django, Knex, Sqitch):
        suite.addTests(loader.loadTestsFromTestCase(case))
    program = unittest.main(verbosity=2, exit=False, argv=sys.argv[:1], defaultTest="suite")
    result = program.result
    if not result.wasSuccessful():
        raise SystemExit(1)
    if result.skipped:  # ctest shows the test as skipped (SKIP_RETURN_CODE 77), with the reasons above
        for case, reason in result.skipped:
            print(f"skipped: {case.id()}: {reason}")
        raise SystemExit(77)
