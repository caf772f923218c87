"""The shared client cases (tests/clients/cases.json) in apsw (Debian's
python3-apsw), as a Python program would use it:

    /usr/bin/python3 tests/clients/client_apsw.py build/runs.so

apsw wraps SQLite's own C API: it can load extensions whatever the Python's
sqlite3 module allows. A failing statement raises the apsw exception of the
primary result code (apsw.ConstraintError for "already active", apsw.SQLError
for SQLITE_ERROR); its .result is the primary code, .extendedresult the
extended one, and str() is "ConstraintError: " followed by SQLite's message.
"""

import json
import os
import re
import sys
import tempfile

import apsw

CLASSES = {1: apsw.SQLError, 19: apsw.ConstraintError}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: client_apsw.py EXTENSION")
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.json"),
              encoding="utf-8") as f:
        steps = json.load(f)["steps"]
    print(f"apsw {apsw.apswversion()}, SQLite {apsw.sqlitelibversion()}")
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="sqlite-runs-apsw-") as tmp:
        # The lines a program writes.
        db = apsw.Connection(os.path.join(tmp, "app.db"))
        db.enableloadextension(True)
        db.loadextension(sys.argv[1])
        db.enableloadextension(False)
        db.execute("SELECT runs_busy_timeout(5000)").fetchall()
        for number, step in enumerate(steps, start=1):
            name = f"{number}: {step['sql']}"
            try:
                rows = db.cursor().execute(step["sql"], step.get("args", [])).fetchall()
                got = ("value", rows[0][0])
            except apsw.Error as e:
                got = (type(e), e.extendedresult, TIMESTAMP.sub("TIME", str(e)))
            if "error" in step:
                error = step["error"]
                cls = CLASSES[error["code"] & 0xFF]
                want = (cls, error["code"], f"{cls.__name__}: {error['message']}")
            else:
                want = ("value", step["result"])
            if got == want:
                passed += 1
                print(f"ok - {name}")
            else:
                failed += 1
                print(f"not ok - {name}\n  expected {want!r}\n  got      {got!r}")
        db.close()
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if passed and not failed else 1)


if __name__ == "__main__":
    main()
