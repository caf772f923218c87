# Writes a C++ source holding every migration of sql/ as a raw string literal.
# Inputs: OUTPUT (the .cpp to write), SQL_DIR (the folder of NNN_name.sql files).
# A file named NNN_name.sql becomes migration NNN, called "NNN_name".
file(GLOB MIGRATIONS "${SQL_DIR}/[0-9][0-9][0-9]_*.sql")
list(SORT MIGRATIONS)
set(delimiter "sqlite_runs_sql")
set(body "")
set(previous 0)
foreach(path IN LISTS MIGRATIONS)
  get_filename_component(name "${path}" NAME_WE)
  string(REGEX MATCH "^[0-9][0-9][0-9]" digits "${name}")
  math(EXPR version "${digits}")
  math(EXPR expected "${previous} + 1")
  if(NOT version EQUAL expected)
    message(FATAL_ERROR "${path}: migration ${version} follows ${previous}; versions must be 1, 2, 3, ... without gaps")
  endif()
  set(previous ${version})
  file(READ "${path}" sql)
  string(FIND "${sql}" ")${delimiter}\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${path} contains the raw-string delimiter ${delimiter}")
  endif()
  string(APPEND body "    {${version}, \"${name}\", R\"${delimiter}(${sql})${delimiter}\"},\n")
endforeach()
if(previous EQUAL 0)
  message(FATAL_ERROR "no migrations found in sql/")
endif()
file(WRITE "${OUTPUT}.tmp"
"// Generated from sql/*.sql by cmake/embed_migrations.cmake: do not edit.
#include \"migrations.h\"

namespace runs {
namespace {

constexpr Migration kMigrationTable[] = {
${body}};

}  // namespace

std::span<const Migration> migrations() { return kMigrationTable; }

}  // namespace runs
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
