#include "statement.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <limits>
#include <optional>
#include <string>

namespace runs {

namespace {

// PRAGMA query_only of `db`; false when it cannot be read.
bool query_only(sqlite3* db) noexcept {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA query_only", -1, &stmt, nullptr) != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return false;
  }
  const bool on = sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_int(stmt, 0) != 0;
  sqlite3_finalize(stmt);
  return on;
}

// The directory of the main database file; nothing for an in-memory or
// temporary database.
std::optional<std::string> database_directory(sqlite3* db) {
  const char* file = sqlite3_db_filename(db, "main");
  if (file == nullptr || *file == '\0') return std::nullopt;
  const std::string path(file);
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return std::string(".");
  return slash == 0 ? std::string("/") : path.substr(0, slash);
}

// Bytes 18 and 19 of the main database's header are 2: the file is in WAL
// mode. Read through the connection's own open file, which is open even when
// the -wal or -shm file next to it could not be.
bool wal_format(sqlite3* db) noexcept {
  sqlite3_file* file = nullptr;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK ||
      file == nullptr || file->pMethods == nullptr) {
    return false;
  }
  unsigned char versions[2] = {};
  return file->pMethods->xRead(file, versions, 2, 18) == SQLITE_OK && versions[0] == 2 &&
         versions[1] == 2;
}

bool exists(const std::string& path) noexcept { return access(path.c_str(), F_OK) == 0; }

// The database's directory is why SQLite could not create the files it keeps
// next to the database: the -wal and -shm files of a WAL database (which even
// reading needs), or the rollback journal (which writing needs). `refused` is
// what the kernel said when SQLite created one (EACCES, which SQLite reports
// as SQLITE_READONLY_DIRECTORY), or 0 when SQLite does not say why (SQLITE_
// CANTOPEN): then the directory must be one this process cannot write
// (faccessat() with the effective ids, as open() checks) and a file to create
// missing, or nothing is certain and the result is nothing.
std::optional<Error> directory_error(sqlite3* db, int code, int refused) {
  const auto directory = database_directory(db);
  if (!directory) return std::nullopt;
  const bool wal = wal_format(db);
  if (refused == 0) {
    if (faccessat(AT_FDCWD, directory->c_str(), W_OK | X_OK, AT_EACCESS) == 0) return std::nullopt;
    refused = errno;
    const std::string database = sqlite3_db_filename(db, "main");
    const bool missing = wal ? !exists(database + "-wal") || !exists(database + "-shm")
                             : !exists(database + "-journal");
    if (!missing) return std::nullopt;
  }
  std::string why;
  switch (refused) {
    case EACCES:
    case EPERM:
      why = "this process may not create files in the directory " + *directory +
            ": give it write permission there, or move the database to a directory where it has it";
      break;
    case EROFS:
      why = "the directory " + *directory +
            " is on a read-only file system: mount it read-write, or move the database to a "
            "writable directory";
      break;
    default:
      return std::nullopt;
  }
  if (wal) {
    return Error(code,
                 "the database is in WAL mode, and SQLite cannot create its -wal and -shm files "
                 "next to it, which even reading needs: " + why);
  }
  return Error(code, "SQLite cannot create the database's rollback journal next to it: " + why);
}

// Who holds the lock, as far as this connection can tell after SQLITE_BUSY.
// It waited for readers when it holds the write lock itself (its COMMIT, or a
// statement that spills pages, needs the exclusive lock), or when `failed`,
// a write in autocommit, failed at its commit rather than while taking the
// lock (a statement that could not take a lock stays resumable:
// sqlite3_stmt_busy()). Only in rollback-journal mode do readers block a
// commit. Anything else waited for the write lock, or for a writer's
// exclusive lock.
Error busy_error(sqlite3* db, int code, sqlite3_stmt* failed) {
  const bool waited_for_readers =
      sqlite3_txn_state(db, "main") == SQLITE_TXN_WRITE ||
      (failed != nullptr && !sqlite3_stmt_readonly(failed) && !sqlite3_stmt_busy(failed));
  if (waited_for_readers) {
    return Error(code,
                 "the database is locked by a reader: another connection holds a read "
                 "transaction, and in rollback-journal mode a write cannot commit until every "
                 "reader has finished; busy_timeout ran out: retry, give the connection a longer "
                 "busy_timeout, or put the database in WAL mode (PRAGMA journal_mode = WAL), "
                 "where readers never block a commit");
  }
  return Error(code,
               "the database is locked by another writer and busy_timeout ran out: "
               "retry, or give the connection a longer busy_timeout");
}

}  // namespace

Error read_only_error(sqlite3* db, int code) {
  if (code == SQLITE_READONLY_DIRECTORY) {
    if (auto error = directory_error(db, code, EACCES)) return *error;
  }
  if (sqlite3_db_readonly(db, "main") != 1 && query_only(db)) {
    return Error(code,
                 "the connection has PRAGMA query_only on, which refuses every write: run "
                 "PRAGMA query_only = 0 to change runs");
  }
  return Error(code, "the database is read-only: open it read-write to change runs");
}

void require_writable(sqlite3* db) {
  if (sqlite3_db_readonly(db, "main") == 1 || query_only(db)) {
    throw read_only_error(db, SQLITE_READONLY);
  }
}

Error last_error(sqlite3* db, int rc, sqlite3_stmt* failed) {
  const int code = sqlite3_extended_errcode(db);
  if (code == SQLITE_BUSY_SNAPSHOT) {
    return Error(code,
                 "the database changed since this transaction began reading, so it cannot "
                 "write: roll back and retry, or begin the transaction with BEGIN IMMEDIATE");
  }
  switch (rc & 0xff) {
    case SQLITE_BUSY:
      return busy_error(db, code, failed);
    case SQLITE_READONLY:
      return read_only_error(db, code);
    case SQLITE_CANTOPEN:
      if (auto error = directory_error(db, code, 0)) return *error;
      return Error(code, sqlite3_errmsg(db));
    default:
      return Error(code, sqlite3_errmsg(db));
  }
}

std::optional<sqlite3_int64> exact_integer(double real) noexcept {
  if (std::trunc(real) != real) return std::nullopt;
  // 2^63 is exact as a double; every integral double below it fits.
  if (real < -9223372036854775808.0 || real >= 9223372036854775808.0) return std::nullopt;
  return static_cast<sqlite3_int64>(real);
}

Statement::Statement(sqlite3* db, std::string_view sql, unsigned prepare_flags) : db_(db) {
  const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), prepare_flags,
                                    &stmt_, nullptr);
  if (rc != SQLITE_OK) {
    Error error = last_error(db, rc);
    sqlite3_finalize(stmt_);
    throw error;
  }
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Query::~Query() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Query& Query::bind(int index, sqlite3_int64 value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK) throw last_error(db_, rc);
  return *this;
}

Query& Query::bind(int index, std::string_view text) {
  // Argument lengths are checked long before this limit.
  if (text.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    throw Error(SQLITE_TOOBIG, "text too long to bind");
  }
  const int rc = sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                                   SQLITE_STATIC);
  if (rc != SQLITE_OK) throw last_error(db_, rc);
  return *this;
}

Query& Query::bind_null(int index) {
  const int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK) throw last_error(db_, rc);
  return *this;
}

Query& Query::bind(int index, sqlite3_value* value) {
  const int rc = sqlite3_bind_value(stmt_, index, value);
  if (rc != SQLITE_OK) throw last_error(db_, rc);
  return *this;
}

bool Query::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw last_error(db_, rc, stmt_);
}

void Query::run() {
  while (step()) {
  }
}

sqlite3_int64 Query::int64(int column) const noexcept { return sqlite3_column_int64(stmt_, column); }

double Query::real(int column) const noexcept { return sqlite3_column_double(stmt_, column); }

int Query::type(int column) const noexcept { return sqlite3_column_type(stmt_, column); }

bool Query::is_null(int column) const noexcept {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::string Query::text(int column) const {
  const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  if (data == nullptr) return {};
  return std::string(data, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

}  // namespace runs
