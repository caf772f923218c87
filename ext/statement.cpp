#include "statement.h"

#include <cmath>
#include <limits>

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

}  // namespace

Error read_only_error(sqlite3* db, int code) {
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

Error last_error(sqlite3* db, int rc) {
  const int code = sqlite3_extended_errcode(db);
  if (code == SQLITE_BUSY_SNAPSHOT) {
    return Error(code,
                 "the database changed since this transaction began reading, so it cannot "
                 "write: roll back and retry, or begin the transaction with BEGIN IMMEDIATE");
  }
  switch (rc & 0xff) {
    case SQLITE_BUSY:
      return Error(code,
                   "the database is locked by another writer and busy_timeout ran out: "
                   "retry, or give the connection a longer busy_timeout");
    case SQLITE_READONLY:
      return read_only_error(db, code);
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
  throw last_error(db_, rc);
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
