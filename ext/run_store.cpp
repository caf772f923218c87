#include "run_store.h"

#include <unistd.h>

#include <memory>
#include <utility>
#include <vector>

#include "migrations.h"
#include "transaction.h"

namespace runs {

// Every statement the functions run, one slot of the cache each (RunStore::Sql
// names them). Timestamps are UTC ISO-8601 text with milliseconds, so they
// sort as text. Each active-run lookup spells status IN ('pending', 'running')
// exactly as the partial index runs_one_active does: only then does the
// planner use it.
namespace {

// The SQL fragments that several statements share.
#define RUNS_NOW "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
// A heartbeat moves the lease's end to lease_seconds from now (a run without
// lease_seconds keeps whatever end it has).
#define RUNS_LEASE_FROM_NOW                                   \
  "CASE WHEN lease_seconds IS NULL THEN lease_expires_at"     \
  " ELSE strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || lease_seconds || ' seconds') END"
// What reading a run's lease needs; read_lease() takes these columns in order.
#define RUNS_LEASE_COLUMNS                                                       \
  "id, scope, status, coalesce(started_at, created_at), owner_host, owner_boot_id," \
  " owner_pid_ns, owner_pid, owner_start_time, lease_expires_at,"                 \
  " lease_expires_at <= " RUNS_NOW

constexpr const char* kSqlText[] = {
    /* kBegin */ "BEGIN IMMEDIATE",
    /* kCommit */ "COMMIT",
    /* kRollback */ "ROLLBACK",
    /* kSavepoint */ "SAVEPOINT runs_call",
    /* kRelease */ "RELEASE runs_call",
    /* kRollbackTo */ "ROLLBACK TO runs_call",
    /* kAddStaleness */ "SELECT json_set(?1, '$.stale', json(?2), '$.stale_reason', ?3)",
    // In the comparison, the CAST's NUMERIC affinity converts ?1 as a column
    // would: the whole text or nothing (CAST alone reads a prefix, 'x' as 0).
    /* kIntegerAffinity */
    "SELECT CASE WHEN ?1 = CAST(?1 AS NUMERIC) THEN CAST(?1 AS NUMERIC) END",
    /* kActiveRun */
    "SELECT id FROM main.runs WHERE concurrency_key = ?1 AND status IN ('pending', 'running')",
    /* kActiveRunLease */
    "SELECT " RUNS_LEASE_COLUMNS " FROM main.runs"
    " WHERE concurrency_key = ?1 AND status IN ('pending', 'running')",
    /* kActiveRunsLease */
    "SELECT " RUNS_LEASE_COLUMNS " FROM main.runs WHERE status IN ('pending', 'running')",
    /* kRunLease */ "SELECT " RUNS_LEASE_COLUMNS " FROM main.runs WHERE id = ?1",
    /* kInsertRun */
    "INSERT INTO main.runs (scope, status, triggered_by, concurrency_key, created_at, owner_host,"
    " owner_boot_id, owner_pid_ns, owner_pid, owner_start_time, heartbeat_at, lease_seconds,"
    " lease_expires_at)"
    " VALUES (?1, 'pending', ?2, ?3, " RUNS_NOW ", ?4, ?5, ?6, ?7, ?8, " RUNS_NOW ", ?9,"
    " CASE WHEN ?9 IS NULL THEN NULL"
    " ELSE strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ?9 || ' seconds') END)",
    /* kMarkRunning */
    "UPDATE main.runs SET status = 'running', started_at = " RUNS_NOW ", owner_host = ?2,"
    " owner_boot_id = ?3, owner_pid_ns = ?4, owner_pid = ?5, owner_start_time = ?6,"
    " heartbeat_at = " RUNS_NOW ", lease_expires_at = " RUNS_LEASE_FROM_NOW
    " WHERE id = ?1 AND status = 'pending'",
    /* kComplete */
    "UPDATE main.runs SET status = 'completed', finished_at = " RUNS_NOW
    " WHERE id = ?1 AND status = 'running'",
    /* kFail */
    "UPDATE main.runs SET status = 'failed', finished_at = " RUNS_NOW ", error_message = ?2"
    " WHERE id = ?1 AND status IN ('pending', 'running')",
    /* kCancel */
    "UPDATE main.runs SET status = 'cancelled', finished_at = " RUNS_NOW
    " WHERE id = ?1 AND status IN ('pending', 'running')",
    /* kCancelRequest */
    "UPDATE main.runs SET cancel_requested_at = coalesce(cancel_requested_at, " RUNS_NOW ")"
    " WHERE id = ?1 AND status IN ('pending', 'running')",
    /* kProgress */
    "UPDATE main.runs SET progress_current = ?2, progress_total = ?3, current_step = ?4,"
    " heartbeat_at = " RUNS_NOW ", lease_expires_at = " RUNS_LEASE_FROM_NOW
    " WHERE id = ?1 AND status IN ('pending', 'running')",
    /* kHeartbeat */
    "UPDATE main.runs SET heartbeat_at = " RUNS_NOW ", lease_expires_at = " RUNS_LEASE_FROM_NOW
    " WHERE id = ?1 AND status IN ('pending', 'running')",
    /* kCancelRequested */ "SELECT cancel_requested_at IS NOT NULL FROM main.runs WHERE id = ?1",
    /* kStatus */ "SELECT status FROM main.runs WHERE id = ?1",
    /* kRunInfo */
    "SELECT " RUNS_LEASE_COLUMNS ", json_object('id', id, 'scope', scope, 'status', status,"
    " 'triggered_by', triggered_by, 'concurrency_key', concurrency_key,"
    " 'created_at', created_at, 'started_at', started_at, 'finished_at', finished_at,"
    " 'error_message', error_message, 'progress_current', progress_current,"
    " 'progress_total', progress_total, 'current_step', current_step,"
    " 'owner', json(CASE WHEN owner_pid IS NULL THEN NULL ELSE json_object('host', owner_host,"
    " 'boot_id', owner_boot_id, 'pid_namespace', owner_pid_ns, 'pid', owner_pid,"
    " 'start_time', owner_start_time) END),"
    " 'heartbeat_at', heartbeat_at, 'lease_seconds', lease_seconds,"
    " 'lease_expires_at', lease_expires_at, 'cancel_requested_at', cancel_requested_at)"
    " FROM main.runs WHERE id = ?1",
    /* kStartAnswer */
    "SELECT json_object('started', json(?2), 'id', id, 'scope', scope, 'status', status,"
    " 'since', coalesce(started_at, created_at)) FROM main.runs WHERE id = ?1",
    /* kReapOwnerless: julianday() reads the time stamps of older writers too
       ('2026-01-01 12:00:00', '...+00:00'); one it cannot read is never old. */
    "UPDATE main.runs SET status = 'failed', finished_at = " RUNS_NOW ","
    " error_message = 'abandoned: no owner recorded, and ' || status || ' since '"
    " || coalesce(started_at, created_at) || ', more than ' || ?2 || ' seconds ago'"
    " WHERE status IN ('pending', 'running') AND owner_pid IS NULL"
    " AND (?1 IS NULL OR concurrency_key = ?1)"
    " AND julianday(coalesce(started_at, created_at)) < julianday('now') - ?2 / 86400.0",
};

#undef RUNS_LEASE_COLUMNS
#undef RUNS_LEASE_FROM_NOW
#undef RUNS_NOW

// A run as read through RUNS_LEASE_COLUMNS.
struct RunLease {
  sqlite3_int64 id;
  std::string scope;
  std::string status;
  std::string since;
  Lease lease;
};
constexpr int kLeaseColumns = 11;

RunLease read_lease(const Query& row) {
  RunLease run{row.int64(0), row.text(1), row.text(2), row.text(3), {}};
  if (!row.is_null(7)) {
    run.lease.owner = Owner{row.text(4), row.text(5), row.int64(6), row.int64(7), row.int64(8)};
  }
  if (!row.is_null(9)) run.lease.lease_expires_at = row.text(9);
  run.lease.lease_expired = row.int64(10) != 0;
  return run;
}

bool is_active(const std::string& status) { return status == "pending" || status == "running"; }

// The schema version the statements above need.
constexpr int kRequiredSchemaVersion = 3;

// 'text' quoted as SQL quotes it, for messages.
std::string quoted(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

}  // namespace

Statement& RunStore::statement(Sql sql) {
  static_assert(std::size(kSqlText) == kSqlCount);
  static_assert(kSqlCount <= StatementCache::kCapacity);
  if (sql >= kFirstRunSql && !schema_verified_) {
    // Once per connection, before the first statement that touches runs: a
    // database that was never migrated, or only in part, gets told how to fix
    // it rather than "no such table" or a run written without its guarantee.
    const int version = schema_version();
    if (version < kRequiredSchemaVersion) {
      throw Error(SQLITE_ERROR,
                  version == 0 ? std::string("the database has no runs schema: "
                                             "run SELECT runs_migrate() first")
                               : "the runs schema is at version " + std::to_string(version) +
                                     " and this library needs " +
                                     std::to_string(kRequiredSchemaVersion) +
                                     ": run SELECT runs_migrate() first");
    }
    schema_verified_ = true;
  }
  return statements_.get(sql, kSqlText[sql]);
}

int RunStore::schema_version() {
  Statement exists(db_,
                   "SELECT 1 FROM main.sqlite_schema"
                   " WHERE type = 'table' AND name = 'runs_schema_migrations'");
  if (!Query(exists).step()) return 0;
  Statement latest(db_, "SELECT coalesce(max(version), 0) FROM main.runs_schema_migrations");
  Query query(latest);
  query.step();
  return static_cast<int>(query.int64(0));
}

const Owner& RunStore::self() {
  if (!self_ || (self_->pid != getpid() && named_by_ != getpid())) {
    self_ = liveness_.self();
    named_by_ = 0;
  }
  return *self_;
}

sqlite3_int64 RunStore::name_owner(sqlite3_int64 pid) {
  const auto started = liveness_.start_time(pid);
  if (!started) {
    throw Error(SQLITE_ERROR, "no live process has pid " + std::to_string(pid) +
                                  " in this pid namespace: name a process that runs while the "
                                  "run is active, such as the calling script ($$)");
  }
  Owner owner = liveness_.self();
  owner.pid = pid;
  owner.start_time = *started;
  self_ = std::move(owner);
  named_by_ = getpid();
  return pid;
}

void RunStore::bind_owner(Query& query, int first) {
  const Owner& owner = self();
  query.bind(first, std::string_view(owner.host))
      .bind(first + 1, std::string_view(owner.boot_id))
      .bind(first + 2, owner.pid_namespace)
      .bind(first + 3, owner.pid)
      .bind(first + 4, owner.start_time);
}

WriteTransaction::Statements RunStore::write_statements() {
  return {statement(kBegin),     statement(kCommit),  statement(kRollback),
          statement(kSavepoint), statement(kRelease), statement(kRollbackTo)};
}

sqlite3_int64 RunStore::start_run(const StartRequest& request) {
  return start(request, true).id;
}

std::string RunStore::try_start_run(const StartRequest& request) {
  return start(request, false).json;
}

RunStore::Holder RunStore::start(const StartRequest& request, bool refuse_when_active) {
  WriteTransaction::require_allowed(db_);
  if (sqlite3_db_readonly(db_, "main") == 1) throw read_only_error(SQLITE_READONLY);
  // Every statement is prepared, and the schema checked, before BEGIN: inside
  // the transaction, a failed allocation in sqlite3_prepare() (a heap limit)
  // makes SQLite refuse every statement, ROLLBACK included, until the
  // caller's statement ends, and the connection would stay in the transaction.
  Statement& find_active = statement(kActiveRunLease);
  Statement& fail = statement(kFail);
  Statement& insert = statement(kInsertRun);
  Statement* answer = refuse_when_active ? nullptr : &statement(kStartAnswer);
  WriteTransaction transaction(db_, write_statements());
  std::optional<std::pair<sqlite3_int64, std::string>> abandoned;
  std::optional<sqlite3_int64> holder;
  {
    Query active(find_active);
    active.bind(1, request.key);
    if (active.step()) {
      const RunLease run = read_lease(active);
      auto reason = abandoned_reason(run.lease, self(), liveness_);
      if (reason) {
        abandoned.emplace(run.id, std::move(*reason));
      } else if (refuse_when_active) {
        std::string message = "run " + std::to_string(run.id) + " is already active";
        if (!request.key.empty()) message += " for concurrency_key " + quoted(request.key);
        message += " (scope " + quoted(run.scope) + ", status " + quoted(run.status) +
                   ", since " + run.since +
                   "): wait for it to finish, or end it with complete_run(), fail_run() or "
                   "cancel_run()";
        throw Error(SQLITE_CONSTRAINT_UNIQUE, message);
      } else {
        holder = run.id;
      }
    }
  }
  if (abandoned) {
    Query(fail).bind(1, abandoned->first).bind(2, abandoned->second).run();
  }
  if (!holder) {
    Query query(insert);
    query.bind(1, request.scope).bind(2, request.triggered_by).bind(3, request.key);
    bind_owner(query, 4);
    if (request.lease_seconds) {
      query.bind(9, *request.lease_seconds);
    } else {
      query.bind_null(9);
    }
    query.run();
  }
  Holder result{holder.value_or(sqlite3_last_insert_rowid(db_)), !holder, {}};
  if (answer != nullptr) {
    // Read inside the transaction, so that it is the run that holds the key.
    Query query(*answer);
    query.bind(1, result.id).bind(2, std::string_view(result.started ? "true" : "false"));
    query.step();
    result.json = query.text(0);
  }
  transaction.commit();
  return result;
}

std::optional<sqlite3_int64> RunStore::active_run(std::string_view key) {
  Query query(statement(kActiveRun));
  query.bind(1, key);
  if (!query.step()) return std::nullopt;
  return query.int64(0);
}

Transition RunStore::outcome(sqlite3_int64 id) {
  if (sqlite3_changes(db_) > 0) return Transition::kUpdated;
  return status(id) ? Transition::kNotInExpectedState : Transition::kNotFound;
}

Transition RunStore::mark_running(sqlite3_int64 id) {
  Transaction::require_no_writing_statement(db_);
  Query update(statement(kMarkRunning));
  update.bind(1, id);
  bind_owner(update, 2);
  update.run();
  return outcome(id);
}

Transition RunStore::complete(sqlite3_int64 id) {
  Transaction::require_no_writing_statement(db_);
  Query(statement(kComplete)).bind(1, id).run();
  return outcome(id);
}

Transition RunStore::fail(sqlite3_int64 id, std::optional<std::string_view> message) {
  Transaction::require_no_writing_statement(db_);
  Query update(statement(kFail));
  update.bind(1, id);
  if (message) {
    update.bind(2, *message);
  } else {
    update.bind_null(2);
  }
  update.run();
  return outcome(id);
}

Transition RunStore::cancel(sqlite3_int64 id) {
  // Reading the owner and acting on it must be one transaction: the
  // caller's, if one is open, else one of our own.
  Transaction::require_no_writing_statement(db_);
  // Prepared before BEGIN, as in start_run().
  Statement& read = statement(kRunLease);
  Statement& cancel_now = statement(kCancel);
  Statement& request = statement(kCancelRequest);
  std::optional<Transaction> transaction;
  if (sqlite3_get_autocommit(db_) && sqlite3_txn_state(db_, nullptr) == SQLITE_TXN_NONE) {
    if (sqlite3_db_readonly(db_, "main") == 1) throw read_only_error(SQLITE_READONLY);
    transaction.emplace(db_, statement(kBegin), statement(kCommit), statement(kRollback));
  }
  std::optional<RunLease> run;
  {
    Query query(read);
    query.bind(1, id);
    if (query.step()) run = read_lease(query);
  }
  Transition result = Transition::kNotFound;
  if (run && !is_active(run->status)) {
    result = Transition::kNotInExpectedState;
  } else if (run) {
    // At once unless the owner is another process that may still be working.
    const bool at_once = run->status == "pending" || !run->lease.owner ||
                         same_process(*run->lease.owner, self()) ||
                         abandoned_reason(run->lease, self(), liveness_);
    Query(at_once ? cancel_now : request).bind(1, id).run();
    result = at_once ? Transition::kUpdated : Transition::kCancelRequested;
  }
  if (transaction) transaction->commit();
  return result;
}

Transition RunStore::update_progress(sqlite3_int64 id, const Progress& progress) {
  Transaction::require_no_writing_statement(db_);
  Query update(statement(kProgress));
  update.bind(1, id).bind(2, progress.current);
  if (progress.total) {
    update.bind(3, *progress.total);
  } else {
    update.bind_null(3);
  }
  if (progress.step) {
    update.bind(4, *progress.step);
  } else {
    update.bind_null(4);
  }
  update.run();
  return outcome(id);
}

Heartbeat RunStore::heartbeat(sqlite3_int64 id) {
  Transaction::require_no_writing_statement(db_);
  Query(statement(kHeartbeat)).bind(1, id).run();
  if (sqlite3_changes(db_) == 0) return Heartbeat::kLost;
  // Read after the write, so a request recorded before it is seen now.
  Query requested(statement(kCancelRequested));
  requested.bind(1, id);
  return requested.step() && requested.int64(0) != 0 ? Heartbeat::kCancelRequested
                                                      : Heartbeat::kOk;
}

sqlite3_int64 RunStore::reap_stale_runs(std::optional<std::string_view> key,
                                        std::optional<sqlite3_int64> ownerless_after_seconds) {
  Transaction::require_standalone(db_);
  if (sqlite3_db_readonly(db_, "main") == 1) throw read_only_error(SQLITE_READONLY);
  // Prepared before BEGIN, as in start_run().
  Statement& find_active = statement(key ? kActiveRunLease : kActiveRunsLease);
  Statement& fail = statement(kFail);
  Statement& fail_ownerless = statement(kReapOwnerless);
  Transaction transaction(db_, statement(kBegin), statement(kCommit), statement(kRollback));
  std::vector<std::pair<sqlite3_int64, std::string>> abandoned;
  {
    Query active(find_active);
    if (key) active.bind(1, *key);
    while (active.step()) {
      const RunLease run = read_lease(active);
      if (auto reason = abandoned_reason(run.lease, self(), liveness_)) {
        abandoned.emplace_back(run.id, std::move(*reason));
      }
    }
  }
  for (const auto& [id, reason] : abandoned) {
    Query(fail).bind(1, id).bind(2, reason).run();
  }
  auto reaped = static_cast<sqlite3_int64>(abandoned.size());
  if (ownerless_after_seconds) {
    Query ownerless(fail_ownerless);
    if (key) {
      ownerless.bind(1, *key);
    } else {
      ownerless.bind_null(1);
    }
    ownerless.bind(2, *ownerless_after_seconds).run();
    reaped += sqlite3_changes(db_);
  }
  transaction.commit();
  return reaped;
}

std::optional<sqlite3_int64> RunStore::integer_affinity(sqlite3_value* value) {
  Query query(statement(kIntegerAffinity));
  query.bind(1, value);
  if (!query.step()) return std::nullopt;
  switch (query.type(0)) {
    case SQLITE_INTEGER:
      return query.int64(0);
    case SQLITE_FLOAT:  // '1e30' or '4.5'; an integral one where a CAST keeps a REAL
      return exact_integer(query.real(0));
    default:
      return std::nullopt;
  }
}

std::optional<std::string> RunStore::status(sqlite3_int64 id) {
  Query query(statement(kStatus));
  query.bind(1, id);
  if (!query.step()) return std::nullopt;
  return query.text(0);
}

std::optional<std::string> RunStore::info(sqlite3_int64 id) {
  std::string object;
  std::optional<std::string> reason;
  {
    Query query(statement(kRunInfo));
    query.bind(1, id);
    if (!query.step()) return std::nullopt;
    const RunLease run = read_lease(query);
    object = query.text(kLeaseColumns);
    if (is_active(run.status)) reason = abandoned_reason(run.lease, self(), liveness_);
  }
  Query query(statement(kAddStaleness));
  query.bind(1, object).bind(2, std::string_view(reason ? "true" : "false"));
  if (reason) {
    query.bind(3, *reason);
  } else {
    query.bind_null(3);
  }
  query.step();
  return query.text(0);
}

// Inside the caller's transaction, migrate() takes the write lock before it
// reads the schema version, as BEGIN IMMEDIATE does, with a write that changes
// nothing: a DELETE of no row from the bookkeeping table; on a database
// without it, creating it, which migration 001 then finds (IF NOT EXISTS). The
// definition is migration 001's: the Migrations tests compare the two schemas.
static std::unique_ptr<Statement> bookkeeping_write_lock(sqlite3* db) {
  try {
    return std::make_unique<Statement>(db, "DELETE FROM main.runs_schema_migrations WHERE 0");
  } catch (const Error& error) {
    if (error.code() != SQLITE_ERROR) throw;  // not "no such table"
  }
  return std::make_unique<Statement>(
      db,
      "CREATE TABLE IF NOT EXISTS main.runs_schema_migrations (\n"
      "  version    INTEGER PRIMARY KEY,\n"
      "  name       TEXT NOT NULL,\n"
      "  applied_at TEXT NOT NULL\n"
      ")");
}

int RunStore::migrate() {
  // Unlike the other functions, it joins a caller's transaction that does not
  // hold the write lock yet (a migration tool's deferred BEGIN): it takes it.
  const bool joined = !sqlite3_get_autocommit(db_);
  if (joined) {
    Transaction::require_no_writing_statement(db_);
  } else {
    Transaction::require_standalone(db_);
  }
  if (sqlite3_db_readonly(db_, "main") == 1) throw read_only_error(SQLITE_READONLY);
  int latest = 0;
  {
    const std::unique_ptr<Statement> write_lock = joined ? bookkeeping_write_lock(db_) : nullptr;
    WriteTransaction transaction(db_, write_statements(), write_lock.get());
    const int current = schema_version();
    latest = migrations().back().version;
    if (current > latest) {
      throw Error(SQLITE_ERROR, "the runs schema is at version " + std::to_string(current) +
                                    ", newer than this library knows (" + std::to_string(latest) +
                                    "): load a newer sqlite-runs");
    }
    for (const Migration& migration : migrations()) {
      if (migration.version <= current) continue;
      char* message = nullptr;
      const int rc = sqlite3_exec(db_, migration.sql, nullptr, nullptr, &message);
      if (rc != SQLITE_OK) {
        std::string text = std::string("migration ") + migration.name + " failed: " +
                           (message != nullptr ? message : sqlite3_errstr(rc));
        sqlite3_free(message);
        // A guard that refuses with ROLLBACK ends the caller's transaction too.
        if (transaction.rolled_back_callers()) text += " (this rolled back the caller's transaction)";
        // The guards in sql/ refuse with RAISE(), which SQLite reports as a
        // constraint error; here it means the schema cannot be migrated.
        throw Error((rc & 0xff) == SQLITE_CONSTRAINT ? SQLITE_ERROR : rc, text);
      }
    }
    transaction.commit();
  }
  // The migrations changed the schema, which expired every cached statement.
  // Drop them, so that each is prepared again before a later BEGIN IMMEDIATE,
  // not re-prepared inside it, where a failed allocation would strand the
  // transaction (SQLite then refuses even ROLLBACK until the statement ends).
  statements_.clear();
  return latest;
}

sqlite3_int64 RunStore::set_busy_timeout(sqlite3_int64 ms) {
  if (ms == 0) {
    sqlite3_busy_handler(db_, nullptr, nullptr);
    return 0;
  }
  if (!busy_handler_) busy_handler_ = std::make_shared<BusyHandler>();
  busy_handler_->set_timeout_ms(ms);
  const int rc = sqlite3_busy_handler(db_, BusyHandler::callback, busy_handler_.get());
  if (rc != SQLITE_OK) throw last_error(db_, rc);
  return ms;
}

}  // namespace runs
