// Faults from outside the extension, during start_run(), runs_migrate() and
// the transitions: a full database (PRAGMA max_page_count), a full or failing
// disk (writes that fail, through tests/support/fault_vfs.h), a journal that
// cannot be created, and locks held by another process (lock_holder, started
// with posix_spawn and synchronised through pipes). After each: the exact
// error, the connection in autocommit, the database as it was (integrity_check
// ok, also seen from a fresh connection), and the connection usable once the
// fault is gone.
//
// Already covered elsewhere: read-only connections and PRAGMA query_only
// (errors_test.cpp ReadOnly.*), a lock held by another connection of this
// process (Busy.*, BusyCommit.*), out of memory (heap_limit_test.cpp).
#include <poll.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "child_process.h"
#include "fault_vfs.h"
#include "unit_helpers.h"

namespace {

using namespace runs_test;

// What a fresh connection, without faults, sees of the file.
Rows seen_afresh(const std::string& path) {
  TestDb fresh(path);
  EXPECT_EQ(fresh.value("PRAGMA integrity_check"), "ok");
  return dump(fresh);
}

// Every function that writes, as (call, name), on a database where run 1 is
// pending and run 2 (key 'k') running.
const std::vector<std::pair<std::string, std::string>> kWrites = {
    {"start_run('x', 'api', 'new')", "start_run"},
    {"mark_run_running(1)", "mark_run_running"},
    {"complete_run(2)", "complete_run"},
    {"fail_run(1, 'boom')", "fail_run"},
    {"cancel_run(2)", "cancel_run"},
    {"update_run_progress(2, 1, 2, 'extract')", "update_run_progress"},
};
const char* const kTwoRuns =
    "SELECT runs_migrate(); SELECT start_run('a'); SELECT start_run('b', 'api', 'k');"
    " SELECT mark_run_running(2)";

// ---- a full database: PRAGMA max_page_count ------------------------------

TEST(FullDatabase, StartRunWhenNoPageIsLeft) {
  TempFile file;
  TestDb db(file.path());
  ASSERT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  const std::string scope = quote(std::string(1000, 's'));
  // The database may not grow: fill its pages with runs until start_run()
  // needs a new one.
  db.exec("PRAGMA max_page_count = " + db.value("PRAGMA page_count").value());
  int started = 0;
  Outcome out;
  for (;;) {
    out = db.run("SELECT start_run(" + scope + ")");
    if (out.code != SQLITE_OK) break;
    ASSERT_EQ(db.value("SELECT cancel_run(" + out.rows[0][0].value() + ")"), "updated");
    ++started;
    ASSERT_LT(started, 1000) << "the database never filled up";
  }
  EXPECT_EQ(out.extended, SQLITE_FULL);
  EXPECT_EQ(out.message, "start_run(): database or disk is full");
  EXPECT_TRUE(sqlite3_get_autocommit(db.get()));
  EXPECT_EQ(count(db, "runs"), std::to_string(started));
  EXPECT_EQ(db.value("SELECT active_run()"), std::nullopt);
  EXPECT_EQ(db.value("PRAGMA integrity_check"), "ok");
  // The transitions still work: they need no new page.
  EXPECT_EQ(db.value("SELECT run_status(1)"), "cancelled");
  // Room again: the next start succeeds.
  db.exec("PRAGMA max_page_count = 1000000");
  EXPECT_EQ(db.value("SELECT start_run(" + scope + ")"), std::to_string(started + 1));
}

TEST(FullDatabase, FailRunWithALongMessage) {
  TempFile file;
  TestDb db(file.path());
  db.exec(kTwoRuns);
  db.exec("PRAGMA max_page_count = " + db.value("PRAGMA page_count").value());
  const Rows before = dump(db);
  const std::string message = "printf('%.*c', 100000, 'e')";
  EXPECT_EQ(db.error("SELECT fail_run(2, " + message + ")", SQLITE_FULL),
            "fail_run(): database or disk is full");
  EXPECT_EQ(dump(db), before);
  db.exec("PRAGMA max_page_count = 1000000");
  EXPECT_EQ(db.value("SELECT fail_run(2, " + message + ")"), "updated");
  EXPECT_EQ(db.value("SELECT length(error_message) FROM runs WHERE id = 2"), "100000");
}

TEST(FullDatabase, RunsMigrateOnADatabaseThatCannotGrow) {
  TempFile file;
  TestDb db(file.path());
  db.exec("CREATE TABLE app(x); INSERT INTO app VALUES (1)");
  db.exec("PRAGMA max_page_count = " + db.value("PRAGMA page_count").value());
  const Rows before = dump(db);
  EXPECT_EQ(db.error("SELECT runs_migrate()", SQLITE_FULL),
            "runs_migrate(): migration 001_create_runs failed: database or disk is full");
  EXPECT_TRUE(sqlite3_get_autocommit(db.get()));
  EXPECT_EQ(dump(db), before);
  EXPECT_EQ(seen_afresh(file.path()), before);
  db.exec("PRAGMA max_page_count = 1000000");
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(db.value("SELECT start_run('x')"), "1");
}

// ---- a full or failing disk: every write point in turn -------------------

struct Setting {
  const char* journal_mode;
  int code;            // what the failing writes return
  const char* reason;  // SQLite's text for it
};
const Setting kSettings[] = {
    {"delete", SQLITE_FULL, "database or disk is full"},
    {"delete", SQLITE_IOERR_WRITE, "disk I/O error"},
    {"wal", SQLITE_FULL, "database or disk is full"},
    {"wal", SQLITE_IOERR_WRITE, "disk I/O error"},
};

// Creates `path` anew with `setup` run on it (no faults).
void create(const std::string& path, const char* journal_mode, const std::string& setup) {
  for (const char* suffix : {"", "-journal", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  TestDb db(path);
  EXPECT_EQ(db.value(std::string("PRAGMA journal_mode = ") + journal_mode), journal_mode);
  db.exec("PRAGMA synchronous = OFF");  // the same writes, without waiting for the disk
  if (!setup.empty()) db.exec(setup);
}

// Runs `sql` on a connection through FaultVfs with the n-th write failing
// (and every later one), for n = 0, 1, 2, ... until the call succeeds: so
// every write the call makes fails once, first. After each failure: the
// error is `name(): ...<reason>` (runs_migrate() names the migration when one
// of its statements failed), the connection is in autocommit, and once the disk is fine
// again the same connection and a fresh one see the database as it was.
// Returns how many write points failed.
int sweep_writes(const Setting& setting, const std::string& setup, const std::string& sql,
                 const std::string& expected_prefix) {
  FaultVfs::install();
  TempFile file;
  int failures = 0;
  const bool failed_before = ::testing::Test::HasFailure();
  for (int n = 0;; ++n) {
    create(file.path(), setting.journal_mode, setup);
    const Rows before = seen_afresh(file.path());
    TestDb db("file:" + file.path() + "?vfs=" + FaultVfs::kName,
              SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI);
    db.exec("PRAGMA synchronous = OFF");
    const std::string where = std::string(setting.journal_mode) + ", " + setting.reason + ", " +
                              sql + " from write " + std::to_string(n);
    FaultVfs::arm(n, setting.code);
    const Outcome out = db.run(sql);
    const bool failed_write = FaultVfs::failed_writes() > 0;
    FaultVfs::disarm();
    if (out.code == SQLITE_OK) {
      EXPECT_FALSE(failed_write) << where << " succeeded although a write failed";
      EXPECT_GT(n, 0) << where << ": the call wrote nothing";
      std::printf("[ swept    ] %s: %d write points\n", where.substr(0, where.find(" from")).c_str(), n);
      return failures;
    }
    ++failures;
    EXPECT_EQ(out.extended, setting.code) << where << ": " << out.message;
    EXPECT_EQ(out.message.substr(0, expected_prefix.size()), expected_prefix) << where;
    EXPECT_EQ(out.message.substr(out.message.size() - std::strlen(setting.reason)), setting.reason)
        << where << ": " << out.message;
    EXPECT_TRUE(sqlite3_get_autocommit(db.get())) << where;
    EXPECT_EQ(dump(db), before) << where;
    EXPECT_EQ(db.value("PRAGMA integrity_check"), "ok") << where;
    EXPECT_EQ(seen_afresh(file.path()), before) << where;
    // Usable: the same call succeeds now.
    EXPECT_EQ(db.run(sql).code, SQLITE_OK) << where << ", once the disk is fine again";
    if ((::testing::Test::HasFailure() && !failed_before) || n > 200) {
      ADD_FAILURE() << "stopped at " << where;
      return failures;
    }
  }
}

TEST(FailingWrites, StartRun) {
  for (const Setting& setting : kSettings) {
    EXPECT_GT(sweep_writes(setting, "SELECT runs_migrate()", "SELECT start_run('x')", "start_run(): "), 0);
    EXPECT_GT(sweep_writes(setting, kTwoRuns, "SELECT start_run('x', 'api', 'new')", "start_run(): "), 0);
  }
}

TEST(FailingWrites, RunsMigrate) {
  for (const Setting& setting : kSettings) {
    EXPECT_GT(sweep_writes(setting, "", "SELECT runs_migrate()", "runs_migrate(): "), 0);
    EXPECT_GT(sweep_writes(setting, "CREATE TABLE app(x); INSERT INTO app VALUES (1)",
                           "SELECT runs_migrate()", "runs_migrate(): "),
              0);
  }
}

TEST(FailingWrites, Transitions) {
  for (const Setting& setting : kSettings) {
    for (const auto& [call, name] : kWrites) {
      if (name == "start_run") continue;
      EXPECT_GT(sweep_writes(setting, kTwoRuns, "SELECT " + call, name + "(): "), 0) << call;
    }
  }
}

// ---- a journal that cannot be created ---------------------------------------

// As in a directory the process may not write to (rollback-journal mode): the
// database can be read, but no transaction can write.
TEST(NoJournal, StartRunRunsMigrateAndTransitions) {
  FaultVfs::install();
  TempFile file;
  create(file.path(), "delete", "CREATE TABLE app(x)");
  const std::string uri = "file:" + file.path() + "?vfs=" + FaultVfs::kName;
  {
    TestDb db(uri, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI);
    const Rows before = dump(db);
    FaultVfs::refuse_journals(true);
    EXPECT_EQ(db.error("SELECT runs_migrate()", SQLITE_CANTOPEN),
              "runs_migrate(): migration 001_create_runs failed: unable to open database file");
    FaultVfs::refuse_journals(false);
    EXPECT_EQ(dump(db), before);
    EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
    db.exec(kTwoRuns);
  }
  TestDb db(uri, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI);
  const Rows before = dump(db);
  FaultVfs::refuse_journals(true);
  for (const auto& [call, name] : kWrites) {
    EXPECT_EQ(db.error("SELECT " + call, SQLITE_CANTOPEN), name + "(): unable to open database file");
  }
  EXPECT_EQ(db.value("SELECT active_run('k')"), "2");  // reads need no journal
  FaultVfs::refuse_journals(false);
  EXPECT_EQ(dump(db), before);
  EXPECT_EQ(seen_afresh(file.path()), before);
  EXPECT_EQ(db.value("SELECT start_run('x', 'api', 'new')"), "3");
}

// ---- locks held by another process -----------------------------------------

// A lock_holder process holding `mode` on `path` from construction until
// release() (or destruction). Synchronised through pipes: the constructor
// returns once the holder printed "locked".
class LockHolder {
 public:
  LockHolder(const std::string& path, const std::string& mode) {
    const ChildProcess child = spawn_child({LOCK_HOLDER_PATH, path, mode});
    pid_ = child.pid;
    to_holder_ = child.in;
    from_holder_ = child.out;
    if (pid_ < 0) return;
    // Wait for "locked\n"; the timeout only guards against a hung holder.
    std::string said;
    while (said.find('\n') == std::string::npos) {
      pollfd p{from_holder_, POLLIN, 0};
      if (poll(&p, 1, 60'000) != 1) {
        ADD_FAILURE() << "lock_holder did not answer";
        break;
      }
      char buffer[128];
      const ssize_t n = read(from_holder_, buffer, sizeof buffer);
      if (n <= 0) break;
      said.append(buffer, static_cast<std::size_t>(n));
    }
    locked_ = said == "locked\n";
    EXPECT_TRUE(locked_) << "lock_holder said: " << said;
  }
  ~LockHolder() { release(); }
  LockHolder(const LockHolder&) = delete;
  LockHolder& operator=(const LockHolder&) = delete;

  bool locked() const { return locked_; }

  // Closes the holder's stdin: it rolls back and exits.
  void release() {
    if (to_holder_ >= 0) close(to_holder_);
    to_holder_ = -1;
    if (pid_ > 0) {
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "lock_holder status " << status;
      pid_ = -1;
    }
    if (from_holder_ >= 0) close(from_holder_);
    from_holder_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int to_holder_ = -1;
  int from_holder_ = -1;
  bool locked_ = false;
};

class AnotherProcess : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    db.exec("PRAGMA busy_timeout = 50");
    before = dump(db);
  }

  // Every write fails with SQLITE_BUSY and kBusy; nothing changes.
  void every_write_is_busy() {
    for (const auto& [call, name] : kWrites) {
      EXPECT_EQ(db.error("SELECT " + call, SQLITE_BUSY), name + "(): " + kBusy) << GetParam();
      EXPECT_TRUE(sqlite3_get_autocommit(db.get()));
    }
    EXPECT_EQ(db.error("SELECT runs_migrate()", SQLITE_BUSY), "runs_migrate(): " + kBusy);
  }

  // Nothing was written; once the holder lets go, a fresh connection sees
  // the same, and start_run() succeeds.
  void expect_unchanged_until_released(LockHolder& holder) {
    EXPECT_EQ(dump(db), before);
    holder.release();
    EXPECT_EQ(seen_afresh(file.path()), before);
    EXPECT_EQ(db.value("SELECT start_run('x', 'api', 'new')"), "3");
  }

  TempFile file;
  bool created = (create(file.path(), GetParam(), kTwoRuns), true);
  TestDb db{file.path()};
  Rows before;
};

TEST_P(AnotherProcess, HoldsTheWriteLock) {
  LockHolder holder(file.path(), "write");
  ASSERT_TRUE(holder.locked());
  every_write_is_busy();
  // Readers are not blocked by a write lock.
  EXPECT_EQ(db.value("SELECT active_run('k')"), "2");
  expect_unchanged_until_released(holder);
}

TEST_P(AnotherProcess, ReadsWhileStartRunCommits) {
  LockHolder holder(file.path(), "read");
  ASSERT_TRUE(holder.locked());
  if (std::string(GetParam()) == "wal") {
    // WAL: a reader blocks no writer.
    EXPECT_EQ(db.value("SELECT start_run('x', 'api', 'new')"), "3");
    return;
  }
  // Rollback journal: start_run() gets the write lock and inserts, but its
  // COMMIT needs the reader gone; it must roll back and say so.
  EXPECT_EQ(db.error("SELECT start_run('x', 'api', 'new')", SQLITE_BUSY), "start_run(): " + kLockedByReader);
  EXPECT_EQ(db.error("SELECT cancel_run(1)", SQLITE_BUSY), "cancel_run(): " + kLockedByReader);
  EXPECT_TRUE(sqlite3_get_autocommit(db.get()));
  expect_unchanged_until_released(holder);
}

TEST_P(AnotherProcess, HoldsAnExclusiveLock) {
  LockHolder holder(file.path(), "exclusive");
  ASSERT_TRUE(holder.locked());
  every_write_is_busy();
  if (std::string(GetParam()) == "delete") {
    // Rollback journal: an exclusive lock stops readers too.
    EXPECT_EQ(db.error("SELECT active_run('k')", SQLITE_BUSY), "active_run(): " + kBusy);
    EXPECT_EQ(db.error("SELECT run_status(1)", SQLITE_BUSY), "run_status(): " + kBusy);
  } else {
    EXPECT_EQ(db.value("SELECT active_run('k')"), "2");
  }
  holder.release();
  EXPECT_EQ(dump(db), before);
  EXPECT_EQ(db.value("SELECT start_run('x', 'api', 'new')"), "3");
}

TEST_P(AnotherProcess, HoldsTheWriteLockOfAnUnmigratedDatabase) {
  TempFile empty;
  create(empty.path(), GetParam(), "CREATE TABLE app(x)");
  TestDb other(empty.path());
  other.exec("PRAGMA busy_timeout = 50");
  const Rows unmigrated = dump(other);
  LockHolder holder(empty.path(), "write");
  ASSERT_TRUE(holder.locked());
  EXPECT_EQ(other.error("SELECT runs_migrate()", SQLITE_BUSY), "runs_migrate(): " + kBusy);
  EXPECT_EQ(dump(other), unmigrated);
  holder.release();
  EXPECT_EQ(other.value("SELECT runs_migrate()"), kLatestSchemaVersion);
}

INSTANTIATE_TEST_SUITE_P(JournalModes, AnotherProcess, ::testing::Values("delete", "wal"));

}  // namespace
