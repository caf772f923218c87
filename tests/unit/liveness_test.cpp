// ext/liveness.cpp: the staleness rules, through a fake process table, and
// the Linux process table itself, with real child processes.
#include "liveness.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>

#include "child_process.h"
#include "system.h"

namespace {

using runs::abandoned_reason;
using runs::Identity;
using runs::judge;
using runs::Lease;
using runs::Owner;
using runs::Probe;

const Identity kHere{"boot-1", 4026531836, 4026531834, 5000};
const Owner kSelf{"host-a", 100, kHere};

Identity here_started_at(std::int64_t start_time) {
  Identity identity = kHere;
  identity.start_time = start_time;
  return identity;
}

// A process table with the processes the test puts in it; a pid it neither
// has nor lists as hidden is gone.
class FakeLiveness final : public runs::Liveness {
 public:
  Owner self() const override { return kSelf; }
  Probe probe(std::int64_t pid) const override {
    if (hidden.count(pid) != 0) return {Probe::State::kCannotTell, 0, hidden.at(pid)};
    const auto found = processes.find(pid);
    if (found == processes.end()) return {Probe::State::kGone, 0, ""};
    return {Probe::State::kAlive, found->second, ""};
  }
  std::map<std::int64_t, std::int64_t> processes{{100, 5000}, {200, 6000}};
  std::map<std::int64_t, std::string> hidden{{400, "cannot read /proc/400/stat: Permission denied"}};
};

Lease owned_by(Owner owner) { return Lease{std::move(owner), std::nullopt, false}; }
Lease expired(Lease lease) {
  lease.lease_expires_at = "2026-11-29T10:00:00.000Z";
  lease.lease_expired = true;
  return lease;
}

runs::Judgement judged(const Lease& lease, const Owner& self = kSelf) {
  const FakeLiveness liveness;
  return judge(lease, self, liveness);
}

std::optional<std::string> reason(const Lease& lease) { return judged(lease).abandoned; }

TEST(Staleness, ALiveOwnerInThisBootAndNamespacesHolds) {
  EXPECT_EQ(reason(owned_by({"host-a", 200, here_started_at(6000)})), std::nullopt);
  EXPECT_EQ(reason(owned_by(kSelf)), std::nullopt);
  EXPECT_TRUE(judged(owned_by(kSelf)).exact);
  EXPECT_EQ(judged(owned_by(kSelf)).basis, "exact: the owner process is alive");
}

TEST(Staleness, AGoneOwnerIsAbandonedAtOnce) {
  EXPECT_EQ(reason(owned_by({"host-a", 300, here_started_at(7000)})),
            "abandoned: owner process 300 on host-a is gone");
}

TEST(Staleness, AReusedPidIsAbandoned) {
  EXPECT_EQ(reason(owned_by({"host-a", 200, here_started_at(5999)})),
            "abandoned: owner process 200 on host-a is gone (the pid now belongs to another process)");
}

TEST(Staleness, TheHostNameIsNotComparedTheBootIdIs) {
  // Renamed since (DHCP, hostnamectl): same boot, so still exact.
  EXPECT_EQ(reason(owned_by({"old-name", 300, here_started_at(7000)})),
            "abandoned: owner process 300 on old-name is gone");
  EXPECT_EQ(reason(owned_by({std::nullopt, 300, here_started_at(7000)})),
            "abandoned: owner process 300 is gone");
  // Same name, another boot id: another machine of that name, or an earlier
  // boot; nothing here can tell, so the lease decides.
  Identity other_boot = kHere;
  other_boot.boot_id = "boot-0";
  const runs::Judgement other = judged(owned_by({"host-a", 300, other_boot}));
  EXPECT_EQ(other.abandoned, std::nullopt);
  EXPECT_FALSE(other.exact);
  EXPECT_EQ(other.basis, "lease only: the owner ran on another host or in another boot");
  EXPECT_EQ(reason(expired(owned_by({"host-a", 300, other_boot}))),
            "abandoned: its lease expired at 2026-11-29T10:00:00.000Z (owner process 300 on host-a)");
}

TEST(Staleness, AnotherPidOrTimeNamespaceIsJudgedByItsLeaseOnly) {
  Identity other_pid_ns = here_started_at(7000);
  other_pid_ns.pid_namespace = 4026531999;
  EXPECT_EQ(judged(owned_by({"host-a", 300, other_pid_ns})).basis,
            "lease only: the owner is in another pid namespace");
  EXPECT_EQ(reason(owned_by({"host-a", 300, other_pid_ns})), std::nullopt);
  // A boot-time offset shifts start times: pid 200 is alive, and its start
  // time differs only because of the offset.
  Identity other_time_ns = here_started_at(6000 + 100000);
  other_time_ns.time_namespace = 4026532000;
  EXPECT_EQ(judged(owned_by({"host-a", 200, other_time_ns})).basis,
            "lease only: the owner is in another time namespace");
  EXPECT_EQ(reason(owned_by({"host-a", 200, other_time_ns})), std::nullopt);
  EXPECT_EQ(reason(expired(owned_by({"host-a", 200, other_time_ns}))),
            "abandoned: its lease expired at 2026-11-29T10:00:00.000Z (owner process 200 on host-a)");
}

TEST(Staleness, AKernelWithoutTimeNamespacesIsOneTimeNamespace) {
  Identity no_time_ns = kHere;
  no_time_ns.time_namespace = std::nullopt;
  const Owner self{"host-a", 100, no_time_ns};
  Identity owner = no_time_ns;
  owner.start_time = 7000;
  EXPECT_EQ(judged(owned_by({"host-a", 300, owner}), self).abandoned,
            "abandoned: owner process 300 on host-a is gone");
  // But not when only one side has one.
  EXPECT_EQ(judged(owned_by({"host-a", 300, here_started_at(7000)}), self).abandoned, std::nullopt);
}

TEST(Staleness, WhenTheProcessTableCannotTellTheLeaseDecides) {
  const Owner hidden{"host-a", 400, here_started_at(8000)};
  const runs::Judgement judgement = judged(owned_by(hidden));
  EXPECT_EQ(judgement.abandoned, std::nullopt);
  EXPECT_FALSE(judgement.exact);
  EXPECT_EQ(judgement.basis,
            "lease only: the process table cannot tell: cannot read /proc/400/stat: Permission denied");
  EXPECT_EQ(reason(expired(owned_by(hidden))),
            "abandoned: its lease expired at 2026-11-29T10:00:00.000Z (owner process 400 on host-a)");
}

TEST(Staleness, AnOwnerWithoutIdentityIsJudgedByItsLeaseOnly) {
  // Pid 300 is gone here, but it may be another namespace's pid 300.
  const Owner unknown{"host-a", 300, std::nullopt};
  EXPECT_EQ(reason(owned_by(unknown)), std::nullopt);
  EXPECT_EQ(judged(owned_by(unknown)).basis,
            "lease only: the owner could not read its identity (boot id, pid namespace, start time)");
  EXPECT_EQ(reason(expired(owned_by(unknown))),
            "abandoned: its lease expired at 2026-11-29T10:00:00.000Z (owner process 300 on host-a)");
}

TEST(Staleness, ACheckerWithoutIdentityJudgesNothingExactly) {
  const Owner unknown_self{"host-a", 100, std::nullopt};
  const runs::Judgement judgement = judged(owned_by({"host-a", 300, here_started_at(7000)}), unknown_self);
  EXPECT_EQ(judgement.abandoned, std::nullopt);
  EXPECT_EQ(judgement.basis,
            "lease only: this process cannot read its own identity (boot id, pid namespace, start "
            "time), or its /proc belongs to another pid namespace");
}

TEST(Staleness, AnExpiredLeaseAbandonsEvenALiveOwner) {
  EXPECT_EQ(reason(expired(owned_by({"host-a", 200, here_started_at(6000)}))),
            "abandoned: its lease expired at 2026-11-29T10:00:00.000Z (owner process 200 on host-a)");
}

TEST(Staleness, WithoutAnOwnerOnlyALeaseCanExpire) {
  EXPECT_EQ(reason(Lease{}), std::nullopt);
  EXPECT_EQ(judged(Lease{}).basis, "lease only: the run has no recorded owner");
  EXPECT_EQ(reason(Lease{std::nullopt, "2026-11-29T10:00:00.000Z", true}),
            "abandoned: its lease expired at 2026-11-29T10:00:00.000Z");
}

TEST(Staleness, SameProcessComparesHostPidAndIdentity) {
  EXPECT_TRUE(runs::same_process(kSelf, kSelf));
  EXPECT_FALSE(runs::same_process({"host-b", 100, kHere}, kSelf));
  EXPECT_FALSE(runs::same_process({"host-a", 101, kHere}, kSelf));
  EXPECT_FALSE(runs::same_process({"host-a", 100, here_started_at(5001)}, kSelf));
  EXPECT_FALSE(runs::same_process({"host-a", 100, std::nullopt}, kSelf));
  // A process that cannot read its identity still recognises its own runs.
  const Owner unknown{"host-a", 100, std::nullopt};
  EXPECT_TRUE(runs::same_process(unknown, unknown));
}

TEST(MemoizedLiveness, AsksTheProcessTableOncePerPid) {
  class Counting final : public runs::Liveness {
   public:
    Owner self() const override { return kSelf; }
    Probe probe(std::int64_t pid) const override {
      ++asked;
      return table.probe(pid);
    }
    FakeLiveness table;
    mutable int asked = 0;
  } counting;
  const runs::MemoizedLiveness once(counting);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(once.probe(200).state, Probe::State::kAlive);
    EXPECT_EQ(once.probe(300).state, Probe::State::kGone);
  }
  EXPECT_EQ(counting.asked, 2);
  EXPECT_EQ(judge(owned_by({"host-a", 300, here_started_at(7000)}), kSelf, once).abandoned,
            "abandoned: owner process 300 on host-a is gone");
  EXPECT_EQ(counting.asked, 2);
}

// /proc/<pid>/stat as the kernel writes it, with `comm` and `state`.
std::string stat_text(const std::string& comm, const std::string& state, const std::string& start = "53338") {
  return "4242 (" + comm + ") " + state +
         " 1 4242 4242 0 -1 4194560 157 0 0 0 0 0 0 0 20 0 1 0 " + start +
         " 8269824 1021 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
}

TEST(ParseStat, CountsFieldsFromTheLastParenthesis) {
  EXPECT_EQ(runs::parse_stat(stat_text("cat", "R"))->start_time, 53338);
  EXPECT_FALSE(runs::parse_stat(stat_text("cat", "S"))->zombie);
  // A name may hold spaces, ')' and newlines (prctl(PR_SET_NAME)).
  EXPECT_EQ(runs::parse_stat(stat_text("a) Z 1 (b", "S"))->start_time, 53338);
  EXPECT_FALSE(runs::parse_stat(stat_text("a) Z 1 (b", "S"))->zombie);
  EXPECT_EQ(runs::parse_stat(stat_text("x)\nZ 9 9)", "S"))->start_time, 53338);
  EXPECT_EQ(runs::parse_stat(stat_text(") ) )", "R", "17"))->start_time, 17);
}

TEST(ParseStat, ZombiesAndDeadTasks) {
  EXPECT_TRUE(runs::parse_stat(stat_text("cat", "Z"))->zombie);
  EXPECT_TRUE(runs::parse_stat(stat_text("cat", "X"))->zombie);
  EXPECT_TRUE(runs::parse_stat(stat_text("cat", "x"))->zombie);
}

TEST(ParseStat, AnythingElseIsNoAnswer) {
  EXPECT_EQ(runs::parse_stat(""), std::nullopt);
  EXPECT_EQ(runs::parse_stat("4242 (cat"), std::nullopt);
  EXPECT_EQ(runs::parse_stat("4242 (cat) R 1 2 3"), std::nullopt);  // cut short
  EXPECT_EQ(runs::parse_stat(stat_text("cat", "R", "x")), std::nullopt);
  EXPECT_EQ(runs::parse_stat(stat_text("cat", "R", "-5")), std::nullopt);
  EXPECT_EQ(runs::parse_stat(stat_text("cat", "RR")), std::nullopt);
}

TEST(SystemLiveness, TheCallingProcess) {
  const Owner self = runs::system_liveness().self();
  EXPECT_EQ(self.host, runs_test::host_name());
  EXPECT_EQ(self.pid, getpid());
  ASSERT_TRUE(self.identity.has_value());
  EXPECT_EQ(self.identity->boot_id.size(), 36u) << self.identity->boot_id;  // a UUID
  EXPECT_GT(self.identity->pid_namespace, 0);
  EXPECT_TRUE(self.identity->time_namespace.has_value());
  EXPECT_GT(self.identity->start_time, 0);
  const Probe probe = runs::system_liveness().probe(getpid());
  EXPECT_EQ(probe.state, Probe::State::kAlive);
  EXPECT_EQ(probe.start_time, self.identity->start_time);
}

TEST(SystemLiveness, AChildIsAliveThenAZombieThenGone) {
  const auto& liveness = runs::system_liveness();
  // /bin/cat with its stdin held open: it lives until the pipe closes.
  const runs_test::ChildProcess cat = runs_test::spawn_child({"/bin/cat"});
  const pid_t child = cat.pid;
  ASSERT_GT(child, 0);
  const Probe alive = liveness.probe(child);
  ASSERT_EQ(alive.state, Probe::State::kAlive);
  EXPECT_GE(alive.start_time, liveness.self().identity->start_time);

  // Killed but not yet reaped: a zombie with no thread left, which is no
  // owner any more.
  kill(child, SIGKILL);
  siginfo_t info{};
  ASSERT_EQ(waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);
  EXPECT_EQ(liveness.probe(child).state, Probe::State::kGone);

  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  EXPECT_EQ(liveness.probe(child).state, Probe::State::kGone);
  close(cat.in);
  close(cat.out);
}

TEST(SystemLiveness, PidsThatNameNoProcess) {
  EXPECT_EQ(runs::system_liveness().probe(0).state, Probe::State::kCannotTell);
  EXPECT_EQ(runs::system_liveness().probe(-1).state, Probe::State::kCannotTell);
  EXPECT_EQ(runs::system_liveness().probe(2147483647).state, Probe::State::kGone);
  EXPECT_EQ(runs::system_liveness().probe(std::int64_t{1} << 40).state, Probe::State::kCannotTell);
}

}  // namespace
