"""runs_debug() reports the truth: the version of CMakeLists.txt, the commit of
this checkout, the build type CMake was given, and the SQLite of the process
that loaded it. Also cmake/build_info.cmake, which records the commit at
build time, in each of its cases.

    RUNS_EXTENSION=build/runs.so RUNS_BUILD_TYPE=RelWithDebInfo CMAKE_COMMAND=cmake \\
        /usr/bin/python3 tests/python/test_runs_debug.py

(ctest sets all three.)
"""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXTENSION = os.environ.get("RUNS_EXTENSION", "")
BUILD_TYPE = os.environ.get("RUNS_BUILD_TYPE")
CMAKE = os.environ.get("CMAKE_COMMAND") or shutil.which("cmake") or "cmake"
SCRIPT = os.path.join(ROOT, "cmake", "build_info.cmake")


def setUpModule():
    if not EXTENSION or not os.path.isfile(EXTENSION):
        raise RuntimeError(f"RUNS_EXTENSION={EXTENSION!r}: set it to the path of the built runs.so")
    if BUILD_TYPE is None:
        raise RuntimeError("RUNS_BUILD_TYPE is not set: set it to the build's CMAKE_BUILD_TYPE")


def debug_info():
    conn = sqlite3.connect(":memory:")
    try:
        conn.enable_load_extension(True)
        conn.load_extension(EXTENSION)
        return conn.execute("SELECT runs_debug()").fetchone()[0]
    finally:
        conn.close()


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        return re.search(r"project\(sqlite_runs VERSION (\S+)", f.read()).group(1)


def git(*args):
    """git's output in ROOT, or None when git or the repository is missing."""
    if shutil.which("git") is None:
        return None
    proc = subprocess.run(["git", "--no-optional-locks", "-C", ROOT, *args],
                          capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


class RunsDebugTest(unittest.TestCase):
    def test_keys_in_order_all_strings(self):
        text = debug_info()
        info = json.loads(text)
        self.assertEqual(list(info), ["version", "commit", "build_type", "sqlite_version"])
        self.assertTrue(all(isinstance(v, str) for v in info.values()), text)
        # Compact, as SQLite's json() writes it.
        self.assertEqual(text, json.dumps(info, separators=(",", ":")))

    def test_version_is_the_projects(self):
        self.assertEqual(json.loads(debug_info())["version"], "v" + project_version())

    def test_build_type_is_cmakes(self):
        self.assertEqual(json.loads(debug_info())["build_type"], BUILD_TYPE)

    def test_sqlite_version_is_the_host_processes(self):
        self.assertEqual(json.loads(debug_info())["sqlite_version"], sqlite3.sqlite_version)

    def test_commit_is_this_checkouts(self):
        commit = json.loads(debug_info())["commit"]
        top = git("rev-parse", "--show-toplevel")
        if top is None or os.path.realpath(top) != os.path.realpath(ROOT):
            self.assertEqual(commit, "unknown")
            return
        # -dirty depends on the working tree at build time, which may have
        # changed since; the commit itself must not have.
        checkout = git("describe", "--always")
        self.assertEqual(commit.removesuffix("-dirty"), checkout,
                         f"the library was built from {commit}, the checkout is at {checkout}:"
                         " rebuild it (cmake --build) before testing")


class BuildInfoScriptTest(unittest.TestCase):
    """cmake/build_info.cmake, run as the build runs it."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sqlite-runs-build-info-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.output = os.path.join(self.tmp, "build_info_generated.h")

    def run_script(self, source_dir, commit="", build_type="Release"):
        return subprocess.run(
            [CMAKE, f"-DOUTPUT={self.output}", f"-DSOURCE_DIR={source_dir}",
             f"-DBUILD_TYPE={build_type}", f"-DCOMMIT={commit}", "-P", SCRIPT],
            capture_output=True, text=True)

    def defines(self):
        with open(self.output, encoding="utf-8") as f:
            return dict(re.findall(r'#define (\w+) "(.*)"', f.read()))

    def test_the_given_commit_wins(self):
        proc = self.run_script(ROOT, commit="v9.9.9-tarball")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(self.defines(), {"SQLITE_RUNS_COMMIT": "v9.9.9-tarball",
                                          "SQLITE_RUNS_BUILD_TYPE": "Release"})

    def test_outside_a_repository_the_commit_is_unknown(self):
        source = os.path.join(self.tmp, "unpacked")
        os.mkdir(source)
        proc = self.run_script(source)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(self.defines()["SQLITE_RUNS_COMMIT"], "unknown")

    @unittest.skipIf(shutil.which("git") is None, "git is not installed")
    def test_a_source_folder_inside_another_repository_is_unknown(self):
        outer = os.path.join(self.tmp, "outer")
        source = os.path.join(outer, "sqlite-runs-0.1.0")
        os.makedirs(source)
        subprocess.run(["git", "init", "-q", outer], check=True)
        subprocess.run(["git", "-C", outer, "-c", "user.name=t", "-c", "user.email=t@t",
                        "commit", "-q", "--allow-empty", "-m", "outer"], check=True)
        proc = self.run_script(source)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(self.defines()["SQLITE_RUNS_COMMIT"], "unknown")

    def test_the_header_is_rewritten_only_when_it_changes(self):
        self.assertEqual(self.run_script(ROOT, commit="abc").returncode, 0)
        os.utime(self.output, (1, 1))
        self.assertEqual(self.run_script(ROOT, commit="abc").returncode, 0)
        self.assertEqual(os.stat(self.output).st_mtime, 1)
        self.assertEqual(self.run_script(ROOT, commit="def").returncode, 0)
        self.assertNotEqual(os.stat(self.output).st_mtime, 1)
        self.assertEqual(self.defines()["SQLITE_RUNS_COMMIT"], "def")

    def test_a_quote_in_a_value_is_refused(self):
        proc = self.run_script(ROOT, build_type='My"Build')
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("BUILD_TYPE must not contain quotes, backslashes or newlines", proc.stderr)
        self.assertFalse(os.path.exists(self.output))


if __name__ == "__main__":
    unittest.main(verbosity=2)
