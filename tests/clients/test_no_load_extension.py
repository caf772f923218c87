"""A Python whose sqlite3 module cannot load extensions, as docs/clients.md
("Pythons that cannot load extensions") describes it.

Finds the first python3 on PATH without enable_load_extension (pyenv's build,
here), and checks with it: the docs' way to tell prints False (True for
Debian's /usr/bin/python3), enable_load_extension is missing indeed, and the
docs' ctypes example prints what the docs say. apsw is checked with it where
it is installed for it. Exits 77 (skipped, with the reason) when no python3
on PATH lacks enable_load_extension.

    RUNS_EXTENSION=build/runs.so /usr/bin/python3 tests/clients/test_no_load_extension.py
"""

import os
import re
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_doc_snippets as snippets  # noqa: E402

SECTION = "## Pythons that cannot load extensions"
DEBIAN_PYTHON = "/usr/bin/python3"


def run(argv, **kwargs):
    return subprocess.run(argv, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=120, **kwargs)


def section():
    with open(os.path.join(snippets.ROOT, "docs", "clients.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return text[start:end]


def python_without_load_extension():
    probe = "import sqlite3; print(hasattr(sqlite3.Connection, 'enable_load_extension'))"
    seen = set()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(folder, "python3")
        if not os.access(candidate, os.X_OK) or os.path.realpath(candidate) in seen:
            continue
        seen.add(os.path.realpath(candidate))
        proc = run([candidate, "-c", probe])
        if proc.returncode == 0 and proc.stdout.strip() == "False":
            return candidate
    return None


def main():
    extension = os.environ.get("RUNS_EXTENSION", "")
    if not os.path.isfile(extension):
        sys.exit(f"RUNS_EXTENSION={extension!r}: set it to the path of the built runs.so")
    python = python_without_load_extension()
    if python is None:
        print("skipped: every python3 on PATH can load extensions; nothing to check")
        sys.exit(77)
    version = run([python, "-c", "import sys; print(sys.version.split()[0])"]).stdout.strip()
    print(f"checking with {python} (Python {version})")
    failures = []

    def check(what, ok, detail=""):
        print(("ok - " if ok else "not ok - ") + what + ("" if ok else f": {detail}"))
        if not ok:
            failures.append(what)

    text = section()
    (tell,) = re.findall(r"^python3 -c .*$", text, re.M)
    argv = shlex.split(tell)
    for interpreter, expected in ((python, "False"), (DEBIAN_PYTHON, "True")):
        got = run([interpreter] + argv[1:]).stdout.strip()
        check(f"the docs' test prints {expected} with {interpreter}", got == expected, got)
    proc = run([python, "-c", "import sqlite3; sqlite3.connect(':memory:').enable_load_extension(True)"])
    check("enable_load_extension(True) raises AttributeError",
          "AttributeError" in proc.stdout and proc.returncode != 0, proc.stdout)

    examples = [(name, code, out) for name, lang, code, out in snippets.snippets()
                if lang == "python" and name.startswith("docs/clients.md")
                and "sqlite3_auto_extension" in code]
    check("docs/clients.md has the ctypes example", len(examples) == 1, examples)
    load = os.path.abspath(extension)
    load = load[:-3] if load.endswith(".so") else load
    for name, code, expected in examples:
        for interpreter in (python, DEBIAN_PYTHON):
            with tempfile.TemporaryDirectory(prefix="sqlite-runs-no-load-") as tmp:
                path = os.path.join(tmp, "example.py")
                with open(path, "w", encoding="utf-8") as f:
                    f.write(code.replace("build/runs", load).replace("app.db", os.path.join(tmp, "app.db")))
                proc = run([interpreter, path], cwd=tmp)
            actual = snippets.docs.comparable(proc.stdout, expected)
            check(f"{name} with {interpreter}", proc.returncode == 0 and actual == expected,
                  proc.stdout)

    if run([python, "-c", "import apsw"]).returncode == 0:
        proc = run([python, os.path.join(HERE, "client_apsw.py"), extension])
        check(f"apsw with {python}", proc.returncode == 0, proc.stdout)
    else:
        print(f"apsw is not installed for {python}: its way is checked with Debian's "
              "python3 (client.apsw)")
    print(f"{len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
