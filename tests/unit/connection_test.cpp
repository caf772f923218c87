// Per-connection behaviour: the statement cache, close, loading twice,
// last_insert_rowid, the host version check and the registered functions.
#include <set>
#include <tuple>

#include "host_version.h"
#include "unit_helpers.h"

namespace {

using namespace runs_test;

void cycle(const TestDb& db, int id) {
  const std::string n = std::to_string(id);
  EXPECT_EQ(db.value("SELECT start_run('s')"), n);
  EXPECT_EQ(db.value("SELECT active_run()"), n);
  EXPECT_EQ(db.value("SELECT mark_run_running(" + n + ")"), "updated");
  EXPECT_EQ(db.value("SELECT update_run_progress(" + n + ", 1, 2, 'x')"), "updated");
  EXPECT_EQ(db.value("SELECT complete_run(" + n + ")"), "updated");
  EXPECT_EQ(db.value("SELECT run_status(" + n + ")"), "completed");
}

TEST(Connection, PreparedStatementsAreCached) {
  TestDb db;
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  cycle(db, 1);
  const int after_one = statement_count(db.get());
  EXPECT_GT(after_one, 0);
  for (int id = 2; id <= 6; ++id) cycle(db, id);
  EXPECT_EQ(statement_count(db.get()), after_one);
  EXPECT_EQ(db.value("SELECT fail_run(6, 'x')"), "not_in_expected_state");
  EXPECT_EQ(db.value("SELECT start_run('s')"), "7");
  EXPECT_EQ(db.value("SELECT fail_run(7, 'x')"), "updated");
  EXPECT_EQ(db.value("SELECT start_run('s')"), "8");
  EXPECT_EQ(db.value("SELECT cancel_run(8)"), "updated");
  const int all = statement_count(db.get());
  for (int id = 9; id <= 13; ++id) cycle(db, id);
  EXPECT_EQ(statement_count(db.get()), all);
}

TEST(Connection, FailuresDoNotLeakStatements) {
  TestDb db;
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(db.value("SELECT start_run('s')"), "1");
  const int before = statement_count(db.get());
  for (int i = 0; i < 5; ++i) {
    db.error("SELECT start_run('s')", SQLITE_CONSTRAINT_UNIQUE);
    db.error("SELECT start_run('')", SQLITE_ERROR);
    db.error("BEGIN; SELECT start_run('s')", SQLITE_ERROR);
    db.exec("ROLLBACK");
  }
  EXPECT_EQ(statement_count(db.get()), before);
}

TEST(Connection, UnmigratedFailuresDoNotLeakStatements) {
  TestDb db;
  db.error("SELECT start_run('s')", SQLITE_ERROR);
  const int before = statement_count(db.get());
  for (int i = 0; i < 5; ++i) {
    db.error("SELECT start_run('s')", SQLITE_ERROR);
    db.error("SELECT active_run()", SQLITE_ERROR);
  }
  EXPECT_EQ(statement_count(db.get()), before);
}

TEST(Connection, PlainCloseSucceedsAfterUse) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
  sqlite3_enable_load_extension(db, 1);
  char* error = nullptr;
  ASSERT_EQ(sqlite3_load_extension(db, RUNS_EXTENSION_PATH, nullptr, &error), SQLITE_OK) << error;
  ASSERT_EQ(sqlite3_exec(db, "SELECT runs_migrate(); SELECT start_run('a'); SELECT mark_run_running(1);"
                             " SELECT complete_run(1); SELECT start_run('b'); SELECT start_run('c')",
                         nullptr, nullptr, &error),
            SQLITE_CONSTRAINT);
  sqlite3_free(error);
  EXPECT_GT(statement_count(db), 0);
  EXPECT_EQ(sqlite3_close(db), SQLITE_OK);  // not close_v2: the cache must be gone
}

TEST(Connection, PlainCloseSucceedsWithoutUse) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
  sqlite3_enable_load_extension(db, 1);
  ASSERT_EQ(sqlite3_load_extension(db, RUNS_EXTENSION_PATH, nullptr, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_close(db), SQLITE_OK);
}

TEST(Connection, LoadingTwiceOnOneConnection) {
  TestDb db;
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
  char* error = nullptr;
  ASSERT_EQ(sqlite3_load_extension(db.get(), RUNS_EXTENSION_PATH, nullptr, &error), SQLITE_OK)
      << (error ? error : "");
  sqlite3_free(error);
  EXPECT_EQ(db.value("SELECT active_run()"), "1");
  EXPECT_EQ(db.error("SELECT start_run('b')", SQLITE_CONSTRAINT_UNIQUE).substr(0, 36),
            "start_run(): run 1 is already active");
  EXPECT_EQ(db.value("SELECT cancel_run(1)"), "updated");
  EXPECT_EQ(db.value("SELECT start_run('b')"), "2");
  // ~TestDb checks that sqlite3_close() returns SQLITE_OK.
}

TEST(Connection, LoadingTwiceThenPlainClose) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
  sqlite3_enable_load_extension(db, 1);
  ASSERT_EQ(sqlite3_load_extension(db, RUNS_EXTENSION_PATH, nullptr, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "SELECT runs_migrate(); SELECT start_run('a')", nullptr, nullptr, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_load_extension(db, RUNS_EXTENSION_PATH, nullptr, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "SELECT cancel_run(1); SELECT start_run('b')", nullptr, nullptr, nullptr),
            SQLITE_OK);
  EXPECT_EQ(sqlite3_close(db), SQLITE_OK);
}

TEST(Connection, ConnectionsHaveTheirOwnCaches) {
  TestDb first;
  TestDb second;
  EXPECT_EQ(first.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(second.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(first.value("SELECT start_run('a')"), "1");
  EXPECT_EQ(second.value("SELECT active_run()"), std::nullopt);  // separate in-memory databases
  EXPECT_EQ(second.value("SELECT start_run('b')"), "1");
}

TEST(Connection, LastInsertRowidIsRestored) {
  TestDb db;
  db.exec("CREATE TABLE t(x); INSERT INTO t(rowid, x) VALUES (7, 'a')");
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);  // inserts its bookkeeping rows
  EXPECT_EQ(sqlite3_last_insert_rowid(db.get()), 7);
  EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
  EXPECT_EQ(sqlite3_last_insert_rowid(db.get()), 7);
  EXPECT_EQ(db.error("SELECT start_run('a')", SQLITE_CONSTRAINT_UNIQUE).substr(0, 36),
            "start_run(): run 1 is already active");
  EXPECT_EQ(sqlite3_last_insert_rowid(db.get()), 7);
  db.exec("INSERT INTO t(rowid, x) VALUES (42, 'a')");
  EXPECT_EQ(db.value("SELECT cancel_run(1)"), "updated");
  EXPECT_EQ(db.value("SELECT start_run('b')"), "2");
  EXPECT_EQ(db.value("SELECT last_insert_rowid()"), "42");
  EXPECT_EQ(sqlite3_last_insert_rowid(db.get()), 42);
}

TEST(Connection, SchemaChangesAfterCachingAreSeen) {
  TestDb db;
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
  // Another column added by the application: cached statements re-prepare.
  db.exec("ALTER TABLE runs ADD COLUMN owner TEXT");
  EXPECT_EQ(db.value("SELECT mark_run_running(1)"), "updated");
  EXPECT_EQ(db.value("SELECT complete_run(1)"), "updated");
  EXPECT_EQ(db.value("SELECT start_run('b')"), "2");
}

TEST(HostVersion, TooOldSqliteIsNamed) {
  EXPECT_EQ(runs::host_version_problem(3033000, "3.33.0"),
            "sqlite-runs needs SQLite 3.34.0 or later, but this program runs SQLite 3.33.0: load "
            "it into a newer SQLite");
  EXPECT_EQ(runs::host_version_problem(3033999, "3.33.999"),
            "sqlite-runs needs SQLite 3.34.0 or later, but this program runs SQLite 3.33.999: load "
            "it into a newer SQLite");
  EXPECT_EQ(runs::host_version_problem(3034000, "3.34.0"), std::nullopt);
  EXPECT_EQ(runs::host_version_problem(3040001, "3.40.1"), std::nullopt);
  EXPECT_EQ(runs::host_version_problem(sqlite3_libversion_number(), sqlite3_libversion()),
            std::nullopt);
}

// ---- the registered functions --------------------------------------------

using Registration = std::tuple<std::string, int, long long>;  // name, narg, flags

std::set<Registration> registrations(sqlite3* db) {
  std::set<Registration> out;
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT DISTINCT name, narg, flags FROM pragma_function_list",
                               -1, &stmt, nullptr),
            SQLITE_OK);
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    out.emplace(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)),
                sqlite3_column_int(stmt, 1), sqlite3_column_int64(stmt, 2));
  }
  sqlite3_finalize(stmt);
  return out;
}

constexpr long long kDirectOnly = 0x80000;
constexpr long long kInnocuous = 0x200000;
constexpr long long kDeterministic = 0x800;

TEST(Api, ExactlyTheseFunctionsAreRegistered) {
  sqlite3* plain = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &plain), SQLITE_OK);
  const std::set<Registration> builtin = registrations(plain);
  EXPECT_EQ(sqlite3_close(plain), SQLITE_OK);
  TestDb db;
  std::set<Registration> added;
  for (const Registration& r : registrations(db.get())) {
    if (builtin.count(r) == 0) added.insert(r);
  }
  // Each function: its arities and its flags.
  const std::vector<std::tuple<std::string, std::vector<int>, long long>> functions = {
      {"start_run", {1, 2, 3, 4}, kDirectOnly},  {"active_run", {0, 1}, kDirectOnly},
      {"mark_run_running", {1}, kDirectOnly},     {"complete_run", {1}, kDirectOnly},
      {"fail_run", {2}, kDirectOnly},             {"cancel_run", {1}, kDirectOnly},
      {"update_run_progress", {4}, kDirectOnly},  {"heartbeat_run", {1}, kDirectOnly},
      {"reap_stale_runs", {0, 1, 2}, kDirectOnly}, {"try_start_run", {1, 2, 3, 4}, kDirectOnly},
      {"runs_owner_pid", {1}, kDirectOnly},       {"run_info", {1}, kDirectOnly},
      {"run_status", {1}, kDirectOnly},           {"runs_migrate", {0}, kDirectOnly},
      {"runs_check", {0}, kDirectOnly},           {"runs_version", {0}, kInnocuous | kDeterministic},
      {"runs_debug", {0}, kInnocuous},            {"runs_busy_timeout", {1}, kDirectOnly}};
  std::set<Registration> expected;
  for (const auto& [name, arities, flags] : functions) {
    for (int narg : arities) expected.emplace(name, narg, flags);
  }
  EXPECT_EQ(added, expected);
}

TEST(Api, FlagsOfEachFunction) {
  TestDb db;
  const Rows found = rows(
      db,
      "SELECT name, narg, flags & 0x80000 != 0, flags & 0x200000 != 0, flags & 0x800 != 0"
      " FROM pragma_function_list WHERE name IN ('start_run', 'active_run', 'mark_run_running',"
      " 'complete_run', 'fail_run', 'cancel_run', 'update_run_progress', 'heartbeat_run',"
      " 'reap_stale_runs', 'run_info', 'run_status', 'runs_migrate', 'runs_version', 'runs_debug',"
      " 'try_start_run', 'runs_owner_pid')"
      " ORDER BY name, narg");
  EXPECT_EQ(found, (Rows{{"active_run", "0", "1", "0", "0"},
                         {"active_run", "1", "1", "0", "0"},
                         {"cancel_run", "1", "1", "0", "0"},
                         {"complete_run", "1", "1", "0", "0"},
                         {"fail_run", "2", "1", "0", "0"},
                         {"heartbeat_run", "1", "1", "0", "0"},
                         {"mark_run_running", "1", "1", "0", "0"},
                         {"reap_stale_runs", "0", "1", "0", "0"},
                         {"reap_stale_runs", "1", "1", "0", "0"},
                         {"reap_stale_runs", "2", "1", "0", "0"},
                         {"run_info", "1", "1", "0", "0"},
                         {"run_status", "1", "1", "0", "0"},
                         {"runs_debug", "0", "0", "1", "0"},
                         {"runs_migrate", "0", "1", "0", "0"},
                         {"runs_owner_pid", "1", "1", "0", "0"},
                         {"runs_version", "0", "0", "1", "1"},
                         {"start_run", "1", "1", "0", "0"},
                         {"start_run", "2", "1", "0", "0"},
                         {"start_run", "3", "1", "0", "0"},
                         {"start_run", "4", "1", "0", "0"},
                         {"try_start_run", "1", "1", "0", "0"},
                         {"try_start_run", "2", "1", "0", "0"},
                         {"try_start_run", "3", "1", "0", "0"},
                         {"try_start_run", "4", "1", "0", "0"},
                         {"update_run_progress", "4", "1", "0", "0"}}));
}

TEST(Api, RunsVersion) {
  TestDb db;
  EXPECT_EQ(db.value("SELECT runs_version()"), "v0.1.0");
  EXPECT_EQ(db.value("SELECT typeof(runs_version())"), "text");
  EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_schema"), "0");  // needs no schema
}

TEST(Api, TrustedSchemaOffStillAllowsRunsVersionInAView) {
  TestDb db;
  db.exec("PRAGMA trusted_schema = OFF; CREATE VIEW v AS SELECT runs_version() AS version");
  EXPECT_EQ(db.value("SELECT version FROM v"), "v0.1.0");
}

}  // namespace

TEST(Connection, LoadingAgainFromARunningStatementKeepsTheFirstLoad) {
  TestDb db;
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
  // SQLite will not replace a function while a statement runs: this second
  // load fails, and the first one's functions and close hook must stay intact.
  const std::string load = std::string("SELECT load_extension('") + RUNS_EXTENSION_PATH + "')";
  EXPECT_EQ(db.error(load, SQLITE_ERROR),
            "error during initialization: unable to delete/modify user-function due to "
            "active statements");
  EXPECT_EQ(db.value("SELECT cancel_run(1)"), "updated");
  EXPECT_EQ(db.value("SELECT start_run('b')"), "2");
  EXPECT_GT(statement_count(db.get()), 0);
  // ~TestDb checks that sqlite3_close() returns SQLITE_OK.
}

TEST(Connection, ATableNamedLikeTheCloseHookIsRefusedLoudly) {
  // With the hook's column or without it (then the probe itself fails to
  // prepare), a table or a view: the same message, nothing cached or written.
  for (const char* hider : {"CREATE TABLE runs_close_hook(unused)",
                            "CREATE TABLE runs_close_hook(other)",
                            "CREATE VIEW runs_close_hook AS SELECT 1 AS x"}) {
    SCOPED_TRACE(hider);
    TestDb db;
    db.exec(hider);
    EXPECT_EQ(db.error("SELECT runs_migrate()", SQLITE_ERROR),
              "runs_migrate(): a table or view named runs_close_hook hides this extension's "
              "close hook: rename it");
    EXPECT_EQ(statement_count(db.get()), 0);
    EXPECT_EQ(count(db, "sqlite_schema"), "1");
  }
}

TEST(Connection, ATempTableNamedRunsDoesNotTakeTheRealOnesPlace) {
  TestDb db;
  db.exec("CREATE TEMP TABLE runs(id INTEGER PRIMARY KEY, scope, status, started_at, "
          "finished_at, triggered_by, error_message, progress_current, progress_total, "
          "current_step, created_at)");
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
  EXPECT_EQ(db.value("SELECT mark_run_running(1)"), "updated");
  EXPECT_EQ(db.value("SELECT count(*) FROM main.runs WHERE status = 'running'"), "1");
  EXPECT_EQ(db.value("SELECT count(*) FROM temp.runs"), "0");
  EXPECT_EQ(db.value("SELECT count(*) FROM temp.pragma_table_info('runs') "
                     "WHERE name = 'concurrency_key'"),
            "0");
  EXPECT_EQ(db.value("SELECT count(*) FROM main.sqlite_schema WHERE name = 'runs_one_active'"),
            "1");
}
