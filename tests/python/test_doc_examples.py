"""The examples of README.md and docs/**/*.md print exactly what they say they print.

Every ```sql block that is followed (blank lines aside) by a ```text block is an
example: the sql is piped into `sqlite3 -batch` from the repository's root, with
stderr merged into stdout as `2>&1` would, and the output must equal the text
block byte for byte. One subTest per example, named by file and line.

Run with RUNS_EXTENSION set to the built runs.so (ctest sets it):

    RUNS_EXTENSION=build/runs.so /usr/bin/python3 tests/python/test_doc_examples.py

What the test changes in an example before running it:
- `.load build/runs`, as the docs write it, loads RUNS_EXTENSION instead (its
  path without the .so suffix, as a user would type it);
- files the docs name /tmp/sqlite-runs-docs-NAME live in a temporary folder of
  this run instead, one folder per example, so that tests running in parallel,
  or two checkouts, never share a database file. Any other /tmp path in an
  example is an error: name it /tmp/sqlite-runs-docs-NAME.
And in what it prints:
- where the expected output writes the word TIME, every timestamp the example
  prints (2026-11-29T09:21:18.123Z) reads TIME; elsewhere timestamps are
  compared as they are;
- where the expected output writes the word PID, what identifies the owning
  process, which differs per machine and per run, reads as a name: in the JSON
  of run_info(), the values of "boot_id", "pid_namespace", "pid" and
  "start_time" and "time_namespace" read "BOOT_ID", PID_NS, PID, START_TIME
  and TIME_NS, and "host" reads
  "HOST" when it is this machine's host name; in messages, "owner process 1234
  on <this machine's host name>" reads "owner process PID on HOST" (another
  host name, such as one an example writes into owner_host, stays as it is,
  after "owner process PID on").
- the word SCHEMA_VERSION in the expected output stands for the library's latest
  schema version (what runs_migrate() returns): the highest NNN of the
  sql/NNN_*.sql files, so that a new migration changes no example;
- likewise COMMIT, BUILD_TYPE and SQLITE_VERSION stand for the values of
  runs_debug()'s JSON keys "commit", "build_type" and "sqlite_version", which
  differ between builds and hosts (tests/python/test_runs_debug.py checks
  those values exactly).
The words are matched whole: START_TIME alone does not turn on TIME, PID_NS
alone does not turn on PID.
SQLITE3 (default: sqlite3 on PATH) chooses the shell.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))

import markdown_examples  # noqa: E402
from markdown_examples import (DOCS, ROOT, TIMESTAMP, fenced_blocks,  # noqa: E402,F401  (test_doc_snippets)
                               markdown_files)

EXTENSION = os.environ.get("RUNS_EXTENSION", "")
SQLITE3 = os.environ.get("SQLITE3") or shutil.which("sqlite3") or "sqlite3"

LOAD_LINE = re.compile(r"^\.load build/runs$", re.M)
TMP_PREFIX = "/tmp/sqlite-runs-docs-"


def examples():
    """(name, sql, expected output) of every example, and the names of sql blocks
    that have no output block after them."""
    return markdown_examples.examples("sql")


def run_example(sql, workdir):
    extension = EXTENSION[:-3] if EXTENSION.endswith(".so") else EXTENSION
    if re.search(r"\s", extension):
        extension = '"' + extension + '"'
    script = LOAD_LINE.sub(lambda _: ".load " + extension, sql)
    script = script.replace(TMP_PREFIX, os.path.join(workdir, "sqlite-runs-docs-"))
    # -init /dev/null: a ~/.sqliterc must not change what the shell prints.
    proc = subprocess.run([SQLITE3, "-init", os.devnull, "-batch"], input=script, cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=120)
    # A path that shows up in the output reads as the docs wrote it.
    return proc.stdout.replace(os.path.join(workdir, "sqlite-runs-docs-"), TMP_PREFIX)


HOST = socket.gethostname()
OWNER_JSON = [(re.compile(r'"boot_id":"[^"]*"'), '"boot_id":"BOOT_ID"'),
              (re.compile(r'"pid_namespace":\d+'), '"pid_namespace":PID_NS'),
              (re.compile(r'"pid":\d+'), '"pid":PID'),
              (re.compile(r'"start_time":\d+'), '"start_time":START_TIME'),
              (re.compile(r'"time_namespace":\d+'), '"time_namespace":TIME_NS'),
              (re.compile(r'"host":"' + re.escape(HOST) + '"'), '"host":"HOST"')]
OWNER_TEXT = re.compile(r"owner process \d+ on (\S+?)(?=[)\s\"]|$)", re.M)


def json_value(key):
    return re.compile(r'(?<="' + key + r'":")[^"]*(?=")')


# Placeholder word in the docs -> what it stands for in the output.
PLACEHOLDERS = {
    "TIME": TIMESTAMP,
    "COMMIT": json_value("commit"),
    "BUILD_TYPE": json_value("build_type"),
    "SQLITE_VERSION": json_value("sqlite_version"),
}


def latest_schema_version():
    """The highest NNN of sql/NNN_*.sql: the version runs_migrate() reaches."""
    versions = [int(name[:3]) for name in os.listdir(os.path.join(ROOT, "sql"))
                if re.fullmatch(r"\d{3}_.*\.sql", name)]
    return max(versions)


SCHEMA_VERSION = re.compile(r"\bSCHEMA_VERSION\b")


def expanded(expected):
    """expected, with the word SCHEMA_VERSION written as the version."""
    return SCHEMA_VERSION.sub(str(latest_schema_version()), expected)


def comparable(actual, expected):
    """actual, with what a placeholder stands for written as the placeholder,
    for each placeholder word that expected uses."""
    for word, pattern in PLACEHOLDERS.items():
        if re.search(r"\b" + word + r"\b", expected):
            actual = pattern.sub(word, actual)
    if re.search(r"\bPID\b", expected):
        for pattern, name in OWNER_JSON:
            actual = pattern.sub(name, actual)
        actual = OWNER_TEXT.sub(
            lambda m: "owner process PID on " + ("HOST" if m.group(1) == HOST else m.group(1)),
            actual)
    return actual


def setUpModule():
    if not EXTENSION:
        raise RuntimeError("RUNS_EXTENSION is not set: set it to the path of the built runs.so")
    if not os.path.isfile(EXTENSION):
        raise RuntimeError(f"RUNS_EXTENSION={EXTENSION!r}: no such file; build the extension first")


class DocExamplesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.examples, cls.lonely = examples()
        cls.tmp = tempfile.mkdtemp(prefix="sqlite-runs-doc-examples-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_docs_have_examples(self):
        self.assertGreater(len(self.examples), 0, f"no sql+text examples found under {DOCS}")

    def test_every_sql_block_has_its_output(self):
        self.assertEqual(self.lonely, [],
                         "each ```sql block must be followed by a ```text block with its output")

    def test_examples_print_what_the_docs_say(self):
        for index, (name, sql, expected) in enumerate(self.examples):
            with self.subTest(example=name):
                stray = sorted(set(re.findall(r"/tmp/[^\s;'\"]*", sql))
                               - set(re.findall(re.escape(TMP_PREFIX) + r"[^\s;'\"]*", sql)))
                self.assertEqual(stray, [], f"{name}: name /tmp files {TMP_PREFIX}NAME")
                workdir = os.path.join(self.tmp, str(index))
                os.mkdir(workdir)
                expected = expanded(expected)
                actual = comparable(run_example(sql, workdir), expected)
                failure = markdown_examples.difference(name, expected, actual, "sqlite3 -batch")
                if failure:
                    self.fail(failure)


if __name__ == "__main__":
    unittest.main(verbosity=2)
