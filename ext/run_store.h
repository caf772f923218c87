// runs::RunStore: the run lifecycle over one connection; all of its SQL.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "liveness.h"
#include "statement_cache.h"

namespace runs {

// What a guarded transition did.
enum class Transition {
  kUpdated,             // the run was in the expected state and changed
  kNotFound,            // no run has this id
  kNotInExpectedState,  // the run exists in another state (e.g. a lost race)
  kCancelRequested,     // cancel_run(): the owner, alive elsewhere, is asked to stop
};

// What heartbeat_run() found.
enum class Heartbeat {
  kOk,               // the run is active; its lease is extended
  kCancelRequested,  // the same, and someone asked the run to stop
  kLost,             // the run is not active (finished, reclaimed, unknown)
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
  explicit RunStore(sqlite3* db, const Liveness& liveness = system_liveness()) noexcept
      : db_(db), liveness_(liveness), statements_(db) {}

  // In one BEGIN IMMEDIATE transaction of its own: when `key` has an active
  // run, fails it if it is abandoned and else refuses
  // (SQLITE_CONSTRAINT_UNIQUE); then inserts a pending run owned by the
  // calling process, with a lease of `lease_seconds` if given.
  sqlite3_int64 start_run(std::string_view scope, std::string_view triggered_by,
                          std::string_view key, std::optional<sqlite3_int64> lease_seconds);
  std::optional<sqlite3_int64> active_run(std::string_view key);
  Transition mark_running(sqlite3_int64 id);
  Transition complete(sqlite3_int64 id);
  Transition fail(sqlite3_int64 id, std::string_view message);
  Transition cancel(sqlite3_int64 id);
  Transition update_progress(sqlite3_int64 id, const Progress& progress);
  Heartbeat heartbeat(sqlite3_int64 id);
  // Fails every abandoned active run (of `key` only, if given) in one
  // BEGIN IMMEDIATE transaction; returns how many.
  sqlite3_int64 reap_stale_runs(std::optional<std::string_view> key);
  std::optional<std::string> status(sqlite3_int64 id);
  // The run as one JSON object, with its owner and whether it is abandoned.
  std::optional<std::string> info(sqlite3_int64 id);
  // Applies every pending migration in one BEGIN IMMEDIATE transaction;
  // returns the schema version reached.
  int migrate();
  // What is wrong with the runs schema and data, as one JSON object
  // ({"ok": ..., "problems": [...]}); reads only.
  std::string check();

  StatementCache& statements() noexcept { return statements_; }

 private:
  // The statements of run_store.cpp, by slot in the statement cache.
  enum Sql : std::size_t {
    kBegin,
    kCommit,
    kRollback,
    kAddStaleness,
    kActiveRun,  // the first statement that needs the runs schema
    kActiveRunLease,
    kActiveRunsLease,
    kRunLease,
    kInsertRun,
    kMarkRunning,
    kComplete,
    kFail,
    kCancel,
    kCancelRequest,
    kProgress,
    kHeartbeat,
    kCancelRequested,
    kStatus,
    kRunInfo,
    kSqlCount,
    kFirstRunSql = kActiveRun,
  };
  Statement& statement(Sql sql);
  // What the guarded UPDATE just run on run `id` did.
  Transition outcome(sqlite3_int64 id);
  // The highest version in runs_schema_migrations; 0 when it does not exist.
  // Prepared anew on each call: it runs once per connection, and in migrate().
  int schema_version();
  // The calling process, read once per connection (again after a fork).
  const Owner& self();
  // Binds the calling process to parameters first..first+4.
  void bind_owner(Query& query, int first);
  // Runs migration SQL (a whole file, or a repair); `what` names it in the
  // error.
  void exec_migration_sql(const char* sql, const std::string& what);

  sqlite3* db_;
  const Liveness& liveness_;
  StatementCache statements_;
  std::optional<Owner> self_;
  bool schema_verified_ = false;
};

}  // namespace runs
