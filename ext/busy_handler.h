// runs::BusyHandler: the busy handler that runs_busy_timeout(ms) installs on a
// connection in place of SQLite's busy_timeout.
//
// SQLite's own handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 ms and
// then 100 ms at a time: a waiter that wakes from a long sleep finds the lock
// taken again by a process that never slept, so the same few processes win
// while the others starve, and a waiter can lose for the whole timeout. This
// one sleeps briefly and often: a jittered exponential backoff from
// kDefaultBackoff's first sleep doubling to its cap (docs/performance.md,
// item 7, says why these values), until the time actually waited since the lock was first found
// taken reaches the timeout, measured on the monotonic clock (not the sum of
// the sleeps, which oversleep). It never sleeps past that deadline: the last
// sleep is cut to end on it, and the next call gives up (SQLITE_BUSY).
//
// No SQLite header here: the handler is plain C++ that SQLite calls through
// BusyHandler::callback, and the benchmarks link it directly.
#pragma once

#include <cstdint>
#include <optional>

namespace runs {

// The monotonic clock and the sleeper: the seam through which the unit tests
// drive the handler on a simulated clock and assert its exact decisions.
class BusyClock {
 public:
  virtual ~BusyClock() = default;
  // Nanoseconds on a monotonic clock (CLOCK_MONOTONIC).
  virtual std::int64_t now_ns() const noexcept = 0;
  // Sleeps until now_ns() reads at least `wake_ns` (give or take the
  // kernel's timer slack).
  virtual void sleep_until_ns(std::int64_t wake_ns) const noexcept = 0;
};

// clock_gettime(CLOCK_MONOTONIC) and clock_nanosleep. Stateless: one serves
// every connection.
const BusyClock& system_busy_clock() noexcept;

// How the waits grow. The defaults are the tuned constants.
struct BackoffPolicy {
  std::int64_t first_sleep_ns;  // the first sleep's mean
  std::int64_t max_sleep_ns;    // the cap of the mean; each sleep is drawn in [mean/2, mean*3/2)
};

inline constexpr BackoffPolicy kDefaultBackoff{50'000, 1'000'000};

// The longest timeout runs_busy_timeout() accepts, in ms: one hour. Longer
// waits for a write lock that runs hold for milliseconds mean a stuck writer;
// the limit also keeps every deadline computation far from overflow.
inline constexpr std::int64_t kMaxBusyTimeoutMs = 60LL * 60 * 1000;

// One per connection (never shared between connections); SQLite calls it
// with the connection's mutex held, so one thread at a time. Nothing is
// allocated per wait.
class BusyHandler {
 public:
  // `seed` seeds the jitter; 0 derives one from the object's address, the
  // clock and the process id, so that connections and processes differ.
  explicit BusyHandler(const BusyClock& clock = system_busy_clock(),
                       BackoffPolicy policy = kDefaultBackoff, std::uint64_t seed = 0) noexcept;

  // The timeout, in ms (0: none set). The caller checks the range.
  void set_timeout_ms(std::int64_t ms) noexcept { timeout_ns_ = ms * 1'000'000; }
  std::int64_t timeout_ms() const noexcept { return timeout_ns_ / 1'000'000; }

  // The decision for SQLite's call number `tries` (0 for the first call of a
  // locking event): the clock reading to sleep until before SQLite tries
  // again, never later than the event's start plus the timeout; or nothing:
  // give up (SQLite then returns SQLITE_BUSY). Reads the clock once; does
  // not sleep. SQLite restarts the count at each step of a statement; a
  // second wait within one step continues it, and then shares the first
  // one's deadline, as with SQLite's own handler, whose sleeps follow the
  // count.
  std::optional<std::int64_t> next_wake_ns(int tries) noexcept;

  // What SQLite calls: next_wake_ns(), then the sleep. Returns 1 (retry) or
  // 0 (give up).
  int on_busy(int tries) noexcept;

  // The sqlite3_busy_handler() callback; `handler` is the BusyHandler.
  static int callback(void* handler, int tries) noexcept;

 private:
  std::uint64_t next_random() noexcept;

  const BusyClock& clock_;
  BackoffPolicy policy_;
  std::int64_t timeout_ns_ = 0;
  std::int64_t wait_start_ns_ = 0;  // when the current locking event began
  std::uint64_t random_state_;
};

}  // namespace runs
