// The function adapters: each checks its arguments, calls the RunStore and
// sets the result. dispatch() is the only entry from SQLite; it catches every
// exception, so none crosses into SQLite, and turns an Error into
// "name(): message" with the Error's result code (a nested call's error,
// already so named, is passed on as it is).
#include "functions.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <new>
#include <string>

#include "build_info.h"
#include "clock.h"
#include "enum_table.h"
#include "version.h"

namespace runs {
namespace {

// Longest accepted texts, in bytes.
constexpr std::size_t kMaxNameBytes = 1024;             // scope, triggered_by, key, step
constexpr std::size_t kMaxMessageBytes = 1024 * 1024;  // error_message
// The pointer type of earlier_busy_handler()'s handshake. A new layout of
// BusyHandler needs a new name.
constexpr const char* kBusyHandlerHandover = "sqlite-runs BusyHandler v1";

struct Registration {
  const FunctionSpec* spec;
  std::shared_ptr<RunStore> store;
};

// What the transitions and heartbeat_run() return.
constexpr auto kTransitionText = enum_table<Transition, const char*>({
    {Transition::kUpdated, "updated"},
    {Transition::kNotFound, "not_found"},
    {Transition::kNotInExpectedState, "not_in_expected_state"},
    {Transition::kCancelRequested, "cancel_requested"},
});
constexpr auto kHeartbeatText = enum_table<Heartbeat, const char*>({
    {Heartbeat::kOk, "ok"},
    {Heartbeat::kCancelRequested, "cancel_requested"},
    {Heartbeat::kLost, "lost"},
});

const char* type_name(sqlite3_value* value) {
  switch (sqlite3_value_type(value)) {
    case SQLITE_INTEGER:
      return "integer";
    case SQLITE_FLOAT:
      return "real";
    case SQLITE_TEXT:
      return "text";
    case SQLITE_BLOB:
      return "blob";
    default:
      return "NULL";
  }
}

}  // namespace

// One call of a SQL function: its arguments, checked on the way in, and its
// result.
class Call {
 public:
  Call(sqlite3_context* ctx, int argc, sqlite3_value** argv, RunStore& store) noexcept
      : ctx_(ctx), argc_(argc), argv_(argv), store_(store) {}

  int argc() const noexcept { return argc_; }
  RunStore& store() noexcept { return store_; }
  bool is_null(int i) const noexcept { return sqlite3_value_type(argv_[i]) == SQLITE_NULL; }
  // Argument i as a pointer of `type` bound with sqlite3_bind_pointer(), or
  // nullptr: SQL itself cannot make one.
  void* pointer(int i, const char* type) const noexcept {
    return sqlite3_value_pointer(argv_[i], type);
  }

  enum class Empty { kRefused, kAllowed };

  // Argument i as text of at most max_bytes bytes.
  std::string_view text(int i, const char* name, Empty empty,
                        std::size_t max_bytes = kMaxNameBytes) const {
    sqlite3_value* value = argv_[i];
    if (sqlite3_value_type(value) != SQLITE_TEXT) {
      throw Error(SQLITE_ERROR,
                  std::string(name) + " must be text, got " + type_name(value));
    }
    const auto* data = reinterpret_cast<const char*>(sqlite3_value_text(value));
    if (data == nullptr) throw std::bad_alloc();
    const auto size = static_cast<std::size_t>(sqlite3_value_bytes(value));
    if (size == 0 && empty == Empty::kRefused) {
      throw Error(SQLITE_ERROR, std::string(name) + " must not be empty");
    }
    if (size > max_bytes) {
      throw Error(SQLITE_TOOBIG, std::string(name) + " is too long (" + std::to_string(size) +
                                     " bytes, at most " + std::to_string(max_bytes) + ")");
    }
    return {data, size};
  }

  // Argument i as an integer: an INTEGER, or a value that a column of INTEGER
  // affinity would store as one. A REAL with an integral value (JavaScript
  // drivers bind every number as REAL), and a TEXT that SQLite's own numeric
  // conversion turns into an integer ('42', ' 42 ', '4.2e1': Perl's DBI and
  // PHP bind numbers from strings as text) are accepted; other text is not.
  sqlite3_int64 integer(int i, const char* name) const {
    sqlite3_value* value = argv_[i];
    switch (sqlite3_value_type(value)) {
      case SQLITE_INTEGER:
        return sqlite3_value_int64(value);
      case SQLITE_FLOAT: {
        const double real = sqlite3_value_double(value);
        if (const auto exact = exact_integer(real)) return *exact;
        char shortest[32];
        const auto end = std::to_chars(shortest, shortest + sizeof shortest, real).ptr;
        const std::string shown(shortest, end);
        if (std::trunc(real) != real) {
          throw Error(SQLITE_ERROR, std::string(name) + " must be an integer, got real " + shown);
        }
        throw Error(SQLITE_ERROR, std::string(name) + " is out of the 64-bit integer range, got real " + shown);
      }
      case SQLITE_TEXT:
        if (const auto converted = store_.integer_affinity(value)) return *converted;
        [[fallthrough]];
      default:
        throw Error(SQLITE_ERROR,
                    std::string(name) + " must be an integer, got " + type_name(value));
    }
  }

  sqlite3_int64 count(int i, const char* name) const {
    const sqlite3_int64 n = integer(i, name);
    if (n < 0) {
      throw Error(SQLITE_ERROR,
                  std::string(name) + " must not be negative, got " + std::to_string(n));
    }
    return n;
  }

  void result(sqlite3_int64 value) noexcept { sqlite3_result_int64(ctx_, value); }
  void result(std::optional<sqlite3_int64> value) noexcept {
    if (value) {
      sqlite3_result_int64(ctx_, *value);
    } else {
      sqlite3_result_null(ctx_);
    }
  }
  void result(const std::optional<std::string>& text) noexcept {
    if (text) {
      sqlite3_result_text(ctx_, text->data(), static_cast<int>(text->size()), SQLITE_TRANSIENT);
    } else {
      sqlite3_result_null(ctx_);
    }
  }
  void result(const char* static_text) noexcept {
    sqlite3_result_text(ctx_, static_text, -1, SQLITE_STATIC);
  }
  void result(Transition transition) noexcept { result(kTransitionText[transition]); }
  void result(Heartbeat heartbeat) noexcept { result(kHeartbeatText[heartbeat]); }

 private:
  sqlite3_context* ctx_;
  int argc_;
  sqlite3_value** argv_;
  RunStore& store_;
};

namespace {

using Empty = Call::Empty;

// start_run() and try_start_run() take the same arguments.
StartRequest start_request(const Call& call) {
  StartRequest request{call.text(0, "scope", Empty::kRefused), "api", "", std::nullopt};
  if (call.argc() > 1) request.triggered_by = call.text(1, "triggered_by", Empty::kRefused);
  if (call.argc() > 2) request.key = call.text(2, "concurrency_key", Empty::kAllowed);
  if (call.argc() > 3 && !call.is_null(3)) {
    const sqlite3_int64 lease_seconds = call.integer(3, "lease_seconds");
    if (lease_seconds < 1 || lease_seconds > kMaxLeaseSeconds) {
      throw Error(SQLITE_ERROR, "lease_seconds must be between 1 and " +
                                    std::to_string(kMaxLeaseSeconds) + " (365 days), got " +
                                    std::to_string(lease_seconds) +
                                    "; pass NULL for no time-based expiry");
    }
    request.lease_seconds = lease_seconds;
  }
  return request;
}

void start_run(Call& call) { call.result(call.store().start_run(start_request(call))); }

void try_start_run(Call& call) {
  call.result(std::optional<std::string>(call.store().try_start_run(start_request(call))));
}

void active_run(Call& call) {
  const auto key = call.argc() > 0 ? call.text(0, "concurrency_key", Empty::kAllowed) : "";
  call.result(call.store().active_run(key));
}

void mark_run_running(Call& call) {
  call.result(call.store().mark_running(call.integer(0, "id")));
}

void complete_run(Call& call) { call.result(call.store().complete(call.integer(0, "id"))); }

void fail_run(Call& call) {
  const auto id = call.integer(0, "id");
  std::optional<std::string_view> message;
  if (!call.is_null(1)) message = call.text(1, "error_message", Empty::kAllowed, kMaxMessageBytes);
  call.result(call.store().fail(id, message));
}

void cancel_run(Call& call) { call.result(call.store().cancel(call.integer(0, "id"))); }

void update_run_progress(Call& call) {
  const auto id = call.integer(0, "id");
  // current may exceed total: estimates change while a run works.
  Progress progress{call.count(1, "current"), std::nullopt, std::nullopt};
  if (!call.is_null(2)) progress.total = call.count(2, "total");
  if (!call.is_null(3)) progress.step = call.text(3, "current_step", Empty::kAllowed);
  call.result(call.store().update_progress(id, progress));
}

void heartbeat_run(Call& call) { call.result(call.store().heartbeat(call.integer(0, "id"))); }

void reap_stale_runs(Call& call) {
  std::optional<std::string_view> key;
  std::optional<sqlite3_int64> ownerless_after_seconds;
  // With two arguments, a NULL key means every key.
  if (call.argc() > 0 && !(call.argc() > 1 && call.is_null(0))) {
    key = call.text(0, "concurrency_key", Empty::kAllowed);
  }
  if (call.argc() > 1) ownerless_after_seconds = call.count(1, "ownerless_after_seconds");
  call.result(call.store().reap_stale_runs(key, ownerless_after_seconds));
}

void run_info(Call& call) { call.result(call.store().info(call.integer(0, "id"))); }

void run_status(Call& call) { call.result(call.store().status(call.integer(0, "id"))); }

void runs_migrate(Call& call) {
  call.result(static_cast<sqlite3_int64>(call.store().migrate()));
}

void runs_check(Call& call) { call.result(std::optional<std::string>(call.store().check())); }

void runs_busy_timeout(Call& call) {
  using Handover = std::shared_ptr<BusyHandler>;
  if (auto* earlier = static_cast<Handover*>(call.pointer(0, kBusyHandlerHandover))) {
    *earlier = call.store().busy_handler();
    return call.result(std::optional<sqlite3_int64>());
  }
  const auto ms = call.count(0, "ms");
  if (ms > kMaxBusyTimeoutMs) {
    throw Error(SQLITE_ERROR, "ms must be at most " + std::to_string(kMaxBusyTimeoutMs) +
                                  " (one hour), got " + std::to_string(ms));
  }
  call.result(call.store().set_busy_timeout(ms));
}

void runs_owner_pid(Call& call) {
  const sqlite3_int64 pid = call.integer(0, "pid");
  if (pid < 1) {
    throw Error(SQLITE_ERROR, "pid must be a process id (1 or more), got " + std::to_string(pid));
  }
  call.result(call.store().name_owner(pid));
}

void runs_version(Call& call) { call.result(SQLITE_RUNS_VERSION); }

void runs_debug(Call& call) { call.result(std::optional<std::string>(debug_info())); }

// Writes or reads run data: never from a trigger, view or schema default.
constexpr int kDirectOnly = SQLITE_UTF8 | SQLITE_DIRECTONLY;
constexpr int kPure = SQLITE_UTF8 | SQLITE_INNOCUOUS | SQLITE_DETERMINISTIC;
// Side-effect free but not the same in every process (it names the host's
// SQLite): innocuous, never deterministic, so that no index, generated column
// or CHECK constraint can store its value in the database file.
constexpr int kInnocuous = SQLITE_UTF8 | SQLITE_INNOCUOUS;

constexpr FunctionSpec kFunctions[] = {
    {"start_run", 1, 4, kDirectOnly, start_run},
    {"try_start_run", 1, 4, kDirectOnly, try_start_run},
    {"active_run", 0, 1, kDirectOnly, active_run},
    {"mark_run_running", 1, 1, kDirectOnly, mark_run_running},
    {"complete_run", 1, 1, kDirectOnly, complete_run},
    {"fail_run", 2, 2, kDirectOnly, fail_run},
    {"cancel_run", 1, 1, kDirectOnly, cancel_run},
    {"update_run_progress", 4, 4, kDirectOnly, update_run_progress},
    {"heartbeat_run", 1, 1, kDirectOnly, heartbeat_run},
    {"reap_stale_runs", 0, 2, kDirectOnly, reap_stale_runs},
    {"run_status", 1, 1, kDirectOnly, run_status},
    {"run_info", 1, 1, kDirectOnly, run_info},
    {"runs_migrate", 0, 0, kDirectOnly, runs_migrate},
    {"runs_check", 0, 0, kDirectOnly, runs_check},
    {"runs_owner_pid", 1, 1, kDirectOnly, runs_owner_pid},
    {"runs_busy_timeout", 1, 1, kDirectOnly, runs_busy_timeout},
    {"runs_version", 0, 0, kPure, runs_version},
    {"runs_debug", 0, 0, kInnocuous, runs_debug},
};

// How many calls of these functions are running on this thread, one inside
// another: a TEMP trigger (where SQLITE_DIRECTONLY functions may run) on the
// runs table fires inside the statement of the function that writes it.
thread_local int call_depth = 0;
// Set when a call nested in the outermost one reported an error. The
// statement that fired it then fails with that error, whose message already
// names the nested function: it is passed on as it is, not named again.
thread_local bool nested_call_failed = false;

// `message` begins with "name(): " for one of these functions.
bool names_a_function(const char* message) noexcept {
  for (const FunctionSpec& spec : kFunctions) {
    const std::size_t length = std::strlen(spec.name);
    if (std::strncmp(message, spec.name, length) == 0 &&
        std::strncmp(message + length, "(): ", 4) == 0) {
      return true;
    }
  }
  return false;
}

// Sets the error result without allocating in C++: this runs inside catch
// blocks, where a std::bad_alloc must not escape. The message gets the prefix
// "function(): ", unless it is a nested call's error passed on.
void report(sqlite3_context* ctx, const char* function, const char* message, int code) noexcept {
  const bool passed_on = nested_call_failed && names_a_function(message);
  if (call_depth > 1) nested_call_failed = true;
  char* text = passed_on ? sqlite3_mprintf("%s", message)
                         : sqlite3_mprintf("%s(): %s", function, message);
  if (text == nullptr) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  sqlite3_result_error(ctx, text, -1);  // sets SQLITE_ERROR; the code comes after
  sqlite3_free(text);
  sqlite3_result_error_code(ctx, code);
}

void dispatch(sqlite3_context* ctx, int argc, sqlite3_value** argv) noexcept {
  const auto* registration = static_cast<const Registration*>(sqlite3_user_data(ctx));
  const char* name = registration->spec->name;
  if (call_depth == 0) nested_call_failed = false;
  ++call_depth;
  struct Leave {
    ~Leave() { --call_depth; }
  } leave;
  try {
    Call call(ctx, argc, argv, *registration->store);
    registration->spec->body(call);
  } catch (const Error& error) {
    report(ctx, name, error.what(), error.code());
  } catch (const std::bad_alloc&) {
    sqlite3_result_error_nomem(ctx);
  } catch (const std::exception& error) {
    report(ctx, name, error.what(), SQLITE_INTERNAL);
  } catch (...) {
    report(ctx, name, "unexpected internal error", SQLITE_INTERNAL);
  }
}

void destroy_registration(void* registration) noexcept {
  delete static_cast<Registration*>(registration);
}

}  // namespace

std::span<const FunctionSpec> function_specs() { return kFunctions; }

int register_function(sqlite3* db, const FunctionSpec& spec,
                      const std::shared_ptr<RunStore>& store) {
  for (int args = spec.min_args; args <= spec.max_args; ++args) {
    auto* registration = new (std::nothrow) Registration{&spec, store};
    if (registration == nullptr) return SQLITE_NOMEM;
    // On failure SQLite calls destroy_registration itself.
    const int rc = sqlite3_create_function_v2(db, spec.name, args, spec.flags, registration,
                                              dispatch, nullptr, nullptr, destroy_registration);
    if (rc != SQLITE_OK) return rc;
  }
  return SQLITE_OK;
}

std::shared_ptr<BusyHandler> earlier_busy_handler(sqlite3* db) noexcept {
  std::shared_ptr<BusyHandler> earlier;
  // Neither statement reads the schema: loading the library must not parse
  // it before the functions exist (a hostile schema is refused as it loads).
  sqlite3_stmt* ask = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT runs_busy_timeout(?1)", -1, &ask, nullptr) == SQLITE_OK) {
    if (sqlite3_bind_pointer(ask, 1, &earlier, kBusyHandlerHandover, nullptr) == SQLITE_OK) {
      sqlite3_step(ask);
    }
    sqlite3_finalize(ask);
    return earlier;
  }
  // No earlier load ("no such function"). A statement that prepares clears
  // that error from the connection, so that a successful load leaves none.
  sqlite3_stmt* clear = nullptr;
  sqlite3_prepare_v2(db, "SELECT 1", -1, &clear, nullptr);
  sqlite3_finalize(clear);
  return earlier;
}

}  // namespace runs
