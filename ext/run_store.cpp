#include "run_store.h"

#include "migrations.h"
#include "transaction.h"

namespace runs {

// Every statement the functions run, one slot of the cache each (RunStore::Sql
// names them). Timestamps are UTC ISO-8601 text with milliseconds, so they
// sort as text. Each active-run lookup spells status IN ('pending', 'running')
// exactly as the partial index runs_one_active does: only then does the
// planner use it.
namespace {

constexpr const char* kSqlText[] = {
    /* kBegin */ "BEGIN IMMEDIATE",
    /* kCommit */ "COMMIT",
    /* kRollback */ "ROLLBACK",
    /* kActiveRun */
    "SELECT id FROM main.runs WHERE concurrency_key = ?1 AND status IN ('pending', 'running')",
    /* kActiveRunDetails */
    "SELECT id, scope, status, coalesce(started_at, created_at) FROM main.runs"
    " WHERE concurrency_key = ?1 AND status IN ('pending', 'running')",
    /* kInsertRun */
    "INSERT INTO main.runs (scope, status, triggered_by, concurrency_key, created_at)"
    " VALUES (?1, 'pending', ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
    /* kMarkRunning */
    "UPDATE main.runs SET status = 'running', started_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    " WHERE id = ?1 AND status = 'pending'",
    /* kComplete */
    "UPDATE main.runs SET status = 'completed', finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    " WHERE id = ?1 AND status = 'running'",
    /* kFail */
    "UPDATE main.runs SET status = 'failed', finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),"
    " error_message = ?2 WHERE id = ?1 AND status IN ('pending', 'running')",
    /* kCancel */
    "UPDATE main.runs SET status = 'cancelled', finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    " WHERE id = ?1 AND status IN ('pending', 'running')",
    /* kProgress */
    "UPDATE main.runs SET progress_current = ?2, progress_total = ?3, current_step = ?4"
    " WHERE id = ?1 AND status IN ('pending', 'running')",
    /* kStatus */ "SELECT status FROM main.runs WHERE id = ?1",
};

// The schema version the statements above need.
constexpr int kRequiredSchemaVersion = 2;

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

sqlite3_int64 RunStore::start_run(std::string_view scope, std::string_view triggered_by,
                                  std::string_view key) {
  Transaction::require_standalone(db_);
  if (sqlite3_db_readonly(db_, "main") == 1) throw read_only_error(SQLITE_READONLY);
  // Every statement is prepared, and the schema checked, before BEGIN: inside
  // the transaction, a failed allocation in sqlite3_prepare() (a heap limit)
  // makes SQLite refuse every statement, ROLLBACK included, until the
  // caller's statement ends, and the connection would stay in the transaction.
  Statement& find_active = statement(kActiveRunDetails);
  Statement& insert = statement(kInsertRun);
  Transaction transaction(db_, statement(kBegin), statement(kCommit), statement(kRollback));
  {
    Query active(find_active);
    active.bind(1, key);
    if (active.step()) {
      std::string message = "run " + std::to_string(active.int64(0)) + " is already active";
      if (!key.empty()) message += " for concurrency_key " + quoted(key);
      message += " (scope " + quoted(active.text(1)) + ", status " + quoted(active.text(2)) +
                 ", since " + active.text(3) +
                 "): wait for it to finish, or end it with complete_run(), fail_run() or "
                 "cancel_run()";
      throw Error(SQLITE_CONSTRAINT_UNIQUE, message);
    }
  }
  Query(insert).bind(1, scope).bind(2, triggered_by).bind(3, key).run();
  const sqlite3_int64 id = sqlite3_last_insert_rowid(db_);
  transaction.commit();
  return id;
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
  Query(statement(kMarkRunning)).bind(1, id).run();
  return outcome(id);
}

Transition RunStore::complete(sqlite3_int64 id) {
  Transaction::require_no_writing_statement(db_);
  Query(statement(kComplete)).bind(1, id).run();
  return outcome(id);
}

Transition RunStore::fail(sqlite3_int64 id, std::string_view message) {
  Transaction::require_no_writing_statement(db_);
  Query(statement(kFail)).bind(1, id).bind(2, message).run();
  return outcome(id);
}

Transition RunStore::cancel(sqlite3_int64 id) {
  Transaction::require_no_writing_statement(db_);
  Query(statement(kCancel)).bind(1, id).run();
  return outcome(id);
}

Transition RunStore::update_progress(sqlite3_int64 id, const Progress& progress) {
  Transaction::require_no_writing_statement(db_);
  Query update(statement(kProgress));
  update.bind(1, id).bind(2, progress.current).bind(3, progress.total);
  if (progress.step) {
    update.bind(4, *progress.step);
  } else {
    update.bind_null(4);
  }
  update.run();
  return outcome(id);
}

std::optional<std::string> RunStore::status(sqlite3_int64 id) {
  Query query(statement(kStatus));
  query.bind(1, id);
  if (!query.step()) return std::nullopt;
  return query.text(0);
}

int RunStore::migrate() {
  Transaction::require_standalone(db_);
  if (sqlite3_db_readonly(db_, "main") == 1) throw read_only_error(SQLITE_READONLY);
  Transaction transaction(db_, statement(kBegin), statement(kCommit), statement(kRollback));
  const int current = schema_version();
  const int latest = migrations().back().version;
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
      // The guards in sql/ refuse with RAISE(), which SQLite reports as a
      // constraint error; here it means the schema cannot be migrated.
      throw Error((rc & 0xff) == SQLITE_CONSTRAINT ? SQLITE_ERROR : rc, text);
    }
  }
  transaction.commit();
  return latest;
}

}  // namespace runs
