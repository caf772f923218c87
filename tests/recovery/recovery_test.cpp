// Crash recovery, proven with real processes: owners that die (SIGKILL),
// owners on other hosts with leases, reused pids, fencing of an old owner's
// writes, and the cooperative cancel protocol between processes.
//
// Each test's database is a file shared by this process (TestDb) and
// sql_worker children (WorkerProcess), driven statement by statement: no
// sleeps, no timing. Other hosts, earlier boots and reused pids are presented
// to the extension the way it reads them: through the owner_* columns.
#include <unistd.h>

#include <climits>
#include <fstream>
#include <string>

#include "system.h"
#include "temp_dir.h"
#include "test_db.h"
#include "worker_process.h"

namespace {

using runs_test::host_name;
using runs_test::kLatestSchemaVersion;
using runs_test::TempDir;
using runs_test::TestDb;
using runs_test::WorkerProcess;

constexpr const char* kIsoGlob =
    "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'";
constexpr const char* kPast = "2000-01-01T00:00:00.000Z";
const std::string kOtherBoot = "00000000-0000-0000-0000-000000000000";

std::string already_active(const std::string& id, const std::string& status,
                           const std::string& since) {
  return "start_run(): run " + id + " is already active (scope 'full', status '" + status +
         "', since " + since +
         "): wait for it to finish, or end it with complete_run(), fail_run() or cancel_run()";
}

class Recovery : public ::testing::Test {
 protected:
  void SetUp() override {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA busy_timeout = 5000");
    ASSERT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  }

  std::string column(const std::string& id, const std::string& expression) {
    return db.value("SELECT " + expression + " FROM runs WHERE id = " + id).value_or("NULL");
  }
  // Every column of every run but `id`, to show that nothing else changed.
  std::vector<std::vector<std::optional<std::string>>> others(const std::string& id) {
    return db.run("SELECT * FROM runs WHERE id <> " + id + " ORDER BY id").rows;
  }
  // Run `id` without the columns that ending it changes.
  std::vector<std::vector<std::optional<std::string>>> unchanged_part(const std::string& id) {
    return db
        .run("SELECT id, scope, triggered_by, concurrency_key, created_at, started_at,"
             " progress_current, progress_total, current_step, owner_host, owner_boot_id,"
             " owner_pid_ns, owner_pid, owner_start_time, heartbeat_at, lease_seconds,"
             " lease_expires_at, cancel_requested_at FROM runs WHERE id = " + id)
        .rows;
  }
  void expect_abandoned(const std::string& id, const std::string& message) {
    EXPECT_EQ(column(id, "status"), "failed");
    EXPECT_EQ(column(id, std::string("finished_at GLOB ") + kIsoGlob), "1");
    EXPECT_EQ(column(id, "error_message"), message);
  }

  // The owner starts run 1 and takes it up.
  static void own(WorkerProcess& owner) {
    ASSERT_EQ(owner.run("SELECT start_run('full')"), "1");
    ASSERT_EQ(owner.run("SELECT mark_run_running(1)"), "updated");
  }

  // Run `id` was reclaimed because its owner, the process `pid` of this
  // host, was gone (`why`, if given, says how it was told).
  void expect_owner_gone(const std::string& id, const std::string& pid, const std::string& why = "") {
    expect_abandoned(id, "abandoned: owner process " + pid + " on " + host_name() + " is gone" + why);
  }

  TempDir dir;
  TestDb db{dir.db()};
};

TEST_F(Recovery, ALiveOwnerInAnotherProcessHoldsTheKey) {
  WorkerProcess owner(dir.db());
  ASSERT_EQ(owner.run("SELECT start_run('full')"), "1");
  EXPECT_EQ(db.error("SELECT start_run('full')", SQLITE_CONSTRAINT_UNIQUE),
            already_active("1", "pending", column("1", "created_at")));
  EXPECT_EQ(db.value("SELECT reap_stale_runs()"), "0");
  EXPECT_EQ(db.value("SELECT json_extract(run_info(1), '$.stale', '$.stale_reason',"
                     " '$.owner.pid', '$.owner.host')"),
            "[false,null," + std::to_string(owner.pid()) + ",\"" + host_name() + "\"]");
  EXPECT_EQ(column("1", "status"), "pending");
}

TEST_F(Recovery, AKilledOwnerIsReclaimedAtOnceAndNothingElseChanges) {
  // History around the run: a finished run of the same key, and an active
  // run of another key owned by this process.
  ASSERT_EQ(db.value("SELECT start_run('old')"), "1");
  ASSERT_EQ(db.value("SELECT mark_run_running(1) || complete_run(1)"), "updatedupdated");
  ASSERT_EQ(db.value("SELECT start_run('other', 'cli', 'k2')"), "2");

  WorkerProcess owner(dir.db());
  ASSERT_EQ(owner.run("SELECT start_run('full', 'worker')"), "3");
  ASSERT_EQ(owner.run("SELECT mark_run_running(3)"), "updated");
  ASSERT_EQ(owner.run("SELECT update_run_progress(3, 4, 10, 'step 4')"), "updated");
  const std::string pid = std::to_string(owner.pid());
  const auto before_others = others("3");
  const auto before_run = unchanged_part("3");

  owner.kill_hard();
  EXPECT_EQ(db.value("SELECT start_run('full')"), "4");

  expect_owner_gone("3", pid);
  EXPECT_EQ(unchanged_part("3"), before_run);
  auto after_others = db.run("SELECT * FROM runs WHERE id NOT IN (3, 4) ORDER BY id").rows;
  EXPECT_EQ(after_others, before_others);
  EXPECT_EQ(column("4", "status || ' ' || owner_pid"), "pending " + std::to_string(getpid()));
  EXPECT_EQ(db.value("SELECT active_run()"), "4");
  EXPECT_EQ(db.value("PRAGMA integrity_check"), "ok");
}

TEST_F(Recovery, TheProcessThatMarksARunRunningBecomesItsOwner) {
  ASSERT_EQ(db.value("SELECT start_run('full')"), "1");
  std::string pid;
  {
    WorkerProcess worker(dir.db());
    pid = std::to_string(worker.pid());
    ASSERT_EQ(worker.run("SELECT mark_run_running(1)"), "updated");
    EXPECT_EQ(column("1", "owner_pid"), pid);
    EXPECT_EQ(db.error("SELECT start_run('full')", SQLITE_CONSTRAINT_UNIQUE),
              already_active("1", "running", column("1", "started_at")));
    worker.kill_hard();
  }
  EXPECT_EQ(db.value("SELECT start_run('full')"), "2");
  expect_owner_gone("1", pid);
}

TEST_F(Recovery, ARunOfAnotherHostIsReclaimedOnlyAfterItsLeaseExpires) {
  ASSERT_EQ(db.value("SELECT start_run('full', 'api', '', 60)"), "1");
  // Another host: another boot id (the host name is only for people).
  db.exec("UPDATE runs SET owner_host = 'build-server-2', owner_boot_id = '" + kOtherBoot +
          "' WHERE id = 1");
  const std::string pid = std::to_string(getpid());

  // Before expiry: held.
  EXPECT_EQ(column("1", "lease_expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', heartbeat_at, '+60 seconds')"),
            "1");
  EXPECT_EQ(db.error("SELECT start_run('full')", SQLITE_CONSTRAINT_UNIQUE),
            already_active("1", "pending", column("1", "created_at")));
  EXPECT_EQ(db.value("SELECT reap_stale_runs()"), "0");

  // Time passes (the lease's end is moved into the past): stale, but a
  // heartbeat that comes before any reclaim pushes the end out again.
  db.exec(std::string("UPDATE runs SET lease_expires_at = '") + kPast + "' WHERE id = 1");
  const std::string expired = std::string("abandoned: its lease expired at ") + kPast +
                              " (owner process " + pid + " on build-server-2)";
  EXPECT_EQ(db.value("SELECT json_extract(run_info(1), '$.stale', '$.stale_reason')"),
            "[true,\"" + expired + "\"]");
  // (The heartbeat hands the run over to its caller, this process.)
  EXPECT_EQ(db.value("SELECT heartbeat_run(1)"), "ok");
  EXPECT_EQ(column("1", "owner_host"), host_name());
  EXPECT_EQ(column("1", "lease_expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"), "1");
  EXPECT_EQ(column("1", "lease_expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', heartbeat_at, '+60 seconds')"),
            "1");
  EXPECT_EQ(db.error("SELECT start_run('full')", SQLITE_CONSTRAINT_UNIQUE),
            already_active("1", "pending", column("1", "created_at")));

  // Expired again, and nobody heartbeats: the next start reclaims it.
  db.exec(std::string("UPDATE runs SET lease_expires_at = '") + kPast + "' WHERE id = 1");
  EXPECT_EQ(db.value("SELECT start_run('full')"), "2");
  expect_abandoned("1", std::string("abandoned: its lease expired at ") + kPast +
                            " (owner process " + pid + " on " + host_name() + ")");
}

TEST_F(Recovery, ARunOfAnotherHostWithoutALeaseIsNeverReclaimed) {
  ASSERT_EQ(db.value("SELECT start_run('full')"), "1");
  // Even a pid that exists nowhere here says nothing about another host.
  db.exec("UPDATE runs SET owner_host = 'build-server-2', owner_boot_id = '" + kOtherBoot +
          "', owner_pid = 2147483647 WHERE id = 1");
  EXPECT_EQ(db.error("SELECT start_run('full')", SQLITE_CONSTRAINT_UNIQUE),
            already_active("1", "pending", column("1", "created_at")));
  EXPECT_EQ(db.value("SELECT reap_stale_runs()"), "0");
  EXPECT_EQ(db.value("SELECT json_extract(run_info(1), '$.stale')"), "0");
}

TEST_F(Recovery, AnotherPidNamespaceIsJudgedByTheLeaseOnly) {
  ASSERT_EQ(db.value("SELECT start_run('full')"), "1");
  db.exec("UPDATE runs SET owner_pid_ns = owner_pid_ns + 1, owner_pid = 2147483647 WHERE id = 1");
  EXPECT_EQ(db.value("SELECT reap_stale_runs()"), "0");
  EXPECT_EQ(column("1", "status"), "pending");
}

TEST_F(Recovery, AReusedPidIsNotTakenForTheOwner) {
  WorkerProcess worker(dir.db());
  ASSERT_EQ(worker.run("SELECT start_run('full')"), "1");
  // The same pid and start time: the owner itself, alive.
  EXPECT_EQ(db.value("SELECT reap_stale_runs()"), "0");
  // The pid now names a process that started at another time than the owner.
  db.exec("UPDATE runs SET owner_start_time = owner_start_time + 1 WHERE id = 1");
  EXPECT_EQ(db.value("SELECT start_run('full')"), "2");
  expect_owner_gone("1", std::to_string(worker.pid()), " (the pid now belongs to another process)");
}

// Another boot id under the same host name: an earlier boot of this host, or
// another machine of the same name; nothing here tells which, so the lease
// decides.
TEST_F(Recovery, ARunOfAnotherBootIsJudgedByItsLeaseOnly) {
  ASSERT_EQ(db.value("SELECT start_run('full', 'api', '', 60)"), "1");
  db.exec("UPDATE runs SET owner_boot_id = '" + kOtherBoot + "', owner_pid = 2147483647 WHERE id = 1");
  EXPECT_EQ(db.value("SELECT reap_stale_runs('')"), "0");
  EXPECT_EQ(column("1", "status"), "pending");
  db.exec(std::string("UPDATE runs SET lease_expires_at = '") + kPast + "' WHERE id = 1");
  EXPECT_EQ(db.value("SELECT reap_stale_runs('')"), "1");
  expect_abandoned("1", std::string("abandoned: its lease expired at ") + kPast +
                            " (owner process 2147483647 on " + host_name() + ")");
}

TEST_F(Recovery, AfterAReclaimTheOldOwnerCannotWriteAndTheNewRunIsUntouched) {
  WorkerProcess old_owner(dir.db());
  ASSERT_EQ(old_owner.run("SELECT start_run('full', 'api', '', 30)"), "1");
  ASSERT_EQ(old_owner.run("SELECT mark_run_running(1)"), "updated");
  ASSERT_EQ(old_owner.run("SELECT update_run_progress(1, 1, 10, 'one')"), "updated");
  // The old owner stops heartbeating (it hangs); its lease runs out.
  db.exec(std::string("UPDATE runs SET lease_expires_at = '") + kPast + "' WHERE id = 1");
  ASSERT_EQ(db.value("SELECT start_run('full')"), "2");
  ASSERT_EQ(db.value("SELECT mark_run_running(2)"), "updated");
  const auto old_run = db.run("SELECT * FROM runs WHERE id = 1").rows;
  const auto new_run = db.run("SELECT * FROM runs WHERE id = 2").rows;

  // It wakes up and goes on as if nothing happened: every write is refused.
  EXPECT_EQ(old_owner.run("SELECT heartbeat_run(1)"), "lost");
  EXPECT_EQ(old_owner.run("SELECT update_run_progress(1, 2, 10, 'two')"), "not_in_expected_state");
  EXPECT_EQ(old_owner.run("SELECT mark_run_running(1)"), "not_in_expected_state");
  EXPECT_EQ(old_owner.run("SELECT complete_run(1)"), "not_in_expected_state");
  EXPECT_EQ(old_owner.run("SELECT fail_run(1, 'late')"), "not_in_expected_state");
  EXPECT_EQ(old_owner.run("SELECT cancel_run(1)"), "not_in_expected_state");
  EXPECT_EQ(old_owner.run("UPDATE runs SET status = 'completed' WHERE id = 1"),
            "error: runs: illegal status change from failed to completed: a finished run never "
            "changes status");

  EXPECT_EQ(db.run("SELECT * FROM runs WHERE id = 1").rows, old_run);
  EXPECT_EQ(db.run("SELECT * FROM runs WHERE id = 2").rows, new_run);
  EXPECT_EQ(column("1", "status"), "failed");
  EXPECT_EQ(column("2", "status"), "running");
}

TEST_F(Recovery, CancelOfARunWhoseOwnerIsAliveElsewhereIsARequestTheOwnerConfirms) {
  WorkerProcess owner(dir.db());
  own(owner);
  EXPECT_EQ(owner.run("SELECT heartbeat_run(1)"), "ok");

  EXPECT_EQ(db.value("SELECT cancel_run(1)"), "cancel_requested");
  const std::string requested_at = column("1", "cancel_requested_at");
  EXPECT_EQ(column("1", std::string("cancel_requested_at GLOB ") + kIsoGlob), "1");
  // The run stays active: the key stays blocked while the owner may still work.
  EXPECT_EQ(column("1", "status"), "running");
  EXPECT_EQ(db.value("SELECT active_run()"), "1");
  EXPECT_EQ(db.error("SELECT start_run('full')", SQLITE_CONSTRAINT_UNIQUE),
            already_active("1", "running", column("1", "started_at")));
  // Asking again changes nothing; the first request's time stays.
  EXPECT_EQ(db.value("SELECT cancel_run(1)"), "cancel_requested");
  EXPECT_EQ(column("1", "cancel_requested_at"), requested_at);

  // The owner sees the request and confirms; then the key is free.
  EXPECT_EQ(owner.run("SELECT heartbeat_run(1)"), "cancel_requested");
  EXPECT_EQ(owner.run("SELECT cancel_run(1)"), "updated");
  EXPECT_EQ(column("1", "status"), "cancelled");
  EXPECT_EQ(db.value("SELECT start_run('full')"), "2");
  EXPECT_EQ(owner.run("SELECT heartbeat_run(1)"), "lost");
}

TEST_F(Recovery, CancelIsImmediateForAPendingRunAndForOnesOwnRun) {
  WorkerProcess starter(dir.db());
  ASSERT_EQ(starter.run("SELECT start_run('full')"), "1");
  EXPECT_EQ(db.value("SELECT cancel_run(1)"), "updated");
  EXPECT_EQ(column("1", "status || ' ' || (cancel_requested_at IS NULL)"), "cancelled 1");

  ASSERT_EQ(db.value("SELECT start_run('full')"), "2");
  ASSERT_EQ(db.value("SELECT mark_run_running(2)"), "updated");
  EXPECT_EQ(db.value("SELECT cancel_run(2)"), "updated");
  EXPECT_EQ(column("2", "status"), "cancelled");
}

TEST_F(Recovery, CancelIsImmediateWhenTheOwnerIsGone) {
  WorkerProcess owner(dir.db());
  own(owner);
  owner.kill_hard();
  EXPECT_EQ(db.value("SELECT cancel_run(1)"), "updated");
  EXPECT_EQ(column("1", "status"), "cancelled");
}

TEST_F(Recovery, ARequestedCancelIsAlsoSettledByTheOwnerDying) {
  WorkerProcess owner(dir.db());
  own(owner);
  ASSERT_EQ(db.value("SELECT cancel_run(1)"), "cancel_requested");
  const std::string pid = std::to_string(owner.pid());
  owner.kill_hard();
  EXPECT_EQ(db.value("SELECT start_run('full')"), "2");
  expect_owner_gone("1", pid);
}

TEST_F(Recovery, ReapStaleRunsReclaimsExactlyTheAbandonedRuns) {
  WorkerProcess a(dir.db());
  WorkerProcess b(dir.db());
  ASSERT_EQ(a.run("SELECT start_run('full', 'api', 'a')"), "1");
  ASSERT_EQ(b.run("SELECT start_run('full', 'api', 'b')"), "2");
  ASSERT_EQ(db.value("SELECT start_run('full', 'api', 'c')"), "3");
  WorkerProcess alive(dir.db());
  ASSERT_EQ(alive.run("SELECT start_run('full', 'api', 'd')"), "4");
  const std::string pid_a = std::to_string(a.pid());
  const std::string pid_b = std::to_string(b.pid());
  a.kill_hard();
  b.kill_hard();

  EXPECT_EQ(db.value("SELECT reap_stale_runs('c')"), "0");
  EXPECT_EQ(db.value("SELECT reap_stale_runs('a')"), "1");
  EXPECT_EQ(column("2", "status"), "pending");
  EXPECT_EQ(db.value("SELECT reap_stale_runs()"), "1");
  EXPECT_EQ(db.value("SELECT reap_stale_runs()"), "0");
  expect_owner_gone("1", pid_a);
  expect_owner_gone("2", pid_b);
  EXPECT_EQ(db.value("SELECT group_concat(status) FROM runs WHERE id IN (3, 4)"), "pending,pending");
}

TEST_F(Recovery, RunsWithoutARecordedOwnerAreNeverReclaimed) {
  // As a run that was active before migration 3, or written by raw SQL.
  db.exec("INSERT INTO runs (scope, status, created_at) VALUES ('full', 'running', '2026-01-01T00:00:00.000Z')");
  EXPECT_EQ(db.value("SELECT reap_stale_runs()"), "0");
  EXPECT_EQ(db.error("SELECT start_run('full')", SQLITE_CONSTRAINT_UNIQUE),
            already_active("1", "running", "2026-01-01T00:00:00.000Z"));
  EXPECT_EQ(db.value("SELECT json_extract(run_info(1), '$.owner', '$.stale')"), "[null,false]");
  // Nobody can confirm a cancel for it, so a cancel is immediate.
  EXPECT_EQ(db.value("SELECT cancel_run(1)"), "updated");
  EXPECT_EQ(db.value("SELECT start_run('full')"), "2");
}

TEST_F(Recovery, WritesOfTheFunctionsRenewTheLease) {
  ASSERT_EQ(db.value("SELECT start_run('full', 'api', '', 120)"), "1");
  const std::string renewed =
      "heartbeat_at > '2001-01-01' AND lease_expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', "
      "heartbeat_at, '+120 seconds')";
  const std::string age = "UPDATE runs SET heartbeat_at = '2000-01-01T00:00:00.000Z', lease_expires_at = '2000-01-01T00:02:00.000Z' WHERE id = 1";
  EXPECT_EQ(column("1", renewed), "1");
  db.exec(age);
  EXPECT_EQ(db.value("SELECT mark_run_running(1)"), "updated");
  EXPECT_EQ(column("1", renewed), "1");
  db.exec(age);
  EXPECT_EQ(db.value("SELECT update_run_progress(1, 1, 2, NULL)"), "updated");
  EXPECT_EQ(column("1", renewed), "1");
  db.exec(age);
  EXPECT_EQ(db.value("SELECT heartbeat_run(1)"), "ok");
  EXPECT_EQ(column("1", renewed), "1");
  // Without a lease a heartbeat records the time and sets no expiry.
  ASSERT_EQ(db.value("SELECT start_run('other', 'api', 'k')"), "2");
  EXPECT_EQ(db.value("SELECT heartbeat_run(2)"), "ok");
  EXPECT_EQ(column("2", "lease_seconds IS NULL AND lease_expires_at IS NULL"), "1");
  // An end written by hand, without lease_seconds, is kept.
  db.exec("UPDATE runs SET lease_expires_at = '2100-01-01T00:00:00.000Z' WHERE id = 2");
  EXPECT_EQ(db.value("SELECT heartbeat_run(2)"), "ok");
  EXPECT_EQ(column("2", "lease_expires_at"), "2100-01-01T00:00:00.000Z");
}

TEST_F(Recovery, HeartbeatOfARunThatIsNotActiveIsLost) {
  EXPECT_EQ(db.value("SELECT heartbeat_run(1)"), "lost");
  ASSERT_EQ(db.value("SELECT start_run('full')"), "1");
  ASSERT_EQ(db.value("SELECT fail_run(1, 'x')"), "updated");
  EXPECT_EQ(db.value("SELECT heartbeat_run(1)"), "lost");
  EXPECT_EQ(column("1", "status"), "failed");
}

}  // namespace
