// Migration 3's triggers: the database itself enforces the run state machine
// and one active run per key, also against raw SQL that bypasses the
// functions (INSERT OR REPLACE, OR IGNORE, ON CONFLICT DO NOTHING).
#include "unit_helpers.h"

namespace {

using namespace runs_test;

const char* const kStatuses[] = {"pending", "running", "completed", "failed", "cancelled"};

bool legal(const std::string& from, const std::string& to) {
  if (from == "pending") return to == "running" || to == "failed" || to == "cancelled";
  if (from == "running") return to == "completed" || to == "failed" || to == "cancelled";
  return false;
}

std::string illegal_message(const std::string& from, const std::string& to) {
  std::string why = "a finished run never changes status";
  if (from == "pending") why = "a run must be running first";
  if (from == "running") why = "a run never goes back";
  return "runs: illegal status change from " + from + " to " + to + ": " + why;
}

const std::string kUnknownStatus =
    "runs: unknown status: a run is pending, running, completed, failed or cancelled";
const std::string kKeyBusy = "runs: this concurrency_key already has an active run: end it first";

class StateMachine : public RefusalTest {
 protected:
  void SetUp() override { ASSERT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion); }

  // A run with `status`, written raw, each in a key of its own.
  std::string insert(const std::string& status) {
    db.exec("INSERT INTO runs (scope, status, concurrency_key, created_at) VALUES ('raw', '" +
            status + "', 'key-' || (SELECT count(*) FROM runs), '2026-01-01T00:00:00.000Z')");
    return db.value("SELECT max(id) FROM runs").value_or("");
  }
};

TEST_F(StateMachine, EveryStatusChangeIsAllowedOrRefusedNamingBothStatuses) {
  int refused = 0;
  for (const std::string from : kStatuses) {
    for (const std::string to : kStatuses) {
      if (from == to) continue;
      const std::string id = insert(from);
      const std::string update = "UPDATE runs SET status = '" + to + "' WHERE id = " + id;
      if (legal(from, to)) {
        db.exec(update);
        EXPECT_EQ(db.value("SELECT status FROM runs WHERE id = " + id), to) << from << " -> " << to;
      } else {
        ++refused;
        EXPECT_EQ(db.error(update, SQLITE_CONSTRAINT_TRIGGER), illegal_message(from, to));
        EXPECT_EQ(db.value("SELECT status FROM runs WHERE id = " + id), from);
      }
    }
  }
  EXPECT_EQ(refused, 14);
}

TEST_F(StateMachine, UpdatesThatKeepTheStatusAreAllowed) {
  const std::string id = insert("completed");
  db.exec("UPDATE runs SET status = 'completed', error_message = 'note' WHERE id = " + id);
  EXPECT_EQ(db.value("SELECT error_message FROM runs WHERE id = " + id), "note");
}

TEST_F(StateMachine, UnknownStatusesAreRefused) {
  EXPECT_EQ(db.error("INSERT INTO runs (scope, status, created_at) VALUES ('raw', 'queued', 'x')",
                     SQLITE_CONSTRAINT_TRIGGER),
            kUnknownStatus);
  EXPECT_EQ(db.error("INSERT INTO runs (scope, status, created_at) VALUES ('raw', NULL, 'x')",
                     SQLITE_CONSTRAINT_TRIGGER),
            kUnknownStatus);
  EXPECT_EQ(db.error("INSERT INTO runs (scope, status, created_at) VALUES ('raw', 'Running', 'x')",
                     SQLITE_CONSTRAINT_TRIGGER),
            kUnknownStatus);
  const std::string id = insert("running");
  EXPECT_EQ(db.error("UPDATE runs SET status = 'paused' WHERE id = " + id, SQLITE_CONSTRAINT_TRIGGER),
            kUnknownStatus);
  EXPECT_EQ(db.error("UPDATE runs SET status = NULL WHERE id = " + id, SQLITE_CONSTRAINT_TRIGGER),
            kUnknownStatus);
  EXPECT_EQ(db.value("SELECT count(*) || status FROM runs"), "1running");
}

TEST_F(StateMachine, RawWritersCannotReplaceOrSilentlyDropAgainstAnActiveRun) {
  ASSERT_NO_FATAL_FAILURE(prepare({{"SELECT start_run('full')", "1"}}));
  for (const std::string insert : {"INSERT", "INSERT OR REPLACE", "REPLACE", "INSERT OR IGNORE",
                                   "INSERT OR ABORT", "INSERT OR FAIL", "INSERT OR ROLLBACK"}) {
    refused(insert + " INTO runs (scope, created_at) VALUES ('raw', 'x')", SQLITE_CONSTRAINT_TRIGGER,
            kKeyBusy);
  }
  refused("INSERT INTO runs (scope, status, created_at) VALUES ('raw', 'running', 'x')"
          " ON CONFLICT DO NOTHING",
          SQLITE_CONSTRAINT_TRIGGER, kKeyBusy);
  // A finished run of the same key may be written: history imports.
  db.exec("INSERT INTO runs (scope, status, created_at) VALUES ('import', 'completed', 'x')");
  EXPECT_EQ(db.value("SELECT active_run()"), "1");
}

TEST_F(StateMachine, AnUpdateCannotMakeASecondRunActiveForAKey) {
  ASSERT_NO_FATAL_FAILURE(
      prepare({{"SELECT start_run('a', 'api', 'a')", "1"}, {"SELECT start_run('b', 'api', 'b')", "2"}}));
  for (const std::string update : {"UPDATE OR REPLACE", "UPDATE"}) {
    refused(update + " runs SET concurrency_key = 'a' WHERE id = 2", SQLITE_CONSTRAINT_TRIGGER, kKeyBusy);
  }
  // Renaming the key of the only active run is allowed.
  db.exec("UPDATE runs SET concurrency_key = 'c' WHERE id = 2");
  EXPECT_EQ(db.value("SELECT active_run('c')"), "2");
}

TEST_F(StateMachine, ARunIsNeverReplacedById) {
  ASSERT_NO_FATAL_FAILURE(
      prepare({{"SELECT start_run('full')", "1"}, {"SELECT cancel_run(1)", "updated"}}));
  refused("INSERT OR REPLACE INTO runs (id, scope, status, created_at) VALUES (1, 'raw', 'completed', 'x')",
          SQLITE_CONSTRAINT_TRIGGER, "runs: a run with this id exists: runs are never replaced");
}

TEST_F(StateMachine, TheIndexStillRefusesWhenTheTriggerIsGone) {
  // Two layers: with the trigger dropped, the partial unique index refuses.
  ASSERT_EQ(db.value("SELECT start_run('full')"), "1");
  db.exec("DROP TRIGGER runs_insert_guard");
  EXPECT_EQ(db.error("INSERT INTO runs (scope, created_at) VALUES ('raw', 'x')",
                     SQLITE_CONSTRAINT_UNIQUE),
            "UNIQUE constraint failed: runs.concurrency_key");
}

TEST_F(StateMachine, MigrationThreeRefusesUnknownStatusesAndChangesNothing) {
  TestDb old;
  ASSERT_NO_FATAL_FAILURE(apply_migrations(old, 2));
  old.exec("INSERT INTO runs (scope, status, created_at) VALUES ('legacy', 'queued', 'x')");
  const Rows before = dump(old);
  EXPECT_EQ(old.error("SELECT runs_migrate()", SQLITE_ERROR),
            "runs_migrate(): migration 003_run_owners failed: migration 003 refused: runs holds a "
            "status other than pending, running, completed, failed or cancelled; correct those "
            "rows, then migrate again");
  EXPECT_EQ(dump(old), before);
  old.exec("UPDATE runs SET status = 'failed'");
  EXPECT_EQ(old.value("SELECT runs_migrate()"), kLatestSchemaVersion);
}

TEST_F(StateMachine, AnIdOfMinusOneDoesNotBlockInsertsThatLeaveTheIdToSqlite) {
  // In a BEFORE INSERT trigger NEW.id reads -1 when the INSERT gives none.
  db.exec("INSERT INTO runs (id, scope, status, created_at) VALUES (-1, 'old', 'completed', 'x')");
  EXPECT_EQ(db.value("SELECT start_run('full')"), "1");
  db.exec("INSERT INTO runs (scope, status, created_at) VALUES ('raw', 'failed', 'x')");
  EXPECT_EQ(db.value("SELECT count(*) FROM runs"), "3");
}

// Every statement of `sql` in turn, going on after errors, as the sqlite3
// shell does without -bail.
void exec_ignoring_errors(const TestDb& db, const std::string& sql) {
  const char* tail = sql.c_str();
  while (tail != nullptr && *tail != '\0') {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db.get(), tail, -1, &stmt, &tail) != SQLITE_OK || stmt == nullptr) {
      sqlite3_finalize(stmt);
      continue;
    }
    while (sqlite3_step(stmt) == SQLITE_ROW) {
    }
    sqlite3_finalize(stmt);
  }
}

TEST_F(StateMachine, MigrationThreeOutOfOrderOrAgainChangesNothingEvenWithoutBail) {
  TestDb old;
  ASSERT_EQ(exec_script(old, migration_sql(1)).rc, SQLITE_OK);
  const Rows before = dump(old);
  exec_ignoring_errors(old, migration_sql(3));
  EXPECT_EQ(dump(old), before);
  EXPECT_TRUE(sqlite3_get_autocommit(old.get()));

  ASSERT_EQ(exec_script(old, migration_sql(2)).rc, SQLITE_OK);
  ASSERT_EQ(exec_script(old, migration_sql(3)).rc, SQLITE_OK);
  const Rows migrated = dump(old);
  exec_ignoring_errors(old, migration_sql(3));
  EXPECT_EQ(dump(old), migrated);
  EXPECT_TRUE(sqlite3_get_autocommit(old.get()));
}

}  // namespace
