"""The PostgreSQL port under a hostile role: nothing another role creates can
run inside the port's functions with the caller's rights, and every function
of the project resolves names in its own schema only.

A role that may create objects in the runs schema (the default for `public`
before PostgreSQL 15) plants operators and functions whose argument types match
a call better than the built-in ones; they raise, so a call that reached one
fails. A deliberately naive function in the same schema shows that the plants
work; the port's functions, called by a superuser, never reach them.

    /usr/bin/python3 tests/postgres/test_pg_security.py
"""

import itertools
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pg_server import FUNCTIONS, PgCase, migration_files  # noqa: E402

# The types the port's functions pass to operators, and some that an implicit
# cast could reach. A plant is made for every pair where pg_catalog has no
# operator of exactly these types (where it has one, it is found first).
TYPES = ["text", "bigint", "integer", "numeric", "boolean", "timestamptz", "interval",
         "double precision", "jsonb", "text[]"]

# Functions of the same names as the built-ins the port calls, with argument
# types that beat the built-ins' for an unqualified call, and overloads of the
# port's own helpers that a call with loosely typed arguments would prefer.
PLANTED_FUNCTIONS = [
    "make_interval(secs bigint)", "format(text, bigint)", "format(text, text, text)",
    "concat(text, text, text)", "replace(text, text, text)", "octet_length(text)",
    "to_char(timestamp, text)", "date_trunc(text, timestamptz)", "host(inet)",
    "pg_advisory_lock(integer, integer)", "pg_try_advisory_lock_shared(integer, integer)",
    "jsonb_build_object(text, bigint)", "current_setting(text, boolean)", "set_config(text, text, boolean)",
    "runs_check_text(varchar, varchar, text, boolean, integer)", "runs_check_text(text, text, text, boolean)",
    "runs_quoted(varchar)", "runs_owner_lock_objid(integer)", "runs_lease_end(integer, timestamptz, timestamptz)",
    "runs_check_integer(varchar, varchar, bigint)", "runs_lock_in_state(integer, text[])", "runs_end(integer, text, text)",
    "runs_finish(integer, text[], text, text)",
]


class SecurityTest(PgCase):
    def project_functions(self, conn, schema):
        """Every function in the schema after the migrations and functions.sql,
        from the catalog: (signature, its search_path setting or None)."""
        return self.rows(conn, """
            SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                   (SELECT c FROM unnest(p.proconfig) AS c WHERE c LIKE 'search_path=%%')
              FROM pg_proc AS p WHERE p.pronamespace = %s::regnamespace ORDER BY 1""", schema)

    def test_every_function_of_the_project_has_a_fixed_search_path(self):
        name = self.schema()
        functions = self.project_functions(self.connect(), name)
        # The catalog holds every function that the files create (helpers and
        # trigger functions alike) and nothing else, so the list is complete
        # and the query cannot be vacuous.
        created = set()
        for path in migration_files() + [FUNCTIONS]:
            with open(path, encoding="utf-8") as f:
                created |= set(re.findall(r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(\w+)\s*\(", f.read(), re.I))
        names = {signature.split("(")[0] for signature, _ in functions}
        self.assertIn("start_run", created)
        self.assertEqual(names, created)
        for signature, setting in functions:
            with self.subTest(function=signature):
                self.assertEqual(setting, f"search_path={name}, pg_temp")

    def plant(self, admin, schema, hostile):
        """hostile creates, in schema, the operators and functions above."""
        self.value(admin, f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {hostile}")
        conn = self.connect(schema, user=hostile)
        exact = {(n, l, r) for n, l, r in self.rows(admin, """
            SELECT oprname, format_type(oprleft, NULL), format_type(oprright, NULL)
              FROM pg_operator WHERE oprnamespace = 'pg_catalog'::regnamespace AND oprkind = 'b'""")}
        names = sorted({n for n, _, _ in exact})
        statements = []
        for index, (left, right) in enumerate(itertools.product(TYPES, TYPES)):
            statements.append(
                f"CREATE FUNCTION {schema}.hostile_op{index}(a {left}, b {right}) RETURNS boolean LANGUAGE plpgsql"
                f" AS $$ BEGIN RAISE EXCEPTION 'hostile code ran: operator ({left}, {right})'; END $$")
            for op in names:
                if (op, left, right) not in exact:
                    statements.append(f"CREATE OPERATOR {schema}.{op} (LEFTARG = {left}, RIGHTARG = {right},"
                                      f" FUNCTION = {schema}.hostile_op{index})")
        for signature in PLANTED_FUNCTIONS:
            returns = ("interval" if signature.startswith("make_interval")
                       else "integer" if signature.startswith(("pg_", "octet_length", "runs_owner_lock_objid"))
                       else "text")
            statements.append(
                f"CREATE FUNCTION {schema}.{signature} RETURNS {returns} LANGUAGE plpgsql"
                f" AS $$ BEGIN RAISE EXCEPTION 'hostile code ran: {signature}'; END $$")
        self.value(conn, ";\n".join(statements))
        return self.value(admin, "SELECT count(*) FROM pg_operator WHERE oprnamespace = %s::regnamespace", schema)

    def test_a_role_that_can_create_objects_in_the_schema_cannot_run_code_through_the_functions(self):
        name = self.schema()
        admin = self.connect()
        hostile = self.role(f"hostile_{name}")
        planted = self.plant(admin, name, hostile)
        self.assertGreater(planted, 1000)
        su = self.connect(name)  # a superuser's cron job, say
        # The plants work: a function written the naive way runs them.
        self.value(su, "CREATE FUNCTION naive(id bigint) RETURNS text LANGUAGE sql"
                       f" SET search_path = {name}, pg_temp AS $$ SELECT 'run '::text || id $$")
        self.assertEqual(self.error(su, "SELECT naive(1)"),
                         ("P0001", "hostile code ran: operator (text, bigint)"))
        self.value(su, "CREATE FUNCTION naive2(s bigint) RETURNS interval LANGUAGE sql"
                       f" SET search_path = {name}, pg_temp AS $$ SELECT make_interval(secs => s) $$")
        self.assertEqual(self.error(su, "SELECT naive2(1)"), ("P0001", "hostile code ran: make_interval(secs bigint)"))
        # Every function of the port, every branch a caller reaches easily.
        # The caller's own operators are exposed too: `->> 'stale'` would
        # take the planted ->>(jsonb, jsonb) (docs/postgres.md says so), so
        # these queries type their literals.
        other = self.connect(name)
        calls = [
            ("SELECT start_run('full')", 1),
            ("SELECT start_run('sync', 'cron', 'k', 60)", 2),
            ("SELECT active_run('k')", 2),
            ("SELECT mark_run_running(2)", "updated"),
            ("SELECT update_run_progress(2, 1, 10, 'step')", "updated"),
            ("SELECT heartbeat_run(2)", "ok"),
            ("SELECT run_status(2)", "running"),
            ("SELECT run_info(2) ->> 'stale'::text", "false"),
            ("SELECT reap_stale_runs()", 0),
            ("SELECT reap_stale_runs('k')", 0),
            ("SELECT reap_stale_runs(NULL, 3600)", 0),
            ("SELECT try_start_run('sync', 'cron', 'k') ->> 'started'::text", "false"),
            ("SELECT complete_run(2)", "updated"),
            ("SELECT complete_run(2)", "not_in_expected_state"),
            ("SELECT fail_run(1, 'boom')", "updated"),
            ("SELECT start_run('x', 'api', 'c', 60)", 3),
            ("SELECT cancel_run(3)", "updated"),
            ("SELECT cancel_run(99)", "not_found"),
            ("SELECT runs_version()", self.value(su, "SELECT runs_version()")),
            ("UPDATE runs SET lease_expires_at = '2000-01-01Z' WHERE id = 3", None),
            ("SELECT start_run('x', 'api', 'l', 60)", 4),
            ("UPDATE runs SET lease_expires_at = '2000-01-01Z' WHERE id = 4", None),
            ("SELECT run_info(4) ->> 'stale_reason'::text",
             "abandoned: its lease expired at 2000-01-01T00:00:00.000Z (owner session "
             f"{self.value(su, 'SELECT pg_backend_pid()')} from 127.0.0.1)"),
            ("SELECT start_run('x', 'api', 'l')", 5),
            ("SELECT mark_run_running(5)", "updated"),
            ("DELETE FROM runs WHERE id = 1", None),
        ]
        for sql, expected in calls:
            with self.subTest(sql=sql):
                self.assertEqual(self.value(su, sql), expected)
        # Refusals run through the same code.
        for sql, code in [("SELECT start_run('again', 'api', 'l')", "23505"),
                          ("SELECT start_run('')", "22023"),
                          ("SELECT update_run_progress(5, -1, 1, NULL)", "22023"),
                          ("UPDATE runs SET status = 'done' WHERE id = 5", "23514"),
                          ("UPDATE runs SET status = 'pending' WHERE id = 2", "23514"),
                          ("INSERT INTO runs (scope, concurrency_key, created_at) VALUES ('raw', 'l', now())", "23505"),
                          ("UPDATE runs SET id = DEFAULT WHERE id = 5", "23514"),
                          ("DELETE FROM runs WHERE id = 5", "23514"),
                          ("TRUNCATE runs", "23514")]:
            with self.subTest(sql=sql):
                code_seen, message = self.error(su, sql)
                self.assertEqual(code_seen, code, message)
                self.assertNotIn("hostile", message)
        self.assertEqual(self.value(other, "SELECT cancel_run(5)"), "cancel_requested")
        self.assertFalse(self.value(admin, "SELECT rolsuper FROM pg_roles WHERE rolname = %s", hostile))

    def test_the_functions_call_only_qualified_built_ins_and_their_own_helpers(self):
        """What the planted test cannot enumerate: every function call in
        every body is pg_catalog.f(), one of the project's functions, or SQL
        syntax; every operator is OPERATOR(pg_catalog.x) or plpgsql syntax."""
        name = self.schema()
        conn = self.connect()
        own = {r[0] for r in self.rows(conn, "SELECT proname FROM pg_proc WHERE pronamespace = %s::regnamespace",
                                       name)}
        syntax = {"if", "exists", "coalesce", "values", "in", "and", "or", "not", "any", "extract",
                  "into", "select", "when", "then", "else", "returning", "runs", "using", "case", "on",
                  "bit", "return", "perform", "elsif", "array"}
        for proname, body in self.rows(conn, "SELECT proname, prosrc FROM pg_proc"
                                             " WHERE pronamespace = %s::regnamespace", name):
            code = re.sub(r"--[^\n]*", "", body)
            code = re.sub(r"'(?:[^']|'')*'", "''", code)
            code = re.sub(r"OPERATOR\(pg_catalog\.[^)]+\)", " ", code)
            with self.subTest(function=proname):
                for match in re.finditer(r"(?<![\w.$])([A-Za-z_][\w]*)\s*\(", code):
                    called = match.group(1).lower()
                    self.assertTrue(called in own or called in syntax,
                                    f"{proname} calls {called}() without pg_catalog.")
                bare = re.sub(r":=|::|=>|\bUSING\b[^;]*;|\bDIAGNOSTICS\b[^;]*;|SELECT \*|\(\*\)", " ", code)
                bare = re.sub(r"(?:\bSET|,)\s+[\w.]+\s*=", " ", bare)
                found = re.search(r"[-+*/<>=~!@#%^&|`?]", bare)
                self.assertIsNone(found, found and f"{proname} uses an unqualified operator: "
                                                   f"{bare[max(0, found.start() - 60):found.end() + 20]!r}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
