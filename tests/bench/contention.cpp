// contention: N processes start and finish runs on one WAL database as fast
// as they can, on one key or on a key each; reports throughput, the wait of
// every call (start_run and the two finishing updates: p50, p99, max), how
// many calls ended in SQLITE_BUSY, and fairness (fewest and most wins per
// process).
//
//   contention --extension PATH [--processes 2,4,8,16] [--keys one,separate]
//              [--variants extension,handwritten] [--seconds S] [--rounds R]
//              [--load idle,busy] [--backoff FIRST_US,CAP_US] [--json FILE]
//
// Variants (every connection: WAL, synchronous=NORMAL, busy_timeout 5000):
//   extension    SELECT start_run('bench', 'contention', KEY); on success
//                mark_run_running(id) and complete_run(id); SQLite's busy
//                handler (busy_timeout 5000): 1, 2, 5, 10, 15, 20, 25, 25,
//                25, 50, 50, 100, 100, ... ms
//   extension+runs_busy_timeout  the same after SELECT runs_busy_timeout(5000):
//                the extension's busy handler, as applications set it up
//   handwritten  the same work over the C API (bench_db.h's HandCycle SQL):
//                BEGIN IMMEDIATE, active-run lookup, INSERT, COMMIT, two
//                guarded UPDATEs, each statement prepared once
//   extension+backoff  extension, with the extension's handler class
//                (ext/busy_handler.cpp, linked in) installed directly with
//                the policy of --backoff (default: the extension's): how the
//                constants were tuned
//   extension+backoff-start  the same handler for start_run only (the finishing
//                updates keep busy_timeout): what the extension could do
//                inside start_run alone
//   extension+flock  extension, each write call made while holding flock()
//                on DB-bench.lock: the kernel queues the waiters
// The last two are the experiments of docs/performance.md (item 4): what
// it takes for no waiter to starve.
//
// --rounds R runs every configuration R times, its variants in turn and in
// reverse order every other round, so that the variants compared meet the
// same moments of a shared machine. --load busy keeps one more process
// spinning on the CPU during each configuration (the other core kept busy).
//
// Each configuration gets a fresh database. The parent starts the workers
// with posix_spawn (fork+exec of this program with --worker; no connection
// crosses a fork), waits until every one has opened its connection and
// prepared its statements (one byte '.' each on its stdout), then closes
// their stdin at once: the start barrier. Each worker runs for S seconds and
// reports its counts and every call's wait. A finishing step (to running,
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
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "bench_db.h"
#include "busy_handler.h"
#include "spawn_process.h"

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
           const std::string& variant, double seconds, const std::string& latencies_path,
           runs::BackoffPolicy policy) {
  const bool uses_extension = variant.rfind("extension", 0) == 0;
  runs_bench::Db db(db_path, uses_extension ? extension.c_str() : nullptr);
  runs::BusyHandler backoff(runs::system_busy_clock(), policy);
  backoff.set_timeout_ms(5000);
  if (variant == "extension+backoff") {
    sqlite3_busy_handler(db.get(), runs::BusyHandler::callback, &backoff);
  }
  if (variant == "extension+runs_busy_timeout") {
    Stmt set(db.get(), "SELECT runs_busy_timeout(5000)");
    if (set.run() != 5000) die("runs_busy_timeout(5000)");
  }
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
        sqlite3_busy_handler(db.get(), runs::BusyHandler::callback, &backoff);
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
        const std::int64_t f0 = now_ns();
        FileLock lock(lock_fd);
        const bool done = step_all(finish->bind(1, id), db.get(), nullptr, nullptr);
        waits.push_back(now_ns() - f0);
        if (done) break;
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
  std::string error;
  const runs_test::ChildProcess child = runs_test::start_child(args, error);
  if (child.pid < 0) die(error);
  return Child{child.pid, child.in, child.out, latencies};
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
  std::string variant, keys, load;
  int processes = 0, round = 0;
  double seconds = 0;
  long calls = 0, wins = 0, refusals = 0, busy = 0, finish_busy = 0;
  long min_wins = 0, max_wins = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
};

// Keeps a CPU busy until killed: the other core kept busy.
[[noreturn]] void spin() {
  volatile std::uint64_t x = 0;
  for (;;) x = x + 1;
}

Result run_config(const std::string& dir, const std::string& extension, const std::string& variant,
                  const std::string& keys, int processes, double seconds, int index,
                  const std::string& load, const std::string& backoff) {
  const std::string db = dir + "/contention-" + std::to_string(index) + ".db";
  runs_bench::migrate(db, extension.c_str());
  Child spinner;
  if (load == "busy") spinner = spawn({self_path(), "--spin", "--extension", extension}, "");
  std::vector<Child> children;
  for (int i = 0; i < processes; ++i) {
    const std::string latencies = db + "-waits-" + std::to_string(i);
    const std::string key = keys == "one" ? "" : "key-" + std::to_string(i);
    children.push_back(spawn({self_path(), "--worker", "--db", db, "--extension", extension,
                              "--key", key, "--variants", variant, "--seconds",
                              std::to_string(seconds), "--latencies", latencies, "--backoff",
                              backoff},
                             latencies));
  }
  for (Child& child : children) {
    char byte = 0;
    if (read(child.out, &byte, 1) != 1 || byte != '.') die("a worker failed to get ready");
  }
  for (Child& child : children) close(child.in);  // the start barrier opens

  Result result{variant, keys, load, processes, 0, seconds};
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
  if (spinner.pid > 0) {
    kill(spinner.pid, SIGKILL);
    while (waitpid(spinner.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    close(spinner.in);
    close(spinner.out);
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
                "{\"variant\": \"%s\", \"keys\": \"%s\", \"load\": \"%s\", \"round\": %d, "
                "\"processes\": %d, \"seconds\": %.2f, "
                "\"calls\": %ld, \"wins\": %ld, \"refusals\": %ld, \"busy\": %ld, "
                "\"finish_busy\": %ld, \"wins_per_s\": %.1f, \"calls_per_s\": %.1f, "
                "\"wait_p50_ms\": %.3f, \"wait_p99_ms\": %.3f, \"wait_max_ms\": %.3f, "
                "\"min_wins\": %ld, \"max_wins\": %ld}",
                r.variant.c_str(), r.keys.c_str(), r.load.c_str(), r.round, r.processes, r.seconds,
                r.calls, r.wins,
                r.refusals, r.busy, r.finish_busy, static_cast<double>(r.wins) / r.seconds,
                static_cast<double>(r.calls) / r.seconds, r.p50_ms, r.p99_ms, r.max_ms,
                r.min_wins, r.max_wins);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  std::string db, extension, key, latencies, json;
  std::string processes = "2,4,8,16", keys = "one,separate", variants = "extension,handwritten";
  std::string loads = "idle", backoff, seconds_text = "3", rounds_text = "1";
  // The options that take a value, and where it goes.
  const std::vector<std::pair<std::string, std::string*>> options = {
      {"--db", &db},          {"--extension", &extension}, {"--key", &key},
      {"--latencies", &latencies}, {"--processes", &processes}, {"--keys", &keys},
      {"--variants", &variants},   {"--seconds", &seconds_text}, {"--rounds", &rounds_text},
      {"--load", &loads},     {"--backoff", &backoff},     {"--json", &json}};
  bool is_worker = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto option = std::find_if(options.begin(), options.end(),
                                     [&](const auto& entry) { return entry.first == arg; });
    if (arg == "--worker") {
      is_worker = true;
    } else if (arg == "--spin") {
      spin();
    } else if (option == options.end()) {
      die("unknown argument " + arg + " (see the comment at the top of contention.cpp)");
    } else if (i + 1 >= argc) {
      die("missing value for " + arg);
    } else {
      *option->second = argv[++i];
    }
  }
  const double seconds = std::stod(seconds_text);
  const int rounds = std::stoi(rounds_text);
  if (extension.empty()) die("--extension PATH is required");
  runs::BackoffPolicy policy = runs::kDefaultBackoff;
  if (!backoff.empty() && backoff != "0,0") {
    const auto parts = split(backoff);
    if (parts.size() != 2) die("--backoff FIRST_US,CAP_US");
    policy = {std::stoll(parts[0]) * 1000, std::stoll(parts[1]) * 1000};
  }
  if (is_worker) return worker(db, extension, key, variants, seconds, latencies, policy);

  signal(SIGPIPE, SIG_IGN);
  runs_bench::ScratchDir scratch(runs_bench::scratch_parent());
  std::ofstream out;
  if (!json.empty()) out.open(json);
  std::printf("%-28s %-9s %-5s %5s %9s %9s %6s %6s %9s %9s %9s %6s %6s\n", "variant", "keys",
              "load", "procs", "wins/s", "calls/s", "busy", "fbusy", "p50 ms", "p99 ms", "max ms",
              "min", "max");
  int index = 0;
  for (int round = 1; round <= rounds; ++round) {
    for (const std::string& l : split(loads)) {
      for (const std::string& k : split(keys)) {
        for (const std::string& p : split(processes)) {
          std::vector<std::string> order = split(variants);
          if (round % 2 == 0) std::reverse(order.begin(), order.end());
          for (const std::string& v : order) {
            Result r = run_config(scratch.path(), extension, v, k, std::stoi(p), seconds, ++index,
                                  l, backoff.empty() ? "0,0" : backoff);
            r.round = round;
            std::printf("%-28s %-9s %-5s %5d %9.1f %9.1f %6ld %6ld %9.3f %9.3f %9.3f %6ld %6ld\n",
                        r.variant.c_str(), r.keys.c_str(), r.load.c_str(), r.processes,
                        static_cast<double>(r.wins) / r.seconds,
                        static_cast<double>(r.calls) / r.seconds, r.busy, r.finish_busy,
                        r.p50_ms, r.p99_ms, r.max_ms, r.min_wins, r.max_wins);
            std::fflush(stdout);
            if (out.is_open()) out << to_json(r) << "\n" << std::flush;
          }
        }
      }
    }
  }
  return 0;
}
