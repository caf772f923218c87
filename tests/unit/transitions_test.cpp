// The lifecycle functions: mark_run_running, complete_run, fail_run,
// cancel_run, update_run_progress, run_status and active_run.
#include "unit_helpers.h"

namespace {

using namespace runs_test;

class Transitions : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion); }

  // A new run for `key`, brought into `status`.
  void make(const std::string& key, const std::string& status) {
    const std::string id = db.value("SELECT start_run('s', 'api', " + quote(key) + ")").value();
    if (status == "running" || status == "completed") {
      ASSERT_EQ(db.value("SELECT mark_run_running(" + id + ")"), "updated");
    }
    if (status == "completed") {
      ASSERT_EQ(db.value("SELECT complete_run(" + id + ")"), "updated");
    }
    if (status == "failed") {
      ASSERT_EQ(db.value("SELECT fail_run(" + id + ", 'e')"), "updated");
    }
    if (status == "cancelled") {
      ASSERT_EQ(db.value("SELECT cancel_run(" + id + ")"), "updated");
    }
    ASSERT_EQ(db.value("SELECT status FROM runs WHERE id = " + id), status);
  }

  // One run in each status: 1 pending, 2 running, 3 completed, 4 failed, 5 cancelled.
  void make_all() {
    make("k1", "pending");
    make("k2", "running");
    make("k3", "completed");
    make("k4", "failed");
    make("k5", "cancelled");
  }

  // With a run in each status (make_all()), `call` (% for the id) answers
  // not_in_expected_state for each of `ids` and changes nothing.
  void expect_not_in_expected_state(const std::string& call, std::initializer_list<int> ids) {
    make_all();
    const Rows before = dump(db);
    for (int id : ids) {
      EXPECT_EQ(db.value(select_with(call, std::to_string(id))), "not_in_expected_state") << id;
    }
    EXPECT_EQ(dump(db), before);
  }

  // `end_1` and `end_2` end run 1 (pending) and run 2 (running), which then
  // read `ended`: id, status, error_message, whether finished_at is a time.
  void expect_both_ended(const std::string& end_1, const std::string& end_2, const Rows& ended) {
    EXPECT_EQ(db.value("SELECT " + end_1), "updated");
    EXPECT_EQ(db.value("SELECT " + end_2), "updated");
    EXPECT_EQ(rows(db, "SELECT id, status, error_message, finished_at GLOB " + kIsoGlob +
                           " FROM runs WHERE id IN (1, 2) ORDER BY id"),
              ended);
  }

  TestDb db;
};

TEST_F(Transitions, MarkRunningSetsStatusAndStartedAt) {
  EXPECT_EQ(db.value("SELECT start_run('full')"), "1");
  EXPECT_EQ(db.value("SELECT mark_run_running(1)"), "updated");
  EXPECT_EQ(row(db, "SELECT status, started_at GLOB " + kIsoGlob +
                        ", finished_at, error_message FROM runs"),
            (Row{"running", "1", std::nullopt, std::nullopt}));
  const Rows before = dump(db);
  EXPECT_EQ(db.value("SELECT mark_run_running(1)"), "not_in_expected_state");
  EXPECT_EQ(dump(db), before);
  EXPECT_EQ(db.value("SELECT mark_run_running(2)"), "not_found");
}

TEST_F(Transitions, MarkRunningOnlyFromPending) {
  expect_not_in_expected_state("mark_run_running(%)", {2, 3, 4, 5});
  EXPECT_EQ(db.value("SELECT mark_run_running(1)"), "updated");
  EXPECT_EQ(db.value("SELECT mark_run_running(0)"), "not_found");
  EXPECT_EQ(db.value("SELECT mark_run_running(-1)"), "not_found");
  EXPECT_EQ(db.value("SELECT mark_run_running(9223372036854775807)"), "not_found");
}

TEST_F(Transitions, CompleteRunOnlyFromRunning) {
  expect_not_in_expected_state("complete_run(%)", {1, 3, 4, 5});
  const Row started = row(db, "SELECT started_at FROM runs WHERE id = 2");
  EXPECT_EQ(db.value("SELECT complete_run(2)"), "updated");
  EXPECT_EQ(row(db, "SELECT status, finished_at GLOB " + kIsoGlob +
                        ", error_message FROM runs WHERE id = 2"),
            (Row{"completed", "1", std::nullopt}));
  EXPECT_EQ(row(db, "SELECT started_at FROM runs WHERE id = 2"), started);
  EXPECT_EQ(db.value("SELECT complete_run(2)"), "not_in_expected_state");
  EXPECT_EQ(db.value("SELECT complete_run(6)"), "not_found");
}

TEST_F(Transitions, FailRunFromPendingOrRunning) {
  expect_not_in_expected_state("fail_run(%, 'x')", {3, 4, 5});
  expect_both_ended("fail_run(1, 'disk full')", "fail_run(2, '')",
                    {{"1", "failed", "disk full", "1"}, {"2", "failed", "", "1"}});
  EXPECT_EQ(db.value("SELECT started_at FROM runs WHERE id = 1"), std::nullopt);
  EXPECT_EQ(db.value("SELECT fail_run(1, 'again')"), "not_in_expected_state");
  EXPECT_EQ(db.value("SELECT error_message FROM runs WHERE id = 1"), "disk full");
  EXPECT_EQ(db.value("SELECT fail_run(6, 'x')"), "not_found");
}

TEST_F(Transitions, FailRunKeepsTheLongestMessageExactly) {
  EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
  const std::string longest(1024 * 1024, 'm');
  EXPECT_EQ(db.value("SELECT fail_run(1, " + quote(longest) + ")"), "updated");
  EXPECT_EQ(db.value("SELECT length(error_message) FROM runs"), "1048576");
  EXPECT_EQ(db.value("SELECT start_run('b')"), "2");
  EXPECT_EQ(db.value("SELECT fail_run(2, 'line 1\nline 2 ''quoted'' 日本')"), "updated");
  EXPECT_EQ(db.value("SELECT error_message FROM runs WHERE id = 2"), "line 1\nline 2 'quoted' 日本");
}

TEST_F(Transitions, CancelRunFromPendingOrRunning) {
  expect_not_in_expected_state("cancel_run(%)", {3, 4, 5});
  expect_both_ended("cancel_run(1)", "cancel_run(2)",
                    {{"1", "cancelled", std::nullopt, "1"}, {"2", "cancelled", std::nullopt, "1"}});
  EXPECT_EQ(db.value("SELECT cancel_run(1)"), "not_in_expected_state");
  EXPECT_EQ(db.value("SELECT cancel_run(6)"), "not_found");
}

TEST_F(Transitions, UpdateProgressWhileActive) {
  make_all();
  EXPECT_EQ(db.value("SELECT update_run_progress(1, 0, 10, 'queued')"), "updated");
  EXPECT_EQ(db.value("SELECT update_run_progress(2, 5, 10, 'extract')"), "updated");
  EXPECT_EQ(rows(db, "SELECT id, status, progress_current, progress_total, current_step,"
                     " typeof(progress_current), typeof(progress_total)"
                     " FROM runs WHERE id IN (1, 2) ORDER BY id"),
            (Rows{{"1", "pending", "0", "10", "queued", "integer", "integer"},
                  {"2", "running", "5", "10", "extract", "integer", "integer"}}));
  // current == total, an empty step, then NULL clears the step.
  EXPECT_EQ(db.value("SELECT update_run_progress(2, 10, 10, '')"), "updated");
  EXPECT_EQ(row(db, "SELECT progress_current, progress_total, current_step FROM runs WHERE id = 2"),
            (Row{"10", "10", ""}));
  EXPECT_EQ(db.value("SELECT update_run_progress(2, 3, 10, NULL)"), "updated");
  EXPECT_EQ(row(db, "SELECT progress_current, progress_total, current_step FROM runs WHERE id = 2"),
            (Row{"3", "10", std::nullopt}));
  // total 0 means unknown: any current is accepted.
  EXPECT_EQ(db.value("SELECT update_run_progress(2, 11, 0, 'x')"), "updated");
  EXPECT_EQ(row(db, "SELECT progress_current, progress_total, current_step FROM runs WHERE id = 2"),
            (Row{"11", "0", "x"}));
  // Large values, and REAL with integral value.
  EXPECT_EQ(db.value("SELECT update_run_progress(2.0, 4.0, 9223372036854775807, 'big')"), "updated");
  EXPECT_EQ(row(db, "SELECT progress_current, progress_total, typeof(progress_current) FROM runs "
                    "WHERE id = 2"),
            (Row{"4", "9223372036854775807", "integer"}));
  // Status and timestamps are untouched by progress.
  EXPECT_EQ(row(db, "SELECT status, finished_at FROM runs WHERE id = 2"),
            (Row{"running", std::nullopt}));
  const Rows before = dump(db);
  for (int id : {3, 4, 5}) {
    EXPECT_EQ(db.value("SELECT update_run_progress(" + std::to_string(id) + ", 1, 2, 's')"),
              "not_in_expected_state")
        << id;
  }
  EXPECT_EQ(db.value("SELECT update_run_progress(6, 1, 2, 's')"), "not_found");
  EXPECT_EQ(dump(db), before);
}

TEST_F(Transitions, RunStatusReportsEveryStatus) {
  make_all();
  EXPECT_EQ(rows(db, "SELECT run_status(1), run_status(2), run_status(3), run_status(4),"
                     " run_status(5), run_status(6), run_status(0)"),
            (Rows{{"pending", "running", "completed", "failed", "cancelled", std::nullopt,
                   std::nullopt}}));
  EXPECT_EQ(db.value("SELECT typeof(run_status(1))"), "text");
  EXPECT_EQ(db.value("SELECT run_status(2.0)"), "running");
}

TEST_F(Transitions, ActiveRunFollowsTheLifecycle) {
  expect_values(db, {{"SELECT active_run()", std::nullopt},
                     {"SELECT start_run('a')", "1"},
                     {"SELECT typeof(active_run())", "integer"},
                     {"SELECT active_run()", "1"},
                     {"SELECT mark_run_running(1)", "updated"},
                     {"SELECT active_run()", "1"},
                     {"SELECT complete_run(1)", "updated"},
                     {"SELECT active_run()", std::nullopt},
                     {"SELECT active_run('other')", std::nullopt}});
}

TEST_F(Transitions, OnlyTheTargetRowChanges) {
  make_all();
  db.exec("CREATE TEMP TABLE snapshot AS SELECT * FROM runs");
  EXPECT_EQ(db.value("SELECT mark_run_running(1)"), "updated");
  EXPECT_EQ(db.value("SELECT update_run_progress(1, 1, 2, 'step')"), "updated");
  EXPECT_EQ(db.value("SELECT fail_run(1, 'x')"), "updated");
  EXPECT_EQ(db.value("SELECT cancel_run(2)"), "updated");
  EXPECT_EQ(rows(db, "SELECT id FROM (SELECT * FROM runs EXCEPT SELECT * FROM temp.snapshot)"
                     " ORDER BY id"),
            (Rows{{"1"}, {"2"}}));
  EXPECT_EQ(count(db, "runs"), "5");
}

TEST_F(Transitions, RunInsideTheCallersTransaction) {
  EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
  db.exec("BEGIN");
  EXPECT_EQ(db.value("SELECT mark_run_running(1)"), "updated");
  EXPECT_EQ(db.value("SELECT update_run_progress(1, 1, 2, 's')"), "updated");
  EXPECT_EQ(db.value("SELECT run_status(1)"), "running");
  EXPECT_EQ(db.value("SELECT active_run()"), "1");
  EXPECT_FALSE(sqlite3_get_autocommit(db.get()));
  db.exec("ROLLBACK");
  EXPECT_EQ(row(db, "SELECT status, started_at, progress_current, current_step FROM runs"),
            (Row{"pending", std::nullopt, "0", std::nullopt}));
  db.exec("BEGIN IMMEDIATE");
  EXPECT_EQ(db.value("SELECT mark_run_running(1)"), "updated");
  EXPECT_EQ(db.value("SELECT complete_run(1)"), "updated");
  db.exec("COMMIT");
  EXPECT_EQ(db.value("SELECT run_status(1)"), "completed");
  db.exec("SAVEPOINT sp");
  EXPECT_EQ(db.value("SELECT fail_run(1, 'x')"), "not_in_expected_state");
  db.exec("RELEASE sp");
}

TEST_F(Transitions, TransitionsFromASelectOverRows) {
  // Unlike start_run(), transitions may run once per row of a query.
  make("k1", "pending");
  make("k2", "pending");
  make("k3", "running");
  EXPECT_EQ(rows(db, "SELECT id, cancel_run(id) FROM runs ORDER BY id"),
            (Rows{{"1", "updated"}, {"2", "updated"}, {"3", "updated"}}));
  EXPECT_EQ(db.value("SELECT group_concat(status) FROM runs"), "cancelled,cancelled,cancelled");
}

TEST_F(Transitions, IntegralRealIdsAreAccepted) {
  expect_values(db, {{"SELECT start_run('a')", "1"},
                     {"SELECT mark_run_running(1.0)", "updated"},
                     {"SELECT update_run_progress(1.0, 1.0, 2.0, 's')", "updated"},
                     {"SELECT complete_run(1.0)", "updated"},
                     {"SELECT start_run('b')", "2"},
                     {"SELECT fail_run(2.0, 'x')", "updated"},
                     {"SELECT start_run('c')", "3"},
                     {"SELECT cancel_run(3.0)", "updated"},
                     {"SELECT run_status(3.0)", "cancelled"},
                     {"SELECT run_status(-0.0)", std::nullopt}});
}

TEST_F(Transitions, ResultsAreText) {
  EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
  EXPECT_EQ(row(db, "SELECT typeof(mark_run_running(1)), typeof(mark_run_running(1)),"
                    " typeof(mark_run_running(7))"),
            (Row{"text", "text", "text"}));
}

}  // namespace
