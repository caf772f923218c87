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

import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "support"))

from markdown_examples import TIMESTAMP, difference, examples  # noqa: E402
from pg_server import ROOT, PgCase  # noqa: E402


class PgDocExamplesTest(PgCase):
    def test_docs_have_psql_examples(self):
        found, lonely = examples("psql")
        self.assertGreater(len(found), 0, "no ```psql examples in the docs")
        self.assertEqual(lonely, [], "each ```psql block must be followed by a ```text block")

    def test_examples_print_what_the_docs_say(self):
        found, _ = examples("psql")
        for name, script, expected in found:
            with self.subTest(example=name):
                env = dict(os.environ, PGOPTIONS=f"-c search_path={self.schema()}")
                proc = subprocess.run(
                    [os.path.join(self.server.bin, "psql"), "-X", "-q", "-A", "-t", "-v", "VERBOSITY=terse",
                     "-h", "127.0.0.1", "-p", str(self.server.port), "-U", "postgres", "-d", "postgres",
                     "-f", "-"],
                    input=script, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    env=env, cwd=ROOT, timeout=120)
                actual = proc.stdout
                if "TIME" in expected:
                    actual = TIMESTAMP.sub("TIME", actual)
                failure = difference(name, expected, actual, "psql")
                if failure:
                    self.fail(failure)


if __name__ == "__main__":
    unittest.main(verbosity=2)
