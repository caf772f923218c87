// runs::Statement and runs::Query: RAII over sqlite3_stmt.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "error.h"
#include "sqlite.h"

namespace runs {

// Owns one prepared statement and finalizes it. Cached statements are
// prepared with SQLITE_PREPARE_PERSISTENT; SQLite re-prepares them by itself
// after a schema change.
class Statement {
 public:
  // Throws Error when SQLite cannot prepare `sql` (e.g. no such table).
  Statement(sqlite3* db, std::string_view sql, unsigned prepare_flags = 0);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  sqlite3* db() const noexcept { return db_; }
  sqlite3_stmt* handle() const noexcept { return stmt_; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// One execution of a Statement: bind, step, read columns. On scope exit it
// resets the statement and clears its bindings, so a cached statement never
// keeps a read lock open (COMMIT would fail) or points at a freed argument.
class Query {
 public:
  explicit Query(Statement& statement) noexcept : stmt_(statement.handle()), db_(statement.db()) {}
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& bind(int index, sqlite3_int64 value);
  // Binds without copying: `text` must outlive this Query.
  Query& bind(int index, std::string_view text);
  Query& bind_null(int index);
  // Binds a copy of `value`.
  Query& bind(int index, sqlite3_value* value);
  // Binds what `value` holds, as above, or NULL when it holds nothing.
  template <class T>
  Query& bind(int index, const std::optional<T>& value) {
    return value ? bind(index, *value) : bind_null(index);
  }

  // True while a row is available; false once the statement is done.
  bool step();
  // Steps a statement that returns no rows (BEGIN, UPDATE, ...) to the end.
  void run();

  sqlite3_int64 int64(int column) const noexcept;
  double real(int column) const noexcept;
  int type(int column) const noexcept;  // SQLITE_INTEGER, SQLITE_FLOAT, ...
  std::string text(int column) const;
  bool is_null(int column) const noexcept;

 private:
  sqlite3_stmt* stmt_;
  sqlite3* db_;
};

// The integer a REAL holds exactly, if it holds one.
std::optional<sqlite3_int64> exact_integer(double real) noexcept;

// The connection's last error as an Error. Busy and read-only errors, and
// files that cannot be created next to the database, get messages that say
// what happened and what to do; the rest keep SQLite's text. `failed`, the
// statement whose step failed, if any, tells a write that waited for readers
// from one that waited for a writer.
Error last_error(sqlite3* db, int rc, sqlite3_stmt* failed = nullptr);

// What a write to a read-only database (file, connection or PRAGMA
// query_only) reports, whichever check finds it: each its own message.
Error read_only_error(sqlite3* db, int code);

// Throws read_only_error() when `db` cannot write its main database (opened
// read-only, or PRAGMA query_only), for a function that may end up writing
// nothing and must still refuse.
void require_writable(sqlite3* db);

}  // namespace runs
