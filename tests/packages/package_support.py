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


def vendored_files():
    """The files a package carries in runs-src/ (besides COMMIT): each file
    and folder that bindings/sources.txt lists, as the checkout holds them."""
    with open(os.path.join(REPO, "bindings", "sources.txt"), encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    found = set()
    for name in names:
        path = os.path.join(REPO, name)
        if os.path.isfile(path):
            found.add(name)
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            found.update(os.path.relpath(os.path.join(folder, f), REPO) for f in files)
    return found
