// TestDb: a SQLite connection with the built extension loaded, for tests.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <optional>
#include <string>
#include <vector>

namespace runs_test {

// What runs_migrate() returns once every migration in sql/ is applied: the
// highest NNN of sql/NNN_*.sql (tests/CMakeLists.txt derives it).
inline constexpr const char* kLatestSchemaVersion = RUNS_LATEST_SCHEMA_VERSION;

// The outcome of one statement: its error code and message, or its rows.
struct Outcome {
  int code = SQLITE_OK;           // primary result code
  int extended = SQLITE_OK;       // extended result code
  std::string message;            // sqlite3_errmsg() when code != SQLITE_OK
  std::vector<std::vector<std::optional<std::string>>> rows;  // NULL as nullopt
};

class TestDb {
 public:
  // Opens `path` (default: a private in-memory database) and loads the
  // extension from RUNS_EXTENSION_PATH.
  explicit TestDb(const std::string& path = ":memory:",
                  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) {
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << path << ": " << sqlite3_errmsg(db_);
      return;
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_enable_load_extension(db_, 1);
    char* error = nullptr;
    if (sqlite3_load_extension(db_, RUNS_EXTENSION_PATH, nullptr, &error) != SQLITE_OK) {
      ADD_FAILURE() << "cannot load " << RUNS_EXTENSION_PATH << ": " << (error ? error : "?");
    }
    sqlite3_free(error);
  }
  ~TestDb() {
    if (db_ != nullptr) {
      const int rc = sqlite3_close(db_);
      EXPECT_EQ(rc, SQLITE_OK) << "sqlite3_close: " << sqlite3_errmsg(db_);
    }
  }
  TestDb(const TestDb&) = delete;
  TestDb& operator=(const TestDb&) = delete;

  sqlite3* get() const { return db_; }

  // Runs every statement of `sql`, collecting the rows of the last one; stops
  // at the first error.
  Outcome run(const std::string& sql) const {
    Outcome out;
    const char* tail = sql.c_str();
    while (tail != nullptr && *tail != '\0') {
      sqlite3_stmt* stmt = nullptr;
      int rc = sqlite3_prepare_v2(db_, tail, -1, &stmt, &tail);
      if (rc != SQLITE_OK) return failure(out);
      if (stmt == nullptr) break;  // trailing whitespace or comment
      out.rows.clear();
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        std::vector<std::optional<std::string>> row;
        for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
          if (sqlite3_column_type(stmt, i) == SQLITE_NULL) {
            row.emplace_back(std::nullopt);
          } else {
            row.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, i)));
          }
        }
        out.rows.push_back(std::move(row));
      }
      if (rc != SQLITE_DONE) {
        failure(out);
        sqlite3_finalize(stmt);
        return out;
      }
      sqlite3_finalize(stmt);
    }
    return out;
  }

  // The single value of a statement that must succeed with one row, one column.
  std::optional<std::string> value(const std::string& sql) const {
    const Outcome out = run(sql);
    EXPECT_EQ(out.code, SQLITE_OK) << sql << ": " << out.message;
    EXPECT_EQ(out.rows.size(), 1u) << sql;
    if (out.code != SQLITE_OK || out.rows.size() != 1 || out.rows[0].size() != 1) return "<error>";
    return out.rows[0][0];
  }

  // The error message of a statement that must fail with `code` (extended).
  std::string error(const std::string& sql, int extended_code) const {
    const Outcome out = run(sql);
    EXPECT_EQ(out.extended, extended_code) << sql << ": " << out.message;
    EXPECT_TRUE(sqlite3_get_autocommit(db_) || sql.find("BEGIN") != std::string::npos)
        << "left inside a transaction: " << sql;
    return out.message;
  }

  void exec(const std::string& sql) const {
    const Outcome out = run(sql);
    ASSERT_EQ(out.code, SQLITE_OK) << sql << ": " << out.message;
  }

 private:
  Outcome& failure(Outcome& out) const {
    out.code = sqlite3_errcode(db_);
    out.extended = sqlite3_extended_errcode(db_);
    out.message = sqlite3_errmsg(db_);
    return out;
  }

  sqlite3* db_ = nullptr;
};

}  // namespace runs_test
