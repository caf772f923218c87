#include "liveness.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <fstream>
#include <sstream>

namespace runs {
namespace {

std::string first_line(const char* path) {
  std::ifstream file(path);
  std::string line;
  std::getline(file, line);
  return line;
}

class SystemLiveness final : public Liveness {
 public:
  Owner self() const override {
    Owner owner;
    char host[HOST_NAME_MAX + 1] = {};
    if (gethostname(host, sizeof host - 1) == 0) owner.host = host;
    owner.boot_id = first_line("/proc/sys/kernel/random/boot_id");
    struct stat ns {};
    owner.pid_namespace = stat("/proc/self/ns/pid", &ns) == 0 ? static_cast<std::int64_t>(ns.st_ino) : 0;
    owner.pid = getpid();
    owner.start_time = start_time(owner.pid).value_or(0);
    return owner;
  }

  // /proc/<pid>/stat: "pid (comm) state ppid ... starttime ...", where comm
  // may hold spaces and parentheses, so fields are counted after the last ')'.
  // starttime is field 22; the state, field 3, is the first after it.
  std::optional<std::int64_t> start_time(std::int64_t pid) const override {
    if (pid <= 0) return std::nullopt;
    const std::string path = "/proc/" + std::to_string(pid) + "/stat";
    const std::string stat = first_line(path.c_str());
    const auto end_of_comm = stat.rfind(')');
    if (end_of_comm == std::string::npos) return std::nullopt;
    std::istringstream fields(stat.substr(end_of_comm + 1));
    std::string state;
    fields >> state;
    if (state == "Z" || state == "X" || state == "x") return std::nullopt;  // exited
    std::string skipped;
    for (int field = 4; field < 22; ++field) fields >> skipped;
    std::int64_t start = 0;
    if (!(fields >> start)) return std::nullopt;
    return start;
  }
};

std::string owner_text(const Owner& owner) {
  return "owner process " + std::to_string(owner.pid) + " on " + owner.host;
}

}  // namespace

const Liveness& system_liveness() noexcept {
  static const SystemLiveness liveness;
  return liveness;
}

bool same_process(const Owner& owner, const Owner& self) noexcept {
  return owner.host == self.host && owner.boot_id == self.boot_id &&
         owner.pid_namespace == self.pid_namespace && owner.pid == self.pid &&
         owner.start_time == self.start_time;
}

std::optional<std::string> abandoned_reason(const Lease& lease, const Owner& self,
                                            const Liveness& liveness) {
  if (lease.owner && !self.boot_id.empty() && lease.owner->host == self.host) {
    const Owner& owner = *lease.owner;
    if (owner.boot_id != self.boot_id) {
      return "abandoned: " + owner_text(owner) + " is gone: the host has restarted since";
    }
    if (owner.pid_namespace == self.pid_namespace) {
      const auto started = liveness.start_time(owner.pid);
      if (!started) return "abandoned: " + owner_text(owner) + " is gone";
      if (*started != owner.start_time) {
        return "abandoned: " + owner_text(owner) +
               " is gone (the pid now belongs to another process)";
      }
    }
  }
  if (lease.lease_expired) {
    std::string reason = "abandoned: its lease expired at " + lease.lease_expires_at.value_or("?");
    if (lease.owner) reason += " (" + owner_text(*lease.owner) + ")";
    return reason;
  }
  return std::nullopt;
}

}  // namespace runs
