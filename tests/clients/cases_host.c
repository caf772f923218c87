/*
** The shared client cases (tests/clients/cases.json) from C, in two ways:
**
**   cases_host CASES_JSON DATABASE              (a new file each run) the program
**       links the static
**       library (built with -DRUNS_STATIC) and registers it with
**       sqlite3_auto_extension(), as a Go, Rust or embedded C program does
**   cases_host CASES_JSON DATABASE EXTENSION    it loads the loadable module
**       with sqlite3_load_extension(), as any SQLite host does
**
** It links whichever SQLite it is built with: Debian's, or an amalgamation
** of another version (tests/versions/). The cases are read with SQLite's own
** JSON functions. Each step binds its arguments by their JSON type and
** expects its value, or its error message (a timestamp shown as TIME) and
** extended result code. Prints one line per step and exits with 1 if any
** failed.
*/
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>
#ifdef RUNS_STATIC
#include <sqlite-runs.h>
#endif
#ifdef RUNS_OTHER_EXTENSION
/* tests/static/other_extension.c, linked into the same program. */
int sqlite3_other_init(sqlite3 *db, char **error_message, const sqlite3_api_routines *api);
#endif

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  char *text = NULL;
  size_t size = 0;
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    char *grown = realloc(text, size + n + 1);
    if (grown == NULL) break;
    text = grown;
    memcpy(text + size, chunk, n);
    size += n;
    text[size] = '\0';
  }
  fclose(f);
  return text;
}

/* Replaces each timestamp such as 2026-11-29T09:21:18.123Z by TIME, in place. */
static void mask_timestamps(char *text) {
  static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
  const size_t length = sizeof shape - 1;
  char *out = text;
  for (const char *in = text; *in != '\0';) {
    size_t k = 0;
    while (k < length && in[k] != '\0' &&
           (shape[k] == 'd' ? isdigit((unsigned char)in[k]) != 0 : in[k] == shape[k])) {
      ++k;
    }
    if (k == length) {
      memcpy(out, "TIME", 4);
      out += 4;
      in += length;
    } else {
      *out++ = *in++;
    }
  }
  *out = '\0';
}

static int bind_arguments(sqlite3 *cases, const char *step, sqlite3_stmt *stmt) {
  sqlite3_stmt *args = NULL;
  if (sqlite3_prepare_v2(cases, "SELECT type, value FROM json_each(?1, '$.args')", -1, &args,
                         NULL) != SQLITE_OK) {
    return SQLITE_ERROR;
  }
  sqlite3_bind_text(args, 1, step, -1, SQLITE_STATIC);
  int i = 0;
  int rc = SQLITE_OK;
  while (rc == SQLITE_OK && sqlite3_step(args) == SQLITE_ROW) {
    const char *type = (const char *)sqlite3_column_text(args, 0);
    ++i;
    if (strcmp(type, "integer") == 0) {
      rc = sqlite3_bind_int64(stmt, i, sqlite3_column_int64(args, 1));
    } else if (strcmp(type, "real") == 0) {
      rc = sqlite3_bind_double(stmt, i, sqlite3_column_double(args, 1));
    } else if (strcmp(type, "null") == 0) {
      rc = sqlite3_bind_null(stmt, i);
    } else {
      rc = sqlite3_bind_text(stmt, i, (const char *)sqlite3_column_text(args, 1), -1,
                             SQLITE_TRANSIENT);
    }
  }
  sqlite3_finalize(args);
  return rc;
}

/* The step's expectation: "value" (text, or NULL for SQL NULL) or an error
** message and code. */
struct expected {
  int is_error;
  int code;
  char *text; /* the value or the error message; NULL for SQL NULL */
};

static struct expected expectation(sqlite3 *cases, const char *step) {
  struct expected e = {0, 0, NULL};
  sqlite3_stmt *q = NULL;
  sqlite3_prepare_v2(cases,
                     "SELECT json_type(?1, '$.error') IS NOT NULL,"
                     " json_extract(?1, '$.error.code'),"
                     " coalesce(json_extract(?1, '$.error.message'), json_extract(?1, '$.result'))",
                     -1, &q, NULL);
  sqlite3_bind_text(q, 1, step, -1, SQLITE_STATIC);
  if (sqlite3_step(q) == SQLITE_ROW) {
    e.is_error = sqlite3_column_int(q, 0);
    e.code = sqlite3_column_int(q, 1);
    if (sqlite3_column_type(q, 2) != SQLITE_NULL) {
      e.text = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(q, 2));
    }
  }
  sqlite3_finalize(q);
  return e;
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: %s CASES_JSON DATABASE [EXTENSION]\n", argv[0]);
    return 2;
  }
  char *json = read_file(argv[1]);
  if (json == NULL) {
    fprintf(stderr, "cannot read %s\n", argv[1]);
    return 2;
  }
#ifdef RUNS_STATIC
  if (argc == 3) sqlite3_auto_extension((void (*)(void))sqlite3_runs_init);
#endif
#ifdef RUNS_OTHER_EXTENSION
  sqlite3_auto_extension((void (*)(void))sqlite3_other_init);
#endif
  remove(argv[2]); /* a new database each run */
  sqlite3 *db = NULL;
  if (sqlite3_open(argv[2], &db) != SQLITE_OK) {
    fprintf(stderr, "cannot open %s: %s\n", argv[2], sqlite3_errmsg(db));
    return 2;
  }
  sqlite3_extended_result_codes(db, 1);
  if (argc == 4) {
    char *error = NULL;
    sqlite3_enable_load_extension(db, 1);
    if (sqlite3_load_extension(db, argv[3], NULL, &error) != SQLITE_OK) {
      fprintf(stderr, "cannot load %s: %s\n", argv[3], error);
      return 2;
    }
  }
  if (sqlite3_exec(db, "SELECT runs_busy_timeout(5000)", NULL, NULL, NULL) != SQLITE_OK) {
    fprintf(stderr, "runs_busy_timeout(): %s\n", sqlite3_errmsg(db));
    return 2;
  }
  printf("SQLite %s\n", sqlite3_libversion());

  sqlite3 *cases = NULL;
  sqlite3_open(":memory:", &cases);
  sqlite3_stmt *steps = NULL;
  if (sqlite3_prepare_v2(cases, "SELECT json_extract(value, '$.sql'), value"
                                " FROM json_each(?1, '$.steps')",
                         -1, &steps, NULL) != SQLITE_OK) {
    fprintf(stderr, "cannot read the cases: %s\n", sqlite3_errmsg(cases));
    return 2;
  }
  sqlite3_bind_text(steps, 1, json, -1, SQLITE_STATIC);
  int number = 0;
  int failed = 0;
  while (sqlite3_step(steps) == SQLITE_ROW) {
    ++number;
    const char *sql = (const char *)sqlite3_column_text(steps, 0);
    const char *step = (const char *)sqlite3_column_text(steps, 1);
    struct expected want = expectation(cases, step);
    char *got = NULL;
    int code = SQLITE_OK;
    sqlite3_stmt *stmt = NULL;
    code = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    if (code == SQLITE_OK) code = bind_arguments(cases, step, stmt);
    if (code == SQLITE_OK) {
      code = sqlite3_step(stmt);
      if (code == SQLITE_ROW) {
        if (sqlite3_column_type(stmt, 0) != SQLITE_NULL) {
          got = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(stmt, 0));
        }
        code = SQLITE_OK;
      }
    }
    if (code != SQLITE_OK) {
      code = sqlite3_extended_errcode(db);
      got = sqlite3_mprintf("%s", sqlite3_errmsg(db));
      mask_timestamps(got);
    }
    sqlite3_finalize(stmt);
    int ok;
    if (want.is_error) {
      ok = code == want.code && got != NULL && strcmp(got, want.text) == 0;
    } else {
      ok = code == SQLITE_OK && ((got == NULL && want.text == NULL) ||
                                 (got != NULL && want.text != NULL && strcmp(got, want.text) == 0));
    }
    if (ok) {
      printf("ok %d - %s\n", number, sql);
    } else {
      ++failed;
      printf("not ok %d - %s\n  expected %s %d '%s', got %d '%s'\n", number, sql,
             want.is_error ? "error" : "value", want.code, want.text ? want.text : "NULL", code,
             got ? got : "NULL");
    }
    sqlite3_free(got);
    sqlite3_free(want.text);
  }
  sqlite3_finalize(steps);
#ifdef RUNS_OTHER_EXTENSION
  ++number;
  if (sqlite3_exec(db, "SELECT other_extension()", NULL, NULL, NULL) == SQLITE_OK) {
    printf("ok %d - the other statically linked extension works too\n", number);
  } else {
    ++failed;
    printf("not ok %d - other_extension(): %s\n", number, sqlite3_errmsg(db));
  }
#endif
  sqlite3_close(cases);
  free(json);
  if (sqlite3_close(db) != SQLITE_OK) {
    printf("sqlite3_close: %s\n", sqlite3_errmsg(db));
    ++failed;
  }
  if (number == 0) {
    printf("no cases in %s\n", argv[1]);
    return 1;
  }
  printf("%d passed, %d failed\n", number - failed, failed);
  return failed > 0;
}
