// runs_migrate() and the sql/ files: the schema, idempotence, the repair of
// duplicate active runs, refusals that change nothing.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <utility>

#include "unit_helpers.h"

namespace {

using namespace runs_test;

// The files sql/NNN_name.sql in version order, as (version, "NNN_name"): the
// names runs_schema_migrations records.
std::vector<std::pair<std::string, std::string>> migration_files() {
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(RUNS_SOURCE_DIR) + "/sql")) {
    const std::string stem = entry.path().stem().string();
    if (entry.path().extension() != ".sql" || stem.size() < 4 || stem[3] != '_' ||
        stem.find_first_not_of("0123456789") != 3) {
      continue;
    }
    files.emplace_back(std::to_string(std::stoi(stem.substr(0, 3))), stem);
  }
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return std::stoi(a.first) < std::stoi(b.first); });
  return files;
}

// Applies the files sql/001 .. sql/`version` in order by hand (sqlite3_exec).
void apply_the_files(const TestDb& db, int version = latest_schema_version()) {
  for (int v = 1; v <= version; ++v) {
    const ExecResult applied = exec_script(db, migration_sql(v));
    EXPECT_EQ(applied.rc, SQLITE_OK) << v << ": " << applied.message;
  }
  EXPECT_TRUE(sqlite3_get_autocommit(db.get()));
  EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_temp_schema"), "0");  // temp triggers dropped
}

// The schema that the files sql/001 .. sql/`version` give: the one statement
// of the schema, which the schema tests compare runs_migrate()'s with.
Rows schema_of_the_files(int version = latest_schema_version()) {
  TestDb db;
  apply_the_files(db, version);
  return schema(db);
}

// FNV-1a (64 bits) of a schema's rows, to recognise a released one.
std::uint64_t fingerprint(const Rows& rows) {
  std::uint64_t hash = 14695981039346656037ull;
  for (const Row& r : rows) {
    for (const auto& cell : r) {
      for (const char c : cell.value_or("NULL") + "\x1f") {
        hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
      }
    }
  }
  return hash;
}

// GenGlossary's run table: the 11 columns, no concurrency_key.
const std::string kGenGlossaryRuns =
    "CREATE TABLE runs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " scope TEXT NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'pending',"
    " started_at TEXT,"
    " finished_at TEXT,"
    " triggered_by TEXT NOT NULL DEFAULT 'api',"
    " error_message TEXT,"
    " progress_current INTEGER DEFAULT 0,"
    " progress_total INTEGER DEFAULT 0,"
    " current_step TEXT,"
    " created_at TEXT NOT NULL)";

const char* const kColumns[] = {"id",           "scope",         "status",           "started_at",
                                "finished_at",  "triggered_by",  "error_message",    "progress_current",
                                "progress_total", "current_step", "created_at"};

// The values migrations 2, 3 and 4 give an adopted table's existing rows:
// concurrency_key '', and no owner, heartbeat, lease or cancel request.
const Row kAddedColumns = {"",           std::nullopt, std::nullopt, std::nullopt,
                           std::nullopt, std::nullopt, std::nullopt, std::nullopt,
                           std::nullopt, std::nullopt, std::nullopt};

// Removes the columns after GenGlossary's 11 from `r` and returns them.
Row drop_added_columns(Row& r) {
  const std::size_t kept = std::size(kColumns);
  if (r.size() < kept) return {};
  Row added(r.begin() + static_cast<std::ptrdiff_t>(kept), r.end());
  r.resize(kept);
  return added;
}

TEST(Migrations, FreshDatabaseReachesTheLatestVersionWithTheExactSchema) {
  TestDb db;
  EXPECT_EQ(db.value("SELECT typeof(runs_migrate())"), "integer");
  EXPECT_EQ(schema(db), schema_of_the_files());
  // Not vacuous: the table, its index and its triggers.
  EXPECT_EQ(db.value("SELECT count(*) > 2 FROM sqlite_schema WHERE tbl_name = 'runs'"), "1");
  Rows recorded;
  for (const auto& [version, name] : migration_files()) recorded.push_back({version, name, "1"});
  EXPECT_EQ(recorded.size(), static_cast<std::size_t>(latest_schema_version()));
  EXPECT_EQ(rows(db, "SELECT version, name, applied_at GLOB " + kIsoGlob +
                         " FROM runs_schema_migrations ORDER BY version"),
            recorded);
  EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_temp_schema"), "0");  // temp triggers dropped
  EXPECT_EQ(count(db, "runs"), "0");
  EXPECT_TRUE(sqlite3_get_autocommit(db.get()));
}

// A released migration is history that users' databases hold: what it stores
// in sqlite_schema never changes (runs_check() compares their schema with the
// one the files give, so an edited trigger would be reported in every one of
// them). Its text may change only where the stored schema stays byte for byte
// the same. A release adds its migration's fingerprint here.
TEST(Migrations, ReleasedMigrationsStillGiveTheSchemaTheyGave) {
  const std::pair<int, std::uint64_t> kReleased[] = {
      {1, 0xe4195fab40f783c7ull},
      {2, 0x6dba44b77feff527ull},
      {3, 0x9d2e87891efdc5f0ull},
  };
  for (const auto& [version, expected] : kReleased) {
    const std::uint64_t actual = fingerprint(schema_of_the_files(version));
    EXPECT_EQ(actual, expected) << "the schema of migrations 1.." << version << " changed: fingerprint 0x"
                                << std::hex << actual;
  }
}

TEST(Migrations, IsIdempotent) {
  TestDb db;
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
  const Rows before = dump(db);
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(count(db, "runs_schema_migrations"), kLatestSchemaVersion);
  EXPECT_EQ(dump(db), before);
}

TEST(Migrations, TheSqlFilesByHandGiveTheSameSchema) {
  TestDb by_function;
  EXPECT_EQ(by_function.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  TestDb by_hand;
  apply_the_files(by_hand);
  EXPECT_EQ(schema(by_hand), schema(by_function));
  EXPECT_EQ(rows(by_hand, "SELECT version, name FROM runs_schema_migrations ORDER BY 1"),
            rows(by_function, "SELECT version, name FROM runs_schema_migrations ORDER BY 1"));
  // The functions work on it, and runs_migrate() has nothing left to do.
  EXPECT_EQ(by_hand.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(count(by_hand, "runs_schema_migrations"), kLatestSchemaVersion);
  EXPECT_EQ(by_hand.value("SELECT start_run('a')"), "1");
}

TEST(Migrations, RunsMigrateCompletesAHandAppliedVersion1) {
  TestDb db;
  ASSERT_EQ(exec_script(db, migration_sql(1)).rc, SQLITE_OK);
  EXPECT_EQ(db.value("SELECT max(version) FROM runs_schema_migrations"), "1");
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  TestDb fresh;
  EXPECT_EQ(fresh.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(schema(db), schema(fresh));
}

TEST(Migrations, ReapplyingTheFilesAfterMigrateChangesNothing) {
  TestDb db;
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
  const Rows before = dump(db);
  for (int version = 1; version <= latest_schema_version(); ++version) {
    SCOPED_TRACE(version);
    const ExecResult again = exec_script(db, migration_sql(version));
    EXPECT_EQ(again.rc & 0xff, SQLITE_CONSTRAINT);
    EXPECT_EQ(again.extended, SQLITE_CONSTRAINT_PRIMARYKEY);
    EXPECT_EQ(again.message, "UNIQUE constraint failed: runs_schema_migrations.version");
    EXPECT_TRUE(sqlite3_get_autocommit(db.get()));
    EXPECT_EQ(dump(db), before);
  }
}

TEST(Migrations, AdoptsAGenGlossaryTableAndRepairsDuplicateActiveRuns) {
  TestDb db;
  db.exec(kGenGlossaryRuns);
  db.exec(
      "INSERT INTO runs (id, scope, status, started_at, finished_at, triggered_by, error_message,"
      " progress_current, progress_total, current_step, created_at) VALUES"
      " (1, 'full', 'running', '2024-05-01T10:00:00.000Z', NULL, 'api', NULL, 3, 10, 'extract',"
      "  '2024-05-01T09:59:00.000Z'),"
      " (2, 'full', 'completed', '2024-04-01T10:00:00.000Z', '2024-04-01T11:00:00.000Z', 'cli',"
      "  NULL, 10, 10, 'done', '2024-04-01T09:00:00.000Z'),"
      " (3, 'partial', 'pending', NULL, NULL, 'api', NULL, 0, 0, NULL, '2024-05-02T00:00:00.000Z'),"
      " (4, 'full', 'failed', '2024-04-02T10:00:00.000Z', '2024-04-02T10:05:00.000Z', 'api',"
      "  'old failure', 1, 10, 'extract', '2024-04-02T09:00:00.000Z'),"
      " (5, 'full', 'pending', NULL, NULL, 'scheduler', NULL, 0, 0, NULL, '2024-05-03T00:00:00.000Z')");
  const Rows finished_before = rows(db, "SELECT * FROM runs WHERE id IN (2, 4) ORDER BY id");
  const Rows kept_before = rows(db, "SELECT * FROM runs WHERE id = 5");
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(count(db, "runs"), "5");
  const std::string abandoned =
      "abandoned: run 5 was active for the same key at the same time; migration 002 kept the "
      "newest active run and failed this one";
  EXPECT_EQ(rows(db, "SELECT id, status, finished_at GLOB " + kIsoGlob +
                         ", error_message, started_at, progress_current, current_step,"
                         " concurrency_key FROM runs WHERE id IN (1, 3) ORDER BY id"),
            (Rows{{"1", "failed", "1", abandoned, "2024-05-01T10:00:00.000Z", "3", "extract", ""},
                  {"3", "failed", "1", abandoned, std::nullopt, "0", std::nullopt, ""}}));
  // The finished runs and the kept run are untouched (plus the new columns:
  // concurrency_key '' and migration 3's, NULL: no owner recorded).
  Rows finished_after = rows(db, "SELECT * FROM runs WHERE id IN (2, 4) ORDER BY id");
  Rows kept_after = rows(db, "SELECT * FROM runs WHERE id = 5");
  for (Row& r : finished_after) EXPECT_EQ(drop_added_columns(r), kAddedColumns);
  for (Row& r : kept_after) EXPECT_EQ(drop_added_columns(r), kAddedColumns);
  EXPECT_EQ(finished_after, finished_before);
  EXPECT_EQ(kept_after, kept_before);
  EXPECT_EQ(db.value("SELECT active_run()"), "5");
  EXPECT_EQ(db.error("SELECT start_run('full')", SQLITE_CONSTRAINT_UNIQUE),
            "start_run(): run 5 is already active (scope 'full', status 'pending', since "
            "2024-05-03T00:00:00.000Z" + kWaitSuffix);
  // The adopted table keeps its own definition, with the columns added: the
  // columns of a fresh one.
  TestDb fresh;
  EXPECT_EQ(fresh.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  const std::string columns = "SELECT * FROM pragma_table_info('runs') ORDER BY cid";
  EXPECT_EQ(rows(db, columns), rows(fresh, columns));
  EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_schema WHERE name = 'runs_one_active'"), "1");
}

TEST(Migrations, RepairIsPerKeyAndNeedsNoRepairForOneActiveRun) {
  TestDb db;
  db.exec(kGenGlossaryRuns);
  db.exec(
      "INSERT INTO runs (scope, status, created_at) VALUES"
      " ('a', 'running', '2024-01-01T00:00:00.000Z'),"
      " ('b', 'completed', '2024-01-01T00:00:00.000Z')");
  const Rows before = rows(db, "SELECT * FROM runs ORDER BY id");
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  Rows after = rows(db, "SELECT * FROM runs ORDER BY id");
  for (Row& r : after) EXPECT_EQ(drop_added_columns(r), kAddedColumns);
  EXPECT_EQ(after, before);
  EXPECT_EQ(db.value("SELECT active_run()"), "1");
}

TEST(Migrations, AdoptsATableWithExtraColumns) {
  TestDb db;
  db.exec("CREATE TABLE runs (id INTEGER PRIMARY KEY, scope TEXT NOT NULL, status TEXT NOT NULL"
          " DEFAULT 'pending', started_at TEXT, finished_at TEXT, triggered_by TEXT NOT NULL"
          " DEFAULT 'api', error_message TEXT, progress_current INTEGER DEFAULT 0,"
          " progress_total INTEGER DEFAULT 0, current_step TEXT, created_at TEXT NOT NULL,"
          " owner TEXT)");
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
  EXPECT_EQ(row(db, "SELECT scope, owner, concurrency_key FROM runs"), (Row{"a", std::nullopt, ""}));
}

TEST(Migrations, ATableMissingAColumnIsRefusedAndNothingChanges) {
  for (const char* missing : kColumns) {
    TestDb db;
    std::string columns;
    for (const char* column : kColumns) {
      if (std::string(column) == missing) continue;
      if (!columns.empty()) columns += ", ";
      columns += std::string(column) == "id" ? "id INTEGER PRIMARY KEY" : column;
    }
    db.exec("CREATE TABLE runs (" + columns + ")");
    db.exec("CREATE TABLE app (x)");
    const Rows before = dump(db);
    const std::string reason = std::string("table runs exists but has no column ") + missing +
                               ": add it or rename the table, then migrate again";
    EXPECT_EQ(db.error("SELECT runs_migrate()", SQLITE_ERROR),
              "runs_migrate(): migration 001_create_runs failed: " + reason);
    EXPECT_EQ(dump(db), before) << missing;
    EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_schema WHERE name = 'runs_schema_migrations'"), "0");
    // By hand: the same reason, the same nothing.
    const ExecResult by_hand = exec_script(db, migration_sql(1));
    EXPECT_EQ(by_hand.rc & 0xff, SQLITE_CONSTRAINT) << missing;
    EXPECT_EQ(by_hand.extended, SQLITE_CONSTRAINT_TRIGGER) << missing;
    EXPECT_EQ(by_hand.message, reason);
    EXPECT_TRUE(sqlite3_get_autocommit(db.get()));
    EXPECT_EQ(dump(db), before) << missing;
    // And the functions still say there is no schema.
    EXPECT_EQ(db.error("SELECT start_run('x')", SQLITE_ERROR), "start_run(): " + kNoSchema);
  }
}

TEST(Migrations, TheFirstMissingColumnIsNamed) {
  TestDb db;
  db.exec("CREATE TABLE runs (id INTEGER PRIMARY KEY, scope TEXT, status TEXT)");
  EXPECT_EQ(db.error("SELECT runs_migrate()", SQLITE_ERROR),
            "runs_migrate(): migration 001_create_runs failed: table runs exists but has no column "
            "started_at: add it or rename the table, then migrate again");
  // After adding the columns it migrates.
  db.exec("ALTER TABLE runs ADD COLUMN started_at TEXT; ALTER TABLE runs ADD COLUMN finished_at TEXT;"
          "ALTER TABLE runs ADD COLUMN triggered_by TEXT NOT NULL DEFAULT 'api';"
          "ALTER TABLE runs ADD COLUMN error_message TEXT;"
          "ALTER TABLE runs ADD COLUMN progress_current INTEGER DEFAULT 0;"
          "ALTER TABLE runs ADD COLUMN progress_total INTEGER DEFAULT 0;"
          "ALTER TABLE runs ADD COLUMN current_step TEXT;"
          "ALTER TABLE runs ADD COLUMN created_at TEXT");
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
}

TEST(Migrations, AFailureInMigration2UndoesMigration1) {
  TestDb db;
  db.exec("CREATE TABLE runs (id INTEGER PRIMARY KEY, scope, status, started_at, finished_at,"
          " triggered_by, error_message, progress_current, progress_total, current_step,"
          " created_at, concurrency_key)");
  db.exec("INSERT INTO runs (scope, status, created_at) VALUES ('a', 'running', 'x')");
  const Rows before = dump(db);
  EXPECT_EQ(db.error("SELECT runs_migrate()", SQLITE_ERROR),
            "runs_migrate(): migration 002_one_active_run failed: duplicate column name: "
            "concurrency_key");
  EXPECT_EQ(dump(db), before);
  EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_schema WHERE name = 'runs_schema_migrations'"), "0");
}

TEST(Migrations, ASchemaNewerThanTheLibraryIsRefused) {
  TestDb db;
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  const int future = latest_schema_version() + 1;
  db.exec("INSERT INTO runs_schema_migrations VALUES (" + std::to_string(future) +
          ", 'future', '2030-01-01T00:00:00.000Z')");
  const Rows before = dump(db);
  EXPECT_EQ(db.error("SELECT runs_migrate()", SQLITE_ERROR),
            "runs_migrate(): the runs schema is at version " + std::to_string(future) +
                ", newer than this library knows (" + kLatestSchemaVersion +
                "): load a newer sqlite-runs");
  EXPECT_EQ(dump(db), before);
}

TEST(Migrations, RefusedInsideAStatement) {
  TestDb db;
  db.exec("CREATE TABLE t(x); INSERT INTO t VALUES (1)");
  EXPECT_EQ(db.error("SELECT runs_migrate() FROM t", SQLITE_ERROR), "runs_migrate(): " + kReadTxn);
  EXPECT_EQ(db.error("INSERT INTO t SELECT runs_migrate()", SQLITE_ERROR),
            "runs_migrate(): " + kWriteTxn);
  // Inside the caller's transaction too: a statement that writes is where a
  // CHECK constraint would call it.
  EXPECT_EQ(db.error("BEGIN; INSERT INTO t SELECT runs_migrate()", SQLITE_ERROR),
            "runs_migrate(): must not run inside a statement that writes (INSERT ... SELECT, "
            "UPDATE ... SET, a CHECK constraint): call it in a SELECT of its own");
  EXPECT_FALSE(sqlite3_get_autocommit(db.get()));
  db.exec("ROLLBACK");
  EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_schema"), "1");
  EXPECT_EQ(count(db, "t"), "1");
}

// ---- inside the caller's transaction (a migration tool's) -----------------

// Inside BEGIN or SAVEPOINT, runs_migrate() applies the migrations in a
// savepoint of the caller's transaction: they commit or roll back with it.
TEST(Migrations, InsideTheCallersTransactionTheyCommitOrRollBackWithIt) {
  for (const char* begin : {"BEGIN", "BEGIN IMMEDIATE", "SAVEPOINT tool"}) {
    SCOPED_TRACE(begin);
    const bool savepoint = std::string(begin).starts_with("SAVEPOINT");
    TestDb db;
    db.exec(std::string(begin) + "; CREATE TABLE tool(version); INSERT INTO tool VALUES (7)");
    EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
    EXPECT_FALSE(sqlite3_get_autocommit(db.get()));
    EXPECT_EQ(sqlite3_last_insert_rowid(db.get()), 1);  // the caller's, not the bookkeeping's
    EXPECT_EQ(count(db, "runs_schema_migrations"), kLatestSchemaVersion);
    db.exec(savepoint ? "ROLLBACK TO tool; RELEASE tool" : "ROLLBACK");
    EXPECT_TRUE(sqlite3_get_autocommit(db.get()));
    EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_schema"), "0");

    db.exec(std::string(begin) + "; CREATE TABLE tool(version); INSERT INTO tool VALUES (7)");
    EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
    EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);  // nothing left to do
    db.exec(savepoint ? "RELEASE tool" : "COMMIT");
    EXPECT_EQ(count(db, "tool"), "1");
    EXPECT_EQ(count(db, "runs_schema_migrations"), kLatestSchemaVersion);
    EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
    // The same schema as outside a transaction: the bookkeeping table that
    // runs_migrate() creates to take the write lock is migration 001's.
    TestDb fresh;
    EXPECT_EQ(fresh.value("SELECT runs_migrate()"), kLatestSchemaVersion);
    fresh.exec("CREATE TABLE tool(version)");
    EXPECT_EQ(schema(db), schema(fresh));
  }
}

// Version 1 applied by hand, the rest inside the caller's transaction: the
// write lock is taken through the bookkeeping table that exists.
TEST(Migrations, InsideTheCallersTransactionFromAPartialSchema) {
  TestDb db;
  ASSERT_EQ(exec_script(db, migration_sql(1)).rc, SQLITE_OK);
  db.exec("BEGIN");
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  db.exec("COMMIT");
  TestDb fresh;
  EXPECT_EQ(fresh.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(schema(db), schema(fresh));
}

// The error of runs_migrate() inside the caller's transaction, which stays open.
std::string error_in_transaction(const TestDb& db, int extended_code) {
  const Outcome out = db.run("SELECT runs_migrate()");
  EXPECT_EQ(out.extended, extended_code) << out.message;
  return out.message;
}

// A migration that fails with an ordinary error rolls back to the savepoint:
// the caller's transaction goes on with its own writes.
TEST(Migrations, AFailureInsideTheCallersTransactionLeavesItAsItWas) {
  TestDb db;
  ASSERT_EQ(exec_script(db, migration_sql(1)).rc, SQLITE_OK);
  db.exec("ALTER TABLE runs ADD COLUMN concurrency_key TEXT");
  const Rows before = dump(db);
  db.exec("BEGIN; CREATE TABLE tool(x)");
  EXPECT_EQ(error_in_transaction(db, SQLITE_ERROR),
            "runs_migrate(): migration 002_one_active_run failed: duplicate column name: "
            "concurrency_key");
  EXPECT_FALSE(sqlite3_get_autocommit(db.get()));
  EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_schema WHERE name = 'tool'"), "1");
  db.exec("ROLLBACK");
  EXPECT_EQ(dump(db), before);
}

// A guard refuses with RAISE(ROLLBACK): SQLite ends the caller's whole
// transaction, and the message says so. Nothing is left of it.
TEST(Migrations, AGuardInsideTheCallersTransactionRollsItBack) {
  TestDb db;
  db.exec("CREATE TABLE runs(id INTEGER PRIMARY KEY, scope TEXT)");
  const Rows before = dump(db);
  db.exec("BEGIN; CREATE TABLE tool(x)");
  EXPECT_EQ(error_in_transaction(db, SQLITE_ERROR),
            "runs_migrate(): migration 001_create_runs failed: table runs exists but has no column "
            "status: add it or rename the table, then migrate again (this rolled back the caller's "
            "transaction)");
  EXPECT_TRUE(sqlite3_get_autocommit(db.get()));
  EXPECT_EQ(dump(db), before);
}

// Where the caller's transaction has read and cannot take the write lock,
// runs_migrate() says why, writes nothing, and leaves the transaction open.
TEST(Migrations, InsideAReadTransactionThatCannotWrite) {
  TempFile file;
  TestDb writer(file.path());
  writer.exec("PRAGMA journal_mode = WAL; CREATE TABLE t(x)");
  TestDb db(file.path());
  // A stale snapshot: another connection wrote after this transaction read.
  db.exec("BEGIN; SELECT count(*) FROM t");
  writer.exec("INSERT INTO t VALUES (1)");
  EXPECT_EQ(error_in_transaction(db, SQLITE_BUSY_SNAPSHOT),
            "runs_migrate(): the database changed since this transaction began reading, so it "
            "cannot write: roll back and retry, or begin the transaction with BEGIN IMMEDIATE");
  EXPECT_FALSE(sqlite3_get_autocommit(db.get()));
  db.exec("ROLLBACK");
  // Another writer holds the lock: a transaction that has read cannot wait.
  db.exec("PRAGMA busy_timeout = 60000; BEGIN; SELECT count(*) FROM t");
  writer.exec("BEGIN IMMEDIATE");
  EXPECT_EQ(error_in_transaction(db, SQLITE_BUSY),
            "runs_migrate(): another connection holds the write lock, and this transaction has "
            "already read, so it cannot wait for it: roll back and retry, or begin the transaction "
            "with BEGIN IMMEDIATE");
  EXPECT_FALSE(sqlite3_get_autocommit(db.get()));
  db.exec("ROLLBACK");
  writer.exec("ROLLBACK");
  EXPECT_EQ(db.value("SELECT count(*) FROM sqlite_schema"), "1");
  // Before its first read, it waits like BEGIN IMMEDIATE (busy_timeout).
  db.exec("PRAGMA busy_timeout = 0; BEGIN");
  writer.exec("BEGIN IMMEDIATE");
  EXPECT_EQ(error_in_transaction(db, SQLITE_BUSY), "runs_migrate(): " + kBusy);
  writer.exec("ROLLBACK");
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  db.exec("COMMIT");
  EXPECT_EQ(count(writer, "runs_schema_migrations"), kLatestSchemaVersion);
}

TEST(Migrations, FileDatabaseSeenByAnotherConnection) {
  TempFile file;
  {
    TestDb db(file.path());
    EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  }
  TestDb again(file.path());
  EXPECT_EQ(again.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(count(again, "runs_schema_migrations"), kLatestSchemaVersion);
  EXPECT_EQ(again.value("SELECT start_run('a')"), "1");
}

// ---- the partial unique index -------------------------------------------

class Index : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion); }
  TestDb db;
};

TEST_F(Index, TheActiveRunQueryUsesIt) {
  EXPECT_EQ(rows(db, "EXPLAIN QUERY PLAN SELECT id FROM runs WHERE concurrency_key = ?1 AND"
                     " status IN ('pending', 'running')")
                .at(0)
                .at(3),
            "SEARCH runs USING INDEX runs_one_active (concurrency_key=?)");
}

// Two layers refuse a second active run: migration 3's BEFORE triggers
// (which fire before any conflict resolution, so OR REPLACE / OR IGNORE
// cannot get around them) and, under them, migration 2's partial unique index.
const std::string kKeyBusy = "runs: this concurrency_key already has an active run: end it first";

TEST_F(Index, ARawInsertOfASecondActiveRunFails) {
  db.exec("INSERT INTO runs (scope, status, created_at) VALUES ('a', 'pending', 'x')");
  const Rows before = dump(db);
  EXPECT_EQ(db.error("INSERT INTO runs (scope, status, created_at) VALUES ('b', 'running', 'x')",
                     SQLITE_CONSTRAINT_TRIGGER),
            kKeyBusy);
  EXPECT_EQ(db.error("INSERT INTO runs (scope, created_at) VALUES ('b', 'x')",  // default pending
                     SQLITE_CONSTRAINT_TRIGGER),
            kKeyBusy);
  EXPECT_EQ(dump(db), before);
  // Finished runs and other keys are not limited.
  db.exec("INSERT INTO runs (scope, status, created_at) VALUES ('c', 'completed', 'x'),"
          " ('d', 'completed', 'x'), ('e', 'failed', 'x'), ('f', 'cancelled', 'x')");
  db.exec("INSERT INTO runs (scope, status, concurrency_key, created_at) VALUES ('g', 'running', 'k', 'x')");
  EXPECT_EQ(count(db, "runs"), "6");
  // start_run() sees raw rows too.
  EXPECT_EQ(db.error("SELECT start_run('h', 'api', 'k')", SQLITE_CONSTRAINT_UNIQUE),
            "start_run(): run 6 is already active for concurrency_key 'k' (scope 'g', status "
            "'running', since x" + kWaitSuffix);
}

TEST_F(Index, WithoutTheInsertTriggerTheIndexStillRefusesASecondActiveRun) {
  db.exec("INSERT INTO runs (scope, status, created_at) VALUES ('a', 'pending', 'x')");
  db.exec("DROP TRIGGER runs_insert_guard");
  const Rows before = dump(db);
  EXPECT_EQ(db.error("INSERT INTO runs (scope, status, created_at) VALUES ('b', 'running', 'x')",
                     SQLITE_CONSTRAINT_UNIQUE),
            "UNIQUE constraint failed: runs.concurrency_key");
  EXPECT_EQ(db.error("INSERT INTO runs (scope, created_at) VALUES ('b', 'x')",  // default pending
                     SQLITE_CONSTRAINT_UNIQUE),
            "UNIQUE constraint failed: runs.concurrency_key");
  EXPECT_EQ(dump(db), before);
}

TEST_F(Index, ARawUpdateMakingASecondRunActiveFails) {
  db.exec("INSERT INTO runs (scope, status, concurrency_key, created_at) VALUES"
          " ('a', 'completed', '', 'x'), ('b', 'running', '', 'x'), ('c', 'pending', 'k', 'x')");
  const Rows before = dump(db);
  // A finished run never becomes active again: the state machine refuses first.
  EXPECT_EQ(db.error("UPDATE runs SET status = 'pending' WHERE id = 1", SQLITE_CONSTRAINT_TRIGGER),
            "runs: illegal status change from completed to pending: a finished run never changes "
            "status");
  EXPECT_EQ(db.error("UPDATE runs SET concurrency_key = '' WHERE id = 3", SQLITE_CONSTRAINT_TRIGGER),
            kKeyBusy);
  EXPECT_EQ(dump(db), before);
  // A run goes from pending to running, never back.
  EXPECT_EQ(db.error("UPDATE runs SET status = 'pending' WHERE id = 2", SQLITE_CONSTRAINT_TRIGGER),
            "runs: illegal status change from running to pending: a run never goes back");
  db.exec("UPDATE runs SET status = 'running' WHERE id = 3");
  EXPECT_EQ(db.value("SELECT active_run('k')"), "3");
  EXPECT_EQ(db.value("SELECT active_run()"), "2");
}

TEST_F(Index, WithoutTheUpdateTriggersTheIndexStillRefusesASecondActiveRun) {
  db.exec("INSERT INTO runs (scope, status, concurrency_key, created_at) VALUES"
          " ('a', 'completed', '', 'x'), ('b', 'running', '', 'x'), ('c', 'pending', 'k', 'x')");
  db.exec("DROP TRIGGER runs_one_active_guard; DROP TRIGGER runs_status_guard");
  const Rows before = dump(db);
  EXPECT_EQ(db.error("UPDATE runs SET status = 'pending' WHERE id = 1", SQLITE_CONSTRAINT_UNIQUE),
            "UNIQUE constraint failed: runs.concurrency_key");
  EXPECT_EQ(db.error("UPDATE runs SET concurrency_key = '' WHERE id = 3", SQLITE_CONSTRAINT_UNIQUE),
            "UNIQUE constraint failed: runs.concurrency_key");
  EXPECT_EQ(dump(db), before);
}

}  // namespace

TEST(Migrations, ATableWhoseIdIsNotTheRowidIsRefused) {
  TestDb db;
  db.exec("CREATE TABLE runs (id TEXT PRIMARY KEY, scope TEXT NOT NULL, status TEXT, "
          "started_at TEXT, finished_at TEXT, triggered_by TEXT, error_message TEXT, "
          "progress_current INTEGER, progress_total INTEGER, current_step TEXT, "
          "created_at TEXT)");
  const Rows before = dump(db);
  EXPECT_EQ(db.error("SELECT runs_migrate()", SQLITE_ERROR),
            "runs_migrate(): migration 001_create_runs failed: table runs exists but its id "
            "column is not INTEGER PRIMARY KEY: run ids must be rowids");
  EXPECT_TRUE(dump(db) == before) << "something was written";
  const ExecResult by_hand = exec_script(db, migration_sql(1));
  EXPECT_EQ(by_hand.message,
            "table runs exists but its id column is not INTEGER PRIMARY KEY: run ids must be "
            "rowids");
  EXPECT_TRUE(dump(db) == before) << "something was written by hand";
}

// ---- runs_check(), and runs_migrate() over a damaged schema --------------

namespace {

std::string ok_report() {
  return std::string("{\"ok\":true,\"schema_version\":") + kLatestSchemaVersion +
         ",\"library_schema_version\":" + kLatestSchemaVersion + ",\"problems\":[]}";
}

TEST(RunsCheck, AFreshSchemaIsOk) {
  TestDb db;
  EXPECT_EQ(db.value("SELECT runs_check()"),
            std::string("{\"ok\":false,\"schema_version\":0,\"library_schema_version\":") +
                kLatestSchemaVersion +
                ",\"problems\":[\"the database has no runs schema: run SELECT runs_migrate()\"]}");
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  EXPECT_EQ(db.value("SELECT runs_check()"), ok_report());
  EXPECT_EQ(schema(db), schema_of_the_files());  // it wrote nothing
}

TEST(RunsCheck, ADroppedGuardIsReportedAndRestoredByRunsMigrate) {
  TestDb db;
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  const Rows schema_before = schema(db);
  EXPECT_EQ(db.value("SELECT start_run('a')"), "1");
  db.exec("DROP TRIGGER runs_insert_guard; DROP TRIGGER runs_delete_guard; DROP INDEX runs_one_active");
  EXPECT_EQ(db.value("SELECT runs_check() -> 'problems'"),
            "[\"index runs_one_active (migration 002) is missing: SELECT runs_migrate() restores it\","
            "\"trigger runs_insert_guard (migration 003) is missing: SELECT runs_migrate() restores it\","
            "\"trigger runs_delete_guard (migration 004) is missing: SELECT runs_migrate() restores it\"]");
  // A TEMP table of that name cannot take the restored guard.
  db.exec("CREATE TEMP TABLE runs(x)");
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  db.exec("DROP TABLE temp.runs");
  EXPECT_EQ(schema(db), schema_before);
  EXPECT_EQ(db.value("SELECT runs_check()"), ok_report());
  EXPECT_EQ(db.error("DELETE FROM runs", SQLITE_CONSTRAINT_TRIGGER),
            "runs: an active run is never deleted: end it first with complete_run(), fail_run() or "
            "cancel_run(); finished runs may be deleted");
}

TEST(RunsCheck, WhatCannotBeRestoredIsNamedAndNothingChanges) {
  TestDb db;
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  db.exec("DROP TRIGGER runs_id_guard; ALTER TABLE runs DROP COLUMN owner_time_ns;"
          " DROP TRIGGER runs_status_guard;"
          " CREATE TRIGGER runs_status_guard BEFORE UPDATE OF status ON runs BEGIN SELECT 1; END");
  const Rows before = dump(db);
  EXPECT_EQ(db.value("SELECT runs_check() -> 'problems'"),
            "[\"trigger runs_status_guard (migration 003) differs from the one the migration creates: "
            "drop it, and SELECT runs_migrate() restores it\","
            "\"trigger runs_id_guard (migration 004) is missing: SELECT runs_migrate() restores it\","
            "\"column runs.owner_time_ns (migration 004) is missing\"]");
  EXPECT_EQ(db.error("SELECT runs_migrate()", SQLITE_ERROR),
            std::string("runs_migrate(): the runs schema records version ") + kLatestSchemaVersion +
                ", but runs_migrate() cannot restore what is wrong with it: trigger runs_status_guard "
                "(migration 003) differs from the one the migration creates: drop it, and SELECT "
                "runs_migrate() restores it; column runs.owner_time_ns (migration 004) is missing; "
                "repair it by hand (SELECT runs_check() lists every problem)");
  EXPECT_EQ(dump(db), before);
  EXPECT_TRUE(sqlite3_get_autocommit(db.get()));
}

TEST(RunsCheck, DataProblems) {
  TestDb db;
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  db.exec("DROP TRIGGER runs_insert_guard; DROP INDEX runs_one_active;"
          " INSERT INTO runs (scope, status, concurrency_key, created_at) VALUES"
          " ('a', 'running', 'k', 'x'), ('b', 'pending', 'k', 'x'), ('c', 'done', '', 'x'),"
          " ('d', 'done', '', 'x')");
  EXPECT_EQ(db.value("SELECT json_extract(runs_check(), '$.problems[2]', '$.problems[3]')"),
            "[\"2 run(s) have the unknown status 'done': a run is pending, running, completed, failed "
            "or cancelled\",\"concurrency_key 'k' has 2 active runs (1, 2): at most one may be active; "
            "end all but one with fail_run()\"]");
  // The unique index cannot be restored over them: refused, nothing changed.
  EXPECT_EQ(db.error("SELECT runs_migrate()", SQLITE_ERROR).substr(0, 70),
            "runs_migrate(): restoring index runs_one_active failed: UNIQUE constra");
}

TEST(RunsCheck, VersionsTheLibraryDoesNotKnow) {
  TestDb db;
  EXPECT_EQ(db.value("SELECT runs_migrate()"), kLatestSchemaVersion);
  db.exec("INSERT INTO runs_schema_migrations VALUES (99, '099_future', 'x')");
  EXPECT_EQ(db.value("SELECT runs_check() -> 'problems'"),
            std::string("[\"the runs schema is at version 99, newer than this library knows (") +
                kLatestSchemaVersion + "): load a newer sqlite-runs\"]");
  TestDb old;
  ASSERT_EQ(exec_script(old, migration_sql(1)).rc, SQLITE_OK);
  EXPECT_EQ(old.value("SELECT runs_check() -> 'problems'"),
            std::string("[\"the runs schema is at version 1 and this library's latest is ") +
                kLatestSchemaVersion + ": run SELECT runs_migrate()\"]");
}

}  // namespace
