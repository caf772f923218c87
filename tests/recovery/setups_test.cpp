// Liveness on the Linux setups people deploy to, with real processes, real
// namespaces and real procfs mounts: a live owner is never judged dead (the
// checker is refused with "already active", the owner's heartbeat says 'ok'),
// and a killed owner is still reclaimed at once wherever the process table can
// say so. Each case also shows what a naive reading of /proc would conclude.
//
// The owners and checkers are sql_worker processes started through wrappers
// (unshare, setpriv, sh -c '... exec "$@"'); a case whose wrapper cannot run
// here (no root, no namespaces) is skipped with the reason.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "child_process.h"
#include "liveness.h"
#include "system.h"
#include "temp_dir.h"
#include "test_db.h"
#include "worker_process.h"

namespace {

using runs_test::host_name;
using runs_test::TempDir;
using runs_test::TestDb;
using runs_test::WorkerProcess;
using Wrapper = std::vector<std::string>;

const std::string kUnshare = "/usr/bin/unshare";

// Runs `wrapper` around /bin/true; true when it exits 0.
bool runs_here(const Wrapper& wrapper) {
  std::vector<std::string> args = wrapper;
  args.push_back("/bin/true");
  return runs_test::exits_successfully(std::move(args));
}

std::string joined(const Wrapper& wrapper) {
  std::string text;
  for (const std::string& word : wrapper) text += (text.empty() ? "" : " ") + word;
  return text;
}

#define SKIP_UNLESS_IT_RUNS(wrapper)                                                        \
  if (!runs_here(wrapper)) {                                                                \
    GTEST_SKIP() << "this machine cannot run `" << joined(wrapper)                          \
                 << "` (it needs root, namespaces and procfs mount options)";               \
  }

// Another user (nobody), exec'd in place: the pid stays the worker's.
Wrapper as_nobody() {
  return {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
}

// A private mount namespace whose /proc is mounted with `options`.
Wrapper with_proc(const std::string& options) {
  return {kUnshare, "--mount", "--propagation", "private", "/bin/sh", "-c",
          "mount -t proc -o " + options + " proc /proc && exec \"$@\"", "sh"};
}

Wrapper then(Wrapper first, const Wrapper& second) {
  first.insert(first.end(), second.begin(), second.end());
  return first;
}

class Setups : public ::testing::Test {
 protected:
  void SetUp() override {
    // Workers of other users share the database: rollback journal (no -shm
    // owned by root), a directory and file everyone may write.
    ASSERT_EQ(db.value("SELECT runs_migrate()"), runs_test::kLatestSchemaVersion);
    const std::string directory = dir.db().substr(0, dir.db().rfind('/'));
    ASSERT_EQ(chmod(directory.c_str(), 0777), 0);
    ASSERT_EQ(chmod(dir.db().c_str(), 0666), 0);
    db.exec("PRAGMA busy_timeout = 5000");
  }

  // The owner starts run 1 for key 'k' and takes it up.
  static void own(WorkerProcess& owner) {
    ASSERT_EQ(owner.run("SELECT start_run('job', 'api', 'k')"), "1");
    ASSERT_EQ(owner.run("SELECT mark_run_running(1)"), "updated");
  }

  // `answer` is start_run()'s refusal because run 1 is active.
  static void expect_already_active(const std::string& answer) {
    EXPECT_EQ(answer.rfind("error: start_run(): run 1 is already active for concurrency_key 'k' "
                           "(scope 'job', status 'running', since ",
                           0),
              0u)
        << answer;
  }

  // The live owner keeps its run: the checker is refused, the owner's
  // heartbeat says 'ok'.
  void expect_kept(WorkerProcess& checker, WorkerProcess& owner) {
    expect_already_active(checker.run("SELECT start_run('job', 'api', 'k')"));
    EXPECT_EQ(owner.run("SELECT heartbeat_run(1)"), "ok");
    EXPECT_EQ(db.value("SELECT status FROM runs WHERE id = 1"), "running");
    EXPECT_EQ(db.value("SELECT count(*) FROM runs"), "1");
  }
  void expect_kept(WorkerProcess& owner) {
    WorkerProcess checker(dir.db());
    expect_kept(checker, owner);
  }

  // The killed owner's run is reclaimed by the checker's next start_run().
  void expect_reclaimed_at_once(WorkerProcess& checker, const std::string& pid,
                                const std::string& host) {
    EXPECT_EQ(checker.run("SELECT start_run('job', 'api', 'k')"), "2");
    EXPECT_EQ(db.value("SELECT status || ': ' || error_message FROM runs WHERE id = 1"),
              "failed: abandoned: owner process " + pid + " on " + host + " is gone");
  }

  // The live owner, judged `liveness` by run_info(), keeps its run.
  void expect_judged_and_kept(WorkerProcess& owner, const std::string& liveness) {
    EXPECT_EQ(db.value("SELECT run_info(1) ->> 'liveness'"), liveness);
    expect_kept(owner);
  }

  // The owner takes run 1, whose row reads `expected` for the expression
  // `recorded`; run_info() judges it `liveness`, and it keeps its run.
  void expect_recorded_and_kept(WorkerProcess& owner, const std::string& recorded,
                                const std::string& expected, const std::string& liveness) {
    own(owner);
    EXPECT_EQ(db.value("SELECT " + recorded + " FROM runs WHERE id = 1"), expected);
    expect_judged_and_kept(owner, liveness);
  }

  // Killed, the owner's run is reclaimed at once by a plain checker, which
  // names the owner on `host`.
  void expect_reclaimed_when_killed(WorkerProcess& owner, const std::string& host = host_name()) {
    const std::string pid = std::to_string(owner.pid());
    owner.kill_hard();
    WorkerProcess checker(dir.db());
    expect_reclaimed_at_once(checker, pid, host);
  }

  void expect_judged_then_reclaimed(const Wrapper& owner_setup, const Wrapper& checker_setup,
                                    std::string liveness);
  void hidden_owner(const std::string& hidepid, const std::string& cannot_tell);

  TempDir dir;
  TestDb db{dir.db()};
};

// An owner (root) that a checker of another user (nobody), under /proc
// mounted with `hidepid`, cannot read: it keeps its run while it lives (the
// checker says why: `cannot_tell`, with PID for its pid), and is reclaimed
// at once when killed (its entry is then absent and kill(pid, 0) says ESRCH).
void Setups::hidden_owner(const std::string& hidepid, const std::string& cannot_tell) {
  const Wrapper checker_setup = then(with_proc("hidepid=" + hidepid), as_nobody());
  SKIP_UNLESS_IT_RUNS(checker_setup);
  expect_judged_then_reclaimed({}, checker_setup, "lease only: the process table cannot tell: " + cannot_tell);
}

// The owner (started through `owner_setup`) takes run 1; the checker
// (through `checker_setup`) is refused it while the owner lives, judges it
// `liveness` (PID: the owner's pid), and reclaims it at once when it is killed.
void Setups::expect_judged_then_reclaimed(const Wrapper& owner_setup, const Wrapper& checker_setup,
                                          std::string liveness) {
  WorkerProcess owner(dir.db(), owner_setup);
  own(owner);
  const std::string pid = std::to_string(owner.pid());
  WorkerProcess checker(dir.db(), checker_setup);
  expect_kept(checker, owner);
  if (const auto at = liveness.find("PID"); at != std::string::npos) liveness.replace(at, 3, pid);
  EXPECT_EQ(checker.run("SELECT run_info(1) ->> 'liveness'"), liveness);
  owner.kill_hard();
  expect_reclaimed_at_once(checker, pid, host_name());
}

TEST_F(Setups, HidepidInvisibleHidesALiveOwnerOfAnotherUser) {
  // Naive: no /proc/<pid> at all, as if the owner were dead.
  hidden_owner("invisible", "/proc/PID/stat is hidden, but a process with this pid exists");
}

TEST_F(Setups, HidepidNoaccessMakesALiveOwnerOfAnotherUserUnreadable) {
  hidden_owner("noaccess", "cannot read /proc/PID/stat: Operation not permitted");
}

TEST_F(Setups, AnOwnerOfAnotherUserIsJudgedExactly) {
  SKIP_UNLESS_IT_RUNS(as_nobody());
  expect_judged_then_reclaimed(as_nobody(), {}, "exact: the owner process is alive");
}

TEST_F(Setups, AnOwnerThatCannotReadItsIdentityRecordsNone) {
  // systemd's ProcSubset=pid: no /proc/sys, so no boot id.
  const Wrapper owner_setup = with_proc("subset=pid");
  SKIP_UNLESS_IT_RUNS(owner_setup);
  WorkerProcess owner(dir.db(), owner_setup);
  const std::string pid = std::to_string(owner.pid());
  expect_recorded_and_kept(
      owner, "json(run_info(1) -> 'owner')",
      "{\"host\":\"" + host_name() + "\",\"boot_id\":null,\"pid_namespace\":null,\"pid\":" + pid +
          ",\"start_time\":null,\"time_namespace\":null}",
      "lease only: the owner could not read its identity (boot id, pid namespace, start time)");
  // Judged by its lease only: killed, without a lease, the run stays (as
  // for an owner on another host); with an expired lease it goes.
  owner.kill_hard();
  WorkerProcess checker(dir.db());
  expect_already_active(checker.run("SELECT start_run('job', 'api', 'k')"));
  db.exec("UPDATE runs SET lease_expires_at = '2000-01-01T00:00:00.000Z' WHERE id = 1");
  EXPECT_EQ(checker.run("SELECT start_run('job', 'api', 'k')"), "2");
  EXPECT_EQ(db.value("SELECT error_message FROM runs WHERE id = 1"),
            "abandoned: its lease expired at 2000-01-01T00:00:00.000Z (owner process " + pid +
                " on " + host_name() + ")");
}

TEST_F(Setups, ACheckerThatCannotReadItsIdentityJudgesNothingExactly) {
  const Wrapper checker_setup = with_proc("subset=pid");
  SKIP_UNLESS_IT_RUNS(checker_setup);
  WorkerProcess owner(dir.db());
  own(owner);
  const std::string pid = std::to_string(owner.pid());
  WorkerProcess checker(dir.db(), checker_setup);
  expect_kept(checker, owner);
  owner.kill_hard();
  // Gone, but this checker cannot know it: the lease decides (none here).
  expect_already_active(checker.run("SELECT start_run('job', 'api', 'k')"));
  EXPECT_EQ(checker.run("SELECT run_info(1) ->> 'liveness'"),
            "lease only: this process cannot read its own identity (boot id, pid namespace, start "
            "time), or its /proc belongs to another pid namespace");
  // A checker that can, can.
  WorkerProcess plain(dir.db());
  expect_reclaimed_at_once(plain, pid, host_name());
}

TEST_F(Setups, APidNamespaceWithoutItsOwnProc) {
  const Wrapper pid_namespace = {kUnshare, "--pid", "--fork", "--kill-child"};
  SKIP_UNLESS_IT_RUNS(pid_namespace);
  WorkerProcess owner(dir.db(), pid_namespace);
  // Naive: its pid is 1 in its namespace, which is the host's init here.
  expect_recorded_and_kept(
      owner, "owner_pid || ' ' || quote(owner_boot_id)", "1 NULL",
      "lease only: the owner could not read its identity (boot id, pid namespace, start time)");
  // A checker in such a namespace judges nothing exactly, not even a killed
  // owner of the host, whose pid means something else there.
  WorkerProcess host_owner(dir.db());
  ASSERT_EQ(host_owner.run("SELECT start_run('job', 'api', 'k2')"), "2");
  const std::string pid = std::to_string(host_owner.pid());
  host_owner.kill_hard();
  WorkerProcess checker(dir.db(), pid_namespace);
  EXPECT_EQ(checker.run("SELECT start_run('job', 'api', 'k2')").rfind(
                "error: start_run(): run 2 is already active for concurrency_key 'k2'", 0),
            0u);
  WorkerProcess plain(dir.db());
  EXPECT_EQ(plain.run("SELECT start_run('job', 'api', 'k2')"), "3");
  EXPECT_EQ(db.value("SELECT error_message FROM runs WHERE id = 2"),
            "abandoned: owner process " + pid + " on " + host_name() + " is gone");
}

TEST_F(Setups, APidNamespaceWithItsOwnProc) {
  const Wrapper pid_namespace = {kUnshare, "--pid", "--fork", "--kill-child", "--mount-proc"};
  SKIP_UNLESS_IT_RUNS(pid_namespace);
  WorkerProcess owner(dir.db(), pid_namespace);
  expect_recorded_and_kept(owner, "owner_pid || ' ' || (owner_pid_ns IS NOT NULL)", "1 1",
                           "lease only: the owner is in another pid namespace");
}

TEST_F(Setups, ATimeNamespaceWithABootTimeOffset) {
  const Wrapper time_namespace = {kUnshare, "--time", "--boottime", "86400", "--fork",
                                  "--kill-child"};
  SKIP_UNLESS_IT_RUNS(time_namespace);
  WorkerProcess owner(dir.db(), time_namespace);
  own(owner);
  // Naive: the start time the owner recorded is not the one read here.
  const auto pid = db.value("SELECT owner_pid FROM runs WHERE id = 1");
  ASSERT_TRUE(pid.has_value());
  const runs::Probe seen_here = runs::system_liveness().probe(std::stoll(*pid));
  ASSERT_EQ(seen_here.state, runs::Probe::State::kAlive);
  EXPECT_EQ(db.value("SELECT owner_start_time - " + std::to_string(seen_here.start_time) +
                     " FROM runs WHERE id = 1"),
            std::to_string(86400 * sysconf(_SC_CLK_TCK)));
  expect_judged_and_kept(owner, "lease only: the owner is in another time namespace");
}

TEST_F(Setups, AZombieLeaderWithALiveThread) {
  WorkerProcess owner(dir.db(), {}, {"--exit-main-thread"});
  own(owner);
  const std::string pid = std::to_string(owner.pid());
  // Naive: the leader is a zombie. Its exit completes in the kernel shortly
  // after pthread_join() returns in the worker: wait for that state.
  const std::string stat_path = "/proc/" + pid + "/stat";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::string state;
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string stat = runs_test::read_text(stat_path);
    state = stat.substr(stat.rfind(')') + 2, 1);
    if (state == "Z") break;
    std::this_thread::yield();
  }
  ASSERT_EQ(state, "Z");
  expect_judged_and_kept(owner, "exact: the owner process is alive");
  expect_reclaimed_when_killed(owner);
}

TEST_F(Setups, AProcessNameWithParenthesesAndANewline) {
  const std::string name = "x) Z 1\n) R 9";
  WorkerProcess owner(dir.db(), {}, {"--name", name});
  own(owner);
  const std::string pid = std::to_string(owner.pid());
  // Naive: the name is in /proc/<pid>/stat as it is.
  EXPECT_NE(runs_test::read_text("/proc/" + pid + "/stat").find("(" + name + ")"), std::string::npos);
  expect_judged_and_kept(owner, "exact: the owner process is alive");
  expect_reclaimed_when_killed(owner);
}

TEST_F(Setups, TheHostNameChangesWhileTheOwnerRuns) {
  // The owner's host name differs from the checker's (as after hostnamectl):
  // same boot id, same namespaces, so still the same host.
  const Wrapper renamed = {kUnshare, "--uts", "/bin/sh", "-c",
                           "hostname renamed-host && exec \"$@\"", "sh"};
  SKIP_UNLESS_IT_RUNS(renamed);
  WorkerProcess owner(dir.db(), renamed);
  own(owner);
  EXPECT_EQ(db.value("SELECT owner_host FROM runs WHERE id = 1"), "renamed-host");
  expect_kept(owner);
  expect_reclaimed_when_killed(owner, "renamed-host");
}

// heartbeat_run() hands the run over to the caller, so that 'ok' means the
// run is safe until its lease ends, whoever heartbeats.
TEST_F(Setups, AHeartbeatHandsTheRunOverToTheCaller) {
  WorkerProcess starter(dir.db());
  own(starter);
  WorkerProcess worker(dir.db());  // e.g. a child the starter forked
  const std::string pid = std::to_string(worker.pid());
  EXPECT_EQ(worker.run("SELECT heartbeat_run(1)"), "ok");
  EXPECT_EQ(db.value("SELECT owner_pid FROM runs WHERE id = 1"), pid);
  starter.kill_hard();
  WorkerProcess checker(dir.db());
  expect_already_active(checker.run("SELECT start_run('job', 'api', 'k')"));
  EXPECT_EQ(worker.run("SELECT heartbeat_run(1)"), "ok");
  worker.kill_hard();
  expect_reclaimed_at_once(checker, pid, host_name());
}

}  // namespace
