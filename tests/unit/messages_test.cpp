// Messages that say what is wrong where a generic one would not be true
// (issue 11, item 5), each through the SQL functions under the real
// condition:
//  - a database whose directory this process may not write: another user
//    (setpriv), or a read-only mount holding a writable database file
//    (unshare and bind mounts, as a container with a read-only root and one
//    mounted file); the -wal and -shm files, or the rollback journal, cannot
//    be created there. A database file that is itself read-only still says
//    read-only.
//  - a reader, not a writer, holding the lock in rollback-journal mode:
//    another process (sql_worker) holds a read transaction.
//  - a function called from a TEMP trigger, inside another function's
//    statement: one prefix, naming the function that refused.
//  - a clock past the year 9999, or a lease that would end past it: a VFS
//    shim sets the clock that SQLite's 'now' reads.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "temp_dir.h"
#include "unit_helpers.h"
#include "vfs_shim.h"
#include "worker_process.h"

namespace {

using namespace runs_test;
using Wrapper = std::vector<std::string>;

// ---- a directory SQLite cannot create files in ----------------------------

const std::string kNoPermission = ": give it write permission there, or move the database to a directory where it has it";
const std::string kReadOnlyMount =
    " is on a read-only file system: mount it read-write, or move the database to a writable "
    "directory";
const std::string kWalFiles =
    "the database is in WAL mode, and SQLite cannot create its -wal and -shm files next to it, "
    "which even reading needs: ";
const std::string kJournal = "SQLite cannot create the database's rollback journal next to it: ";

// Each of `calls` fails in `worker` with `message`, named by its function.
void expect_refused(WorkerProcess& worker, const std::vector<std::string>& calls,
                    const std::string& message) {
  for (const std::string& call : calls) {
    EXPECT_EQ(worker.run("SELECT " + call), "error: " + call.substr(0, call.find('(')) + "(): " + message);
  }
}

class Directory : public ::testing::Test {
 protected:
  // A database with run 1 (key 'a') in `journal_mode`, closed, so that no
  // -wal, -shm or -journal file is left next to it.
  void create(const char* journal_mode) {
    TestDb db(dir.db());
    EXPECT_EQ(db.value(std::string("PRAGMA journal_mode = ") + journal_mode), journal_mode);
    ASSERT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
    ASSERT_EQ(db.value("SELECT start_run('job', 'api', 'a')"), "1");
  }

  // Nothing changed: run 1 is the only run, and no file was left behind.
  void expect_unchanged() {
    TestDb db(dir.db());
    EXPECT_EQ(db.value("SELECT group_concat(id || ' ' || status) FROM runs"), "1 pending");
  }

  std::string directory() const { return dir.db().substr(0, dir.db().rfind('/')); }
  std::string no_permission() const {
    return "this process may not create files in the directory " + directory() + kNoPermission;
  }
  std::string read_only_mount() const { return "the directory " + directory() + kReadOnlyMount; }

  TempDir dir;
};

// Another user, nobody, in a directory that root owns and others may only
// read; the database file itself is writable by everyone.
class NotMyDirectory : public Directory {
 protected:
  void SetUp() override {
    if (geteuid() != 0 || access("/usr/bin/setpriv", X_OK) != 0) {
      GTEST_SKIP() << "needs root and /usr/bin/setpriv (util-linux) to run a worker as another user";
    }
  }
  void lock_directory() {
    ASSERT_EQ(chmod(directory().c_str(), 0755), 0);
    ASSERT_EQ(chmod(dir.db().c_str(), 0666), 0);
  }
  static Wrapper as_nobody() {
    return {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
  }
};

TEST_F(NotMyDirectory, WalDatabase) {
  create("wal");
  lock_directory();
  WorkerProcess nobody(dir.db(), as_nobody());
  // Even reading needs the -shm file.
  expect_refused(nobody, {"active_run('a')", "start_run('job', 'api', 'b')", "complete_run(1)", "runs_migrate()"},
                 kWalFiles + no_permission());
  expect_unchanged();
}

TEST_F(NotMyDirectory, RollbackJournalDatabase) {
  create("delete");
  lock_directory();
  WorkerProcess nobody(dir.db(), as_nobody());
  // Reading needs no journal; writing does.
  EXPECT_EQ(nobody.run("SELECT active_run('a')"), "1");
  expect_refused(nobody, {"start_run('job', 'api', 'b')", "mark_run_running(1)", "cancel_run(1)"},
                 kJournal + no_permission());
  expect_unchanged();
}

// The database file is read-only to nobody, the directory writable: that is
// a read-only database, and the message says so.
TEST_F(NotMyDirectory, ReadOnlyDatabaseFile) {
  create("delete");
  ASSERT_EQ(chmod(directory().c_str(), 0777), 0);
  ASSERT_EQ(chmod(dir.db().c_str(), 0644), 0);
  WorkerProcess nobody(dir.db(), as_nobody());
  EXPECT_EQ(nobody.run("SELECT active_run('a')"), "1");
  expect_refused(nobody, {"start_run('job', 'api', 'b')", "complete_run(1)"},
                 "the database is read-only: open it read-write to change runs");
  expect_unchanged();
}

// A read-only mount of the directory, with the database file mounted
// writable over it (a container with a read-only root file system and one
// mounted file): root may write the file but create nothing next to it.
class ReadOnlyMount : public Directory {
 protected:
  void SetUp() override {
    if (geteuid() != 0 || access("/usr/bin/unshare", X_OK) != 0 || !mounts_here()) {
      GTEST_SKIP() << "needs root, /usr/bin/unshare and mount namespaces to mount a read-only "
                      "directory";
    }
  }
  // In a private mount namespace: the directory bound read-only, the
  // database file bound over it read-write, then "$@".
  Wrapper wrapper() const {
    return {"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
            "mount --bind \"$1\" \"$1\" && mount --bind \"$1/runs.db\" \"$1/runs.db\" && "
            "mount -o remount,bind,ro \"$1\" && shift && exec \"$@\"",
            "sh", directory()};
  }
  // The same mounts work here (they need root and mount namespaces).
  bool mounts_here() const {
    const std::string command =
        "/usr/bin/unshare --mount --propagation private /bin/sh -c "
        "'mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\"' " +
        directory() + " > /dev/null 2>&1";
    return std::system(command.c_str()) == 0;
  }
};

TEST_F(ReadOnlyMount, WalDatabase) {
  create("wal");
  WorkerProcess worker(dir.db(), wrapper());
  expect_refused(worker, {"active_run('a')", "start_run('job', 'api', 'b')"}, kWalFiles + read_only_mount());
  expect_unchanged();
}

TEST_F(ReadOnlyMount, RollbackJournalDatabase) {
  create("delete");
  WorkerProcess worker(dir.db(), wrapper());
  EXPECT_EQ(worker.run("SELECT active_run('a')"), "1");
  expect_refused(worker, {"start_run('job', 'api', 'b')", "heartbeat_run(1)"}, kJournal + read_only_mount());
  expect_unchanged();
}

// ---- a reader, not a writer, holds the lock ---------------------------------

class AnotherProcessLocks : public ::testing::Test {
 protected:
  void start(const char* journal_mode) {
    EXPECT_EQ(db.value(std::string("PRAGMA journal_mode = ") + journal_mode), journal_mode);
    ASSERT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
    ASSERT_EQ(db.value("SELECT start_run('a')"), "1");
    ASSERT_EQ(db.value("SELECT start_run('b', 'api', 'k')"), "2");
    ASSERT_EQ(db.value("SELECT mark_run_running(2)"), "updated");
    db.exec("PRAGMA busy_timeout = 0");
    before = dump(db);
  }
  void read_in_other() {
    ASSERT_EQ(other.run("BEGIN"), "");
    ASSERT_EQ(other.run("SELECT count(*) FROM runs"), "2");  // a read transaction: a SHARED lock
  }
  // Each write, in its own transaction (start_run, cancel_run) or in
  // autocommit (complete_run, ...), fails with SQLITE_BUSY and `message`.
  void every_write_says(const std::string& message) {
    for (const std::string call : {"start_run('x', 'api', 'new')", "try_start_run('x', 'api', 'new')",
                                   "cancel_run(2)", "complete_run(2)", "mark_run_running(1)",
                                   "heartbeat_run(2)", "update_run_progress(2, 1, 2, 's')",
                                   "fail_run(1, 'x')"}) {
      const std::string name = call.substr(0, call.find('('));
      EXPECT_EQ(db.error("SELECT " + call, SQLITE_BUSY), name + "(): " + message);
    }
    EXPECT_EQ(dump(db), before);
  }
  // The other process holds the write lock: every write says "writer".
  void writer_holds_the_lock(const char* journal_mode) {
    start(journal_mode);
    ASSERT_EQ(other.run("BEGIN IMMEDIATE"), "");
    every_write_says(kBusy);
    ASSERT_EQ(other.run("ROLLBACK"), "");
  }

  TempDir dir;
  TestDb db{dir.db()};
  WorkerProcess other{dir.db()};
  Rows before;
};

TEST_F(AnotherProcessLocks, AReaderInRollbackJournalMode) {
  start("delete");
  read_in_other();
  every_write_says(kLockedByReader);
  EXPECT_EQ(db.value("SELECT active_run('k')"), "2");  // a reader blocks no reader
  ASSERT_EQ(other.run("COMMIT"), "");
  EXPECT_EQ(db.value("SELECT start_run('x', 'api', 'new')"), "3");
}

TEST_F(AnotherProcessLocks, AWriterInRollbackJournalMode) { writer_holds_the_lock("delete"); }

TEST_F(AnotherProcessLocks, AReaderInWalModeBlocksNothing) {
  start("wal");
  read_in_other();
  EXPECT_EQ(db.value("SELECT start_run('x', 'api', 'new')"), "3");
  EXPECT_EQ(db.value("SELECT complete_run(2)"), "updated");
  ASSERT_EQ(other.run("COMMIT"), "");
}

TEST_F(AnotherProcessLocks, AWriterInWalMode) { writer_holds_the_lock("wal"); }

// ---- functions called from TEMP triggers ------------------------------------

const std::string kInsideWrite =
    "must not run inside a statement that writes (INSERT ... SELECT, UPDATE ... SET, a CHECK "
    "constraint): call it in a SELECT of its own";

class TempTrigger : public RefusalTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
    ASSERT_EQ(db.value("SELECT start_run('a', 'api', 'k')"), "1");
    db.exec("CREATE TABLE jobs(name)");
  }
  // Creates the TEMP trigger `trigger`, then records the database as it is.
  void create(const std::string& trigger) {
    db.exec("CREATE TEMP TRIGGER " + trigger);
    before = dump(db);
  }
};

// A TEMP trigger on runs fires inside the statement of the function that
// writes runs; the nested call refuses, and its message is passed on with its
// own name only.
TEST_F(TempTrigger, OnRunsCallingTheSameFunction) {
  create("runs_inserted AFTER INSERT ON main.runs"
         " BEGIN SELECT start_run('nested', 'api', 'other'); END");
  refused("SELECT start_run('outer', 'api', 'o')", SQLITE_ERROR, "start_run(): " + kInsideWrite);
  refused("SELECT try_start_run('outer', 'api', 'o')", SQLITE_ERROR, "start_run(): " + kInsideWrite);
}

TEST_F(TempTrigger, OnRunsCallingAnotherFunction) {
  create("runs_updated AFTER UPDATE ON main.runs"
         " BEGIN SELECT complete_run(new.id); END");
  refused("SELECT mark_run_running(1)", SQLITE_ERROR, "complete_run(): " + kInsideWrite);
  refused("SELECT cancel_run(1)", SQLITE_ERROR, "complete_run(): " + kInsideWrite);
}

// On another table: the function runs inside the INSERT that fired it.
TEST_F(TempTrigger, OnAnotherTable) {
  create("jobs_inserted AFTER INSERT ON main.jobs"
         " BEGIN SELECT start_run(new.name); END");
  refused("INSERT INTO jobs VALUES ('nightly')", SQLITE_ERROR, "start_run(): " + kWriteTxn);
}

// A message that only looks like a nested call's keeps its prefix.
TEST_F(TempTrigger, ARaiseThatLooksLikeAPrefixIsNamed) {
  create("runs_inserted BEFORE INSERT ON main.runs"
         " BEGIN SELECT RAISE(ABORT, 'complete_run(): no'); END");
  refused("SELECT start_run('outer', 'api', 'o')", SQLITE_CONSTRAINT_TRIGGER,
          "start_run(): complete_run(): no");
}

// ---- a clock past the year 9999 -------------------------------------------

// 9999-12-31T23:59:59.999Z in milliseconds since the julian epoch: the last
// time SQLite's date functions write.
constexpr sqlite3_int64 kLastMs = 464269060799999;
const std::string kLast = "9999-12-31T23:59:59.999Z";

// The default VFS, with a clock that reads `now_ms`.
class FixedClock : public VfsShim {
 public:
  FixedClock() : VfsShim("runs_fixed_clock") {}
  sqlite3_int64 now_ms = kLastMs;

 protected:
  int current_time(sqlite3_int64* ms) override {
    *ms = now_ms;
    return SQLITE_OK;
  }
};

const std::string kClockPast =
    "the clock reads a time after 9999-12-31T23:59:59.999Z, the last time SQLite's date functions "
    "can write, so no time stamp can be recorded: set the system clock right";

class Clock : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(clock.registered()); }
  FixedClock clock;
  TempFile file;
  TestDb db{"file:" + file.path() + "?vfs=runs_fixed_clock",
            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI};
};

TEST_F(Clock, PastTheYear9999) {
  clock.now_ms = kLastMs + 1;
  EXPECT_EQ(db.error("SELECT runs_migrate()", SQLITE_ERROR), "runs_migrate(): " + kClockPast);
  EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_schema"), "0");
  // At the last representable time everything works.
  clock.now_ms = kLastMs;
  ASSERT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  ASSERT_EQ(db.value("SELECT start_run('a', 'api', 'a')"), "1");
  ASSERT_EQ(db.value("SELECT start_run('b', 'api', 'b')"), "2");
  ASSERT_EQ(db.value("SELECT mark_run_running(2)"), "updated");
  EXPECT_EQ(db.value("SELECT group_concat(created_at) FROM runs"), kLast + "," + kLast);
  const Rows before = dump(db);
  clock.now_ms = kLastMs + 1;
  for (const std::string call :
       {"start_run('x', 'api', 'new')", "try_start_run('x', 'api', 'new')", "start_run('x', 'api', 'new', 60)",
        "mark_run_running(1)", "complete_run(2)", "fail_run(1, 'x')", "cancel_run(2)",
        "update_run_progress(2, 1, 2, 's')", "heartbeat_run(2)", "reap_stale_runs()"}) {
    const std::string name = call.substr(0, call.find('('));
    EXPECT_EQ(db.error("SELECT " + call, SQLITE_ERROR), name + "(): " + kClockPast);
  }
  EXPECT_EQ(dump(db), before);
  // Reading needs no time stamp.
  EXPECT_EQ(db.value("SELECT run_status(2)"), "running");
  EXPECT_EQ(db.value("SELECT active_run('b')"), "2");
}

TEST_F(Clock, ALeaseEndingPastTheYear9999) {
  ASSERT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  clock.now_ms = kLastMs - 60'000;
  // A lease that ends on the last representable time is kept whole.
  ASSERT_EQ(db.value("SELECT start_run('a', 'api', 'a', 60)"), "1");
  EXPECT_EQ(db.value("SELECT lease_expires_at FROM runs WHERE id = 1"), kLast);
  const Rows before = dump(db);
  const std::string past =
      "lease_seconds 61 would end the lease after 9999-12-31T23:59:59.999Z, the last time SQLite's "
      "date functions can write: pass a shorter lease_seconds, or NULL for no time-based expiry, or "
      "set the system clock right";
  EXPECT_EQ(db.error("SELECT start_run('b', 'api', 'b', 61)", SQLITE_ERROR), "start_run(): " + past);
  EXPECT_EQ(db.error("SELECT try_start_run('b', 'api', 'b', 61)", SQLITE_ERROR), "try_start_run(): " + past);
  EXPECT_EQ(dump(db), before);
  // Renewing the lease from a later now would end it past that time too.
  clock.now_ms = kLastMs - 59'999;
  const std::string renewal =
      "renewing run 1's lease of 60 seconds would end it after 9999-12-31T23:59:59.999Z, the last "
      "time SQLite's date functions can write: end the run, or set the system clock right";
  EXPECT_EQ(db.error("SELECT heartbeat_run(1)", SQLITE_ERROR), "heartbeat_run(): " + renewal);
  EXPECT_EQ(db.error("SELECT mark_run_running(1)", SQLITE_ERROR), "mark_run_running(): " + renewal);
  EXPECT_EQ(db.error("SELECT update_run_progress(1, 1, 2, 's')", SQLITE_ERROR),
            "update_run_progress(): " + renewal);
  EXPECT_EQ(dump(db), before);
  // A run without a lease renews nothing; ending a run writes only now.
  EXPECT_EQ(db.value("SELECT start_run('c', 'api', 'c')"), "2");
  EXPECT_EQ(db.value("SELECT heartbeat_run(2)"), "ok");
  EXPECT_EQ(db.value("SELECT fail_run(1, 'clock')"), "updated");
  EXPECT_EQ(db.value("SELECT finished_at FROM runs WHERE id = 1"), "9999-12-31T23:59:00.000Z");
}

}  // namespace
