// libFuzzer target: random sequences of the SQL functions, with random
// arguments, on one in-memory database with the extension loaded.
//
// The extension's sources are compiled into this binary (tests/fuzz/
// CMakeLists.txt takes them from the `runs` target) and registered with
// sqlite3_auto_extension(), so SQLite calls sqlite3_runs_init() on every new
// connection exactly as it does when it loads runs.so.
//
// Nothing about the functions is written here by hand: their names and
// arities come from runs::function_specs(), the list the extension registers
// from (extension_table.h); the result type of each signature from the
// signature block of its page, docs/functions/NAME.md; the result codes a
// call may fail with from the codes docs/functions/ gives ("`SQLITE_BUSY`
// (5)"). A new function is fuzzed as soon as it is registered and documented.
// What is checked beyond its documented type, run by run, is in kRules below.
//
// An input is a byte string, read from the front:
//   byte 0          setup: bit 0 set = SELECT runs_migrate() before step 1
//   then steps, at most kMaxSteps:
//     op            op % (number of functions + number of statements):
//                   a function of runs::function_specs(), in its order, or a
//                   statement of kStatements
//     for a function:
//       shape       where the call is made (Shape below): shape & 3; with bit 7
//                   set, one more byte n, and the (n+1)-th memory allocation
//                   SQLite makes during the call fails (out-of-memory testing)
//       argc        min_args + argc % (max_args - min_args + 2): one more than
//                   the function takes, to exercise SQLite's arity check too
//       argc args   each a kind byte (Arg below) and its payload
// A missing byte reads as 0, so every input decodes. The seed corpus and the
// dictionary are written by make_corpus.py from this binary's function table
// and its statements and words (RUNS_FUZZ_LIST_TABLES=1 prints them);
// fuzz.corpus_is_current checks that they match them.
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
//     a result code that docs/functions/ documents (NOMEM too when an
//     allocation was made to fail) and a message "name(): ..." that goes on in
//     lowercase; or SQLite's own "wrong number of arguments to function
//     name()" for an arity the function does not take. Never "no such
//     function": every name is registered;
//   - when an allocation failed inside the caller's own transaction, SQLite may
//     roll that transaction back: then only "autocommit, no transaction open"
//     is checked;
//   - when an allocation failed and the call left its own transaction open (a
//     known problem, docs/reliability.md), ROLLBACK restores the database;
//   - a function call that succeeded (its result read from the row, or from
//     fuzz_sink for INSERT ... SELECT) returned a type that its page documents
//     for that number of arguments (TEXT (JSON): valid JSON), the exact result
//     its rule in kRules derives from the runs before and after the call, and
//     did not change the caller's last_insert_rowid();
// and at the end sqlite3_close() succeeds (no statement left unfinalized).
// A violation prints what happened and aborts, which libFuzzer reports as a
// crash, with the input saved.
//
// RUNS_FUZZ_TRACE=1 in the environment prints every step and its outcome:
//   RUNS_FUZZ_TRACE=1 build/test-sanitize/tests/fuzz/runs_fuzz tests/fuzz/corpus/lifecycle
#include <sanitizer/common_interface_defs.h>
#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "extension_table.h"

extern "C" int sqlite3_runs_init(sqlite3* db, char** error_message,
                                 const sqlite3_api_routines* api);

namespace {

constexpr int kMaxSteps = 48;
constexpr std::size_t kMiB = 1024 * 1024;

// What a function's page documents for one number of arguments: the types of
// its result ("→ INTEGER or NULL"), and whether a TEXT is JSON ("TEXT (JSON)").
struct Documented {
  std::set<int> types;  // SQLITE_INTEGER, SQLITE_TEXT, SQLITE_NULL
  bool json = false;
};

// A function of the extension: its name and arities from
// runs::function_specs(), its result types from its page.
struct Function {
  std::string name;
  int min_args;
  int max_args;
  std::map<int, Documented> documented;  // by number of arguments
};

// Filled once, in LLVMFuzzerInitialize().
std::vector<Function> g_functions;
std::set<int> g_documented_codes;  // every result code docs/functions/ gives
std::set<int> g_documented_primaries;  // and their primary codes

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

// One argument, decoded from a kind byte and its payload.
struct Arg {
  enum Kind { kNull, kInteger, kReal, kText, kBlob } kind = kNull;
  sqlite3_int64 integer = 0;
  double real = 0;
  std::string bytes;
};

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

Arg text_value(const std::string& text) {
  Arg arg;
  arg.kind = Arg::kText;
  arg.bytes = text;
  return arg;
}

Arg integer_value(sqlite3_int64 value) {
  Arg arg;
  arg.kind = Arg::kInteger;
  arg.integer = value;
  return arg;
}

// A column value: its text (as SQLite converts it), or nothing for NULL.
using Cell = std::optional<std::string>;
using Row = std::vector<Cell>;

// Every row of a statement that must succeed, with `params` bound to ?1, ?2, ...
std::vector<Row> select(sqlite3* db, const std::string& sql, const std::vector<Arg>& params = {}) {
  sqlite3_stmt*& stmt = g_statements[sql];
  if (stmt == nullptr && sqlite3_prepare_v3(db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt,
                                            nullptr) != SQLITE_OK) {
    fail("cannot prepare " + sql + ": " + sqlite3_errmsg(db));
  }
  for (std::size_t i = 0; i < params.size(); ++i) bind(stmt, static_cast<int>(i) + 1, params[i]);
  std::vector<Row> rows;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    Row row;
    for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
      if (text == nullptr) {
        row.emplace_back();
      } else {
        row.emplace_back(std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt, i))));
      }
    }
    rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) fail("cannot run " + sql + ": " + sqlite3_errmsg(db));
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return rows;
}

// The one value of a statement that returns one row of one column.
Cell select_value(sqlite3* db, const std::string& sql, const std::vector<Arg>& params = {}) {
  const std::vector<Row> rows = select(db, sql, params);
  check(rows.size() == 1 && rows[0].size() == 1, sql + ": not one value");
  return rows[0][0];
}

// Every row of a statement that must succeed, as text, columns separated by |.
std::vector<std::string> query(sqlite3* db, const std::string& sql) {
  std::vector<std::string> out;
  for (const Row& row : select(db, sql)) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (i > 0) line += '|';
      line += row[i].value_or("NULL");
    }
    out.push_back(std::move(line));
  }
  return out;
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

// The texts of argument kind 11.
const std::string kWords[] = {
    "", "k", "full", "api", "pending", "running", "completed", "failed", "cancelled",
    "\xc3\xa9", "\xff\xfe", "\xc3\x28", "\xed\xa0\x80", "'; DROP TABLE runs; --", "%s%n"};

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

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

// ---- What the docs say --------------------------------------------------

const std::string kFunctionDocs = std::string(RUNS_SOURCE_DIR) + "/docs/functions/";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The signature block at the top of docs/functions/NAME.md, one line per
// number of arguments, "NAME(arg TYPE, ...) → TYPE or TYPE" (its form is
// checked by tests/python/test_api_surface.py): the result types by number of
// arguments, which must be the arities the function is registered with.
std::map<int, Documented> documented_results(const runs_fuzz::ExtensionFunction& function) {
  const std::string path = kFunctionDocs + function.name + ".md";
  std::istringstream page(read_file(path));
  const std::string open = function.name + "(";
  const std::string arrow = ") \xe2\x86\x92 ";
  std::map<int, Documented> out;
  std::string line;
  int fences = 0;
  while (fences < 2 && std::getline(page, line)) {
    if (starts_with(line, "```")) {
      ++fences;
      continue;
    }
    if (fences == 0) continue;
    const std::size_t at = line.rfind(arrow);
    check(starts_with(line, open) && at != std::string::npos, path + ": not a signature: " + line);
    const std::string params = line.substr(open.size(), at - open.size());
    const int argc = params.empty() ? 0 : 1 + static_cast<int>(std::count(params.begin(), params.end(), ','));
    Documented& documented = out[argc];
    const std::string types = line.substr(at + arrow.size()) + " or ";
    for (std::size_t from = 0, to = 0; (to = types.find(" or ", from)) != std::string::npos; from = to + 4) {
      const std::string type = types.substr(from, to - from);
      if (type == "INTEGER") {
        documented.types.insert(SQLITE_INTEGER);
      } else if (type == "TEXT") {
        documented.types.insert(SQLITE_TEXT);
      } else if (type == "TEXT (JSON)") {
        documented.types.insert(SQLITE_TEXT);
        documented.json = true;
      } else if (type == "NULL") {
        documented.types.insert(SQLITE_NULL);
      } else {
        fail(path + ": a result type runs_fuzz.cpp does not know: " + type);
      }
    }
  }
  for (int argc = function.min_args; argc <= function.max_args; ++argc) {
    check(out.count(argc) == 1, path + ": no signature with " + std::to_string(argc) + " arguments");
  }
  check(out.size() == static_cast<std::size_t>(function.max_args - function.min_args + 1),
        path + ": a signature with a number of arguments the function is not registered with");
  return out;
}

// Every result code that the pages of docs/functions/ give ("`SQLITE_BUSY` (5)").
std::set<int> documented_codes() {
  std::set<int> codes;
  const std::regex code("`SQLITE_[A-Z_]+` \\(([0-9]+)\\)");
  for (const auto& entry : std::filesystem::directory_iterator(kFunctionDocs)) {
    if (entry.path().extension() != ".md") continue;
    const std::string page = read_file(entry.path().string());
    for (std::sregex_iterator it(page.begin(), page.end(), code), end; it != end; ++it) {
      codes.insert(std::stoi((*it)[1].str()));
    }
  }
  check(codes.count(SQLITE_ERROR) == 1, kFunctionDocs + ": no result codes found");
  return codes;
}

// ---- The runs around a call ---------------------------------------------

// A run as the runs table holds it.
struct Run {
  std::string status;
  std::string key;
  bool cancel_requested = false;
};

bool is_active(const Run& run) { return run.status == "pending" || run.status == "running"; }

// Every run by id; none without a runs table.
std::map<sqlite3_int64, Run> read_runs(sqlite3* db) {
  std::map<sqlite3_int64, Run> runs;
  if (!table_exists(db, "runs")) return runs;
  for (const Row& row : select(db, "SELECT id, status, concurrency_key, cancel_requested_at IS NOT NULL"
                                   " FROM main.runs NOT INDEXED")) {
    runs[std::stoll(row[0].value())] = Run{row[1].value_or("NULL"), row[2].value_or("NULL"), row[3] == "1"};
  }
  return runs;
}

// What a call started from.
struct Before {
  std::map<sqlite3_int64, Run> runs;
  std::string dump;

  std::vector<sqlite3_int64> ids() const {
    std::vector<sqlite3_int64> out;
    for (const auto& [id, run] : runs) out.push_back(id);
    return out;
  }
  // The active run of `key`, or nothing.
  std::optional<sqlite3_int64> active(const std::string& key) const {
    for (const auto& [id, run] : runs) {
      if (run.key == key && is_active(run)) return id;
    }
    return std::nullopt;
  }
};

// A successful call's value.
struct Value {
  int type = SQLITE_NULL;
  std::string text;  // as SQLite converts it to text; empty for NULL
};

// ---- Failed calls -------------------------------------------------------

// The error of a failed call: a documented code, and a message naming the function.
void check_error(const Function& function, Shape shape, int argc, int code, const std::string& message) {
  const std::string& name = function.name;
  // PRAGMA query_only refuses the INSERT around the call before the call.
  if (shape == kInsertSelect && code == SQLITE_READONLY &&
      message == "attempt to write a readonly database") {
    return;
  }
  const int primary = code & 0xff;
  if (g_allocation_failed) {
    // SQLite may lose the message itself when an allocation fails ("out of
    // memory", or "SQL logic error" when it cannot copy the function's text),
    // and the extended code with it.
    check(primary == SQLITE_NOMEM || g_documented_primaries.count(primary) == 1,
          name + ": result code " + std::to_string(code) +
              " (out of memory), which docs/functions/ does not document: " + message);
    return;
  }
  check(g_documented_codes.count(code) == 1,
        name + ": result code " + std::to_string(code) + ", which docs/functions/ does not document: " + message);
  if (argc < function.min_args || argc > function.max_args) {
    check(message == "wrong number of arguments to function " + name + "()",
          name + " with " + std::to_string(argc) + " arguments: " + message);
    return;
  }
  const std::string prefix = name + "(): ";
  check(starts_with(message, prefix) && message.size() > prefix.size() &&
            !std::isupper(static_cast<unsigned char>(message[prefix.size()])),
        name + ": a message that does not start with \"" + prefix + "\" and a lowercase word: " + message);
}

// ---- Successful calls: what each function must have returned -------------

// One successful call, for its rule.
struct Call {
  sqlite3* db;
  const Function& function;
  const std::vector<Arg>& args;
  const Before& before;
  Value value;
  std::string shown;  // the call with its arguments
  bool inserted;      // made in INSERT INTO fuzz_sink SELECT: fuzz_sink has one row more

  void expect(bool ok, const std::string& what) const {
    check(ok, shown + " returned " + (value.type == SQLITE_NULL ? "NULL" : value.text) + ": " + what);
  }
  bool returned(const char* text) const { return value.type == SQLITE_TEXT && value.text == text; }
  sqlite3_int64 integer() const { return std::stoll(value.text); }
  // Argument i as the integer the function took it for: it succeeded, so it
  // took one (a REAL with an integral value, or a TEXT that converts).
  sqlite3_int64 integer_arg(std::size_t i) const {
    // CAST(real AS NUMERIC) keeps a REAL.
    const std::vector<Row> rows = select(db,
                                         "SELECT x, typeof(x) FROM (SELECT CASE typeof(?1) WHEN 'real'"
                                         " THEN CAST(?1 AS INTEGER) ELSE CAST(?1 AS NUMERIC) END AS x)",
                                         {args.at(i)});
    expect(rows[0][1] == "integer", "argument " + std::to_string(i + 1) + " is not an integer");
    return std::stoll(rows[0][0].value());
  }
  // Argument i as text, or `otherwise` when the call did not pass it.
  std::string text_arg(std::size_t i, const std::string& otherwise) const {
    return i < args.size() ? args[i].bytes : otherwise;
  }
  // Run `id` after the call, or nothing.
  std::optional<Run> run(sqlite3_int64 id) const {
    const auto runs = read_runs(db);
    const auto found = runs.find(id);
    if (found == runs.end()) return std::nullopt;
    return found->second;
  }
  // One value of SQL about the call's result, ?1 the result as text.
  Cell ask(const std::string& sql, std::vector<Arg> more = {}) const {
    more.insert(more.begin(), text_value(value.text));
    return select_value(db, sql, more);
  }
  void unchanged() const {
    // fuzz_sink comes last in a dump.
    const auto without_sink = [](const std::string& all) { return all.substr(0, all.find("table fuzz_sink\n")); };
    const std::string now = dump(db);
    expect(inserted ? without_sink(now) == without_sink(before.dump) : now == before.dump,
           "but changed the database");
  }
};

// mark_run_running(), complete_run(), fail_run(), cancel_run() and
// update_run_progress() on run `id` (argument 1): 'not_found' when no run had
// it, 'not_in_expected_state' when it was in none of `from`, both writing
// nothing; else 'updated', the run now `to` (nullptr: as it was), or, for
// cancel_run(), 'cancel_requested' from a running run's owner that lives in
// another process: the run as it was, with cancel_requested_at set. Returns
// the run's status before the call when it was 'updated'.
std::optional<std::string> check_transition(const Call& call, std::initializer_list<const char*> from,
                                            const char* to) {
  const sqlite3_int64 id = call.integer_arg(0);
  const auto found = call.before.runs.find(id);
  if (found == call.before.runs.end()) {
    call.expect(call.returned("not_found"), "no run had this id");
    call.unchanged();
    return std::nullopt;
  }
  const std::string status = found->second.status;
  if (std::none_of(from.begin(), from.end(), [&](const char* s) { return status == s; })) {
    call.expect(call.returned("not_in_expected_state"), "the run was " + status);
    call.unchanged();
    return std::nullopt;
  }
  const std::optional<Run> after = call.run(id);
  call.expect(after.has_value(), "the run is gone");
  if (call.function.name == "cancel_run" && status == "running" && call.returned("cancel_requested")) {
    call.expect(after->status == status && after->cancel_requested, "the run is " + after->status);
    return std::nullopt;
  }
  call.expect(call.returned("updated"), "the run was " + status);
  call.expect(after->status == (to != nullptr ? to : status.c_str()), "the run is " + after->status);
  return status;
}

// start_run() and try_start_run() started a run of `key`: the key's active
// run before the call, if any, was abandoned, and has been failed.
bool earlier_run_failed(const Call& call, const std::string& key) {
  const auto earlier = call.before.active(key);
  if (!earlier) return true;
  const std::optional<Run> run = call.run(*earlier);
  return run && run->status == "failed";
}

// What every function of the extension returns, from the runs before and
// after the call. A function without a rule is checked against the result
// type its page documents only.
const std::map<std::string, std::function<void(const Call&)>> kRules = {
    {"start_run",
     [](const Call& call) {
       // A new pending run with the arguments, the only active one of its
       // key: the key's earlier active run, if any, was abandoned and failed.
       const sqlite3_int64 id = call.integer();
       call.expect(call.before.runs.count(id) == 0, "an id that existed");
       const std::string key = call.text_arg(2, "");
       Arg lease;
       if (call.args.size() > 3) lease = call.args[3];
       call.expect(select_value(call.db,
                                "SELECT status = 'pending' AND scope = ?1 AND triggered_by = ?2 AND"
                                " concurrency_key = ?3 AND lease_seconds IS CAST(?4 AS NUMERIC)"
                                " FROM main.runs WHERE id = ?5",
                                {call.args[0], text_value(call.text_arg(1, "api")), text_value(key), lease,
                                 integer_value(id)}) == "1",
                   "the run does not hold its arguments, or is not pending");
       call.expect(earlier_run_failed(call, key), "the key's earlier run is still active");
     }},
    {"try_start_run",
     [](const Call& call) {
       // {"started", "id", "scope", "status", "since"}: a new run as
       // start_run() makes it, or the key's active run, nothing written.
       call.expect(call.ask("SELECT json_valid(?1) AND json_type(?1, '$.started') IN ('true', 'false')") == "1",
                   "not the documented JSON object");
       const sqlite3_int64 id = std::stoll(call.ask("SELECT json_extract(?1, '$.id')").value_or("0"));
       const std::string key = call.text_arg(2, "");
       const std::optional<Run> run = call.run(id);
       call.expect(run && call.ask("SELECT json_extract(?1, '$.status')") == run->status,
                   "the status of no run");
       if (call.ask("SELECT json_extract(?1, '$.started')") == "1") {
         call.expect(call.before.runs.count(id) == 0 && run->status == "pending" && run->key == key,
                     "not a new pending run of the key");
         call.expect(earlier_run_failed(call, key), "the key's earlier run is still active");
       } else {
         call.expect(call.before.active(key) == id, "not the key's active run");
         call.unchanged();
       }
     }},
    {"active_run",
     [](const Call& call) {
       const auto active = call.before.active(call.text_arg(0, ""));
       call.expect(active ? call.value.type == SQLITE_INTEGER && call.integer() == *active
                          : call.value.type == SQLITE_NULL,
                   "not the key's active run");
       call.unchanged();
     }},
    {"mark_run_running", [](const Call& call) { check_transition(call, {"pending"}, "running"); }},
    {"complete_run", [](const Call& call) { check_transition(call, {"running"}, "completed"); }},
    {"fail_run",
     [](const Call& call) {
       if (!check_transition(call, {"pending", "running"}, "failed")) return;
       call.expect(select_value(call.db, "SELECT error_message IS ?1 FROM main.runs WHERE id = ?2",
                                {call.args[1], integer_value(call.integer_arg(0))}) == "1",
                   "error_message is not the argument");
     }},
    {"cancel_run", [](const Call& call) { check_transition(call, {"pending", "running"}, "cancelled"); }},
    {"update_run_progress",
     [](const Call& call) {
       if (!check_transition(call, {"pending", "running"}, nullptr)) return;
       call.expect(select_value(call.db,
                                "SELECT progress_current = CAST(?1 AS NUMERIC) AND"
                                " progress_total IS CAST(?2 AS NUMERIC) AND current_step IS ?3"
                                " FROM main.runs WHERE id = ?4",
                                {call.args[1], call.args[2], call.args[3], integer_value(call.integer_arg(0))}) ==
                       "1",
                   "the progress is not the arguments");
     }},
    {"heartbeat_run",
     [](const Call& call) {
       const auto found = call.before.runs.find(call.integer_arg(0));
       if (found == call.before.runs.end() || !is_active(found->second)) {
         call.expect(call.returned("lost"), "no active run had this id");
         call.unchanged();
       } else {
         call.expect(call.returned(found->second.cancel_requested ? "cancel_requested" : "ok"),
                     "the run was active");
       }
     }},
    {"reap_stale_runs",
     [](const Call& call) {
       // How many active runs it failed.
       sqlite3_int64 failed = 0;
       for (const auto& [id, run] : call.before.runs) {
         if (is_active(run) && call.run(id)->status == "failed") ++failed;
       }
       call.expect(call.integer() == failed, std::to_string(failed) + " runs were failed");
     }},
    {"run_status",
     [](const Call& call) {
       const auto found = call.before.runs.find(call.integer_arg(0));
       call.expect(found == call.before.runs.end() ? call.value.type == SQLITE_NULL
                                                   : call.returned(found->second.status.c_str()),
                   "not the run's status");
       call.unchanged();
     }},
    {"run_info",
     [](const Call& call) {
       const sqlite3_int64 id = call.integer_arg(0);
       const auto found = call.before.runs.find(id);
       if (found == call.before.runs.end()) {
         call.expect(call.value.type == SQLITE_NULL, "no run had this id");
       } else {
         call.expect(call.ask("SELECT json_valid(?1) AND json_extract(?1, '$.id') = ?2 AND"
                              " json_extract(?1, '$.status') = ?3",
                              {integer_value(id), text_value(found->second.status)}) == "1",
                     "not the run's id and status");
       }
       call.unchanged();
     }},
    {"runs_migrate",
     [](const Call& call) {
       call.expect(call.integer() == runs_fuzz::latest_schema_version(), "not the latest schema version");
       call.expect(select_value(call.db, "SELECT max(version) FROM main.runs_schema_migrations") == call.value.text,
                   "not the version the database records");
     }},
    {"runs_check",
     [](const Call& call) {
       // A database the functions wrote has nothing wrong with it: it is ok
       // exactly when it is migrated.
       const bool migrated =
           table_exists(call.db, "runs_schema_migrations") &&
           select_value(call.db, "SELECT max(version) FROM main.runs_schema_migrations") ==
               std::to_string(runs_fuzz::latest_schema_version());
       call.expect(call.ask("SELECT json_type(?1, '$.ok') = ?2 AND"
                            " (json_array_length(?1, '$.problems') = 0) = json_extract(?1, '$.ok')",
                            {text_value(migrated ? "true" : "false")}) == "1",
                   "ok is not whether the database is migrated, or disagrees with the problems");
       call.unchanged();
     }},
    {"runs_owner_pid", [](const Call& call) { call.expect(call.integer() == call.integer_arg(0), "not the pid"); }},
    {"runs_busy_timeout",
     [](const Call& call) { call.expect(call.integer() == call.integer_arg(0), "not the timeout"); }},
    {"runs_version",
     [](const Call& call) { call.expect(call.value.text == runs_fuzz::library_version(), "not the version"); }},
    {"runs_debug",
     [](const Call& call) {
       call.expect(call.ask("SELECT json_extract(?1, '$.version')") == runs_fuzz::library_version(),
                   "not the library's version");
     }},
};

void check_result(const Call& call) {
  const auto documented = call.function.documented.find(static_cast<int>(call.args.size()));
  call.expect(documented != call.function.documented.end(), "with a number of arguments it does not take");
  call.expect(documented->second.types.count(call.value.type) == 1,
              "a type (" + std::to_string(call.value.type) + ") that docs/functions/" + call.function.name +
                  ".md does not document");
  if (documented->second.json && call.value.type == SQLITE_TEXT) {
    call.expect(call.ask("SELECT json_valid(?1)") == "1", "not JSON");
  }
  const auto rule = kRules.find(call.function.name);
  if (rule != kRules.end()) rule->second(call);
}

void call_function(sqlite3* db, Reader& in, const Function& function, const Before& before) {
  const uint8_t shape_byte = in.byte();
  const auto shape = static_cast<Shape>(shape_byte & 3);
  const int fail_allocation = (shape_byte & 0x80) != 0 ? 1 + in.byte() : 0;
  const int argc = function.min_args + in.byte() % (function.max_args - function.min_args + 2);
  std::vector<Arg> args;
  for (int i = 0; i < argc; ++i) args.push_back(read_arg(in, before.ids()));

  std::string call = function.name + "(";
  std::string shown = call;
  for (int i = 0; i < argc; ++i) {
    call += (i > 0 ? ", ?" : "?") + std::to_string(i + 1);
    shown += (i > 0 ? ", " : "") + describe(args[static_cast<std::size_t>(i)]);
  }
  call += ")";
  shown += ")";
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

  sqlite3_stmt* reader = nullptr;
  if (shape == kWhileReading) {
    check(sqlite3_prepare_v2(db, "SELECT x FROM fuzz_one_row", -1, &reader, nullptr) == SQLITE_OK &&
              sqlite3_step(reader) == SQLITE_ROW,
          "cannot start the reader");
  }
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
  std::string message;
  Value value;
  bool got_row = false;
  if (rc == SQLITE_OK) {
    for (int i = 0; i < argc; ++i) bind(stmt, i + 1, args[static_cast<std::size_t>(i)]);
    g_allocation_failed = false;
    g_fail_countdown = fail_allocation;
    rc = sqlite3_step(stmt);
    g_fail_countdown = 0;
    if (rc == SQLITE_ROW) {
      got_row = true;
      value.type = sqlite3_column_type(stmt, 0);
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      if (text != nullptr) value.text.assign(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt, 0)));
      rc = sqlite3_step(stmt);
      check(rc != SQLITE_ROW, sql + " returned two rows");
    }
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
  }
  if (rc != SQLITE_OK) {
    rc = sqlite3_extended_errcode(db);
    message = sqlite3_errmsg(db);
  }
  sqlite3_finalize(stmt);
  sqlite3_finalize(reader);
  if (rc == SQLITE_OK && shape == kInsertSelect) {
    // The value went into fuzz_sink, as its last row.
    const Row row = select(db, "SELECT typeof(x), x FROM main.fuzz_sink ORDER BY rowid DESC LIMIT 1").at(0);
    static const std::map<std::string, int> kTypes = {{"integer", SQLITE_INTEGER}, {"real", SQLITE_FLOAT},
                                                      {"text", SQLITE_TEXT}, {"blob", SQLITE_BLOB},
                                                      {"null", SQLITE_NULL}};
    got_row = true;
    value.type = kTypes.at(row[0].value());
    value.text = row[1].value_or("");
  }
  if (kTrace) {
    std::fprintf(stderr, "%s%s%s -> %s\n", shape == kWhileReading ? "(while reading) " : "",
                 g_allocation_failed ? "(out of memory) " : "",
                 (shape == kFromTable ? shown + " FROM fuzz_one_row"
                                      : shape == kInsertSelect ? "INSERT ... SELECT " + shown : shown)
                     .c_str(),
                 rc != SQLITE_OK ? (std::to_string(rc) + " " + message).c_str()
                 : value.type == SQLITE_NULL ? "NULL"
                                             : value.text.c_str());
  }

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
    check(dump(db) == before.dump, "ROLLBACK after " + sql + " left its transaction open: changes remain");
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
    check(caller_rolled_back || dump(db) == before.dump,
          sql + " failed (" + message + ") but changed the database");
  } else {
    check(got_row, sql + " returned no row");
    check_result(Call{db, function, args, before, value, shown, shape == kInsertSelect});
  }
  if (shape != kInsertSelect) {
    check(sqlite3_last_insert_rowid(db) == rowid_before, sql + " changed last_insert_rowid()");
  }
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
  const auto functions = runs_fuzz::extension_functions();
  if (std::getenv("RUNS_FUZZ_LIST_TABLES") != nullptr) {
    // The tables make_corpus.py encodes the seed corpus with.
    for (const auto& function : functions) {
      std::printf("function %s %d %d\n", function.name.c_str(), function.min_args, function.max_args);
    }
    for (const char* statement : kStatements) std::printf("statement %s\n", statement);
    for (const std::string& word : kWords) {
      std::printf("word ");
      for (const char c : word) std::printf("%02x", static_cast<unsigned char>(c));
      std::printf("\n");
    }
    std::exit(0);
  }
  for (const auto& function : functions) {
    g_functions.push_back({function.name, function.min_args, function.max_args, documented_results(function)});
  }
  g_documented_codes = documented_codes();
  for (const int code : g_documented_codes) g_documented_primaries.insert(code & 0xff);
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
    const int function_count = static_cast<int>(g_functions.size());
    const int op = in.byte() % (function_count + kStatementCount);
    if (op < function_count) {
      call_function(db, in, g_functions[static_cast<std::size_t>(op)], Before{read_runs(db), dump(db)});
    } else {
      const int rc = exec(db, kStatements[op - function_count]);
      if (kTrace) std::fprintf(stderr, "%s -> %d\n", kStatements[op - function_count], rc);
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
