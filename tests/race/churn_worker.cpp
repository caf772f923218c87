// churn_worker: one worker of the kill race (race_test.cpp, Race.Killed*).
//
// Started fresh with posix_spawn, it opens its own connection to the shared
// database (WAL, busy_timeout 5000) and runs ITERATIONS attempts to start
// and finish a run on the default key, as fast as it can. It reports on
// stdout, one line per event, each written with one write(2) so that a
// SIGKILL never leaves half a line:
//
//   S <id>   it was told that it started run <id>; it then waits for one
//            byte on stdin before it goes on (EOF: it exits), so that the
//            parent can kill it while the run is surely active
//   C <id>   it completed run <id>
//   D        it made every attempt (the last line; exit 0)
//   E <msg>  something unexpected happened (exit 1)
//
// The test kills workers with SIGKILL at random moments: right after an S
// line (the run is active and its owner dies), or anywhere else.
//
//   churn_worker --db PATH --mode functions|hand --iterations N [--extension PATH]
//
// Modes:
//   functions  start_run('churn', 'churn_worker'), mark_run_running(),
//              update_run_progress(), complete_run(): the extension, which
//              reclaims a run whose owner died.
//   hand       the same lifecycle written by hand, correct while nobody dies:
//              BEGIN IMMEDIATE, look up the active run, INSERT, COMMIT, then
//              two guarded UPDATEs. Without owners, a run whose process died
//              stays active, and every later start is refused.
#include <sqlite3.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace {

void say(const std::string& line) {
  const std::string text = line + "\n";
  if (write(STDOUT_FILENO, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    std::exit(2);
  }
}

// "S id", then wait for the parent's byte.
void started(const std::string& id) {
  say("S " + id);
  char go = 0;
  if (read(STDIN_FILENO, &go, 1) != 1) std::exit(2);
}

[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  say("E " + what + ": " + (db != nullptr ? sqlite3_errmsg(db) : "?"));
  std::exit(1);
}

// The single value of `sql`; nothing when it failed with SQLITE_CONSTRAINT
// (a refused start) or SQLITE_BUSY. Any other failure ends the worker.
bool value(sqlite3* db, const std::string& sql, std::string& out) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) fail(db, sql);
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    out = text != nullptr ? text : "NULL";
    rc = sqlite3_step(stmt);
  } else {
    out.clear();
  }
  const int primary = sqlite3_finalize(stmt) & 0xff;
  if (rc == SQLITE_DONE) return true;
  if (primary == SQLITE_CONSTRAINT || primary == SQLITE_BUSY) return false;
  fail(db, sql);
}

// One attempt through the extension.
void attempt_functions(sqlite3* db) {
  std::string id;
  if (!value(db, "SELECT start_run('churn', 'churn_worker')", id)) return;
  started(id);
  std::string result;
  if (!value(db, "SELECT mark_run_running(" + id + ")", result) || result != "updated") {
    fail(db, "mark_run_running(" + id + ") gave " + result);
  }
  if (!value(db, "SELECT update_run_progress(" + id + ", 1, 2, 'half')", result) ||
      result != "updated") {
    fail(db, "update_run_progress(" + id + ") gave " + result);
  }
  if (!value(db, "SELECT complete_run(" + id + ")", result) || result != "updated") {
    fail(db, "complete_run(" + id + ") gave " + result);
  }
  say("C " + id);
}

// One attempt written by hand.
void attempt_hand(sqlite3* db) {
  std::string ignored;
  if (!value(db, "BEGIN IMMEDIATE", ignored)) return;  // busy
  std::string active;
  value(db, "SELECT id FROM runs WHERE concurrency_key = '' AND status IN ('pending', 'running')",
        active);
  if (!active.empty()) {
    value(db, "ROLLBACK", ignored);
    return;
  }
  if (!value(db, "INSERT INTO runs (scope, triggered_by, created_at) VALUES ('churn',"
                 " 'churn_worker', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))", ignored) ||
      !value(db, "SELECT last_insert_rowid()", active) || !value(db, "COMMIT", ignored)) {
    fail(db, "insert");
  }
  started(active);
  if (!value(db, "UPDATE runs SET status = 'running' WHERE id = " + active + " AND status = 'pending'",
             ignored) ||
      !value(db, "UPDATE runs SET status = 'completed' WHERE id = " + active +
                     " AND status = 'running'",
             ignored)) {
    fail(db, "finish " + active);
  }
  say("C " + active);
}

}  // namespace

int main(int argc, char** argv) {
  std::string path, mode, extension;
  long iterations = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--db") path = argv[i + 1];
    else if (flag == "--mode") mode = argv[i + 1];
    else if (flag == "--extension") extension = argv[i + 1];
    else if (flag == "--iterations") iterations = std::strtol(argv[i + 1], nullptr, 10);
  }
  if (path.empty() || (mode != "functions" && mode != "hand") || iterations < 0 ||
      (mode == "functions" && extension.empty())) {
    say("E usage: churn_worker --db PATH --mode functions|hand --iterations N [--extension PATH]");
    return 2;
  }
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) fail(db, "open " + path);
  sqlite3_busy_timeout(db, 5000);
  if (mode == "functions") {
    sqlite3_enable_load_extension(db, 1);
    char* error = nullptr;
    if (sqlite3_load_extension(db, extension.c_str(), nullptr, &error) != SQLITE_OK) {
      say(std::string("E cannot load ") + extension + ": " + (error != nullptr ? error : "?"));
      return 2;
    }
  }
  for (long i = 0; i < iterations; ++i) {
    if (mode == "functions") {
      attempt_functions(db);
    } else {
      attempt_hand(db);
    }
  }
  sqlite3_close(db);
  say("D");
  return 0;
}
