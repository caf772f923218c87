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

}  // namespace runs
