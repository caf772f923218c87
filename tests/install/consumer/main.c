/* Loads the sqlite-runs that find_package(sqlite-runs) found, and uses it. */
#include <sqlite3.h>
#include <stdio.h>

static int print_row(void *unused, int columns, char **values, char **names) {
  (void)unused;
  (void)names;
  for (int i = 0; i < columns; ++i) printf("%s%s", i ? "|" : "", values[i] ? values[i] : "NULL");
  printf("\n");
  return 0;
}

static void run(sqlite3 *db, const char *sql) {
  char *error = NULL;
  if (sqlite3_exec(db, sql, print_row, NULL, &error) != SQLITE_OK) {
    printf("error %d: %s\n", sqlite3_extended_errcode(db), error);
    sqlite3_free(error);
  }
}

int main(void) {
  printf("package version: %s\n", RUNS_PACKAGE_VERSION);
  printf("extension (target): %s\n", RUNS_EXTENSION);
  printf("extension (variable): %s\n", RUNS_EXTENSION_VARIABLE);
  printf("sql dir: %s\n", RUNS_SQL_DIR);
  sqlite3 *db = NULL;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) return 1;
  sqlite3_extended_result_codes(db, 1);
  sqlite3_enable_load_extension(db, 1);
  char *error = NULL;
  if (sqlite3_load_extension(db, RUNS_EXTENSION, NULL, &error) != SQLITE_OK) {
    printf("cannot load %s: %s\n", RUNS_EXTENSION, error);
    return 1;
  }
  run(db, "SELECT runs_migrate()");
  run(db, "SELECT start_run('nightly')");
  run(db, "SELECT start_run('nightly')");
  run(db, "SELECT cancel_run(1)");
  run(db, "SELECT run_status(1)");
  return sqlite3_close(db) == SQLITE_OK ? 0 : 1;
}
