// The clock that SQLite's 'now' reads, and the last time its date functions
// can write: the checks that keep every time stamp the functions write one
// that SQLite can represent.
#pragma once

#include <string_view>

#include "sqlite.h"

namespace runs {

// The longest lease: lease_seconds is 1 to this (365 days).
inline constexpr sqlite3_int64 kMaxLeaseSeconds = 365 * 24 * 60 * 60;

// Throws Error (SQLITE_ERROR) when the clock that 'now' reads (the
// connection's VFS's) is past 9999-12-31T23:59:59.999Z, the last time
// SQLite's date functions can write: after it strftime() gives NULL, and a
// time stamp would be lost. Returns the milliseconds left until that time
// (the largest value when the VFS cannot read its clock: nothing is refused
// here, and SQLite's 'now' fails by itself).
sqlite3_int64 require_representable_now(sqlite3* db);

// Throws Error (SQLITE_ERROR) when the clock is past that time, or when a
// lease of `lease_seconds` from now would end after it (its end would be
// NULL: no lease at all). `whose` names the lease: empty for the argument
// lease_seconds, else its run ("run 5's").
void require_representable_lease_end(sqlite3* db, sqlite3_int64 lease_seconds,
                                     std::string_view whose = {});

}  // namespace runs
