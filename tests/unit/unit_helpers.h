// Helpers shared by the unit tests (not a test file: not globbed).
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "system.h"
#include "test_db.h"

namespace runs_test {

using Row = std::vector<std::optional<std::string>>;
using Rows = std::vector<Row>;

// The GLOB every timestamp written by the extension must match.
inline const std::string kIsoGlob =
    "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'";

inline const std::string kNoSchema = "the database has no runs schema: run SELECT runs_migrate() first";
// What a function says on a database at `version`, older than the library's.
inline std::string old_schema(int version) {
  return "the runs schema is at version " + std::to_string(version) + " and this library needs " +
         std::string(runs_test::kLatestSchemaVersion) + ": run SELECT runs_migrate() first";
}
inline const std::string kVersion1 = old_schema(1);
inline const std::string kBusy =
    "the database is locked by another writer and busy_timeout ran out: retry, or give the "
    "connection a longer busy_timeout";
// In rollback-journal mode, a write that waited for another connection's read
// transaction to end.
inline const std::string kLockedByReader =
    "the database is locked by a reader: another connection holds a read transaction, and in "
    "rollback-journal mode a write cannot commit until every reader has finished; busy_timeout "
    "ran out: retry, give the connection a longer busy_timeout, or put the database in WAL mode "
    "(PRAGMA journal_mode = WAL), where readers never block a commit";
inline const std::string kInsideBegin =
    "cannot run inside a transaction, because it commits its own: call it after COMMIT or ROLLBACK";
inline const std::string kNoWriteLock =
    "cannot run inside a transaction that does not hold the write lock: begin it with BEGIN "
    "IMMEDIATE, or call it outside any transaction";
inline const std::string kReadTxn =
    "must be a statement of its own, with no FROM clause: this statement, or another one of this "
    "connection still being stepped, holds a read transaction";
inline const std::string kWriteTxn =
    "must be a statement of its own: it cannot run inside a statement that writes (INSERT ... "
    "SELECT, a trigger, a CHECK constraint)";
inline const std::string kWaitSuffix =
    "): wait for it to finish, or end it with complete_run(), fail_run() or cancel_run()";

// The rows of a statement that must succeed.
inline Rows rows(const TestDb& db, const std::string& sql) {
  const Outcome out = db.run(sql);
  EXPECT_EQ(out.code, SQLITE_OK) << sql << ": " << out.message;
  return out.rows;
}

inline Row row(const TestDb& db, const std::string& sql) {
  Rows all = rows(db, sql);
  EXPECT_EQ(all.size(), 1u) << sql;
  return all.empty() ? Row{} : all[0];
}

// "SELECT call", with `arg` in the place of the % in `call`.
inline std::string select_with(std::string call, const std::string& arg) {
  call.replace(call.find('%'), 1, arg);
  return "SELECT " + call;
}

// Each statement of `script` in turn gives its value (nullopt: NULL).
inline void expect_values(const TestDb& db,
                          std::initializer_list<std::pair<std::string, std::optional<std::string>>> script) {
  for (const auto& [sql, value] : script) EXPECT_EQ(db.value(sql), value) << sql;
}

// A single-quoted SQL literal.
inline std::string quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

inline std::string count(const TestDb& db, const std::string& table) {
  return db.value("SELECT count(*) FROM " + table).value_or("NULL");
}

// Everything observable in the database: schema (main and temp) and the
// contents of the runs tables that exist, to check that a failure wrote
// nothing.
inline Rows dump(const TestDb& db) {
  Rows out = rows(db, "SELECT 'main', type, name, tbl_name, sql FROM sqlite_schema ORDER BY name");
  for (Row& r : rows(db, "SELECT 'temp', type, name, tbl_name, sql FROM sqlite_temp_schema ORDER BY name")) {
    out.push_back(r);
  }
  for (const char* table : {"runs", "runs_schema_migrations", "sqlite_sequence"}) {
    const Rows exists = rows(db, std::string("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = '") +
                                     table + "'");
    if (exists.empty()) continue;
    out.push_back({std::string("table ") + table});
    for (Row& r : rows(db, std::string("SELECT * FROM ") + table + " ORDER BY 1")) out.push_back(r);
  }
  return out;
}

// sqlite_schema as (type, name, tbl_name, sql), for schema comparisons.
inline Rows schema(const TestDb& db) {
  return rows(db, "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name");
}

// The text of sql/00N_*.sql, N from 1 to 3.
inline std::string migration_sql(int n) {
  static const char* const kFiles[] = {"/sql/001_create_runs.sql", "/sql/002_one_active_run.sql",
                                       "/sql/003_run_owners.sql", "/sql/004_run_guards.sql"};
  const int known = static_cast<int>(std::size(kFiles));
  EXPECT_TRUE(n >= 1 && n <= known) << "no migration " << n;
  if (n < 1 || n > known) return "";
  return read_text(std::string(RUNS_SOURCE_DIR) + kFiles[n - 1]);
}

// The latest schema version as a number.
inline int latest_schema_version() { return std::stoi(runs_test::kLatestSchemaVersion); }

// sqlite3_exec() of a whole script: its result code and error message.
struct ExecResult {
  int rc = SQLITE_OK;
  int extended = SQLITE_OK;
  std::string message;
};

inline ExecResult exec_script(const TestDb& db, const std::string& sql) {
  ExecResult result;
  char* message = nullptr;
  result.rc = sqlite3_exec(db.get(), sql.c_str(), nullptr, nullptr, &message);
  result.extended = sqlite3_extended_errcode(db.get());
  if (message != nullptr) result.message = message;
  sqlite3_free(message);
  return result;
}

// Applies sql/001 to sql/00N by hand, as an older library left a database.
inline void apply_migrations(const TestDb& db, int through) {
  for (int n = 1; n <= through; ++n) {
    ASSERT_EQ(exec_script(db, migration_sql(n)).rc, SQLITE_OK) << "migration " << n;
  }
}

// A database file private to the running test, deleted (with its journals)
// when the test ends.
class TempFile {
 public:
  TempFile() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name();
    for (char& c : name) {
      if (c == '/') c = '_';
    }
    path_ = ::testing::TempDir() + "runs_unit_" + std::to_string(::getpid()) + "_" + name + ".db";
    remove_all();
  }
  ~TempFile() { remove_all(); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  void remove_all() const {
    for (const char* suffix : {"", "-journal", "-wal", "-shm"}) {
      std::remove((path_ + suffix).c_str());
    }
  }
  std::string path_;
};

// A fixture whose tests check refusals: SetUp() of the derived fixture fills
// the database and then sets `before = dump(db)`.
class RefusalTest : public ::testing::Test {
 protected:
  // Migrates, runs each statement of `setup`, which must give its value (or,
  // given none, succeed without a row), and records `before`.
  void prepare(std::initializer_list<std::pair<std::string, std::optional<std::string>>> setup) {
    ASSERT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
    for (const auto& [sql, value] : setup) {
      if (value) {
        ASSERT_EQ(db.value(sql), value) << sql;
      } else {
        db.exec(sql);
      }
    }
    before = dump(db);
  }

  // `sql` fails with `code` and `message`, writes nothing, leaves autocommit on.
  void refused(const std::string& sql, int code, const std::string& message) {
    EXPECT_EQ(db.error(sql, code), message) << sql;
    EXPECT_TRUE(sqlite3_get_autocommit(db.get())) << sql;
    EXPECT_EQ(dump(db), before) << sql;
  }

  TestDb db;
  Rows before;
};

// The number of prepared statements a connection holds.
inline int statement_count(sqlite3* db) {
  int n = 0;
  for (sqlite3_stmt* stmt = sqlite3_next_stmt(db, nullptr); stmt != nullptr;
       stmt = sqlite3_next_stmt(db, stmt)) {
    ++n;
  }
  return n;
}

}  // namespace runs_test
