// Out of memory: every function under every hard heap limit
// (sqlite3_hard_heap_limit64(), which a host may set), from the memory in use
// upward, so that each of the call's allocations fails in turn, until the
// call succeeds. Steps of 8 bytes (SQLite's allocation granularity) miss no
// allocation; the slower sweeps take 32 or 64 to keep the suite quick. After each
// failure the connection must be in autocommit and the database as it was.
//
// Each attempt runs on a fresh connection, so that the first-use work
// (schema check, statement preparation) is swept too. The database is copied
// in with sqlite3_deserialize() rather than migrated each time.
//
// Slow under valgrind (thousands of connections): tests/CMakeLists.txt leaves
// HeapLimit.* out of valgrind.unit_tests.
#include <cstdio>
#include <cstring>

#include "unit_helpers.h"

namespace {

using namespace runs_test;

// A database as bytes, to start each attempt from.
std::vector<unsigned char> image_of(const TestDb& db);

std::vector<unsigned char> image_of(const std::string& setup) {
  TestDb db;
  if (!setup.empty()) db.exec(setup);
  return image_of(db);
}

std::vector<unsigned char> image_of(const TestDb& db) {
  sqlite3_int64 size = 0;
  unsigned char* data = sqlite3_serialize(db.get(), "main", &size, 0);
  std::vector<unsigned char> bytes;
  if (data != nullptr) bytes.assign(data, data + size);
  sqlite3_free(data);
  return bytes;
}

void load(const TestDb& db, const std::vector<unsigned char>& image) {
  if (image.empty()) return;  // an empty database
  auto* copy = static_cast<unsigned char*>(sqlite3_malloc64(image.size()));
  ASSERT_NE(copy, nullptr);
  std::memcpy(copy, image.data(), image.size());
  const auto size = static_cast<sqlite3_int64>(image.size());
  ASSERT_EQ(sqlite3_deserialize(db.get(), "main", copy, size, size,
                                SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE),
            SQLITE_OK);
}

struct Sweep {
  int failures = 0;            // heap limits under which the call failed
  int left_in_transaction = 0;  // ... and left the connection in a transaction
  int changed = 0;              // ... and left the database changed (after ROLLBACK)
  std::string first_problem;
};

// Runs `sql` under ever larger heap limits until it succeeds, each time on a
// fresh connection that first runs `warm_up` without a limit. A failure that
// leaves a transaction open is rolled back (what SQLite asks of an
// application after SQLITE_NOMEM) and counted, as is one that changed the
// database.
Sweep sweep(const std::vector<unsigned char>& image, const std::string& sql, int step = 8,
            const std::string& warm_up = "") {
  Sweep result;
  for (sqlite3_int64 extra = 0;; extra += step) {
    TestDb db;
    load(db, image);
    if (!warm_up.empty()) db.exec(warm_up);
    const std::vector<unsigned char> before = warm_up.empty() ? image : image_of(db);
    sqlite3_hard_heap_limit64(sqlite3_memory_used() + extra);
    const Outcome out = db.run(sql);
    sqlite3_hard_heap_limit64(0);
    if (out.code == SQLITE_OK) {
      std::printf("[ swept    ] %s%s: %d heap limits failed it, %d left a transaction open\n",
                  warm_up.empty() ? "" : (warm_up + "; then ").c_str(), sql.c_str(), result.failures,
                  result.left_in_transaction);
      return result;
    }
    ++result.failures;
    if (!sqlite3_get_autocommit(db.get())) {
      ++result.left_in_transaction;
      if (result.first_problem.empty()) {
        result.first_problem = "limit +" + std::to_string(extra) + ": " + out.message +
                               " and left a transaction open";
      }
      db.exec("ROLLBACK");
    }
    if (image_of(db) != before) {
      ++result.changed;
      if (result.first_problem.empty()) {
        result.first_problem = "limit +" + std::to_string(extra) + ": " + out.message +
                               " and changed the database";
      }
    }
    if (extra > 1024 * 1024) {
      ADD_FAILURE() << sql << " still fails with 1 MiB to spare: " << out.message;
      return result;
    }
  }
}

// Enough failures to show that the sweep reached the call's allocations.
constexpr int kSomeFailures = 100;

TEST(HeapLimit, StartRun) {
  // Before the fix, 830 of 3040 limits left start_run()'s own BEGIN IMMEDIATE
  // open: an allocation failed while it prepared a statement inside the
  // transaction, after which SQLite refuses every statement, ROLLBACK
  // included, until the caller's statement ends.
  // After runs_migrate() on the same connection, as an application does at
  // startup (this case failed before the fix), as the first call on a
  // connection, and as a second start on a connection that started one.
  const auto image = image_of("SELECT runs_migrate()");
  const auto image_with_a_run = image_of("SELECT runs_migrate(); SELECT start_run('x')");
  struct Case {
    const std::vector<unsigned char>& image;
    std::string warm_up;
    std::string sql;
    int step;
  };
  for (const Case& c :
       {Case{{}, "SELECT runs_migrate()", "SELECT start_run('x')", 16},
        Case{image, "", "SELECT start_run('x', 'api', 'k')", 32},
        Case{image_with_a_run, "SELECT cancel_run(1); SELECT start_run('y', 'api', 'k')",
             "SELECT start_run('x')", 32}}) {
    const Sweep s = sweep(c.image, c.sql, c.step, c.warm_up);
    EXPECT_GT(s.failures, kSomeFailures / 4) << c.sql << " after " << c.warm_up;
    EXPECT_EQ(s.left_in_transaction, 0) << c.sql << " after " << c.warm_up << ": " << s.first_problem;
    EXPECT_EQ(s.changed, 0) << c.sql << " after " << c.warm_up << ": " << s.first_problem;
  }
}

// A flag PRAGMA (here query_only) expires every prepared statement of the
// connection; SQLite prepares an expired statement again when it is next
// stepped, which for start_run()'s cached statements is inside its
// transaction. A failed allocation there leaves the transaction open, as in
// runs_migrate() below: an open problem, reported to the lead
// (docs/reliability.md). What holds: ROLLBACK leaves the database as it was.
// Once fixed, left_in_transaction must become 0: flip that assertion.
TEST(HeapLimit, StartRunAfterAPragmaExpiredItsStatements) {
  const auto image = image_of("SELECT runs_migrate()");
  const Sweep s = sweep(image, "SELECT start_run('x')", 32,
                        "SELECT start_run('y', 'api', 'k'); PRAGMA query_only = 0");
  EXPECT_GT(s.failures, kSomeFailures / 4);
  EXPECT_GT(s.left_in_transaction, 0);  // the open problem; this fails once it is fixed
  EXPECT_EQ(s.changed, 0) << s.first_problem;
}

TEST(HeapLimit, StartRunRefusingASecondRun) {
  const auto image = image_of("SELECT runs_migrate(); SELECT start_run('x')");
  TestDb db;
  load(db, image);
  EXPECT_EQ(db.error("SELECT start_run('x')", SQLITE_CONSTRAINT_UNIQUE).substr(0, 36),
            "start_run(): run 1 is already active");
  // The sweep ends at the first limit under which the refusal itself works.
  int failures = 0;
  for (sqlite3_int64 extra = 0;; extra += 8) {
    TestDb attempt;
    load(attempt, image);
    sqlite3_hard_heap_limit64(sqlite3_memory_used() + extra);
    const Outcome out = attempt.run("SELECT start_run('x')");
    sqlite3_hard_heap_limit64(0);
    EXPECT_TRUE(sqlite3_get_autocommit(attempt.get())) << "limit +" << extra << ": " << out.message;
    EXPECT_EQ(count(attempt, "runs"), "1");
    if (out.extended == SQLITE_CONSTRAINT_UNIQUE || ::testing::Test::HasFailure()) break;
    ++failures;
  }
  EXPECT_GT(failures, kSomeFailures);
}

TEST(HeapLimit, Transitions) {
  const auto image = image_of(
      "SELECT runs_migrate(); SELECT start_run('a'); SELECT start_run('b', 'api', 'k');"
      " SELECT mark_run_running(2)");
  for (const std::string sql :
       {"SELECT mark_run_running(1)", "SELECT complete_run(2)", "SELECT fail_run(2, 'boom')",
        "SELECT cancel_run(1)", "SELECT update_run_progress(2, 1, 2, 'extract')",
        "SELECT run_status(1)", "SELECT active_run('k')"}) {
    const Sweep s = sweep(image, sql, 32);
    EXPECT_GT(s.failures, kSomeFailures / 4) << sql;
    EXPECT_EQ(s.left_in_transaction, 0) << sql << ": " << s.first_problem;
    EXPECT_EQ(s.changed, 0) << sql << ": " << s.first_problem;
  }
}

// runs_migrate() prepares the migrations' statements inside its transaction
// (each depends on the schema the previous one made), so a failed allocation
// there leaves the transaction open: an open problem, reported to the lead
// (docs/reliability.md). An application that then COMMITs (Python's commit()
// does, seeing a transaction) records version 2 without its column and
// index. What holds today: the ROLLBACK that SQLite asks of an application
// after SQLITE_NOMEM leaves the database exactly as it was. Once fixed,
// left_in_transaction must become 0: flip that assertion.
TEST(HeapLimit, RunsMigrateRollsBackToNothingWritten) {
  const Sweep s = sweep({}, "SELECT runs_migrate()", 64);
  EXPECT_GT(s.failures, kSomeFailures);
  EXPECT_GT(s.left_in_transaction, 0);  // the open problem below; this fails once it is fixed
  EXPECT_EQ(s.changed, 0) << s.first_problem;
}

}  // namespace
