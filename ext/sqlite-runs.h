/*
** sqlite-runs linked into a program: the entry point of the static library
** (libsqlite-runs.a; find_package(sqlite-runs) target sqlite-runs::static,
** pkg-config sqlite-runs-static). The program links its own SQLite, 3.34.0
** or later, and registers the extension for every connection it opens from
** then on:
**
**   #include <sqlite3.h>
**   #include <sqlite-runs.h>
**
**   sqlite3_auto_extension((void (*)(void))sqlite3_runs_init);
**   sqlite3_open("app.db", &db);        // start_run() and the rest are here
**
** or for one open connection: sqlite3_runs_init(db, &error_message, NULL).
** It returns SQLITE_OK, or an error code with *error_message (free it with
** sqlite3_free()) when it cannot register, for example on a SQLite older
** than 3.34.0. The loadable module, runs.so, has the same entry point and is
** loaded with load_extension() instead: never link it.
*/
#ifndef SQLITE_RUNS_H
#define SQLITE_RUNS_H

#include <sqlite3.h>

#ifdef __cplusplus
extern "C" {
#endif

int sqlite3_runs_init(sqlite3 *db, char **error_message, const sqlite3_api_routines *api);

#ifdef __cplusplus
}
#endif

#endif /* SQLITE_RUNS_H */
