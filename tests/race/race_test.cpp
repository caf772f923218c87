// The cross-process race: several fresh processes (race_worker, started with
// posix_spawn; no SQLite connection ever crosses a fork) start and finish
// runs on one WAL database at the same time, and a history recorded inside
// their write transactions tells whether two runs of a key were ever active at
// once.
//
// The history: triggers on `runs`, created by the setup, append 'active' when
// a run becomes pending/running and 'inactive' when it leaves those states to
// race_history. A trigger runs inside the statement that fired it, so inside
// its write transaction; writers are serialised, so seq is the commit order.
// Replaying it per key gives how many runs of the key were active at each
// moment.
//
// Three patterns:
//   (a) naive check-then-insert, schema of migration 001 only: overlaps happen.
//   (b) the same with migration 002's partial unique index alone: none; the
//       losers get SQLITE_CONSTRAINT_UNIQUE. And with every migration
//       (runs_migrate()): none; migration 003's BEFORE INSERT trigger refuses
//       the losers first, with SQLITE_CONSTRAINT_TRIGGER.
//   (c) start_run() of the extension: none, with one key or two.
// In lockstep the parent releases every step of every iteration only once all
// workers reached it, which forces "all check, then all insert" and makes the
// counts exact. start_run() and the indexed naive pattern also run free (a
// start barrier, then as fast as the workers go), where only the invariants
// can be asserted.
// And runs_migrate() itself: 8 workers migrate one empty database at once.
// No sleeps, no timing assertions.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "child_process.h"
#include "history.h"
#include "system.h"
#include "temp_dir.h"
#include "test_db.h"

extern char** environ;

namespace {

using runs_test::host_name;
using runs_test::max_active;
using runs_test::overlaps;
using runs_test::read_text;
using runs_test::replay;
using runs_test::Replay;
using runs_test::TempDir;
using runs_test::TestDb;

constexpr int kWorkers = 8;

// How the workers that load the extension wait for the write lock:
// RUNS_RACE_BUSY_HANDLER=runs (ctest's race_test.runs_busy_timeout.* run)
// makes them call runs_busy_timeout(5000); otherwise SQLite's busy_timeout.
std::string busy_handler() {
  const char* chosen = std::getenv("RUNS_RACE_BUSY_HANDLER");
  return chosen != nullptr && std::string(chosen) == "runs" ? "runs" : "sqlite";
}
// A generous guard against a hung worker, not a timing assertion: waiting
// longer than this for a worker's byte kills the workers and fails the test.
constexpr int kHangGuardMs = 120'000;

enum class Schema {
  kMigration001,  // sql/001_create_runs.sql executed as text: no concurrency_key, no index
  kMigration002,  // sql/001 and sql/002 executed as text: the partial unique index, no triggers
  kMigrated,      // SELECT runs_migrate(): every migration, the index and migration 003's triggers
  kEmpty,         // nothing at all: no schema, no history triggers
};

// Creates the database in WAL mode with the schema and the history triggers
// (kEmpty: WAL mode only), and closes it again: no connection is open while
// workers are spawned.
void create_database(const std::string& path, Schema schema) {
  const TestDb db(path);
  EXPECT_EQ(db.value("PRAGMA journal_mode = WAL"), "wal");
  if (schema == Schema::kEmpty) {
    EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_schema"), "0");
    return;
  }
  if (schema == Schema::kMigration001) {
    db.exec(read_text(RUNS_SOURCE_DIR "/sql/001_create_runs.sql"));
    EXPECT_EQ(db.value("SELECT group_concat(version) FROM runs_schema_migrations"), "1");
    EXPECT_EQ(db.value("SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'concurrency_key'"), "0");
  } else if (schema == Schema::kMigration002) {
    db.exec(read_text(RUNS_SOURCE_DIR "/sql/001_create_runs.sql"));
    db.exec(read_text(RUNS_SOURCE_DIR "/sql/002_one_active_run.sql"));
    EXPECT_EQ(db.value("SELECT group_concat(version) FROM runs_schema_migrations"), "1,2");
    EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_schema WHERE name = 'runs_one_active'"), "1");
    EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"), "0");
  } else {
    EXPECT_EQ(db.value("SELECT runs_migrate()"), runs_test::kLatestSchemaVersion);
    EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_schema WHERE name = 'runs_one_active'"), "1");
    EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_schema WHERE name = 'runs_insert_guard'"), "1");
  }
  const std::string key = schema == Schema::kMigration001 ? "''" : "new.concurrency_key";
  db.exec(runs_test::history_sql("race_history", key));
}

struct WorkerResult {
  int exit_code = -1;  // -1: did not exit normally
  std::string output;  // stdout after the protocol bytes: the line of counts
  std::map<std::string, long> counts;
};

std::map<std::string, long> parse_counts(const std::string& line) {
  std::map<std::string, long> counts;
  std::istringstream words(line);
  std::string word;
  while (words >> word) {
    const auto equals = word.find('=');
    if (equals == std::string::npos) continue;
    counts[word.substr(0, equals)] = std::stol(word.substr(equals + 1));
  }
  return counts;
}

// The sum of one count over all workers.
long total(const std::vector<WorkerResult>& results, const std::string& name) {
  long sum = 0;
  for (const WorkerResult& result : results) {
    const auto it = result.counts.find(name);
    if (it != result.counts.end()) sum += it->second;
  }
  return sum;
}

// Never two runs of the key '' active at once.
void expect_one_at_a_time(const Replay& history) {
  EXPECT_EQ(max_active(history, ""), 1);
  EXPECT_EQ(overlaps(history, ""), 0);
}

// Each named count, summed over all workers, is the number given.
void expect_totals(const std::vector<WorkerResult>& results,
                   std::initializer_list<std::pair<std::string, long>> expected) {
  for (const auto& [name, value] : expected) EXPECT_EQ(total(results, name), value) << name;
}

struct WorkerSpec {
  std::string mode;  // naive | extension | migrate | migrate-in-transaction
  std::string key;
  std::string handler = busy_handler();  // sqlite | runs (not for naive)
};

// Runs one race_worker per spec, all on `db`, and waits for all of them.
// Lockstep: `steps` rendezvous per iteration (the worker's protocol).
class Race {
 public:
  Race(std::string db, long iterations, bool lockstep)
      : db_(std::move(db)), iterations_(iterations), lockstep_(lockstep) {}

  std::vector<WorkerResult> run(const std::vector<WorkerSpec>& specs) {
    // A worker that dies makes writes to its stdin fail with EPIPE, not kill us.
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction previous {};
    sigaction(SIGPIPE, &ignore, &previous);

    for (const WorkerSpec& spec : specs) spawn(spec);
    std::vector<WorkerResult> results(children_.size());
    if (!failed_) {
      drive(specs);
    }
    // Closing stdin releases free workers and aborts lockstep workers stuck
    // after a failure; then read what they print and reap them.
    for (Child& child : children_) close_fd(child.in);
    for (std::size_t i = 0; i < children_.size(); ++i) {
      Child& child = children_[i];
      std::string rest;
      if (!failed_) {
        rest = read_rest(child);
      }
      close_fd(child.out);
      int status = 0;
      while (waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
      }
      results[i].exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      results[i].output = rest;
      results[i].counts = parse_counts(rest);
      EXPECT_EQ(results[i].exit_code, 0) << "worker " << i << " (pid " << child.pid << ", status "
                                         << status << ") printed: " << rest;
    }
    sigaction(SIGPIPE, &previous, nullptr);
    children_.clear();
    return results;
  }

 private:
  struct Child {
    pid_t pid = -1;
    int in = -1;   // the worker's stdin, our write end
    int out = -1;  // the worker's stdout, our read end
  };

  static void close_fd(int& fd) {
    if (fd >= 0) close(fd);
    fd = -1;
  }

  void spawn(const WorkerSpec& spec) {
    std::vector<std::string> args = {RACE_WORKER_PATH, "--db", db_, "--mode", spec.mode,
                                      "--iterations", std::to_string(iterations_)};
    if (spec.mode == "extension") {
      args.insert(args.end(), {"--extension", RUNS_EXTENSION_PATH, "--key", spec.key});
    } else if (spec.mode.starts_with("migrate")) {
      args.insert(args.end(), {"--extension", RUNS_EXTENSION_PATH});
    }
    if (lockstep_) args.emplace_back("--lockstep");
    if (spec.mode != "naive") args.insert(args.end(), {"--busy-handler", spec.handler});
    const runs_test::ChildProcess child = runs_test::spawn_child(args);
    if (child.pid <= 0) {
      failed_ = true;
      return;
    }
    children_.push_back(Child{child.pid, child.in, child.out});
  }

  // Waits for one protocol byte from every worker. False (and the test
  // failed) when one closed its stdout instead or the hang guard ran out.
  bool hear_from_all(const char* what) {
    for (std::size_t i = 0; i < children_.size(); ++i) {
      pollfd fd{children_[i].out, POLLIN, 0};
      int ready;
      while ((ready = poll(&fd, 1, kHangGuardMs)) < 0 && errno == EINTR) {
      }
      char byte = 0;
      ssize_t n = -1;
      if (ready == 1) {
        while ((n = read(children_[i].out, &byte, 1)) < 0 && errno == EINTR) {
        }
      }
      if (n != 1 || byte != '.') {
        ADD_FAILURE() << "worker " << i << " " << what << ": "
                      << (ready == 0 ? "no answer: killing the workers"
                                     : n == 0 ? "exited early"
                                              : "protocol error");
        if (ready == 0) {
          for (const Child& child : children_) kill(child.pid, SIGKILL);
        }
        failed_ = true;
        return false;
      }
    }
    return true;
  }

  bool release_all() {
    for (Child& child : children_) {
      const char go = 'g';
      if (write(child.in, &go, 1) != 1) {
        ADD_FAILURE() << "cannot release worker " << child.pid << ": " << std::strerror(errno);
        failed_ = true;
        return false;
      }
    }
    return true;
  }

  void drive(const std::vector<WorkerSpec>& specs) {
    if (!hear_from_all("getting ready")) return;
    if (!lockstep_) {
      for (Child& child : children_) close_fd(child.in);  // the start barrier opens
      return;
    }
    if (!release_all()) return;
    const std::string& mode = specs.front().mode;
    const long steps = mode == "naive" ? 3 : mode == "extension" ? 2 : 1;
    for (long step = 0; step < iterations_ * steps; ++step) {
      if (!hear_from_all("in lockstep") || !release_all()) return;
    }
  }

  std::string read_rest(Child& child) {
    std::string text;
    char buffer[256];
    for (;;) {
      pollfd fd{child.out, POLLIN, 0};
      int ready;
      while ((ready = poll(&fd, 1, kHangGuardMs)) < 0 && errno == EINTR) {
      }
      if (ready == 0) {
        ADD_FAILURE() << "worker " << child.pid << " does not finish: killing it";
        kill(child.pid, SIGKILL);
        return text;
      }
      ssize_t n;
      while ((n = read(child.out, buffer, sizeof buffer)) < 0 && errno == EINTR) {
      }
      if (n <= 0) return text;
      text.append(buffer, static_cast<std::size_t>(n));
    }
  }

  std::string db_;
  long iterations_;
  bool lockstep_;
  std::vector<Child> children_;
  bool failed_ = false;
};

long long count(const TestDb& db, const std::string& sql) {
  return std::stoll(db.value(sql).value_or("-1"));
}

// The facts every race must leave, whatever the pattern: every worker exited
// 0 with no unexpected result; every attempt is accounted for; the runs table
// holds exactly the runs the workers won, all completed; the history holds
// exactly one 'active' then one 'inactive' per run.
void expect_consistent(const TestDb& db, const std::vector<WorkerResult>& results, long iterations,
                       const Replay& history) {
  ASSERT_EQ(results.size(), static_cast<std::size_t>(kWorkers));
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& c = results[i].counts;
    EXPECT_EQ(results[i].exit_code, 0) << "worker " << i;
    ASSERT_EQ(c.count("attempts"), 1u) << "worker " << i << " printed: " << results[i].output;
    EXPECT_EQ(c.at("errors"), 0) << "worker " << i;
    EXPECT_EQ(c.at("attempts"), iterations) << "worker " << i;
    EXPECT_EQ(c.at("wins") + c.at("refusals") + c.at("unique_errors") + c.at("trigger_errors") + c.at("busy"),
              c.at("attempts"))
        << "worker " << i << ": " << results[i].output;
  }
  const long wins = total(results, "wins");
  EXPECT_GE(wins, 1);
  EXPECT_EQ(count(db, "SELECT count(*) FROM runs"), wins);
  EXPECT_EQ(count(db, "SELECT count(*) FROM runs WHERE status = 'completed'"), wins);
  EXPECT_EQ(count(db,
                  "SELECT count(*) FROM runs WHERE started_at IS NULL OR finished_at IS NULL"
                  " OR started_at < created_at OR finished_at < started_at"),
            0);
  EXPECT_EQ(history.events, 2 * wins);
  EXPECT_EQ(static_cast<long>(history.events_of_run.size()), wins);
  long well_formed = 0;
  for (const auto& [run, events] : history.events_of_run) {
    if (events == "AI") ++well_formed;
  }
  EXPECT_EQ(well_formed, wins) << "runs whose history is not exactly 'active' then 'inactive'";
  EXPECT_TRUE(history.anomalies.empty()) << history.anomalies.front();
}

void report(const char* name, const std::vector<WorkerResult>& results, const Replay& history,
            std::chrono::steady_clock::duration elapsed) {
  std::ostringstream line;
  line << name << ": wins=" << total(results, "wins") << " refusals=" << total(results, "refusals")
       << " unique_errors=" << total(results, "unique_errors")
       << " trigger_errors=" << total(results, "trigger_errors") << " busy=" << total(results, "busy")
       << " finish_busy=" << total(results, "finish_busy");
  for (const auto& [key, max] : history.max_active) {
    line << " key'" << key << "':max_active=" << max << ",overlaps="
         << (history.overlaps.count(key) ? history.overlaps.at(key) : 0);
  }
  line << " max_active_all_keys=" << history.max_active_all_keys << " in "
       << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms";
  std::cout << "[ race     ] " << line.str() << std::endl;
  ::testing::Test::RecordProperty("race", line.str());
}

struct Outcome {
  std::vector<WorkerResult> results;
  Replay history;
  std::map<std::string, long> wins_of_key;  // reported by the workers
  std::map<std::string, long> runs_of_key;  // rows in runs (schemas with concurrency_key only)
};

// Creates a database, races kWorkers workers on it and replays the history.
// `key_of(i)` is worker i's concurrency key (extension mode).
template <typename KeyOf>
Outcome race(const char* name, Schema schema, const std::string& mode, long iterations, bool lockstep,
             KeyOf key_of, const std::string& handler = busy_handler()) {
  const auto begin = std::chrono::steady_clock::now();
  TempDir dir;
  Outcome outcome;
  create_database(dir.db(), schema);
  std::vector<WorkerSpec> specs;
  for (int i = 0; i < kWorkers; ++i) specs.push_back(WorkerSpec{mode, key_of(i), handler});
  outcome.results = Race(dir.db(), iterations, lockstep).run(specs);
  {
    const TestDb db(dir.db());  // opened only after every worker has exited
    outcome.history = replay(db, "race_history");
    for (std::size_t i = 0; i < outcome.results.size(); ++i) {
      const auto wins = outcome.results[i].counts.find("wins");
      outcome.wins_of_key[specs[i].key] += wins != outcome.results[i].counts.end() ? wins->second : 0;
    }
    if (schema != Schema::kMigration001) {
      const auto rows = db.run("SELECT concurrency_key, count(*) FROM runs GROUP BY 1");
      EXPECT_EQ(rows.code, SQLITE_OK) << rows.message;
      for (const auto& row : rows.rows) {
        outcome.runs_of_key[row[0].value_or("<NULL>")] = std::stol(row[1].value_or("-1"));
      }
    }
    expect_consistent(db, outcome.results, iterations, outcome.history);
    report(name, outcome.results, outcome.history, std::chrono::steady_clock::now() - begin);
  }
  return outcome;
}

std::string one_key(int) { return ""; }
std::string two_keys(int i) { return i % 2 == 0 ? "even" : "odd"; }

// (a) The naive pattern on migration 001 alone: nothing in the database stops
// a second active run. In lockstep every worker checks (and sees no active
// run), then every worker inserts: each iteration puts all 8 runs active at
// once. Free-running the same workers overlap only by chance (2 cores: the
// window between check and insert is rarely hit), so the forced interleaving
// is what makes this exact.
TEST(Race, NaiveCheckThenInsertOverlaps) {
  const long iterations = 50;
  Outcome out = race("naive, migration 001, lockstep", Schema::kMigration001, "naive",
                           iterations, true, one_key);
  EXPECT_EQ(max_active(out.history, ""), kWorkers);
  EXPECT_EQ(overlaps(out.history, ""), (kWorkers - 1) * iterations);
  expect_totals(out.results, {{"wins", kWorkers * iterations}, {"refusals", 0}, {"unique_errors", 0},
                              {"trigger_errors", 0}, {"busy", 0}});
}

// (b) The same naive workers, same lockstep, on migrations 001 and 002 only:
// the partial unique index refuses the second active run. Every iteration all
// 8 check and see none, all 8 insert, exactly one gets through and 7 get
// SQLITE_CONSTRAINT_UNIQUE: the failed check costs an error, not an overlap.
// The naive workers in lockstep on `schema`, whose guard refuses the 7
// losers of every iteration with `refusal` (counted as such, and never as
// `other`): one run at a time, one per iteration.
void expect_naive_refused(const char* name, Schema schema, const std::string& refusal,
                          const std::string& other) {
  const long iterations = 50;
  Outcome out = race(name, schema, "naive", iterations, true, one_key);
  expect_one_at_a_time(out.history);
  expect_totals(out.results, {{"wins", iterations}, {refusal, (kWorkers - 1) * iterations},
                              {other, 0}, {"refusals", 0}, {"busy", 0}});
  EXPECT_EQ(out.runs_of_key, (std::map<std::string, long>{{"", iterations}}));
}

TEST(Race, NaiveCheckThenInsertWithIndexNeverOverlaps) {
  expect_naive_refused("naive, migration 002, lockstep", Schema::kMigration002, "unique_errors",
                       "trigger_errors");
}

// (b) The same after runs_migrate(): migration 003's BEFORE INSERT trigger,
// which runs inside the INSERT's write transaction, refuses the 7 losers of
// every iteration with SQLITE_CONSTRAINT_TRIGGER before the index is reached.
TEST(Race, NaiveCheckThenInsertWithTriggersNeverOverlaps) {
  expect_naive_refused("naive, migrated, lockstep", Schema::kMigrated, "trigger_errors", "unique_errors");
}

// (b) free-running: whatever interleaving happens, the index never lets two
// runs be active at once. (How many losers hit the index is luck here, a
// handful in thousands of attempts on 2 cores; the lockstep test counts them.)
TEST(Race, NaiveCheckThenInsertWithIndexFreeNeverOverlaps) {
  const long iterations = 1000;
  Outcome out = race("naive, migration 002, free", Schema::kMigration002, "naive", iterations,
                     false, one_key);
  expect_one_at_a_time(out.history);
  EXPECT_EQ(out.runs_of_key, out.wins_of_key);
}

// (c) start_run(): check and insert in one BEGIN IMMEDIATE transaction.
// Free-running: whatever interleaving happens, never two active runs.
TEST(Race, StartRunNeverOverlaps) {
  const long iterations = 1000;
  Outcome out = race("start_run, one key, free", Schema::kMigrated, "extension", iterations,
                           false, one_key);
  expect_one_at_a_time(out.history);
  expect_totals(out.results, {{"unique_errors", 0}, {"trigger_errors", 0}});
  EXPECT_EQ(out.runs_of_key, out.wins_of_key);
}

// (c) in lockstep: every iteration exactly one start_run() wins, seven are
// refused.
TEST(Race, StartRunLockstepOneWinnerPerIteration) {
  const long iterations = 50;
  Outcome out = race("start_run, one key, lockstep", Schema::kMigrated, "extension",
                           iterations, true, one_key);
  expect_one_at_a_time(out.history);
  expect_totals(out.results, {{"wins", iterations}, {"refusals", (kWorkers - 1) * iterations}, {"busy", 0}});
  EXPECT_EQ(out.runs_of_key, (std::map<std::string, long>{{"", iterations}}));
}

// (c) two keys, four workers each: never two runs of a key at once.
TEST(Race, StartRunTwoKeysNeverOverlapPerKey) {
  const long iterations = 1000;
  Outcome out = race("start_run, two keys, free", Schema::kMigrated, "extension", iterations,
                           false, two_keys);
  ASSERT_EQ(out.history.max_active.size(), 2u);
  EXPECT_EQ(max_active(out.history, "even"), 1);
  EXPECT_EQ(max_active(out.history, "odd"), 1);
  EXPECT_TRUE(out.history.overlaps.empty());
  EXPECT_LE(out.history.max_active_all_keys, 2);
  EXPECT_GE(out.wins_of_key["even"], 1);
  EXPECT_GE(out.wins_of_key["odd"], 1);
  EXPECT_EQ(out.runs_of_key, out.wins_of_key);
}

// (c) two keys in lockstep: every iteration one run of each key wins, so both
// keys are active at the same time, and never twice each.
TEST(Race, StartRunTwoKeysLockstepBothActiveAtOnce) {
  const long iterations = 50;
  Outcome out = race("start_run, two keys, lockstep", Schema::kMigrated, "extension",
                           iterations, true, two_keys);
  ASSERT_EQ(out.history.max_active.size(), 2u);
  EXPECT_EQ(max_active(out.history, "even"), 1);
  EXPECT_EQ(max_active(out.history, "odd"), 1);
  EXPECT_TRUE(out.history.overlaps.empty());
  EXPECT_EQ(out.history.max_active_all_keys, 2);
  EXPECT_EQ(out.wins_of_key, (std::map<std::string, long>{{"even", iterations}, {"odd", iterations}}));
  EXPECT_EQ(out.runs_of_key, out.wins_of_key);
  expect_totals(out.results, {{"wins", 2 * iterations}, {"refusals", (kWorkers - 2) * iterations}, {"busy", 0}});
}

// runs_busy_timeout(5000) under saturation: 8 processes on one key start and
// finish runs as fast as they can, far more of them than the 2 cores of CI
// can run at once, so nearly every write meets the lock taken. With the
// extension's handler no call of any worker ends in SQLITE_BUSY: the longest
// wait stays far below the 5 s timeout (docs/performance.md measures it), so
// a count of zero is a bound, not luck. SQLite's own handler under the same
// load lets a waiter lose for seconds; whether one loses for all 5 s is
// luck, so its escapes are reported by the benchmark, not asserted here.
TEST(Race, SaturatedWithRunsBusyTimeoutNoCallIsBusy) {
  const long iterations = 3000;
  Outcome out = race("start_run, one key, free, runs_busy_timeout(5000)", Schema::kMigrated,
                     "extension", iterations, false, one_key, "runs");
  expect_one_at_a_time(out.history);
  expect_totals(out.results, {{"busy", 0}, {"finish_busy", 0}});
  EXPECT_EQ(total(out.results, "wins") + total(out.results, "refusals"), kWorkers * iterations);
  EXPECT_EQ(out.runs_of_key, out.wins_of_key);
}

// runs_migrate() is idempotent and safe when 8 processes call it at once on
// an empty database (WAL, nothing else): its BEGIN IMMEDIATE lets one of them
// apply every migration; the others wait (busy_timeout 5000), find the latest
// version and change nothing. Every worker must return it without any
// error, and the database must hold each migration once. Free-running (right after the start
// barrier) and in lockstep (one more rendezvous right before the call).
// The same inside each worker's own transaction (BEGIN; SELECT runs_migrate();
// COMMIT, as a migration tool calls it): runs_migrate() takes the write lock
// before it reads the schema version, as BEGIN IMMEDIATE does, so the same
// holds.
TEST(Race, MigrateConcurrentlyOnEmptyDatabase) {
  for (const auto& [mode, lockstep] : {std::pair<std::string, bool>{"migrate", false},
                                       {"migrate", true},
                                       {"migrate-in-transaction", false},
                                       {"migrate-in-transaction", true}}) {
    SCOPED_TRACE(mode + (lockstep ? ", lockstep" : ", free"));
    TempDir dir;
    create_database(dir.db(), Schema::kEmpty);
    const std::vector<WorkerSpec> specs(kWorkers, WorkerSpec{mode, ""});
    const std::vector<WorkerResult> results = Race(dir.db(), 1, lockstep).run(specs);
    ASSERT_EQ(results.size(), static_cast<std::size_t>(kWorkers));
    for (std::size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(results[i].exit_code, 0) << "worker " << i;
      EXPECT_EQ(results[i].output, std::string("migrated=") + runs_test::kLatestSchemaVersion + " errors=0\n")
          << "worker " << i;
    }
    const TestDb db(dir.db());  // opened only after every worker has exited
    const auto migrations = db.run("SELECT version, name FROM runs_schema_migrations ORDER BY version");
    ASSERT_EQ(migrations.code, SQLITE_OK) << migrations.message;
    // Each migration once, as a database migrated alone holds them.
    TestDb alone;
    ASSERT_EQ(alone.value("SELECT runs_migrate()"), runs_test::kLatestSchemaVersion);
    const auto expected = alone.run("SELECT version, name FROM runs_schema_migrations ORDER BY version");
    EXPECT_EQ(migrations.rows, expected.rows);
    EXPECT_EQ(count(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'runs'"), 1);
    EXPECT_EQ(count(db, "SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'concurrency_key'"), 1);
    EXPECT_EQ(count(db, "SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'owner_pid'"), 1);
    EXPECT_EQ(count(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'runs'"),
              count(alone, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'runs'"));
    EXPECT_EQ(count(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'runs_one_active'"),
              1);
    EXPECT_EQ(db.value("PRAGMA integrity_check"), "ok");
    std::cout << "[ race     ] " << mode << ", 8 workers, " << (lockstep ? "lockstep" : "free") << ": ok"
              << std::endl;
  }
}

// The naive way inside the caller's transaction: a transaction that has read
// before it migrates holds a read snapshot, and SQLite cannot let it wait for
// the write lock. 8 workers BEGIN and read, all of them before any migrates
// (lockstep), then call runs_migrate(): exactly one applies the migrations;
// each of the seven others is refused with SQLITE_BUSY (the winner holds the
// lock) or SQLITE_BUSY_SNAPSHOT (it has committed since their read), and
// changes nothing. Calling runs_migrate() first in the transaction, as above,
// lets every worker succeed.
TEST(Race, MigrateAfterAReadInTheCallersTransaction) {
  TempDir dir;
  create_database(dir.db(), Schema::kEmpty);
  const std::vector<WorkerSpec> specs(kWorkers, WorkerSpec{"migrate-after-read", ""});
  const std::vector<WorkerResult> results = Race(dir.db(), 1, true).run(specs);
  ASSERT_EQ(results.size(), static_cast<std::size_t>(kWorkers));
  int winners = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const std::string won = std::string("migrated=") + runs_test::kLatestSchemaVersion + " busy=0 errors=0\n";
    if (results[i].output == won) {
      ++winners;
    } else {
      EXPECT_EQ(results[i].output, "migrated=0 busy=1 errors=0\n") << "worker " << i;
    }
  }
  EXPECT_EQ(winners, 1);
  const TestDb db(dir.db());
  EXPECT_EQ(count(db, "SELECT count(*) FROM runs_schema_migrations"), std::stoi(runs_test::kLatestSchemaVersion));
  EXPECT_EQ(db.value("PRAGMA integrity_check"), "ok");
  std::cout << "[ race     ] migrate-after-read, 8 workers, lockstep: " << winners << " applied, "
            << kWorkers - winners << " refused" << std::endl;
}

// ---- killed workers -------------------------------------------------------
//
// churn_worker processes start and finish runs on the default key as fast as
// they can, while the parent kills them with SIGKILL at random moments (right
// after a worker says it started a run, so that the owner of an active run
// dies; or any worker at any moment: inside start_run(), inside a commit,
// between statements) and starts a fresh worker for each one killed. The seed
// is printed; RUNS_KILL_SEED replays one.
//   functions: the extension. The invariant holds throughout, every run a
//              killed worker left active is reclaimed, none is lost.
//   hand:      the same lifecycle by hand, with BEGIN IMMEDIATE: correct
//              while nobody dies, but the run of a killed worker stays
//              active, and every later start is refused: the key is wedged.

struct KillRace {
  std::set<long long> told_started;   // "S id" lines
  std::set<long long> completed;      // "C id" lines
  std::set<long long> owner_killed;   // runs whose worker was killed right after "S id"
  std::set<pid_t> killed;
  long kills = 0;
  long workers = 0;
};

class Churn {
 public:
  Churn(std::string db, std::string mode, long iterations)
      : db_(std::move(db)), mode_(std::move(mode)), iterations_(iterations) {}

  // Runs `parallel` workers at a time; `kill_budget` kills in all. A worker is
  // killed right after its "S" line with probability 1/kill_after_start (the
  // first `forced` such lines always), and a random worker after a "C" line
  // with probability 1/kill_after_complete (0: never).
  KillRace run(int parallel, long kill_budget, int kill_after_start, int kill_after_complete,
               long forced, unsigned seed) {
    std::mt19937 random(seed);
    KillRace out;
    // Belt and braces: a write to a worker that died must fail, not kill us.
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction previous {};
    sigaction(SIGPIPE, &ignore, &previous);
    for (int i = 0; i < parallel; ++i) spawn(out);
    long starts = 0;
    while (!workers_.empty()) {
      std::vector<pollfd> fds;
      for (const Worker& worker : workers_) fds.push_back(pollfd{worker.out, POLLIN, 0});
      // A hang guard, not synchronisation.
      if (poll(fds.data(), fds.size(), kHangGuardMs) <= 0) {
        ADD_FAILURE() << "no worker made progress: killing them";
        for (Worker& worker : workers_) kill_worker(worker, out);
        break;
      }
      for (std::size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        Worker& worker = workers_[i];
        char buffer[4096];
        const ssize_t n = read(worker.out, buffer, sizeof buffer);
        if (n <= 0) {
          finish(worker);
          continue;
        }
        worker.pending.append(buffer, static_cast<std::size_t>(n));
        std::size_t newline;
        while (worker.pid > 0 && (newline = worker.pending.find('\n')) != std::string::npos) {
          const std::string line = worker.pending.substr(0, newline);
          worker.pending.erase(0, newline + 1);
          if (line.rfind("S ", 0) == 0) {
            const long long id = std::stoll(line.substr(2));
            out.told_started.insert(id);
            ++starts;
            const bool kill_now =
                out.kills < kill_budget &&
                (starts <= forced || std::uniform_int_distribution<int>(1, kill_after_start)(random) == 1);
            if (kill_now) {
              out.owner_killed.insert(id);
              kill_worker(worker, out);
            } else if (write(worker.in, "g", 1) != 1) {
              ADD_FAILURE() << "worker " << worker.pid << " does not read";
            }
          } else if (line.rfind("C ", 0) == 0) {
            out.completed.insert(std::stoll(line.substr(2)));
            if (kill_after_complete > 0 && out.kills < kill_budget &&
                std::uniform_int_distribution<int>(1, kill_after_complete)(random) == 1) {
              Worker& victim = workers_[std::uniform_int_distribution<std::size_t>(0, workers_.size() - 1)(random)];
              kill_worker(victim, out);
            }
          } else if (line != "D") {
            ADD_FAILURE() << "worker " << worker.pid << ": " << line;
          }
        }
      }
      // Drop the killed and the finished; a fresh worker for each killed.
      std::erase_if(workers_, [](const Worker& worker) { return worker.pid <= 0; });
      for (; to_spawn_ > 0; --to_spawn_) spawn(out);
    }
    sigaction(SIGPIPE, &previous, nullptr);
    return out;
  }

 private:
  struct Worker {
    pid_t pid;
    int in;   // one byte lets the worker go on after "S id"
    int out;
    std::string pending;
  };

  void spawn(KillRace& out) {
    const runs_test::ChildProcess child = runs_test::spawn_child(
        {CHURN_WORKER_PATH, "--db", db_, "--mode", mode_, "--iterations", std::to_string(iterations_),
         "--extension", RUNS_EXTENSION_PATH});
    if (child.pid <= 0) return;
    ++out.workers;
    workers_.push_back(Worker{child.pid, child.in, child.out, ""});
  }

  // SIGKILL and reap, so that the pid is free (no zombie) at once.
  void kill_worker(Worker& worker, KillRace& out) {
    if (worker.pid <= 0) return;
    kill(worker.pid, SIGKILL);
    waitpid(worker.pid, nullptr, 0);
    out.killed.insert(worker.pid);
    ++out.kills;
    ++to_spawn_;
    close(worker.in);
    close(worker.out);
    worker.pid = -1;
  }

  // End of output: the worker finished; it must have done so cleanly.
  void finish(Worker& worker) {
    int status = 0;
    waitpid(worker.pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "worker " << worker.pid << " ended with status " << status;
    close(worker.in);
    close(worker.out);
    worker.pid = -1;
  }

  std::string db_;
  std::string mode_;
  long iterations_;
  long to_spawn_ = 0;
  std::vector<Worker> workers_;
};

unsigned kill_seed() {
  const char* fixed = std::getenv("RUNS_KILL_SEED");
  const unsigned seed = fixed != nullptr ? static_cast<unsigned>(std::strtoul(fixed, nullptr, 10))
                                         : std::random_device{}();
  std::cout << "[ race     ] kill seed " << seed << " (RUNS_KILL_SEED=" << seed
            << " replays it)" << std::endl;
  ::testing::Test::RecordProperty("kill_seed", std::to_string(seed));
  return seed;
}

TEST(Race, KilledOwnersAreReclaimedAndTheInvariantHolds) {
  const unsigned seed = kill_seed();
  TempDir dir;
  create_database(dir.db(), Schema::kMigrated);
  const KillRace race = Churn(dir.db(), "functions", 60).run(6, 16, 4, 8, 2, seed);
  const TestDb db(dir.db());  // every worker has exited or was killed
  db.exec("PRAGMA busy_timeout = 5000");
  EXPECT_EQ(db.value("PRAGMA integrity_check"), "ok");
  EXPECT_EQ(race.kills, 16);
  EXPECT_GE(race.owner_killed.size(), 2u);

  // The invariant, throughout.
  const Replay history = replay(db, "race_history");
  EXPECT_EQ(max_active(history, ""), 1);
  EXPECT_EQ(overlaps(history, ""), 0);
  EXPECT_TRUE(history.anomalies.empty());

  // None lost: every run a worker was told it started exists; every run it
  // completed is completed.
  for (const long long id : race.told_started) {
    EXPECT_EQ(count(db, "SELECT count(*) FROM runs WHERE id = " + std::to_string(id)), 1) << id;
  }
  for (const long long id : race.completed) {
    EXPECT_EQ(db.value("SELECT status FROM runs WHERE id = " + std::to_string(id)), "completed") << id;
  }

  // Every run still active belongs to a killed worker; reaping takes them all.
  const long long left_active = count(db, "SELECT count(*) FROM runs WHERE status IN ('pending', 'running')");
  EXPECT_EQ(count(db, "SELECT reap_stale_runs()"), left_active);
  EXPECT_EQ(count(db, "SELECT count(*) FROM runs WHERE status IN ('pending', 'running')"), 0);

  // Every run is completed, or failed as abandoned by a killed owner.
  const auto failed = db.run("SELECT id, owner_pid, error_message FROM runs WHERE status <> 'completed'");
  ASSERT_EQ(failed.code, SQLITE_OK) << failed.message;
  for (const auto& row : failed.rows) {
    const pid_t owner = static_cast<pid_t>(std::stol(row[1].value_or("0")));
    EXPECT_EQ(race.killed.count(owner), 1u) << "run " << *row[0] << " of a worker never killed";
    const std::string gone = "abandoned: owner process " + std::to_string(owner) + " on " + host_name() + " is gone";
    const std::string message = row[2].value_or("");
    EXPECT_TRUE(message == gone || message == gone + " (the pid now belongs to another process)")
        << "run " << *row[0] << ": " << message;
  }
  EXPECT_EQ(count(db, "SELECT count(*) FROM runs WHERE status NOT IN ('completed', 'failed')"), 0);
  // Each run whose owner was killed while it was surely active (the worker
  // waited after "S id") was reclaimed, and runs were started after it: the
  // key was never wedged.
  for (const long long id : race.owner_killed) {
    EXPECT_EQ(db.value("SELECT status FROM runs WHERE id = " + std::to_string(id)), "failed") << id;
    EXPECT_GE(count(db, "SELECT count(*) FROM runs WHERE id > " + std::to_string(id)), 1) << id;
  }
  std::cout << "[ race     ] functions, kills: workers=" << race.workers << " kills=" << race.kills
            << " owners_killed=" << race.owner_killed.size() << " runs=" << count(db, "SELECT count(*) FROM runs")
            << " completed=" << race.completed.size()
            << " reclaimed=" << count(db, "SELECT count(*) FROM runs WHERE status = 'failed'") << std::endl;
}

TEST(Race, KilledOwnersWedgeTheHandWrittenPattern) {
  TempDir dir;
  create_database(dir.db(), Schema::kMigrated);
  // One kill, right after the first start.
  const KillRace race = Churn(dir.db(), "hand", 40).run(4, 1, 1, 0, 1, 0);
  ASSERT_EQ(race.owner_killed.size(), 1u);
  const std::string wedged = std::to_string(*race.owner_killed.begin());
  const TestDb db(dir.db());
  db.exec("PRAGMA busy_timeout = 5000");
  EXPECT_EQ(db.value("PRAGMA integrity_check"), "ok");
  // The dead worker's run is still active, and no run was started after it:
  // every later attempt of every worker was refused. Nothing can tell that
  // its owner is gone, so neither can anything reclaim it.
  EXPECT_EQ(db.value("SELECT active_run()"), wedged);
  EXPECT_EQ(db.value("SELECT max(id) FROM runs"), wedged);
  EXPECT_EQ(db.value("SELECT reap_stale_runs()"), "0");
  EXPECT_EQ(db.value("SELECT active_run()"), wedged);
}

}  // namespace
