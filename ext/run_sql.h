// The SQL rules that the statements of run_store.cpp share, each stated once:
// what an active run is, how a time is written, where a lease ends.
#pragma once

#include "sql_text.h"

namespace runs {

// A run is active while it is pending or running.
inline constexpr SqlText kPending = "pending";
inline constexpr SqlText kRunning = "running";

// The predicate of the partial unique index runs_one_active
// (sql/002_one_active_run.sql). The planner uses a partial index only for a
// WHERE clause that contains its predicate with the same literals in the same
// order, so every active-run lookup spells it as this;
// tests/unit/sql_rules_test.cpp checks it against the index that the
// migrations create.
inline constexpr auto kActivePredicate = sql_join<"status IN ('", kPending, "', '", kRunning, "')">;

// Every time stamp: UTC ISO-8601 text with milliseconds, which sorts as text.
inline constexpr SqlText kTimeFormat = "'%Y-%m-%dT%H:%M:%fZ'";
inline constexpr auto kNow = sql_join<"strftime(", kTimeFormat, ", 'now')">;

// The end of a lease of `seconds` (an SQL expression) taken now, or
// `otherwise` when `seconds` is NULL (no lease).
template <SqlText seconds, SqlText otherwise>
inline constexpr auto kLeaseEnd =
    sql_join<"CASE WHEN ", seconds, " IS NULL THEN ", otherwise, " ELSE strftime(", kTimeFormat,
             ", 'now', '+' || ", seconds, " || ' seconds') END">;

// Whether a run's lease has ended (NULL: the run has no lease).
inline constexpr auto kLeaseExpired = sql_join<"lease_expires_at <= ", kNow>;

}  // namespace runs
