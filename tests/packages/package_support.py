"""What the package tests share: the repository, its migrations and version."""
import glob
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The migrations every package must carry: whatever sql/ holds.
SQL = sorted(os.path.basename(f) for f in glob.glob(os.path.join(REPO, "sql", "[0-9][0-9][0-9]_*.sql")))


def cmake_version():
    """The one version source, project(sqlite_runs VERSION ...) in CMakeLists.txt."""
    with open(os.path.join(REPO, "CMakeLists.txt"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("project(sqlite_runs VERSION "):
                return line.split()[2]
    raise AssertionError("no project(sqlite_runs VERSION ...) in CMakeLists.txt")
