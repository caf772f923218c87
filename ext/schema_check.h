// runs::schema_problems(): what a database's runs schema lacks, compared with
// what the migrations of sql/ create. The migrations are the one statement of
// the schema: they are applied to a fresh in-memory database, and its objects
// are the reference.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "sqlite.h"

namespace runs {

struct SchemaProblem {
  std::string message;                // e.g. "trigger runs_delete_guard (migration 004) is missing"
  std::optional<std::string> repair;  // SQL that restores it, where it can be restored
};

// The objects that migrations 1..`version` create (tables with their columns,
// indexes, triggers) that the main database of `db` lacks or holds in another
// form. Throws Error when the reference cannot be built.
std::vector<SchemaProblem> schema_problems(sqlite3* db, int version);

}  // namespace runs
