"""The functions the library registers are exactly the ones docs/functions/ documents.

What the library registers is read from pragma_function_list, on a connection
before and after loading the library: every added row (name, number of
arguments, flags). What the docs say is read from each page
docs/functions/NAME.md: the signature block at its top (one line per number of
arguments, `NAME(arg TYPE, ...) → TYPE`) and its `Flags:` line. The test fails
when a registered function has no page, a page has no registered function, or
the argument counts or flags differ; and when the index (docs/functions/README.md)
or the README's table misses a function. Nothing here names a function: a new
function needs its page, not a change to this test.

    RUNS_EXTENSION=build/runs.so /usr/bin/python3 tests/python/test_api_surface.py
"""

import os
import re
import sqlite3
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUNCTION_DOCS = os.path.join(ROOT, "docs", "functions")
EXTENSION = os.environ.get("RUNS_EXTENSION", "")

# pragma_function_list's flags column: SQLITE_FUNC_* bits that equal the
# public SQLITE_* flags of sqlite3_create_function_v2().
FLAG_BITS = {
    0x000800: "SQLITE_DETERMINISTIC",
    0x080000: "SQLITE_DIRECTONLY",
    0x100000: "SQLITE_SUBTYPE",
    0x200000: "SQLITE_INNOCUOUS",
}
ENCODINGS = {"utf8": "SQLITE_UTF8", "utf16le": "SQLITE_UTF16LE", "utf16be": "SQLITE_UTF16BE"}

SIGNATURE = re.compile(r"^(\w+)\((.*)\) → (.+)$")


def setUpModule():
    if not EXTENSION or not os.path.isfile(EXTENSION):
        raise RuntimeError(f"RUNS_EXTENSION={EXTENSION!r}: set it to the path of the built runs.so")


def function_list(load):
    conn = sqlite3.connect(":memory:")
    try:
        if load:
            conn.enable_load_extension(True)
            conn.load_extension(EXTENSION)
        return set(conn.execute(
            "SELECT name, builtin, type, enc, narg, flags FROM pragma_function_list"))
    finally:
        conn.close()


def flag_names(enc, flags):
    names = {ENCODINGS.get(enc, enc)}
    for bit, name in FLAG_BITS.items():
        if flags & bit:
            names.add(name)
            flags &= ~bit
    if flags:
        names.add(f"unknown flag bits {flags:#x}")
    return frozenset(names)


def registered():
    """{name: {narg: flag names}} of what loading the library adds, and the
    rows that are not plain new scalar functions."""
    before = function_list(load=False)
    added = function_list(load=True) - before
    builtin_names = {row[0] for row in before}
    functions, odd = {}, []
    for name, builtin, kind, enc, narg, flags in sorted(added):
        if name in builtin_names or builtin or kind != "s":
            odd.append((name, builtin, kind, enc, narg, flags))
        functions.setdefault(name, {})[narg] = flag_names(enc, flags)
    return functions, odd


def parameter_count(params):
    params = params.strip()
    return 0 if not params else params.count(",") + 1


def documented_page(path):
    """(name, {narg: flag names}, problems) of one page."""
    name = os.path.basename(path)[:-3]
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    rel = os.path.relpath(path, ROOT)
    problems = []
    if lines[:3] != [f"# {name}()", "", "```"]:
        problems.append(f"{rel}: must start with '# {name}()', a blank line and a ``` signature block")
        return name, {}, problems
    end = lines.index("```", 3) if "```" in lines[3:] else len(lines)
    nargs = set()
    for number, line in enumerate(lines[3:end], start=4):
        m = SIGNATURE.match(line)
        if not m or m.group(1) != name:
            problems.append(f"{rel}:{number}: not a signature of {name}(): {line!r}")
            continue
        nargs.add(parameter_count(m.group(2)))
    flag_lines = [line for line in lines if line.startswith("Flags: ")]
    if len(flag_lines) != 1:
        problems.append(f"{rel}: needs exactly one line 'Flags: `SQLITE_UTF8 | ...`.', "
                        f"found {len(flag_lines)}")
        return name, {}, problems
    m = re.fullmatch(r"Flags: `([A-Z0-9_ |]+)`\.", flag_lines[0])
    if not m:
        problems.append(f"{rel}: write the flags as 'Flags: `SQLITE_UTF8 | ...`.', "
                        f"not {flag_lines[0]!r}")
        return name, {}, problems
    flags = frozenset(part.strip() for part in m.group(1).split("|"))
    return name, {narg: flags for narg in nargs}, problems


def documented():
    functions, problems = {}, []
    for entry in sorted(os.listdir(FUNCTION_DOCS)):
        if not entry.endswith(".md") or entry == "README.md":
            continue
        name, signatures, page_problems = documented_page(os.path.join(FUNCTION_DOCS, entry))
        functions[name] = signatures
        problems.extend(page_problems)
    return functions, problems


class ApiSurfaceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.registered, cls.odd = registered()
        cls.documented, cls.problems = documented()

    def test_pages_are_well_formed(self):
        self.assertEqual(self.problems, [])

    def test_the_library_adds_only_new_scalar_functions(self):
        # Not replacing a built-in function, not an aggregate or window function.
        self.assertEqual(self.odd, [])
        self.assertGreater(len(self.registered), 0, "loading the library registered nothing")

    def test_every_registered_function_has_a_page(self):
        missing = sorted(set(self.registered) - set(self.documented))
        self.assertEqual(missing, [], "registered but without a page docs/functions/NAME.md")

    def test_every_page_documents_a_registered_function(self):
        missing = sorted(set(self.documented) - set(self.registered))
        self.assertEqual(missing, [], "documented in docs/functions/ but not registered")

    def test_argument_counts_match(self):
        for name in sorted(set(self.registered) & set(self.documented)):
            with self.subTest(function=name):
                self.assertEqual(sorted(self.documented[name]), sorted(self.registered[name]),
                                 f"{name}(): argument counts (docs, library)")

    def test_flags_match(self):
        for name in sorted(set(self.registered) & set(self.documented)):
            for narg in sorted(set(self.registered[name]) & set(self.documented[name])):
                with self.subTest(function=name, narg=narg):
                    self.assertEqual(sorted(self.documented[name][narg]),
                                     sorted(self.registered[name][narg]),
                                     f"{name}() with {narg} arguments: flags (docs, library)")

    def test_the_index_links_every_page(self):
        with open(os.path.join(FUNCTION_DOCS, "README.md"), encoding="utf-8") as f:
            links = re.findall(r"^\| \[`(\w+)\(.*?\)`\]\((\w+)\.md\) \|", f.read(), re.M)
        self.assertEqual([n for n, page in links if n != page], [],
                         "docs/functions/README.md links a function to another's page")
        self.assertEqual(sorted(n for n, _ in links), sorted(self.registered),
                         "docs/functions/README.md's table (one row per function)")

    def test_the_readme_table_lists_every_function(self):
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            section = f.read().split("\n## Functions\n", 1)[1].split("\n## ", 1)[0]
        names = re.findall(r"^\| `(\w+)\(", section, re.M)
        self.assertEqual(sorted(names), sorted(self.registered),
                         "README.md's Functions table (one row per function)")


if __name__ == "__main__":
    unittest.main(verbosity=2)
