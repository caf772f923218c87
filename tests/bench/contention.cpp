// contention: N processes start and finish runs on one WAL database as fast
// as they can, on one key or on a key each; reports throughput, the wait of
// start_run (p50, p99, max), how many calls ended in SQLITE_BUSY, and
// fairness (fewest and most wins per process).
//
//   contention --extension PATH [--processes 2,4,8,16] [--keys one,separate]
//              [--variants extension,handwritten] [--seconds S] [--json FILE]
//
// Variants (every connection: WAL, synchronous=NORMAL, busy_timeout 5000):
//   extension    SELECT start_run('bench', 'contention', KEY); on success
//                mark_run_running(id) and complete_run(id)
//   handwritten  the same work over the C API (bench_db.h's HandCycle SQL):
//                BEGIN IMMEDIATE, active-run lookup, INSERT, COMMIT, two
//                guarded UPDATEs, each statement prepared once
//   extension+backoff  extension, with a connection busy handler that sleeps
//                50 us doubling to a 2 ms cap (each sleep jittered x0.5..1.5)
//                instead of SQLite's 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50,
//                100, 100, ... ms, until the same 5 s
//   extension+backoff-start  the same handler for start_run only (the finishing
//                updates keep busy_timeout): what the extension could do
//                inside start_run alone
//   extension+poll   the same with a flat random 0.1-1 ms sleep
//   extension+flock  extension, each write call made while holding flock()
//                on DB-bench.lock: the kernel queues the waiters
// The last three are the experiments of docs/performance.md (item 4): what
// it takes for no waiter to starve.
//
// Each configuration gets a fresh database. The parent starts the workers
// with posix_spawn (fork+exec of this program with --worker; no connection
// crosses a fork), waits until every one has opened its connection and
// prepared its statements (one byte '.' each on its stdout), then closes
// their stdin at once: the start barrier. Each worker runs for S seconds and
// reports its counts and every start_run wait. A finishing step (to running,
// to completed) that meets SQLITE_BUSY is retried so that no run stays
// active, and counted as a BUSY escape too.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_db.h"

extern char** environ;

namespace {

using runs_bench::die;
using runs_bench::Stmt;

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// ---------------------------------------------------------------- worker

struct WorkerCounts {
  long calls = 0;       // start_run calls
  long wins = 0;        // runs started (and finished)
  long refusals = 0;    // start_run refused: the key had an active run
  long busy = 0;        // start_run calls that ended in SQLITE_BUSY
  long finish_busy = 0; // finishing steps that ended in SQLITE_BUSY (retried)
};

// A busy handler that polls often: sleeps 100..1000 us (random) between
// tries, until 5 s have passed since the first try.
int polling_busy_handler(void* state, int tries) {
  auto* rng = static_cast<std::minstd_rand*>(state);
  static thread_local std::int64_t first = 0;
  if (tries == 0) first = now_ns();
  if (now_ns() - first > 5'000'000'000LL) return 0;
  std::uniform_int_distribution<int> micros(100, 1000);
  usleep(static_cast<useconds_t>(micros(*rng)));
  return 1;
}

// Exponential backoff: 50 us doubling to a 2 ms cap, each sleep jittered
// (x0.5..1.5), until 5 s have passed since the first try.
int backoff_busy_handler(void* state, int tries) {
  auto* rng = static_cast<std::minstd_rand*>(state);
  static thread_local std::int64_t first = 0;
  if (tries == 0) first = now_ns();
  if (now_ns() - first > 5'000'000'000LL) return 0;
  const int base = std::min(2000, 50 << std::min(tries, 6));
  std::uniform_int_distribution<int> micros(base / 2, base + base / 2);
  usleep(static_cast<useconds_t>(micros(*rng)));
  return 1;
}

// Steps `stmt` to the end; SQLITE_BUSY: returns false (statement reset).
// Any other failure kills the worker. `id` receives the first column.
bool step_all(Stmt& stmt, sqlite3* db, sqlite3_int64* id, bool* refused) {
  int rc;
  bool first = true;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    if (first && id != nullptr) *id = sqlite3_column_int64(stmt.get(), 0);
    first = false;
  }
  const int ext = sqlite3_extended_errcode(db);
  sqlite3_reset(stmt.get());
  if (rc == SQLITE_DONE) return true;
  if ((rc & 0xff) == SQLITE_BUSY) return false;
  if (refused != nullptr && ext == SQLITE_CONSTRAINT_UNIQUE) {
    *refused = true;
    return true;
  }
  die(std::string("step ") + sqlite3_sql(stmt.get()) + " rc " + std::to_string(rc), db);
}

class FileLock {
 public:
  explicit FileLock(int fd) : fd_(fd) {
    if (fd_ >= 0) {
      while (flock(fd_, LOCK_EX) != 0) {
        if (errno != EINTR) die("flock");
      }
    }
  }
  ~FileLock() {
    if (fd_ >= 0) flock(fd_, LOCK_UN);
  }

 private:
  int fd_;
};

int worker(const std::string& db_path, const std::string& extension, const std::string& key,
           const std::string& variant, double seconds, const std::string& latencies_path) {
  const bool uses_extension = variant.rfind("extension", 0) == 0;
  runs_bench::Db db(db_path, uses_extension ? extension.c_str() : nullptr);
  std::minstd_rand rng(static_cast<unsigned>(getpid()));
  if (variant == "extension+poll") sqlite3_busy_handler(db.get(), polling_busy_handler, &rng);
  if (variant == "extension+backoff") sqlite3_busy_handler(db.get(), backoff_busy_handler, &rng);
  int lock_fd = -1;
  if (variant == "extension+flock") {
    lock_fd = open((db_path + "-bench.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0) die("open lock file");
  }

  // extension: start_, running_, complete_; handwritten: the HandCycle SQL.
  Stmt start, running, complete, begin, active, insert, commit, rollback;
  if (uses_extension) {
    start = Stmt(db.get(), "SELECT start_run('bench', 'contention', ?1)");
    start.bind(1, key.c_str());
    running = Stmt(db.get(), "SELECT mark_run_running(?1)");
    complete = Stmt(db.get(), "SELECT complete_run(?1)");
  } else {
    begin = Stmt(db.get(), "BEGIN IMMEDIATE");
    active = Stmt(db.get(), runs_bench::kHandActiveRun);
    active.bind(1, key.c_str());
    insert = Stmt(db.get(), runs_bench::kHandInsert);
    insert.bind(1, "bench").bind(2, "contention").bind(3, key.c_str());
    commit = Stmt(db.get(), "COMMIT");
    rollback = Stmt(db.get(), "ROLLBACK");
    running = Stmt(db.get(), runs_bench::kHandMarkRunning);
    complete = Stmt(db.get(), runs_bench::kHandComplete);
  }

  // Ready; wait for the barrier (stdin closes).
  if (write(STDOUT_FILENO, ".", 1) != 1) die("write ready");
  for (;;) {
    char byte;
    const ssize_t n = read(STDIN_FILENO, &byte, 1);
    if (n == 0 || (n < 0 && errno != EINTR)) break;
  }

  WorkerCounts counts;
  std::vector<std::int64_t> waits;
  waits.reserve(1 << 16);
  const std::int64_t end = now_ns() + static_cast<std::int64_t>(seconds * 1e9);
  while (now_ns() < end) {
    sqlite3_int64 id = 0;
    bool refused = false;
    bool ok;
    const std::int64_t t0 = now_ns();
    if (uses_extension) {
      FileLock lock(lock_fd);
      if (variant == "extension+backoff-start") {
        sqlite3_busy_handler(db.get(), backoff_busy_handler, &rng);
      }
      ok = step_all(start, db.get(), &id, &refused);
      if (variant == "extension+backoff-start") sqlite3_busy_timeout(db.get(), 5000);
    } else {
      ok = step_all(begin, db.get(), nullptr, nullptr);
      if (ok) {
        const bool found = active.row();
        active.reset();
        if (found) {
          refused = true;
          step_all(rollback, db.get(), nullptr, nullptr);
        } else {
          step_all(insert, db.get(), nullptr, nullptr);
          id = sqlite3_last_insert_rowid(db.get());
          if (!step_all(commit, db.get(), nullptr, nullptr)) die("commit busy");
        }
      }
    }
    waits.push_back(now_ns() - t0);
    ++counts.calls;
    if (!ok) {
      ++counts.busy;
      continue;
    }
    if (refused) {
      ++counts.refusals;
      continue;
    }
    ++counts.wins;
    for (Stmt* finish : {&running, &complete}) {
      for (;;) {
        FileLock lock(lock_fd);
        if (step_all(finish->bind(1, id), db.get(), nullptr, nullptr)) break;
        ++counts.finish_busy;
      }
    }
  }

  std::ofstream out(latencies_path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(waits.data()),
            static_cast<std::streamsize>(waits.size() * sizeof(std::int64_t)));
  if (!out) die("write " + latencies_path);
  std::printf("calls=%ld wins=%ld refusals=%ld busy=%ld finish_busy=%ld\n", counts.calls,
              counts.wins, counts.refusals, counts.busy, counts.finish_busy);
  if (lock_fd >= 0) close(lock_fd);
  return 0;
}

// ---------------------------------------------------------------- parent

struct Child {
  pid_t pid = -1;
  int in = -1;
  int out = -1;
  std::string latencies;
};

std::string self_path() {
  char buffer[4096];
  const ssize_t n = readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  if (n <= 0) die("readlink /proc/self/exe");
  return std::string(buffer, static_cast<std::size_t>(n));
}

Child spawn(const std::vector<std::string>& args, const std::string& latencies) {
  int in[2];
  int out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) die("pipe2");
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (std::string& arg : copy) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(in[0]);
  close(out[1]);
  if (rc != 0) die(std::string("posix_spawn: ") + std::strerror(rc));
  return Child{pid, in[1], out[0], latencies};
}

std::string read_all(int fd) {
  std::string text;
  char buffer[512];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n > 0) {
      text.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      return text;
    }
  }
}

long field(const std::string& line, const std::string& name) {
  const auto at = line.find(name + "=");
  if (at == std::string::npos) die("worker output lacks " + name + ": " + line);
  return std::stol(line.substr(at + name.size() + 1));
}

struct Result {
  std::string variant, keys;
  int processes = 0;
  double seconds = 0;
  long calls = 0, wins = 0, refusals = 0, busy = 0, finish_busy = 0;
  long min_wins = 0, max_wins = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
};

Result run_config(const std::string& dir, const std::string& extension, const std::string& variant,
                  const std::string& keys, int processes, double seconds, int index) {
  const std::string db = dir + "/contention-" + std::to_string(index) + ".db";
  runs_bench::migrate(db, extension.c_str());
  std::vector<Child> children;
  for (int i = 0; i < processes; ++i) {
    const std::string latencies = db + "-waits-" + std::to_string(i);
    const std::string key = keys == "one" ? "" : "key-" + std::to_string(i);
    children.push_back(spawn({self_path(), "--worker", "--db", db, "--extension", extension,
                              "--key", key, "--variants", variant, "--seconds",
                              std::to_string(seconds), "--latencies", latencies},
                             latencies));
  }
  for (Child& child : children) {
    char byte = 0;
    if (read(child.out, &byte, 1) != 1 || byte != '.') die("a worker failed to get ready");
  }
  for (Child& child : children) close(child.in);  // the start barrier opens

  Result result{variant, keys, processes, seconds};
  result.min_wins = -1;
  std::vector<std::int64_t> waits;
  for (Child& child : children) {
    const std::string line = read_all(child.out);
    close(child.out);
    int status = 0;
    while (waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("a worker failed: " + line);
    result.calls += field(line, "calls");
    const long wins = field(line, "wins");
    result.wins += wins;
    result.refusals += field(line, "refusals");
    result.busy += field(line, "busy");
    result.finish_busy += field(line, "finish_busy");
    result.min_wins = result.min_wins < 0 ? wins : std::min(result.min_wins, wins);
    result.max_wins = std::max(result.max_wins, wins);
    std::ifstream in(child.latencies, std::ios::binary);
    std::int64_t value;
    while (in.read(reinterpret_cast<char*>(&value), sizeof value)) waits.push_back(value);
  }
  std::sort(waits.begin(), waits.end());
  if (!waits.empty()) {
    auto at = [&](double q) {
      const auto i = static_cast<std::size_t>(q * static_cast<double>(waits.size() - 1));
      return static_cast<double>(waits[i]) / 1e6;
    };
    result.p50_ms = at(0.50);
    result.p99_ms = at(0.99);
    result.max_ms = static_cast<double>(waits.back()) / 1e6;
  }
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm", "-bench.lock"}) {
    std::filesystem::remove(db + suffix, ignored);
  }
  for (Child& child : children) std::filesystem::remove(child.latencies, ignored);
  return result;
}

std::string to_json(const Result& r) {
  char text[1024];
  std::snprintf(text, sizeof text,
                "{\"variant\": \"%s\", \"keys\": \"%s\", \"processes\": %d, \"seconds\": %.2f, "
                "\"calls\": %ld, \"wins\": %ld, \"refusals\": %ld, \"busy\": %ld, "
                "\"finish_busy\": %ld, \"wins_per_s\": %.1f, \"calls_per_s\": %.1f, "
                "\"wait_p50_ms\": %.3f, \"wait_p99_ms\": %.3f, \"wait_max_ms\": %.3f, "
                "\"min_wins\": %ld, \"max_wins\": %ld}",
                r.variant.c_str(), r.keys.c_str(), r.processes, r.seconds, r.calls, r.wins,
                r.refusals, r.busy, r.finish_busy, static_cast<double>(r.wins) / r.seconds,
                static_cast<double>(r.calls) / r.seconds, r.p50_ms, r.p99_ms, r.max_ms,
                r.min_wins, r.max_wins);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  std::string db, extension, key, latencies, json;
  std::string processes = "2,4,8,16", keys = "one,separate", variants = "extension,handwritten";
  double seconds = 3;
  bool is_worker = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value for " + arg);
      return argv[++i];
    };
    if (arg == "--worker") {
      is_worker = true;
    } else if (arg == "--db") {
      db = value();
    } else if (arg == "--extension") {
      extension = value();
    } else if (arg == "--key") {
      key = value();
    } else if (arg == "--latencies") {
      latencies = value();
    } else if (arg == "--processes") {
      processes = value();
    } else if (arg == "--keys") {
      keys = value();
    } else if (arg == "--variants") {
      variants = value();
    } else if (arg == "--seconds") {
      seconds = std::stod(value());
    } else if (arg == "--json") {
      json = value();
    } else {
      die("unknown argument " + arg + " (see the comment at the top of contention.cpp)");
    }
  }
  if (extension.empty()) die("--extension PATH is required");
  if (is_worker) return worker(db, extension, key, variants, seconds, latencies);

  signal(SIGPIPE, SIG_IGN);
  runs_bench::ScratchDir scratch(runs_bench::scratch_parent());
  std::ofstream out;
  if (!json.empty()) out.open(json);
  std::printf("%-16s %-9s %5s %9s %9s %6s %6s %9s %9s %9s %6s %6s\n", "variant", "keys", "procs",
              "wins/s", "calls/s", "busy", "fbusy", "p50 ms", "p99 ms", "max ms", "min", "max");
  int index = 0;
  for (const std::string& k : split(keys)) {
    for (const std::string& p : split(processes)) {
      for (const std::string& v : split(variants)) {
        const Result r =
            run_config(scratch.path(), extension, v, k, std::stoi(p), seconds, ++index);
        std::printf("%-16s %-9s %5d %9.1f %9.1f %6ld %6ld %9.3f %9.3f %9.3f %6ld %6ld\n",
                    r.variant.c_str(), r.keys.c_str(), r.processes,
                    static_cast<double>(r.wins) / r.seconds,
                    static_cast<double>(r.calls) / r.seconds, r.busy, r.finish_busy, r.p50_ms,
                    r.p99_ms, r.max_ms, r.min_wins, r.max_wins);
        std::fflush(stdout);
        if (out.is_open()) out << to_json(r) << "\n" << std::flush;
      }
    }
  }
  return 0;
}
