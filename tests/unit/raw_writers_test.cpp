// Raw writers that bypass the functions: INSERT OR REPLACE, REPLACE, INSERT
// OR IGNORE, ON CONFLICT DO NOTHING / DO UPDATE and UPDATE OR REPLACE into
// runs while a run is active. At schema version 2 conflict resolution let
// them delete or take over the active run, or be dropped without an error.
//
// Migration 3's BEFORE INSERT trigger refuses an active run for a key that
// already has one before SQLite's conflict resolution runs, so OR REPLACE
// cannot delete the active run, and OR IGNORE / DO NOTHING / DO UPDATE cannot
// pass silently or take it over; it refuses an INSERT that reuses an id; and
// the status triggers refuse an illegal change made by UPDATE OR REPLACE.
//
// tests/unit/state_machine_test.cpp has the state machine; this file the
// conflict clauses one by one.
#include "unit_helpers.h"

namespace {

using namespace runs_test;

const std::string kSecondActive = "runs: this concurrency_key already has an active run: end it first";
const std::string kIdReusePrefix = "runs: a run with this id exists: runs are never replaced";

class RawWriters : public RefusalTest {
 protected:
  // Run 1 pending (key ''), run 2 running (key 'k'), run 3 completed (key 'k').
  void SetUp() override {
    prepare({{"SELECT start_run('first')", "1"},
             {"SELECT start_run('second', 'api', 'k')", "2"},
             {"SELECT mark_run_running(2)", "updated"},
             {"INSERT INTO runs (scope, status, concurrency_key, created_at)"
              " VALUES ('old', 'completed', 'k', '2026-01-01T00:00:00.000Z')",
              std::nullopt}});
  }

  // `sql` fails with the trigger's error and changes nothing at all.
  void refused(const std::string& sql, const std::string& message) {
    RefusalTest::refused(sql, SQLITE_CONSTRAINT_TRIGGER, message);
  }

  using RefusalTest::refused;

  Rows runs() { return rows(db, "SELECT id, scope, status, concurrency_key FROM runs ORDER BY id"); }
};

const std::string kNow = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

TEST_F(RawWriters, InsertOrReplaceCannotDeleteTheActiveRun) {
  refused("INSERT OR REPLACE INTO runs (scope, status, created_at) VALUES ('raw', 'pending', " + kNow + ")",
          kSecondActive);
  refused("REPLACE INTO runs (scope, status, concurrency_key, created_at) VALUES ('raw', 'running', 'k', " +
              kNow + ")",
          kSecondActive);
  EXPECT_EQ(db.value("SELECT active_run()"), "1");
  EXPECT_EQ(db.value("SELECT active_run('k')"), "2");
}

TEST_F(RawWriters, InsertOrIgnoreAndDoNothingAreRefusedAloud) {
  refused("INSERT OR IGNORE INTO runs (scope, status, concurrency_key, created_at) VALUES ('raw', 'pending', 'k', " +
              kNow + ")",
          kSecondActive);
  refused("INSERT INTO runs (scope, status, created_at) VALUES ('raw', 'running', " + kNow +
              ") ON CONFLICT DO NOTHING",
          kSecondActive);
  refused("INSERT INTO runs (scope, status, concurrency_key, created_at) VALUES ('raw', 'pending', 'k', " + kNow +
              ") ON CONFLICT (concurrency_key) WHERE status IN ('pending', 'running') DO NOTHING",
          kSecondActive);
}

TEST_F(RawWriters, OnConflictDoUpdateCannotTakeOverTheActiveRun) {
  refused("INSERT INTO runs (scope, status, concurrency_key, created_at) VALUES ('raw', 'pending', 'k', " + kNow +
              ") ON CONFLICT (concurrency_key) WHERE status IN ('pending', 'running')"
              " DO UPDATE SET scope = excluded.scope, triggered_by = 'raw'",
          kSecondActive);
}

TEST_F(RawWriters, AnInsertCannotReuseAnId) {
  const Outcome out = db.run("INSERT OR REPLACE INTO runs (id, scope, status, concurrency_key, created_at)"
                             " VALUES (3, 'rewritten', 'failed', 'k', " + kNow + ")");
  EXPECT_EQ(out.extended, SQLITE_CONSTRAINT_TRIGGER);
  EXPECT_EQ(out.message.substr(0, kIdReusePrefix.size()), kIdReusePrefix) << out.message;
  EXPECT_EQ(dump(db), before);
}

TEST_F(RawWriters, UpdateOrReplaceCannotRestartAFinishedRun) {
  refused("UPDATE OR REPLACE runs SET status = 'pending' WHERE id = 3",
          "runs: illegal status change from completed to pending: a finished run never changes status");
}

TEST_F(RawWriters, RowsThatAreNotActiveOrOfAFreeKeyStillGoIn) {
  db.exec("INSERT OR REPLACE INTO runs (scope, status, concurrency_key, created_at)"
          " VALUES ('done', 'completed', 'k', " + kNow + ")");
  db.exec("INSERT OR IGNORE INTO runs (scope, status, concurrency_key, created_at)"
          " VALUES ('free', 'pending', 'free', " + kNow + ")");
  EXPECT_EQ(runs(), (Rows{{"1", "first", "pending", ""},
                          {"2", "second", "running", "k"},
                          {"3", "old", "completed", "k"},
                          {"4", "done", "completed", "k"},
                          {"5", "free", "pending", "free"}}));
  EXPECT_EQ(db.value("PRAGMA integrity_check"), "ok");
}

}  // namespace

// ---- migration 4: ids never change, active runs are never deleted ------

namespace {

const std::string kIdNeverChanges =
    "runs: the id of a run never changes: it is the run's fencing token; start a new run instead";
const std::string kActiveNeverDeleted =
    "runs: an active run is never deleted: end it first with complete_run(), fail_run() or "
    "cancel_run(); finished runs may be deleted";

TEST_F(RawWriters, UpdateOrReplaceCannotMoveAFinishedRunOntoTheActiveOne) {
  // Would delete run 2, the active run of 'k', and free the key.
  refused("UPDATE OR REPLACE runs SET id = 2 WHERE id = 3", kIdNeverChanges);
  refused("UPDATE OR REPLACE runs SET id = 1 WHERE id = 3", kIdNeverChanges);
  refused("UPDATE OR IGNORE runs SET id = 2 WHERE id = 3", kIdNeverChanges);
  EXPECT_EQ(db.value("SELECT active_run('k')"), "2");
}

TEST_F(RawWriters, NoIdChanges) {
  refused("UPDATE runs SET id = 10 WHERE id = 3", kIdNeverChanges);
  refused("UPDATE runs SET id = 10 WHERE id = 1", kIdNeverChanges);
  refused("UPDATE runs SET id = id + 100", kIdNeverChanges);
  // Setting it to itself changes nothing and passes.
  db.exec("UPDATE runs SET id = id WHERE id = 3");
  EXPECT_EQ(dump(db), before);
}

TEST_F(RawWriters, ActiveRunsAreNeverDeletedFinishedOnesMayBe) {
  refused("DELETE FROM runs WHERE id = 1", kActiveNeverDeleted);
  refused("DELETE FROM runs WHERE id = 2", kActiveNeverDeleted);
  refused("DELETE FROM runs", kActiveNeverDeleted);
  db.exec("PRAGMA recursive_triggers = ON");
  refused("REPLACE INTO runs (id, scope, status, created_at) VALUES (2, 'raw', 'completed', 'x')",
          kIdReusePrefix);
  db.exec("DELETE FROM runs WHERE status NOT IN ('pending', 'running')");
  EXPECT_EQ(runs(), (Rows{{"1", "first", "pending", ""}, {"2", "second", "running", "k"}}));
  EXPECT_EQ(db.value("SELECT cancel_run(1)"), "updated");
  db.exec("DELETE FROM runs WHERE id = 1");
  EXPECT_EQ(runs(), (Rows{{"2", "second", "running", "k"}}));
}

}  // namespace
