"""docs/examples/run_manager.py, the program of docs/adopting.md, run as
separate processes on a GenGlossary-shaped database (its own runs table, with
two active runs left by the race and a run stuck since a crash):

- the application's old check-then-insert start, with every process paused
  between its check and its insert, lets all of them start a run;
- the migrated application, N processes racing to start: exactly one starts,
  each other one answers 409 naming that run, while the winner holds it;
- the winner killed with SIGKILL: the next start reclaims its run at once.

Also: every ```python block of docs/adopting.md not followed by a ```text block
is an excerpt of the program, word for word.

    RUNS_EXTENSION=build/runs.so /usr/bin/python3 tests/python/test_adopting_example.py
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import unittest

from guide_excerpts import check_excerpts

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))

from example_case import ROOT, ExampleCase  # noqa: E402
from example_case import check_extension as setUpModule  # noqa: E402,F401

PROGRAM = os.path.join(ROOT, "docs", "examples", "run_manager.py")
GUIDE = os.path.join(ROOT, "docs", "adopting.md")
RACERS = 6

# GenGlossary's runs table, as its own migrations created it.
LEGACY_SCHEMA = """
CREATE TABLE runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
  started_at TEXT, finished_at TEXT, triggered_by TEXT NOT NULL DEFAULT 'api', error_message TEXT,
  progress_current INTEGER DEFAULT 0, progress_total INTEGER DEFAULT 0, current_step TEXT,
  created_at TEXT NOT NULL)
"""

# The old start: check, then insert in a second transaction. Each process
# says it has checked, then waits for a line before it inserts.
NAIVE_START = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=5.0, isolation_level=None)
active = db.execute("SELECT id FROM runs WHERE status IN ('pending', 'running')").fetchone()
print("checked", flush=True)
sys.stdin.readline()
if active is None:
    db.execute("INSERT INTO runs (scope, status, created_at) VALUES ('full', 'pending', datetime('now'))")
"""


class AdoptingTest(ExampleCase):
    def setUp(self):
        super().setUp()
        legacy = sqlite3.connect(self.db, isolation_level=None)
        legacy.execute("PRAGMA journal_mode = WAL")
        legacy.execute(LEGACY_SCHEMA)
        legacy.close()

    def legacy_rows(self, *rows):
        legacy = sqlite3.connect(self.db, isolation_level=None)
        legacy.executemany("INSERT INTO runs (scope, status, created_at, started_at) VALUES (?, ?, ?, ?)", rows)
        legacy.close()

    def program(self, *args):
        return self.spawn([sys.executable, PROGRAM, *args, self.db, *(["full"] if args == ("start",) else [])],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def show(self):
        out = subprocess.run([sys.executable, PROGRAM, "show", self.db], env=self.env, text=True,
                             capture_output=True, timeout=60, check=True).stdout
        return out.splitlines()

    def test_the_old_check_then_insert_starts_a_run_in_every_process(self):
        racers = [subprocess.Popen([sys.executable, "-c", NAIVE_START, self.db], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True) for _ in range(RACERS)]
        for p in racers:  # every process has checked: none saw an active run
            self.assertEqual(p.stdout.readline(), "checked\n")
        for p in racers:
            p.communicate("go\n", timeout=60)
            self.assertEqual(p.returncode, 0)
        db = sqlite3.connect(self.db)
        self.assertEqual(db.execute("SELECT count(*) FROM runs WHERE status = 'pending'").fetchone()[0], RACERS)
        db.close()

    def test_racers_one_wins_and_a_killed_winner_is_reclaimed(self):
        # What the race and a crash left: two active runs, the newer one stuck.
        self.legacy_rows(("full", "completed", "2026-01-01 09:00:00", "2026-01-01 09:00:01"),
                         ("full", "running", "2026-01-02 09:00:00", "2026-01-02 09:00:01"),
                         ("full", "running", "2026-01-02 09:00:00", "2026-01-02 09:00:02"))
        racers = [self.program("start") for _ in range(RACERS)]
        answers = [p.stdout.readline() for p in racers]  # each has tried; the winner holds its run
        winners = [p for p, a in zip(racers, answers) if a.startswith("started ")]
        self.assertEqual(len(winners), 1, answers)
        self.assertEqual(answers.count("started 4\n"), 1, answers)
        for answer in answers:
            if answer != "started 4\n":
                status, body = answer.split(" ", 1)
                body = json.loads(body)
                # The winner marks its run running after it started it.
                self.assertIn(body["status"], ("pending", "running"), answer)
                self.assertEqual((status, body["run_id"], body["error"]),
                                 ("409", 4, "run 4 is already active"), answer)
        self.assertEqual(self.show(), [
            "1|completed|",
            "2|failed|abandoned: run 3 was active for the same key at the same time; migration 002 kept"
            " the newest active run and failed this one",
            "3|failed|abandoned: no owner recorded, and running since 2026-01-02 09:00:02, more than 3600"
            " seconds ago",
            "4|running|"])
        winner = winners[0]
        winner.send_signal(signal.SIGKILL)
        winner.wait(timeout=30)
        after = self.program("start")
        self.assertEqual(after.stdout.readline(), "started 5\n")
        out, _ = after.communicate("one step\n", timeout=60)
        self.assertEqual((after.returncode, out), (0, "updated\n"))
        rows = self.show()
        self.assertRegex(rows[3], rf"^4\|failed\|abandoned: owner process {winner.pid} on .+ is gone$")
        self.assertEqual(rows[4], "5|completed|")


class GuideExcerptsTest(unittest.TestCase):
    def test_the_guides_code_is_the_programs(self):
        check_excerpts(self, "docs/adopting.md", "docs/examples/run_manager.py", at_least=3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
