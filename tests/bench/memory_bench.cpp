// memory_bench: what the extension costs in memory, and whether that stays
// flat; also the plain cycle loop that tests/bench/profile.sh runs under
// callgrind.
//
//   memory_bench EXTENSION connections K   per-connection heap, K connections
//   memory_bench EXTENSION cycles N        RSS and heap every N/20 cycles
//   memory_bench EXTENSION loop N extension|handwritten|handwritten+calls
//                                          N cycles, nothing measured
//                                          (handwritten+calls: the hand-written
//                                          cycle plus three SELECT runs_version()
//                                          statements, the cost of calling any
//                                          SQL function three times)
//
// Heap is glibc's mallinfo2().uordblks (every allocation of the process:
// SQLite's, built with SQLITE_SYSTEM_MALLOC, and the extension's C++ ones)
// and sqlite3_memory_used() (SQLite's own). RSS is VmRSS from
// /proc/self/status. Each prints one JSON object on stdout.
//
// The databases are files (WAL) in $RUNS_BENCH_DIR; the cycles run at
// synchronous=OFF so that a million of them take under a minute: the work
// in memory is the same as at NORMAL, only the fsyncs of checkpoints go.
#include <malloc.h>

#include <cinttypes>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "bench_db.h"

namespace {

using runs_bench::Db;

long long heap_bytes() { return static_cast<long long>(mallinfo2().uordblks); }

long long rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

struct Snapshot {
  long long heap = 0;
  long long sqlite = 0;
};

Snapshot snapshot() {
  malloc_trim(0);
  return {heap_bytes(), static_cast<long long>(sqlite3_memory_used())};
}

// Heap per connection, in four setups of K connections each. Every
// connection runs one cycle, so that its page cache holds the same pages.
int connections(const std::string& extension, int count) {
  runs_bench::ScratchDir scratch(runs_bench::scratch_parent());
  const std::string path = scratch.file("connections.db");
  runs_bench::migrate(path, extension.c_str());
  const char* names[] = {"plain", "handwritten", "extension_loaded", "extension_cycled"};
  std::printf("{\"connections\": %d", count);
  for (int setup = 0; setup < 4; ++setup) {
    const Snapshot before = snapshot();
    {
      std::vector<std::unique_ptr<Db>> dbs;
      std::vector<std::unique_ptr<runs_bench::HandCycle>> hands;
      std::vector<std::unique_ptr<runs_bench::ExtensionCycle>> cycles;
      for (int i = 0; i < count; ++i) {
        const std::string key = "key-" + std::to_string(i);
        dbs.push_back(std::make_unique<Db>(path, setup >= 2 ? extension.c_str() : nullptr));
        sqlite3* db = dbs.back()->get();
        // The same pages in every setup's cache: read the runs table once.
        runs_bench::Stmt(db, "SELECT count(*) FROM runs").run();
        if (setup == 1) {
          hands.push_back(std::make_unique<runs_bench::HandCycle>(db, "hand"));
          hands.back()->run();
        } else if (setup == 3) {
          cycles.push_back(std::make_unique<runs_bench::ExtensionCycle>(db, "ext"));
          cycles.back()->run();
        }
      }
      const Snapshot during = snapshot();
      std::printf(", \"%s\": {\"heap_per_connection\": %lld, \"sqlite_per_connection\": %lld}",
                  names[setup], (during.heap - before.heap) / count,
                  (during.sqlite - before.sqlite) / count);
    }
  }
  std::printf("}\n");
  return 0;
}

// RSS and heap over `total` cycles on one connection.
int cycles(const std::string& extension, long total) {
  runs_bench::ScratchDir scratch(runs_bench::scratch_parent());
  const std::string path = scratch.file("cycles.db");
  runs_bench::migrate(path, extension.c_str());
  Db db(path, extension.c_str(), "OFF");
  runs_bench::ExtensionCycle cycle(db.get());
  const long step = total >= 20 ? total / 20 : 1;
  std::printf("{\"cycles\": %ld, \"samples\": [", total);
  for (long done = 0; done <= total; done += step) {
    if (done > 0) {
      for (long i = 0; i < step; ++i) cycle.run();
    }
    std::printf("%s{\"cycles\": %ld, \"rss_kib\": %lld, \"heap\": %lld, \"sqlite\": %lld}",
                done > 0 ? ", " : "", done, rss_kib(), heap_bytes(),
                static_cast<long long>(sqlite3_memory_used()));
    std::fflush(stdout);
  }
  std::printf("]}\n");
  return 0;
}

// The hand-written cycle and three statements that call a trivial SQL
// function of the extension, as the extension's cycle makes three calls.
class HandCycleAndCalls {
 public:
  explicit HandCycleAndCalls(sqlite3* db)
      : hand_(db), call1_(db, "SELECT runs_version()"), call2_(db, "SELECT runs_version()"),
        call3_(db, "SELECT runs_version()") {}
  sqlite3_int64 run() {
    const sqlite3_int64 id = hand_.run();
    call1_.run();
    call2_.run();
    call3_.run();
    return id;
  }

 private:
  runs_bench::HandCycle hand_;
  runs_bench::Stmt call1_, call2_, call3_;
};

template <typename Cycle>
int loop(const std::string& extension, long total) {
  runs_bench::ScratchDir scratch(runs_bench::scratch_parent());
  const std::string path = scratch.file("loop.db");
  runs_bench::migrate(path, extension.c_str());
  Db db(path, extension.c_str(), "NORMAL");
  Cycle cycle(db.get());
  sqlite3_int64 last = 0;
  for (long i = 0; i < total; ++i) last = cycle.run();
  std::printf("{\"loop\": %ld, \"last_id\": %" PRId64 "}\n", total, static_cast<std::int64_t>(last));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 4 && std::strcmp(argv[2], "connections") == 0) {
    return connections(argv[1], std::stoi(argv[3]));
  }
  if (argc >= 4 && std::strcmp(argv[2], "cycles") == 0) return cycles(argv[1], std::stol(argv[3]));
  if (argc >= 5 && std::strcmp(argv[2], "loop") == 0) {
    if (std::strcmp(argv[4], "extension") == 0) {
      return loop<runs_bench::ExtensionCycle>(argv[1], std::stol(argv[3]));
    }
    if (std::strcmp(argv[4], "handwritten") == 0) {
      return loop<runs_bench::HandCycle>(argv[1], std::stol(argv[3]));
    }
    if (std::strcmp(argv[4], "handwritten+calls") == 0) {
      return loop<HandCycleAndCalls>(argv[1], std::stol(argv[3]));
    }
  }
  std::fprintf(stderr,
               "usage: memory_bench EXTENSION connections K | cycles N | "
               "loop N extension|handwritten|handwritten+calls\n");
  return 2;
}
