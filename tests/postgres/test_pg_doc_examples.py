"""The PostgreSQL examples of the docs print exactly what they say they print.

The counterpart of tests/python/test_doc_examples.py for PostgreSQL: every
```psql block in README.md and docs/**/*.md must be followed (blank lines
aside) by a ```text block. The psql block runs through

    psql -X -q -A -t -v VERBOSITY=terse -f -

(unaligned, tuples only, errors without CONTEXT) in a fresh schema with
sql/postgres/ applied, on a server started for this run, with stderr merged
into stdout; the output must equal the text block. Where the text block
writes TIME, every timestamp printed (2026-11-29T09:21:18.123Z) reads TIME.

    /usr/bin/python3 tests/postgres/test_pg_doc_examples.py
"""

import difflib
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pg_server import ROOT, PgServer, create_schema  # noqa: E402

FENCE = re.compile(r"^```(\S*)\s*$")
TIMESTAMP = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\b")
SERVER = None


def markdown_files():
    found = [os.path.join(ROOT, "README.md")]
    for folder, _, names in os.walk(os.path.join(ROOT, "docs")):
        found.extend(os.path.join(folder, n) for n in names if n.endswith(".md"))
    return sorted(found)


def examples():
    """(name, psql, expected) of each example; names of psql blocks without output."""
    found, lonely = [], []
    for path in markdown_files():
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        blocks, i = [], 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                i += 1
                continue
            start, body = i, []
            i += 1
            while i < len(lines) and lines[i].rstrip() != "```":
                body.append(lines[i] + "\n")
                i += 1
            blocks.append((m.group(1), start, i, "".join(body)))
            i += 1
        rel = os.path.relpath(path, ROOT)
        for k, (lang, start, end, body) in enumerate(blocks):
            if lang != "psql":
                continue
            nxt = blocks[k + 1] if k + 1 < len(blocks) else None
            if nxt and nxt[0] == "text" and all(not l.strip() for l in lines[end + 1:nxt[1]]):
                found.append((f"{rel}:{start + 1}", body, nxt[3]))
            else:
                lonely.append(f"{rel}:{start + 1}")
    return found, lonely


def setUpModule():
    global SERVER
    SERVER = PgServer().start()


def tearDownModule():
    if SERVER is not None:
        SERVER.stop()


class PgDocExamplesTest(unittest.TestCase):
    def test_docs_have_psql_examples(self):
        found, lonely = examples()
        self.assertGreater(len(found), 0, "no ```psql examples in the docs")
        self.assertEqual(lonely, [], "each ```psql block must be followed by a ```text block")

    def test_examples_print_what_the_docs_say(self):
        found, _ = examples()
        for index, (name, script, expected) in enumerate(found):
            with self.subTest(example=name):
                schema = create_schema(SERVER, f"doc{index}")
                env = dict(os.environ, PGOPTIONS=f"-c search_path={schema}")
                proc = subprocess.run(
                    [os.path.join(SERVER.bin, "psql"), "-X", "-q", "-A", "-t", "-v", "VERBOSITY=terse",
                     "-h", "127.0.0.1", "-p", str(SERVER.port), "-U", "postgres", "-d", "postgres",
                     "-f", "-"],
                    input=script, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    env=env, cwd=ROOT, timeout=120)
                actual = proc.stdout
                if "TIME" in expected:
                    actual = TIMESTAMP.sub("TIME", actual)
                if actual != expected:
                    diff = "".join(difflib.unified_diff(
                        expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                        fromfile=f"{name} (docs)", tofile=f"{name} (psql)"))
                    self.fail(f"{name}: the example's output differs from the docs:\n{diff}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
