/*
** Another statically linked extension, written the way most are: compiled
** without SQLITE_CORE, so it defines the global sqlite3_api pointer (and a
** symbol an extension of a C++ project might well define too). Linked into
** one program with libsqlite-runs.a, it proves that the two coexist: the
** program links, and both register with sqlite3_auto_extension().
*/
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

int runs_debug_level = 1; /* a name the sqlite-runs sources might have used */

static void other_extension(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  (void)argv;
  sqlite3_result_text(ctx, "other", -1, SQLITE_STATIC);
}

int sqlite3_other_init(sqlite3 *db, char **error_message, const sqlite3_api_routines *api) {
  SQLITE_EXTENSION_INIT2(api);
  (void)error_message;
  return sqlite3_create_function(db, "other_extension", 0, SQLITE_UTF8 | SQLITE_INNOCUOUS, 0,
                                 other_extension, 0, 0);
}
