// runs::RunStore: the run lifecycle over one connection; all of its SQL.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "busy_handler.h"
#include "liveness.h"
#include "statement_cache.h"
#include "transaction.h"

namespace runs {

// What a guarded transition did.
enum class Transition {
  kUpdated,             // the run was in the expected state and changed
  kNotFound,            // no run has this id
  kNotInExpectedState,  // the run exists in another state (e.g. a lost race)
  kCancelRequested,     // cancel_run(): the owner, alive elsewhere, is asked to stop
  kCount,               // how many there are (functions.cpp's enum_table())
};

// What heartbeat_run() found.
enum class Heartbeat {
  kOk,               // the run is active; its lease is extended
  kCancelRequested,  // the same, and someone asked the run to stop
  kLost,             // the run is not active (finished, reclaimed, unknown)
  kCount,            // how many there are (functions.cpp's enum_table())
};

struct Progress {
  sqlite3_int64 current;
  std::optional<sqlite3_int64> total;    // nothing: unknown, progress_total becomes NULL
  std::optional<std::string_view> step;  // nothing: current_step becomes NULL
};

// What start_run() and try_start_run() are given.
struct StartRequest {
  std::string_view scope;
  std::string_view triggered_by;
  std::string_view key;
  std::optional<sqlite3_int64> lease_seconds;
};

// The statements of run_store.cpp, by slot in the statement cache (defined
// there, next to their texts).
enum class SqlId : std::size_t;

// One per connection, shared by every function registration of that
// connection. Arguments arrive checked; every method throws Error on failure
// and leaves the connection in autocommit if it was there before.
class RunStore {
 public:
  explicit RunStore(sqlite3* db, const Liveness& liveness = system_liveness()) noexcept
      : db_(db), liveness_(liveness), statements_(db) {}

  // Under the write lock (a BEGIN IMMEDIATE transaction of its own, or a
  // savepoint in the caller's transaction that holds the lock: see
  // WriteTransaction): when the key has an active run, fails it if it is
  // abandoned and else refuses (SQLITE_CONSTRAINT_UNIQUE, naming the run);
  // then inserts a pending run owned by self(), with a lease of
  // `lease_seconds` if given. Returns the new run's id.
  sqlite3_int64 start_run(const StartRequest& request);
  // The same, but a key held by an active run that is not abandoned is an
  // answer: returns the JSON object {"started", "id", "scope", "status",
  // "since"} of the run that holds the key, the new one or the active one.
  std::string try_start_run(const StartRequest& request);
  std::optional<sqlite3_int64> active_run(std::string_view key);
  Transition mark_running(sqlite3_int64 id);
  Transition complete(sqlite3_int64 id);
  // `message` nothing: error_message becomes NULL.
  Transition fail(sqlite3_int64 id, std::optional<std::string_view> message);
  Transition cancel(sqlite3_int64 id);
  Transition update_progress(sqlite3_int64 id, const Progress& progress);
  Heartbeat heartbeat(sqlite3_int64 id);
  // Fails every abandoned active run (of `key` only, if given) in one
  // BEGIN IMMEDIATE transaction; returns how many. With
  // `ownerless_after_seconds`, also every active run that has no recorded
  // owner and was started (or, pending, created) more than that long ago.
  sqlite3_int64 reap_stale_runs(std::optional<std::string_view> key,
                                std::optional<sqlite3_int64> ownerless_after_seconds = {});
  std::optional<std::string> status(sqlite3_int64 id);
  // The run as one JSON object, with its owner and whether it is abandoned.
  std::optional<std::string> info(sqlite3_int64 id);
  // Applies every pending migration in one BEGIN IMMEDIATE transaction, or,
  // inside the caller's transaction, in one savepoint of it (which commits or
  // rolls back with the caller's); returns the schema version reached.
  int migrate();
  // What is wrong with the runs schema and data, as one JSON object
  // ({"ok": ..., "problems": [...]}); reads only.
  std::string check();

  // What a column of INTEGER affinity would store for `value` (a TEXT), when
  // that is an integer: '42', ' 42 ', '42.0' and '4.2e1' are 42; '4.5',
  // '42abc' and '' are nothing. SQLite's own conversion does it.
  std::optional<sqlite3_int64> integer_affinity(sqlite3_value* value);

  // Records the live process `pid` (of this host, boot and pid namespace),
  // rather than the calling process, as the owner of the runs that this
  // connection starts or marks running from now on: a shell script that calls
  // the sqlite3 shell several times names itself. Throws if no live process
  // has that pid. Returns the pid.
  sqlite3_int64 name_owner(sqlite3_int64 pid);

  StatementCache& statements() noexcept { return statements_; }

  // runs_busy_timeout(ms): installs the connection's BusyHandler with a
  // timeout of `ms` (checked by the caller: 0..kMaxBusyTimeoutMs) in place of
  // whatever busy handler the connection had; 0 removes the connection's
  // busy handler. The handler is created on the first call and lives until
  // the connection closes. Returns `ms`.
  sqlite3_int64 set_busy_timeout(sqlite3_int64 ms);

  // The connection's handler state, shared with a later load of the library
  // on the same connection (runs.cpp): the handler SQLite may hold a pointer
  // to must outlive the registrations that the new load replaces.
  const std::shared_ptr<BusyHandler>& busy_handler() const noexcept { return busy_handler_; }
  void adopt_busy_handler(std::shared_ptr<BusyHandler> handler) noexcept {
    busy_handler_ = std::move(handler);
  }

 private:
  Statement& statement(SqlId sql);
  // What the guarded UPDATE just run on run `id` did.
  Transition outcome(sqlite3_int64 id);
  // The statements of a WriteTransaction.
  WriteTransaction::Statements write_statements();
  // start_run() and try_start_run(): the run that holds the key afterwards,
  // and, for try_start_run(), the answer as JSON.
  struct Holder {
    sqlite3_int64 id;
    bool started;
    std::string json;
  };
  Holder start(const StartRequest& request, bool refuse_when_active);
  // The highest version in runs_schema_migrations; 0 when it does not exist.
  // Prepared anew on each call: it runs once per connection, and in migrate().
  int schema_version();
  // The owner of what this connection starts: the calling process, read once
  // per connection (again after a fork), or the process name_owner() named.
  const Owner& self();
  // Binds the calling process to parameters first..first+5.
  void bind_owner(Query& query, int first);
  // Runs `sql` (kMarkRunning, kHeartbeat) on run `id`, binding the calling
  // process as its owner (parameters 2..7); not inside a statement that
  // writes.
  void run_owning(SqlId sql, sqlite3_int64 id);
  // Runs migration SQL (a whole file, or a repair); `what` names it in the
  // error.
  void exec_migration_sql(const char* sql, const std::string& what);

  sqlite3* db_;
  const Liveness& liveness_;
  StatementCache statements_;
  std::optional<Owner> self_;
  sqlite3_int64 named_by_ = 0;  // the process that called name_owner(), if any
  bool schema_verified_ = false;
  std::shared_ptr<BusyHandler> busy_handler_;
};

}  // namespace runs
