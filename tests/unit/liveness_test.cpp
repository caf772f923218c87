// ext/liveness.cpp: the staleness rules, through a fake process table, and
// the Linux process table itself, with real child processes.
#include "liveness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>

extern char** environ;

namespace {

using runs::abandoned_reason;
using runs::Lease;
using runs::Owner;

const Owner kSelf{"host-a", "boot-1", 4026531836, 100, 5000};

// A process table with the processes the test puts in it.
class FakeLiveness final : public runs::Liveness {
 public:
  Owner self() const override { return kSelf; }
  std::optional<std::int64_t> start_time(std::int64_t pid) const override {
    const auto found = processes.find(pid);
    if (found == processes.end()) return std::nullopt;
    return found->second;
  }
  std::map<std::int64_t, std::int64_t> processes{{100, 5000}, {200, 6000}};
};

Lease owned_by(Owner owner) { return Lease{std::move(owner), std::nullopt, false}; }

std::optional<std::string> reason(const Lease& lease) {
  const FakeLiveness liveness;
  return abandoned_reason(lease, kSelf, liveness);
}

TEST(Staleness, ALiveOwnerOnThisHostHolds) {
  EXPECT_EQ(reason(owned_by({"host-a", "boot-1", 4026531836, 200, 6000})), std::nullopt);
  EXPECT_EQ(reason(owned_by(kSelf)), std::nullopt);
}

TEST(Staleness, AGoneOwnerOnThisHostIsAbandonedAtOnce) {
  EXPECT_EQ(reason(owned_by({"host-a", "boot-1", 4026531836, 300, 7000})),
            "abandoned: owner process 300 on host-a is gone");
}

TEST(Staleness, AReusedPidIsAbandoned) {
  EXPECT_EQ(reason(owned_by({"host-a", "boot-1", 4026531836, 200, 5999})),
            "abandoned: owner process 200 on host-a is gone (the pid now belongs to another process)");
}

TEST(Staleness, AnEarlierBootOfThisHostIsAbandoned) {
  EXPECT_EQ(reason(owned_by({"host-a", "boot-0", 4026531836, 200, 6000})),
            "abandoned: owner process 200 on host-a is gone: the host has restarted since");
}

TEST(Staleness, AnotherHostOrPidNamespaceIsJudgedByItsLeaseOnly) {
  EXPECT_EQ(reason(owned_by({"host-b", "boot-1", 4026531836, 300, 7000})), std::nullopt);
  EXPECT_EQ(reason(owned_by({"host-a", "boot-1", 4026531999, 300, 7000})), std::nullopt);
  Lease expired = owned_by({"host-b", "boot-9", 1, 300, 7000});
  expired.lease_expires_at = "2026-11-29T10:00:00.000Z";
  EXPECT_EQ(reason(expired), std::nullopt);  // set, not yet expired
  expired.lease_expired = true;
  EXPECT_EQ(reason(expired),
            "abandoned: its lease expired at 2026-11-29T10:00:00.000Z (owner process 300 on host-b)");
}

TEST(Staleness, AnExpiredLeaseAbandonsEvenALiveOwner) {
  Lease lease = owned_by({"host-a", "boot-1", 4026531836, 200, 6000});
  lease.lease_expires_at = "2026-11-29T10:00:00.000Z";
  lease.lease_expired = true;
  EXPECT_EQ(reason(lease),
            "abandoned: its lease expired at 2026-11-29T10:00:00.000Z (owner process 200 on host-a)");
}

TEST(Staleness, WithoutAnOwnerOnlyALeaseCanExpire) {
  EXPECT_EQ(reason(Lease{}), std::nullopt);
  EXPECT_EQ(reason(Lease{std::nullopt, "2026-11-29T10:00:00.000Z", true}),
            "abandoned: its lease expired at 2026-11-29T10:00:00.000Z");
}

TEST(Staleness, WithoutABootIdNothingIsExact) {
  const Owner unknown{"host-a", "", 0, 100, 0};
  const FakeLiveness liveness;
  EXPECT_EQ(abandoned_reason(owned_by({"host-a", "", 0, 300, 7000}), unknown, liveness), std::nullopt);
  // A process still recognises its own runs.
  EXPECT_TRUE(runs::same_process(unknown, unknown));
  EXPECT_FALSE(runs::same_process({"host-a", "", 0, 101, 0}, unknown));
}

TEST(Staleness, SameProcessComparesEveryField) {
  EXPECT_TRUE(runs::same_process(kSelf, kSelf));
  EXPECT_FALSE(runs::same_process({"host-b", "boot-1", 4026531836, 100, 5000}, kSelf));
  EXPECT_FALSE(runs::same_process({"host-a", "boot-2", 4026531836, 100, 5000}, kSelf));
  EXPECT_FALSE(runs::same_process({"host-a", "boot-1", 1, 100, 5000}, kSelf));
  EXPECT_FALSE(runs::same_process({"host-a", "boot-1", 4026531836, 101, 5000}, kSelf));
  EXPECT_FALSE(runs::same_process({"host-a", "boot-1", 4026531836, 100, 5001}, kSelf));
}

// A child running /bin/cat with its stdin held open: it lives until the pipe
// closes.
pid_t spawn_cat(int& stdin_fd) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[0], STDIN_FILENO);
  char cat[] = "/bin/cat";
  char* argv[] = {cat, nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, cat, &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[0]);
  stdin_fd = fds[1];
  return rc == 0 ? pid : -1;
}

TEST(SystemLiveness, TheCallingProcess) {
  const Owner self = runs::system_liveness().self();
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  EXPECT_EQ(self.host, host);
  EXPECT_EQ(self.boot_id.size(), 36u) << self.boot_id;  // a UUID
  EXPECT_GT(self.pid_namespace, 0);
  EXPECT_EQ(self.pid, getpid());
  EXPECT_GT(self.start_time, 0);
  EXPECT_EQ(runs::system_liveness().start_time(getpid()), self.start_time);
}

TEST(SystemLiveness, AChildIsAliveThenAZombieThenGone) {
  const auto& liveness = runs::system_liveness();
  int stdin_fd = -1;
  const pid_t child = spawn_cat(stdin_fd);
  ASSERT_GT(child, 0);
  const auto started = liveness.start_time(child);
  ASSERT_TRUE(started.has_value());
  EXPECT_GE(*started, liveness.self().start_time);

  // Killed but not yet reaped: a zombie, which is no owner any more.
  kill(child, SIGKILL);
  siginfo_t info{};
  ASSERT_EQ(waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);
  EXPECT_EQ(liveness.start_time(child), std::nullopt);

  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  EXPECT_EQ(liveness.start_time(child), std::nullopt);
  close(stdin_fd);
}

TEST(SystemLiveness, NoSuchPid) {
  EXPECT_EQ(runs::system_liveness().start_time(0), std::nullopt);
  EXPECT_EQ(runs::system_liveness().start_time(-1), std::nullopt);
  EXPECT_EQ(runs::system_liveness().start_time(2147483647), std::nullopt);
}

}  // namespace
