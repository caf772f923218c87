// The oldest SQLite this extension runs on, and the load-time check for it.
#pragma once

#include <optional>
#include <string>

namespace runs {

// sqlite3_txn_state() arrived in 3.34.0; SQLITE_DIRECTONLY (3.31.0),
// sqlite_schema (3.33.0) and partial indexes are older.
inline constexpr int kMinimumSqliteVersionNumber = 3034000;
inline constexpr const char* kMinimumSqliteVersion = "3.34.0";

// The reason the host SQLite is too old, or nothing when it will do.
inline std::optional<std::string> host_version_problem(int version_number, const char* version) {
  if (version_number >= kMinimumSqliteVersionNumber) return std::nullopt;
  return std::string("sqlite-runs needs SQLite ") + kMinimumSqliteVersion +
         " or later, but this program runs SQLite " + version +
         ": load it into a newer SQLite";
}

}  // namespace runs
