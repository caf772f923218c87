// Power loss: a power cut at every fsync of start_run(), the transitions and
// runs_migrate() (from every schema version in sql/), and of a run's whole
// lifecycle on one connection, in WAL and rollback-journal (DELETE, TRUNCATE,
// PERSIST) modes, at synchronous NORMAL and FULL, and EXTRA in DELETE mode.
//
// How: the call runs on a connection through PowerLossVfs
// (tests/support/power_loss_vfs.h; its header states the model), which
// records every write, truncate, fsync, creation and unlink of the
// database's files, the directory fsyncs of the unix VFS included, until the
// connection is closed. At every cut point (before each fsync, and at the
// end) each outcome DiskModel::survivors() lists (none of the unsynced
// writes, as the brief asks; and all of them, per file, in order up to k, all
// but one, only one, random subsets; with the unsynced creations and unlinks
// from none to all) is written to a fresh directory and opened by a plain connection,
// which must find:
//   * PRAGMA integrity_check ok;
//   * the database exactly as it was before some call, or after the last
//     (schema, every table's rows, the run history): never a half-applied
//     call or migration, never a later call kept without an earlier one;
//   * at most one active run per key, now and over the history that triggers
//     record inside the transactions (tests/support/history*.h);
//   * a database that works: runs_migrate() completes it, start_run() starts;
//   * a call that returned is lost only where SQLite's documentation says it
//     may be (documented_loss() below), and then for the documented reason;
//     where it says so, some cut does lose it (shown, not assumed). The same
//     for damage (documented_damage(): a rollback journal at NORMAL).
// The naive ways fail the same check where ours holds: synchronous=OFF, and
// the migration files applied one by one. PowerLossShown.* spell out the
// two losses users meet: WAL at NORMAL, DELETE at FULL.
//
// RUNS_POWER_DIR=<dir> chooses where the databases live (default /dev/shm,
// else $TMPDIR): the model, not the disk, decides what survives, so tmpfs
// tests the same as a disk, without the cost of fsync. RUNS_POWER_SUBSETS=<n>
// (default 8) random subsets of the unsynced writes are tried at each cut
// point besides the structured outcomes, drawn from RUNS_POWER_SEED=<n>
// (default 1) and the scenario's name.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "history.h"
#include "power_loss_vfs.h"
#include "system.h"
#include "temp_dir.h"
#include "test_db.h"

namespace {

using runs_test::DiskModel;
using runs_test::PowerLossVfs;
using runs_test::TempDir;
using runs_test::TestDb;

constexpr const char* kHistory = "power_history";
constexpr const char* kDbName = "runs.db";
constexpr const char* kJournalMagic = "\xd9\xd5\x05\xf9\x20\xa1\x63\xd7";

std::string database_dir() { return runs_test::fast_database_dir("RUNS_POWER_DIR"); }

unsigned long long env_number(const char* name, unsigned long long otherwise) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::strtoull(value, nullptr, 10) : otherwise;
}

// Random subsets of the unsynced writes per cut point, besides the
// structured ones (RUNS_POWER_SUBSETS, default 8), and the seed they are
// drawn from (RUNS_POWER_SEED, default 1): the same seed, the same subsets.
const int kRandomSubsets = static_cast<int>(env_number("RUNS_POWER_SUBSETS", 8));
const unsigned long long kSeed = env_number("RUNS_POWER_SEED", 1);

using runs_test::read_text;

// Every migration file in sql/, in order: whatever migrations exist.
std::vector<std::string> migration_files() {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(RUNS_SOURCE_DIR "/sql")) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 4 && std::isdigit(static_cast<unsigned char>(name[0])) && name.ends_with(".sql")) {
      files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

struct Setting {
  std::string journal_mode;  // wal, delete, truncate, persist
  std::string synchronous;   // off, normal, full, extra
};

std::string name_of(const Setting& s) { return s.journal_mode + "_" + s.synchronous; }
void PrintTo(const Setting& s, std::ostream* out) { *out << name_of(s); }

// What SQLite documents that a power cut may do at each setting
// (https://www.sqlite.org/pragma.html#pragma_synchronous,
// https://www.sqlite.org/wal.html), and the reason the model must then show.
// The one place this rule is written down for the tests.
enum class Loss {       // of a transaction that committed, once the call returned
  kNothing,             // durable
  kUnsyncedWal,         // WAL at NORMAL: a commit is not fsynced; until the next
                        // checkpoint fsyncs the WAL, a cut may take it back
  kResurrectedJournal,  // the journal's unlink (DELETE below EXTRA) or truncation
                        // (TRUNCATE below FULL) was not made durable: it comes
                        // back hot after the cut and rolls the commit back
  kAnything,            // synchronous=OFF: no fsync at all, nothing is promised
};
enum class Damage {     // to the database: corrupt, or half of a transaction
  kNever,
  kReorderedJournal,    // a rollback journal at NORMAL: its records and the
                        // header that counts them share one fsync, so a cut
                        // during it may keep the count without a record; the
                        // next opener rolls that record's stale bytes into the
                        // database. FULL fsyncs the records before the count.
  kAnything,            // synchronous=OFF
};

Loss documented_loss(const Setting& s) {
  if (s.synchronous == "off") return Loss::kAnything;
  if (s.journal_mode == "wal") return s.synchronous == "normal" ? Loss::kUnsyncedWal : Loss::kNothing;
  if (s.journal_mode == "delete" && s.synchronous != "extra") return Loss::kResurrectedJournal;
  if (s.journal_mode == "truncate" && s.synchronous == "normal") return Loss::kResurrectedJournal;
  return Loss::kNothing;
}

Damage documented_damage(const Setting& s) {
  if (s.synchronous == "off") return Damage::kAnything;
  if (s.journal_mode != "wal" && s.synchronous == "normal") return Damage::kReorderedJournal;
  return Damage::kNever;
}

// Everything in the database, as text: the schema and every table's rows
// (the runs, the migrations, the history, sqlite_sequence, the app's own).
std::string state_of(const TestDb& db) {
  std::string out;
  const auto tables = db.run("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema ORDER BY name");
  if (tables.code != SQLITE_OK) return "<unreadable schema: " + tables.message + ">";
  for (const auto& row : tables.rows) {
    out += *row[0] + " " + *row[1] + " " + *row[2] + " " + *row[3] + "\n";
  }
  for (const auto& row : tables.rows) {
    if (*row[0] != "table") continue;
    const auto content = db.run("SELECT * FROM \"" + *row[1] + "\" ORDER BY 1");
    if (content.code != SQLITE_OK) return out + "<unreadable " + *row[1] + ": " + content.message + ">";
    out += "-- " + *row[1] + "\n";
    for (const auto& values : content.rows) {
      for (const auto& value : values) out += (value ? "'" + *value + "'" : std::string("NULL")) + "|";
      out += "\n";
    }
  }
  return out;
}

bool has_table(const TestDb& db, const std::string& name) {
  return db.value("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '" + name + "'") == "1";
}

// A database for a scenario: journal mode set, then `setup` run.
void create(const std::string& path, const std::string& journal_mode, const std::string& setup) {
  for (const char* suffix : {"", "-journal", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  const TestDb db(path);
  EXPECT_EQ(db.value("PRAGMA journal_mode = " + journal_mode), journal_mode);
  if (!setup.empty()) db.exec(setup);
}

// One call: SQL whose last statement's single value is `result` (empty: any
// value; several statements: the naive migration).
struct Step {
  std::string sql;
  std::string result;
};

// What runs on one connection, step after step, after `setup`.
struct Call {
  std::string name;
  std::string setup;
  std::vector<Step> steps;
  bool atomic = true;  // false: the naive migration, file by file, may be left half-done
};

// What the cuts of one call left, over every survivor.
struct Tally {
  long cuts = 0, survivors = 0;
  long as_before = 0, as_after = 0;  // before the first step, after the last
  long lost = 0;     // without a step that had returned before the cut
  long most_lost = 0;  // the most steps one survivor lost
  long torn = 0;     // neither before nor after a step (OFF, or the naive migration)
  long corrupt = 0;  // integrity_check not ok, or the database unreadable
  long overlaps = 0; // two active runs of a key, now or in the history
  std::string first_lost, first_torn, first_corrupt;
};

std::string tally_text(const Tally& t) {
  return std::to_string(t.cuts) + " cut points, " + std::to_string(t.survivors) + " survivors: " +
         std::to_string(t.as_before) + " as before, " + std::to_string(t.as_after) + " as after, " +
         std::to_string(t.lost) + " lost a call that had returned (at most " + std::to_string(t.most_lost) +
         "), " + std::to_string(t.torn) + " torn, " +
         std::to_string(t.corrupt) + " corrupt, " + std::to_string(t.overlaps) + " with two active runs";
}

void write_files(const std::string& dir, const std::map<std::string, std::string>& files) {
  for (const char* suffix : {"", "-journal", "-wal", "-shm"}) {
    std::remove((dir + "/" + kDbName + suffix).c_str());
  }
  for (const auto& [name, content] : files) {
    std::ofstream out(dir + "/" + name, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    EXPECT_TRUE(out.good()) << "cannot write " << dir << "/" << name;
  }
}

// Runs `call` at `setting` through PowerLossVfs, then checks every survivor
// of every cut point against the documented rules: the database must be as
// it was before some step, or after the last (a prefix of the steps: never a
// later step without an earlier one). Returns the counts (the naive ways are
// checked by their tests from them).
Tally power_cuts(const Setting& setting, const Call& call) {
  PowerLossVfs& vfs = PowerLossVfs::instance();
  EXPECT_TRUE(vfs.sees_directory_syncs()) << "the default VFS is not unix, or its openDirectory cannot be replaced";
  const std::string where = name_of(setting) + ", " + call.name;
  TempDir work(database_dir());
  TempDir scratch(database_dir());
  const std::string path = work.db();
  const std::string dir = path.substr(0, path.rfind('/'));
  const std::string scratch_dir = scratch.db().substr(0, scratch.db().rfind('/'));
  create(path, setting.journal_mode, call.setup);
  std::vector<std::string> states;  // before the first step, after each
  {
    const TestDb db(path);
    states.push_back(state_of(db));
  }
  vfs.begin(dir);
  {
    const TestDb db("file:" + path + "?vfs=" + PowerLossVfs::kName, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI);
    EXPECT_EQ(db.value("PRAGMA journal_mode = " + setting.journal_mode), setting.journal_mode);
    db.exec("PRAGMA synchronous = " + setting.synchronous);
    for (const Step& step : call.steps) {
      const runs_test::Outcome out = db.run(step.sql);
      EXPECT_EQ(out.code, SQLITE_OK) << where << ": " << out.message;
      if (!step.result.empty()) {
        EXPECT_EQ(out.rows.size() == 1 ? out.rows[0][0] : std::nullopt, step.result) << where << ": " << step.sql;
      }
      vfs.returned();
      states.push_back(state_of(db));  // read through the same connection: no write
      EXPECT_NE(states.back(), states[states.size() - 2]) << where << ": " << step.sql << " changed nothing";
    }
  }
  vfs.end();
  EXPECT_EQ(vfs.disagreement(), "") << where << ": the model lost track of the files";
  {
    const TestDb db(path);
    EXPECT_EQ(state_of(db), states.back()) << where << ": the database after closing";
  }

  const Loss loss = documented_loss(setting);
  const Damage damage = documented_damage(setting);
  const std::string journal = std::string(kDbName) + "-journal";
  // The cut points before which the WAL was fsynced (a cut is taken before
  // its fsync, so the fsync at cut j is done for the cuts after j).
  std::vector<std::size_t> wal_fsyncs;
  for (std::size_t j = 0; j < vfs.cuts().size(); ++j) {
    if (vfs.cuts()[j].where == std::string("before the fsync of ") + kDbName + "-wal") wal_fsyncs.push_back(j);
  }
  Tally tally;
  std::set<std::string> usable;  // states found to work
  // Drawn from the seed and the scenario's name: a scenario gets the same
  // subsets whatever runs before it.
  std::vector<unsigned> seed_words(where.begin(), where.end());
  seed_words.push_back(static_cast<unsigned>(kSeed));
  seed_words.push_back(static_cast<unsigned>(kSeed >> 32));
  std::seed_seq seeds(seed_words.begin(), seed_words.end());
  std::mt19937_64 random(seeds);
  for (std::size_t i = 0; i < vfs.cuts().size(); ++i) {
    const PowerLossVfs::Cut& cut = vfs.cuts()[i];
    ++tally.cuts;
    for (const DiskModel::Survivor& survivor : cut.disk.survivors(&random, kRandomSubsets)) {
      ++tally.survivors;
      const std::string at = where + ": cut " + std::to_string(i) + " (" + cut.where + "), " + survivor.how;
      write_files(scratch_dir, survivor.files);
      const TestDb db(scratch.db());
      const auto integrity = db.run("PRAGMA integrity_check");
      const bool intact = integrity.code == SQLITE_OK && integrity.rows.size() == 1 && integrity.rows[0][0] == "ok";
      const std::string state = intact ? state_of(db) : "";
      // How many steps the survivor holds: the database is as after that many.
      const auto found = std::find(states.begin(), states.end(), state);
      const long held = intact && found != states.end() ? static_cast<long>(found - states.begin()) : -1;
      const bool is_before = held == 0, is_after = held == static_cast<long>(call.steps.size());
      tally.as_before += is_before;
      tally.as_after += is_after;
      if (held < 0) {
        const std::string what = !intact ? "corrupt: " + (integrity.code == SQLITE_OK && !integrity.rows.empty()
                                                               ? integrity.rows[0][0].value_or("NULL")
                                                               : integrity.message)
                                         : "neither before nor after the call";
        (intact ? tally.torn : tally.corrupt) += 1;
        std::string& first = intact ? tally.first_torn : tally.first_corrupt;
        if (first.empty()) first = at + ": " + what;
        switch (damage) {
          case Damage::kNever:
            EXPECT_TRUE(intact && !call.atomic) << at << ": " << what << "\n" << state;
            break;
          case Damage::kReorderedJournal:
            EXPECT_EQ(cut.where, "before the fsync of " + journal) << at << ": " << what;
            EXPECT_TRUE(survivor.files.count(journal) == 1) << at << ": " << what;
            break;
          case Damage::kAnything:
            break;
        }
        if (!intact) continue;
      }
      if (setting.journal_mode == "wal") {
        EXPECT_EQ(db.value("PRAGMA journal_mode"), "wal") << at;
      }
      if (has_table(db, "runs") &&
          db.value("SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'concurrency_key'") == "1") {
        const auto doubled = db.run(
            "SELECT concurrency_key FROM runs WHERE status IN ('pending', 'running')"
            " GROUP BY concurrency_key HAVING count(*) > 1");
        bool overlap = doubled.code != SQLITE_OK || !doubled.rows.empty();
        if (has_table(db, kHistory)) {
          const runs_test::Replay history = runs_test::replay(db, kHistory);
          for (const auto& [key, most] : history.max_active) overlap = overlap || most > 1;
          overlap = overlap || !history.anomalies.empty();
        }
        tally.overlaps += overlap;
        EXPECT_TRUE(!overlap || damage == Damage::kAnything) << at << ": two active runs for a key";
      }
      // The steps that had returned before this cut point.
      const long returned = static_cast<long>(std::count_if(vfs.returned_at().begin(), vfs.returned_at().end(),
                                                            [&](std::size_t r) { return r <= i; }));
      if (held >= 0 && held < returned) {
        ++tally.lost;
        tally.most_lost = std::max(tally.most_lost, returned - held);
        if (tally.first_lost.empty()) tally.first_lost = at;
        const auto kept = survivor.files.find(journal);
        const bool hot_journal = kept != survivor.files.end() && kept->second.size() >= 28 &&
                                 kept->second.compare(0, 8, kJournalMagic) == 0;
        switch (loss) {
          case Loss::kNothing:
            ADD_FAILURE() << at << ": a call that returned was lost at synchronous=" << setting.synchronous;
            break;
          case Loss::kUnsyncedWal: {
            // No fsync of the WAL between the first lost step's return and the cut.
            const std::size_t lost_returned = vfs.returned_at()[static_cast<std::size_t>(held)];
            EXPECT_TRUE(std::none_of(wal_fsyncs.begin(), wal_fsyncs.end(),
                                     [&](std::size_t j) { return j >= lost_returned && j < i; }))
                << at << ": lost after the WAL was fsynced";
            break;
          }
          case Loss::kResurrectedJournal:
            EXPECT_TRUE(hot_journal) << at << ": lost without a journal coming back";
            break;
          case Loss::kAnything:
            break;
        }
      }
      // It works: the migration completes, a run starts (once per state:
      // the same database works the same).
      if ((held >= 0 || !call.atomic) && usable.insert(state).second) {
        const auto migrated = db.run("SELECT runs_migrate()");
        EXPECT_EQ(migrated.code, SQLITE_OK) << at << ": " << migrated.message;
        const auto started = db.run("SELECT start_run('after the cut', 'power', 'fresh')");
        EXPECT_EQ(started.code, SQLITE_OK) << at << ": " << started.message;
      }
      if (::testing::Test::HasFailure()) return tally;
    }
  }
  std::printf("[ power    ] %s: %s\n", where.c_str(), tally_text(tally).c_str());
  for (const std::string* first : {&tally.first_lost, &tally.first_torn, &tally.first_corrupt}) {
    if (!first->empty()) std::printf("[ power    ]   first: %s\n", first->c_str());
  }
  EXPECT_GT(tally.as_before, 0) << where << ": no cut left the database as it was";
  EXPECT_GT(tally.as_after, 0) << where << ": no cut kept the call";
  if (damage != Damage::kAnything) {
    EXPECT_EQ(tally.overlaps, 0) << where;
  }
  if (damage == Damage::kNever && call.atomic) {
    EXPECT_EQ(tally.corrupt + tally.torn, 0) << where;
  }
  // Where SQLite says a returned call may be lost, some cut loses it.
  if (loss == Loss::kNothing) {
    EXPECT_EQ(tally.lost, 0) << where;
  } else if (loss != Loss::kAnything) {
    EXPECT_GT(tally.lost, 0) << where << ": documented as lost by some cut, and none lost it";
  }
  return tally;
}

// ---- the settings --------------------------------------------------------

// NORMAL and FULL in each journal mode; EXTRA where it differs from FULL: it
// fsyncs the directory after the journal's unlink, which only DELETE makes.
std::vector<Setting> durable_settings() {
  std::vector<Setting> out;
  for (const char* mode : {"wal", "delete", "truncate", "persist"}) {
    for (const char* synchronous : {"normal", "full"}) out.push_back({mode, synchronous});
  }
  out.push_back({"delete", "extra"});
  return out;
}

class PowerLoss : public ::testing::TestWithParam<Setting> {};

// A migrated database with the run history, and runs in every state: run 1
// pending (key 'p'), run 2 running (key 'r', owned by this process), run 3
// pending with an expired lease (key 'stale'), run 4 completed (key 'done').
std::string runs_setup() {
  return "SELECT runs_migrate();" + runs_test::history_sql(kHistory, "new.concurrency_key") +
         "SELECT start_run('a', 'setup', 'p');"
         "SELECT start_run('b', 'setup', 'r'); SELECT mark_run_running(2);"
         "SELECT start_run('c', 'setup', 'stale', 60);"
         "UPDATE runs SET lease_expires_at = '2000-01-01T00:00:00.000Z' WHERE id = 3;"
         "SELECT start_run('d', 'setup', 'done'); SELECT mark_run_running(4); SELECT complete_run(4);";
}

TEST_P(PowerLoss, StartRun) {
  power_cuts(GetParam(), {"start_run() of a new key", runs_setup(), {{"SELECT start_run('x', 'api', 'new')", "5"}}});
  power_cuts(GetParam(), {"start_run() on an empty database", "SELECT runs_migrate()", {{"SELECT start_run('x')", "1"}}});
  power_cuts(GetParam(), {"start_run() in the caller's transaction", runs_setup(),
                          {{"BEGIN IMMEDIATE; SELECT start_run('x', 'api', 'new'); COMMIT", ""}}});
  power_cuts(GetParam(), {"try_start_run() of a new key", runs_setup(),
                          {{"SELECT json_extract(try_start_run('x', 'api', 'new'), '$.id')", "5"}}});
}

TEST_P(PowerLoss, StartRunReclaiming) {
  power_cuts(GetParam(),
             {"start_run() reclaiming an expired run", runs_setup(), {{"SELECT start_run('x', 'api', 'stale')", "5"}}});
}

TEST_P(PowerLoss, Transitions) {
  const std::vector<std::pair<std::string, std::string>> calls = {
      {"mark_run_running(1)", "updated"},
      {"complete_run(2)", "updated"},
      {"fail_run(1, 'boom')", "updated"},
      {"cancel_run(2)", "updated"},
      {"update_run_progress(2, 1, 2, 'extract')", "updated"},
      {"heartbeat_run(2)", "ok"},
      {"reap_stale_runs()", "1"},
  };
  for (const auto& [call, result] : calls) {
    power_cuts(GetParam(), {call, runs_setup(), {{"SELECT " + call, result}}});
    if (::testing::Test::HasFailure()) return;
  }
}

// Several calls on one connection, as an application makes them: a cut
// keeps a prefix of them, never a later call without an earlier one.
TEST_P(PowerLoss, ALifecycleOnOneConnection) {
  power_cuts(GetParam(), {"a run's lifecycle and the next start", runs_setup(),
                          {{"SELECT start_run('x', 'api', 'new')", "5"},
                           {"SELECT mark_run_running(5)", "updated"},
                           {"SELECT update_run_progress(5, 1, 2, 'extract')", "updated"},
                           {"SELECT complete_run(5)", "updated"},
                           {"SELECT start_run('y', 'api', 'new')", "6"}}});
}

// A database at migration `version` (0: an application's database that
// never had the runs schema), the files applied by hand; with two finished
// runs from version 1 on.
std::string database_at(std::size_t version) {
  const std::vector<std::string> files = migration_files();
  std::string setup = "CREATE TABLE app(x); INSERT INTO app VALUES (1);";
  for (std::size_t v = 0; v < version; ++v) setup += read_text(files[v]);
  if (version >= 1) {
    for (int run = 0; run < 2; ++run) {
      setup +=
          "INSERT INTO runs (scope, status, triggered_by, created_at, started_at, finished_at)"
          " VALUES ('before', 'completed', 'setup', '2026-01-01T00:00:00.000Z',"
          " '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z');";
    }
  }
  return setup;
}

TEST_P(PowerLoss, RunsMigrateFromEveryVersion) {
  const std::vector<std::string> files = migration_files();
  ASSERT_GE(files.size(), 1u);
  {
    const TestDb reference;
    EXPECT_EQ(reference.value("SELECT runs_migrate()"), std::to_string(files.size()))
        << "the migrations built into the extension are not the files of sql/";
  }
  for (std::size_t version = 0; version < files.size(); ++version) {
    power_cuts(GetParam(), {"runs_migrate() from version " + std::to_string(version), database_at(version),
                            {{"SELECT runs_migrate()", std::to_string(files.size())}}});
    if (::testing::Test::HasFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Settings, PowerLoss, ::testing::ValuesIn(durable_settings()),
                         [](const auto& info) { return name_of(info.param); });

// ---- shown: what a cut takes back where SQLite says it may -----------------

// The survivor of cut point `cut` that survivors() describes as `how`.
std::optional<DiskModel::Survivor> find_survivor(std::size_t cut, const std::string& how) {
  const auto& cuts = PowerLossVfs::instance().cuts();
  if (cut >= cuts.size()) return std::nullopt;
  for (DiskModel::Survivor& survivor : cuts[cut].disk.survivors()) {
    if (survivor.how == how) return std::move(survivor);
  }
  return std::nullopt;
}

// The first cut point after the last call returned whose description is `where`.
std::size_t cut_after_return(const std::string& where) {
  const PowerLossVfs& vfs = PowerLossVfs::instance();
  for (std::size_t i = vfs.returned_at().empty() ? 0 : vfs.returned_at().back(); i < vfs.cuts().size(); ++i) {
    if (vfs.cuts()[i].where == where) return i;
  }
  ADD_FAILURE() << "no cut point '" << where << "' after the call returned";
  return vfs.cuts().size();
}

// After the cut, run 5 that start_run() returned is gone, the invariant
// holds, and the next start_run() hands out id 5 again, to another run.
void run_5_is_gone(const std::optional<DiskModel::Survivor>& survivor) {
  ASSERT_TRUE(survivor.has_value());
  TempDir scratch(database_dir());
  write_files(scratch.db().substr(0, scratch.db().rfind('/')), survivor->files);
  const TestDb db(scratch.db());
  EXPECT_EQ(db.value("PRAGMA integrity_check"), "ok");
  EXPECT_EQ(db.value("SELECT count(*) FROM runs WHERE id = 5"), "0");
  EXPECT_EQ(db.value("SELECT active_run('new')"), std::nullopt);
  EXPECT_EQ(db.value("SELECT group_concat(id || ' ' || status, ', ') FROM runs WHERE status IN ('pending', 'running')"),
            "1 pending, 2 running, 3 pending");
  EXPECT_EQ(db.value("SELECT start_run('y', 'after the cut', 'new')"), "5");
  EXPECT_EQ(db.value("SELECT scope || ' ' || triggered_by FROM runs WHERE id = 5"), "y after the cut");
}

const Call kStartRun{"start_run() of a new key", runs_setup(), {{"SELECT start_run('x', 'api', 'new')", "5"}}};

// WAL at NORMAL: start_run() returned 5, and a cut before the next
// checkpoint fsyncs the WAL (here the one at close) takes the run back.
TEST(PowerLossShown, WalAtNormalLosesACommittedStartRunUntilTheCheckpoint) {
  power_cuts({"wal", "normal"}, kStartRun);
  run_5_is_gone(find_survivor(cut_after_return("before the fsync of runs.db-wal"), "no unsynced write"));
}

// DELETE at FULL: start_run() returned 5 after the journal's unlink, which
// no directory fsync made durable; the journal comes back hot and rolls the
// commit back. At EXTRA the unlink is fsynced and no cut loses the run.
TEST(PowerLossShown, DeleteAtFullLosesTheLastCommitWhenTheJournalComesBack) {
  power_cuts({"delete", "full"}, kStartRun);
  const std::size_t end = PowerLossVfs::instance().cuts().size() - 1;
  run_5_is_gone(find_survivor(end, "no unsynced write; 0 of 1 unsynced creations/unlinks"));
  const Tally extra = power_cuts({"delete", "extra"}, kStartRun);
  EXPECT_EQ(extra.lost, 0);
}

// ---- the naive ways, where ours holds ------------------------------------

// synchronous=OFF: nothing is fsynced, so a cut may keep any of the writes:
// the database is left corrupt or half-written, in WAL and rollback modes.
TEST(PowerLossNaive, SynchronousOffCorruptsOrTearsTheDatabase) {
  for (const char* mode : {"wal", "delete"}) {
    const Tally off = power_cuts({mode, "off"}, kStartRun);
    EXPECT_GT(off.corrupt + off.torn, 0) << mode;
    const Tally migrate = power_cuts({mode, "off"}, {"runs_migrate() from version 0", database_at(0),
                                                      {{"SELECT runs_migrate()", ""}}});
    EXPECT_GT(migrate.corrupt + migrate.torn, 0) << mode;
  }
}

// The migration files applied one by one (each its own transaction, as a
// migration tool does): a cut between two leaves the schema half-migrated,
// at settings where runs_migrate() is all or nothing.
TEST(PowerLossNaive, MigrationFilesAppliedOneByOneAreLeftHalfDone) {
  std::string all_files;
  for (const std::string& file : migration_files()) all_files += read_text(file);
  for (const Setting& setting : {Setting{"wal", "full"}, Setting{"delete", "extra"}}) {
    Call by_file{"the migration files one by one from version 0", database_at(0), {{all_files, ""}}};
    by_file.atomic = false;
    const Tally tally = power_cuts(setting, by_file);
    EXPECT_EQ(tally.corrupt, 0) << name_of(setting);
    if (migration_files().size() > 1) {
      EXPECT_GT(tally.torn, 0) << name_of(setting) << ": never half-migrated";
    }
  }
}

}  // namespace
