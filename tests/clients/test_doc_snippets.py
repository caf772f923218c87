"""The client examples of README.md and docs/**/*.md print what they say they print.

Every ```python, ```js, ```tcl or ```perl block that is followed (blank lines
aside) by a ```text block is an example: it runs as a program of its language
and its output (stdout and stderr) must equal the text block, with TIME for
timestamps as in tests/python/test_doc_examples.py, which runs the ```sql
examples the same way. Before running, `build/runs` in the example becomes
RUNS_EXTENSION (without .so) and `app.db` a file in a fresh folder. The
README's examples, which a newcomer runs again and again, run twice on the same
database and must print the same both times.

    RUNS_EXTENSION=build/runs.so PYTHON=/usr/bin/python3 NODE=node TCLSH=tclsh PERL=perl \\
        /usr/bin/python3 tests/clients/test_doc_snippets.py

JavaScript runs as an ES module from tests/node, so that `import ... from
'better-sqlite3'` finds tests/node/node_modules.
"""

import difflib
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
import test_doc_examples as docs  # noqa: E402  (markdown parsing and TIME)

EXTENSION = os.environ.get("RUNS_EXTENSION", "")


def command(lang, program, tmp):
    """(argv, standard input, working folder) that run program. A program file,
    not standard input, where an interpreter reading standard input would go on
    after an error (tclsh does); JavaScript from standard input, so that its
    imports resolve from the working folder, tests/node."""
    env = os.environ.get
    if lang == "js":
        return ([env("NODE") or "node", "--input-type=module"], program,
                os.path.join(ROOT, "tests", "node"))
    interpreter, suffix = {
        "python": (env("PYTHON") or "/usr/bin/python3", ".py"),
        "tcl": (env("TCLSH") or "tclsh", ".tcl"),
        "perl": (env("PERL") or "perl", ".pl"),
    }[lang]
    path = os.path.join(tmp, "example" + suffix)
    with open(path, "w", encoding="utf-8") as f:
        f.write(program)
    return [interpreter, path], "", tmp


def snippets():
    found = []
    for path in docs.markdown_files():
        rel = os.path.relpath(path, ROOT)
        blocks, lines = docs.fenced_blocks(path)
        for k, (lang, line, body, _, end) in enumerate(blocks):
            nxt = blocks[k + 1] if k + 1 < len(blocks) else None
            if (lang in ("python", "js", "tcl", "perl") and nxt is not None
                    and nxt[0] == "text" and all(not l.strip() for l in lines[end + 1:nxt[3]])):
                found.append((f"{rel}:{line}", lang, body, nxt[2]))
    return found


def setUpModule():
    if not EXTENSION or not os.path.isfile(EXTENSION):
        raise RuntimeError(f"RUNS_EXTENSION={EXTENSION!r}: set it to the path of the built runs.so")


class DocSnippetsTest(unittest.TestCase):
    def test_every_client_has_an_example(self):
        self.assertEqual(sorted({lang for _, lang, _, _ in snippets()}),
                         ["js", "perl", "python", "tcl"])

    def test_snippets_print_what_the_docs_say(self):
        extension = os.path.abspath(EXTENSION)
        extension = extension[:-3] if extension.endswith(".so") else extension
        for name, lang, code, expected in snippets():
            with self.subTest(example=name):
                times = 2 if name.startswith("README.md:") else 1
                with tempfile.TemporaryDirectory(prefix="sqlite-runs-snippet-") as tmp:
                    program = (code.replace("build/runs", extension)
                               .replace("app.db", os.path.join(tmp, "app.db")))
                    argv, stdin, cwd = command(lang, program, tmp)
                    expected = docs.expanded(expected)  # SCHEMA_VERSION
                    for run in range(1, times + 1):
                        proc = subprocess.run(argv, input=stdin, cwd=cwd, text=True,
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                              timeout=60)
                        actual = docs.comparable(proc.stdout, expected)
                        if actual != expected or proc.returncode != 0:
                            diff = "".join(difflib.unified_diff(
                                expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                                fromfile=f"{name} (docs)", tofile=f"{name} ({argv[0]}, run {run})"))
                            self.fail(f"{name}: run {run}: exit status {proc.returncode}, "
                                      f"output differs:\n{diff}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
