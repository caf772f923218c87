// The crash-recovery functions in one process: lease_seconds, heartbeat_run,
// reap_stale_runs and run_info, their results and every refusal. The
// cross-process behaviour is in tests/recovery/.
#include "unit_helpers.h"

namespace {

using namespace runs_test;

class RecoveryFunctions : public RefusalTest {
 protected:
  void SetUp() override { prepare({{"SELECT start_run('full', 'api', 'p', 30)", "1"}}); }
};

TEST_F(RecoveryFunctions, LeaseSecondsMustBeAPositiveIntegerOfAtMostAYear) {
  const std::string range = "start_run(): lease_seconds must be between 1 and 31536000 (365 days), got ";
  const std::string hint = "; pass NULL for no time-based expiry";
  refused("SELECT start_run('s', 'api', 'k', 0)", SQLITE_ERROR, range + "0" + hint);
  refused("SELECT start_run('s', 'api', 'k', -5)", SQLITE_ERROR, range + "-5" + hint);
  refused("SELECT start_run('s', 'api', 'k', 31536001)", SQLITE_ERROR, range + "31536001" + hint);
  refused("SELECT start_run('s', 'api', 'k', 1.5)", SQLITE_ERROR,
          "start_run(): lease_seconds must be an integer, got real 1.5");
  refused("SELECT start_run('s', 'api', 'k', '60s')", SQLITE_ERROR,
          "start_run(): lease_seconds must be an integer, got text");
  refused("SELECT start_run('s', 'api', 'k', x'3c')", SQLITE_ERROR,
          "start_run(): lease_seconds must be an integer, got blob");
  // The arguments are checked before the key: a conflict is not reported.
  refused("SELECT start_run('s', 'api', 'p', 0)", SQLITE_ERROR, range + "0" + hint);

  EXPECT_EQ(db.value("SELECT start_run('s', 'api', 'k', NULL)"), "2");
  EXPECT_EQ(db.value("SELECT quote(lease_seconds) || quote(lease_expires_at) FROM runs WHERE id = 2"),
            "NULLNULL");
  EXPECT_EQ(db.value("SELECT start_run('s', 'api', 'year', 31536000.0)"), "3");
  EXPECT_EQ(db.value("SELECT lease_seconds FROM runs WHERE id = 3"), "31536000");
  EXPECT_EQ(db.value("SELECT lease_expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', heartbeat_at,"
                     " '+31536000 seconds') FROM runs WHERE id = 3"),
            "1");
}

TEST_F(RecoveryFunctions, ArgumentsOfTheNewFunctions) {
  // Ids: see Errors.IdsMustBeIntegers.
  refused("SELECT reap_stale_runs(1)", SQLITE_ERROR,
          "reap_stale_runs(): concurrency_key must be text, got integer");
  refused("SELECT reap_stale_runs(NULL)", SQLITE_ERROR,
          "reap_stale_runs(): concurrency_key must be text, got NULL");
  refused("SELECT heartbeat_run(1, 2)", SQLITE_ERROR,
          "wrong number of arguments to function heartbeat_run()");
  refused("SELECT reap_stale_runs('a', 1, 2)", SQLITE_ERROR,
          "wrong number of arguments to function reap_stale_runs()");
  refused("SELECT run_info()", SQLITE_ERROR, "wrong number of arguments to function run_info()");
  refused("SELECT start_run('s', 'api', 'k', 60, 1)", SQLITE_ERROR,
          "wrong number of arguments to function start_run()");
}

TEST_F(RecoveryFunctions, ReapStaleRunsIsAStatementOfItsOwn) {
  db.exec("BEGIN");
  const Outcome inside = db.run("SELECT reap_stale_runs()");
  EXPECT_EQ(inside.message,
            "reap_stale_runs(): cannot run inside a transaction, because it commits its own: call "
            "it after COMMIT or ROLLBACK");
  EXPECT_EQ(inside.extended, SQLITE_ERROR);
  db.exec("ROLLBACK");
  EXPECT_EQ(dump(db), before);
  refused("SELECT reap_stale_runs() FROM runs", SQLITE_ERROR,
          "reap_stale_runs(): must be a statement of its own, with no FROM clause: this "
          "statement, or another one of this connection still being stepped, holds a read "
          "transaction");
}

TEST_F(RecoveryFunctions, CancelAndHeartbeatWorkInsideTheCallersTransaction) {
  db.exec("BEGIN IMMEDIATE");
  EXPECT_EQ(db.value("SELECT heartbeat_run(1)"), "ok");
  EXPECT_EQ(db.value("SELECT cancel_run(1)"), "updated");
  db.exec("ROLLBACK");
  EXPECT_EQ(dump(db), before);
  EXPECT_EQ(db.value("SELECT id || cancel_run(id) FROM runs WHERE status = 'pending'"), "1updated");
}

TEST_F(RecoveryFunctions, RunInfoHasEveryColumnTheOwnerAndTheStaleness) {
  EXPECT_EQ(db.value("SELECT group_concat(key, ' ') FROM json_each(run_info(1))"),
            "id scope status triggered_by concurrency_key created_at started_at finished_at "
            "error_message progress_current progress_total current_step owner heartbeat_at "
            "lease_seconds lease_expires_at cancel_requested_at stale stale_reason liveness");
  EXPECT_EQ(db.value("SELECT group_concat(key, ' ') FROM json_each(run_info(1), '$.owner')"),
            "host boot_id pid_namespace pid start_time time_namespace");
  EXPECT_EQ(db.value("SELECT run_info(1) ->> 'liveness'"), "exact: the owner process is alive");
  // Each value is the column's, with its SQL type kept.
  EXPECT_EQ(db.value("SELECT count(*) FROM runs AS r, json_each(run_info(r.id)) AS j"
                     " WHERE j.key NOT IN ('owner', 'stale', 'stale_reason', 'liveness')"
                     " AND j.atom IS NOT CASE j.key"
                     "   WHEN 'id' THEN r.id WHEN 'scope' THEN r.scope WHEN 'status' THEN r.status"
                     "   WHEN 'triggered_by' THEN r.triggered_by"
                     "   WHEN 'concurrency_key' THEN r.concurrency_key"
                     "   WHEN 'created_at' THEN r.created_at WHEN 'started_at' THEN r.started_at"
                     "   WHEN 'finished_at' THEN r.finished_at WHEN 'error_message' THEN r.error_message"
                     "   WHEN 'progress_current' THEN r.progress_current"
                     "   WHEN 'progress_total' THEN r.progress_total"
                     "   WHEN 'current_step' THEN r.current_step"
                     "   WHEN 'heartbeat_at' THEN r.heartbeat_at"
                     "   WHEN 'lease_seconds' THEN r.lease_seconds"
                     "   WHEN 'lease_expires_at' THEN r.lease_expires_at"
                     "   WHEN 'cancel_requested_at' THEN r.cancel_requested_at END"),
            "0");
  EXPECT_EQ(db.value("SELECT json_extract(run_info(1), '$.owner.pid', '$.lease_seconds', '$.stale',"
                     " '$.stale_reason')"),
            "[" + std::to_string(getpid()) + ",30,false,null]");
  EXPECT_EQ(db.value("SELECT run_info(99)"), std::nullopt);
  // A finished run is never stale.
  db.exec("UPDATE runs SET owner_pid = 2147483647 WHERE id = 1");
  EXPECT_EQ(db.value("SELECT json_extract(run_info(1), '$.stale')"), "1");
  ASSERT_EQ(db.value("SELECT fail_run(1, 'x')"), "updated");
  EXPECT_EQ(db.value("SELECT json_extract(run_info(1), '$.stale', '$.stale_reason')"), "[false,null]");
}

}  // namespace
