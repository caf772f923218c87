// runs_busy_timeout(ms) and the busy handler behind it (ext/busy_handler.h).
//
// BusyHandlerDecisions drives the handler on a simulated clock, the way
// SQLite calls it (tries 0, 1, 2, ... until it returns 0), and asserts its
// exact decisions: every sleep inside the jitter band of its try, never a
// wake past the locking event's start plus the timeout, and the give-up at
// the first call that finds the timeout reached, however long the sleeps
// and the lock attempts really took. No wall time is involved.
//
// BusyTimeout tests the SQL function on real connections: its arguments,
// what it installs, 0, PRAGMA busy_timeout before and after, loading the
// library twice, and many connections on many threads.
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

#include "busy_handler.h"
#include "temp_dir.h"
#include "unit_helpers.h"

namespace {

using namespace runs_test;
using runs::BackoffPolicy;
using runs::BusyClock;
using runs::BusyHandler;

constexpr std::int64_t kMs = 1'000'000;

// A clock that only moves when told: sleeping moves it to the wake time plus
// `oversleep_ns` (the kernel's timer slack, a busy machine).
class FakeClock final : public BusyClock {
 public:
  std::int64_t now_ns() const noexcept override { return now; }
  void sleep_until_ns(std::int64_t wake_ns) const noexcept override {
    wakes.push_back(wake_ns);
    now = std::max(now, wake_ns) + oversleep_ns;
  }
  mutable std::int64_t now = 1'000 * kMs;
  mutable std::vector<std::int64_t> wakes;
  std::int64_t oversleep_ns = 0;
};

// One locking event as SQLite runs it: the handler is called with tries 0,
// 1, 2, ... and each retry of the lock costs `attempt_ns`, until the handler
// gives up. Returns how many times it said retry.
int wait_until_given_up(BusyHandler& handler, FakeClock& clock, std::int64_t attempt_ns) {
  int tries = 0;
  while (handler.on_busy(tries) != 0) {
    ++tries;
    clock.now += attempt_ns;
  }
  return tries;
}

TEST(BusyHandlerDecisions, EachSleepIsInItsJitterBand) {
  const BackoffPolicy policy{100'000, 2'000'000};
  FakeClock clock;
  BusyHandler handler(clock, policy, 42);
  handler.set_timeout_ms(5000);
  std::int64_t mean = policy.first_sleep_ns;
  for (int tries = 0; tries < 200; ++tries) {
    const std::int64_t before = clock.now;
    const auto wake = handler.next_wake_ns(tries);
    ASSERT_TRUE(wake.has_value()) << "gave up at try " << tries;
    const std::int64_t sleep = *wake - before;
    EXPECT_GE(sleep, mean / 2) << "try " << tries;
    EXPECT_LT(sleep, mean + mean / 2) << "try " << tries;
    clock.now = *wake;
    mean = std::min(mean * 2, policy.max_sleep_ns);
  }
}

TEST(BusyHandlerDecisions, GivesUpAtTheTimeoutAndNeverWakesPastIt) {
  for (const std::int64_t timeout_ms : {1, 7, 100, 5000}) {
    for (const std::int64_t attempt_ns : {std::int64_t{0}, std::int64_t{20'000}, 3 * kMs}) {
      for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        FakeClock clock;
        BusyHandler handler(clock, runs::kDefaultBackoff, seed);
        handler.set_timeout_ms(timeout_ms);
        const std::int64_t start = clock.now;
        const std::int64_t deadline = start + timeout_ms * kMs;
        wait_until_given_up(handler, clock, attempt_ns);
        ASSERT_FALSE(clock.wakes.empty());
        for (const std::int64_t wake : clock.wakes) EXPECT_LE(wake, deadline);
        // It gave up at the first call that found the deadline reached: the
        // call before it still had time left.
        EXPECT_GE(clock.now, deadline);
        EXPECT_LT(clock.wakes.back(), deadline + 1) << "timeout " << timeout_ms;
        EXPECT_LE(clock.now - deadline, attempt_ns)
            << "timeout " << timeout_ms << " ms, seed " << seed;
      }
    }
  }
}

TEST(BusyHandlerDecisions, CountsTheTimeMeasuredNotTheSleepsAsked) {
  // Every sleep oversleeps by 1 ms (a loaded machine): the sum of the sleeps
  // asked for would reach 50 ms long after 50 ms have passed. The handler
  // reads the clock, so it gives up once the clock says 50 ms, within one
  // oversleep.
  FakeClock clock;
  clock.oversleep_ns = 1 * kMs;
  BusyHandler handler(clock, runs::kDefaultBackoff, 7);
  handler.set_timeout_ms(50);
  const std::int64_t deadline = clock.now + 50 * kMs;
  wait_until_given_up(handler, clock, 0);
  for (const std::int64_t wake : clock.wakes) EXPECT_LE(wake, deadline);
  EXPECT_GE(clock.now, deadline);
  EXPECT_LE(clock.now, deadline + clock.oversleep_ns);
}

TEST(BusyHandlerDecisions, ANewLockingEventStartsANewWait) {
  FakeClock clock;
  BusyHandler handler(clock, runs::kDefaultBackoff, 3);
  handler.set_timeout_ms(10);
  wait_until_given_up(handler, clock, 0);
  EXPECT_FALSE(handler.next_wake_ns(1000).has_value());
  // tries 0: SQLite's next locking event; the full timeout again.
  const std::int64_t start = clock.now;
  clock.wakes.clear();
  wait_until_given_up(handler, clock, 0);
  EXPECT_GE(clock.now, start + 10 * kMs);
  EXPECT_LE(clock.wakes.back(), start + 10 * kMs);
}

TEST(BusyHandlerDecisions, NoTimeoutGivesUpAtOnce) {
  FakeClock clock;
  BusyHandler handler(clock, runs::kDefaultBackoff, 1);
  EXPECT_FALSE(handler.next_wake_ns(0).has_value());
  EXPECT_EQ(handler.on_busy(0), 0);
  EXPECT_TRUE(clock.wakes.empty());
}

TEST(BusyHandlerDecisions, TheJitterDependsOnTheSeedOnly) {
  auto sleeps = [](std::uint64_t seed) {
    FakeClock clock;
    BusyHandler handler(clock, runs::kDefaultBackoff, seed);
    handler.set_timeout_ms(1000);
    std::vector<std::int64_t> out;
    for (int tries = 0; tries < 50; ++tries) {
      const std::int64_t before = clock.now;
      clock.now = *handler.next_wake_ns(tries);
      out.push_back(clock.now - before);
    }
    return out;
  };
  EXPECT_EQ(sleeps(5), sleeps(5));
  EXPECT_NE(sleeps(5), sleeps(6));
  // Seeded from the object, the pid and the clock: two connections differ.
  FakeClock clock;
  BusyHandler a(clock), b(clock);
  a.set_timeout_ms(1000);
  b.set_timeout_ms(1000);
  std::vector<std::int64_t> from_a, from_b;
  for (int tries = 0; tries < 20; ++tries) {
    from_a.push_back(*a.next_wake_ns(tries));
    from_b.push_back(*b.next_wake_ns(tries));
  }
  EXPECT_NE(from_a, from_b);
}

// ------------------------------------------------------------- the SQL function

std::int64_t monotonic_ms() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000;
}

// Two connections to one WAL database of a scratch directory.
class BusyTimeout : public ::testing::Test {
 protected:
  void SetUp() override {
    setup_.exec("PRAGMA journal_mode = WAL");
    setup_.exec("CREATE TABLE t(x)");
  }
  TempDir dir_;
  std::string path_ = dir_.db();
  TestDb setup_{path_};
};

TEST_F(BusyTimeout, ReturnsTheTimeoutAndChecksIt) {
  TestDb db;
  // Loading asked whether an earlier load had a handler, and left no error.
  EXPECT_EQ(sqlite3_errcode(db.get()), SQLITE_OK) << sqlite3_errmsg(db.get());
  // (argument, what runs_busy_timeout() returns)
  for (const auto& [ms, returned] : std::vector<std::pair<std::string, std::string>>{
           {"5000", "5000"}, {"2.0", "2"}, {"3600000", "3600000"}, {"0", "0"}}) {
    EXPECT_EQ(db.value("SELECT runs_busy_timeout(" + ms + ")"), returned);
  }
  // (argument, what the message says of it)
  for (const auto& [ms, what] : std::vector<std::pair<std::string, std::string>>{
           {"-1", "must not be negative, got -1"},
           {"3600001", "must be at most 3600000 (one hour), got 3600001"},
           {"9223372036854775807", "must be at most 3600000 (one hour), got 9223372036854775807"},
           {"1.5", "must be an integer, got real 1.5"},
           {"'100 ms'", "must be an integer, got text"},
           {"NULL", "must be an integer, got NULL"}}) {
    EXPECT_EQ(db.error("SELECT runs_busy_timeout(" + ms + ")", SQLITE_ERROR), "runs_busy_timeout(): ms " + what);
  }
  EXPECT_EQ(db.error("SELECT runs_busy_timeout()", SQLITE_ERROR),
            "wrong number of arguments to function runs_busy_timeout()");
  db.exec("CREATE VIEW v AS SELECT runs_busy_timeout(10)");
  EXPECT_EQ(db.error("SELECT * FROM v", SQLITE_ERROR), "unsafe use of runs_busy_timeout()");
}

TEST_F(BusyTimeout, ReplacesBusyTimeoutAndPragmaReplacesIt) {
  TestDb db(path_);
  expect_values(db, {{"PRAGMA busy_timeout = 1234", "1234"},
                     {"SELECT runs_busy_timeout(5000)", "5000"},
                     // sqlite3_busy_handler() clears SQLite's own timeout: the pragma reads 0.
                     {"PRAGMA busy_timeout", "0"},
                     {"PRAGMA busy_timeout = 250", "250"},
                     {"SELECT runs_busy_timeout(0)", "0"},
                     {"PRAGMA busy_timeout", "0"}});
}

TEST_F(BusyTimeout, WaitsTheTimeoutThenReportsBusy) {
  EXPECT_EQ(setup_.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  TestDb holder(path_);
  holder.exec("BEGIN IMMEDIATE");
  TestDb db(path_);
  EXPECT_EQ(db.value("SELECT runs_busy_timeout(40)"), "40");
  // The handler never gives up before the timeout, measured on the same
  // monotonic clock: a lower bound that follows from its logic, not a speed.
  const std::int64_t before = monotonic_ms();
  EXPECT_EQ(db.error("BEGIN IMMEDIATE", SQLITE_BUSY), "database is locked");
  EXPECT_GE(monotonic_ms() - before, 40);
  // The application's statements and the extension's alike.
  EXPECT_EQ(db.error("SELECT start_run('s')", SQLITE_BUSY), "start_run(): " + kBusy);
  EXPECT_EQ(db.error("INSERT INTO t VALUES (1)", SQLITE_BUSY), "database is locked");
  holder.exec("ROLLBACK");
  EXPECT_EQ(db.value("SELECT start_run('s')"), "1");
}

TEST_F(BusyTimeout, AWaiterGetsTheLockOnceItIsFreed) {
  TestDb holder(path_);
  holder.exec("BEGIN IMMEDIATE");
  holder.exec("INSERT INTO t VALUES (1)");
  Outcome waited;
  std::thread waiter([&] {
    TestDb db(path_);
    db.exec("SELECT runs_busy_timeout(60000)");
    waited = db.run("INSERT INTO t VALUES (2)");
  });
  holder.exec("COMMIT");
  waiter.join();
  EXPECT_EQ(waited.code, SQLITE_OK) << waited.message;
  EXPECT_EQ(setup_.value("SELECT group_concat(x) FROM (SELECT x FROM t ORDER BY x)"), "1,2");
}

TEST_F(BusyTimeout, ZeroRemovesTheHandler) {
  TestDb holder(path_);
  holder.exec("BEGIN IMMEDIATE");
  TestDb db(path_);
  db.exec("SELECT runs_busy_timeout(3600000)");
  EXPECT_EQ(db.value("SELECT runs_busy_timeout(0)"), "0");
  // With an hour's handler in place this would wait an hour.
  EXPECT_EQ(db.error("BEGIN IMMEDIATE", SQLITE_BUSY), "database is locked");
}

TEST_F(BusyTimeout, LoadingTheLibraryAgainKeepsTheHandler) {
  TestDb holder(path_);
  holder.exec("BEGIN IMMEDIATE");
  TestDb db(path_);
  EXPECT_EQ(db.value("SELECT runs_busy_timeout(30)"), "30");
  // A second load replaces every registration, and with them the first
  // load's per-connection state; SQLite still holds the handler's pointer.
  char* error = nullptr;
  ASSERT_EQ(sqlite3_load_extension(db.get(), RUNS_EXTENSION_PATH, nullptr, &error), SQLITE_OK)
      << (error ? error : "");
  sqlite3_free(error);
  EXPECT_EQ(sqlite3_errcode(db.get()), SQLITE_OK) << sqlite3_errmsg(db.get());
  // The handler (the same state, adopted by the new load) still waits its 30
  // ms: under AddressSanitizer and valgrind a freed state would show here.
  const std::int64_t before = monotonic_ms();
  EXPECT_EQ(db.error("BEGIN IMMEDIATE", SQLITE_BUSY), "database is locked");
  EXPECT_GE(monotonic_ms() - before, 30);
  EXPECT_EQ(db.value("SELECT runs_busy_timeout(20)"), "20");
  EXPECT_EQ(db.error("BEGIN IMMEDIATE", SQLITE_BUSY), "database is locked");
}

TEST_F(BusyTimeout, ManyConnectionsOnManyThreads) {
  EXPECT_EQ(setup_.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  constexpr int kThreads = 8;
  constexpr int kConnectionsPerThread = 3;
  constexpr int kCycles = 30;
  std::vector<std::vector<Outcome>> failures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::unique_ptr<TestDb>> dbs;
      for (int c = 0; c < kConnectionsPerThread; ++c) {
        dbs.push_back(std::make_unique<TestDb>(path_));
        const Outcome set = dbs.back()->run("SELECT runs_busy_timeout(60000)");
        if (set.code != SQLITE_OK) failures[t].push_back(set);
      }
      for (int i = 0; i < kCycles; ++i) {
        const TestDb& db = *dbs[static_cast<std::size_t>(i % kConnectionsPerThread)];
        const std::string key = quote("key-" + std::to_string(t));
        const Outcome start = db.run("SELECT start_run('s', 'test', " + key + ")");
        if (start.code != SQLITE_OK || start.rows.size() != 1) {
          failures[t].push_back(start);
          continue;
        }
        const std::string id = *start.rows[0][0];
        for (const std::string& sql : {"SELECT mark_run_running(" + id + ")",
                                      "SELECT complete_run(" + id + ")"}) {
          const Outcome step = db.run(sql);
          if (step.code != SQLITE_OK || step.rows[0][0] != "updated") failures[t].push_back(step);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    for (const Outcome& failure : failures[t]) {
      ADD_FAILURE() << "thread " << t << ": " << failure.extended << " " << failure.message;
    }
  }
  EXPECT_EQ(setup_.value("SELECT count(*) FROM runs WHERE status = 'completed'"),
            std::to_string(kThreads * kCycles));
}

}  // namespace
