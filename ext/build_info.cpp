#include "build_info.h"

#include "build_info_generated.h"
#include "sqlite.h"
#include "version.h"

namespace runs {

std::string debug_info() {
  std::string json = "{";
  bool first = true;
  const auto add = [&](const char* key, const char* value) {
    if (!first) json += ',';
    first = false;
    json += '"';
    json += key;
    json += "\":\"";
    json += value;  // CMake and SQLite make them: no quote, backslash or control character
    json += '"';
  };
  add("version", SQLITE_RUNS_VERSION);
  add("commit", SQLITE_RUNS_COMMIT);
  add("build_type", SQLITE_RUNS_BUILD_TYPE);
  add("sqlite_version", sqlite3_libversion());
  json += '}';
  return json;
}

}  // namespace runs
