"""sqlite-runs: at most one active run per key across every process that opens
a SQLite database, as a SQLite extension.

    import sqlite3, sqlite_runs
    db = sqlite3.connect("app.db", isolation_level=None)
    sqlite_runs.load(db)
    db.execute("SELECT runs_busy_timeout(5000)")   # the library's busy handler
    db.execute("SELECT runs_migrate()")

The package ships the extension (runs.so, built from the repository's sources
when the package was installed) and the migrations (sql/NNN_name.sql) that
runs_migrate() applies, for migration tools.
"""
import os
import sqlite3
import sys

__all__ = ["loadable_path", "load", "migrations_dir", "ExtensionLoadingUnsupported"]

_HERE = os.path.dirname(os.path.abspath(__file__))


class ExtensionLoadingUnsupported(sqlite3.NotSupportedError):
    """The connection's SQLite module cannot load extensions."""


def loadable_path() -> str:
    """The path of the extension inside this package, for load_extension()."""
    return os.path.join(_HERE, "runs.so")


def migrations_dir() -> str:
    """The folder of the migrations, sql/NNN_name.sql, in version order by name."""
    return os.path.join(_HERE, "sql")


def load(conn) -> None:
    """Loads the extension into `conn`, a sqlite3 or apsw connection.

    Extension loading is enabled for the call only and disabled again after
    it, so that SQL cannot load other libraries (load_extension()) later.
    Raises ExtensionLoadingUnsupported when the connection's module was built
    without extension loading, and the module's own error when SQLite refuses
    the library.
    """
    # sqlite3 (and apsw from 3.41) spell them enable_load_extension() and
    # load_extension(); older apsw enableloadextension() and loadextension().
    enable = getattr(conn, "enable_load_extension", None) or getattr(conn, "enableloadextension", None)
    load_extension = getattr(conn, "load_extension", None) or getattr(conn, "loadextension", None)
    if enable is None or load_extension is None:
        if isinstance(conn, sqlite3.Connection):
            raise ExtensionLoadingUnsupported(
                f"sqlite_runs.load(): this Python's sqlite3 module cannot load extensions "
                f"({sys.executable} was built without --enable-loadable-sqlite-extensions): "
                "use a Python built with it (Debian's and Ubuntu's /usr/bin/python3; pyenv: "
                "PYTHON_CONFIGURE_OPTS=--enable-loadable-sqlite-extensions "
                "pyenv install VERSION), or an apsw connection")
        raise ExtensionLoadingUnsupported(
            f"sqlite_runs.load(): {type(conn).__module__}.{type(conn).__qualname__} cannot load "
            "extensions (it has no enable_load_extension() and load_extension()): pass a sqlite3 "
            "or apsw connection")
    enable(True)
    try:
        load_extension(loadable_path())
    finally:
        enable(False)
