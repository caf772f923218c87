#include "busy_handler.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace runs {
namespace {

class SystemBusyClock final : public BusyClock {
 public:
  std::int64_t now_ns() const noexcept override {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
  }

  // An absolute time on the same clock: a signal (EINTR) neither shortens
  // nor lengthens the sleep, and the deadline is the one decided.
  void sleep_until_ns(std::int64_t wake_ns) const noexcept override {
    const timespec deadline{static_cast<time_t>(wake_ns / 1'000'000'000),
                            static_cast<long>(wake_ns % 1'000'000'000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nullptr) == EINTR) {
    }
  }
};

// splitmix64's output function: turns a counter or a weak seed into a
// well-mixed 64-bit value.
std::uint64_t mix(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

const BusyClock& system_busy_clock() noexcept {
  static const SystemBusyClock clock;
  return clock;
}

BusyHandler::BusyHandler(const BusyClock& clock, BackoffPolicy policy, std::uint64_t seed) noexcept
    : clock_(clock), policy_(policy) {
  if (seed == 0) {
    // Differs between connections of a process (the address), between
    // processes (the pid) and between runs (the clock).
    seed = reinterpret_cast<std::uintptr_t>(this) ^
           (static_cast<std::uint64_t>(getpid()) << 32) ^
           static_cast<std::uint64_t>(clock.now_ns());
  }
  random_state_ = mix(seed);
}

std::uint64_t BusyHandler::next_random() noexcept {
  random_state_ += 0x9e3779b97f4a7c15ULL;  // splitmix64
  return mix(random_state_);
}

std::optional<std::int64_t> BusyHandler::next_wake_ns(int tries) noexcept {
  const std::int64_t now = clock_.now_ns();
  // SQLite numbers the calls of one locking event from 0.
  if (tries <= 0) wait_start_ns_ = now;
  const std::int64_t remaining = timeout_ns_ - (now - wait_start_ns_);
  if (remaining <= 0) return std::nullopt;
  // The mean doubles per try up to the cap; the shift stops once past it.
  std::int64_t mean = policy_.first_sleep_ns;
  for (int i = 0; i < tries && mean < policy_.max_sleep_ns; ++i) mean *= 2;
  mean = std::min(mean, policy_.max_sleep_ns);
  // Uniform in [mean/2, mean*3/2): waiters that met the lock together wake
  // apart, and none keeps an unlucky phase against the lock holder.
  const std::int64_t low = mean / 2;
  const auto span = static_cast<std::uint64_t>(std::max<std::int64_t>(mean, 1));
  const std::int64_t sleep = low + static_cast<std::int64_t>(next_random() % span);
  return now + std::clamp<std::int64_t>(sleep, 1, remaining);
}

int BusyHandler::on_busy(int tries) noexcept {
  const auto wake = next_wake_ns(tries);
  if (!wake) return 0;
  clock_.sleep_until_ns(*wake);
  return 1;
}

int BusyHandler::callback(void* handler, int tries) noexcept {
  return static_cast<BusyHandler*>(handler)->on_busy(tries);
}

}  // namespace runs
