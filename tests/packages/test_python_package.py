"""The Python package (bindings/python) installed as users install it, in fresh
venvs, with no package index (Debian's setuptools, build and venv only):

  1. `python3 -m build --no-isolation bindings/python`: the sdist (which must
     carry the extension's sources) and a wheel built from it; the wheel
     installs into a fresh venv (no system site-packages: nothing but the
     wheel) and passes tests/python/test_client.py there, every connection
     loaded with sqlite_runs.load();
  2. `pip install --no-build-isolation bindings/python` from the checkout into
     a venv with --system-site-packages (Debian's setuptools builds it; apsw
     comes from there too): the same client tests, an apsw connection, and
     the migrations folder holding exactly the repository's sql/ files;
(test_python_cannot_load.py covers a Python whose sqlite3 cannot load extensions.)

Run with Debian's /usr/bin/python3: /usr/bin/python3 tests/packages/test_python_package.py
Each install builds the extension once (two builds in all).
"""
import glob
import os
import shutil
import subprocess
import tarfile
import tempfile
import unittest
import zipfile

from package_support import REPO, SQL, cmake_version, vendored_files

PACKAGE = os.path.join(REPO, "bindings", "python")
CLIENT_TEST = os.path.join(REPO, "tests", "python", "test_client.py")


def run(*command, env=None, cwd=None):
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result.stdout


def offline_env():
    env = dict(os.environ)
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("RUNS_EXTENSION", None)
    return env


class PythonPackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="runs-pypkg-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def venv(self, name, *options):
        path = os.path.join(self.tmp, name)
        run("/usr/bin/python3", "-m", "venv", *options, path)
        return os.path.join(path, "bin", "python")

    def check_installed(self, python):
        """The client tests through sqlite_runs.load(), and what the package holds."""
        env = offline_env()
        env["RUNS_LOADER"] = "sqlite_runs"
        # From a folder that is not the checkout: the package must come from the venv.
        out = subprocess.run([python, CLIENT_TEST], capture_output=True, text=True, env=env, cwd=self.tmp)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertRegex(out.stderr, r"\nOK\n?$")
        probe = run(python, "-c",
                    "import os, sqlite3, sqlite_runs\n"
                    "print(sqlite_runs.loadable_path())\n"
                    "print(' '.join(sorted(os.listdir(sqlite_runs.migrations_dir()))))\n"
                    "db = sqlite3.connect(':memory:', isolation_level=None)\n"
                    "sqlite_runs.load(db)\n"
                    "print(db.execute('SELECT runs_migrate(), runs_version()').fetchone())\n"
                    "try:\n"
                    "    db.execute(\"SELECT load_extension('x')\")\n"
                    "except sqlite3.OperationalError as e:\n"
                    "    print(e)\n",
                    env=env, cwd=self.tmp).splitlines()
        self.assertTrue(probe[0].endswith("/site-packages/sqlite_runs/runs.so"), probe[0])
        self.assertTrue(probe[0].startswith(os.path.dirname(os.path.dirname(python))), probe[0])
        self.assertEqual(probe[1], " ".join(SQL))
        self.assertEqual(probe[2], f"({len(SQL)}, 'v{cmake_version()}')")
        # load() turned extension loading off again.
        self.assertEqual(probe[3], "not authorized")
        return os.path.dirname(os.path.dirname(probe[0]))  # site-packages

    def test_1_wheel_from_sdist_into_a_fresh_venv(self):
        dist = os.path.join(self.tmp, "dist")
        run("/usr/bin/python3", "-m", "build", "--no-isolation", "--outdir", dist, PACKAGE, env=offline_env())
        sdists = glob.glob(os.path.join(dist, "*.tar.gz"))
        wheels = glob.glob(os.path.join(dist, "*.whl"))
        self.assertEqual([os.path.basename(p) for p in sdists], [f"sqlite-runs-{cmake_version()}.tar.gz"])
        self.assertEqual(len(wheels), 1)
        self.assertRegex(os.path.basename(wheels[0]), rf"^sqlite_runs-{cmake_version()}-py3-none-linux_\w+\.whl$")
        with tarfile.open(sdists[0]) as sdist:
            names = sdist.getnames()
            carried = {m.name for m in sdist.getmembers() if m.isfile()}
        top = f"sqlite-runs-{cmake_version()}/runs-src/"
        for needed in ["sql/" + f for f in SQL]:
            self.assertIn(top + needed, names)
        # runs-src/ holds exactly what bindings/sources.txt lists, and the commit.
        self.assertEqual({n[len(top):] for n in carried if n.startswith(top)} - {"COMMIT"}, vendored_files())
        with zipfile.ZipFile(wheels[0]) as wheel:
            names = wheel.namelist()
        self.assertIn("sqlite_runs/runs.so", names)
        self.assertEqual(sorted(n for n in names if n.startswith("sqlite_runs/sql/")),
                         ["sqlite_runs/sql/" + f for f in SQL])
        python = self.venv("wheel-venv")
        run(python, "-m", "pip", "install", "--no-index", wheels[0], env=offline_env())
        self.check_installed(python)

    def test_2_pip_install_from_the_checkout(self):
        python = self.venv("checkout-venv", "--system-site-packages")
        run(python, "-m", "pip", "install", "--no-build-isolation", "--no-index", PACKAGE, env=offline_env())
        self.check_installed(python)
        out = run(python, "-c",
                  "import apsw, sqlite_runs\n"
                  "db = apsw.Connection(':memory:')\n"
                  "sqlite_runs.load(db)\n"
                  "print(list(db.execute('SELECT runs_migrate(), start_run(\\'full\\')')))\n",
                  env=offline_env(), cwd=self.tmp)
        latest = int(SQL[-1][:3])  # the schema version: the highest NNN of sql/NNN_*.sql
        self.assertEqual(out, f"[({latest}, 1)]\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
