"""The base of the tests that run a program of docs/examples/ as separate
processes (tests/python/test_adopting_example.py, test_integration_example.py,
test_cron_job.py).

ExampleCase gives each test a temporary folder (self.tmp) with the database
path self.db in it, the built extension (self.ext, from RUNS_EXTENSION), and
the environment in which the programs find it (self.env:
SQLITE_RUNS_EXTENSION=self.ext). spawn() starts a process that is killed, if
still running, and reaped after the test. check_extension() is each test
program's setUpModule.
"""

import os
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXTENSION = os.environ.get("RUNS_EXTENSION", "")


def check_extension():
    if not EXTENSION or not os.path.isfile(EXTENSION):
        raise RuntimeError(f"RUNS_EXTENSION={EXTENSION!r}: set it to the path of the built runs.so")


def reap(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    for f in (proc.stdin, proc.stdout):
        if f and not f.closed:
            f.close()


class ExampleCase(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix=f"sqlite-runs-{type(self).__name__}-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.db = os.path.join(tmp.name, "app.db")
        self.ext = os.path.abspath(EXTENSION)
        self.env = dict(os.environ, SQLITE_RUNS_EXTENSION=self.ext)

    def spawn(self, args, **popen):
        """subprocess.Popen(args) in text mode, with self.env unless popen
        gives env; killed and reaped after the test."""
        popen.setdefault("env", self.env)
        proc = subprocess.Popen(args, text=True, **popen)
        self.addCleanup(reap, proc)
        return proc
