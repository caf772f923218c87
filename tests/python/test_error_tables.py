"""The error tables of docs/functions/ say what the library does.

docs/functions/README.md#common-errors lists, once, the errors that come from
what kind of function it is (one that writes, one that reads runs, one that
commits its own transaction), each with a case name, the message (NAME for the
function, ARG for the argument, T for a type, N and M for numbers,
SCHEMA_VERSION for the library's schema version), the result code and the
functions that have it. Each page docs/functions/NAME.md lists only its own.

- Every common case that this test knows how to provoke (RECIPES) is provoked
  in every registered function, on a fresh copy of a migrated database: the
  functions that fail with the documented message and code must be exactly
  the ones the table names. A case without a recipe is checked like a page's
  row below, and reported; a recipe without a row fails.
- Every message quoted in a page's Errors section names the page's function
  ("NAME(): ..."), or is SQLite's own and shown by an executed example of the
  docs; it is not a common error again; and its text is the library's: an
  executed example shows it verbatim (tests/python/test_doc_examples.py checks
  that output), or it is made of whole string literals of ext/ and sql/ (the
  guards' messages) and values (a number, a time stamp, a quoted name, a type,
  a placeholder, an argument's name).
- Every message the library builds (the string literals of each Error(...) in
  ext/, and what a variable passed to it was built from) is quoted in a page's
  Errors section or the common table, but the few in INTERNAL, each with why.

Nothing here names a function: the signatures at the top of each page give the
arguments, and the recipes provoke each case through them.

    RUNS_EXTENSION=build/runs.so /usr/bin/python3 tests/python/test_error_tables.py
"""

import glob
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_api_surface as surface  # noqa: E402  (what the library registers)
import test_doc_examples as docs  # noqa: E402  (markdown blocks, the schema version)

ROOT = surface.ROOT
FUNCTION_DOCS = surface.FUNCTION_DOCS
EXTENSION = surface.EXTENSION

# Messages of Error(...) in ext/ that no table quotes, and why. Each must
# still occur in ext/ (a stale entry fails).
INTERNAL = {
    "text too long to bind": "bind() gets only arguments already checked against their limits (1 MiB at most)",
    "cannot open an in-memory database to compare the schema with":
        "runs_check() and runs_migrate() open one to compare with; only a failed allocation stops it",
    "cannot build the reference schema: migration ":
        "sql/ failing on an empty in-memory database: a bug of the build, which every test would show",
}

TYPE_NAMES = {"integer", "real", "text", "blob", "NULL"}
PLACEHOLDERS = {"NAME", "ARG", "T", "N", "M", "X", "DIR", "SCHEMA_VERSION", "NNN_name"}


# ---------------------------------------------------------------- markdown

def split_row(line):
    """The cells of a markdown table row; a | inside `code` does not split."""
    cells, cell, in_code = [], "", False
    for ch in line.strip()[1:-1]:
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code:
            cells.append(cell.strip())
            cell = ""
        else:
            cell += ch
    cells.append(cell.strip())
    return cells


def section(text, heading):
    """The text under `## heading`, up to the next `## `, or None."""
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return m.group(1) if m else None


def table_rows(text):
    """Each table row under a header row, as a dict of the header's cells."""
    rows, header = [], None
    for line in text.split("\n"):
        if not line.startswith("|"):
            header = None
            continue
        cells = split_row(line)
        if header is None:
            header = cells
        elif not all(re.fullmatch(r"-+", c) for c in cells):
            rows.append(dict(zip(header, cells)))
    return rows


def first_code(cell):
    m = re.search(r"`([^`]*)`", cell)
    return m.group(1) if m else None


def result_code(cell):
    m = re.search(r"\((\d+)\)", cell)
    return int(m.group(1)) if m else None


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def signature(name):
    """[(argument, type)] of the longest signature on the function's page."""
    best = []
    for line in read(os.path.join(FUNCTION_DOCS, name + ".md")).split("\n"):
        m = surface.SIGNATURE.match(line)
        if m and m.group(1) == name:
            args = [a.strip().split(" ", 1) for a in m.group(2).split(",") if a.strip()]
            if len(args) >= len(best):
                best = [(a[0], a[1]) for a in args]
    return best


def common_rows():
    text = section(read(os.path.join(FUNCTION_DOCS, "README.md")), "Common errors")
    return table_rows(text) if text else []


def page_rows(name):
    text = section(read(os.path.join(FUNCTION_DOCS, name + ".md")), "Errors") or ""
    return [row for row in table_rows(text) if "Message" in row]


def example_outputs():
    """The expected output of every executed example (```sql then ```text)."""
    outputs = []
    for path in docs.markdown_files():
        blocks, _ = docs.fenced_blocks(path)
        for k, block in enumerate(blocks[:-1]):
            if block[0] == "sql" and blocks[k + 1][0] == "text":
                outputs.append(blocks[k + 1][2])
    return outputs


def listed_functions(cell, every):
    """The functions a common row's Functions cell names, or None when it is
    prose that names no set."""
    names = set(re.findall(r"`(\w+)\(\)`", cell))
    if cell.startswith("every function but"):
        return set(every) - names
    if cell == "every function":
        return set(every)
    if names and re.fullmatch(r"(`\w+\(\)`(, )?)+", cell):
        return names
    return None


def message_pattern(template, name, arg=None):
    """A regex for a documented message: NAME the function, ARG the argument
    (any word when not given), T a type, N and M numbers, SCHEMA_VERSION the
    library's schema version."""
    pattern = re.escape(template)
    pattern = pattern.replace("NAME", re.escape(name))
    pattern = pattern.replace("ARG", re.escape(arg) if arg else r"\w+")
    pattern = pattern.replace("SCHEMA_VERSION", str(docs.latest_schema_version()))
    pattern = re.sub(r"\bT\b", "(?:" + "|".join(sorted(TYPE_NAMES)) + ")", pattern)
    pattern = re.sub(r"\b[NM]\b", r"\\d+", pattern)
    return re.compile(pattern)


# ---------------------------------------------------------------- ext/ sources

LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


def unescape(text):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), text)


def literal_runs(code):
    """The string literals of a piece of C++, adjacent ones joined."""
    runs, last_end = [], None
    for m in LITERAL.finditer(code):
        text = unescape(m.group(1))
        if last_end is not None and not code[last_end:m.start()].strip():
            runs[-1] += text
        else:
            runs.append(text)
        last_end = m.end()
    return runs


def balanced(code, open_at):
    """The text inside the parenthesis that opens at open_at."""
    depth, i = 0, open_at
    while i < len(code):
        ch = code[i]
        if ch == '"':
            m = LITERAL.match(code, i)
            i = m.end() if m else i + 1
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return code[open_at + 1:i]
        i += 1
    return code[open_at + 1:]


def error_messages():
    """{literal run: 'file:line'} of the messages given to Error(code, message)
    in ext/; for a variable, the literals of the statements that built it."""
    found = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "ext", "*.cpp"))):
        code = read(path)
        rel = os.path.relpath(path, ROOT)
        for m in re.finditer(r"\bError\(", code):
            inside = balanced(code, m.end() - 1)
            depth, comma = 0, None
            for i, ch in enumerate(inside):  # the first top-level comma
                depth += ch in "(" and 1 or ch in ")" and -1 or 0
                if ch == "," and depth == 0:
                    comma = i
                    break
            if comma is None:
                continue
            message = inside[comma + 1:].strip()
            line = code.count("\n", 0, m.start()) + 1
            if re.fullmatch(r"\w+", message):
                before = code[max(0, code.rfind("\n", 0, m.start()) - 2000):m.start()]
                pieces = re.findall(rf"\b{message}\s*\+?=\s*(.*?);", before, re.S)
                runs = [r for piece in pieces for r in literal_runs(piece)]
            else:
                runs = literal_runs(message)
            for run in runs:
                found.setdefault(run, f"{rel}:{line}")
    return found


def source_literals():
    """Every string literal of ext/ (adjacent ones joined) and of sql/ (the
    guards' messages), longest first: a message is made of whole ones."""
    parts = set()
    for path in sorted(glob.glob(os.path.join(ROOT, "ext", "*.cpp"))):
        parts.update(literal_runs(read(path)))
    for path in sorted(glob.glob(os.path.join(ROOT, "sql", "*.sql"))):
        code = re.sub(r"--[^\n]*", "", read(path))
        parts.update(m.replace("''", "'") for m in re.findall(r"'((?:[^']|'')*)'", code))
    return sorted((p for p in parts if len(p.strip()) >= 2), key=len, reverse=True)


VALUE = re.compile(
    r"-?\d[\d,.]*(?:e[+-]?\d+)?"           # a number: 1025, 1e+300, 31536000
    r"|\d{4}-\d\d-\d\dT[\d:.]+Z"           # a time stamp
    r"|\d{3}_\w+")                          # a migration
TOKEN = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z|[\w.+-]+|\S")


def foreign_words(message, literals, allowed):
    """The words of message that are neither in one of the literals, whole,
    nor values: a number, a time stamp, a quoted name, a type, a placeholder,
    an argument's name."""
    covered = [False] * len(message)
    names = "|".join(re.escape(n) for n in sorted(TYPE_NAMES | PLACEHOLDERS | allowed,
                                                  key=len, reverse=True))
    marks = [m.span() for m in re.finditer(rf"'[^'\s]*'|\b(?:{names})\b", message)]
    for literal in literals:
        start = message.find(literal)
        while start >= 0:
            marks.append((start, start + len(literal)))
            start = message.find(literal, start + 1)
    for start, end in marks:
        covered[start:end] = [True] * (end - start)
    rest = "".join(ch if not c else " " for ch, c in zip(message, covered))
    return [t for t in TOKEN.findall(rest) if t[0].isalnum() and not VALUE.fullmatch(t)]


# ---------------------------------------------------------------- provoking

def connect(path, load=True, uri=False):
    conn = sqlite3.connect(path, timeout=0, isolation_level=None, uri=uri)
    if load:
        conn.enable_load_extension(True)
        conn.load_extension(EXTENSION)
        conn.enable_load_extension(False)
    return conn


def outcome(conn, sql):
    """(result code, message) of the statement's error, or None."""
    try:
        conn.execute(sql).fetchall()
        return None
    except sqlite3.Error as e:
        return (e.sqlite_errorcode, str(e))


class Fixture:
    """A migrated database (rollback journal) with a table t of one row and a
    pending run 1 of this process; each case gets a copy."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sqlite-runs-errors-")
        self.template = os.path.join(self.dir, "template.db")
        conn = connect(self.template)
        conn.execute("SELECT runs_migrate()").fetchall()
        conn.execute("CREATE TABLE t(x)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("SELECT start_run('fixture', 'test', 'fixture')").fetchall()
        conn.close()
        self.count = 0

    def copy(self, wal=False):
        self.count += 1
        path = os.path.join(self.dir, f"case{self.count}.db")
        shutil.copyfile(self.template, path)
        if wal:
            plain = connect(path, load=False)
            plain.execute("PRAGMA journal_mode = WAL").fetchall()
            plain.close()
        return path

    def empty(self):
        self.count += 1
        return os.path.join(self.dir, f"case{self.count}.db")

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def call(name, args):
    return f"SELECT {name}({', '.join(args)})"


def in_copy(setup=None, wal=False, before=None, statement=call, after=None, empty=False,
            readonly=False):
    """A recipe: a copy of the fixture (or an empty file), `setup` run on it
    by a plain connection, the caller's connection opened (read-only with
    mode=ro) with the library loaded, `before` on it, then the call inside
    `statement`."""
    def recipe(fixture, name, args):
        path = fixture.empty() if empty else fixture.copy(wal=wal)
        plain = connect(path, load=False)
        conn = connect(f"file:{path}?mode=ro" if readonly else path, uri=readonly)
        try:
            if setup:
                for sql in setup:
                    plain.execute(sql)
            for sql in before or []:
                conn.execute(sql).fetchall()
            result = outcome(conn, statement(name, args))
            for sql in after or []:
                plain.execute(sql)
            return result
        finally:
            conn.close()
            plain.close()
    return recipe


def argument_recipe(kind, value):
    """A recipe for an argument case: each argument whose signature type is
    `kind` in turn gets `value`, the others valid values. Returns one outcome
    per such argument, with its name."""
    def recipe(fixture, name, args):
        path = fixture.copy()
        conn = connect(path)
        try:
            results = []
            for i, (arg, type_) in enumerate(signature(name)):
                if type_.split(" ")[0] != kind:
                    continue
                bad = list(args)
                bad[i] = value
                results.append((arg, outcome(conn, call(name, bad))))
            return results
        finally:
            conn.close()
    recipe.per_argument = True
    return recipe


def wrong_arity(name, args):
    return call(name, args + ["1"])


def view_recipe(fixture, name, args):
    """The call inside a view, used."""
    conn = connect(fixture.copy())
    try:
        return (outcome(conn, f"CREATE VIEW v AS {call(name, args)} AS x")
                or outcome(conn, "SELECT * FROM v"))
    finally:
        conn.close()


def snapshot_recipe(fixture, name, args):
    """The caller's deferred transaction reads; another connection commits;
    then the call."""
    path = fixture.copy(wal=True)
    plain = connect(path, load=False)
    conn = connect(path)
    try:
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM t").fetchall()
        plain.execute("INSERT INTO t VALUES (2)")
        return outcome(conn, call(name, args))
    finally:
        conn.close()
        plain.close()


# How to provoke each case of the common table, in any function: a new
# function needs no change here.
RECIPES = {
    "not-text": argument_recipe("TEXT", "1"),
    "too-long": argument_recipe("TEXT", "printf('%.*c', 1048577, 'x')"),
    "not-integer-real": argument_recipe("INTEGER", "1.5"),
    "integer-out-of-range": argument_recipe("INTEGER", "1e300"),
    "not-integer": argument_recipe("INTEGER", "x'00'"),
    "arity": in_copy(statement=wrong_arity),
    "unsafe-use": view_recipe,
    "no-schema": in_copy(empty=True),
    "old-schema": in_copy(setup=["DELETE FROM runs_schema_migrations WHERE version > 2"]),
    "read-only": in_copy(readonly=True),
    "query-only": in_copy(before=["PRAGMA query_only = 1"]),
    "busy": in_copy(wal=True, setup=["BEGIN IMMEDIATE"], after=["ROLLBACK"]),
    "busy-rollback-journal": in_copy(setup=["BEGIN EXCLUSIVE"], after=["ROLLBACK"]),
    "busy-snapshot": snapshot_recipe,
    "no-write-lock": in_copy(before=["BEGIN"]),
    "in-writing-statement": in_copy(before=["BEGIN IMMEDIATE"],
                                    statement=lambda n, a: f"INSERT INTO t {call(n, a)}"),
    "own-statement-writes": in_copy(statement=lambda n, a: f"INSERT INTO t {call(n, a)}"),
    "own-statement-reads": in_copy(statement=lambda n, a: f"{call(n, a)} FROM t"),
    "close-hook": in_copy(setup=["CREATE TABLE runs_close_hook(unused)"]),
}


def valid_arguments(name):
    """A valid value for each argument of the longest signature: a text, or
    the id of the fixture's run (1)."""
    return ["'k'" if type_.startswith("TEXT") else "1" for _, type_ in signature(name)]


# ---------------------------------------------------------------- the tests

def setUpModule():
    if not EXTENSION or not os.path.isfile(EXTENSION):
        raise RuntimeError(f"RUNS_EXTENSION={EXTENSION!r}: set it to the path of the built runs.so")


class ErrorTablesCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.functions = sorted(surface.registered()[0])
        cls.common = common_rows()


class CommonErrorsTest(ErrorTablesCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.rows = cls.common
        cls.fixture = Fixture()

    @classmethod
    def tearDownClass(cls):
        cls.fixture.close()

    def test_the_table_exists(self):
        self.assertGreater(len(self.rows), 0, "docs/functions/README.md has no ## Common errors table")
        for row in self.rows:
            with self.subTest(row=row.get("Case")):
                self.assertTrue(first_code(row.get("Case", "")), "each row names its case")
                self.assertTrue(first_code(row.get("Message", "")), "each row quotes its message")

    def test_every_recipe_has_its_row(self):
        cases = {first_code(row["Case"]) for row in self.rows}
        self.assertEqual(sorted(set(RECIPES) - cases), [],
                         "cases this test provokes, missing from docs/functions/README.md#common-errors")

    def test_each_case_fails_exactly_the_functions_listed(self):
        checked = []
        for row in self.rows:
            case = first_code(row["Case"])
            recipe = RECIPES.get(case)
            listed = listed_functions(row["Functions"], self.functions)
            if recipe is None or listed is None:
                print(f"common error {case}: no recipe here, checked against ext/ only", file=sys.stderr)
                continue
            checked.append(case)
            template = first_code(row["Message"])
            code = result_code(row["Result code"])
            with self.subTest(case=case):
                observed, seen = set(), {}
                for name in self.functions:
                    seen[name] = got = recipe(self.fixture, name, valid_arguments(name))
                    # One outcome, or one per argument of the type (the name of each).
                    per_argument = got if getattr(recipe, "per_argument", False) else [(None, got)]
                    if per_argument and all(
                            r is not None and r[0] == code
                            and message_pattern(template, name, arg).fullmatch(r[1])
                            for arg, r in per_argument):
                        observed.add(name)
                detail = "\n".join(f"  {n}: {seen[n]}" for n in sorted(observed ^ listed))
                self.assertEqual(sorted(observed), sorted(listed),
                                 f"functions that fail with `{template}` ({code}): "
                                 f"observed, documented; what the others gave:\n{detail}")
        self.assertGreater(len(checked), 0)


class PageErrorsTest(ErrorTablesCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sources = source_literals()
        cls.outputs = [docs.expanded(out) for out in example_outputs()]

    def documented_messages(self):
        messages = [row["Message"] for row in self.common]
        for name in self.functions:
            messages.extend(row["Message"] for row in page_rows(name))
        return "\n".join(messages)

    def test_page_messages_are_the_functions_own(self):
        for name in self.functions:
            arguments = {arg for arg, _ in signature(name)}
            for row in page_rows(name):
                message = first_code(row["Message"])
                with self.subTest(function=name, message=message):
                    self.assertIsNotNone(message, "the Message cell quotes no message")
                    for common in self.common:
                        template = first_code(common["Message"])
                        self.assertIsNone(
                            message_pattern(template, name).fullmatch(message),
                            f"the common error {first_code(common['Case'])} again: "
                            "docs/functions/README.md#common-errors has it, remove the row")
                    prefix = f"{name}(): "
                    if not message.startswith(prefix):
                        self.assertTrue(any(message in out for out in self.outputs),
                                        f"neither '{prefix}...' nor SQLite's own message shown by an "
                                        "executed example")
                        continue
                    if any(message in out for out in self.outputs):
                        continue  # shown by an executed example: the library's, verbatim
                    self.assertEqual(
                        foreign_words(message[len(prefix):], self.sources, arguments), [],
                        "words of the message found neither in ext/ nor in sql/")

    def test_common_messages_without_a_recipe_are_the_librarys(self):
        # A case with a recipe is checked by provoking it (CommonErrorsTest).
        for row in self.common:
            case, message = first_code(row["Case"]), first_code(row["Message"])
            if case in RECIPES:
                continue
            with self.subTest(case=case):
                self.assertTrue(message.startswith("NAME(): "),
                                "a case that this test cannot provoke quotes the library's message")
                self.assertEqual(foreign_words(message[len("NAME(): "):], self.sources, set()), [],
                                 "words of the message found neither in ext/ nor in sql/")

    def test_every_message_of_the_library_is_documented(self):
        documented = self.documented_messages()
        messages = error_messages()
        self.assertGreater(len(messages), 10, "found too few Error(...) messages in ext/")
        for internal in INTERNAL:
            self.assertTrue(any(internal in m for m in messages),
                            f"INTERNAL lists {internal!r}, which ext/ no longer has")
        for text, where in sorted(messages.items()):
            piece = text.strip(" :;,()")
            if len(piece) < 12 or any(internal in text for internal in INTERNAL):
                continue
            with self.subTest(message=piece, at=where):
                self.assertTrue(piece in documented,
                                "a message of the library that no Errors table of docs/functions/ quotes")


if __name__ == "__main__":
    unittest.main(verbosity=2)
