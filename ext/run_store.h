// runs::RunStore: the run lifecycle over one connection; all of its SQL.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "statement_cache.h"

namespace runs {

// What a guarded transition did.
enum class Transition {
  kUpdated,             // the run was in the expected state and changed
  kNotFound,            // no run has this id
  kNotInExpectedState,  // the run exists in another state (e.g. a lost race)
};

struct Progress {
  sqlite3_int64 current;
  sqlite3_int64 total;
  std::optional<std::string_view> step;  // nothing: current_step becomes NULL
};

// One per connection, shared by every function registration of that
// connection. Arguments arrive checked; every method throws Error on failure
// and leaves the connection in autocommit if it was there before.
class RunStore {
 public:
  explicit RunStore(sqlite3* db) noexcept : db_(db), statements_(db) {}

  // In one BEGIN IMMEDIATE transaction of its own: refuses when `key` has an
  // active run (SQLITE_CONSTRAINT_UNIQUE), else inserts a pending run.
  sqlite3_int64 start_run(std::string_view scope, std::string_view triggered_by,
                          std::string_view key);
  std::optional<sqlite3_int64> active_run(std::string_view key);
  Transition mark_running(sqlite3_int64 id);
  Transition complete(sqlite3_int64 id);
  Transition fail(sqlite3_int64 id, std::string_view message);
  Transition cancel(sqlite3_int64 id);
  Transition update_progress(sqlite3_int64 id, const Progress& progress);
  std::optional<std::string> status(sqlite3_int64 id);
  // Applies every pending migration in one BEGIN IMMEDIATE transaction;
  // returns the schema version reached.
  int migrate();

  StatementCache& statements() noexcept { return statements_; }

 private:
  // The statements of run_store.cpp, by slot in the statement cache.
  enum Sql : std::size_t {
    kBegin,
    kCommit,
    kRollback,
    kActiveRun,  // the first statement that needs the runs schema
    kActiveRunDetails,
    kInsertRun,
    kMarkRunning,
    kComplete,
    kFail,
    kCancel,
    kProgress,
    kStatus,
    kSqlCount,
    kFirstRunSql = kActiveRun,
  };
  Statement& statement(Sql sql);
  // What the guarded UPDATE just run on run `id` did.
  Transition outcome(sqlite3_int64 id);
  // The highest version in runs_schema_migrations; 0 when it does not exist.
  // Prepared anew on each call: it runs once per connection, and in migrate().
  int schema_version();

  sqlite3* db_;
  StatementCache statements_;
  bool schema_verified_ = false;
};

}  // namespace runs
