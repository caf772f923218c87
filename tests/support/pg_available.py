"""Exits 0 when the PostgreSQL tests can run here; otherwise prints why not.

tests/CMakeLists.txt runs it at configure time with Debian's /usr/bin/python3
and turns the PostgreSQL tests into one skipped test named with the reason.
It asks tests/postgres/pg_server.py, which starts the servers, so the rule for
finding the server binaries and the user to run them as is stated once.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "postgres"))
try:
    import pg_server
except ImportError as e:
    print("no psycopg2: apt-get install python3-psycopg2" if e.name == "psycopg2" else str(e))
    sys.exit(1)
try:
    pg_server.PgServer()  # finds the binaries and the system user; starts nothing
except RuntimeError as e:
    print(str(e).splitlines()[0])
    sys.exit(1)
