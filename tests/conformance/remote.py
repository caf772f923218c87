"""One database connection in a process of its own, driven over a pipe.

Started by engines.Remote with fork+exec (no connection crosses a fork), with
one argument, JSON: {"engine": "sqlite", "path": ..., "extension": ...} or
{"engine": "postgres", "dsn": ...}. It opens its connection, writes one JSON
line {"pid": ..., "backend_pid": ...}, then answers each JSON line
{"sql": ..., "params": [...]} read from stdin with {"value": ...} or
{"error": {"code": ..., "message": ...}}. It exits at end of input.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from engines import PostgresConn, RunsError, SqliteConn  # noqa: E402


def main():
    config = json.loads(sys.argv[1])
    if config["engine"] == "sqlite":
        conn = SqliteConn(config["path"], config["extension"])
        hello = {"pid": os.getpid()}
    else:
        conn = PostgresConn(config["dsn"])
        hello = {"pid": os.getpid(), "backend_pid": conn.value("SELECT pg_backend_pid()")}
    print(json.dumps(hello), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = {"value": conn.value(request["sql"], *request["params"])}
        except RunsError as e:
            answer = {"error": {"code": e.code, "message": e.message}}
        print(json.dumps(answer, default=str), flush=True)
    conn.close()


if __name__ == "__main__":
    main()
