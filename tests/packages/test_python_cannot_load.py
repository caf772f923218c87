"""sqlite_runs.load() on a Python whose sqlite3 module cannot load extensions
(built without --enable-loadable-sqlite-extensions, as pyenv builds by
default): an ExtensionLoadingUnsupported (an sqlite3.NotSupportedError) that
says so and what to do, never an AttributeError.

Run by Debian's python3; the Python under test is the first python3 on PATH
that is not /usr/bin's (the pyenv one here), importing the package from
bindings/python (load() refuses before it needs runs.so). Exits 77 (skipped,
with the reason) when there is no such Python, or when it can load extensions.
"""
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKIP = 77

PROBE = """
import sqlite3, sqlite_runs
if hasattr(sqlite3.Connection, 'enable_load_extension'):
    print('can load')
else:
    try:
        sqlite_runs.load(sqlite3.connect(':memory:'))
    except sqlite3.NotSupportedError as e:
        print(type(e).__name__ + ': ' + str(e))
"""


def main():
    candidates = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    python = None
    for directory in candidates:
        found = shutil.which("python3", path=directory)
        if found and not os.path.realpath(found).startswith("/usr/bin/"):
            python = found
            break
    if python is None:
        print("skipped: no python3 on PATH other than /usr/bin's, so no Python that cannot load extensions")
        return SKIP
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "bindings", "python"))
    out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f"FAILED: {python}: {out.stdout}{out.stderr}")
        return 1
    if out.stdout == "can load\n":
        print(f"skipped: {python} can load extensions")
        return SKIP
    real = subprocess.run([python, "-c", "import sys; print(sys.executable)"], capture_output=True,
                          text=True).stdout.strip()
    expected = (
        "ExtensionLoadingUnsupported: sqlite_runs.load(): this Python's sqlite3 module cannot load "
        f"extensions ({real} was built without --enable-loadable-sqlite-extensions): use a Python "
        "built with it (Debian's and Ubuntu's /usr/bin/python3; pyenv: "
        "PYTHON_CONFIGURE_OPTS=--enable-loadable-sqlite-extensions pyenv install VERSION), or an apsw "
        "connection\n")
    if out.stdout != expected:
        print(f"FAILED: {python}\nexpected: {expected}got:      {out.stdout}")
        return 1
    print(f"ok: {python}: {out.stdout}", end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
