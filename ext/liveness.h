// runs::Liveness: who the calling process is, whether another one still
// lives, and so whether an active run has been abandoned by its owner.
#pragma once

#include <optional>
#include <string>

#include <cstdint>

namespace runs {

// A process, as the owner_* columns of a run record it.
struct Owner {
  std::string host;             // host name
  std::string boot_id;          // the kernel's boot id; empty where unknown
  std::int64_t pid_namespace;  // inode of the pid namespace
  std::int64_t pid;
  std::int64_t start_time;     // clock ticks after boot at which the process started
};

// Reads the process table. The one seam between the run store and the
// operating system: tests present runs owned by other hosts or by processes
// that have died through it.
class Liveness {
 public:
  virtual ~Liveness() = default;
  // The calling process.
  virtual Owner self() const = 0;
  // The start time of the live process `pid` in the caller's pid namespace;
  // nothing when there is none (a zombie counts as none).
  virtual std::optional<std::int64_t> start_time(std::int64_t pid) const = 0;
};

// Linux: /proc, gethostname(). Stateless, so one serves every connection.
const Liveness& system_liveness() noexcept;

// What is known of an active run's owner and lease, as stored.
struct Lease {
  std::optional<Owner> owner;                  // nothing: no owner recorded
  std::optional<std::string> lease_expires_at; // nothing: no lease
  bool lease_expired = false;                  // lease_expires_at <= now
};

// Why the run holding `lease` is abandoned ("abandoned: ..."), or nothing
// while its owner may still be working. Exact for an owner in the caller's
// host boot and pid namespace; time-based (the lease) for the others.
std::optional<std::string> abandoned_reason(const Lease& lease, const Owner& self,
                                            const Liveness& liveness);

// True when `owner` is the process `self`: every field equal. Also where
// the boot id is unknown: a process can always recognise its own runs.
bool same_process(const Owner& owner, const Owner& self) noexcept;

}  // namespace runs
