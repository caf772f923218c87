"""docs/examples/cron_job.sh, the shell-script recipe of docs/integration.md:
a script that calls the sqlite3 shell once per step owns its run for its whole
life (runs_owner_pid($$)), a second script racing it is told the key is held,
and once the first is killed with SIGKILL half-way, the next script reclaims
its run at once (no lease). The naive pattern, start_run() in one sqlite3 call
and the work after it, loses its run to the next start as soon as that call
has returned. Also: the guide's ```sh block is the script, word for word.

    RUNS_EXTENSION=build/runs.so /usr/bin/python3 tests/python/test_cron_job.py
"""

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))

from example_case import ROOT, ExampleCase  # noqa: E402
from example_case import check_extension as setUpModule  # noqa: E402,F401

SCRIPT = os.path.join(ROOT, "docs", "examples", "cron_job.sh")
GUIDE = os.path.join(ROOT, "docs", "integration.md")
SQLITE3 = shutil.which("sqlite3") or "sqlite3"

# The step command of the first script: at step 2 it says so on the fifo $0,
# then blocks reading $0.go, which nobody writes: the script is killed there.
HALFWAY = 'if [ "$1" = 2 ]; then echo halfway > "$0"; read line < "$0.go"; fi'


class CronJobTest(ExampleCase):
    def setUp(self):
        super().setUp()
        # The script's sqlite3 shell loads the path as a user types it, without .so.
        self.env["SQLITE_RUNS_EXTENSION"] = self.ext[:-3] if self.ext.endswith(".so") else self.ext
        conn = self.connect()
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("SELECT runs_migrate()")
        conn.close()

    def connect(self):
        conn = sqlite3.connect(self.db, timeout=5.0, isolation_level=None)
        conn.enable_load_extension(True)
        conn.load_extension(self.ext)
        return conn

    def query(self, sql, *params):
        conn = self.connect()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def shell(self, sql):
        """One sqlite3 process, as a script calls it."""
        proc = subprocess.run([SQLITE3, "-batch", self.db, f".load {self.ext}", ".timeout 5000", sql],
                              capture_output=True, text=True, timeout=60)
        return proc.stdout.strip() or proc.stderr.strip()

    def cron_job(self, *command, **popen):
        return self.spawn(["sh", SCRIPT, self.db, "3", *command], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, **popen)

    def test_the_guide_shows_the_script(self):
        with open(GUIDE, encoding="utf-8") as f:
            blocks = re.findall(r"^```sh\n(.*?)^```$", f.read(), re.S | re.M)
        with open(SCRIPT, encoding="utf-8") as f:
            self.assertIn(f.read(), blocks)

    def test_naive_calls_lose_the_run_between_them(self):
        # start_run() in one sqlite3 process: its owner exits with it, and the
        # next start reclaims the run while the script would still work on it.
        self.assertEqual(self.shell("SELECT start_run('nightly', 'cron', 'nightly')"), "1")
        self.assertEqual(self.shell("SELECT start_run('nightly', 'cron', 'nightly')"), "2")
        self.assertRegex(self.query("SELECT error_message FROM runs WHERE id = 1")[0][0],
                         r"^abandoned: owner process \d+ on .+ is gone$")

    def test_the_script_holds_its_run_and_loses_it_at_once_when_killed(self):
        fifo = os.path.join(self.tmp, "halfway")
        os.mkfifo(fifo)
        os.mkfifo(fifo + ".go")
        first = self.cron_job("sh", "-c", HALFWAY, fifo, start_new_session=True)
        self.addCleanup(lambda: first.poll() is not None or os.killpg(first.pid, signal.SIGKILL))
        with open(fifo, encoding="utf-8") as f:  # blocks until step 2 has begun
            self.assertEqual(f.read(), "halfway\n")
        # Half-way: no sqlite3 of the first script runs now; its run holds.
        self.assertEqual(self.query("SELECT id, status, progress_current, progress_total, owner_pid"
                                    " FROM runs"), [(1, "running", 1, 3, first.pid)])
        second = self.cron_job("true")
        out, _ = second.communicate(timeout=60)
        self.assertEqual(second.returncode, 0, out)
        self.assertRegex(out, r'^cron_job: another run holds the key: \{"started":false,"id":1,'
                              r'"scope":"nightly","status":"running","since":"[^"]+"\}\n$')
        self.assertEqual(self.query("SELECT id, status FROM runs"), [(1, "running")])
        # SIGKILL to the script and its step: no trap, no cleanup.
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
        first.stdout.close()
        third = self.cron_job("true")
        out, _ = third.communicate(timeout=60)
        self.assertEqual((third.returncode, out), (0, "cron_job: run 2 updated\n"))
        rows = self.query("SELECT id, status, error_message FROM runs ORDER BY id")
        self.assertEqual([r[:2] for r in rows], [(1, "failed"), (2, "completed")])
        self.assertRegex(rows[0][2], rf"^abandoned: owner process {first.pid} on .+ is gone$")
        self.assertIsNone(rows[1][2])


if __name__ == "__main__":
    unittest.main(verbosity=2)
