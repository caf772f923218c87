"""docs/examples/import_service.py, the program of docs/integration.md, works as
the guide says, run as separate processes on one database: the web process
(serve), worker processes (work), and this test as the UI, over HTTP.

Also: every ```python block of docs/integration.md is an excerpt of that
program, word for word, so the guide shows the code that this test runs.

    RUNS_EXTENSION=build/runs.so /usr/bin/python3 tests/python/test_integration_example.py
"""

import json
import os
import re
import sqlite3
import subprocess
import sys
import unittest

import urllib.error
import urllib.request

from guide_excerpts import check_excerpts

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))

from example_case import ROOT, ExampleCase  # noqa: E402
from example_case import check_extension as setUpModule  # noqa: E402,F401

PROGRAM = os.path.join(ROOT, "docs", "examples", "import_service.py")
GUIDE = os.path.join(ROOT, "docs", "integration.md")
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
ALREADY_ACTIVE = (
    "start_run(): run 1 is already active for concurrency_key 'imports' (scope 'import', "
    "status 'pending', since TIME): wait for it to finish, or end it with complete_run(), "
    "fail_run() or cancel_run()")


class ImportServiceTest(ExampleCase):
    def setUp(self):
        super().setUp()
        self.server_log = open(os.path.join(self.tmp, "server.log"), "w")
        self.addCleanup(self.server_log.close)
        self.server = self.spawn([sys.executable, PROGRAM, "serve", self.db, "0"],
                                 stdout=subprocess.PIPE, stderr=self.server_log)
        first = self.server.stdout.readline()  # blocks until the server listens
        m = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+)\n", first)
        self.assertIsNotNone(m, f"the server said {first!r}")
        self.url = m.group(1)

    def request(self, method, path, body=None):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def post(self, body):
        return self.request("POST", "/imports", body)

    def work(self, run_id):
        proc = subprocess.run([sys.executable, PROGRAM, "work", self.db, str(run_id)],
                              capture_output=True, text=True, env=self.env, timeout=60)
        self.assertEqual(proc.stderr, "")
        return proc.returncode, proc.stdout

    def sql(self, query, *args):
        conn = sqlite3.connect(self.db)  # the app's tables, read without the library
        try:
            return conn.execute(query, args).fetchall()
        finally:
            conn.close()

    def active(self):
        status, body = self.request("GET", "/imports/active")
        self.assertEqual(status, 200)
        return body["active"]

    def run_view(self, run_id):
        status, body = self.request("GET", f"/imports/{run_id}")
        self.assertEqual(status, 200)
        for key in ("created_at", "started_at", "finished_at"):
            if body[key] is not None:
                self.assertRegex(body[key], "^" + TIMESTAMP + "$")
                body[key] = "TIME"
        return body

    def test_start_refuse_work_complete(self):
        self.assertIsNone(self.active())
        self.assertEqual(self.post({"user": "alice", "readings": ["12", "7", "30"]}),
                         (202, {"run_id": 1}))
        # A second import while the first is active: HTTP 409, naming the run.
        status, body = self.post({"user": "bob", "readings": ["1"]})
        self.assertEqual(status, 409)
        self.assertEqual(body["active_run"], 1)
        self.assertEqual(re.sub(TIMESTAMP, "TIME", body["error"]), ALREADY_ACTIVE)
        self.assertEqual(self.sql("SELECT count(*) FROM runs"), [(1,)])
        # The UI sees it pending.
        active = self.active()
        self.assertEqual((active["id"], active["status"], active["triggered_by"]),
                         (1, "pending", "alice"))
        # A worker process imports it.
        self.assertEqual(self.work(1), (0, "run 1: imported 3 readings\n"))
        self.assertIsNone(self.active())
        self.assertEqual(self.run_view(1), {
            "id": 1, "status": "completed", "triggered_by": "alice", "created_at": "TIME",
            "started_at": "TIME", "finished_at": "TIME", "progress_current": 3,
            "progress_total": 3, "current_step": "30", "error_message": None})
        self.assertEqual(self.sql("SELECT run_id, value FROM readings ORDER BY rowid"),
                         [(1, 12), (1, 7), (1, 30)])
        # A second worker for the same run has nothing to do.
        self.assertEqual(self.work(1), (0, "run 1: not_in_expected_state, nothing to do\n"))
        self.assertEqual(self.work(99), (0, "run 99: not_found, nothing to do\n"))
        # Now bob may import.
        self.assertEqual(self.post({"user": "bob", "readings": ["1"]}), (202, {"run_id": 2}))

    def test_a_failing_import_fails_its_run_and_keeps_what_it_committed(self):
        self.assertEqual(self.post({"user": "alice", "readings": ["5", "x", "6"]}),
                         (202, {"run_id": 1}))
        self.assertEqual(self.work(1), (1, "run 1: failed at reading 2: invalid literal for int()"
                                           " with base 10: 'x'\n"))
        view = self.run_view(1)
        self.assertEqual((view["status"], view["progress_current"], view["progress_total"],
                          view["current_step"], view["error_message"]),
                         ("failed", 1, 3, "5",
                          "reading 2: ValueError: invalid literal for int() with base 10: 'x'"))
        self.assertEqual(self.sql("SELECT run_id, value FROM readings"), [(1, 5)])
        self.assertIsNone(self.active())
        self.assertEqual(self.post({"user": "alice", "readings": ["6"]}), (202, {"run_id": 2}))

    def test_bad_requests_start_no_run(self):
        for body in ({"user": "alice", "readings": "12"}, {"readings": ["1"]},
                     {"user": "", "readings": ["1"]}, {"user": "alice", "readings": [1]},
                     b"not json"):
            with self.subTest(body=body):
                status, answer = self.post(body)
                self.assertEqual(status, 400)
                self.assertEqual(answer, {"error": 'send {"user": "name", "readings": ["1", ...]}'})
        self.assertEqual(self.request("POST", "/elsewhere", {}), (404, {"error": "no such resource"}))
        self.assertEqual(self.request("GET", "/imports/7"), (404, {"error": "no such import"}))
        self.assertEqual(self.request("GET", "/imports/x"), (404, {"error": "no such import"}))
        self.assertEqual(self.sql("SELECT count(*) FROM runs"), [(0,)])

    def test_a_batch_that_cannot_be_stored_fails_its_run(self):
        # Stand-in for a full disk: the database refuses this batch.
        conn = sqlite3.connect(self.db)
        conn.execute("CREATE TRIGGER refuse_batch BEFORE INSERT ON import_batches"
                     " WHEN NEW.readings LIKE '%boom%' BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        conn.commit()
        conn.close()
        self.assertEqual(self.post({"user": "alice", "readings": ["boom"]}),
                         (500, {"error": "disk full", "run_id": 1}))
        view = self.run_view(1)
        self.assertEqual((view["status"], view["error_message"]),
                         ("failed", "could not store the batch: disk full"))
        # The failed run does not block the next import.
        self.assertEqual(self.post({"user": "alice", "readings": ["4"]}), (202, {"run_id": 2}))

    def test_a_run_without_a_batch_is_failed_by_its_worker(self):
        conn = sqlite3.connect(self.db)
        conn.enable_load_extension(True)
        conn.load_extension(self.ext)
        self.assertEqual(conn.execute("SELECT start_run('import', 'cron', 'imports')").fetchone(),
                         (1,))
        conn.close()
        self.assertEqual(self.work(1), (1, "run 1: no batch stored for this run\n"))
        view = self.run_view(1)
        self.assertEqual((view["status"], view["error_message"]),
                         ("failed", "no batch stored for this run"))


class GuideExcerptsTest(unittest.TestCase):
    def test_the_guides_code_is_the_programs(self):
        check_excerpts(self, "docs/integration.md", "docs/examples/import_service.py", at_least=4)


if __name__ == "__main__":
    unittest.main(verbosity=2)
