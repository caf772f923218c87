// start_run(): ids, defaults, the one-active-run rule per key, its message.
#include "unit_helpers.h"

namespace {

using namespace runs_test;

class StartRun : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion); }
  TestDb db;
};

TEST_F(StartRun, ReturnsTheNewIdAsAnInteger) {
  EXPECT_EQ(db.value("SELECT typeof(start_run('full'))"), "integer");
  EXPECT_EQ(db.value("SELECT id FROM runs"), "1");
}

TEST_F(StartRun, InsertsAPendingRunWithDefaults) {
  EXPECT_EQ(db.value("SELECT start_run('full')"), "1");
  EXPECT_EQ(row(db,
                "SELECT id, scope, status, started_at, finished_at, triggered_by, error_message,"
                " progress_current, progress_total, current_step, concurrency_key FROM runs"),
            (Row{"1", "full", "pending", std::nullopt, std::nullopt, "api", std::nullopt, "0", "0",
                 std::nullopt, ""}));
  EXPECT_EQ(db.value("SELECT created_at GLOB " + kIsoGlob + " FROM runs"), "1");
  EXPECT_EQ(db.value("SELECT typeof(progress_current) || typeof(progress_total) FROM runs"),
            "integerinteger");
  EXPECT_EQ(count(db, "runs"), "1");
}

TEST_F(StartRun, StoresTriggeredByAndConcurrencyKey) {
  EXPECT_EQ(db.value("SELECT start_run('glossary', 'cli', 'project-7')"), "1");
  EXPECT_EQ(row(db, "SELECT scope, status, triggered_by, concurrency_key FROM runs WHERE id = 1"),
            (Row{"glossary", "pending", "cli", "project-7"}));
  EXPECT_EQ(db.value("SELECT start_run('other', 'scheduler')"), "2");
  EXPECT_EQ(row(db, "SELECT scope, triggered_by, concurrency_key FROM runs WHERE id = 2"),
            (Row{"other", "scheduler", ""}));
}

TEST_F(StartRun, AnEmptyKeyIsTheDefaultKey) {
  EXPECT_EQ(db.value("SELECT start_run('a', 'api', '')"), "1");
  const std::string message = db.error("SELECT start_run('b')", SQLITE_CONSTRAINT_UNIQUE);
  EXPECT_EQ(message.substr(0, 50), "start_run(): run 1 is already active (scope 'a', s");
}

TEST_F(StartRun, RefusesASecondActiveRunWithTheExactMessage) {
  EXPECT_EQ(db.value("SELECT start_run('full')"), "1");
  const std::string created = db.value("SELECT created_at FROM runs WHERE id = 1").value();
  const Rows before = dump(db);
  EXPECT_EQ(db.error("SELECT start_run('full')", SQLITE_CONSTRAINT_UNIQUE),
            "start_run(): run 1 is already active (scope 'full', status 'pending', since " +
                created + kWaitSuffix);
  EXPECT_EQ(db.error("SELECT start_run('other', 'cli')", SQLITE_CONSTRAINT_UNIQUE),
            "start_run(): run 1 is already active (scope 'full', status 'pending', since " +
                created + kWaitSuffix);
  EXPECT_EQ(dump(db), before);
  EXPECT_EQ(count(db, "runs"), "1");
}

TEST_F(StartRun, ARunningRunIsReportedSinceItStarted) {
  EXPECT_EQ(db.value("SELECT start_run('full')"), "1");
  EXPECT_EQ(db.value("SELECT mark_run_running(1)"), "updated");
  const std::string started = db.value("SELECT started_at FROM runs WHERE id = 1").value();
  EXPECT_EQ(db.error("SELECT start_run('full')", SQLITE_CONSTRAINT_UNIQUE),
            "start_run(): run 1 is already active (scope 'full', status 'running', since " +
                started + kWaitSuffix);
}

TEST_F(StartRun, TheMessageNamesANonEmptyKeyQuoted) {
  EXPECT_EQ(db.value("SELECT start_run('a', 'api', 'k1')"), "1");
  EXPECT_EQ(db.value("SELECT start_run('b''s scope', 'api', 'it''s')"), "2");
  const std::string created = db.value("SELECT created_at FROM runs WHERE id = 2").value();
  EXPECT_EQ(db.error("SELECT start_run('c', 'api', 'it''s')", SQLITE_CONSTRAINT_UNIQUE),
            "start_run(): run 2 is already active for concurrency_key 'it''s' (scope 'b''s scope',"
            " status 'pending', since " +
                created + kWaitSuffix);
  EXPECT_EQ(count(db, "runs"), "2");
}

TEST_F(StartRun, KeysAreIndependent) {
  expect_values(db, {{"SELECT start_run('a')", "1"},
                     {"SELECT start_run('b', 'api', 'k1')", "2"},
                     {"SELECT start_run('c', 'api', 'k2')", "3"},
                     {"SELECT start_run('d', 'api', 'K1')", "4"},  // keys are case-sensitive
                     {"SELECT active_run()", "1"},
                     {"SELECT active_run('')", "1"},
                     {"SELECT active_run('k1')", "2"},
                     {"SELECT active_run('k2')", "3"},
                     {"SELECT active_run('K1')", "4"},
                     {"SELECT active_run('k3')", std::nullopt}});
  const std::string created = db.value("SELECT created_at FROM runs WHERE id = 2").value();
  EXPECT_EQ(db.error("SELECT start_run('x', 'api', 'k1')", SQLITE_CONSTRAINT_UNIQUE),
            "start_run(): run 2 is already active for concurrency_key 'k1' (scope 'b', status "
            "'pending', since " +
                created + kWaitSuffix);
  // Ending one key's run frees only that key.
  EXPECT_EQ(db.value("SELECT cancel_run(2)"), "updated");
  EXPECT_EQ(db.value("SELECT start_run('x', 'api', 'k1')"), "5");
  EXPECT_EQ(db.error("SELECT start_run('y', 'api', 'k2')", SQLITE_CONSTRAINT_UNIQUE).substr(0, 36),
            "start_run(): run 3 is already active");
  EXPECT_EQ(db.error("SELECT start_run('y')", SQLITE_CONSTRAINT_UNIQUE).substr(0, 36),
            "start_run(): run 1 is already active");
  EXPECT_EQ(count(db, "runs"), "5");
}

TEST_F(StartRun, AFinishedRunFreesTheKey) {
  expect_values(db, {{"SELECT start_run('a')", "1"},
                     {"SELECT mark_run_running(1)", "updated"},
                     {"SELECT complete_run(1)", "updated"},
                     {"SELECT start_run('a')", "2"},
                     {"SELECT fail_run(2, 'boom')", "updated"},
                     {"SELECT start_run('a')", "3"},
                     {"SELECT cancel_run(3)", "updated"},
                     {"SELECT start_run('a')", "4"}});
  EXPECT_EQ(db.value("SELECT active_run()"), "4");
  EXPECT_EQ(rows(db, "SELECT id, status FROM runs ORDER BY id"),
            (Rows{{"1", "completed"}, {"2", "failed"}, {"3", "cancelled"}, {"4", "pending"}}));
}

TEST_F(StartRun, IdsAreNeverReused) {
  EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
  EXPECT_EQ(db.value("SELECT cancel_run(1)"), "updated");
  EXPECT_EQ(db.value("SELECT start_run('a')"), "2");
  EXPECT_EQ(db.value("SELECT cancel_run(2)"), "updated");
  db.exec("DELETE FROM runs WHERE id = 2");  // a finished run may be deleted
  EXPECT_EQ(db.value("SELECT start_run('a')"), "3");
}

TEST_F(StartRun, RestoresTheCallersLastInsertRowid) {
  db.exec("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3)");
  EXPECT_EQ(db.value("SELECT last_insert_rowid()"), "3");
  EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
  EXPECT_EQ(db.value("SELECT last_insert_rowid()"), "3");
  EXPECT_EQ(sqlite3_last_insert_rowid(db.get()), 3);
  // Also when it refuses.
  EXPECT_EQ(db.error("SELECT start_run('a')", SQLITE_CONSTRAINT_UNIQUE).substr(0, 36),
            "start_run(): run 1 is already active");
  EXPECT_EQ(sqlite3_last_insert_rowid(db.get()), 3);
}

TEST_F(StartRun, AcceptsTheLongestTexts) {
  const std::string longest(1024, 'x');
  EXPECT_EQ(db.value("SELECT start_run(" + quote(longest) + ", " + quote(longest) + ", " +
                     quote(longest) + ")"),
            "1");
  EXPECT_EQ(row(db, "SELECT length(scope), length(triggered_by), length(concurrency_key) FROM runs"),
            (Row{"1024", "1024", "1024"}));
  EXPECT_EQ(db.value("SELECT active_run(" + quote(longest) + ")"), "1");
}

TEST_F(StartRun, KeepsTextExactly) {
  // Multibyte text and embedded quotes survive the round trip.
  EXPECT_EQ(db.value("SELECT start_run('用語集 ''full''', 'über', 'ключ')"), "1");
  EXPECT_EQ(row(db, "SELECT scope, triggered_by, concurrency_key FROM runs"),
            (Row{"用語集 'full'", "über", "ключ"}));
  EXPECT_EQ(db.value("SELECT active_run('ключ')"), "1");
}

TEST_F(StartRun, WorksFromABoundStatement) {
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db.get(), "SELECT start_run(?1, ?2, ?3)", -1, &stmt, nullptr),
            SQLITE_OK);
  sqlite3_bind_text(stmt, 1, "bound", -1, SQLITE_STATIC);
  sqlite3_bind_text(stmt, 2, "cli", -1, SQLITE_STATIC);
  sqlite3_bind_text(stmt, 3, "k", -1, SQLITE_STATIC);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int64(stmt, 0), 1);
  EXPECT_EQ(sqlite3_step(stmt), SQLITE_DONE);
  ASSERT_EQ(sqlite3_reset(stmt), SQLITE_OK);
  // Stepping the same statement again conflicts.
  EXPECT_EQ(sqlite3_step(stmt) & 0xff, SQLITE_CONSTRAINT);
  EXPECT_EQ(sqlite3_extended_errcode(db.get()), SQLITE_CONSTRAINT_UNIQUE);
  EXPECT_EQ(std::string(sqlite3_errmsg(db.get())).substr(0, 62),
            "start_run(): run 1 is already active for concurrency_key 'k' (");
  sqlite3_finalize(stmt);
  EXPECT_TRUE(sqlite3_get_autocommit(db.get()));
}

TEST(StartRunFiles, TwoConnectionsShareTheRule) {
  TempFile file;
  TestDb first(file.path());
  TestDb second(file.path());
  EXPECT_EQ(first.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(second.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(first.value("SELECT start_run('a')"), "1");
  const std::string created = second.value("SELECT created_at FROM runs WHERE id = 1").value();
  EXPECT_EQ(second.error("SELECT start_run('b')", SQLITE_CONSTRAINT_UNIQUE),
            "start_run(): run 1 is already active (scope 'a', status 'pending', since " + created +
                kWaitSuffix);
  EXPECT_EQ(second.value("SELECT complete_run(1)"), "not_in_expected_state");
  EXPECT_EQ(second.value("SELECT mark_run_running(1)"), "updated");
  EXPECT_EQ(first.value("SELECT complete_run(1)"), "updated");
  EXPECT_EQ(second.value("SELECT start_run('b')"), "2");
  EXPECT_EQ(first.value("SELECT active_run()"), "2");
}

TEST(StartRunFiles, WorksInWalMode) {
  TempFile file;
  TestDb db(file.path());
  EXPECT_EQ(db.value("PRAGMA journal_mode = WAL"), "wal");
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
  EXPECT_EQ(db.error("SELECT start_run('a')", SQLITE_CONSTRAINT_UNIQUE).substr(0, 36),
            "start_run(): run 1 is already active");
  TestDb other(file.path());
  EXPECT_EQ(other.value("SELECT active_run()"), "1");
}

}  // namespace
