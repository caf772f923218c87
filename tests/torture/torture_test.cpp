// The kill -9 torture test: many iterations in which torture_worker processes
// (fresh programs, started with posix_spawn: no SQLite connection ever
// crosses a fork) migrate one database file and start, progress, heartbeat,
// complete, fail and cancel runs on it, and are killed with SIGKILL at
// random moments: inside start_run(), inside runs_migrate() (also while it
// migrates an empty or old database for real), inside the other functions,
// and between statements.
//
// How the moment of a kill is chosen (torture_worker.cpp has the details):
//   * pause plans, by counting events: the worker counts, inside the calls
//     of one SQL function, every file write, truncate, sync, open, delete,
//     lock and unlock and shared-memory lock that SQLite makes (a VFS shim),
//     and every 64 VM instructions (a progress handler); at the E-th it
//     announces "K in <call> <event> <n>" and blocks, and the test kills it
//     there. E is drawn up to the number of events such a call makes, as
//     measured at the start of the test (the calibration). Or the worker
//     blocks between its N-th and (N+1)-th call ("K between").
//   * timed plans, by a random short delay, used only as fault injection:
//     the test kills the worker 0 to 1.5 times the calibration worker's run
//     time after spawning it, wherever it is. Which call it was in is known
//     from its last line ("A <call>" announced before each call, "R ..."
//     after it). Nothing waits on time: the delay is only where the kill
//     lands, and a worker that has finished by then is simply not killed.
// Every worker announces on stdout, one write(2) per line, what it was told
// (run ids that start_run() returned, runs completed, failed, cancelled).
//
// After EACH iteration, with every worker finished or killed and reaped:
//   * PRAGMA integrity_check is ok, and the journal mode is the iteration's;
//   * the schema is either exactly the latest (every object, as SQL text,
//     equal to a reference database migrated in one go, and versions 1,2,3)
//     or exactly as it was before the iteration: never half-migrated. When
//     untouched, runs_migrate() then succeeds;
//   * at most one active run per key, now and throughout the history, which
//     triggers record inside the write transactions (tests/support/history*.h);
//     every run's history matches its status;
//   * every run any worker was told it had started exists, every completion,
//     failure or cancel a worker was told of is the run's status, every run
//     marked running was;
//   * every run still active belongs to a worker that was killed, every
//     failed run was failed by its worker or reclaimed from a killed owner
//     with the exact message 'abandoned: owner process <pid> on <host> is
//     gone' (or its '(the pid now belongs to another process)' variant);
//   * for each key, the next start_run() succeeds, reclaiming the killed
//     owner's run with that exact message (sometimes reap_stale_runs() first).
// The iterations alternate WAL and rollback-journal (DELETE) mode; some start
// from an empty database or one at migration 1 or 2 (with finished runs in
// it), where the first worker migrates alone and is usually killed inside
// runs_migrate(); the others continue the previous iteration's database.
//
// Two more tests take every kill moment instead of random ones, each on a
// fresh database, in both journal modes: runs_migrate() on an empty database
// killed at each of its events is left untouched or complete, never between,
// where the same migration applied file by file (each file its own
// transaction, as a migration tool would) is left half-done by some of the
// same kills; and start_run() killed at each of its events while it reclaims
// a killed owner's run commits the reclaim and the new run together or not at
// all.
//
// Randomness is seeded: the seed is printed; RUNS_TORTURE_SEED=<seed> replays
// the same plans (the interleavings of processes differ from run to run);
// RUNS_TORTURE_ITERATIONS=<n> sets the number of iterations (CI: 300, about
// 10 s); RUNS_TORTURE_DIR=<dir> where the databases live (default /dev/shm,
// see database_dir()).
//
// Measured (RelWithDebInfo, g++ 12, SQLite 3.40.1, a 2-core machine shared
// with other jobs, nice 19), 0 failures each:
//   RUNS_TORTURE_SEED=20240601 RUNS_TORTURE_ITERATIONS=30000 (tmpfs): 30,000
//     iterations in 701 s (15,120 rollback journal, 14,880 WAL; 8,324 from a
//     fresh database: 4,124 empty, 2,089 at migration 1, 2,111 at 2),
//     119,322 workers, 79,412 kills: 32,932 paused inside start_run() and
//     1,096 timed kills inside it; 15,452 + 1,885 inside runs_migrate(), 5,496
//     of them while no migration had committed yet; 9,029 + 2,627 between
//     calls; 14,994 + 1,397 inside the other calls. 272,072 runs started, 18,007
//     reclaimed from killed owners; 1,351 iterations ended with every
//     migration killed and the schema untouched, and 2,515 checks right after
//     a kill inside a real migration found it untouched (2,461) or complete
//     (54), never between.
//   RUNS_TORTURE_DIR=/tmp RUNS_TORTURE_SEED=8 RUNS_TORTURE_ITERATIONS=6000
//     (ext4, real fsyncs): 6,000 iterations in 365 s, 23,590 workers, 14,868
//     kills: 6,446 + 95 inside start_run(), 3,055 + 147 inside runs_migrate()
//     (1,059 in a real migration), 1,781 + 125 between calls, 3,020 + 199
//     inside the other calls; 58,367 runs started, 3,563 reclaimed.
//   The sweeps: runs_migrate() killed at each of its 157 (WAL) and 151
//     (rollback journal) events, never half-done; file by file, 95 of 179
//     and 110 of 191 kills left it half-done; start_run() killed at each of
//     its 37 and 56 events while reclaiming: all or nothing.
// Each line "[ torture  ] iterations=..." of a run gives these figures.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "child_process.h"
#include "history.h"
#include "system.h"
#include "temp_dir.h"
#include "test_db.h"

namespace {

using runs_test::ChildProcess;
using runs_test::host_name;
using runs_test::read_text;
using runs_test::TempDir;
using runs_test::TestDb;
using Clock = std::chrono::steady_clock;

constexpr const char* kHistory = "torture_history";
constexpr long kDefaultIterations = 300;
constexpr int kKeys = 2;                     // the workers' keys: 'a', 'b'
constexpr int kMaxWorkersPerIteration = 6;  // first workers and replacements of killed ones
// A guard against a hung worker, not a timing assertion: no line from any
// worker for this long kills them all and fails the test.
constexpr int kHangGuardMs = 120'000;

// The functions a pause plan may target.
const std::vector<std::string> kOtherCalls = {"mark_run_running", "update_run_progress", "heartbeat_run",
                                              "complete_run",     "fail_run",            "cancel_run",
                                              "reap_stale_runs"};

unsigned long long env_number(const char* name, unsigned long long otherwise) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::strtoull(value, nullptr, 10) : otherwise;
}

// Every schema object but the history's, as SQL text: equal schemas are
// equal strings.
std::string schema_of(const TestDb& db) {
  return db
      .value("SELECT coalesce(group_concat(type || ' ' || name || ' ' || tbl_name || ' ' || coalesce(sql, ''),"
             " char(10)), '') FROM (SELECT * FROM sqlite_schema WHERE name NOT LIKE 'torture%' ORDER BY name)")
      .value_or("<NULL>");
}

std::string versions_of(const TestDb& db) {
  if (db.value("SELECT count(*) FROM sqlite_schema WHERE name = 'runs_schema_migrations'") == "0") return "";
  return db.value("SELECT coalesce(group_concat(version), '') FROM"
                  " (SELECT version FROM runs_schema_migrations ORDER BY version)")
      .value_or("<NULL>");
}

long long number(const std::optional<std::string>& text) {
  return text ? std::strtoll(text->c_str(), nullptr, 10) : LLONG_MIN;
}

bool is_number(const std::string& text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Where the databases live: $RUNS_TORTURE_DIR, else /dev/shm (tmpfs) when it
// is a writable directory, else $TMPDIR. A SIGKILL loses nothing that the
// process has handed to the kernel (a write(2) is in the page cache whatever
// the file system), so tmpfs tests the same as a disk, without the cost of
// fsync (about 15 ms a commit on this machine's ext4, 40 times slower
// overall); RUNS_TORTURE_DIR=/tmp runs the same on disk.
std::string database_dir() { return runs_test::fast_database_dir("RUNS_TORTURE_DIR"); }

enum class Start { kContinue, kEmpty, kVersion1, kVersion2 };

const char* name_of(Start start) {
  switch (start) {
    case Start::kContinue: return "continued";
    case Start::kEmpty: return "empty";
    case Start::kVersion1: return "migration 1";
    case Start::kVersion2: return "migration 2";
  }
  return "?";
}

// What a worker's calls cost in events, per journal mode (the calibration).
struct Calibration {
  std::map<std::string, long> events;  // per call: the most events one call made
  long real_migrate = 0;               // runs_migrate() on an empty database
  long noop_migrate = 0;               // runs_migrate() on a migrated one
  long worker_micros = 0;              // how long a worker ran, spawn to exit
};

struct Figures {
  long iterations = 0;
  std::map<std::string, long> starts;         // iterations per start state
  std::map<std::string, long> journal_modes;  // iterations per journal mode
  long workers = 0;
  long finished = 0;  // workers that ran to the end
  long kills = 0;
  std::map<std::string, long> kills_in;          // paused inside a call, per call
  std::map<std::string, long> kill_events;       // paused at which event
  long kills_in_real_migration = 0;              // inside runs_migrate() while no migration had committed
  long kills_between = 0;                        // paused between calls
  std::map<std::string, long> timed_kills_in;    // timed, inside a call, per call
  long timed_kills_between = 0;                  // timed, between calls (or before the first)
  long plans_missed = 0;                         // workers that finished before their planned kill
  long migrated_by_workers = 0;                  // iterations that migrated an old/empty database
  long untouched_after_kill = 0;                 // iterations whose migration was all killed
  long migration_kills_untouched = 0;  // checked at once after a kill inside a real migration: untouched
  long migration_kills_latest = 0;     // the same, but it had committed (a kill after its commit)
  long runs = 0;                                 // runs workers were told they started
  long refused = 0, busy = 0, cancel_requests = 0, worker_reaps = 0;
  long reclaimed_by_check = 0, reaped_by_check = 0, pid_reused = 0, abandoned = 0;
};

std::string counts_text(const std::map<std::string, long>& counts) {
  std::string text;
  for (const auto& [name, n] : counts) text += (text.empty() ? "" : ",") + name + "=" + std::to_string(n);
  return text.empty() ? "-" : text;
}

// One line of figures, printed at the end (and every 1000 iterations).
std::string figures_text(const Figures& f, long long seconds) {
  std::ostringstream line;
  line << "iterations=" << f.iterations << " (" << counts_text(f.starts) << "; " << counts_text(f.journal_modes)
       << ") workers=" << f.workers << " finished=" << f.finished << " kills=" << f.kills
       << " paused_in=" << counts_text(f.kills_in) << " at=" << counts_text(f.kill_events)
       << " in_real_migration=" << f.kills_in_real_migration << " between=" << f.kills_between
       << " timed_in=" << counts_text(f.timed_kills_in) << " timed_between=" << f.timed_kills_between
       << " plans_missed=" << f.plans_missed << " migrated_by_workers=" << f.migrated_by_workers
       << " untouched_after_kill=" << f.untouched_after_kill << " checked_at_once_after_migration_kill=untouched:"
       << f.migration_kills_untouched << ",latest:" << f.migration_kills_latest << " runs=" << f.runs
       << " refused=" << f.refused << " busy=" << f.busy << " cancel_requests=" << f.cancel_requests << " worker_reaps=" << f.worker_reaps
       << " reclaimed_by_check=" << f.reclaimed_by_check << " reaped_by_check=" << f.reaped_by_check
       << " abandoned=" << f.abandoned << " pid_reused=" << f.pid_reused << " in " << seconds << " s";
  return line.str();
}

class Torture {
 public:
  Torture(unsigned long long seed, long iterations) : seed_(seed), iterations_(iterations) {}

  const Figures& figures() const { return figures_; }

  void calibrate() {
    for (const std::string mode : {"wal", "delete"}) {
      TempDir dir(database_dir());
      {
        const TestDb db(dir.db());
        ASSERT_EQ(db.value("PRAGMA journal_mode = " + mode), mode);
      }
      Calibration& calibration = calibration_[mode];
      for (int worker = 0; worker < 2; ++worker) {
        const auto begin = Clock::now();
        const ChildProcess child = runs_test::spawn_child(worker_args(dir.db(), "calibration", 1000 + worker, 60, "full", ""));
        ASSERT_GT(child.pid, 0);
        close(child.in);
        std::string text;
        char buffer[4096];
        ssize_t n = 1;
        pollfd fd{child.out, POLLIN, 0};
        // A hang guard, not synchronisation.
        while (n > 0 && poll(&fd, 1, kHangGuardMs) == 1 && (n = read(child.out, buffer, sizeof buffer)) > 0) {
          text.append(buffer, static_cast<std::size_t>(n));
        }
        if (n != 0) kill(child.pid, SIGKILL);
        close(child.out);
        int status = 0;
        waitpid(child.pid, &status, 0);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << text;
        calibration.worker_micros = std::max<long>(
            calibration.worker_micros,
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - begin).count());
        std::istringstream lines(text);
        std::string line;
        bool first_migrate = true;
        while (std::getline(lines, line)) {
          std::istringstream words(line);
          std::string tag, call, run, outcome;
          long events = 0;
          if (!(words >> tag >> call >> run >> outcome >> events) || tag != "R") continue;
          if (call == "runs_migrate") {
            long& slot = worker == 0 && first_migrate ? calibration.real_migrate : calibration.noop_migrate;
            slot = std::max(slot, events);
            first_migrate = false;
            continue;
          }
          calibration.events[call] = std::max(calibration.events[call], events);
        }
      }
      // Sanity: the counting works, and a real migration does more than a
      // migration that finds nothing to do.
      EXPECT_GT(calibration.noop_migrate, 0) << mode;
      EXPECT_GT(calibration.real_migrate, calibration.noop_migrate) << mode;
      EXPECT_GT(calibration.events["start_run"], 0) << mode;
      std::cout << "[ torture  ] calibration, " << mode << ": events per call: runs_migrate real="
                << calibration.real_migrate << " no-op=" << calibration.noop_migrate << " "
                << counts_text(calibration.events) << "; a worker of 60 calls ran " << calibration.worker_micros
                << " us" << std::endl;
    }
  }

  void run() {
    TempDir dir(database_dir());
    path_ = dir.db();
    {
      const TestDb reference;  // in memory, migrated in one go
      EXPECT_EQ(reference.value("SELECT runs_migrate()"), runs_test::kLatestSchemaVersion);
      latest_schema_ = schema_of(reference);
      latest_versions_ = versions_of(reference);
    }
    const auto begin = Clock::now();
    long generation_age = 0;
    for (long i = 0; i < iterations_ && !::testing::Test::HasFailure(); ++i) {
      SCOPED_TRACE("seed " + std::to_string(seed_) + ", iteration " + std::to_string(i));
      std::seed_seq sequence{static_cast<unsigned>(seed_), static_cast<unsigned>(seed_ >> 32),
                             static_cast<unsigned>(i)};
      random_.seed(sequence);
      Start start = Start::kContinue;
      if (i == 0 || generation_age >= 8 || below(4) == 0) {
        const long dice = below(4);
        start = dice < 2 ? Start::kEmpty : dice == 2 ? Start::kVersion1 : Start::kVersion2;
        mode_ = below(2) == 0 ? "wal" : "delete";
        create(start);
        generation_age = 0;
      } else if (below(4) == 0) {
        switch_mode();
      }
      ++generation_age;
      iteration(start);
      check();
      ++figures_.iterations;
      ++figures_.starts[name_of(start)];
      ++figures_.journal_modes[mode_];
      if (figures_.iterations % 1000 == 0) {
        const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - begin).count();
        std::cout << "[ torture  ] " << figures_text(figures_, seconds) << std::endl;
      }
    }
    remove_files();
  }

 private:
  struct Worker {
    ChildProcess child;
    std::string name;
    std::string plan;                         // for messages
    std::optional<Clock::time_point> deadline;  // a timed plan
    std::string buffer;                       // a partial line
    std::string in_call;                      // announced and not returned; "" between calls
    bool done = false;                        // its D line was read
    bool ended = false;                       // reaped
  };

  long below(long n) { return std::uniform_int_distribution<long>(0, n - 1)(random_); }

  std::vector<std::string> worker_args(const std::string& db, const std::string& name, unsigned long long seed,
                                       long ops, const std::string& synchronous, const std::string& plan) {
    std::vector<std::string> args = {TORTURE_WORKER_PATH, "--db", db, "--extension", RUNS_EXTENSION_PATH,
                                     "--seed", std::to_string(seed), "--ops", std::to_string(ops),
                                     "--name", name, "--keys", std::to_string(kKeys),
                                     "--synchronous", synchronous};
    if (!plan.empty()) {
      std::istringstream words(plan);
      std::string flag, value;
      words >> flag >> value;
      args.push_back(flag);
      args.push_back(value);
    }
    return args;
  }

  void remove_files() {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) unlink((path_ + suffix).c_str());
  }

  // A new database: empty, or at migration 1 or 2 with two finished runs.
  void create(Start start) {
    remove_files();
    spawned_.clear();
    killed_.clear();
    told_started_.clear();
    acked_.clear();
    marked_.clear();
    abandoned_ids_.clear();
    const TestDb db(path_);
    EXPECT_EQ(db.value("PRAGMA journal_mode = " + mode_), mode_);
    if (start != Start::kEmpty) {
      db.exec(read_text(RUNS_SOURCE_DIR "/sql/001_create_runs.sql"));
      if (start == Start::kVersion2) db.exec(read_text(RUNS_SOURCE_DIR "/sql/002_one_active_run.sql"));
      for (int run = 0; run < 2; ++run) {
        db.exec(
            "INSERT INTO runs (scope, status, triggered_by, created_at, started_at, finished_at)"
            " VALUES ('before', 'completed', 'setup', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),"
            " strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))");
      }
    }
    preexisting_runs_ = start == Start::kEmpty ? 0 : 2;
  }

  void switch_mode() {
    mode_ = mode_ == "wal" ? "delete" : "wal";
    const TestDb db(path_);
    db.exec("PRAGMA busy_timeout = 10000");
    EXPECT_EQ(db.value("PRAGMA journal_mode = " + mode_), mode_);
  }

  // A plan for a new worker: where it is to be killed.
  std::string plan(bool first_of_unmigrated) {
    const Calibration& calibration = calibration_[mode_];
    auto up_to = [&](long n) { return std::to_string(1 + below(std::max<long>(n, 1))); };
    const bool unmigrated = start_ != Start::kContinue && !migrated_seen_;
    if (first_of_unmigrated) {
      if (below(4) < 3) return "--pause runs_migrate:" + up_to(calibration.real_migrate);
      return below(2) == 0 ? "" : "--timed " + std::to_string(below(calibration.worker_micros * 3 / 2));
    }
    const long dice = below(20);
    if (dice < 6) {
      auto it = calibration.events.find("start_run");
      return "--pause start_run:" + up_to(2 * (it == calibration.events.end() ? 20 : it->second));
    }
    if (dice < 8) {
      return "--pause runs_migrate:" + up_to(unmigrated ? calibration.real_migrate : calibration.noop_migrate);
    }
    if (dice < 12) {
      const std::string& call = kOtherCalls[static_cast<std::size_t>(below(static_cast<long>(kOtherCalls.size())))];
      auto it = calibration.events.find(call);
      return "--pause " + call + ":" + up_to(2 * (it == calibration.events.end() ? 20 : it->second));
    }
    if (dice < 14) return "--between " + up_to(30);
    if (dice < 16) return "--timed " + std::to_string(below(calibration.worker_micros * 3 / 2));
    return "";
  }

  void spawn(bool first_of_unmigrated) {
    const std::string name = "w" + std::to_string(figures_.workers);
    const std::string the_plan = plan(first_of_unmigrated);
    const long ops = 10 + below(31);
    const long sync_dice = below(4);
    const std::string synchronous = sync_dice == 0 ? "off" : sync_dice == 1 ? "normal" : "full";
    Worker worker;
    worker.name = name;
    worker.plan = the_plan.empty() ? "none" : the_plan;
    std::string worker_plan = the_plan;
    if (the_plan.rfind("--timed ", 0) == 0) {
      worker.deadline = Clock::now() + std::chrono::microseconds(std::stol(the_plan.substr(8)));
      worker_plan.clear();
    }
    worker.child = runs_test::spawn_child(worker_args(path_, name, random_(), ops, synchronous, worker_plan));
    ++figures_.workers;
    ++spawned_this_iteration_;
    if (worker.child.pid <= 0) return;
    spawned_.insert(worker.child.pid);
    workers_.push_back(std::move(worker));
  }

  // Spawning happens only here and in the main loop, never while a worker
  // of workers_ is being handled (a spawn may move them).
  void spawn_deferred() {
    for (; deferred_ > 0; --deferred_) spawn(false);
    release_deferred_ = false;
  }

  // One iteration: spawn, read, kill, until every worker is gone.
  void iteration(Start start) {
    start_ = start;
    migrated_seen_ = false;
    spawned_this_iteration_ = 0;
    release_deferred_ = false;
    first_migrator_ = -1;
    {
      const TestDb db(path_);
      db.exec("PRAGMA busy_timeout = 10000");
      before_schema_ = schema_of(db);
      before_versions_ = versions_of(db);
    }
    const long workers = 2 + below(3);
    alone_ = false;
    if (before_schema_ != latest_schema_) {
      // The first worker migrates alone, so that a kill inside its
      // runs_migrate() lands inside the real migration. Sometimes it stays
      // alone: killed, it leaves the migration to the check.
      spawn(true);
      first_migrator_ = workers_.empty() ? -1 : workers_.back().child.pid;
      alone_ = below(4) == 0;
      deferred_ = alone_ ? 0 : workers - 1;
    } else {
      deferred_ = 0;
      for (long w = 0; w < workers; ++w) spawn(false);
    }
    while (!workers_.empty() && !::testing::Test::HasFailure()) {
      std::vector<pollfd> fds;
      const std::chrono::nanoseconds guard = std::chrono::milliseconds(kHangGuardMs);
      std::chrono::nanoseconds timeout = guard;
      const auto now = Clock::now();
      for (const Worker& worker : workers_) {
        fds.push_back(pollfd{worker.child.out, POLLIN, 0});
        if (worker.deadline) {
          timeout = std::min(timeout, std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::max(*worker.deadline - now, Clock::duration::zero())));
        }
      }
      const timespec limit{static_cast<time_t>(timeout.count() / 1'000'000'000),
                           static_cast<long>(timeout.count() % 1'000'000'000)};
      const int ready = ppoll(fds.data(), fds.size(), &limit, nullptr);
      if (ready < 0 && errno == EINTR) continue;
      const bool hung = ready == 0 && timeout == guard;
      if (hung) {
        ADD_FAILURE() << "no worker said anything for " << kHangGuardMs << " ms: killing them";
        for (Worker& worker : workers_) kill_worker(worker, "hang");
        break;
      }
      for (std::size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].revents != 0 && !workers_[i].ended) read_from(workers_[i]);
      }
      const auto after = Clock::now();
      for (Worker& worker : workers_) {
        if (!worker.ended && worker.deadline && *worker.deadline <= after) kill_worker(worker, "timed");
      }
      // Replacements of killed workers, and the deferred ones.
      std::vector<Worker> alive;
      for (Worker& worker : workers_) {
        if (!worker.ended) alive.push_back(std::move(worker));
      }
      workers_ = std::move(alive);
      for (; replacements_ > 0; --replacements_) spawn(false);
      if (release_deferred_ || workers_.empty()) spawn_deferred();
    }
    for (Worker& worker : workers_) kill_worker(worker, "cleanup");
    workers_.clear();
  }

  void read_from(Worker& worker) {
    char buffer[4096];
    const ssize_t n = read(worker.child.out, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) return;
    if (n > 0) {
      worker.buffer.append(buffer, static_cast<std::size_t>(n));
      std::size_t newline;
      while (!worker.ended && (newline = worker.buffer.find('\n')) != std::string::npos) {
        const std::string line = worker.buffer.substr(0, newline);
        worker.buffer.erase(0, newline + 1);
        if (line.rfind("K ", 0) == 0) {
          paused(line);
          kill_worker(worker, "pause");
        } else {
          handle(worker, line);
        }
      }
      return;
    }
    // End of output: the worker exited on its own; it must have finished.
    int status = 0;
    waitpid(worker.child.pid, &status, 0);
    EXPECT_TRUE(worker.done && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << worker.name << " (pid " << worker.child.pid << ", plan " << worker.plan << ") ended with status "
        << status << (worker.done ? "" : " before its last line");
    ++figures_.finished;
    if (worker.plan != "none") ++figures_.plans_missed;
    close_pipes(worker);
    release_deferred_ = true;
  }

  static void close_pipes(Worker& worker) {
    close(worker.child.in);
    close(worker.child.out);
    worker.ended = true;
  }

  // A line other than K.
  void handle(Worker& worker, const std::string& line) {
    std::istringstream words(line);
    std::string tag;
    words >> tag;
    if (tag == "A") {
      words >> worker.in_call;
      return;
    }
    if (tag == "D") {
      worker.done = true;
      return;
    }
    if (tag != "R") {
      ADD_FAILURE() << worker.name << " (plan " << worker.plan << "): " << line;
      return;
    }
    worker.in_call.clear();
    std::string call, run, outcome;
    words >> call >> run >> outcome;
    if (outcome == "busy") {
      ++figures_.busy;
      return;
    }
    if (call == "start_run") {
      if (outcome == "refused") {
        ++figures_.refused;
      } else {
        EXPECT_TRUE(is_number(outcome)) << worker.name << ": " << line;
        told_started_.insert(std::stoll(outcome));
        ++figures_.runs;
      }
    } else if (call == "runs_migrate") {
      EXPECT_EQ(outcome, runs_test::kLatestSchemaVersion) << worker.name << ": " << line;
      migrated_seen_ = true;
      release_deferred_ = true;
    } else if (call == "mark_run_running" && outcome == "updated") {
      marked_.insert(std::stoll(run));
    } else if (call == "complete_run" && outcome == "updated") {
      acked_[std::stoll(run)] = "completed";
    } else if (call == "fail_run" && outcome == "updated") {
      acked_[std::stoll(run)] = "failed";
    } else if (call == "cancel_run" && outcome == "updated") {
      acked_[std::stoll(run)] = "cancelled";
    } else if (call == "cancel_run" && outcome == "cancel_requested") {
      ++figures_.cancel_requests;
    } else if (call == "reap_stale_runs") {
      figures_.worker_reaps += std::stol(outcome);
    }
  }

  // "K in <call> <event> <n>" or "K between <call> <call>".
  void paused(const std::string& line) {
    std::istringstream words(line);
    std::string tag, where, call, event;
    words >> tag >> where >> call >> event;
    if (where == "in") {
      ++figures_.kills_in[call];
      ++figures_.kill_events[event];
      if (call == "runs_migrate" && start_ != Start::kContinue && !migrated_seen_) {
        ++figures_.kills_in_real_migration;
      }
    } else {
      ++figures_.kills_between;
    }
  }

  // SIGKILL, reap, and read what the worker said before it died: lines it
  // wrote before the kill count (a run it was told it started must exist).
  void kill_worker(Worker& worker, const char* why) {
    if (worker.ended) return;
    kill(worker.child.pid, SIGKILL);
    int status = 0;
    waitpid(worker.child.pid, &status, 0);
    std::string rest;
    char buffer[4096];
    ssize_t n;
    while ((n = read(worker.child.out, buffer, sizeof buffer)) > 0) rest.append(buffer, static_cast<std::size_t>(n));
    worker.buffer += rest;
    std::size_t newline;
    while ((newline = worker.buffer.find('\n')) != std::string::npos) {
      const std::string line = worker.buffer.substr(0, newline);
      worker.buffer.erase(0, newline + 1);
      EXPECT_NE(line.rfind("K ", 0), 0u) << worker.name << " paused after being killed: " << line;
      handle(worker, line);
    }
    close_pipes(worker);
    if (WIFEXITED(status)) {
      // A timed kill that came after the worker's end.
      EXPECT_TRUE(worker.done && WEXITSTATUS(status) == 0) << worker.name << " ended with status " << status;
      ++figures_.finished;
      release_deferred_ = true;
      return;
    }
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << worker.name << ": status " << status;
    if (std::string(why) == "timed") {
      if (worker.in_call.empty()) {
        ++figures_.timed_kills_between;
      } else {
        ++figures_.timed_kills_in[worker.in_call];
        if (worker.in_call == "runs_migrate" && start_ != Start::kContinue && !migrated_seen_) {
          ++figures_.kills_in_real_migration;
        }
      }
    }
    ++figures_.kills;
    killed_.insert(worker.child.pid);
    release_deferred_ = true;
    // The first migrator killed inside its first runs_migrate(), before any
    // other worker started (they wait for its migration; a check while one
    // runs could wait on its locks).
    const bool others = std::any_of(workers_.begin(), workers_.end(),
                                    [&](const Worker& other) { return !other.ended && &other != &worker; });
    if (worker.child.pid == first_migrator_ && worker.in_call == "runs_migrate" && !migrated_seen_ && !others &&
        below(2) == 0) {
      check_schema_after_kill();
    }
    if (!alone_ && spawned_this_iteration_ + replacements_ < kMaxWorkersPerIteration && below(2) == 0) {
      ++replacements_;
    }
  }

  // Right after the first migrator was killed inside runs_migrate(), while no
  // other worker runs: the schema is the latest or untouched, never between.
  // (Done for half of these kills only: this connection then recovers the
  // database, which otherwise the next worker does.)
  void check_schema_after_kill() {
    const TestDb db(path_);
    db.exec("PRAGMA busy_timeout = 10000");
    EXPECT_EQ(db.value("PRAGMA integrity_check"), "ok");
    const std::string schema = schema_of(db);
    EXPECT_TRUE(schema == latest_schema_ || schema == before_schema_) << "half-migrated:\n" << schema;
    EXPECT_EQ(versions_of(db), schema == latest_schema_ ? latest_versions_ : before_versions_);
    ++(schema == latest_schema_ ? figures_.migration_kills_latest : figures_.migration_kills_untouched);
  }

  std::string abandoned(long long pid) const {
    return "abandoned: owner process " + std::to_string(pid) + " on " + host_ + " is gone";
  }

  void check() {
    const TestDb db(path_);
    db.exec("PRAGMA busy_timeout = 10000");
    EXPECT_EQ(db.value("PRAGMA integrity_check"), "ok");
    EXPECT_EQ(db.value("PRAGMA journal_mode"), mode_);

    // The schema: the latest, or untouched.
    const std::string schema = schema_of(db);
    const bool latest = schema == latest_schema_;
    EXPECT_TRUE(latest || schema == before_schema_) << "half-migrated:\n" << schema;
    EXPECT_EQ(versions_of(db), latest ? latest_versions_ : before_versions_);
    if (!latest) {
      ++figures_.untouched_after_kill;
      EXPECT_FALSE(migrated_seen_) << "a worker was told the database is migrated";
      EXPECT_TRUE(told_started_.empty());
      EXPECT_EQ(db.value("SELECT runs_migrate()"), runs_test::kLatestSchemaVersion);
      EXPECT_EQ(schema_of(db), latest_schema_);
    } else if (before_schema_ != latest_schema_) {
      ++figures_.migrated_by_workers;
    }
    if (db.value("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'torture_history%'") != "3") {
      // No worker got as far as installing the history, so none started a run.
      EXPECT_EQ(db.value("SELECT count(*) FROM runs"), std::to_string(preexisting_runs_));
      db.exec(runs_test::history_sql(kHistory, "new.concurrency_key"));
    }

    // The invariant: now, and over the whole history.
    EXPECT_EQ(db.value("SELECT count(*) FROM (SELECT concurrency_key FROM runs"
                       " WHERE status IN ('pending', 'running') GROUP BY 1 HAVING count(*) > 1)"),
              "0");
    const runs_test::Replay history = runs_test::replay(db, kHistory);
    for (const auto& [key, max] : history.max_active) EXPECT_LE(max, 1) << "key '" << key << "'";
    EXPECT_TRUE(history.overlaps.empty());
    EXPECT_TRUE(history.anomalies.empty()) << history.anomalies.front();
    const auto runs = db.run("SELECT id, status FROM runs WHERE id > " + std::to_string(preexisting_runs_));
    for (const auto& row : runs.rows) {
      const long long id = number(row[0]);
      const bool active = row[1] == "pending" || row[1] == "running";
      const auto events = history.events_of_run.find(id);
      EXPECT_EQ(events == history.events_of_run.end() ? "" : events->second, active ? "A" : "AI")
          << "run " << id << " (" << row[1].value_or("NULL") << ")";
    }

    // Nothing a worker was told is lost.
    for (const long long id : told_started_) {
      EXPECT_EQ(db.value("SELECT count(*) FROM runs WHERE id = " + std::to_string(id)), "1") << "run " << id;
    }
    for (const auto& [id, status] : acked_) {
      EXPECT_EQ(db.value("SELECT status FROM runs WHERE id = " + std::to_string(id)), status) << "run " << id;
    }
    for (const long long id : marked_) {
      EXPECT_EQ(db.value("SELECT status <> 'pending' AND started_at IS NOT NULL FROM runs WHERE id = " +
                         std::to_string(id)),
                "1")
          << "run " << id;
    }

    // Whose runs: every owner was a worker or this test; what is still active
    // belongs to a killed worker; every failure is a worker's own or an exact
    // reclaim of a killed owner's run.
    const auto owners = db.run("SELECT DISTINCT owner_pid FROM runs WHERE owner_pid IS NOT NULL");
    for (const auto& row : owners.rows) {
      const pid_t pid = static_cast<pid_t>(number(row[0]));
      EXPECT_TRUE(spawned_.count(pid) == 1 || pid == getpid()) << "owner " << pid;
    }
    const auto active = db.run("SELECT id, owner_pid FROM runs WHERE status IN ('pending', 'running')");
    for (const auto& row : active.rows) {
      EXPECT_EQ(killed_.count(static_cast<pid_t>(number(row[1]))), 1u)
          << "run " << *row[0] << " of a worker that was not killed is still active";
    }
    const auto failed = db.run("SELECT id, triggered_by, owner_pid, owner_host, error_message FROM runs"
                               " WHERE status = 'failed' AND id > " + std::to_string(preexisting_runs_));
    for (const auto& row : failed.rows) {
      const std::string message = row[4].value_or("NULL");
      if (message == "torture: " + row[1].value_or("NULL") + " gave up") continue;
      const long long pid = number(row[2]);
      EXPECT_TRUE(message == abandoned(pid) || message == abandoned(pid) + " (the pid now belongs to another process)")
          << "run " << *row[0] << ": " << message;
      EXPECT_EQ(killed_.count(static_cast<pid_t>(pid)), 1u) << "run " << *row[0] << ": " << message;
      EXPECT_EQ(row[3], host_);
      if (abandoned_ids_.insert(number(row[0])).second) ++figures_.abandoned;
    }

    // The next start_run() of each key succeeds, reclaiming a killed owner's
    // run with the exact message.
    const long first_key = below(kKeys);
    for (int k = 0; k < kKeys; ++k) {
      const std::string key(1, static_cast<char>('a' + (k + first_key) % kKeys));
      const auto held = db.run("SELECT id, owner_pid FROM runs WHERE concurrency_key = '" + key +
                               "' AND status IN ('pending', 'running')");
      ASSERT_EQ(held.code, SQLITE_OK) << held.message;
      if (below(3) == 0) {
        EXPECT_EQ(db.value("SELECT reap_stale_runs('" + key + "')"), std::to_string(held.rows.size()));
        figures_.reaped_by_check += static_cast<long>(held.rows.size());
      } else {
        figures_.reclaimed_by_check += static_cast<long>(held.rows.size());
      }
      const auto started = db.run("SELECT start_run('check', 'torture', '" + key + "')");
      EXPECT_EQ(started.code, SQLITE_OK) << "key '" << key << "': " << started.message;
      if (started.code != SQLITE_OK || started.rows.size() != 1) continue;
      const std::string id = started.rows[0][0].value_or("NULL");
      for (const auto& row : held.rows) {
        const std::string message =
            db.value("SELECT status || ' ' || error_message FROM runs WHERE id = " + *row[0]).value_or("NULL");
        const std::string gone = "failed " + abandoned(number(row[1]));
        EXPECT_TRUE(message == gone || message == gone + " (the pid now belongs to another process)")
            << "run " << *row[0] << ": " << message;
        if (message != gone) ++figures_.pid_reused;
      }
      EXPECT_EQ(db.value("SELECT cancel_run(" + id + ")"), "updated");
    }
    EXPECT_EQ(db.value("SELECT count(*) FROM runs WHERE status IN ('pending', 'running')"), "0");
    EXPECT_NE(sqlite3_get_autocommit(db.get()), 0);
  }

  unsigned long long seed_;
  long iterations_;
  std::mt19937_64 random_;
  std::map<std::string, Calibration> calibration_;
  std::string path_;
  std::string host_ = host_name();
  std::string latest_schema_, latest_versions_;
  Figures figures_;

  // The database (a generation: from creation until the next one).
  std::string mode_ = "wal";
  long preexisting_runs_ = 0;
  std::set<pid_t> spawned_, killed_;
  std::set<long long> abandoned_ids_;  // runs failed as abandoned, counted once
  std::set<long long> told_started_, marked_;
  std::map<long long, std::string> acked_;

  // The iteration.
  Start start_ = Start::kContinue;
  std::string before_schema_, before_versions_;
  bool migrated_seen_ = false;
  long deferred_ = 0, replacements_ = 0, spawned_this_iteration_ = 0;
  bool release_deferred_ = false;
  bool alone_ = false;          // the first migrator has no company this iteration
  pid_t first_migrator_ = -1;  // the worker that migrates alone first
  std::vector<Worker> workers_;
};

TEST(Torture, KillNineAtRandomMoments) {
  const unsigned long long seed = env_number("RUNS_TORTURE_SEED", std::random_device{}());
  const long iterations = static_cast<long>(env_number("RUNS_TORTURE_ITERATIONS", kDefaultIterations));
  std::cout << "[ torture  ] databases in " << (database_dir().empty() ? "$TMPDIR" : database_dir()) << std::endl;
  std::cout << "[ torture  ] seed " << seed << " (RUNS_TORTURE_SEED=" << seed << " replays it), " << iterations
            << " iterations (RUNS_TORTURE_ITERATIONS)" << std::endl;
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  // A write to a worker that died must fail, not kill the test.
  signal(SIGPIPE, SIG_IGN);
  const auto begin = Clock::now();
  Torture torture(seed, iterations);
  torture.calibrate();
  ASSERT_FALSE(::testing::Test::HasFailure());
  torture.run();
  const Figures& f = torture.figures();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - begin).count();
  const std::string line = figures_text(f, seconds);
  std::cout << "[ torture  ] " << line << std::endl;
  ::testing::Test::RecordProperty("figures", line);
  if (::testing::Test::HasFailure()) {
    std::cout << "[ torture  ] replay: RUNS_TORTURE_SEED=" << seed << " RUNS_TORTURE_ITERATIONS=" << iterations
              << " " << TORTURE_TEST_PATH << " --gtest_filter=Torture.*" << std::endl;
  }
  EXPECT_EQ(f.iterations, iterations);
  // The kills happened where they were meant to (enough iterations make
  // each of these all but certain; fewer are for trying things out).
  if (iterations >= 40) {
    EXPECT_GE(f.kills_in.count("start_run") ? f.kills_in.at("start_run") : 0, 1);
    EXPECT_GE(f.kills_in_real_migration, 1);
    EXPECT_GE(f.kills_between, 1);
    EXPECT_GE(f.kills, iterations);
  }
}

// ---- every event, exhaustively ---------------------------------------------
//
// The random iterations above pick kill moments; these sweeps take every
// one: a fresh database per event E, a worker paused at the E-th event of
// the call and killed there, for E = 1, 2, ... until the call finishes
// before reaching E. Both journal modes.

// Runs a torture_worker until it pauses ("K ..."; then it is killed there)
// or prints a line that starts with `finished` (then it is killed too, having
// not reached its pause). The K line, or "" when it finished first.
std::string run_until_pause(const std::vector<std::string>& args, const std::string& finished, pid_t& pid) {
  const ChildProcess child = runs_test::spawn_child(args);
  pid = child.pid;
  if (child.pid <= 0) return "";
  std::string buffer, stop;
  bool ended = false;
  while (!ended) {
    pollfd fd{child.out, POLLIN, 0};
    // A hang guard, not synchronisation.
    if (poll(&fd, 1, kHangGuardMs) != 1) {
      ADD_FAILURE() << "the worker said nothing for " << kHangGuardMs << " ms";
      break;
    }
    char bytes[4096];
    const ssize_t n = read(child.out, bytes, sizeof bytes);
    if (n <= 0) {
      ADD_FAILURE() << "the worker ended early: " << buffer;
      break;
    }
    buffer.append(bytes, static_cast<std::size_t>(n));
    std::size_t newline;
    while (!ended && (newline = buffer.find('\n')) != std::string::npos) {
      const std::string line = buffer.substr(0, newline);
      buffer.erase(0, newline + 1);
      EXPECT_NE(line.rfind("E ", 0), 0u) << line;
      if (line.rfind("K ", 0) == 0) stop = line;
      ended = line.rfind("K ", 0) == 0 || line.rfind(finished, 0) == 0 || line.rfind("E ", 0) == 0;
    }
  }
  kill(child.pid, SIGKILL);
  int status = 0;
  waitpid(child.pid, &status, 0);
  // Paused, it can only have been killed; finished, it may have exited first.
  EXPECT_TRUE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
              (stop.empty() && WIFEXITED(status) && WEXITSTATUS(status) == 0))
      << "status " << status;
  close(child.in);
  close(child.out);
  return stop;
}

std::vector<std::string> sweep_args(const std::string& db, const std::string& pause, long keys) {
  return {TORTURE_WORKER_PATH, "--db", db, "--extension", RUNS_EXTENSION_PATH, "--seed", "1", "--ops", "1",
          "--name", "sweep", "--keys", std::to_string(keys), "--pause", pause};
}

void fresh_database(const std::string& path, const std::string& mode) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) unlink((path + suffix).c_str());
  const TestDb db(path);
  EXPECT_EQ(db.value("PRAGMA journal_mode = " + mode), mode);
}

// runs_migrate() killed at each of its events on an empty database leaves
// the schema untouched or complete, never between; the file-by-file way, each
// file its own transaction, is left half-migrated by some of the same kills.
// Either way the next runs_migrate() completes the schema.
TEST(Torture, AKillAtEveryEventOfAMigrationNeverLeavesItHalfDone) {
  TempDir dir(database_dir());
  std::string latest;
  {
    const TestDb reference;
    EXPECT_EQ(reference.value("SELECT runs_migrate()"), runs_test::kLatestSchemaVersion);
    latest = schema_of(reference);
  }
  for (const std::string mode : {"wal", "delete"}) {
    for (const bool by_file : {false, true}) {
      std::map<std::string, long> outcomes;  // schema after the kill: untouched, latest, or versions
      long event = 1;
      for (; event < 10'000 && !::testing::Test::HasFailure(); ++event) {
        fresh_database(dir.db(), mode);
        std::vector<std::string> args = sweep_args(dir.db(), (by_file ? "migrate_file:" : "runs_migrate:") + std::to_string(event), 1);
        if (by_file) args.insert(args.end(), {"--migrate-by-file", RUNS_SOURCE_DIR "/sql"});
        pid_t pid = -1;
        if (run_until_pause(args, "A history", pid).empty()) break;  // migrated before event E
        const TestDb db(dir.db());
        db.exec("PRAGMA busy_timeout = 10000");
        EXPECT_EQ(db.value("PRAGMA integrity_check"), "ok") << mode << " event " << event;
        EXPECT_EQ(db.value("PRAGMA journal_mode"), mode);
        const std::string schema = schema_of(db);
        ++outcomes[schema.empty() ? "untouched" : schema == latest ? "latest" : "half(" + versions_of(db) + ")"];
        EXPECT_EQ(db.value("SELECT runs_migrate()"), runs_test::kLatestSchemaVersion);
        EXPECT_EQ(schema_of(db), latest);
      }
      const long untouched = outcomes["untouched"], complete = outcomes["latest"];
      std::cout << "[ torture  ] " << mode << ", " << (by_file ? "file by file" : "runs_migrate()") << ": killed at "
                << event - 1 << " events: " << counts_text(outcomes) << std::endl;
      EXPECT_GT(untouched, 0) << mode;
      EXPECT_GT(complete, 0) << mode;
      if (by_file) {
        EXPECT_GT(event - 1 - untouched - complete, 0) << mode << ": the naive way was never left half-done";
      } else {
        EXPECT_EQ(untouched + complete, event - 1) << mode << ": half-migrated by a kill";
      }
    }
  }
}

// start_run() killed at each of its events, while it reclaims the run of an
// owner killed before: the reclaim and the new run commit together or not at
// all. Afterwards the next start_run() reclaims whichever run is active.
TEST(Torture, AKillAtEveryEventOfStartRunLeavesTheReclaimAndTheNewRunAllOrNothing) {
  TempDir dir(database_dir());
  const std::string host = host_name();
  for (const std::string mode : {"wal", "delete"}) {
    long before_commit = 0, after_commit = 0, event = 1;
    for (; event < 10'000 && !::testing::Test::HasFailure(); ++event) {
      fresh_database(dir.db(), mode);
      {
        const TestDb db(dir.db());
        EXPECT_EQ(db.value("SELECT runs_migrate()"), runs_test::kLatestSchemaVersion);
        db.exec(runs_test::history_sql(kHistory, "new.concurrency_key"));
      }
      // The first owner starts run 1 and is killed at once after: at the first
      // event of its mark_run_running().
      pid_t first = -1;
      EXPECT_NE(run_until_pause(sweep_args(dir.db(), "mark_run_running:1", 1), "R mark_run_running", first), "");
      pid_t second = -1;
      if (run_until_pause(sweep_args(dir.db(), "start_run:" + std::to_string(event), 1), "R start_run", second).empty()) {
        break;  // its start_run() returned before event E
      }
      const TestDb db(dir.db());
      db.exec("PRAGMA busy_timeout = 10000");
      EXPECT_EQ(db.value("PRAGMA integrity_check"), "ok") << mode << " event " << event;
      const auto rows = db.run("SELECT id, status, owner_pid, error_message FROM runs ORDER BY id");
      ASSERT_EQ(rows.code, SQLITE_OK) << rows.message;
      using Row = std::vector<std::optional<std::string>>;
      const std::string gone = "abandoned: owner process " + std::to_string(first) + " on " + host + " is gone";
      pid_t active_owner = first;
      if (rows.rows.size() == 1) {
        ++before_commit;
        EXPECT_EQ(rows.rows[0], (Row{"1", "pending", std::to_string(first), std::nullopt})) << mode << " " << event;
      } else {
        ++after_commit;
        active_owner = second;
        EXPECT_EQ(rows.rows, (std::vector<Row>{Row{"1", "failed", std::to_string(first), gone},
                                               Row{"2", "pending", std::to_string(second), std::nullopt}}))
            << mode << " event " << event;
      }
      const runs_test::Replay history = runs_test::replay(db, kHistory);
      EXPECT_LE(runs_test::max_active(history, "a"), 1);
      // The next start reclaims the active run, whichever it is.
      const std::string next = rows.rows.size() == 1 ? "2" : "3";
      EXPECT_EQ(db.value("SELECT start_run('check', 'torture', 'a')"), next);
      EXPECT_EQ(db.value("SELECT error_message FROM runs WHERE id = " + std::to_string(std::stoi(next) - 1)),
                "abandoned: owner process " + std::to_string(active_owner) + " on " + host + " is gone");
    }
    std::cout << "[ torture  ] " << mode << ", start_run() reclaiming a killed owner's run: killed at " << event - 1
              << " events: " << before_commit << " before its commit, " << after_commit << " after" << std::endl;
    EXPECT_GT(before_commit, 0) << mode;
    EXPECT_GT(after_commit, 0) << mode;
  }
}


}  // namespace
