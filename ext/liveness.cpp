#include "liveness.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>

namespace runs {
namespace {

// A file's whole content, or the errno that stopped reading it.
struct FileText {
  std::string text;
  int error = 0;
};

FileText read_file(const char* path) {
  FileText file;
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    file.error = errno;
    return file;
  }
  char buffer[1024];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n > 0) {
      file.text.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      file.error = errno;
      break;
    }
  }
  close(fd);
  return file;
}

std::string error_text(int error) { return std::string(std::strerror(error)); }

std::optional<std::int64_t> to_int64(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// The inode of a namespace link of /proc/self/ns, or the errno.
std::optional<std::int64_t> namespace_inode(const char* path, int& error) {
  struct stat ns {};
  if (stat(path, &ns) != 0) {
    error = errno;
    return std::nullopt;
  }
  return static_cast<std::int64_t>(ns.st_ino);
}

// True when /proc/self names the calling process: the /proc mounted here
// belongs to the caller's pid namespace. Where it does not (unshare --pid
// without --mount-proc), pids read from it are another namespace's.
bool proc_is_own() {
  char link[32] = {};
  const ssize_t n = readlink("/proc/self", link, sizeof link - 1);
  if (n <= 0) return false;
  return to_int64(std::string_view(link, static_cast<std::size_t>(n))) == getpid();
}

// The namespaces are read from /proc/thread-self: the calling thread's, which
// every thread shares, and which stay readable when the leader has exited
// (then /proc/self/ns/* are gone).
std::optional<Identity> read_identity() {
  if (!proc_is_own()) return std::nullopt;
  Identity identity;
  const FileText boot = read_file("/proc/sys/kernel/random/boot_id");
  if (boot.error != 0) return std::nullopt;
  identity.boot_id = boot.text.substr(0, boot.text.find('\n'));
  if (identity.boot_id.size() != 36) return std::nullopt;  // not the UUID the kernel writes
  int error = 0;
  const auto pid_ns = namespace_inode("/proc/thread-self/ns/pid", error);
  if (!pid_ns) return std::nullopt;
  identity.pid_namespace = *pid_ns;
  identity.time_namespace = namespace_inode("/proc/thread-self/ns/time", error);
  // Absent only on a kernel without time namespaces (before 5.6), where every
  // process of the boot shares one clock; any other error leaves it unknown.
  if (!identity.time_namespace && error != ENOENT) return std::nullopt;
  const FileText stat = read_file("/proc/self/stat");
  if (stat.error != 0) return std::nullopt;
  // The caller lives, even where its leader shows as a zombie (its main
  // thread has called pthread_exit()).
  const auto parsed = parse_stat(stat.text);
  if (!parsed) return std::nullopt;
  identity.start_time = parsed->start_time;
  return identity;
}

// True when a thread other than the leader `pid` is listed in
// /proc/<pid>/task; nothing when the list cannot be read.
std::optional<bool> has_other_threads(std::int64_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/task";
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return std::nullopt;
  const std::string leader = std::to_string(pid);
  bool others = false;
  errno = 0;
  while (const dirent* entry = readdir(dir)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != ".." && name != leader) {
      others = true;
      break;
    }
  }
  const int error = errno;
  closedir(dir);
  if (!others && error != 0) return std::nullopt;
  return others;
}

class SystemLiveness final : public Liveness {
 public:
  Owner self() const override {
    Owner owner;
    char host[HOST_NAME_MAX + 1] = {};
    if (gethostname(host, sizeof host - 1) == 0 && host[0] != '\0') owner.host = host;
    owner.pid = getpid();
    owner.identity = read_identity();
    return owner;
  }

  Probe probe(std::int64_t pid) const override {
    Probe probe;
    if (pid <= 0 || pid > INT_MAX) {
      probe.why = "pid " + std::to_string(pid) + " is not a process id";
      return probe;
    }
    const std::string path = "/proc/" + std::to_string(pid) + "/stat";
    const FileText stat = read_file(path.c_str());
    if (stat.error == ENOENT || stat.error == ESRCH) {
      // No entry: the process is gone, or /proc hides it (hidepid=invisible
      // hides other users' processes). The kernel's own table tells which.
      if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
        probe.state = Probe::State::kGone;
      } else {
        probe.why = path + " is hidden, but a process with this pid exists";
      }
      return probe;
    }
    if (stat.error != 0) {
      probe.why = "cannot read " + path + ": " + error_text(stat.error);
      return probe;
    }
    const auto parsed = parse_stat(stat.text);
    if (!parsed) {
      probe.why = "cannot parse " + path;
      return probe;
    }
    if (parsed->zombie) {
      // The leader has exited; the process lives while any thread does
      // (pthread_exit() from main).
      const auto others = has_other_threads(pid);
      if (!others) {
        probe.why = "cannot list the threads of process " + std::to_string(pid);
        return probe;
      }
      if (!*others) {
        probe.state = Probe::State::kGone;
        return probe;
      }
    }
    probe.state = Probe::State::kAlive;
    probe.start_time = parsed->start_time;
    return probe;
  }
};

std::string owner_text(const Owner& owner) {
  std::string text = "owner process " + std::to_string(owner.pid);
  if (owner.host) text += " on " + *owner.host;
  return text;
}

}  // namespace

std::optional<Stat> parse_stat(const std::string& text) {
  // "pid (comm) state ppid ... starttime ...": state is field 3, the first
  // after the last ')'; starttime is field 22.
  const auto end_of_comm = text.rfind(')');
  if (end_of_comm == std::string::npos) return std::nullopt;
  std::string_view rest(text);
  rest.remove_prefix(end_of_comm + 1);
  Stat stat;
  for (int field = 3; field <= 22; ++field) {
    if (rest.empty() || rest.front() != ' ') return std::nullopt;
    rest.remove_prefix(1);
    const auto end = rest.find_first_of(" \n");
    const std::string_view value = rest.substr(0, end);
    rest.remove_prefix(value.size());
    if (field == 3) {
      if (value.size() != 1) return std::nullopt;
      stat.zombie = value == "Z" || value == "X" || value == "x";
    } else if (field == 22) {
      const auto start = to_int64(value);
      if (!start || *start < 0) return std::nullopt;
      stat.start_time = *start;
    } else if (!to_int64(value)) {
      return std::nullopt;
    }
  }
  return stat;
}

const Liveness& system_liveness() noexcept {
  static const SystemLiveness liveness;
  return liveness;
}

bool same_process(const Owner& owner, const Owner& self) noexcept {
  return owner.host == self.host && owner.pid == self.pid && owner.identity == self.identity;
}

Judgement judge(const Lease& lease, const Owner& self, const Liveness& liveness) {
  Judgement judgement;
  if (!lease.owner) {
    judgement.basis = "lease only: the run has no recorded owner";
  } else if (!lease.owner->identity) {
    judgement.basis =
        "lease only: the owner could not read its identity (boot id, pid namespace, start time)";
  } else if (!self.identity) {
    judgement.basis =
        "lease only: this process cannot read its own identity (boot id, pid namespace, start "
        "time), or its /proc belongs to another pid namespace";
  } else if (lease.owner->identity->boot_id != self.identity->boot_id) {
    judgement.basis = "lease only: the owner ran on another host or in another boot";
  } else if (lease.owner->identity->pid_namespace != self.identity->pid_namespace) {
    judgement.basis = "lease only: the owner is in another pid namespace";
  } else if (lease.owner->identity->time_namespace != self.identity->time_namespace) {
    judgement.basis = "lease only: the owner is in another time namespace";
  } else {
    const Owner& owner = *lease.owner;
    const Probe probe = liveness.probe(owner.pid);
    switch (probe.state) {
      case Probe::State::kGone:
        judgement.exact = true;
        judgement.basis = "exact: no process has the owner's pid";
        judgement.abandoned = "abandoned: " + owner_text(owner) + " is gone";
        return judgement;
      case Probe::State::kAlive:
        judgement.exact = true;
        if (probe.start_time != owner.identity->start_time) {
          judgement.basis = "exact: the owner's pid belongs to a process started at another time";
          judgement.abandoned =
              "abandoned: " + owner_text(owner) + " is gone (the pid now belongs to another process)";
          return judgement;
        }
        // Alive; a lease that has run out still ends a run whose owner hangs.
        judgement.basis = "exact: the owner process is alive";
        break;
      case Probe::State::kCannotTell:
        judgement.basis = "lease only: the process table cannot tell: " + probe.why;
        break;
    }
  }
  if (lease.lease_expired) {
    std::string reason = "abandoned: its lease expired at " + lease.lease_expires_at.value_or("?");
    if (lease.owner) reason += " (" + owner_text(*lease.owner) + ")";
    judgement.abandoned = std::move(reason);
  }
  return judgement;
}

std::optional<std::string> abandoned_reason(const Lease& lease, const Owner& self,
                                            const Liveness& liveness) {
  return judge(lease, self, liveness).abandoned;
}

}  // namespace runs
