// bench_db.h: what the benchmark programs share. A connection to a file
// database set up the way the docs recommend (WAL, busy_timeout), the
// extension's cycle and the same cycle written by hand over the C API, both
// with statements prepared once and reused.
//
// Any unexpected result aborts the program with a message: a benchmark that
// quietly measured failing calls would report nonsense.
#pragma once

#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>

#include "liveness.h"

namespace runs_bench {

[[noreturn]] inline void die(const std::string& what, sqlite3* db = nullptr) {
  std::fprintf(stderr, "bench: %s%s%s\n", what.c_str(), db != nullptr ? ": " : "",
               db != nullptr ? sqlite3_errmsg(db) : "");
  std::exit(2);
}

// A prepared statement, finalized on destruction.
class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) {
      die(std::string("cannot prepare ") + sql, db);
    }
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(Stmt&& other) noexcept
      : db_(std::exchange(other.db_, nullptr)), stmt_(std::exchange(other.stmt_, nullptr)) {}
  Stmt& operator=(Stmt&& other) noexcept {
    std::swap(db_, other.db_);
    std::swap(stmt_, other.stmt_);
    return *this;
  }
  sqlite3_stmt* get() const { return stmt_; }

  // Steps to the end and resets; returns the first column of the first row
  // (0 when there is none). Dies on any error.
  sqlite3_int64 run() {
    sqlite3_int64 first = 0;
    int rc;
    bool row = false;
    while ((rc = sqlite3_step(stmt_)) == SQLITE_ROW) {
      if (!row) first = sqlite3_column_int64(stmt_, 0);
      row = true;
    }
    if (rc != SQLITE_DONE) die(std::string("step ") + sqlite3_sql(stmt_), db_);
    sqlite3_reset(stmt_);
    return first;
  }
  // Steps once; true when it returned a row. The caller resets.
  bool row() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) die(std::string("step ") + sqlite3_sql(stmt_), db_);
    return false;
  }
  void reset() { sqlite3_reset(stmt_); }
  Stmt& bind(int i, sqlite3_int64 v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& bind(int i, const char* text) {
    sqlite3_bind_text(stmt_, i, text, -1, SQLITE_STATIC);
    return *this;
  }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

inline void exec(sqlite3* db, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = std::string(sql) + ": " + (message ? message : "?");
    sqlite3_free(message);
    die(text);
  }
}

// A connection to `path`: WAL, the given synchronous level, busy_timeout
// 5000, and the extension loaded when `extension` is not null.
class Db {
 public:
  Db(const std::string& path, const char* extension, const char* synchronous = "NORMAL",
     int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) {
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) die("open " + path, db_);
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 5000);
    if (path != ":memory:") exec(db_, "PRAGMA journal_mode=WAL");
    exec(db_, (std::string("PRAGMA synchronous=") + synchronous).c_str());
    if (extension != nullptr) {
      sqlite3_enable_load_extension(db_, 1);
      char* message = nullptr;
      if (sqlite3_load_extension(db_, extension, nullptr, &message) != SQLITE_OK) {
        die(std::string("load ") + extension + ": " + (message ? message : "?"));
      }
      sqlite3_enable_load_extension(db_, 0);
    }
  }
  ~Db() {
    if (db_ != nullptr && sqlite3_close(db_) != SQLITE_OK) die("close", db_);
  }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  sqlite3* get() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

// The schema, applied through the extension (a separate connection, so the
// connection under test starts as a fresh one).
inline void migrate(const std::string& path, const char* extension) {
  Db db(path, extension);
  Stmt(db.get(), "SELECT runs_migrate()").run();
}

// Adds `count` finished runs (status completed) to the key's history, in
// one transaction, as fast as SQLite can insert them.
inline void add_history(sqlite3* db, sqlite3_int64 count, const char* key = "") {
  exec(db, "BEGIN IMMEDIATE");
  Stmt insert(db,
              "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)"
              " INSERT INTO main.runs (scope, status, triggered_by, concurrency_key, created_at,"
              " started_at, finished_at)"
              " SELECT 'history', 'completed', 'bench', ?2,"
              " strftime('%Y-%m-%dT%H:%M:%fZ', '2020-01-01', '+' || i || ' seconds'),"
              " strftime('%Y-%m-%dT%H:%M:%fZ', '2020-01-01', '+' || i || ' seconds'),"
              " strftime('%Y-%m-%dT%H:%M:%fZ', '2020-01-01', '+' || (i + 1) || ' seconds')"
              " FROM n");
  insert.bind(1, count).bind(2, key).run();
  exec(db, "COMMIT");
}

// One run's lifecycle through the extension: start_run, mark_run_running,
// complete_run, each a statement of its own, prepared once.
class ExtensionCycle {
 public:
  explicit ExtensionCycle(sqlite3* db, const char* key = "")
      : start_(db, "SELECT start_run(?1, ?2, ?3)"),
        running_(db, "SELECT mark_run_running(?1)"),
        complete_(db, "SELECT complete_run(?1)"),
        key_(key) {}
  sqlite3_int64 run() {
    const sqlite3_int64 id = start_.bind(1, "bench").bind(2, "bench").bind(3, key_).run();
    running_.bind(1, id).run();
    complete_.bind(1, id).run();
    return id;
  }

 private:
  Stmt start_, running_, complete_;
  const char* key_;
};

// The SQL of the cycle written by hand: the extension's own statements
// (ext/run_store.cpp), owner and lease included, so that the two differ only
// in how they are driven. The owner is this process, read once through the
// extension's ext/liveness.h.
inline constexpr const char* kHandActiveRun =
    "SELECT id, scope, status, coalesce(started_at, created_at), owner_host, owner_boot_id,"
    " owner_pid_ns, owner_pid, owner_start_time, lease_expires_at,"
    " lease_expires_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), owner_time_ns FROM main.runs"
    " WHERE concurrency_key = ?1 AND status IN ('pending', 'running')";
inline constexpr const char* kHandInsert =
    "INSERT INTO main.runs (scope, status, triggered_by, concurrency_key, created_at, owner_host,"
    " owner_boot_id, owner_pid_ns, owner_pid, owner_start_time, owner_time_ns, heartbeat_at,"
    " lease_seconds, lease_expires_at)"
    " VALUES (?1, 'pending', ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?4, ?5, ?6, ?7, ?8, ?9,"
    " strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), NULL, NULL)";
inline constexpr const char* kHandMarkRunning =
    "UPDATE main.runs SET status = 'running', started_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),"
    " owner_host = ?2, owner_boot_id = ?3, owner_pid_ns = ?4, owner_pid = ?5, owner_start_time = ?6,"
    " owner_time_ns = ?7, heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), lease_expires_at = CASE WHEN"
    " lease_seconds IS NULL THEN lease_expires_at ELSE strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' ||"
    " lease_seconds || ' seconds') END"
    " WHERE id = ?1 AND status = 'pending'";
inline constexpr const char* kHandComplete =
    "UPDATE main.runs SET status = 'completed', finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    " WHERE id = ?1 AND status = 'running'";

// The same work written by hand over the C API, statements prepared once:
// BEGIN IMMEDIATE, look up the key's active run, insert, COMMIT, then the two
// guarded updates, each its own autocommit transaction.
class HandCycle {
 public:
  explicit HandCycle(sqlite3* db, const char* key = "")
      : db_(db),
        begin_(db, "BEGIN IMMEDIATE"),
        active_(db, kHandActiveRun),
        insert_(db, kHandInsert),
        commit_(db, "COMMIT"),
        running_(db, kHandMarkRunning),
        complete_(db, kHandComplete),
        key_(key) {}
  sqlite3_int64 run() {
    begin_.run();
    if (active_.bind(1, key_).row()) die("hand cycle: a run is already active");
    active_.reset();
    insert_.bind(1, "bench").bind(2, "bench").bind(3, key_);
    bind_owner(insert_, 4).run();
    const sqlite3_int64 id = sqlite3_last_insert_rowid(db_);
    commit_.run();
    bind_owner(running_.bind(1, id), 2).run();
    if (sqlite3_changes(db_) != 1) die("hand cycle: mark running changed nothing");
    complete_.bind(1, id).run();
    if (sqlite3_changes(db_) != 1) die("hand cycle: complete changed nothing");
    return id;
  }

 private:
  // The owner columns from parameter `first` on, as the extension binds them.
  Stmt& bind_owner(Stmt& stmt, int first) {
    if (!owner_.host || !owner_.identity || !owner_.identity->time_namespace) {
      die("hand cycle: this process cannot read its host name, identity or time namespace");
    }
    const runs::Identity& identity = *owner_.identity;
    return stmt.bind(first, owner_.host->c_str()).bind(first + 1, identity.boot_id.c_str())
        .bind(first + 2, identity.pid_namespace).bind(first + 3, owner_.pid)
        .bind(first + 4, identity.start_time).bind(first + 5, *identity.time_namespace);
  }

  sqlite3* db_;
  const runs::Owner owner_ = runs::system_liveness().self();
  Stmt begin_, active_, insert_, commit_, running_, complete_;
  const char* key_;
};

// A scratch directory under `parent`, removed (with its files) on destruction.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& parent) {
    std::string pattern = parent + "/runs-bench-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) die("mkdtemp in " + parent);
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code error;
    std::filesystem::remove_all(path_, error);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Where scratch databases go: $RUNS_BENCH_DIR, else the current directory
// (a real disk, so that synchronous=FULL pays for its fsyncs; /tmp may be
// tmpfs).
inline std::string scratch_parent() {
  const char* dir = std::getenv("RUNS_BENCH_DIR");
  return dir != nullptr && *dir != '\0' ? dir : ".";
}

}  // namespace runs_bench
