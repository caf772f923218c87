"""The client examples of README.md and docs/**/*.md print what they say they print.

Every ```python, ```js, ```tcl, ```perl, ```php, ```ruby, ```go, ```java,
```rust or ```c block that is followed (blank lines aside) by a ```text block
is an example: it runs as a program of its language and its output (stdout and
stderr) must equal the text block, with TIME for timestamps as in
tests/python/test_doc_examples.py, which runs the ```sql examples the same way.
Before running, `build/runs` in the example becomes RUNS_EXTENSION (without
.so) and `app.db` a file in a fresh folder; PHP runs with
sqlite3.extension_dir set to RUNS_EXTENSION's folder. The README's examples,
which a newcomer runs again and again, run twice on the same database and must
print the same both times.

    RUNS_EXTENSION=build/runs.so PYTHON=/usr/bin/python3 NODE=node TCLSH=tclsh PERL=perl \\
        PHP=php RUBY=ruby GO=go JAVA=java SQLITE_JDBC=/usr/share/java/sqlite-jdbc.jar \\
        CARGO=/usr/bin/cargo RUST_TARGET=build/tests/rust CC=cc RUNS_STATIC_LIBS='...' \\
        RUNS_INCLUDE=ext /usr/bin/python3 tests/clients/test_doc_snippets.py

JavaScript runs as an ES module from tests/node, so that `import ... from
'better-sqlite3'` finds tests/node/node_modules. Go builds in GOPATH mode
against Debian's sources, Rust against Debian's crates in RUST_TARGET (where
tests/clients/rust/run.sh built them, so that rusqlite compiles once), C
against the static library (RUNS_STATIC_LIBS, RUNS_INCLUDE) and the system's
SQLite. A language whose tool is not given (an empty variable) is skipped, and
the test says so.
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


LANGUAGES = ("python", "js", "tcl", "perl", "php", "ruby", "go", "java", "rust", "c")
# The variables each language needs, beyond RUNS_EXTENSION.
NEEDS = {"php": ["PHP"], "ruby": ["RUBY"], "go": ["GO"], "java": ["JAVA", "SQLITE_JDBC"],
         "rust": ["CARGO", "RUST_TARGET"], "c": ["CC", "RUNS_STATIC_LIBS", "RUNS_INCLUDE"]}
RUST_MANIFEST = """[package]
name = "doc-snippet"
version = "0.1.0"
edition = "2021"

[dependencies]
rusqlite = { version = "0.28", features = ["load_extension"] }
"""


def missing(lang):
    return [name for name in NEEDS.get(lang, []) if not os.environ.get(name)]


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def command(lang, program, tmp):
    """(argv, standard input, working folder, environment) that run program,
    after building it where the language compiles. A program file, not
    standard input, where an interpreter reading standard input would go on
    after an error (tclsh does); JavaScript from standard input, so that its
    imports resolve from the working folder, tests/node."""
    env = os.environ.get
    environment = dict(os.environ)
    if lang == "js":
        return ([env("NODE") or "node", "--input-type=module"], program,
                os.path.join(ROOT, "tests", "node"), environment)
    if lang == "go":
        write(os.path.join(tmp, "src", "example", "main.go"), program)
        environment.update(GO111MODULE="off", GOFLAGS="", GOPROXY="off",
                           GOPATH=f"{tmp}:/usr/share/gocode",
                           GOCACHE=env("GOCACHE") or os.path.join(tmp, "cache"))
        build([env("GO"), "build", "-o", os.path.join(tmp, "example"), "example"], tmp, environment)
        return [os.path.join(tmp, "example")], "", tmp, environment
    if lang == "rust":
        write(os.path.join(tmp, "project", "Cargo.toml"), RUST_MANIFEST)
        write(os.path.join(tmp, "project", "src", "main.rs"), program)
        shutil.copytree(os.path.join(ROOT, "tests", "clients", "rust", ".cargo"),
                        os.path.join(tmp, "project", ".cargo"))
        target = os.path.abspath(env("RUST_TARGET"))
        environment.update(CARGO_TARGET_DIR=target, CARGO_HOME=os.path.join(target, "cargo-home"),
                           RUSTC="/usr/bin/rustc")
        build([env("CARGO"), "build", "--offline", "--quiet"], os.path.join(tmp, "project"),
              environment)
        return [os.path.join(target, "debug", "doc-snippet")], "", tmp, environment
    if lang == "c":
        write(os.path.join(tmp, "example.c"), program)
        build([env("CC"), "-o", os.path.join(tmp, "example"), "-I" + env("RUNS_INCLUDE"),
               os.path.join(tmp, "example.c")] + env("RUNS_STATIC_LIBS").split() + ["-lsqlite3"],
              tmp, environment)
        return [os.path.join(tmp, "example")], "", tmp, environment
    if lang == "java":
        path = os.path.join(tmp, "Example.java")
        write(path, program)
        return [env("JAVA"), "-cp", env("SQLITE_JDBC"), path], "", tmp, environment
    interpreter, suffix = {
        "python": (env("PYTHON") or "/usr/bin/python3", ".py"),
        "tcl": (env("TCLSH") or "tclsh", ".tcl"),
        "perl": (env("PERL") or "perl", ".pl"),
        "php": (env("PHP"), ".php"),
        "ruby": (env("RUBY"), ".rb"),
    }[lang]
    path = os.path.join(tmp, "example" + suffix)
    write(path, program)
    argv = [interpreter, path]
    if lang == "php":
        argv[1:1] = ["-d", "sqlite3.extension_dir=" + os.path.dirname(os.path.abspath(EXTENSION))]
    return argv, "", tmp, environment


def build(argv, cwd, environment):
    proc = subprocess.run(argv, cwd=cwd, env=environment, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed:\n{proc.stdout}")


def snippets():
    found = []
    for path in docs.markdown_files():
        rel = os.path.relpath(path, ROOT)
        blocks, lines = docs.fenced_blocks(path)
        for k, (lang, line, body, _, end) in enumerate(blocks):
            nxt = blocks[k + 1] if k + 1 < len(blocks) else None
            if (lang in LANGUAGES and nxt is not None
                    and nxt[0] == "text" and all(not l.strip() for l in lines[end + 1:nxt[3]])):
                found.append((f"{rel}:{line}", lang, body, nxt[2]))
    return found


def setUpModule():
    if not EXTENSION or not os.path.isfile(EXTENSION):
        raise RuntimeError(f"RUNS_EXTENSION={EXTENSION!r}: set it to the path of the built runs.so")


class DocSnippetsTest(unittest.TestCase):
    def test_every_client_has_an_example(self):
        self.assertEqual(sorted({lang for _, lang, _, _ in snippets()}), sorted(LANGUAGES))

    def test_snippets_print_what_the_docs_say(self):
        extension = os.path.abspath(EXTENSION)
        extension = extension[:-3] if extension.endswith(".so") else extension
        skipped = set()
        for name, lang, code, expected in snippets():
            if missing(lang):
                skipped.add(f"{lang} ({', '.join(missing(lang))} not given)")
                continue
            with self.subTest(example=name):
                times = 2 if name.startswith("README.md:") else 1
                with tempfile.TemporaryDirectory(prefix="sqlite-runs-snippet-") as tmp:
                    program = (code.replace("build/runs", extension)
                               .replace("app.db", os.path.join(tmp, "app.db")))
                    argv, stdin, cwd, environment = command(lang, program, tmp)
                    expected = docs.expanded(expected)  # SCHEMA_VERSION
                    for run in range(1, times + 1):
                        proc = subprocess.run(argv, input=stdin, cwd=cwd, env=environment,
                                              text=True, stdout=subprocess.PIPE,
                                              stderr=subprocess.STDOUT, timeout=120)
                        actual = docs.comparable(proc.stdout, expected)
                        if actual != expected or proc.returncode != 0:
                            diff = "".join(difflib.unified_diff(
                                expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                                fromfile=f"{name} (docs)", tofile=f"{name} ({argv[0]}, run {run})"))
                            self.fail(f"{name}: run {run}: exit status {proc.returncode}, "
                                      f"output differs:\n{diff}")
        if skipped:
            print("skipped: the examples in " + ", ".join(sorted(skipped)), file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
