// race_worker: one contender of the cross-process race test (race_test.cpp).
//
// Started fresh by the test with posix_spawn (never forked with a connection
// open), it opens its own connection to the shared database (WAL,
// busy_timeout 5000) and repeatedly starts and finishes runs. At the end it
// prints one line of counts to stdout, for example
//
//   attempts=40 wins=3 refusals=37 unique_errors=0 trigger_errors=0 busy=0 finish_busy=0 errors=0
//
// (mode migrate: `migrated=4 errors=0`, 4 the latest schema version)
// and exits 0, or 1 when any call did something the test does not expect
// (errors > 0; the details go to stderr), or 2 on bad usage or setup failure.
//
//   race_worker --db PATH --mode naive|extension|migrate|migrate-in-transaction|migrate-after-read
//               --iterations N
//               [--key KEY] [--extension PATH] [--lockstep] [--busy-handler sqlite|runs]
//
// --busy-handler: how the connection waits for the write lock, 5000 ms at
// most: SQLite's busy_timeout (the default), or the extension's handler
// (SELECT runs_busy_timeout(5000), modes extension and migrate* only).
//
// Modes:
//   naive      the check-then-insert pattern, in separate autocommit
//              statements: SELECT the active run; if there is none, INSERT a
//              pending run, then UPDATE it to running, then to completed.
//              `refusals` counts checks that saw an active run, `wins`
//              successful INSERTs, `unique_errors` INSERTs refused by a UNIQUE
//              index (migration 002), `trigger_errors` INSERTs refused by
//              migration 003's BEFORE INSERT trigger (which fires before the
//              index is checked, so with migration 003 the index never is).
//   extension  loads --extension and calls SELECT start_run('race', 'race_worker',
//              KEY); on success mark_run_running(id) and complete_run(id).
//              `refusals` counts SQLITE_CONSTRAINT_UNIQUE refusals, `busy`
//              SQLITE_BUSY.
//   migrate    loads --extension and calls SELECT runs_migrate() once
//              (--iterations 1); `migrated` is the version it returned,
//              `errors` counts any failure (SQLITE_BUSY included).
//   migrate-in-transaction  the same inside the caller's transaction, as a
//              migration tool calls it: BEGIN (deferred), SELECT
//              runs_migrate(), COMMIT.
//   migrate-after-read  the same, but the transaction reads the database
//              first (SELECT count(*) FROM sqlite_schema), before the
//              rendezvous: the read snapshot that keeps it from waiting for
//              the write lock. `busy` counts SQLITE_BUSY and
//              SQLITE_BUSY_SNAPSHOT refusals (`migrated=0 busy=1 errors=0`).
//   Finishing steps (to running, to completed) that meet SQLITE_BUSY are
//   retried, so that no run stays active; `finish_busy` counts the retries.
//
// Synchronisation, no sleeps: once its connection is open and its statements
// prepared, the worker writes one byte '.' to stdout ("ready") and reads its
// stdin until EOF (with --lockstep: until one byte): the start barrier, which
// the parent opens once every worker is ready. With --lockstep it
// also stops at every step of every iteration: it writes one byte '.' to
// stdout and waits for one byte on stdin (EOF there aborts with exit 2). The
// steps are: naive: check | insert | finish; extension: start_run | finish;
// migrate: one rendezvous right before runs_migrate().
// A parent that releases the workers only once all of them have reached the
// step forces the interleaving "every worker checks, then every worker
// inserts", which is what the naive pattern cannot survive.
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

struct Options {
  std::string db;
  std::string mode;
  long iterations = -1;
  std::string key;
  std::string extension;
  bool lockstep = false;
  std::string busy_handler = "sqlite";
  bool in_transaction = false;  // modes migrate-in-transaction, migrate-after-read
  bool read_first = false;      // mode migrate-after-read
};

struct Counts {
  long attempts = 0;
  long wins = 0;
  long refusals = 0;
  long unique_errors = 0;
  long trigger_errors = 0;
  long busy = 0;
  long finish_busy = 0;
  long errors = 0;
  long migrated = 0;  // mode migrate: the version runs_migrate() returned
};

[[noreturn]] void usage(const char* problem) {
  std::fprintf(stderr,
               "race_worker: %s\nusage: race_worker --db PATH --mode "
               "naive|extension|migrate|migrate-in-transaction|migrate-after-read "
               "--iterations N [--key KEY] [--extension PATH] [--lockstep] "
               "[--busy-handler sqlite|runs]\n",
               problem);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + arg).c_str());
      return argv[++i];
    };
    if (arg == "--db") {
      options.db = value();
    } else if (arg == "--mode") {
      options.mode = value();
    } else if (arg == "--iterations") {
      const std::string text = value();
      char* end = nullptr;
      options.iterations = std::strtol(text.c_str(), &end, 10);
      if (end == text.c_str() || *end != '\0' || options.iterations < 0) {
        usage("--iterations needs a non-negative integer");
      }
    } else if (arg == "--key") {
      options.key = value();
    } else if (arg == "--extension") {
      options.extension = value();
    } else if (arg == "--lockstep") {
      options.lockstep = true;
    } else if (arg == "--busy-handler") {
      options.busy_handler = value();
    } else {
      usage(("unknown argument " + arg).c_str());
    }
  }
  if (options.db.empty()) usage("--db is required");
  if (options.mode == "migrate-in-transaction" || options.mode == "migrate-after-read") {
    options.read_first = options.mode == "migrate-after-read";
    options.mode = "migrate";
    options.in_transaction = true;
  }
  if (options.mode != "naive" && options.mode != "extension" && options.mode != "migrate") {
    usage("--mode must be naive, extension, migrate, migrate-in-transaction or migrate-after-read");
  }
  if (options.iterations < 0) usage("--iterations is required");
  if (options.mode != "naive" && options.extension.empty()) {
    usage(("--mode " + options.mode + " needs --extension").c_str());
  }
  if (options.mode == "migrate" && options.iterations != 1) usage("--mode migrate needs --iterations 1");
  if (options.busy_handler != "sqlite" && options.busy_handler != "runs") {
    usage("--busy-handler must be sqlite or runs");
  }
  if (options.busy_handler == "runs" && options.mode == "naive") {
    usage("--busy-handler runs needs the extension (mode extension or migrate)");
  }
  return options;
}

// Reads one byte from stdin; false at EOF.
bool read_byte() {
  char byte = 0;
  for (;;) {
    const ssize_t n = read(STDIN_FILENO, &byte, 1);
    if (n == 1) return true;
    if (n == 0) return false;
    if (errno != EINTR) {
      std::perror("race_worker: read stdin");
      std::exit(2);
    }
  }
}

void write_byte(char byte) {
  for (;;) {
    const ssize_t n = write(STDOUT_FILENO, &byte, 1);
    if (n == 1) return;
    if (n < 0 && errno == EINTR) continue;
    std::perror("race_worker: write stdout");
    std::exit(2);
  }
}

// A lockstep rendezvous: "I am here", then wait for the parent's go.
void rendezvous(const Options& options) {
  if (!options.lockstep) return;
  write_byte('.');
  if (!read_byte()) {
    std::fprintf(stderr, "race_worker: stdin closed during --lockstep\n");
    std::exit(2);
  }
}

class Worker {
 public:
  explicit Worker(Options options) : options_(std::move(options)) {}
  ~Worker() {
    for (sqlite3_stmt* stmt : {check_, insert_, to_running_, to_completed_, start_, mark_, complete_, migrate_}) {
      sqlite3_finalize(stmt);
    }
    if (db_ != nullptr && sqlite3_close(db_) != SQLITE_OK) {
      std::fprintf(stderr, "race_worker: sqlite3_close: %s\n", sqlite3_errmsg(db_));
    }
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void open() {
    if (sqlite3_open_v2(options_.db.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      fatal("open");
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 5000);
    if (options_.mode != "naive") {
      sqlite3_enable_load_extension(db_, 1);
      char* message = nullptr;
      if (sqlite3_load_extension(db_, options_.extension.c_str(), nullptr, &message) != SQLITE_OK) {
        std::fprintf(stderr, "race_worker: load %s: %s\n", options_.extension.c_str(),
                     message != nullptr ? message : "?");
        std::exit(2);
      }
      if (options_.busy_handler == "runs") {
        sqlite3_stmt* set = prepare("SELECT runs_busy_timeout(5000)");
        const bool installed = sqlite3_step(set) == SQLITE_ROW && sqlite3_column_int(set, 0) == 5000;
        sqlite3_finalize(set);
        if (!installed) fatal("SELECT runs_busy_timeout(5000)");
      }
    }
    // The test set WAL up before starting the workers; it is persistent.
    sqlite3_stmt* mode = prepare("PRAGMA journal_mode");
    const bool wal = sqlite3_step(mode) == SQLITE_ROW &&
                     std::strcmp(reinterpret_cast<const char*>(sqlite3_column_text(mode, 0)), "wal") == 0;
    sqlite3_finalize(mode);
    if (!wal) {
      std::fprintf(stderr, "race_worker: the database is not in WAL mode\n");
      std::exit(2);
    }
    // No fsync per commit (WAL keeps it consistent; durability is not under
    // test): commits then hold the write lock for microseconds instead of a
    // disk flush, so the workers interleave instead of taking turns.
    exec("PRAGMA synchronous = NORMAL");
    if (options_.mode == "naive") {
      check_ = prepare("SELECT id FROM runs WHERE status IN ('pending', 'running')");
      insert_ = prepare(
          "INSERT INTO runs (scope, status, triggered_by, created_at)"
          " VALUES ('race', 'pending', 'race_worker', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))");
      to_running_ = prepare(
          "UPDATE runs SET status = 'running', started_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
          " WHERE id = ?1 AND status = 'pending'");
      to_completed_ = prepare(
          "UPDATE runs SET status = 'completed', finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
          " WHERE id = ?1 AND status = 'running'");
    } else if (options_.mode == "migrate") {
      // Prepared on the empty database; SQLite re-prepares it by itself once
      // another worker's migration has changed the schema.
      migrate_ = prepare("SELECT runs_migrate()");
    } else {
      start_ = prepare("SELECT start_run('race', 'race_worker', ?1)");
      if (sqlite3_bind_text(start_, 1, options_.key.c_str(), -1, SQLITE_STATIC) != SQLITE_OK) {
        fatal("bind key");
      }
      mark_ = prepare("SELECT mark_run_running(?1)");
      complete_ = prepare("SELECT complete_run(?1)");
    }
  }

  void run() {
    for (long i = 0; i < options_.iterations; ++i) {
      ++counts_.attempts;
      if (options_.mode == "naive") {
        naive_iteration();
      } else if (options_.mode == "migrate") {
        migrate_iteration();
      } else {
        extension_iteration();
      }
    }
  }

  const Counts& counts() const { return counts_; }

 private:
  [[noreturn]] void fatal(const char* what) {
    std::fprintf(stderr, "race_worker: %s: %s\n", what, db_ != nullptr ? sqlite3_errmsg(db_) : "?");
    std::exit(2);
  }

  void exec(const char* sql) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) fatal(sql);
  }

  sqlite3_stmt* prepare(const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) fatal(sql);
    return stmt;
  }

  void unexpected(const char* what, int rc) {
    ++counts_.errors;
    std::fprintf(stderr, "race_worker: %s: rc %d (extended %d): %s\n", what, rc,
                 sqlite3_extended_errcode(db_), sqlite3_errmsg(db_));
  }

  // Steps a statement that writes one row (or none) to the end. Returns the
  // result code; the statement is reset.
  int step_to_done(sqlite3_stmt* stmt) {
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    }
    sqlite3_reset(stmt);
    return rc;
  }

  // An UPDATE that must change exactly run `id`; SQLITE_BUSY is retried.
  void finish_step(sqlite3_stmt* stmt, sqlite3_int64 id, const char* what) {
    sqlite3_bind_int64(stmt, 1, id);
    for (;;) {
      const int rc = step_to_done(stmt);
      if ((rc & 0xff) == SQLITE_BUSY) {
        ++counts_.finish_busy;
        continue;
      }
      if (rc != SQLITE_DONE) {
        unexpected(what, rc);
      } else if (sqlite3_changes(db_) != 1) {
        ++counts_.errors;
        std::fprintf(stderr, "race_worker: %s of run %lld changed %d rows\n", what,
                     static_cast<long long>(id), sqlite3_changes(db_));
      }
      return;
    }
  }

  void naive_iteration() {
    // Check. SQLITE_BUSY cannot happen for a WAL reader, so anything but a
    // row or the end is unexpected.
    bool active = false;
    int rc;
    while ((rc = sqlite3_step(check_)) == SQLITE_ROW) active = true;
    sqlite3_reset(check_);
    if (rc != SQLITE_DONE) unexpected("check", rc);
    rendezvous(options_);

    // Insert, if the check saw no active run.
    sqlite3_int64 id = 0;
    if (active) {
      ++counts_.refusals;
    } else {
      rc = step_to_done(insert_);
      if (rc == SQLITE_DONE) {
        ++counts_.wins;
        id = sqlite3_last_insert_rowid(db_);
      } else if (rc == SQLITE_CONSTRAINT_UNIQUE) {
        ++counts_.unique_errors;
      } else if (rc == SQLITE_CONSTRAINT_TRIGGER &&
                 std::strcmp(sqlite3_errmsg(db_),
                             "runs: this concurrency_key already has an active run: end it first") == 0) {
        ++counts_.trigger_errors;
      } else if ((rc & 0xff) == SQLITE_BUSY) {
        ++counts_.busy;
      } else {
        unexpected("insert", rc);
      }
    }
    rendezvous(options_);

    // Finish.
    if (id != 0) {
      finish_step(to_running_, id, "update to running");
      finish_step(to_completed_, id, "update to completed");
    }
    rendezvous(options_);
  }

  // SELECT fn(id) that must return 'updated'; SQLITE_BUSY is retried.
  void finish_call(sqlite3_stmt* stmt, sqlite3_int64 id, const char* what) {
    sqlite3_bind_int64(stmt, 1, id);
    for (;;) {
      int rc = sqlite3_step(stmt);
      std::string result;
      if (rc == SQLITE_ROW) {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
        result = text != nullptr ? text : "NULL";
        rc = sqlite3_step(stmt);
      }
      sqlite3_reset(stmt);
      if ((rc & 0xff) == SQLITE_BUSY) {
        ++counts_.finish_busy;
        continue;
      }
      if (rc != SQLITE_DONE) {
        unexpected(what, rc);
      } else if (result != "updated") {
        ++counts_.errors;
        std::fprintf(stderr, "race_worker: %s(%lld) returned %s\n", what, static_cast<long long>(id),
                     result.c_str());
      }
      return;
    }
  }

  void extension_iteration() {
    sqlite3_int64 id = 0;
    int rc = sqlite3_step(start_);
    if (rc == SQLITE_ROW) {
      id = sqlite3_column_int64(start_, 0);
      rc = sqlite3_step(start_);
    }
    if (rc == SQLITE_DONE && id > 0) {
      ++counts_.wins;
    } else if (rc == SQLITE_CONSTRAINT_UNIQUE) {
      // The refusal names the active run and, for a non-empty key, the key.
      const std::string message = sqlite3_errmsg(db_);
      const std::string expected_start = "start_run(): run ";
      const std::string expected_key =
          options_.key.empty() ? " is already active (scope 'race', status '"
                               : " is already active for concurrency_key '" + options_.key +
                                     "' (scope 'race', status '";
      if (message.rfind(expected_start, 0) == 0 && message.find(expected_key) != std::string::npos) {
        ++counts_.refusals;
      } else {
        unexpected("start_run refusal message", rc);
      }
    } else if ((rc & 0xff) == SQLITE_BUSY) {
      ++counts_.busy;
    } else {
      unexpected("start_run", rc);
    }
    sqlite3_reset(start_);
    rendezvous(options_);

    if (id > 0) {
      finish_call(mark_, id, "mark_run_running");
      finish_call(complete_, id, "complete_run");
    }
    rendezvous(options_);
  }

  // SELECT runs_migrate(), right after the start barrier (with --lockstep
  // after one more rendezvous, so that all workers call it at once). Any
  // failure, SQLITE_BUSY included, is an error.
  void migrate_iteration() {
    if (!options_.read_first) rendezvous(options_);
    if (options_.in_transaction && sqlite3_exec(db_, "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) {
      unexpected("BEGIN", sqlite3_extended_errcode(db_));
      return;
    }
    if (options_.read_first) {
      if (sqlite3_exec(db_, "SELECT count(*) FROM sqlite_schema", nullptr, nullptr, nullptr) != SQLITE_OK) {
        unexpected("read", sqlite3_extended_errcode(db_));
      }
      rendezvous(options_);
    }
    int rc = sqlite3_step(migrate_);
    if (rc == SQLITE_ROW) {
      counts_.migrated = static_cast<long>(sqlite3_column_int64(migrate_, 0));
      rc = sqlite3_step(migrate_);
    }
    if (options_.read_first && (rc & 0xff) == SQLITE_BUSY) {
      ++counts_.busy;
    } else if (rc != SQLITE_DONE) {
      unexpected("runs_migrate", rc);
    }
    sqlite3_reset(migrate_);
    if (options_.in_transaction && !sqlite3_get_autocommit(db_)) {
      const int end = sqlite3_exec(db_, rc == SQLITE_DONE ? "COMMIT" : "ROLLBACK", nullptr, nullptr, nullptr);
      if (end != SQLITE_OK) unexpected(rc == SQLITE_DONE ? "COMMIT" : "ROLLBACK", end);
    }
  }

  Options options_;
  Counts counts_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* check_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* to_running_ = nullptr;
  sqlite3_stmt* to_completed_ = nullptr;
  sqlite3_stmt* start_ = nullptr;
  sqlite3_stmt* mark_ = nullptr;
  sqlite3_stmt* complete_ = nullptr;
  sqlite3_stmt* migrate_ = nullptr;
};

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  Counts counts;
  {
    Worker worker(options);
    worker.open();
    // Start barrier: say "ready", then wait until the parent has heard every
    // worker say so.
    write_byte('.');
    if (options.lockstep) {
      if (!read_byte()) {
        std::fprintf(stderr, "race_worker: stdin closed before the start\n");
        return 2;
      }
    } else {
      while (read_byte()) {
      }
    }
    worker.run();
    counts = worker.counts();
  }
  if (options.mode == "migrate" && options.read_first) {
    std::printf("migrated=%ld busy=%ld errors=%ld\n", counts.migrated, counts.busy, counts.errors);
  } else if (options.mode == "migrate") {
    std::printf("migrated=%ld errors=%ld\n", counts.migrated, counts.errors);
  } else {
    std::printf(
        "attempts=%ld wins=%ld refusals=%ld unique_errors=%ld trigger_errors=%ld busy=%ld "
        "finish_busy=%ld errors=%ld\n",
        counts.attempts, counts.wins, counts.refusals, counts.unique_errors, counts.trigger_errors,
        counts.busy, counts.finish_busy, counts.errors);
  }
  return counts.errors == 0 ? 0 : 1;
}
