// Hostile schemas: a database file whose schema tries to call the functions
// when the application does something innocent (reads a view, inserts a row).
// Each schema is written by one connection and used by a fresh one, which
// loads it from the file as it would load a file from elsewhere.
//
// What stops each kind:
//   - views, triggers, DEFAULT expressions: SQLITE_DIRECTONLY, at prepare time
//     (`unsafe use of f()`), whatever PRAGMA trusted_schema says;
//   - generated columns, index expressions, partial-index WHERE clauses: SQLite
//     refuses non-deterministic functions there, at CREATE, and a schema
//     crafted with writable_schema is "malformed" and cannot be used at all;
//   - CHECK constraints: SQLite 3.40 applies neither SQLITE_DIRECTONLY nor
//     trusted_schema=OFF to them, so the functions' own runtime guards must:
//     start_run() and runs_migrate() refuse any transaction they did not open
//     in autocommit mode, start_run() refuses the caller's transaction, and
//     runs_migrate() (which joins the caller's transaction) and the writing
//     transitions refuse to run inside a statement that writes. The reads (active_run(), run_status()) may run there.
#include "unit_helpers.h"

namespace {

using namespace runs_test;

// Every function that writes, with its name.
const std::vector<std::pair<std::string, std::string>> kWrites = {
    {"start_run('evil')", "start_run"},
    {"runs_migrate()", "runs_migrate"},
    {"mark_run_running(1)", "mark_run_running"},
    {"complete_run(2)", "complete_run"},
    {"fail_run(2, 'evil')", "fail_run"},
    {"cancel_run(2)", "cancel_run"},
    {"update_run_progress(2, 6, 6, 'evil')", "update_run_progress"},
};
const std::vector<std::pair<std::string, std::string>> kReads = {
    {"active_run('k')", "active_run"},
    {"run_status(2)", "run_status"},
};

const std::string kTransitionInAWrite =
    "must not run inside a statement that writes (INSERT ... SELECT, UPDATE ... SET, a CHECK "
    "constraint): call it in a SELECT of its own";

// The message a writing function gives when a CHECK constraint calls it.
std::string refusal_in_a_check(const std::string& name) {
  if (name == "start_run" || name == "runs_migrate") return name + "(): " + kWriteTxn;
  return name + "(): " + kTransitionInAWrite;
}

class HostileSchema : public ::testing::TestWithParam<bool> {
 protected:
  // Run 1 pending, run 2 running with key 'k'; then `schema` is added.
  void make(const std::string& schema) {
    TestDb author(file.path());
    author.exec("SELECT runs_migrate(); SELECT start_run('a'); SELECT start_run('b', 'api', 'k');"
                " SELECT mark_run_running(2)");
    author.exec(schema);
  }

  // A fresh connection to the file, with PRAGMA trusted_schema as the test
  // parameter says.
  std::unique_ptr<TestDb> open() {
    auto db = std::make_unique<TestDb>(file.path());
    db->exec(std::string("PRAGMA trusted_schema = ") + (GetParam() ? "ON" : "OFF"));
    return db;
  }

  // The runs are as make() left them: 1 pending, 2 running.
  static void expect_runs_as_made(const TestDb& db) {
    EXPECT_EQ(row(db, "SELECT group_concat(status) FROM (SELECT status FROM runs ORDER BY id)"),
              (Row{"pending,running"}));
  }

  TempFile file;
};

TEST_P(HostileSchema, ViewsAreRefusedByDirectOnly) {
  std::string schema;
  for (std::size_t i = 0; i < kWrites.size(); ++i) {
    schema += "CREATE VIEW v" + std::to_string(i) + " AS SELECT " + kWrites[i].first + " AS r;";
  }
  schema += "CREATE VIEW vr AS SELECT active_run('k') AS r";
  make(schema);
  const auto db = open();
  const Rows before = dump(*db);
  for (std::size_t i = 0; i < kWrites.size(); ++i) {
    EXPECT_EQ(db->error("SELECT * FROM v" + std::to_string(i), SQLITE_ERROR),
              "unsafe use of " + kWrites[i].second + "()");
  }
  EXPECT_EQ(db->error("SELECT * FROM vr", SQLITE_ERROR), "unsafe use of active_run()");
  EXPECT_EQ(dump(*db), before);
}

TEST_P(HostileSchema, TriggersAreRefusedByDirectOnly) {
  std::string schema = "CREATE TABLE t(x); CREATE VIEW tv AS SELECT x FROM t;";
  for (std::size_t i = 0; i < kWrites.size(); ++i) {
    const std::string n = std::to_string(i);
    // Every kind of trigger, each on its own table.
    schema += "CREATE TABLE t" + n + "(x);"
              "CREATE TRIGGER a" + n + " AFTER INSERT ON t" + n + " BEGIN SELECT " +
              kWrites[i].first + "; END;"
              "CREATE TRIGGER b" + n + " BEFORE UPDATE ON t" + n + " BEGIN SELECT " +
              kWrites[i].first + "; END;"
              "CREATE TRIGGER c" + n + " AFTER DELETE ON t" + n + " WHEN " + kWrites[i].first +
              " IS NOT NULL BEGIN SELECT 1; END;"
              "CREATE VIEW tv" + n + " AS SELECT x FROM t" + n + ";"
              "CREATE TRIGGER d" + n + " INSTEAD OF INSERT ON tv" + n + " BEGIN SELECT " +
              kWrites[i].first + "; END;";
  }
  make(schema);
  const auto db = open();
  const Rows before = dump(*db);
  for (std::size_t i = 0; i < kWrites.size(); ++i) {
    const std::string n = std::to_string(i);
    const std::string unsafe = "unsafe use of " + kWrites[i].second + "()";
    EXPECT_EQ(db->error("INSERT INTO t" + n + " VALUES (1)", SQLITE_ERROR), unsafe);
    EXPECT_EQ(db->error("UPDATE t" + n + " SET x = 2", SQLITE_ERROR), unsafe);
    EXPECT_EQ(db->error("DELETE FROM t" + n, SQLITE_ERROR), unsafe);
    EXPECT_EQ(db->error("INSERT INTO tv" + n + " VALUES (1)", SQLITE_ERROR), unsafe);
  }
  EXPECT_EQ(dump(*db), before);
}

TEST_P(HostileSchema, ATriggerOnRunsStopsTheFunctionsThatWriteIt) {
  // A trigger on runs itself is compiled into the functions' own statements.
  make("CREATE TRIGGER evil AFTER INSERT ON runs BEGIN SELECT cancel_run(2); END;"
       "CREATE TRIGGER evil2 AFTER UPDATE ON runs BEGIN SELECT fail_run(1, 'evil'); END;");
  const auto db = open();
  const Rows before = dump(*db);
  // start_run() prepares its UPDATE (to fail an abandoned run) before its
  // INSERT, so evil2 is met first.
  EXPECT_EQ(db->error("SELECT start_run('x', 'api', 'new')", SQLITE_ERROR),
            "start_run(): unsafe use of fail_run()");
  EXPECT_EQ(db->error("SELECT complete_run(2)", SQLITE_ERROR),
            "complete_run(): unsafe use of fail_run()");
  EXPECT_EQ(dump(*db), before);
  EXPECT_TRUE(sqlite3_get_autocommit(db->get()));
}

TEST_P(HostileSchema, DefaultExpressionsAreRefusedByDirectOnly) {
  std::string schema;
  for (std::size_t i = 0; i < kWrites.size(); ++i) {
    schema += "CREATE TABLE d" + std::to_string(i) + "(x DEFAULT (" + kWrites[i].first + "), y);";
  }
  make(schema);
  const auto db = open();
  const Rows before = dump(*db);
  for (std::size_t i = 0; i < kWrites.size(); ++i) {
    EXPECT_EQ(db->error("INSERT INTO d" + std::to_string(i) + "(y) VALUES (1)", SQLITE_ERROR),
              "unsafe use of " + kWrites[i].second + "()");
  }
  EXPECT_EQ(dump(*db), before);
}

TEST_P(HostileSchema, CheckConstraintsMeetTheRuntimeGuards) {
  // Neither SQLITE_DIRECTONLY nor trusted_schema=OFF stops a CHECK constraint.
  std::string schema;
  for (std::size_t i = 0; i < kWrites.size(); ++i) {
    const std::string n = std::to_string(i);
    schema += "CREATE TABLE c" + n + "(x CHECK (" + kWrites[i].first + " IS NOT NULL));"
              "CREATE TABLE u" + n + "(x, y CHECK (y IS NULL OR " + kWrites[i].first +
              " IS NOT NULL)); INSERT INTO u" + n + " VALUES (1, NULL);";
  }
  make(schema);
  const auto db = open();
  const Rows before = dump(*db);
  for (std::size_t i = 0; i < kWrites.size(); ++i) {
    const std::string n = std::to_string(i);
    const std::string refusal = refusal_in_a_check(kWrites[i].second);
    EXPECT_EQ(db->error("INSERT INTO c" + n + " VALUES (1)", SQLITE_ERROR), refusal);
    EXPECT_EQ(db->error("UPDATE u" + n + " SET y = 1", SQLITE_ERROR), refusal);
    EXPECT_TRUE(sqlite3_get_autocommit(db->get()));
  }
  EXPECT_EQ(dump(*db), before);
  // Inside the application's own transaction too; its work survives.
  db->exec("CREATE TABLE mine(x); BEGIN IMMEDIATE; INSERT INTO mine VALUES (1)");
  for (std::size_t i = 0; i < kWrites.size(); ++i) {
    const Outcome out = db->run("INSERT INTO c" + std::to_string(i) + " VALUES (1)");
    EXPECT_EQ(out.extended, SQLITE_ERROR);
    // start_run() and runs_migrate() join the caller's transaction, but not
    // from inside a statement that writes; nor do the transitions.
    EXPECT_EQ(out.message, kWrites[i].second + "(): " + kTransitionInAWrite);
  }
  db->exec("COMMIT");
  EXPECT_EQ(count(*db, "mine"), "1");
  expect_runs_as_made(*db);
}

TEST_P(HostileSchema, ReadsInACheckConstraintWriteNothing) {
  make("CREATE TABLE r(x CHECK (active_run('k') = 2 AND run_status(2) = 'running'))");
  const auto db = open();
  db->exec("INSERT INTO r VALUES (1)");
  EXPECT_EQ(count(*db, "r"), "1");
  expect_runs_as_made(*db);
}

TEST_P(HostileSchema, DeterministicOnlyPlacesRefuseTheFunctionsAtCreate) {
  make("CREATE TABLE t(x)");
  const auto db = open();
  // (the statement, % for the call; where SQLite says the call is prohibited)
  const std::vector<std::pair<std::string, std::string>> places = {
      {"CREATE TABLE g(x, y AS (%))", "generated columns"},
      {"CREATE TABLE g(x, y AS (%) STORED)", "generated columns"},
      {"CREATE INDEX i ON t(%)", "index expressions"},
      {"CREATE INDEX i ON t(x) WHERE % IS NULL", "partial index WHERE clauses"}};
  for (const auto& calls : {kWrites, kReads}) {
    for (const auto& [call, name] : calls) {
      for (auto [statement, where] : places) {
        statement.replace(statement.find('%'), 1, call);
        EXPECT_EQ(db->error(statement, SQLITE_ERROR), "non-deterministic functions prohibited in " + where);
      }
    }
  }
}

TEST_P(HostileSchema, CraftedDeterministicOnlyPlacesMakeTheSchemaUnusable) {
  // Written past CREATE's checks with writable_schema: SQLite refuses the
  // whole schema when it loads it, and nothing runs.
  make("CREATE TABLE g(x); CREATE TABLE ix(x); CREATE INDEX ix_e ON ix(abs(x));"
       "PRAGMA writable_schema = ON;"
       "UPDATE sqlite_schema SET sql = 'CREATE INDEX ix_e ON ix(cancel_run(2))' WHERE name = 'ix_e';"
       "PRAGMA writable_schema = OFF;");
  {
    const auto db = open();
    EXPECT_EQ(db->error("INSERT INTO ix VALUES (1)", SQLITE_CORRUPT),
              "malformed database schema (ix_e) - non-deterministic functions prohibited in index "
              "expressions");
  }
  TestDb reader(file.path());
  reader.exec("PRAGMA writable_schema = ON");  // reads the schema without parsing it
  expect_runs_as_made(reader);
}

INSTANTIATE_TEST_SUITE_P(TrustedSchema, HostileSchema, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "On" : "Off";
                         });

}  // namespace
