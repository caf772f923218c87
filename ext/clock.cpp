#include "clock.h"

#include <limits>
#include <string>

#include "error.h"

namespace runs {
namespace {

// 9999-12-31T23:59:59.999Z in milliseconds since the julian epoch, as
// xCurrentTimeInt64 counts: the last time SQLite's date functions accept.
constexpr sqlite3_int64 kLastTimeMs = 464269060799999;
constexpr const char* kLastTime = "9999-12-31T23:59:59.999Z";
// What require_representable_now() returns when the clock cannot be read.
constexpr sqlite3_int64 kUnknown = std::numeric_limits<sqlite3_int64>::max();

}  // namespace

sqlite3_int64 require_representable_now(sqlite3* db) {
  // The VFS of the main database is the connection's, whose clock 'now'
  // reads (sqlite3_vfs.xCurrentTimeInt64, or xCurrentTime before version 2).
  sqlite3_vfs* vfs = nullptr;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_VFS_POINTER, &vfs) != SQLITE_OK ||
      vfs == nullptr) {
    return kUnknown;
  }
  sqlite3_int64 now = 0;
  if (vfs->iVersion >= 2 && vfs->xCurrentTimeInt64 != nullptr) {
    if (vfs->xCurrentTimeInt64(vfs, &now) != SQLITE_OK) return kUnknown;
  } else {
    double days = 0;
    if (vfs->xCurrentTime == nullptr || vfs->xCurrentTime(vfs, &days) != SQLITE_OK) {
      return kUnknown;
    }
    now = static_cast<sqlite3_int64>(days * 86400000.0);
  }
  if (now > kLastTimeMs) {
    throw Error(SQLITE_ERROR, std::string("the clock reads a time after ") + kLastTime +
                                  ", the last time SQLite's date functions can write, so no "
                                  "time stamp can be recorded: set the system clock right");
  }
  return kLastTimeMs - now;
}

void require_representable_lease_end(sqlite3* db, sqlite3_int64 lease_seconds,
                                     std::string_view whose) {
  if (lease_seconds <= require_representable_now(db) / 1000) return;
  const std::string seconds = std::to_string(lease_seconds);
  if (whose.empty()) {
    throw Error(SQLITE_ERROR, "lease_seconds " + seconds + " would end the lease after " +
                                  kLastTime +
                                  ", the last time SQLite's date functions can write: pass a "
                                  "shorter lease_seconds, or NULL for no time-based expiry, or "
                                  "set the system clock right");
  }
  throw Error(SQLITE_ERROR, "renewing " + std::string(whose) + " lease of " + seconds +
                                " seconds would end it after " + kLastTime +
                                ", the last time SQLite's date functions can write: end the "
                                "run, or set the system clock right");
}

}  // namespace runs
