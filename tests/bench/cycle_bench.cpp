// cycle_bench: the in-process benchmarks (Google Benchmark).
//
//   cycle/sync:NORMAL                start_run + mark_run_running + complete_run
//                                    against the same over the C API with
//                                    statements reused, one cycle of each in
//                                    turn; counters: the time of each and
//                                    their ratio (wall clock and CPU)
//   cycle/sync:FULL                  the same with synchronous=FULL
//   active_run/history:N/extension   SELECT active_run() with N finished runs
//   active_run/history:N/usual_query the query applications write:
//                                    status IN ('pending','running')
//                                    ORDER BY created_at DESC LIMIT 1
//                                    (it implies the partial index's WHERE,
//                                    so SQLite serves it from runs_one_active)
//   active_run/history:N/unindexed   the same query FROM runs NOT INDEXED:
//                                    what it costs on a table without the
//                                    partial index
//
// Each repetition of a cycle benchmark gets two fresh WAL database files (with
// 1,000 finished runs each) and fresh connections, and runs a fixed number of
// cycles, so that both sides do exactly the same work. Run it with
// --benchmark_repetitions (as tests/bench/measure.sh does) and take the
// median of the ratios: the ratio is the result, the absolute times belong
// to this machine at that moment.
//
//   cycle_bench EXTENSION [--brief] [Google Benchmark flags]
//
// --brief: few cycles and a 10,000-run history instead of 1,000,000, so that
// CI can check that every benchmark still runs (in a few seconds).
#include <benchmark/benchmark.h>

#include <time.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bench_db.h"

namespace {

using runs_bench::Db;
using runs_bench::Stmt;

struct Config {
  std::string extension;
  std::string scratch;      // a ScratchDir's path
  long cycles_normal = 4000;
  long cycles_full = 400;
  long big_history = 1000000;
  long small_history = 10;
};
Config config;

// A fresh WAL database at `path` with 1,000 finished runs.
void fresh_cycle_db(const std::string& path) {
  runs_bench::migrate(path, config.extension.c_str());
  Db setup(path, nullptr);
  runs_bench::add_history(setup.get(), 1000);
}

void remove_db(const std::string& path) {
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix, ignored);
}

double seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// One iteration = one extension cycle and one hand-written cycle, each on its
// own database and connection, in alternating order: both meet the same
// moments of a noisy machine, so their ratio (the counters) is paired. The
// benchmark's own time is that of the pair.
void cycle_pair_benchmark(benchmark::State& state, const char* synchronous) {
  static int counter = 0;
  const std::string base = config.scratch + "/cycle-" + std::to_string(++counter);
  fresh_cycle_db(base + "-ext.db");
  fresh_cycle_db(base + "-hand.db");
  {
    Db ext_db(base + "-ext.db", config.extension.c_str(), synchronous);
    Db hand_db(base + "-hand.db", config.extension.c_str(), synchronous);
    runs_bench::ExtensionCycle ext(ext_db.get());
    runs_bench::HandCycle hand(hand_db.get());
    for (int i = 0; i < 20; ++i) {  // warm the caches
      ext.run();
      hand.run();
    }
    double wall[2] = {0, 0};
    double cpu[2] = {0, 0};
    auto timed = [&](int which) {
      const double w = seconds(CLOCK_MONOTONIC);
      const double c = seconds(CLOCK_THREAD_CPUTIME_ID);
      benchmark::DoNotOptimize(which == 0 ? ext.run() : hand.run());
      cpu[which] += seconds(CLOCK_THREAD_CPUTIME_ID) - c;
      wall[which] += seconds(CLOCK_MONOTONIC) - w;
    };
    bool ext_first = true;
    for (auto _ : state) {
      timed(ext_first ? 0 : 1);
      timed(ext_first ? 1 : 0);
      ext_first = !ext_first;
    }
    const auto n = static_cast<double>(state.iterations());
    state.counters["extension_us"] = wall[0] / n * 1e6;
    state.counters["handwritten_us"] = wall[1] / n * 1e6;
    state.counters["ratio_wall"] = wall[0] / wall[1];
    state.counters["extension_cpu_us"] = cpu[0] / n * 1e6;
    state.counters["handwritten_cpu_us"] = cpu[1] / n * 1e6;
    state.counters["ratio_cpu"] = cpu[0] / cpu[1];
  }
  remove_db(base + "-ext.db");
  remove_db(base + "-hand.db");
}

void active_run_benchmark(benchmark::State& state, const std::string& path, const char* sql) {
  Db db(path, config.extension.c_str());
  Stmt query(db.get(), sql);
  const sqlite3_int64 expected = query.run();
  if (expected == 0) runs_bench::die(std::string("no active run found by ") + sql);
  for (auto _ : state) {
    if (query.run() != expected) runs_bench::die("the active run changed");
  }
}

// A database with `history` finished runs and one active run (the last).
std::string history_db(long history) {
  const std::string path = config.scratch + "/history-" + std::to_string(history) + ".db";
  runs_bench::migrate(path, config.extension.c_str());
  Db db(path, config.extension.c_str());
  runs_bench::add_history(db.get(), history);
  Stmt(db.get(), "SELECT start_run('bench')").run();
  runs_bench::exec(db.get(), "PRAGMA wal_checkpoint(TRUNCATE)");
  return path;
}

constexpr const char* kActiveRun = "SELECT active_run()";
constexpr const char* kUsualQuery =
    "SELECT id FROM runs WHERE status IN ('pending','running') ORDER BY created_at DESC LIMIT 1";
constexpr const char* kUnindexed =
    "SELECT id FROM runs NOT INDEXED WHERE status IN ('pending','running')"
    " ORDER BY created_at DESC LIMIT 1";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') {
    std::fprintf(stderr, "usage: cycle_bench EXTENSION [--brief] [benchmark flags]\n");
    return 2;
  }
  config.extension = argv[1];
  std::vector<char*> args{argv[0]};
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--brief") == 0) {
      config.cycles_normal = 50;
      config.cycles_full = 10;
      config.big_history = 10000;
    } else {
      args.push_back(argv[i]);
    }
  }
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 2;

  runs_bench::ScratchDir scratch(runs_bench::scratch_parent());
  config.scratch = scratch.path();

  for (const char* sync : {"NORMAL", "FULL"}) {
    const long cycles = std::strcmp(sync, "FULL") == 0 ? config.cycles_full : config.cycles_normal;
    benchmark::RegisterBenchmark((std::string("cycle/sync:") + sync).c_str(),
                                 [sync](benchmark::State& state) {
                                   cycle_pair_benchmark(state, sync);
                                 })
        ->Iterations(cycles)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
  }

  for (const long history : {config.small_history, config.big_history}) {
    const std::string path = history_db(history);
    const std::string prefix = "active_run/history:" + std::to_string(history);
    benchmark::RegisterBenchmark((prefix + "/extension").c_str(),
                                 [path](benchmark::State& state) {
                                   active_run_benchmark(state, path, kActiveRun);
                                 })
        ->Unit(benchmark::kMicrosecond)
        ->MinTime(0.05);
    benchmark::RegisterBenchmark((prefix + "/usual_query").c_str(),
                                 [path](benchmark::State& state) {
                                   active_run_benchmark(state, path, kUsualQuery);
                                 })
        ->Unit(benchmark::kMicrosecond)
        ->MinTime(0.05);
    benchmark::RegisterBenchmark((prefix + "/unindexed").c_str(),
                                 [path](benchmark::State& state) {
                                   active_run_benchmark(state, path, kUnindexed);
                                 })
        ->Unit(benchmark::kMicrosecond)
        ->MinTime(0.05);
  }

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
