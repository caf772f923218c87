// What an application written without the extension needs (issue 17):
// start_run() and try_start_run() inside the caller's write transaction,
// try_start_run()'s answer, fail_run() with a NULL message, progress beyond an
// estimated total, ownerless runs reaped by age, and runs_owner_pid().
#include <csignal>

#include "child_process.h"
#include "unit_helpers.h"

namespace {

using namespace runs_test;

class Adoption : public RefusalTest {
 protected:
  void SetUp() override { prepare({{"CREATE TABLE jobs(x)", std::nullopt}}); }
};

TEST_F(Adoption, StartRunJoinsTheCallersWriteTransaction) {
  for (const char* begin : {"BEGIN IMMEDIATE", "BEGIN EXCLUSIVE", "BEGIN; INSERT INTO jobs VALUES (0)"}) {
    db.exec(begin);
    db.exec("INSERT INTO jobs VALUES (1)");
    EXPECT_EQ(db.value("SELECT last_insert_rowid()"), db.value("SELECT max(rowid) FROM jobs"));
    const auto callers_rowid = db.value("SELECT last_insert_rowid()");
    EXPECT_EQ(db.value("SELECT start_run('full')"), "1") << begin;
    EXPECT_EQ(db.value("SELECT last_insert_rowid()"), callers_rowid);  // the caller's, restored
    EXPECT_FALSE(sqlite3_get_autocommit(db.get()));                   // still the caller's transaction
    EXPECT_EQ(db.value("SELECT run_status(1)"), "pending");
    db.exec("ROLLBACK");  // the run goes with the caller's rollback
    EXPECT_EQ(dump(db), before) << begin;
  }
  db.exec("BEGIN IMMEDIATE; INSERT INTO jobs VALUES (1)");
  EXPECT_EQ(db.value("SELECT start_run('full', 'api', 'k')"), "1");
  EXPECT_EQ(db.value("SELECT start_run('other', 'api', 'k2')"), "2");
  db.exec("COMMIT");  // and commits with its commit
  EXPECT_EQ(row(db, "SELECT group_concat(status), count(*) FROM runs"), (Row{"pending,pending", "2"}));
  EXPECT_EQ(count(db, "jobs"), "1");
  // The caller's own savepoints around it are untouched.
  db.exec("BEGIN IMMEDIATE; SAVEPOINT mine; INSERT INTO jobs VALUES (2)");
  EXPECT_EQ(db.value("SELECT start_run('full', 'api', 'k3')"), "3");
  db.exec("ROLLBACK TO mine; RELEASE mine; COMMIT");
  EXPECT_EQ(db.value("SELECT active_run('k3')"), std::nullopt);
  EXPECT_EQ(count(db, "jobs"), "1");
}

TEST_F(Adoption, AFailedJoinedStartLeavesTheCallersTransactionAsItWas) {
  EXPECT_EQ(db.value("SELECT start_run('full')"), "1");
  const std::string created = db.value("SELECT created_at FROM runs WHERE id = 1").value();
  before = dump(db);
  db.exec("BEGIN IMMEDIATE; INSERT INTO jobs VALUES (1)");
  const Outcome out = db.run("SELECT start_run('again')");
  EXPECT_EQ(out.extended, SQLITE_CONSTRAINT_UNIQUE);
  EXPECT_EQ(out.message, "start_run(): run 1 is already active (scope 'full', status 'pending', since " +
                             created + kWaitSuffix);
  EXPECT_FALSE(sqlite3_get_autocommit(db.get()));
  EXPECT_EQ(db.value("SELECT count(*) FROM jobs"), "1");  // the caller's write survives
  // No savepoint of ours is left behind: RELEASE of an unknown name fails.
  EXPECT_EQ(db.run("RELEASE runs_call").message, "no such savepoint: runs_call");
  db.exec("COMMIT");
  EXPECT_EQ(count(db, "jobs"), "1");
  EXPECT_EQ(count(db, "runs"), "1");
}

TEST_F(Adoption, StartRunIsRefusedInsideAStatementThatWritesEvenInAWriteTransaction) {
  db.exec("BEGIN IMMEDIATE");
  EXPECT_EQ(db.run("INSERT INTO jobs SELECT start_run('x')").message,
            "start_run(): must not run inside a statement that writes (INSERT ... SELECT, UPDATE ... "
            "SET, a CHECK constraint): call it in a SELECT of its own");
  db.exec("ROLLBACK");
  EXPECT_EQ(dump(db), before);
}

TEST_F(Adoption, TryStartRunAnswersWhoHoldsTheKey) {
  // The answer, and the run it names read back.
  const auto answer = [&](const std::string& call) {
    const std::string json = db.value("SELECT " + call).value();
    return row(db, "SELECT json_extract(" + quote(json) + ", '$.started', '$.id', '$.scope', '$.status'),"
                   " json_extract(" + quote(json) + ", '$.since') = (SELECT coalesce(started_at,"
                   " created_at) FROM runs WHERE id = json_extract(" + quote(json) + ", '$.id'))");
  };
  EXPECT_EQ(answer("try_start_run('full', 'cli', 'k', 60)"), (Row{"[true,1,\"full\",\"pending\"]", "1"}));
  EXPECT_EQ(row(db, "SELECT triggered_by, concurrency_key, lease_seconds FROM runs"),
            (Row{"cli", "k", "60"}));
  before = dump(db);
  EXPECT_EQ(answer("try_start_run('other', 'api', 'k')"), (Row{"[false,1,\"full\",\"pending\"]", "1"}));
  EXPECT_EQ(dump(db), before);  // nothing written
  EXPECT_EQ(db.value("SELECT mark_run_running(1)"), "updated");
  const std::string since = db.value("SELECT started_at FROM runs WHERE id = 1").value();
  EXPECT_EQ(db.value("SELECT try_start_run('other', 'api', 'k')"),
            "{\"started\":false,\"id\":1,\"scope\":\"full\",\"status\":\"running\",\"since\":\"" +
                since + "\"}");
  // An abandoned holder is reclaimed, as by start_run().
  db.exec("UPDATE runs SET lease_expires_at = '2000-01-01T00:00:00.000Z' WHERE id = 1");
  EXPECT_EQ(db.value("SELECT json_extract(try_start_run('other', 'api', 'k'), '$.started', '$.id')"),
            "[true,2]");
  EXPECT_EQ(db.value("SELECT run_status(1)"), "failed");
  // Bad arguments still raise, with the function's own name.
  before = dump(db);
  refused("SELECT try_start_run('')", SQLITE_ERROR, "try_start_run(): scope must not be empty");
  refused("SELECT try_start_run('x', 'api', NULL)", SQLITE_ERROR,
          "try_start_run(): concurrency_key must be text, got NULL");
  refused("SELECT try_start_run('x', 'api', 'k', 0)", SQLITE_ERROR,
          "try_start_run(): lease_seconds must be between 1 and 31536000 (365 days), got 0; pass "
          "NULL for no time-based expiry");
  refused("SELECT try_start_run('x') FROM runs", SQLITE_ERROR, "try_start_run(): " + kReadTxn);
  // Inside the caller's write transaction it joins it too.
  db.exec("BEGIN IMMEDIATE");
  EXPECT_EQ(db.value("SELECT json_extract(try_start_run('x', 'api', 'k9'), '$.started')"), "1");
  db.exec("ROLLBACK");
  EXPECT_EQ(dump(db), before);
}

TEST_F(Adoption, FailRunTakesANullMessage) {
  EXPECT_EQ(db.value("SELECT start_run('full')"), "1");
  EXPECT_EQ(db.value("SELECT fail_run(1, NULL)"), "updated");
  EXPECT_EQ(row(db, "SELECT status, quote(error_message) FROM runs"), (Row{"failed", "NULL"}));
  EXPECT_EQ(db.value("SELECT fail_run(1, NULL)"), "not_in_expected_state");
  EXPECT_EQ(db.value("SELECT fail_run(2, NULL)"), "not_found");
}

TEST_F(Adoption, ProgressMayExceedAnEstimatedOrUnknownTotal) {
  EXPECT_EQ(db.value("SELECT start_run('full')"), "1");
  EXPECT_EQ(db.value("SELECT update_run_progress(1, 11, 10, 'more than estimated')"), "updated");
  EXPECT_EQ(row(db, "SELECT progress_current, progress_total FROM runs"), (Row{"11", "10"}));
  EXPECT_EQ(db.value("SELECT update_run_progress(1, 12, NULL, NULL)"), "updated");
  EXPECT_EQ(row(db, "SELECT progress_current, quote(progress_total) FROM runs"), (Row{"12", "NULL"}));
  before = dump(db);
  refused("SELECT update_run_progress(1, -1, NULL, NULL)", SQLITE_ERROR,
          "update_run_progress(): current must not be negative, got -1");
  refused("SELECT update_run_progress(1, NULL, 5, NULL)", SQLITE_ERROR,
          "update_run_progress(): current must be an integer, got NULL");
  refused("SELECT update_run_progress(1, 1, -5, NULL)", SQLITE_ERROR,
          "update_run_progress(): total must not be negative, got -5");
}

TEST_F(Adoption, ReapStaleRunsEndsOwnerlessRunsOlderThanItIsTold) {
  // Runs written before migration 3, or by a writer without the extension:
  // no owner. Their time stamps in the formats older code wrote.
  db.exec(
      "INSERT INTO runs (id, scope, status, concurrency_key, created_at, started_at) VALUES"
      " (1, 'old', 'running', 'a', '2020-01-01 00:00:00', '2020-01-01 00:00:05'),"
      " (2, 'old', 'pending', 'b', '2020-01-01T00:00:00.000000+00:00', NULL),"
      " (3, 'recent', 'pending', 'c', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), NULL),"
      " (4, 'unreadable', 'running', 'd', 'yesterday', 'yesterday'),"
      " (5, 'done', 'completed', 'e', '2020-01-01 00:00:00', NULL)");
  EXPECT_EQ(db.value("SELECT start_run('mine', 'api', 'f')"), "6");
  db.exec("UPDATE runs SET created_at = '2020-01-01T00:00:00.000Z' WHERE id = 6");
  before = dump(db);
  // Without the age, ownerless runs are never abandoned.
  EXPECT_EQ(db.value("SELECT reap_stale_runs()"), "0");
  EXPECT_EQ(db.value("SELECT reap_stale_runs('a')"), "0");
  EXPECT_EQ(db.error("SELECT start_run('x', 'api', 'a')", SQLITE_CONSTRAINT_UNIQUE).substr(0, 36),
            "start_run(): run 1 is already active");
  EXPECT_EQ(dump(db), before);
  EXPECT_EQ(db.value("SELECT reap_stale_runs('zz', 3600)"), "0");
  EXPECT_EQ(db.value("SELECT reap_stale_runs('a', 3600)"), "1");
  EXPECT_EQ(db.value("SELECT reap_stale_runs(NULL, 3600)"), "1");
  EXPECT_EQ(db.value("SELECT reap_stale_runs(NULL, 3600)"), "0");
  EXPECT_EQ(rows(db, "SELECT id, status, error_message FROM runs ORDER BY id"),
            (Rows{{"1", "failed",
                   "abandoned: no owner recorded, and running since 2020-01-01 00:00:05, more than 3600 "
                   "seconds ago"},
                  {"2", "failed",
                   "abandoned: no owner recorded, and pending since 2020-01-01T00:00:00.000000+00:00, "
                   "more than 3600 seconds ago"},
                  {"3", "pending", std::nullopt},
                  {"4", "running", std::nullopt},  // a time it cannot read is never old
                  {"5", "completed", std::nullopt},
                  {"6", "pending", std::nullopt}}));  // has an owner: this live process
  db.exec("UPDATE runs SET created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-60 seconds') WHERE id = 3");
  EXPECT_EQ(db.value("SELECT reap_stale_runs(NULL, 30)"), "1");  // 3: a minute old now
  EXPECT_EQ(db.value("SELECT run_status(3)"), "failed");
  before = dump(db);
  for (const auto& [arguments, what] : std::vector<std::pair<std::string, std::string>>{
           {"NULL, -1", "ownerless_after_seconds must not be negative, got -1"},
           {"NULL, NULL", "ownerless_after_seconds must be an integer, got NULL"},
           {"1, 60", "concurrency_key must be text, got integer"},
           {"NULL", "concurrency_key must be text, got NULL"}}) {
    refused("SELECT reap_stale_runs(" + arguments + ")", SQLITE_ERROR, "reap_stale_runs(): " + what);
  }
}

TEST_F(Adoption, RunsOwnerPidNamesALiveProcessAsTheOwner) {
  ChildProcess child = spawn_child({"/bin/cat"});
  ASSERT_GT(child.pid, 0);
  const std::string pid = std::to_string(child.pid);
  EXPECT_EQ(db.value("SELECT runs_owner_pid(" + pid + ")"), pid);
  EXPECT_EQ(db.value("SELECT start_run('job', 'cron', 'k')"), "1");
  EXPECT_EQ(db.value("SELECT json_extract(run_info(1), '$.owner.pid')"), pid);
  EXPECT_EQ(db.value("SELECT mark_run_running(1)"), "updated");
  EXPECT_EQ(db.value("SELECT json_extract(run_info(1), '$.owner.pid')"), pid);
  EXPECT_EQ(db.value("SELECT json_extract(run_info(1), '$.stale')"), "0");
  EXPECT_EQ(db.error("SELECT start_run('job', 'api', 'k')", SQLITE_CONSTRAINT_UNIQUE).substr(0, 36),
            "start_run(): run 1 is already active");
  // The named process ends: the run is abandoned at once.
  close(child.in);
  close(child.out);
  int status = 0;
  ASSERT_EQ(waitpid(child.pid, &status, 0), child.pid);
  EXPECT_EQ(db.value("SELECT json_extract(run_info(1), '$.stale_reason') GLOB 'abandoned: owner process " +
                     pid + " on * is gone'"),
            "1");
  EXPECT_EQ(db.value("SELECT start_run('job', 'api', 'k')"), "2");
  EXPECT_EQ(db.value("SELECT run_status(1)"), "failed");
  // A pid no live process has is refused: its run would be reclaimed at once.
  before = dump(db);
  refused("SELECT runs_owner_pid(" + pid + ")", SQLITE_ERROR,
          "runs_owner_pid(): no live process has pid " + pid +
              " in this pid namespace: name a process that runs while the run is active, such as "
              "the calling script ($$)");
  refused("SELECT runs_owner_pid(0)", SQLITE_ERROR,
          "runs_owner_pid(): pid must be a process id (1 or more), got 0");
  refused("SELECT runs_owner_pid(NULL)", SQLITE_ERROR,
          "runs_owner_pid(): pid must be an integer, got NULL");
  refused("SELECT runs_owner_pid('one')", SQLITE_ERROR,
          "runs_owner_pid(): pid must be an integer, got text");
  // The refusals kept the named owner: run 2 was started by this connection,
  // for the dead process.
  EXPECT_EQ(db.value("SELECT json_extract(run_info(2), '$.stale')"), "1");
  // Naming this very process goes back to the default.
  EXPECT_EQ(db.value("SELECT runs_owner_pid(" + std::to_string(getpid()) + ")"), std::to_string(getpid()));
  EXPECT_EQ(db.value("SELECT start_run('job', 'api', 'k')"), "3");
  EXPECT_EQ(db.value("SELECT json_extract(run_info(3), '$.owner.pid')"), std::to_string(getpid()));
  EXPECT_EQ(db.value("SELECT json_extract(run_info(3), '$.stale')"), "0");
}

}  // namespace
