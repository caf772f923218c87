// The schema migrations embedded from sql/ at build time.
#pragma once

#include <span>

namespace runs {

struct Migration {
  int version;       // NNN of sql/NNN_name.sql: 1, 2, 3, ... without gaps
  const char* name;  // "NNN_name", as recorded in runs_schema_migrations
  const char* sql;   // the file's text, run as is
};

// Every migration in version order. Defined in the generated
// migrations_generated.cpp (cmake/embed_migrations.cmake).
std::span<const Migration> migrations();

}  // namespace runs
