// runs::Liveness: who the calling process is, whether another one still
// lives, and so whether an active run has been abandoned by its owner.
//
// The rule: a run is reclaimed at once only when the process table itself
// says that its owner is gone. Where the table cannot be read, where the
// reading may be wrong (another boot, pid namespace or time namespace, a /proc
// that belongs to another pid namespace), or where it answers with an error,
// liveness is "cannot tell" and the run's lease decides.
#pragma once

#include <map>
#include <optional>
#include <string>

#include <cstdint>

namespace runs {

// What makes a pid and a start time comparable between two processes: the
// same boot, pid namespace and time namespace. Read by a process about
// itself from /proc; nothing when it cannot read all of it.
struct Identity {
  std::string boot_id;                        // /proc/sys/kernel/random/boot_id
  std::int64_t pid_namespace = 0;             // inode of /proc/self/ns/pid
  std::optional<std::int64_t> time_namespace; // inode of /proc/self/ns/time; nothing on
                                              // a kernel without time namespaces
  std::int64_t start_time = 0;                // clock ticks after boot (field 22 of stat)

  bool operator==(const Identity&) const = default;
};

// A process, as the owner_* columns of a run record it.
struct Owner {
  std::optional<std::string> host;  // host name, for people to read; never compared
  std::int64_t pid = 0;
  std::optional<Identity> identity;  // nothing: unreadable, recorded as NULL
};

// What the process table says of one pid.
struct Probe {
  enum class State { kGone, kAlive, kCannotTell };
  State state = State::kCannotTell;
  std::int64_t start_time = 0;  // kAlive: the start time of the process with the pid
  std::string why;              // kCannotTell: what stood in the way
};

// Reads the process table. The one seam between the run store and the
// operating system: tests present runs owned by other hosts or by processes
// that have died through it.
class Liveness {
 public:
  virtual ~Liveness() = default;
  // The calling process. Its identity is nothing when it cannot read it, or
  // when its /proc belongs to another pid namespace than its own.
  virtual Owner self() const = 0;
  // The process `pid` of the caller's /proc: gone only when the kernel says
  // there is none (a zombie whose threads have all exited counts as none).
  virtual Probe probe(std::int64_t pid) const = 0;
};

// Linux: /proc, kill(pid, 0), gethostname(). Stateless, so one serves every
// connection.
const Liveness& system_liveness() noexcept;

// Asks `inner` once per pid, for one pass over many runs (runs of one owner
// share its answer). Short-lived: an answer is as old as the pass.
class MemoizedLiveness final : public Liveness {
 public:
  explicit MemoizedLiveness(const Liveness& inner) noexcept : inner_(inner) {}
  Owner self() const override { return inner_.self(); }
  Probe probe(std::int64_t pid) const override {
    const auto found = probes_.find(pid);
    if (found != probes_.end()) return found->second;
    return probes_.emplace(pid, inner_.probe(pid)).first->second;
  }

 private:
  const Liveness& inner_;
  mutable std::map<std::int64_t, Probe> probes_;
};

// Parses the text of /proc/<pid>/stat (all of it: comm may hold spaces, ')'
// and newlines, so fields are counted after the last ')'). Nothing when the
// text is not what the kernel writes. `zombie` is true for a zombie or dead
// task (state Z, X or x).
struct Stat {
  bool zombie = false;
  std::int64_t start_time = 0;
};
std::optional<Stat> parse_stat(const std::string& text);

// What is known of an active run's owner and lease, as stored.
struct Lease {
  std::optional<Owner> owner;                  // nothing: no owner recorded
  std::optional<std::string> lease_expires_at; // nothing: no lease
  bool lease_expired = false;                  // lease_expires_at <= now
};

// How a run is judged, from the calling process `self`.
struct Judgement {
  std::optional<std::string> abandoned;  // "abandoned: ...", or nothing while it holds
  bool exact = false;                    // decided by the process table, not the lease
  std::string basis;                     // why exact, or why only the lease decides
};
Judgement judge(const Lease& lease, const Owner& self, const Liveness& liveness);

// Why the run holding `lease` is abandoned ("abandoned: ..."), or nothing
// while its owner may still be working: judge(...).abandoned.
std::optional<std::string> abandoned_reason(const Lease& lease, const Owner& self,
                                            const Liveness& liveness);

// True when `owner` is the process `self`: host name, pid and identity equal
// (both unknown counts as equal: a process still recognises its own runs).
bool same_process(const Owner& owner, const Owner& self) noexcept;

}  // namespace runs
