// torture_worker: one worker of the kill -9 torture test (torture_test.cpp).
//
// Started fresh with posix_spawn (no SQLite state inherited), it opens its own
// connection to the shared database, calls runs_migrate(), makes sure the run
// history (tests/support/history_sql.h) exists, then makes OPS random calls:
// it starts runs on a few keys, marks them running, reports progress,
// heartbeats, completes, fails and cancels them, cancels other workers' runs,
// reaps stale runs and migrates again. It holds at most one run at a time and
// ends it before it exits. The parent kills it with SIGKILL somewhere along
// the way. Any other outcome ends it with an E line: an error other than
// SQLITE_BUSY (or a refused start), a connection left inside a transaction,
// a result no call may give, or its running run taken from it while it
// lives.
//
// It reports on stdout, one line per event, each with a single write(2), so
// that a SIGKILL never leaves half a line:
//
//   A <call>                        about to call <call>
//   R <call> <run|-> <outcome> <n>  <call> returned: its value ('ok' for
//                                   the history's DDL), 'refused' (start_run:
//                                   the key is held) or 'busy' (SQLITE_BUSY);
//                                   <run> is the run it was about ('-': none);
//                                   <n> the events counted inside the call
//   K in <call> <event> <n>         paused at the n-th event inside <call>
//   K between <call> <call>         paused between two calls
//   D                               done (the last line; exit 0)
//   E <message>                     something unexpected happened (exit 1)
//
// After a K line it blocks reading stdin: the parent kills it there. The
// kill moment is chosen by counting events, not by time:
//
//   --pause CALL:E   pause at the E-th event counted inside calls of CALL
//                    (counting on across calls of CALL until E is reached).
//                    Events: every file write, truncate, sync, lock and
//                    unlock, shared-memory lock, file open and delete that
//                    SQLite makes through the VFS (a shim over the default
//                    one counts them), and every 16 virtual machine
//                    instructions (a progress handler), also those of the
//                    statements that the extension runs inside its
//                    functions. So a pause lands inside start_run()'s
//                    BEGIN IMMEDIATE, between its writes to the journal and
//                    the database, or inside the SQL of a migration.
//   --between N      pause before the (N+1)-th call, after the N-th returned.
//
// With neither it runs to the end (the parent may still kill it at a random
// moment). Its first call after the migration is always start_run().
//
//   --migrate-by-file SQLDIR   instead of runs_migrate(), apply the migration
//                    files above the recorded version one by one, each its
//                    own transaction, as call 'migrate_file' (the naive way
//                    that the test shows being left half-done by a kill).
//
//   torture_worker --db PATH --extension PATH --seed N --ops N --name NAME
//                  [--keys N] [--synchronous off|normal|full] [--pause CALL:E]
//                  [--between N] [--migrate-by-file SQLDIR]
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "history_sql.h"
#include "vfs_shim.h"

namespace {

// ---- reporting -------------------------------------------------------------

void say(const std::string& line) {
  const std::string text = line + "\n";
  if (write(STDOUT_FILENO, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    std::_Exit(2);
  }
}

[[noreturn]] void fail(const std::string& what) {
  say("E " + what);
  std::exit(1);
}

// Announces the pause and blocks until the parent kills this process.
[[noreturn]] void pause_here(const std::string& where) {
  say("K " + where);
  char byte = 0;
  while (read(STDIN_FILENO, &byte, 1) > 0) {
  }
  std::_Exit(3);  // the parent closed stdin instead of killing: it gave up
}

// ---- counting events inside calls -----------------------------------------

const char* g_call = nullptr;  // the call in progress, or nullptr between calls
long g_events_in_call = 0;
std::string g_pause_call;  // --pause CALL:E
long g_pause_event = 0;
long g_target_events = 0;  // events counted so far inside calls of g_pause_call

void event(const char* what) {
  if (g_call == nullptr) return;
  ++g_events_in_call;
  if (g_pause_event > 0 && g_pause_call == g_call && ++g_target_events == g_pause_event) {
    pause_here(std::string("in ") + g_call + " " + what + " " + std::to_string(g_events_in_call));
  }
}

int count_vm_instructions(void*) {
  event("vm");
  return 0;
}

// A VFS shim over the default VFS (tests/support/vfs_shim.h) that counts,
// and forwards, every operation that changes a file or a lock. The event
// comes before the operation: a pause at a write means the write has not
// happened.
class CountingVfs : public runs_test::VfsShim {
 public:
  CountingVfs() : VfsShim("torture", true) {}

 private:
  void before(const char* operation) override { event(operation); }
};

void install_vfs() {
  sqlite3_vfs* real = sqlite3_vfs_find(nullptr);
  if (real == nullptr || real->iVersion < 3) fail("no default VFS of version 3");
  static CountingVfs vfs;
  if (!vfs.registered()) fail("cannot register the VFS shim");
}

// ---- calls -----------------------------------------------------------------

sqlite3* g_db = nullptr;
long g_calls = 0;
long g_pause_between = 0;  // --between N
std::string g_previous_call = "open";

struct Outcome {
  bool ok = false;    // the statement succeeded
  int code = 0;       // primary result code
  std::string value;  // the first column of the first row; "NULL" for NULL
};

// Runs `sql` (one statement, or several for exec) as call `name`, with the
// A line before and the R line after.
Outcome call(const char* name, const std::string& sql, const std::string& run, bool exec = false) {
  if (g_calls > 0 && g_calls == g_pause_between) pause_here("between " + g_previous_call + " " + name);
  say(std::string("A ") + name);
  g_call = name;
  g_events_in_call = 0;
  Outcome out;
  if (exec) {
    const int rc = sqlite3_exec(g_db, sql.c_str(), nullptr, nullptr, nullptr);
    out.ok = rc == SQLITE_OK;
    out.code = rc & 0xff;
    if (!out.ok && sqlite3_get_autocommit(g_db) == 0) sqlite3_exec(g_db, "ROLLBACK", nullptr, nullptr, nullptr);
  } else {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(g_db, sql.c_str(), -1, &stmt, nullptr);
    if (rc == SQLITE_OK) {
      rc = sqlite3_step(stmt);
      if (rc == SQLITE_ROW) {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
        out.value = text != nullptr ? text : "NULL";
        rc = sqlite3_step(stmt);
      }
      rc = sqlite3_finalize(stmt);
    }
    out.ok = rc == SQLITE_OK;
    out.code = rc & 0xff;
  }
  g_call = nullptr;
  if (sqlite3_get_autocommit(g_db) == 0) fail(std::string(name) + " left the connection inside a transaction");
  ++g_calls;
  g_previous_call = name;
  if (!out.ok && out.code != SQLITE_BUSY && !(out.code == SQLITE_CONSTRAINT && std::strcmp(name, "start_run") == 0)) {
    fail(std::string(name) + ": " + sql + ": " + sqlite3_errmsg(g_db));
  }
  const std::string outcome = out.ok ? (out.value.empty() ? "ok" : out.value)
                              : out.code == SQLITE_BUSY ? "busy"
                                                        : "refused";
  say(std::string("R ") + name + " " + run + " " + outcome + " " + std::to_string(g_events_in_call));
  return out;
}

bool busy(const Outcome& out) { return !out.ok && out.code == SQLITE_BUSY; }

// ---- the worker ------------------------------------------------------------

struct Held {
  std::string id;  // empty: no run held
  bool running = false;
};

std::mt19937_64 g_random;
std::string g_name;
Held g_held;

long below(long n) { return std::uniform_int_distribution<long>(0, n - 1)(g_random); }

void expect(const std::string& what, const Outcome& out, std::initializer_list<const char*> allowed) {
  if (busy(out)) return;
  for (const char* value : allowed) {
    if (out.value == value) return;
  }
  fail(what + " gave '" + out.value + "'");
}

// A run of ours that is no longer ours. Only a pending run may be taken from
// a live owner (another worker's cancel_run() ends it at once); a running
// run's cancel is only a request to its owner, and no process may reclaim
// the run of an owner that lives.
void lost(const std::string& what) {
  if (g_held.running) fail(what + ": run " + g_held.id + " of a live owner was taken from it");
  g_held = Held{};
}

// --migrate-by-file: the migration files applied one by one, each in its own
// transaction (each file is a SAVEPOINT), as `sqlite3 app.db < sql/00N_*.sql`
// or a migration tool would: only the files above the recorded version.
std::string g_sql_dir;

void migrate_by_file() {
  long current = 0;
  {
    sqlite3_stmt* stmt = nullptr;
    const char* sql =
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'runs_schema_migrations')"
        " THEN 1 ELSE 0 END";
    if (sqlite3_prepare_v2(g_db, sql, -1, &stmt, nullptr) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_ROW) {
      fail(std::string("reading the schema: ") + sqlite3_errmsg(g_db));
    }
    const bool exists = sqlite3_column_int(stmt, 0) != 0;
    sqlite3_finalize(stmt);
    if (exists) {
      if (sqlite3_prepare_v2(g_db, "SELECT coalesce(max(version), 0) FROM runs_schema_migrations", -1, &stmt,
                             nullptr) != SQLITE_OK ||
          sqlite3_step(stmt) != SQLITE_ROW) {
        fail(std::string("reading the version: ") + sqlite3_errmsg(g_db));
      }
      current = sqlite3_column_int(stmt, 0);
      sqlite3_finalize(stmt);
    }
  }
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(g_sql_dir)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 4 && name.substr(name.size() - 4) == ".sql" && std::isdigit(static_cast<unsigned char>(name[0]))) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    if (std::strtol(file.filename().string().c_str(), nullptr, 10) <= current) continue;
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    if (!call("migrate_file", text.str(), "-", true).ok) fail("applying " + file.string() + " was busy");
  }
}

void migrate() {
  if (!g_sql_dir.empty()) {
    migrate_by_file();
    return;
  }
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (!busy(call("runs_migrate", "SELECT runs_migrate()", "-"))) return;
  }
  fail("runs_migrate() stayed busy");
}

void ensure_history() {
  const std::string sql =
      "BEGIN IMMEDIATE;" + runs_test::history_sql("torture_history", "new.concurrency_key") + "COMMIT;";
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (!busy(call("history", sql, "-", true))) return;
  }
  fail("installing the history stayed busy");
}

void start(long keys) {
  const std::string key(1, static_cast<char>('a' + below(keys)));
  const std::string lease = below(3) == 0 ? ", 3600" : "";
  const Outcome out = call("start_run", "SELECT start_run('torture', '" + g_name + "', '" + key + "'" + lease + ")", "-");
  if (out.ok) g_held = Held{out.value, false};
}

void mark() {
  const Outcome out = call("mark_run_running", "SELECT mark_run_running(" + g_held.id + ")", g_held.id);
  expect("mark_run_running", out, {"updated", "not_in_expected_state"});
  if (out.value == "updated") g_held.running = true;
  if (out.value == "not_in_expected_state") lost("mark_run_running");
}

void progress() {
  const std::string n = std::to_string(below(10));
  const Outcome out = call("update_run_progress",
                           "SELECT update_run_progress(" + g_held.id + ", " + n + ", 10, 'step " + n + "')",
                           g_held.id);
  expect("update_run_progress", out, {"updated", "not_in_expected_state"});
  if (out.value == "not_in_expected_state") lost("update_run_progress");
}

// complete_run, fail_run or cancel_run of the run we hold.
void end(const char* function) {
  const std::string arguments =
      std::strcmp(function, "fail_run") == 0 ? g_held.id + ", 'torture: " + g_name + " gave up'" : g_held.id;
  const Outcome out = call(function, std::string("SELECT ") + function + "(" + arguments + ")", g_held.id);
  expect(function, out, {"updated", "not_in_expected_state"});
  if (out.value == "updated") g_held = Held{};
  if (out.value == "not_in_expected_state") lost(function);
}

void heartbeat() {
  const Outcome out = call("heartbeat_run", "SELECT heartbeat_run(" + g_held.id + ")", g_held.id);
  expect("heartbeat_run", out, {"ok", "cancel_requested", "lost"});
  if (out.value == "lost") lost("heartbeat_run");
  if (out.value == "cancel_requested") {
    // Another worker asked us to stop: confirm, as the protocol says.
    for (int attempt = 0; attempt < 50 && !g_held.id.empty(); ++attempt) end("cancel_run");
  }
}

// Cancels the active run of a random key, whoever owns it.
void cancel_other(long keys) {
  const std::string key(1, static_cast<char>('a' + below(keys)));
  const Outcome active = call("active_run", "SELECT active_run('" + key + "')", "-");
  if (!active.ok || active.value == "NULL" || active.value == g_held.id) return;
  const Outcome out = call("cancel_run", "SELECT cancel_run(" + active.value + ")", active.value);
  expect("cancel_run of another run", out, {"updated", "cancel_requested", "not_in_expected_state"});
}

void finish_held() {
  for (int attempt = 0; attempt < 50 && !g_held.id.empty(); ++attempt) {
    if (g_held.running) {
      end("complete_run");
    } else {
      mark();
    }
  }
  if (!g_held.id.empty()) fail("run " + g_held.id + " stayed busy at the end");
}

}  // namespace

int main(int argc, char** argv) {
  std::string path, extension, synchronous = "full";
  long ops = -1, keys = 2;
  unsigned long long seed = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--db") path = value;
    else if (flag == "--extension") extension = value;
    else if (flag == "--seed") seed = std::strtoull(value.c_str(), nullptr, 10);
    else if (flag == "--ops") ops = std::strtol(value.c_str(), nullptr, 10);
    else if (flag == "--keys") keys = std::strtol(value.c_str(), nullptr, 10);
    else if (flag == "--name") g_name = value;
    else if (flag == "--synchronous") synchronous = value;
    else if (flag == "--migrate-by-file") g_sql_dir = value;
    else if (flag == "--between") g_pause_between = std::strtol(value.c_str(), nullptr, 10);
    else if (flag == "--pause") {
      const auto colon = value.find(':');
      if (colon == std::string::npos) fail("--pause needs CALL:EVENT");
      g_pause_call = value.substr(0, colon);
      g_pause_event = std::strtol(value.c_str() + colon + 1, nullptr, 10);
    } else {
      fail("unknown option " + flag);
    }
  }
  if (path.empty() || extension.empty() || ops < 0 || keys < 1 || keys > 26 || g_name.empty() ||
      (synchronous != "off" && synchronous != "normal" && synchronous != "full")) {
    fail("usage: torture_worker --db PATH --extension PATH --seed N --ops N --name NAME"
         " [--keys N] [--synchronous off|normal|full] [--pause CALL:E] [--between N]"
         " [--migrate-by-file SQLDIR]");
  }
  g_random.seed(seed);
  install_vfs();
  if (sqlite3_open(path.c_str(), &g_db) != SQLITE_OK) fail("cannot open " + path + ": " + sqlite3_errmsg(g_db));
  sqlite3_extended_result_codes(g_db, 1);
  sqlite3_busy_timeout(g_db, 10000);
  sqlite3_enable_load_extension(g_db, 1);
  char* error = nullptr;
  if (sqlite3_load_extension(g_db, extension.c_str(), nullptr, &error) != SQLITE_OK) {
    fail("cannot load " + extension + ": " + (error != nullptr ? error : "?"));
  }
  if (sqlite3_exec(g_db, ("PRAGMA synchronous = " + synchronous).c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
    fail(std::string("PRAGMA synchronous: ") + sqlite3_errmsg(g_db));
  }
  sqlite3_progress_handler(g_db, 16, count_vm_instructions, nullptr);

  migrate();
  ensure_history();
  for (long op = 0; op < ops; ++op) {
    const long dice = below(100);
    if (g_held.id.empty()) {
      if (dice < 65 || op == 0) start(keys);
      else if (dice < 75) cancel_other(keys);
      else if (dice < 85) call("reap_stale_runs", "SELECT reap_stale_runs()", "-");
      else if (dice < 92) call("runs_migrate", "SELECT runs_migrate()", "-");
      else call("run_info", "SELECT run_info(coalesce(active_run('a'), 0)) IS NOT NULL", "-");
    } else if (!g_held.running) {
      if (dice < 75) mark();
      else if (dice < 85) end("cancel_run");
      else if (dice < 92) end("fail_run");
      else heartbeat();
    } else {
      if (dice < 35) progress();
      else if (dice < 60) heartbeat();
      else if (dice < 75) end("complete_run");
      else if (dice < 82) end("fail_run");
      else if (dice < 88) end("cancel_run");
      else cancel_other(keys);
    }
  }
  finish_held();
  g_call = nullptr;
  if (sqlite3_close(g_db) != SQLITE_OK) fail(std::string("sqlite3_close: ") + sqlite3_errmsg(g_db));
  say("D");
  return 0;
}
