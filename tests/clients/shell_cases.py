"""The shared client cases (tests/clients/cases.json) in the sqlite3 shell.

Writes the steps as one script (parameters as SQL literals), pipes it into
`sqlite3 -batch` and compares what the shell prints, errors included, with what
the cases expect: a value per line (NULL as the .nullvalue below), an error as
`Runtime error near line N: MESSAGE (PRIMARY CODE)`.

    SQLITE3=sqlite3 RUNS_EXTENSION=build/runs.so /usr/bin/python3 tests/clients/shell_cases.py
"""

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
EXTENSION = os.environ.get("RUNS_EXTENSION", "")
SQLITE3 = os.environ.get("SQLITE3") or shutil.which("sqlite3") or "sqlite3"
NULL = "(null)"
TIMESTAMP = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\b")


def literal(value):
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def with_literals(sql, args):
    pieces = sql.split("?")
    if len(pieces) != len(args) + 1:
        raise ValueError(f"{sql!r} has {len(pieces) - 1} parameters, the case gives {len(args)}")
    out = pieces[0]
    for arg, piece in zip(args, pieces[1:]):
        out += literal(arg) + piece
    return out


def shown(value):
    return NULL if value is None else str(value)


def main():
    if not EXTENSION or not os.path.isfile(EXTENSION):
        sys.exit(f"RUNS_EXTENSION={EXTENSION!r}: set it to the path of the built runs.so")
    with open(os.path.join(HERE, "cases.json"), encoding="utf-8") as f:
        steps = json.load(f)["steps"]
    load = EXTENSION[:-3] if EXTENSION.endswith(".so") else EXTENSION
    script = [f".load '{load}'", f".nullvalue {NULL}"]
    expected = []
    for step in steps:
        script.append(with_literals(step["sql"], step.get("args", [])) + ";")
        if "error" in step:
            error = step["error"]
            primary = error["code"] & 0xFF
            code = "" if primary == 1 else f" ({primary})"
            expected.append(f"Runtime error near line {len(script)}: {error['message']}{code}")
        else:
            expected.append(shown(step["result"]))
    with tempfile.TemporaryDirectory(prefix="sqlite-runs-shell-") as tmp:
        proc = subprocess.run(
            [SQLITE3, "-init", os.devnull, "-batch", os.path.join(tmp, "app.db")],
            input="\n".join(script) + "\n", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=60)
    actual = TIMESTAMP.sub("TIME", proc.stdout).splitlines()
    if actual != expected:
        diff = "\n".join(difflib.unified_diff(expected, actual, "cases.json", "sqlite3 -batch",
                                              lineterm=""))
        print("the shell's output differs from tests/clients/cases.json:\n" + diff)
        print(f"0 passed, {len(steps)} failed")
        sys.exit(1)
    # The shell exits with 1 after a script with errors: that is its way to report them.
    status = 1 if any("error" in step for step in steps) else 0
    if proc.returncode != status:
        print(f"sqlite3 exited with {proc.returncode}, expected {status}")
        sys.exit(1)
    for number, line in enumerate(script[2:], start=1):
        print(f"ok {number} - {line}")
    print(f"{len(steps)} passed, 0 failed")


if __name__ == "__main__":
    main()
