// What the fuzzer takes from the extension itself rather than from a copy:
// the functions it registers (runs::function_specs(), the one list the
// extension registers from), the schema version its embedded migrations
// reach, and its version string.
//
// extension_table.cpp is compiled as ext/ is (its headers see SQLite through
// sqlite3ext.h), so that runs_fuzz.cpp, which calls SQLite directly through
// <sqlite3.h>, includes nothing of ext/.
#pragma once

#include <string>
#include <vector>

namespace runs_fuzz {

struct ExtensionFunction {
  std::string name;
  int min_args;
  int max_args;
};

// Every SQL function of the extension, in the order of runs::function_specs().
std::vector<ExtensionFunction> extension_functions();

// The version of the last embedded migration: what runs_migrate() returns.
int latest_schema_version();

// What runs_version() returns.
std::string library_version();

}  // namespace runs_fuzz
