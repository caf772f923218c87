#include "run_store.h"

#include <unistd.h>

#include <memory>
#include <utility>
#include <vector>

#include "clock.h"
#include "enum_table.h"
#include "migrations.h"
#include "run_sql.h"
#include "schema_check.h"
#include "transaction.h"

namespace runs {

// Every statement the functions run, one slot of the cache each, named by
// SqlId. The rules they share (run_sql.h) are written once and joined into
// their texts at compile time.
enum class SqlId : std::size_t {
  kBegin,
  kCommit,
  kRollback,
  kSavepoint,
  kRelease,
  kRollbackTo,
  kAddStaleness,
  kIntegerAffinity,
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
  kStartAnswer,
  kReapOwnerless,
  kCount,
  kFirstRunSql = kActiveRun,
};

namespace {

using enum SqlId;

// A heartbeat moves the lease's end to lease_seconds from now (a run without
// lease_seconds keeps whatever end it has).
constexpr auto kLeaseFromNow = kLeaseEnd<"lease_seconds", "lease_expires_at">;
// The calling process becomes the owner: bind_owner(query, 2).
constexpr SqlText kSetOwner =
    "owner_host = ?2, owner_boot_id = ?3, owner_pid_ns = ?4, owner_pid = ?5, owner_start_time = ?6,"
    " owner_time_ns = ?7";
// What reading a run's lease needs; read_lease() takes these columns in order.
constexpr auto kLeaseColumns = sql_join<
    "id, scope, status, coalesce(started_at, created_at), owner_host, owner_boot_id,"
    " owner_pid_ns, owner_pid, owner_start_time, lease_expires_at, ",
    kLeaseExpired, ", owner_time_ns">;
constexpr int kLeaseColumnCount = 12;

constexpr auto kSqlText = enum_table<SqlId, std::string_view>({
    {kBegin, "BEGIN IMMEDIATE"},
    {kCommit, "COMMIT"},
    {kRollback, "ROLLBACK"},
    {kSavepoint, "SAVEPOINT runs_call"},
    {kRelease, "RELEASE runs_call"},
    {kRollbackTo, "ROLLBACK TO runs_call"},
    {kAddStaleness,
     "SELECT json_set(?1, '$.stale', json(?2), '$.stale_reason', ?3, '$.liveness', ?4)"},
    // In the comparison, the CAST's NUMERIC affinity converts ?1 as a column
    // would: the whole text or nothing (CAST alone reads a prefix, 'x' as 0).
    {kIntegerAffinity, "SELECT CASE WHEN ?1 = CAST(?1 AS NUMERIC) THEN CAST(?1 AS NUMERIC) END"},
    {kActiveRun,
     sql<"SELECT id FROM main.runs WHERE concurrency_key = ?1 AND ", kActivePredicate>},
    {kActiveRunLease,
     sql<"SELECT ", kLeaseColumns, " FROM main.runs WHERE concurrency_key = ?1 AND ",
         kActivePredicate>},
    {kActiveRunsLease, sql<"SELECT ", kLeaseColumns, " FROM main.runs WHERE ", kActivePredicate>},
    {kRunLease, sql<"SELECT ", kLeaseColumns, " FROM main.runs WHERE id = ?1">},
    {kInsertRun,
     sql<"INSERT INTO main.runs (scope, status, triggered_by, concurrency_key, created_at,"
         " owner_host, owner_boot_id, owner_pid_ns, owner_pid, owner_start_time, owner_time_ns,"
         " heartbeat_at, lease_seconds, lease_expires_at)"
         " VALUES (?1, '", kPending, "', ?2, ?3, ", kNow, ", ?4, ?5, ?6, ?7, ?8, ?9, ", kNow,
         ", ?10, ", kLeaseEnd<"?10", "NULL">, ")">},
    {kMarkRunning,
     sql<"UPDATE main.runs SET status = '", kRunning, "', started_at = ", kNow, ", ", kSetOwner,
         ", heartbeat_at = ", kNow, ", lease_expires_at = ", kLeaseFromNow,
         " WHERE id = ?1 AND status = '", kPending, "'">},
    {kComplete,
     sql<"UPDATE main.runs SET status = 'completed', finished_at = ", kNow,
         " WHERE id = ?1 AND status = '", kRunning, "'">},
    {kFail,
     sql<"UPDATE main.runs SET status = 'failed', finished_at = ", kNow, ", error_message = ?2"
         " WHERE id = ?1 AND ", kActivePredicate>},
    {kCancel,
     sql<"UPDATE main.runs SET status = 'cancelled', finished_at = ", kNow,
         " WHERE id = ?1 AND ", kActivePredicate>},
    {kCancelRequest,
     sql<"UPDATE main.runs SET cancel_requested_at = coalesce(cancel_requested_at, ", kNow, ")"
         " WHERE id = ?1 AND ", kActivePredicate>},
    {kProgress,
     sql<"UPDATE main.runs SET progress_current = ?2, progress_total = ?3, current_step = ?4,"
         " heartbeat_at = ", kNow, ", lease_expires_at = ", kLeaseFromNow,
         " WHERE id = ?1 AND ", kActivePredicate>},
    {kHeartbeat,
     sql<"UPDATE main.runs SET ", kSetOwner, ", heartbeat_at = ", kNow,
         ", lease_expires_at = ", kLeaseFromNow, " WHERE id = ?1 AND ", kActivePredicate>},
    {kCancelRequested, "SELECT cancel_requested_at IS NOT NULL FROM main.runs WHERE id = ?1"},
    {kStatus, "SELECT status FROM main.runs WHERE id = ?1"},
    {kRunInfo,
     sql<"SELECT ", kLeaseColumns, ", json_object('id', id, 'scope', scope, 'status', status,"
         " 'triggered_by', triggered_by, 'concurrency_key', concurrency_key,"
         " 'created_at', created_at, 'started_at', started_at, 'finished_at', finished_at,"
         " 'error_message', error_message, 'progress_current', progress_current,"
         " 'progress_total', progress_total, 'current_step', current_step,"
         " 'owner', json(CASE WHEN owner_pid IS NULL THEN NULL ELSE json_object('host', owner_host,"
         " 'boot_id', owner_boot_id, 'pid_namespace', owner_pid_ns, 'pid', owner_pid,"
         " 'start_time', owner_start_time, 'time_namespace', owner_time_ns) END),"
         " 'heartbeat_at', heartbeat_at, 'lease_seconds', lease_seconds,"
         " 'lease_expires_at', lease_expires_at, 'cancel_requested_at', cancel_requested_at)"
         " FROM main.runs WHERE id = ?1">},
    {kStartAnswer,
     "SELECT json_object('started', json(?2), 'id', id, 'scope', scope, 'status', status,"
     " 'since', coalesce(started_at, created_at)) FROM main.runs WHERE id = ?1"},
    // julianday() reads the time stamps of older writers too
    // ('2026-01-01 12:00:00', '...+00:00'); one it cannot read is never old.
    {kReapOwnerless,
     sql<"UPDATE main.runs SET status = 'failed', finished_at = ", kNow,
         ", error_message = 'abandoned: no owner recorded, and ' || status || ' since '"
         " || coalesce(started_at, created_at) || ', more than ' || ?2 || ' seconds ago'"
         " WHERE ", kActivePredicate, " AND owner_pid IS NULL"
         " AND (?1 IS NULL OR concurrency_key = ?1)"
         " AND julianday(coalesce(started_at, created_at)) < julianday('now') - ?2 / 86400.0">},
});
static_assert(kSqlText.size() <= StatementCache::kCapacity,
              "more statements than the statement cache has slots");

// A run as read through kLeaseColumns.
struct RunLease {
  sqlite3_int64 id;
  std::string scope;
  std::string status;
  std::string since;
  Lease lease;
};

RunLease read_lease(const Query& row) {
  RunLease run{row.int64(0), row.text(1), row.text(2), row.text(3), {}};
  if (!row.is_null(7)) {
    Owner owner;
    if (!row.is_null(4)) owner.host = row.text(4);
    owner.pid = row.int64(7);
    // An identity is known only whole; NULL in any part of it: unknown.
    if (!row.is_null(5) && !row.is_null(6) && !row.is_null(8)) {
      owner.identity = Identity{row.text(5), row.int64(6), std::nullopt, row.int64(8)};
      if (!row.is_null(11)) owner.identity->time_namespace = row.int64(11);
    }
    run.lease.owner = std::move(owner);
  }
  if (!row.is_null(9)) run.lease.lease_expires_at = row.text(9);
  run.lease.lease_expired = row.int64(10) != 0;
  return run;
}

bool is_active(std::string_view status) {
  return status == kPending.view() || status == kRunning.view();
}

// mark_running(), update_progress() and heartbeat() move run `id`'s lease end
// to lease_seconds from now: refused when that end, or now, is past the last
// time SQLite can write. The run's lease_seconds is read only when the
// longest lease could end past it, in the last year of 9999.
void require_renewable_lease(sqlite3* db, sqlite3_int64 id) {
  if (require_representable_now(db) / 1000 >= kMaxLeaseSeconds) return;
  Statement lease(db, "SELECT lease_seconds FROM main.runs WHERE id = ?1");
  Query query(lease);
  query.bind(1, id);
  if (query.step() && !query.is_null(0)) {
    require_representable_lease_end(db, query.int64(0), "run " + std::to_string(id) + "'s");
  }
}

// The schema version the statements above need: the latest (owner_time_ns
// came with 004).
int required_schema_version() { return migrations().back().version; }

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

Statement& RunStore::statement(SqlId sql) {
  if (sql >= kFirstRunSql && !schema_verified_) {
    // Once per connection, before the first statement that touches runs: a
    // database that was never migrated, or only in part, gets told how to fix
    // it rather than "no such table" or a run written without its guarantee.
    const int version = schema_version();
    const int required = required_schema_version();
    if (version < required) {
      throw Error(SQLITE_ERROR,
                  version == 0 ? std::string("the database has no runs schema: "
                                             "run SELECT runs_migrate() first")
                               : "the runs schema is at version " + std::to_string(version) +
                                     " and this library needs " +
                                     std::to_string(required) +
                                     ": run SELECT runs_migrate() first");
    }
    schema_verified_ = true;
  }
  return statements_.get(static_cast<std::size_t>(sql), kSqlText[sql]);
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
  Owner owner = liveness_.self();
  owner.pid = pid;
  // Where this process cannot read its own identity, pids read here may be
  // another namespace's: the named owner then has no identity either (its
  // runs are judged by lease), as when the process table cannot tell.
  const Probe probe = owner.identity ? liveness_.probe(pid) : Probe{};
  if (probe.state == Probe::State::kGone) {
    throw Error(SQLITE_ERROR, "no live process has pid " + std::to_string(pid) +
                                  " in this pid namespace: name a process that runs while the "
                                  "run is active, such as the calling script ($$)");
  }
  if (probe.state == Probe::State::kAlive) {
    owner.identity->start_time = probe.start_time;
  } else {
    owner.identity.reset();
  }
  self_ = std::move(owner);
  named_by_ = getpid();
  return pid;
}

void RunStore::bind_owner(Query& query, int first) {
  const Owner& owner = self();
  // An unreadable identity is recorded as NULL: never as '' or 0, which a
  // later reader could compare as if they were known.
  query.bind(first, owner.host).bind(first + 3, owner.pid);
  if (const auto& identity = owner.identity) {
    query.bind(first + 1, std::string_view(identity->boot_id))
        .bind(first + 2, identity->pid_namespace)
        .bind(first + 4, identity->start_time)
        .bind(first + 5, identity->time_namespace);
  } else {
    query.bind_null(first + 1).bind_null(first + 2).bind_null(first + 4).bind_null(first + 5);
  }
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
  WriteTransaction transaction(db_, Join::kHoldingWriteLock);
  if (request.lease_seconds) {
    require_representable_lease_end(db_, *request.lease_seconds);
  } else {
    require_representable_now(db_);
  }
  // Every statement is prepared, and the schema checked, before BEGIN (see
  // WriteTransaction).
  Statement& find_active = statement(kActiveRunLease);
  Statement& fail = statement(kFail);
  Statement& insert = statement(kInsertRun);
  Statement* answer = refuse_when_active ? nullptr : &statement(kStartAnswer);
  transaction.begin(write_statements());
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
    query.bind(10, request.lease_seconds).run();
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

void RunStore::run_owning(SqlId sql, sqlite3_int64 id) {
  Transaction::require_no_writing_statement(db_);
  Query update(statement(sql));
  require_renewable_lease(db_, id);
  update.bind(1, id);
  bind_owner(update, 2);
  update.run();
}

Transition RunStore::mark_running(sqlite3_int64 id) {
  run_owning(kMarkRunning, id);
  return outcome(id);
}

Transition RunStore::complete(sqlite3_int64 id) {
  Transaction::require_no_writing_statement(db_);
  Statement& complete = statement(kComplete);
  require_representable_now(db_);
  Query(complete).bind(1, id).run();
  return outcome(id);
}

Transition RunStore::fail(sqlite3_int64 id, std::optional<std::string_view> message) {
  Transaction::require_no_writing_statement(db_);
  Statement& fail = statement(kFail);
  require_representable_now(db_);
  Query(fail).bind(1, id).bind(2, message).run();
  return outcome(id);
}

Transition RunStore::cancel(sqlite3_int64 id) {
  // Reading the owner and acting on it must be one transaction: the
  // caller's, if one is open, else one of our own.
  WriteTransaction transaction(db_, Join::kAsIs);
  // Prepared before BEGIN, as in start_run().
  Statement& read = statement(kRunLease);
  Statement& cancel_now = statement(kCancel);
  Statement& request = statement(kCancelRequest);
  require_representable_now(db_);
  transaction.begin(write_statements());
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
    const bool at_once = run->status == kPending.view() || !run->lease.owner ||
                         same_process(*run->lease.owner, self()) ||
                         abandoned_reason(run->lease, self(), liveness_);
    Query(at_once ? cancel_now : request).bind(1, id).run();
    result = at_once ? Transition::kUpdated : Transition::kCancelRequested;
  }
  transaction.commit();
  return result;
}

Transition RunStore::update_progress(sqlite3_int64 id, const Progress& progress) {
  Transaction::require_no_writing_statement(db_);
  Statement& progress_update = statement(kProgress);
  require_renewable_lease(db_, id);
  Query(progress_update)
      .bind(1, id)
      .bind(2, progress.current)
      .bind(3, progress.total)
      .bind(4, progress.step)
      .run();
  return outcome(id);
}

Heartbeat RunStore::heartbeat(sqlite3_int64 id) {
  // The caller becomes the owner (a hand-over when it is another process,
  // e.g. a child the owner forked): 'ok' then means that the run is safe
  // until its lease ends, because whoever judges it judges the caller.
  run_owning(kHeartbeat, id);
  if (sqlite3_changes(db_) == 0) return Heartbeat::kLost;
  // Read after the write, so a request recorded before it is seen now.
  Query requested(statement(kCancelRequested));
  requested.bind(1, id);
  return requested.step() && requested.int64(0) != 0 ? Heartbeat::kCancelRequested
                                                      : Heartbeat::kOk;
}

sqlite3_int64 RunStore::reap_stale_runs(std::optional<std::string_view> key,
                                        std::optional<sqlite3_int64> ownerless_after_seconds) {
  WriteTransaction transaction(db_, Join::kNever);
  // Refused where it could not write, even when it would find nothing.
  require_writable(db_);
  // Prepared before BEGIN, as in start_run().
  Statement& find_active = statement(key ? kActiveRunLease : kActiveRunsLease);
  Statement& read = statement(kRunLease);
  Statement& fail = statement(kFail);
  Statement& fail_ownerless = statement(kReapOwnerless);
  require_representable_now(db_);
  // Phase 1, without the write lock: read the active runs (the read ends
  // before the process table is consulted), then judge each.
  std::vector<RunLease> active_runs;
  {
    Query active(find_active);
    if (key) active.bind(1, *key);
    while (active.step()) active_runs.push_back(read_lease(active));
  }
  std::vector<sqlite3_int64> candidates;
  const MemoizedLiveness once_per_pid(liveness_);
  for (const RunLease& run : active_runs) {
    if (abandoned_reason(run.lease, self(), once_per_pid)) candidates.push_back(run.id);
  }
  if (candidates.empty() && !ownerless_after_seconds) return 0;
  // Phase 2, under the write lock: each candidate again, as it is now (it
  // may have ended, been heartbeated or handed over meanwhile); then the
  // ownerless runs past their age, which need no process table.
  transaction.begin(write_statements());
  sqlite3_int64 failed = 0;
  for (const sqlite3_int64 id : candidates) {
    std::optional<std::string> reason;
    {
      Query query(read);
      query.bind(1, id);
      if (!query.step()) continue;
      const RunLease run = read_lease(query);
      if (!is_active(run.status)) continue;
      reason = abandoned_reason(run.lease, self(), liveness_);
    }
    if (!reason) continue;
    Query(fail).bind(1, id).bind(2, *reason).run();
    ++failed;
  }
  sqlite3_int64 reaped = failed;
  if (ownerless_after_seconds) {
    Query(fail_ownerless).bind(1, key).bind(2, *ownerless_after_seconds).run();
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

void RunStore::exec_migration_sql(const char* sql, const std::string& what) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return;
  std::string text = what + " failed: " + (message != nullptr ? message : sqlite3_errstr(rc));
  sqlite3_free(message);
  // The guards in sql/ refuse with RAISE(), which SQLite reports as a
  // constraint error; here it means the schema cannot be migrated.
  throw Error((rc & 0xff) == SQLITE_CONSTRAINT ? SQLITE_ERROR : rc, text);
}

namespace {

// `text` as a JSON string.
std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out += kHex[(c >> 4) & 0xf];
          out += kHex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

}  // namespace

std::string RunStore::check() {
  std::vector<std::string> problems;
  const int version = schema_version();
  const int latest = migrations().back().version;
  if (version == 0) {
    problems.push_back("the database has no runs schema: run SELECT runs_migrate()");
  } else if (version > latest) {
    problems.push_back("the runs schema is at version " + std::to_string(version) +
                       ", newer than this library knows (" + std::to_string(latest) +
                       "): load a newer sqlite-runs");
  } else {
    if (version < latest) {
      problems.push_back("the runs schema is at version " + std::to_string(version) +
                         " and this library's latest is " + std::to_string(latest) +
                         ": run SELECT runs_migrate()");
    }
    {
      Statement recorded(db_, "SELECT version, name FROM main.runs_schema_migrations ORDER BY version");
      Query query(recorded);
      std::size_t next = 0;
      const auto all = migrations();
      while (query.step()) {
        const sqlite3_int64 number = query.int64(0);
        const std::string name = query.text(1);
        if (next < all.size() && number == all[next].version && name == all[next].name) {
          ++next;
        } else {
          problems.push_back("runs_schema_migrations records version " + std::to_string(number) +
                             " as " + quoted(name) + ", which this library does not know there");
        }
      }
    }
    for (const SchemaProblem& problem : schema_problems(db_, version)) {
      problems.push_back(problem.message + (problem.repair ? ": SELECT runs_migrate() restores it" : ""));
    }
  }
  // The data, where the columns to read it exist.
  Statement columns(db_,
                    "SELECT count(*) FROM pragma_table_info('runs', 'main')"
                    " WHERE name IN ('status', 'concurrency_key')");
  Query has_columns(columns);
  if (has_columns.step() && has_columns.int64(0) == 2) {
    Statement statuses(db_,
                       "SELECT status, count(*) FROM main.runs WHERE status IS NULL OR status NOT IN"
                       " ('pending', 'running', 'completed', 'failed', 'cancelled')"
                       " GROUP BY status ORDER BY status");
    for (Query query(statuses); query.step();) {
      problems.push_back(std::to_string(query.int64(1)) + " run(s) have the unknown status " +
                         (query.is_null(0) ? std::string("NULL") : quoted(query.text(0))) +
                         ": a run is pending, running, completed, failed or cancelled");
    }
    Statement duplicates(db_, sql<"SELECT concurrency_key, count(*), group_concat(id, ', ') FROM"
                                  " (SELECT concurrency_key, id FROM main.runs"
                                  "   WHERE ", kActivePredicate, " ORDER BY id)"
                                  " GROUP BY concurrency_key HAVING count(*) > 1"
                                  " ORDER BY concurrency_key">);
    for (Query query(duplicates); query.step();) {
      problems.push_back("concurrency_key " + quoted(query.text(0)) + " has " +
                         std::to_string(query.int64(1)) + " active runs (" + query.text(2) +
                         "): at most one may be active; end all but one with fail_run()");
    }
  }
  std::string report = "{\"ok\":" + std::string(problems.empty() ? "true" : "false") +
                       ",\"schema_version\":" + std::to_string(version) +
                       ",\"library_schema_version\":" + std::to_string(latest) + ",\"problems\":[";
  for (std::size_t i = 0; i < problems.size(); ++i) {
    report += (i > 0 ? "," : "") + json_string(problems[i]);
  }
  return report + "]}";
}

std::optional<std::string> RunStore::status(sqlite3_int64 id) {
  Query query(statement(kStatus));
  query.bind(1, id);
  if (!query.step()) return std::nullopt;
  return query.text(0);
}

std::optional<std::string> RunStore::info(sqlite3_int64 id) {
  std::string object;
  std::optional<Judgement> judgement;
  {
    Query query(statement(kRunInfo));
    query.bind(1, id);
    if (!query.step()) return std::nullopt;
    const RunLease run = read_lease(query);
    object = query.text(kLeaseColumnCount);
    if (is_active(run.status)) judgement = judge(run.lease, self(), liveness_);
  }
  const bool stale = judgement && judgement->abandoned;
  Query query(statement(kAddStaleness));
  query.bind(1, object).bind(2, std::string_view(stale ? "true" : "false"));
  if (judgement) {
    query.bind(3, judgement->abandoned).bind(4, judgement->basis);
  } else {
    query.bind_null(3).bind_null(4);
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
  int latest = 0;
  {
    // Unlike the other functions, it joins a caller's transaction that does
    // not hold the write lock yet (a migration tool's deferred BEGIN): it
    // takes it.
    WriteTransaction transaction(db_, Join::kTakingWriteLock);
    const std::unique_ptr<Statement> write_lock =
        transaction.joins_callers() ? bookkeeping_write_lock(db_) : nullptr;
    transaction.begin(write_statements(), write_lock.get());
    const int current = schema_version();
    latest = migrations().back().version;
    if (current > latest) {
      throw Error(SQLITE_ERROR, "the runs schema is at version " + std::to_string(current) +
                                    ", newer than this library knows (" + std::to_string(latest) +
                                    "): load a newer sqlite-runs");
    }
    if (current < latest) require_representable_now(db_);  // applied_at
    for (const Migration& migration : migrations()) {
      if (migration.version <= current) continue;
      try {
        exec_migration_sql(migration.sql, std::string("migration ") + migration.name);
      } catch (const Error& error) {
        // A guard that refuses with ROLLBACK ends the caller's transaction too.
        if (!transaction.rolled_back_callers()) throw;
        throw Error(error.code(), std::string(error.what()) + " (this rolled back the caller's transaction)");
      }
    }
    // A recorded version is no proof that its objects are there: restore an
    // index or trigger dropped since (they hold no data), and refuse, naming
    // them, what cannot be restored. Never success over a broken guard.
    std::string unrepaired;
    for (const SchemaProblem& problem : schema_problems(db_, latest)) {
      if (problem.repair) {
        exec_migration_sql(problem.repair->c_str(), "restoring " + problem.message.substr(0, problem.message.find(" (")));
      } else {
        unrepaired += (unrepaired.empty() ? "" : "; ") + problem.message;
      }
    }
    if (!unrepaired.empty()) {
      throw Error(SQLITE_ERROR, "the runs schema records version " + std::to_string(latest) +
                                    ", but runs_migrate() cannot restore what is wrong with it: " +
                                    unrepaired +
                                    "; repair it by hand (SELECT runs_check() lists every problem)");
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
