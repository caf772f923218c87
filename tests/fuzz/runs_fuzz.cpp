// libFuzzer target: random sequences of the SQL functions, with random
// arguments, on one in-memory database with the extension loaded.
//
// The extension's sources are compiled into this binary (tests/fuzz/
// CMakeLists.txt takes them from the `runs` target) and registered with
// sqlite3_auto_extension(), so SQLite calls sqlite3_runs_init() on every new
// connection exactly as it does when it loads runs.so.
//
// An input is a byte string, read from the front:
//   byte 0          setup: bit 0 set = SELECT runs_migrate() before step 1
//   then steps, at most kMaxSteps:
//     op            op % (number of functions + number of statements):
//                   a function of kFunctions, or a statement of kStatements
//     for a function:
//       shape       where the call is made (Shape below): shape & 3; with bit 7
//                   set, one more byte n, and the (n+1)-th memory allocation
//                   SQLite makes during the call fails (out-of-memory testing)
//       argc        min_args + argc % (max_args - min_args + 2): one more than
//                   the function takes, to exercise SQLite's arity check too
//       argc args   each a kind byte (Arg below) and its payload
// A missing byte reads as 0, so every input decodes.
//
// After every step, whatever it returned:
//   - PRAGMA integrity_check is "ok";
//   - at most one pending/running run per concurrency_key (read without the
//     index, which integrity_check compares with the table);
//   - a function call left the transaction state as it found it: in
//     autocommit, with no transaction open (sqlite3_txn_state NONE) once the
//     statement is finalized, unless the input itself opened one;
//   - a function call that failed changed nothing (schema, runs,
//     runs_schema_migrations, sqlite_sequence compared before and after), with
//     an error code SQLite or the functions document (ERROR, CONSTRAINT,
//     TOOBIG, READONLY; NOMEM when an allocation was made to fail) and a
//     message that names the function;
//   - when an allocation failed inside the caller's own transaction, SQLite may
//     roll that transaction back: then only "autocommit, no transaction open"
//     is checked;
//   - when an allocation failed and the call left its own transaction open (a
//     known problem, docs/reliability.md), ROLLBACK restores the database;
//   - a function call that succeeded returned what its page in docs/functions/
//     says it returns (Result below), and did not change the caller's
//     last_insert_rowid();
// and at the end sqlite3_close() succeeds (no statement left unfinalized).
// A violation prints what happened and aborts, which libFuzzer reports as a
// crash, with the input saved.
//
// RUNS_FUZZ_TRACE=1 in the environment prints every step and its outcome:
//   RUNS_FUZZ_TRACE=1 build/test-sanitize/tests/fuzz/runs_fuzz tests/fuzz/corpus/lifecycle
//
// Crash recovery (issue 3) adds functions: they are in kFunctions already and
// fail with "no such function" until they exist; give them their Result then.
#include <sanitizer/common_interface_defs.h>
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

extern "C" int sqlite3_runs_init(sqlite3* db, char** error_message,
                                 const sqlite3_api_routines* api);

namespace {

constexpr int kMaxSteps = 48;
constexpr std::size_t kMiB = 1024 * 1024;

// What a successful call must return.
enum class Result {
  kRunId,          // INTEGER id of a run that is now pending
  kRunIdOrNull,    // NULL, or the INTEGER id of an active run
  kTransition,     // 'updated', 'not_found' or 'not_in_expected_state'
  kCancel,         // a transition, or 'cancel_requested' (issue 3)
  kStatusOrNull,   // NULL or one of the five statuses
  kSchemaVersion,  // INTEGER, the latest version recorded in runs_schema_migrations
  kVersionText,    // TEXT starting with 'v'
  kAnything,       // not checked (yet)
};

struct Function {
  const char* name;
  int min_args;
  int max_args;
  Result result;
};

// Every SQL function of the extension, and those coming with crash recovery.
constexpr Function kFunctions[] = {
    // lease_seconds, the 4th argument, comes with crash recovery.
    {"start_run", 1, 4, Result::kRunId},
    {"active_run", 0, 1, Result::kRunIdOrNull},
    {"mark_run_running", 1, 1, Result::kTransition},
    {"complete_run", 1, 1, Result::kTransition},
    {"fail_run", 2, 2, Result::kTransition},
    {"cancel_run", 1, 1, Result::kCancel},
    {"update_run_progress", 4, 4, Result::kTransition},
    {"run_status", 1, 1, Result::kStatusOrNull},
    {"runs_migrate", 0, 0, Result::kSchemaVersion},
    {"runs_version", 0, 0, Result::kVersionText},
    // Crash recovery (issue 3).
    {"heartbeat_run", 1, 1, Result::kAnything},
    {"reap_stale_runs", 0, 2, Result::kAnything},
    {"run_info", 1, 1, Result::kAnything},
};
constexpr int kFunctionCount = static_cast<int>(std::size(kFunctions));

// Statements an application runs between the calls; their errors (COMMIT
// with no transaction, ...) are expected and ignored.
constexpr const char* kStatements[] = {
    "BEGIN",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT fuzz",
    "RELEASE fuzz",
    "ROLLBACK TO fuzz",
    "PRAGMA query_only = 1",
    "PRAGMA query_only = 0",
};
constexpr int kStatementCount = static_cast<int>(std::size(kStatements));

// Where a function call is made.
enum Shape {
  kAlone = 0,         // SELECT f(...)
  kFromTable = 1,     // SELECT f(...) FROM fuzz_one_row: inside a read transaction
  kInsertSelect = 2,  // INSERT INTO fuzz_sink SELECT f(...): inside a write statement
  kWhileReading = 3,  // SELECT f(...) while another statement of the connection is stepped
};

// Reads the input from the front; past its end every byte is 0.
class Reader {
 public:
  Reader(const uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint64_t u64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | byte();
    return v;
  }
  std::string bytes(std::size_t n) {
    n = std::min(n, size_ - std::min(pos_, size_));
    std::string out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }

 private:
  const uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

const bool kTrace = std::getenv("RUNS_FUZZ_TRACE") != nullptr;

// SQLite's allocator, wrapped: while g_fail_countdown > 0 it counts SQLite's
// allocations down and fails the one that reaches 0 (once).
sqlite3_mem_methods g_memory;
int g_fail_countdown = 0;
bool g_allocation_failed = false;
// Counts, printed at exit (docs/reliability.md quotes them).
long g_inputs = 0;
long g_calls = 0;
long g_failed_calls = 0;
long g_out_of_memory_calls = 0;  // calls in which an allocation was made to fail
long g_stranded = 0;  // a call left its own transaction open after a failed allocation

void print_counts() {
  std::fprintf(stderr,
               "runs_fuzz: %ld inputs, %ld function calls (%ld failed, %ld with a failed "
               "allocation, %ld of which left their transaction open)\n",
               g_inputs, g_calls, g_failed_calls, g_out_of_memory_calls, g_stranded);
}

bool fail_this_allocation() {
  if (g_fail_countdown == 0 || --g_fail_countdown > 0) return false;
  g_allocation_failed = true;
  if (kTrace) __sanitizer_print_stack_trace();
  return true;
}
void* counted_malloc(int n) { return fail_this_allocation() ? nullptr : g_memory.xMalloc(n); }
void* counted_realloc(void* p, int n) {
  return fail_this_allocation() ? nullptr : g_memory.xRealloc(p, n);
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "runs_fuzz: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

void check(bool ok, const std::string& what) {
  if (!ok) fail(what);
}

// Runs one statement to the end; returns its result code. Rows are ignored.
int exec(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
  }
  sqlite3_finalize(stmt);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

// The harness's own statements, prepared once per connection: preparing
// costs more than running them on these small databases. Reset after each
// use, so none holds a transaction; finalized before sqlite3_close().
std::map<std::string, sqlite3_stmt*> g_statements;

void finalize_statements() {
  for (auto& [sql, stmt] : g_statements) sqlite3_finalize(stmt);
  g_statements.clear();
}

// Every row of a statement that must succeed, as text, columns separated by |.
std::vector<std::string> query(sqlite3* db, const std::string& sql) {
  sqlite3_stmt*& stmt = g_statements[sql];
  if (stmt == nullptr && sqlite3_prepare_v3(db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt,
                                            nullptr) != SQLITE_OK) {
    fail("cannot prepare " + sql + ": " + sqlite3_errmsg(db));
  }
  std::vector<std::string> rows;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    std::string row;
    for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
      if (i > 0) row += '|';
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
      if (text == nullptr) {
        row += "NULL";
      } else {
        row.append(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt, i)));
      }
    }
    rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) fail("cannot run " + sql + ": " + sqlite3_errmsg(db));
  sqlite3_reset(stmt);
  return rows;
}

bool table_exists(sqlite3* db, const char* name) {
  return !query(db, std::string("SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = '") +
                        name + "'")
              .empty();
}

// Everything a function could write: the schema and the extension's tables.
std::string dump(sqlite3* db) {
  std::string out;
  for (const std::string& row : query(db, "SELECT type, name, sql FROM main.sqlite_schema ORDER BY name")) {
    out += row + '\n';
  }
  for (const char* table : {"runs", "runs_schema_migrations", "sqlite_sequence", "fuzz_sink"}) {
    if (!table_exists(db, table)) continue;
    out += std::string("table ") + table + '\n';
    for (const std::string& row : query(db, std::string("SELECT * FROM main.") + table + " ORDER BY 1")) {
      out += row + '\n';
    }
  }
  return out;
}

// The invariants that hold after every step.
void check_database(sqlite3* db) {
  const auto integrity = query(db, "PRAGMA integrity_check");
  check(integrity == std::vector<std::string>{"ok"},
        "integrity_check: " + (integrity.empty() ? std::string("no rows") : integrity[0]));
  if (!table_exists(db, "runs")) return;
  const std::vector<std::string> columns = query(db, "SELECT name FROM pragma_table_info('runs')");
  if (std::find(columns.begin(), columns.end(), "concurrency_key") == columns.end()) return;
  const auto doubles = query(db,
                             "SELECT concurrency_key, count(*) FROM main.runs NOT INDEXED"
                             " WHERE status IN ('pending', 'running')"
                             " GROUP BY concurrency_key HAVING count(*) > 1");
  check(doubles.empty(), "two active runs for one key: " + (doubles.empty() ? "" : doubles[0]));
}

// One argument, decoded from a kind byte and its payload.
struct Arg {
  enum Kind { kNull, kInteger, kReal, kText, kBlob } kind = kNull;
  sqlite3_int64 integer = 0;
  double real = 0;
  std::string bytes;
};

// An argument as a SQL literal, for the trace (long values shortened).
std::string describe(const Arg& arg) {
  const auto shown = [](const std::string& bytes, bool as_text) {
    std::string out = as_text ? "'" : "x'";
    static const char* const kHex = "0123456789abcdef";
    for (std::size_t i = 0; i < std::min<std::size_t>(bytes.size(), 24); ++i) {
      const auto c = static_cast<unsigned char>(bytes[i]);
      if (as_text && c >= 0x20 && c < 0x7f && c != '\'') {
        out += static_cast<char>(c);
      } else {
        out += std::string("\\x") + kHex[c >> 4] + kHex[c & 15];
      }
    }
    out += "'";
    if (bytes.size() > 24) out += "... (" + std::to_string(bytes.size()) + " bytes)";
    return out;
  };
  switch (arg.kind) {
    case Arg::kNull:
      return "NULL";
    case Arg::kInteger:
      return std::to_string(arg.integer);
    case Arg::kReal: {
      char buffer[64];
      std::snprintf(buffer, sizeof buffer, "%.17g", arg.real);
      return buffer;
    }
    case Arg::kText:
      return shown(arg.bytes, true);
    case Arg::kBlob:
      return shown(arg.bytes, false);
  }
  return "?";
}

Arg read_arg(Reader& in, const std::vector<sqlite3_int64>& ids) {
  static constexpr sqlite3_int64 kEdgeIntegers[] = {
      0, 1, -1, 2, std::numeric_limits<sqlite3_int64>::max(),
      std::numeric_limits<sqlite3_int64>::min(), std::numeric_limits<int32_t>::max() + 1LL,
      std::numeric_limits<int32_t>::min() - 1LL, 1024, 1025};
  static constexpr double kEdgeReals[] = {
      0.0, -0.0, 1.0, 1.5, -2.5, 1e19, -1e19, 9223372036854775808.0, -9223372036854775808.0,
      9223372036854774784.0, 1e300, std::numeric_limits<double>::infinity(),
      -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN(),
      std::numeric_limits<double>::denorm_min()};
  static const char* const kWords[] = {
      "", "k", "full", "api", "pending", "running", "completed", "failed", "cancelled",
      "\xc3\xa9", "\xff\xfe", "\xc3\x28", "\xed\xa0\x80", "'; DROP TABLE runs; --", "%s%n"};
  static constexpr std::size_t kLongLengths[] = {1023, 1024, 1025, 65536, kMiB, kMiB + 1};

  Arg arg;
  const auto pick_id = [&]() -> sqlite3_int64 {
    const uint8_t n = in.byte();
    if (ids.empty()) return n % 4;
    return ids[n % ids.size()];
  };
  switch (in.byte() % 13) {
    case 0:
      break;
    case 1:
      arg.kind = Arg::kInteger;
      arg.integer = static_cast<int8_t>(in.byte());
      break;
    case 2:
      arg.kind = Arg::kInteger;
      arg.integer = static_cast<sqlite3_int64>(in.u64());
      break;
    case 3:
      arg.kind = Arg::kInteger;
      arg.integer = kEdgeIntegers[in.byte() % std::size(kEdgeIntegers)];
      break;
    case 4: {
      arg.kind = Arg::kReal;
      const uint64_t bits = in.u64();
      std::memcpy(&arg.real, &bits, sizeof bits);
      break;
    }
    case 5:
      arg.kind = Arg::kReal;
      arg.real = kEdgeReals[in.byte() % std::size(kEdgeReals)];
      break;
    case 6:  // raw bytes: often not UTF-8, may hold NULs
      arg.kind = Arg::kText;
      arg.bytes = in.bytes(in.byte());
      break;
    case 7:
      arg.kind = Arg::kBlob;
      arg.bytes = in.bytes(in.byte());
      break;
    case 8: {  // long text of one repeated byte, around the functions' limits
      arg.kind = Arg::kText;
      const std::size_t length = kLongLengths[in.byte() % std::size(kLongLengths)];
      arg.bytes.assign(length, static_cast<char>(in.byte() | 0x20));
      break;
    }
    case 9:
      arg.kind = Arg::kInteger;
      arg.integer = pick_id();
      break;
    case 10:  // an id as an integral REAL, as JavaScript drivers bind it
      arg.kind = Arg::kReal;
      arg.real = static_cast<double>(pick_id());
      break;
    case 11:
      arg.kind = Arg::kText;
      arg.bytes = kWords[in.byte() % std::size(kWords)];
      break;
    default: {  // a long blob
      arg.kind = Arg::kBlob;
      arg.bytes.assign(kLongLengths[in.byte() % std::size(kLongLengths)], '\0');
      break;
    }
  }
  return arg;
}

void bind(sqlite3_stmt* stmt, int index, const Arg& arg) {
  switch (arg.kind) {
    case Arg::kNull:
      sqlite3_bind_null(stmt, index);
      break;
    case Arg::kInteger:
      sqlite3_bind_int64(stmt, index, arg.integer);
      break;
    case Arg::kReal:
      sqlite3_bind_double(stmt, index, arg.real);
      break;
    case Arg::kText:
      sqlite3_bind_text(stmt, index, arg.bytes.data(), static_cast<int>(arg.bytes.size()),
                        SQLITE_TRANSIENT);
      break;
    case Arg::kBlob:
      sqlite3_bind_blob(stmt, index, arg.bytes.data(), static_cast<int>(arg.bytes.size()),
                        SQLITE_TRANSIENT);
      break;
  }
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

// The error of a failed call: an expected code, and a message naming the function.
void check_error(const Function& function, Shape shape, int argc, int code, const std::string& message) {
  const std::string name = function.name;
  // PRAGMA query_only refuses the INSERT around the call before the call.
  if (shape == kInsertSelect && code == SQLITE_READONLY &&
      message == "attempt to write a readonly database") {
    return;
  }
  const int primary = code & 0xff;
  if (g_allocation_failed) {
    // SQLite may lose the message itself when an allocation fails ("out of
    // memory", or "SQL logic error" when it cannot copy the function's text).
    check(primary == SQLITE_NOMEM || primary == SQLITE_ERROR || primary == SQLITE_CONSTRAINT ||
              primary == SQLITE_TOOBIG || primary == SQLITE_READONLY,
          name + ": unexpected result code " + std::to_string(code) + " out of memory: " + message);
    return;
  }
  check(primary == SQLITE_ERROR || primary == SQLITE_CONSTRAINT || primary == SQLITE_TOOBIG ||
            primary == SQLITE_READONLY,
        name + ": unexpected result code " + std::to_string(code) + ": " + message);
  if (argc < function.min_args || argc > function.max_args) {
    // SQLite's arity check, or a function that does not exist yet.
    check(message == "wrong number of arguments to function " + name + "()" ||
              message == "no such function: " + name,
          name + " with " + std::to_string(argc) + " arguments: " + message);
    return;
  }
  check(starts_with(message, name + "(): ") || message == "no such function: " + name ||
            message == "wrong number of arguments to function " + name + "()",
        name + ": an error that does not name the function: " + message);
}

void check_result(sqlite3* db, const Function& function, sqlite3_stmt* stmt) {
  const std::string name = function.name;
  const int type = sqlite3_column_type(stmt, 0);
  const auto* raw = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  const std::string text = raw != nullptr ? raw : "";
  const auto is_one_of = [&](std::initializer_list<const char*> allowed) {
    if (type != SQLITE_TEXT) return false;
    return std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return text == a; });
  };
  const auto run_status = [&](sqlite3_int64 id) {
      const auto rows = query(db, "SELECT status FROM main.runs NOT INDEXED WHERE id = " + std::to_string(id));
    return rows.empty() ? std::string("<none>") : rows[0];
  };
  switch (function.result) {
    case Result::kRunId: {
      check(type == SQLITE_INTEGER, name + " returned a non-integer: " + text);
      const auto status = run_status(sqlite3_column_int64(stmt, 0));
      check(status == "pending", name + " returned " + text + ", a run that is " + status);
      break;
    }
    case Result::kRunIdOrNull: {
      if (type == SQLITE_NULL) break;
      check(type == SQLITE_INTEGER, name + " returned a non-integer: " + text);
      const auto status = run_status(sqlite3_column_int64(stmt, 0));
      check(status == "pending" || status == "running", name + " returned run " + text + ", which is " + status);
      break;
    }
    case Result::kTransition:
      check(is_one_of({"updated", "not_found", "not_in_expected_state"}), name + " returned " + text);
      break;
    case Result::kCancel:
      check(is_one_of({"updated", "not_found", "not_in_expected_state", "cancel_requested"}),
            name + " returned " + text);
      break;
    case Result::kStatusOrNull:
      check(type == SQLITE_NULL ||
                is_one_of({"pending", "running", "completed", "failed", "cancelled"}),
            name + " returned " + text);
      break;
    case Result::kSchemaVersion: {
      check(type == SQLITE_INTEGER, name + " returned a non-integer: " + text);
      const auto latest = query(db, "SELECT max(version) FROM main.runs_schema_migrations");
      check(latest.size() == 1 && latest[0] == text, name + " returned " + text);
      break;
    }
    case Result::kVersionText:
      check(type == SQLITE_TEXT && starts_with(text, "v"), name + " returned " + text);
      break;
    case Result::kAnything:
      break;
  }
}

void call_function(sqlite3* db, Reader& in, const Function& function,
                   const std::vector<sqlite3_int64>& ids) {
  const uint8_t shape_byte = in.byte();
  const auto shape = static_cast<Shape>(shape_byte & 3);
  const int fail_allocation = (shape_byte & 0x80) != 0 ? 1 + in.byte() : 0;
  const int argc = function.min_args + in.byte() % (function.max_args - function.min_args + 2);
  std::vector<Arg> args;
  for (int i = 0; i < argc; ++i) args.push_back(read_arg(in, ids));

  std::string call = std::string(function.name) + "(";
  for (int i = 0; i < argc; ++i) call += (i > 0 ? ", ?" : "?") + std::to_string(i + 1);
  call += ")";
  std::string sql;
  switch (shape) {
    case kFromTable:
      sql = "SELECT " + call + " FROM fuzz_one_row";
      break;
    case kInsertSelect:
      sql = "INSERT INTO fuzz_sink SELECT " + call;
      break;
    default:
      sql = "SELECT " + call;
      break;
  }

  const bool autocommit_before = sqlite3_get_autocommit(db) != 0;
  const sqlite3_int64 rowid_before = sqlite3_last_insert_rowid(db);
  const std::string before = dump(db);

  sqlite3_stmt* reader = nullptr;
  if (shape == kWhileReading) {
    check(sqlite3_prepare_v2(db, "SELECT x FROM fuzz_one_row", -1, &reader, nullptr) == SQLITE_OK &&
              sqlite3_step(reader) == SQLITE_ROW,
          "cannot start the reader");
  }
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
  std::string message;
  std::string result = "done";
  if (rc == SQLITE_OK) {
    for (int i = 0; i < argc; ++i) bind(stmt, i + 1, args[static_cast<std::size_t>(i)]);
    g_allocation_failed = false;
    g_fail_countdown = fail_allocation;
    rc = sqlite3_step(stmt);
    g_fail_countdown = 0;
    if (rc == SQLITE_ROW) {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      result = text != nullptr ? text : "NULL";
      check_result(db, function, stmt);
      rc = sqlite3_step(stmt);
      check(rc != SQLITE_ROW, sql + " returned two rows");
    }
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
  }
  if (rc != SQLITE_OK) {
    rc = sqlite3_extended_errcode(db);
    message = sqlite3_errmsg(db);
  }
  if (kTrace) {
    std::string shown = sql;
    for (int i = argc; i >= 1; --i) {
      const std::string placeholder = "?" + std::to_string(i);
      shown.replace(shown.find(placeholder), placeholder.size(),
                    describe(args[static_cast<std::size_t>(i - 1)]));
    }
    std::fprintf(stderr, "%s%s%s -> %s\n", shape == kWhileReading ? "(while reading) " : "",
                 g_allocation_failed ? "(out of memory) " : "", shown.c_str(), rc == SQLITE_OK ? result.c_str() : (std::to_string(rc) + " " + message).c_str());
  }
  sqlite3_finalize(stmt);
  sqlite3_finalize(reader);

  ++g_calls;
  if (rc != SQLITE_OK) ++g_failed_calls;
  if (g_allocation_failed) ++g_out_of_memory_calls;
  bool autocommit_after = sqlite3_get_autocommit(db) != 0;
  if (autocommit_before && !autocommit_after && g_allocation_failed && rc != SQLITE_OK) {
    // Known, reported (docs/reliability.md): a failed allocation while SQLite
    // prepares a statement inside the function's own transaction (every one
    // of runs_migrate(); in start_run() an expired statement, prepared again
    // when stepped) makes SQLite refuse the function's ROLLBACK until the
    // caller's statement ends, so the transaction stays open. What holds is
    // what SQLite asks of an application after SQLITE_NOMEM: ROLLBACK, and
    // nothing was written.
    ++g_stranded;
    check(exec(db, "ROLLBACK") == SQLITE_OK, "ROLLBACK after " + sql + " left its transaction open");
    check(dump(db) == before, "ROLLBACK after " + sql + " left its transaction open: changes remain");
    autocommit_after = true;
  }
  // An allocation failed inside the caller's transaction: SQLite may roll it
  // back, whatever code the statement returns (an allocation in the
  // statement's own rollback, in sqlite3VdbeHalt(), rolls back everything and
  // keeps the function's SQLITE_ERROR).
  const bool caller_rolled_back =
      !autocommit_before && autocommit_after && rc != SQLITE_OK && g_allocation_failed;
  check(autocommit_before == autocommit_after || caller_rolled_back,
        sql + " changed the transaction state (autocommit was " + std::to_string(autocommit_before) +
            "): " + message);
  if (autocommit_after) {
    check(sqlite3_txn_state(db, nullptr) == SQLITE_TXN_NONE,
          sql + " left a transaction open: " + message);
  }
  if (rc != SQLITE_OK) {
    check_error(function, shape, argc, rc, message);
    check(caller_rolled_back || dump(db) == before,
          sql + " failed (" + message + ") but changed the database");
  }
  if (shape != kInsertSelect) {
    check(sqlite3_last_insert_rowid(db) == rowid_before, sql + " changed last_insert_rowid()");
  }
}

std::vector<sqlite3_int64> run_ids(sqlite3* db) {
  std::vector<sqlite3_int64> ids;
  if (!table_exists(db, "runs")) return ids;
  for (const std::string& id : query(db, "SELECT id FROM main.runs NOT INDEXED ORDER BY id")) {
    ids.push_back(std::strtoll(id.c_str(), nullptr, 10));
  }
  return ids;
}

// The starting database of every input: fuzz_one_row and fuzz_sink, and,
// for inputs that ask for it, the runs schema. Built once and copied into
// each input's connection (sqlite3_deserialize), because migrating costs more
// than most inputs; inputs that start unmigrated still call runs_migrate().
struct Image {
  std::vector<unsigned char> bytes;
};
Image g_images[2];  // [0] unmigrated, [1] migrated

Image make_image(bool migrated) {
  sqlite3* db = nullptr;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) fail("cannot open :memory:");
  // fuzz_one_row has exactly one row: SELECT f() FROM it calls f once.
  check(exec(db, "CREATE TABLE fuzz_one_row(x)") == SQLITE_OK &&
            exec(db, "INSERT INTO fuzz_one_row VALUES (1)") == SQLITE_OK &&
            exec(db, "CREATE TABLE fuzz_sink(x)") == SQLITE_OK,
        std::string("setup: ") + sqlite3_errmsg(db));
  if (migrated) check(exec(db, "SELECT runs_migrate()") == SQLITE_OK, "runs_migrate() at setup");
  sqlite3_int64 size = 0;
  unsigned char* data = sqlite3_serialize(db, "main", &size, 0);
  check(data != nullptr, "sqlite3_serialize");
  Image image{std::vector<unsigned char>(data, data + size)};
  sqlite3_free(data);
  check(sqlite3_close(db) == SQLITE_OK, "close after setup");
  return image;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Before anything initializes SQLite: sqlite3_config() works only then.
  sqlite3_mem_methods counted{};
  check(sqlite3_config(SQLITE_CONFIG_GETMALLOC, &g_memory) == SQLITE_OK, "SQLITE_CONFIG_GETMALLOC");
  counted = g_memory;
  counted.xMalloc = counted_malloc;
  counted.xRealloc = counted_realloc;
  check(sqlite3_config(SQLITE_CONFIG_MALLOC, &counted) == SQLITE_OK, "SQLITE_CONFIG_MALLOC");
  sqlite3_auto_extension(reinterpret_cast<void (*)()>(sqlite3_runs_init));
  std::atexit(print_counts);
  g_images[0] = make_image(false);
  g_images[1] = make_image(true);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  Reader in(data, size);
  ++g_inputs;
  sqlite3* db = nullptr;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) fail("cannot open :memory:");
  sqlite3_extended_result_codes(db, 1);
  const Image& image = g_images[in.byte() & 1];
  auto* copy = static_cast<unsigned char*>(sqlite3_malloc64(image.bytes.size()));
  check(copy != nullptr, "out of memory");
  std::memcpy(copy, image.bytes.data(), image.bytes.size());
  const auto image_size = static_cast<sqlite3_int64>(image.bytes.size());
  check(sqlite3_deserialize(db, "main", copy, image_size, image_size,
                            SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE) == SQLITE_OK,
        std::string("sqlite3_deserialize: ") + sqlite3_errmsg(db));

  for (int step = 0; step < kMaxSteps && !in.done(); ++step) {
    const int op = in.byte() % (kFunctionCount + kStatementCount);
    if (op < kFunctionCount) {
      call_function(db, in, kFunctions[op], run_ids(db));
    } else {
      const int rc = exec(db, kStatements[op - kFunctionCount]);
      if (kTrace) std::fprintf(stderr, "%s -> %d\n", kStatements[op - kFunctionCount], rc);
    }
    check_database(db);
  }
  if (!sqlite3_get_autocommit(db)) check(exec(db, "ROLLBACK") == SQLITE_OK, "final ROLLBACK");
  check_database(db);
  finalize_statements();
  const int rc = sqlite3_close(db);
  check(rc == SQLITE_OK, std::string("sqlite3_close: ") + sqlite3_errstr(rc));
  return 0;
}
