"""The npm package (bindings/node) installed as users install it, into fresh
npm projects, offline (no node-gyp, no download: the install script builds
the extension with the repository's CMake):

  1. `npm install <repo>/bindings/node` into a fresh project;
  2. `npm pack` in bindings/node, then `npm install <tarball>` into another
     fresh project: the tarball must carry the sources it builds from
     (runs-src/: exactly what bindings/sources.txt lists), and packing must leave
     the checkout as it was.

In each project, require('sqlite-runs') gives getLoadablePath(),
getMigrationsDir() (exactly the repository's sql/ files) and load(db), and
tests/node/client.test.mjs passes with every database loaded through load()
(RUNS_PROJECT). better-sqlite3 12 comes from tests/node/node_modules (npm
install --prefix tests/node): compiling it again in each project would take
minutes. Each install builds the extension once (two builds in all).

    /usr/bin/python3 tests/packages/test_node_package.py
"""
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import unittest

from package_support import REPO, SQL, cmake_version, vendored_files

PACKAGE = os.path.join(REPO, "bindings", "node")
TESTS_NODE = os.path.join(REPO, "tests", "node")
BETTER_SQLITE3 = os.path.join(TESTS_NODE, "node_modules", "better-sqlite3")
NPM = ["npm", "--no-audit", "--no-fund", "--loglevel=error"]

PROBE = """
const path = require('node:path');
const Database = require(process.argv[1]);  // node -e SCRIPT PATH: argv[1] is PATH
const sqliteRuns = require('sqlite-runs');
const fs = require('node:fs');
const db = new Database(':memory:');
console.log(sqliteRuns.load(db) === db);
console.log(sqliteRuns.getLoadablePath());
console.log(fs.readdirSync(sqliteRuns.getMigrationsDir()).sort().join(' '));
console.log(JSON.stringify(db.prepare('SELECT runs_migrate() AS v, runs_version() AS r').get()));
console.log(require('sqlite-runs/package.json').version);
try { sqliteRuns.load({}); } catch (e) { console.log(e.constructor.name + ': ' + e.message); }
"""


def run(command, cwd, env=None):
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result.stdout


class NodePackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(BETTER_SQLITE3):
            raise unittest.SkipTest("tests/node/node_modules/better-sqlite3 is missing: "
                                    "npm install --prefix tests/node")
        cls.tmp = tempfile.mkdtemp(prefix="runs-npmpkg-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def project(self, name):
        path = os.path.join(self.tmp, name)
        os.makedirs(path)
        with open(os.path.join(path, "package.json"), "w", encoding="utf-8") as f:
            json.dump({"name": name, "private": True}, f)
        return path

    def check_installed(self, project, installed_at):
        out = run(["node", "-e", PROBE, BETTER_SQLITE3], cwd=project).splitlines()
        self.assertEqual(out[0], "true")
        self.assertEqual(out[1], os.path.join(installed_at, "lib", "runs.so"))
        self.assertEqual(out[2], " ".join(SQL))
        self.assertEqual(json.loads(out[3]), {"v": len(SQL), "r": "v" + cmake_version()})
        self.assertEqual(out[4], cmake_version())
        self.assertEqual(out[5], "TypeError: sqlite-runs: load(db) takes a better-sqlite3 Database "
                                 "(an object with loadExtension())")
        env = dict(os.environ, RUNS_PROJECT=project)
        env.pop("RUNS_EXTENSION", None)
        result = subprocess.run(["node", "--test", os.path.join(TESTS_NODE, "client.test.mjs")],
                                capture_output=True, text=True, cwd=TESTS_NODE, env=env)
        self.assertEqual(result.returncode, 0, result.stdout[-6000:] + result.stderr[-3000:])
        self.assertRegex(result.stdout, r"\n# fail 0\n")

    def test_1_install_from_the_checkout(self):
        project = self.project("from-checkout")
        run(NPM + ["install", PACKAGE], cwd=project)
        # npm links a folder dependency: the package is the checkout's folder.
        self.assertEqual(os.path.realpath(os.path.join(project, "node_modules", "sqlite-runs")),
                         os.path.realpath(PACKAGE))
        self.check_installed(project, os.path.realpath(PACKAGE))

    def test_2_install_the_packed_tarball(self):
        before = sorted(os.listdir(PACKAGE))
        out = run(NPM + ["pack", "--json", "--pack-destination", self.tmp], cwd=PACKAGE)
        self.assertEqual(sorted(os.listdir(PACKAGE)), before)  # postpack removed runs-src/
        packed = json.loads(out)[0]
        files = {entry["path"] for entry in packed["files"]}
        for needed in ["index.js", "index.d.ts", "scripts/build.js"] + ["runs-src/sql/" + f for f in SQL]:
            self.assertIn(needed, files)
        # runs-src/ holds exactly what bindings/sources.txt lists, and the commit.
        self.assertEqual({f[len("runs-src/"):] for f in files if f.startswith("runs-src/")} - {"COMMIT"},
                         vendored_files())
        self.assertFalse([f for f in files if f.startswith("lib/")], "the build output must not be packed")
        tarball = os.path.join(self.tmp, packed["filename"])
        with tarfile.open(tarball) as tar:
            self.assertIn("package/runs-src/ext/runs.cpp", tar.getnames())
        project = self.project("from-tarball")
        run(NPM + ["install", tarball], cwd=project)
        installed = os.path.join(project, "node_modules", "sqlite-runs")
        self.assertFalse(os.path.islink(installed))
        self.check_installed(project, installed)


if __name__ == "__main__":
    unittest.main(verbosity=2)
