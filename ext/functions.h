// The SQL functions: their names, arities and flags, and their adapters.
#pragma once

#include <memory>
#include <span>

#include "run_store.h"

namespace runs {

class Call;

struct FunctionSpec {
  const char* name;
  int min_args;
  int max_args;
  int flags;  // SQLITE_UTF8 plus SQLITE_DIRECTONLY, or INNOCUOUS [|DETERMINISTIC]
  void (*body)(Call& call);
};

// Every function the extension registers, in the order of docs/functions/.
std::span<const FunctionSpec> function_specs();

// Registers `spec` for each of its arities on `db`, each registration holding
// a reference to `store`. Returns a SQLite result code.
int register_function(sqlite3* db, const FunctionSpec& spec, const std::shared_ptr<RunStore>& store);

// The busy handler state of an earlier load of the library on `db`, or
// nothing. SQLite may hold a pointer to it (runs_busy_timeout() installed
// it), so a new load adopts it before its registrations replace the earlier
// ones: the timeout set stays in force and the state lives until the
// connection closes. Asked through the earlier load's runs_busy_timeout(),
// with a pointer that SQL cannot forge (sqlite3_bind_pointer).
std::shared_ptr<BusyHandler> earlier_busy_handler(sqlite3* db) noexcept;

}  // namespace runs
