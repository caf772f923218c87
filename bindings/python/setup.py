"""Builds sqlite-runs' extension with the repository's own CMake build (target
`runs`) and puts runs.so and the migrations (sql/*.sql) inside the package.

The sources are the repository's (two folders up) when building from a
checkout (pip install bindings/python, pip install git+URL#subdirectory=...).
An sdist carries the files the build needs in runs-src/ instead (see Sdist),
so that a wheel built from it, as `python -m build` does, finds them too.
Needs cmake, a C++20 compiler and sqlite3ext.h (Debian: cmake g++
libsqlite3-dev).
"""
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
VENDORED = "runs-src"
COMMIT_FILE = "COMMIT"  # in runs-src/: the commit the sdist was made from


def is_source_root(path):
    cmakelists = path / "CMakeLists.txt"
    return (cmakelists.is_file() and (path / "ext").is_dir()
            and "project(sqlite_runs " in cmakelists.read_text(encoding="utf-8"))


def source_root():
    for candidate in (HERE / VENDORED, HERE.parent.parent):
        if is_source_root(candidate):
            return candidate
    raise SystemExit(
        f"sqlite-runs: no extension sources at {HERE.parent.parent} or {HERE / VENDORED}: "
        "install from a checkout of the repository (bindings/python) or from its sdist")


def sources(checkout):
    """What the CMake build of target `runs` reads, relative to the repository's
    root: bindings/sources.txt, the list the npm package reads too."""
    lines = (checkout / "bindings" / "sources.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in (text.strip() for text in lines) if line and not line.startswith("#")]


def version():
    text = (source_root() / "CMakeLists.txt").read_text(encoding="utf-8")
    match = re.search(r"project\(sqlite_runs VERSION ([0-9.]+)", text)
    if not match:
        raise SystemExit("sqlite-runs: no project(sqlite_runs VERSION ...) in CMakeLists.txt")
    return match.group(1)


def run(command, **kwargs):
    print("sqlite-runs:", " ".join(str(part) for part in command), flush=True)
    try:
        subprocess.run([str(part) for part in command], check=True, **kwargs)
    except FileNotFoundError as error:
        raise SystemExit(f"sqlite-runs: {error.filename} not found: building the extension needs "
                         "cmake, a C++20 compiler and sqlite3ext.h "
                         "(Debian, Ubuntu: apt-get install cmake g++ libsqlite3-dev)") from None
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"sqlite-runs: building the extension failed ({error}); it needs cmake, "
                         "a C++20 compiler and sqlite3ext.h "
                         "(Debian, Ubuntu: apt-get install cmake g++ libsqlite3-dev)") from None


class BuildWithExtension(build_py):
    """The Python files, then runs.so and sql/ next to them."""

    def run(self):
        super().run()
        root = source_root()
        package = Path(self.build_lib) / "sqlite_runs"
        package.mkdir(parents=True, exist_ok=True)
        configure = ["cmake", "-S", root, "-DCMAKE_BUILD_TYPE=Release", "-DRUNS_BUILD_TESTS=OFF",
                     "-DCMAKE_COMPILE_WARNING_AS_ERROR=OFF"]
        commit = root / COMMIT_FILE
        if commit.is_file():
            configure.append("-DRUNS_SOURCE_COMMIT=" + commit.read_text(encoding="utf-8").strip())
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
        # A fresh build folder each time: a cached one may belong to other sources.
        with tempfile.TemporaryDirectory(prefix="sqlite-runs-build-") as build:
            run(configure + ["-B", build])
            run(["cmake", "--build", build, "--target", "runs", "--parallel", jobs])
            shutil.copy2(Path(build) / "runs.so", package / "runs.so")
        sql = package / "sql"
        shutil.rmtree(sql, ignore_errors=True)
        sql.mkdir()
        # Whatever sql/ holds: the migrations are never listed here.
        for migration in sorted((root / "sql").glob("[0-9][0-9][0-9]_*.sql")):
            shutil.copy2(migration, sql / migration.name)


class Sdist(sdist):
    """Carries the build's sources in runs-src/, and the commit they are from."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        root = source_root()
        target = Path(base_dir) / VENDORED
        if root == HERE / VENDORED:  # an sdist made from an sdist
            return
        for name in sources(root):
            source = root / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)
        described = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True, text=True, check=False)
        if described.returncode == 0 and described.stdout.strip():
            (target / COMMIT_FILE).write_text(described.stdout.strip() + "\n", encoding="utf-8")


class BinaryDistribution(Distribution):
    """A wheel with a platform tag: it carries a native library."""

    def has_ext_modules(self):
        return True


commands = {"build_py": BuildWithExtension, "sdist": Sdist}
try:
    from wheel.bdist_wheel import bdist_wheel

    class BdistWheel(bdist_wheel):
        """runs.so is no Python extension module: any Python 3 on this platform loads it."""

        def get_tag(self):
            _, _, platform = super().get_tag()
            return "py3", "none", platform

    commands["bdist_wheel"] = BdistWheel
except ImportError:  # no wheel package: an sdist or a direct install only
    pass

setup(version=version(), cmdclass=commands, distclass=BinaryDistribution,
      package_data={"sqlite_runs": ["py.typed"]})
