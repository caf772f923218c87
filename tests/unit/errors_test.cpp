// Every refusal: its exact message and extended code, nothing written, and
// the connection back in autocommit.
#include "unit_helpers.h"

namespace {

using namespace runs_test;

class Errors : public RefusalTest {
 protected:
  void SetUp() override {
    prepare({{"SELECT start_run('pending-run', 'api', 'p')", "1"},
             {"SELECT start_run('running-run', 'api', 'r')", "2"},
             {"SELECT mark_run_running(2)", "updated"}});
  }
};

// (SQL expression for the argument, type name SQLite reports)
const std::vector<std::pair<std::string, std::string>> kNonText = {
    {"1", "integer"}, {"1.5", "real"}, {"x'00'", "blob"}, {"NULL", "NULL"}};
const std::vector<std::pair<std::string, std::string>> kNonInteger = {
    {"'one'", "text"}, {"'1.5'", "text"}, {"'1x'", "text"}, {"''", "text"}, {"'0x1'", "text"},
    {"'9223372036854775808'", "text"}, {"x'01'", "blob"}, {"NULL", "NULL"}};

// Every text argument: the call with % in its place, the message's start,
// whether NULL is allowed, and its limit in bytes.
struct TextArgument {
  std::string call;
  std::string name;
  bool nullable;
  std::size_t limit;
};
const std::vector<TextArgument> kTextArguments = {
    {"start_run(%)", "start_run(): scope", false, 1024},
    {"start_run('s', %)", "start_run(): triggered_by", false, 1024},
    {"start_run('s', 'api', %)", "start_run(): concurrency_key", false, 1024},
    {"active_run(%)", "active_run(): concurrency_key", false, 1024},
    {"fail_run(1, %)", "fail_run(): error_message", true, 1024 * 1024},  // a NULL message is allowed
    {"update_run_progress(1, 1, 2, %)", "update_run_progress(): current_step", true, 1024}};

TEST_F(Errors, TextArgumentsMustBeText) {
  for (const auto& [arg, type] : kNonText) {
    for (const TextArgument& text : kTextArguments) {
      if (type == "NULL" && text.nullable) continue;
      refused(select_with(text.call, arg), SQLITE_ERROR, text.name + " must be text, got " + type);
    }
  }
}

TEST_F(Errors, IdsMustBeIntegers) {
  const std::vector<std::string> calls = {"mark_run_running(%)", "complete_run(%)",
                                          "fail_run(%, 'x')",    "cancel_run(%)",
                                          "update_run_progress(%, 1, 2, 's')", "run_status(%)",
                                          "heartbeat_run(%)", "run_info(%)"};
  for (const std::string& call : calls) {
    const std::string name = call.substr(0, call.find('('));
    for (const auto& [arg, type] : kNonInteger) {
      refused(select_with(call, arg), SQLITE_ERROR, name + "(): id must be an integer, got " + type);
    }
    refused(select_with(call, "1.5"), SQLITE_ERROR, name + "(): id must be an integer, got real 1.5");
    refused(select_with(call, "-2.5"), SQLITE_ERROR, name + "(): id must be an integer, got real -2.5");
    // 1e19, not 1e300: SQLite parses the literal with long double arithmetic,
    // which valgrind emulates at 64 bits, so 1e300 reaches the function as
    // 1.0000000000000005e+300 under valgrind. 1e19 is exact either way.
    refused(select_with(call, "1e19"), SQLITE_ERROR, name + "(): id is out of the 64-bit integer range, got real 1e+19");
    refused(select_with(call, "9223372036854775808.0"), SQLITE_ERROR,
            name + "(): id is out of the 64-bit integer range, got real 9223372036854775808");
  }
  // A REAL with an integral value is an id, and so is a TEXT that a column of
  // INTEGER affinity would store as an integer.
  EXPECT_EQ(db.value("SELECT run_status(2.0)"), "running");
  EXPECT_EQ(db.value("SELECT run_status(1e18)"), std::nullopt);
  for (const char* text : {"'2'", "' 2 '", "'+2'", "'2.0'", "'2e0'", "'0002'"}) {
    EXPECT_EQ(db.value(std::string("SELECT run_status(") + text + ")"), "running") << text;
  }
  EXPECT_EQ(db.value("SELECT run_status('-9223372036854775808')"), std::nullopt);
  EXPECT_EQ(db.value("SELECT update_run_progress('2', '3', ' 4 ', 's')"), "updated");
  EXPECT_EQ(db.value("SELECT progress_current || '/' || progress_total FROM runs WHERE id = 2"), "3/4");
}

TEST_F(Errors, CountsMustBeNonNegativeIntegers) {
  refused("SELECT update_run_progress(1, -1, 10, 's')", SQLITE_ERROR,
          "update_run_progress(): current must not be negative, got -1");
  refused("SELECT update_run_progress(1, 1, -1, 's')", SQLITE_ERROR,
          "update_run_progress(): total must not be negative, got -1");
  refused("SELECT update_run_progress(1, -9223372036854775808, 0, 's')", SQLITE_ERROR,
          "update_run_progress(): current must not be negative, got -9223372036854775808");
  refused("SELECT update_run_progress(1, 1.5, 10, 's')", SQLITE_ERROR,
          "update_run_progress(): current must be an integer, got real 1.5");
  refused("SELECT update_run_progress(1, 1, 2.5, 's')", SQLITE_ERROR,
          "update_run_progress(): total must be an integer, got real 2.5");
  for (const auto& [arg, type] : kNonInteger) {
    refused("SELECT update_run_progress(1, " + arg + ", 10, 's')", SQLITE_ERROR,
            "update_run_progress(): current must be an integer, got " + type);
    if (type != "NULL") {  // a NULL total is unknown
      refused("SELECT update_run_progress(1, 1, " + arg + ", 's')", SQLITE_ERROR,
              "update_run_progress(): total must be an integer, got " + type);
    }
  }
  // The id is checked first.
  refused("SELECT update_run_progress('x', -1, -1, 1)", SQLITE_ERROR,
          "update_run_progress(): id must be an integer, got text");
  // Argument errors come before the run is looked up.
  refused("SELECT update_run_progress(99, -1, 10, 's')", SQLITE_ERROR,
          "update_run_progress(): current must not be negative, got -1");
}

TEST_F(Errors, EmptyTexts) {
  refused("SELECT start_run('')", SQLITE_ERROR, "start_run(): scope must not be empty");
  refused("SELECT start_run('s', '')", SQLITE_ERROR, "start_run(): triggered_by must not be empty");
  refused("SELECT start_run('', '', '')", SQLITE_ERROR, "start_run(): scope must not be empty");
  // An empty key, message and step are values.
  EXPECT_EQ(db.value("SELECT active_run('')"), std::nullopt);
  EXPECT_EQ(db.value("SELECT update_run_progress(1, 0, 0, '')"), "updated");
  EXPECT_EQ(db.value("SELECT fail_run(1, '')"), "updated");
}

TEST_F(Errors, TooLongTexts) {
  for (const TextArgument& text : kTextArguments) {
    const std::string limit = std::to_string(text.limit);
    refused(select_with(text.call, quote(std::string(text.limit + 1, 'x'))), SQLITE_TOOBIG,
            text.name + " is too long (" + std::to_string(text.limit + 1) + " bytes, at most " + limit + ")");
  }
  const std::string ok = quote(std::string(1024, 'x'));
  // Bytes, not characters: 513 two-byte characters are 1026 bytes.
  std::string wide;
  for (int i = 0; i < 513; ++i) wide += "é";
  refused("SELECT start_run(" + quote(wide) + ")", SQLITE_TOOBIG,
          "start_run(): scope is too long (1026 bytes, at most 1024)");
  // The boundaries themselves are accepted.
  EXPECT_EQ(db.value("SELECT active_run(" + ok + ")"), std::nullopt);
  EXPECT_EQ(db.value("SELECT update_run_progress(1, 1, 2, " + ok + ")"), "updated");
  EXPECT_EQ(db.value("SELECT length(current_step) FROM runs WHERE id = 1"), "1024");
  std::string wide_ok;
  for (int i = 0; i < 512; ++i) wide_ok += "é";
  EXPECT_EQ(db.value("SELECT start_run(" + quote(wide_ok) + ", " + ok + ", " + ok + ")"), "3");
}

TEST_F(Errors, WrongNumberOfArguments) {
  const std::vector<std::pair<std::string, std::string>> calls = {
      {"start_run()", "start_run"},
      {"start_run('a', 'b', 'c', 1, 'e')", "start_run"},
      {"active_run('a', 'b')", "active_run"},
      {"mark_run_running()", "mark_run_running"},
      {"mark_run_running(1, 2)", "mark_run_running"},
      {"complete_run()", "complete_run"},
      {"fail_run(1)", "fail_run"},
      {"fail_run(1, 'a', 'b')", "fail_run"},
      {"cancel_run(1, 2)", "cancel_run"},
      {"update_run_progress(1, 2, 3)", "update_run_progress"},
      {"heartbeat_run()", "heartbeat_run"},
      {"heartbeat_run(1, 2)", "heartbeat_run"},
      {"reap_stale_runs('a', 1, 2)", "reap_stale_runs"},
      {"try_start_run()", "try_start_run"},
      {"try_start_run('s', 'api', 'k', 60, 1)", "try_start_run"},
      {"runs_owner_pid()", "runs_owner_pid"},
      {"runs_owner_pid(1, 2)", "runs_owner_pid"},
      {"run_info()", "run_info"},
      {"run_info(1, 2)", "run_info"},
      {"run_status()", "run_status"},
      {"runs_migrate(1)", "runs_migrate"},
      {"runs_version(1)", "runs_version"},
      {"runs_debug(1)", "runs_debug"},
  };
  for (const auto& [call, name] : calls) {
    refused("SELECT " + call, SQLITE_ERROR, "wrong number of arguments to function " + name + "()");
  }
}

TEST_F(Errors, StartRunInsideATransactionWithoutTheWriteLock) {
  // A deferred transaction that has not written, or a savepoint opened in
  // autocommit: start_run() could not take the write lock without failing
  // at once (SQLITE_BUSY) when another connection has written meanwhile.
  for (const char* begin : {"BEGIN", "BEGIN DEFERRED", "SAVEPOINT sp",
                            "BEGIN; SELECT count(*) FROM runs"}) {
    for (const std::string function : {"start_run", "try_start_run"}) {
      db.exec(begin);
      const Outcome out = db.run("SELECT " + function + "('x')");
      EXPECT_EQ(out.extended, SQLITE_ERROR);
      EXPECT_EQ(out.message, function + "(): " + kNoWriteLock) << begin;
      EXPECT_FALSE(sqlite3_get_autocommit(db.get()));  // the caller's transaction is intact
      db.exec("ROLLBACK");
      EXPECT_EQ(dump(db), before);
    }
  }
  // runs_migrate() joins the caller's transaction (tests/unit/migrations_test.cpp).
  // Argument errors come first.
  EXPECT_EQ(db.error("BEGIN; SELECT start_run('')", SQLITE_ERROR),
            "start_run(): scope must not be empty");
  db.exec("ROLLBACK");
}

TEST_F(Errors, StartRunInsideAStatementWithFrom) {
  refused("SELECT start_run('x') FROM runs", SQLITE_ERROR, "start_run(): " + kReadTxn);
  refused("SELECT start_run('x') FROM runs WHERE id = 1", SQLITE_ERROR, "start_run(): " + kReadTxn);
  refused("SELECT runs_migrate() FROM runs", SQLITE_ERROR, "runs_migrate(): " + kReadTxn);
  refused("SELECT (SELECT start_run('x') FROM runs LIMIT 1)", SQLITE_ERROR,
          "start_run(): " + kReadTxn);
}

TEST_F(Errors, StartRunWhileAnotherStatementIsBeingStepped) {
  sqlite3_stmt* reader = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db.get(), "SELECT id FROM runs", -1, &reader, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(reader), SQLITE_ROW);
  EXPECT_EQ(db.error("SELECT start_run('x')", SQLITE_ERROR), "start_run(): " + kReadTxn);
  EXPECT_EQ(db.error("SELECT runs_migrate()", SQLITE_ERROR), "runs_migrate(): " + kReadTxn);
  sqlite3_finalize(reader);
  EXPECT_EQ(dump(db), before);
  EXPECT_EQ(db.value("SELECT start_run('x')"), "3");
}

TEST_F(Errors, StartRunInsideAWritingStatement) {
  db.exec("CREATE TABLE t(x)");
  before = dump(db);
  refused("INSERT INTO t SELECT start_run('x')", SQLITE_ERROR, "start_run(): " + kWriteTxn);
  refused("INSERT INTO t VALUES (start_run('x'))", SQLITE_ERROR, "start_run(): " + kWriteTxn);
  refused("INSERT INTO t SELECT runs_migrate()", SQLITE_ERROR, "runs_migrate(): " + kWriteTxn);
  refused("INSERT INTO t SELECT start_run('x') RETURNING x", SQLITE_ERROR,
          "start_run(): " + kWriteTxn);
  EXPECT_EQ(count(db, "t"), "0");
}

TEST_F(Errors, StartRunInACheckConstraint) {
  db.exec("CREATE TABLE c(x CHECK (start_run('c') > 0))");
  before = dump(db);
  refused("INSERT INTO c VALUES (1)", SQLITE_ERROR, "start_run(): " + kWriteTxn);
  EXPECT_EQ(count(db, "c"), "0");
}

TEST_F(Errors, DirectOnlyFunctionsRefuseTriggersAndViews) {
  const std::vector<std::pair<std::string, std::string>> calls = {
      {"start_run('v')", "start_run"},
      {"active_run()", "active_run"},
      {"active_run('k')", "active_run"},
      {"mark_run_running(1)", "mark_run_running"},
      {"complete_run(2)", "complete_run"},
      {"fail_run(1, 'x')", "fail_run"},
      {"cancel_run(1)", "cancel_run"},
      {"update_run_progress(1, 1, 2, 's')", "update_run_progress"},
      {"run_status(1)", "run_status"},
      {"runs_migrate()", "runs_migrate"},
  };
  db.exec("CREATE TABLE t(x)");
  for (const auto& [call, name] : calls) {
    db.exec("CREATE VIEW v AS SELECT " + call + " AS r");
    db.exec("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT " + call + "; END");
    before = dump(db);
    refused("SELECT * FROM v", SQLITE_ERROR, "unsafe use of " + name + "()");
    refused("INSERT INTO t VALUES (1)", SQLITE_ERROR, "unsafe use of " + name + "()");
    EXPECT_EQ(count(db, "t"), "0");
    db.exec("DROP VIEW v; DROP TRIGGER tr");
  }
  // runs_version() is innocuous: views and triggers may call it.
  db.exec("CREATE VIEW v AS SELECT runs_version() AS version");
  EXPECT_EQ(db.value("SELECT version FROM v"), "v0.1.0");
  db.exec("CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET x = runs_version(); END");
  db.exec("INSERT INTO t VALUES (1)");
  EXPECT_EQ(db.value("SELECT x FROM t"), "v0.1.0");
  // So is runs_debug(), but it is not deterministic: no index may store it.
  db.exec("PRAGMA trusted_schema = OFF; CREATE VIEW d AS SELECT runs_debug() AS info");
  EXPECT_EQ(db.value("SELECT json_extract(info, '$.version') FROM d"), "v0.1.0");
  before = dump(db);
  refused("CREATE INDEX t_debug ON t(runs_debug())", SQLITE_ERROR,
          "non-deterministic functions prohibited in index expressions");
  refused("CREATE TABLE g(x, d AS (runs_debug()))", SQLITE_ERROR,
          "non-deterministic functions prohibited in generated columns");
}

TEST_F(Errors, AConflictLeavesTheCallerReadyForMore) {
  refused("SELECT start_run('x', 'api', 'p')", SQLITE_CONSTRAINT_UNIQUE,
          "start_run(): run 1 is already active for concurrency_key 'p' (scope 'pending-run', "
          "status 'pending', since " +
              db.value("SELECT created_at FROM runs WHERE id = 1").value() + kWaitSuffix);
  EXPECT_EQ(db.value("SELECT start_run('x', 'api', 'q')"), "3");
}

// ---- databases without the schema ---------------------------------------

// Every function that reads or writes runs, each with its name.
const std::vector<std::pair<std::string, std::string>> kRunFunctions = {
    {"start_run('x')", "start_run"},
    {"start_run('x', 'api', 'k')", "start_run"},
    {"active_run()", "active_run"},
    {"active_run('k')", "active_run"},
    {"mark_run_running(1)", "mark_run_running"},
    {"complete_run(1)", "complete_run"},
    {"fail_run(1, 'x')", "fail_run"},
    {"cancel_run(1)", "cancel_run"},
    {"update_run_progress(1, 1, 2, 's')", "update_run_progress"},
    {"run_status(1)", "run_status"},
    {"start_run('x', 'api', 'k', 60)", "start_run"},
    {"heartbeat_run(1)", "heartbeat_run"},
    {"reap_stale_runs()", "reap_stale_runs"},
    {"reap_stale_runs('k')", "reap_stale_runs"},
    {"run_info(1)", "run_info"},
};

TEST(Unmigrated, EveryFunctionAsksForTheMigration) {
  TestDb db;
  for (const auto& [call, name] : kRunFunctions) {
    EXPECT_EQ(db.error("SELECT " + call, SQLITE_ERROR), name + "(): " + kNoSchema);
  }
  EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_schema"), "0");
  EXPECT_EQ(db.value("SELECT runs_version()"), "v0.1.0");
  // And all work after it.
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(db.value("SELECT start_run('x')"), "1");
  EXPECT_EQ(db.value("SELECT active_run()"), "1");
}

TEST(Unmigrated, AnUnrelatedRunsTableIsNotASchema) {
  TestDb db;
  db.exec("CREATE TABLE runs(id INTEGER PRIMARY KEY, other TEXT); INSERT INTO runs VALUES (1, 'x')");
  const Rows before = dump(db);
  for (const auto& [call, name] : kRunFunctions) {
    EXPECT_EQ(db.error("SELECT " + call, SQLITE_ERROR), name + "(): " + kNoSchema) << call;
  }
  EXPECT_EQ(dump(db), before);
}

TEST(SchemaVersion1, EveryFunctionAsksForTheMigration) {
  TestDb db;
  const ExecResult applied = exec_script(db, migration_sql(1));
  ASSERT_EQ(applied.rc, SQLITE_OK) << applied.message;
  db.exec("INSERT INTO runs (scope, status, created_at) VALUES ('s', 'pending', '2024-01-01T00:00:00.000Z')");
  const Rows before = dump(db);
  for (const auto& [call, name] : kRunFunctions) {
    EXPECT_EQ(db.error("SELECT " + call, SQLITE_ERROR), name + "(): " + kVersion1) << call;
    EXPECT_EQ(row(db, "SELECT status, started_at, finished_at, progress_current FROM runs"),
              (Row{"pending", std::nullopt, std::nullopt, "0"}))
        << call << " changed the run";
  }
  EXPECT_TRUE(dump(db) == before) << "something was written";
}

// A database of sqlite-runs 0.1 before crash recovery: migrations 1 and 2.
TEST(SchemaVersion2, EveryFunctionAsksForTheMigration) {
  TestDb db;
  ASSERT_NO_FATAL_FAILURE(apply_migrations(db, 2));
  db.exec("INSERT INTO runs (scope, status, created_at) VALUES ('s', 'running', '2024-01-01T00:00:00.000Z')");
  const Rows before = dump(db);
  for (const auto& [call, name] : kRunFunctions) {
    EXPECT_EQ(db.error("SELECT " + call, SQLITE_ERROR),
              name + "(): " + old_schema(2))
        << call;
  }
  EXPECT_TRUE(dump(db) == before) << "something was written";
  // After the migration the run is there, with no owner.
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(db.value("SELECT json_extract(run_info(1), '$.status', '$.owner', '$.stale')"),
            "[\"running\",null,false]");
}

// ---- read-only databases ------------------------------------------------

// Every function that writes fails with `code` and "name(): " + reason.
// reap_stale_runs() is among them unless `with_reap` is false: it writes, and
// so needs the write lock, only when it finds an abandoned run.
void expect_every_write_refused(const TestDb& db, int code, const std::string& reason,
                                bool with_reap = true) {
  for (const std::string call :
       {"start_run('x', 'api', 'new')", "start_run('x')", "runs_migrate()", "mark_run_running(1)",
        "complete_run(2)", "fail_run(1, 'x')", "cancel_run(1)",
        "update_run_progress(1, 1, 2, 's')", "start_run('x', 'api', 'new', 60)",
        "heartbeat_run(1)", "reap_stale_runs()", "reap_stale_runs('k')"}) {
    const std::string name = call.substr(0, call.find('('));
    if (!with_reap && name == "reap_stale_runs") continue;
    EXPECT_EQ(db.error("SELECT " + call, code), name + "(): " + reason);
  }
}

class ReadOnly : public ::testing::Test {
 protected:
  void SetUp() override {
    TestDb writer(file.path());
    ASSERT_EQ(writer.value("SELECT runs_migrate()"), kLatestSchemaVersion);
    ASSERT_EQ(writer.value("SELECT start_run('a')"), "1");
    ASSERT_EQ(writer.value("SELECT start_run('b', 'api', 'k')"), "2");
    ASSERT_EQ(writer.value("SELECT mark_run_running(2)"), "updated");
  }

  void check_refusals(const TestDb& db,
                      const std::string& reason =
                          "the database is read-only: open it read-write to change runs") {
    const Rows before = dump(db);
    expect_every_write_refused(db, SQLITE_READONLY, reason);
    // Reads still work.
    EXPECT_EQ(db.value("SELECT active_run()"), "1");
    EXPECT_EQ(db.value("SELECT active_run('k')"), "2");
    EXPECT_EQ(db.value("SELECT run_status(1)"), "pending");
    EXPECT_EQ(db.value("SELECT run_status(2)"), "running");
    EXPECT_EQ(db.value("SELECT run_status(3)"), std::nullopt);
    EXPECT_EQ(db.value("SELECT json_extract(run_info(2), '$.status', '$.stale')"), "[\"running\",false]");
    EXPECT_EQ(dump(db), before);
  }

  TempFile file;
};

TEST_F(ReadOnly, OpenedReadOnly) {
  TestDb db(file.path(), SQLITE_OPEN_READONLY);
  check_refusals(db);
}

TEST_F(ReadOnly, QueryOnly) {
  TestDb db(file.path());
  db.exec("PRAGMA query_only = 1");
  check_refusals(db,
                 "the connection has PRAGMA query_only on, which refuses every write: run PRAGMA "
                 "query_only = 0 to change runs");
  db.exec("PRAGMA query_only = 0");
  EXPECT_EQ(db.value("SELECT cancel_run(1)"), "updated");
}

TEST_F(ReadOnly, UnmigratedReadOnlyDatabase) {
  TempFile empty;
  { TestDb create(empty.path()); create.exec("CREATE TABLE other(x)"); }
  TestDb db(empty.path(), SQLITE_OPEN_READONLY);
  EXPECT_EQ(db.error("SELECT runs_migrate()", SQLITE_READONLY),
            "runs_migrate(): the database is read-only: open it read-write to change runs");
  EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_schema"), "1");
}

// ---- another writer holds the lock --------------------------------------

class Busy : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
    ASSERT_EQ(db.value("SELECT start_run('a')"), "1");
    ASSERT_EQ(db.value("SELECT start_run('b', 'api', 'k')"), "2");
    ASSERT_EQ(db.value("SELECT mark_run_running(2)"), "updated");
    before = dump(db);
    holder.exec("BEGIN IMMEDIATE");
  }
  void TearDown() override { holder.exec("ROLLBACK"); }

  void check_refusals() {
    expect_every_write_refused(db, SQLITE_BUSY, kBusy, false);
    // With nothing abandoned, reaping needs no lock.
    EXPECT_EQ(db.value("SELECT reap_stale_runs()"), "0");
    EXPECT_EQ(db.value("SELECT reap_stale_runs('k')"), "0");
    // Readers are not blocked by a reserved lock.
    EXPECT_EQ(db.value("SELECT active_run()"), "1");
    EXPECT_EQ(db.value("SELECT run_status(2)"), "running");
    EXPECT_EQ(dump(db), before);
    // A conflict is still reported as a conflict... only once the lock is free.
    holder.exec("ROLLBACK");
    EXPECT_EQ(db.value("SELECT start_run('x', 'api', 'new')"), "3");
    holder.exec("BEGIN IMMEDIATE");
  }

  TempFile file;
  TestDb db{file.path()};
  TestDb holder{file.path()};
  Rows before;
};

TEST_F(Busy, NoBusyTimeout) {
  db.exec("PRAGMA busy_timeout = 0");
  check_refusals();
}

TEST_F(Busy, ShortBusyTimeout) {
  db.exec("PRAGMA busy_timeout = 50");
  check_refusals();
}

TEST_F(Busy, WalMode) {
  holder.exec("ROLLBACK");
  EXPECT_EQ(db.value("PRAGMA journal_mode = WAL"), "wal");
  before = dump(db);
  holder.exec("BEGIN IMMEDIATE");
  db.exec("PRAGMA busy_timeout = 0");
  check_refusals();
}

TEST_F(Busy, ReapingAnAbandonedRunNeedsTheLock) {
  holder.exec("ROLLBACK");
  db.exec("UPDATE runs SET owner_pid = 2147483647 WHERE id = 2");  // gone
  before = dump(db);
  holder.exec("BEGIN IMMEDIATE");
  db.exec("PRAGMA busy_timeout = 0");
  EXPECT_EQ(db.error("SELECT reap_stale_runs()", SQLITE_BUSY), "reap_stale_runs(): " + kBusy);
  EXPECT_EQ(db.error("SELECT reap_stale_runs('k')", SQLITE_BUSY), "reap_stale_runs(): " + kBusy);
  EXPECT_EQ(db.value("SELECT reap_stale_runs('other')"), "0");
  EXPECT_EQ(dump(db), before);
  holder.exec("ROLLBACK");
  EXPECT_EQ(db.value("SELECT reap_stale_runs()"), "1");
  EXPECT_EQ(db.value("SELECT run_status(2)"), "failed");
  holder.exec("BEGIN IMMEDIATE");
}

TEST(BusySnapshot, ATransitionInAStaleWalReadTransaction) {
  TempFile file;
  TestDb db(file.path());
  TestDb other(file.path());
  EXPECT_EQ(db.value("PRAGMA journal_mode = WAL"), "wal");
  ASSERT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  ASSERT_EQ(db.value("SELECT start_run('a')"), "1");
  db.exec("BEGIN");
  EXPECT_EQ(db.value("SELECT run_status(1)"), "pending");  // the snapshot is taken here
  EXPECT_EQ(other.value("SELECT update_run_progress(1, 1, 2, 'other')"), "updated");
  const Outcome out = db.run("SELECT mark_run_running(1)");
  EXPECT_EQ(out.extended, SQLITE_BUSY_SNAPSHOT);
  EXPECT_EQ(out.message,
            "mark_run_running(): the database changed since this transaction began reading, so it "
            "cannot write: roll back and retry, or begin the transaction with BEGIN IMMEDIATE");
  db.exec("ROLLBACK");
  EXPECT_EQ(row(db, "SELECT status, current_step FROM runs"), (Row{"pending", "other"}));
  EXPECT_EQ(db.value("SELECT mark_run_running(1)"), "updated");
}

TEST(BusyCommit, AReaderInAnotherConnectionBlocksTheCommit) {
  // Rollback-journal mode: start_run() gets its write lock, but COMMIT needs
  // the readers gone. It must roll back and say so.
  TempFile file;
  TestDb db(file.path());
  TestDb reader(file.path());
  ASSERT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  db.exec("PRAGMA busy_timeout = 0");
  const Rows before = dump(db);
  reader.exec("BEGIN");
  EXPECT_EQ(reader.value("SELECT count(*) FROM runs"), "0");
  EXPECT_EQ(db.error("SELECT start_run('x')", SQLITE_BUSY), "start_run(): " + kLockedByReader);
  EXPECT_TRUE(sqlite3_get_autocommit(db.get()));
  EXPECT_EQ(dump(db), before);
  EXPECT_EQ(reader.value("SELECT count(*) FROM runs"), "0");
  reader.exec("COMMIT");
  EXPECT_EQ(db.value("SELECT start_run('x')"), "1");
  EXPECT_EQ(reader.value("SELECT active_run()"), "1");
}

}  // namespace
