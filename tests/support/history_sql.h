// The run history: a table and two triggers on `runs` that append 'active'
// when a run becomes pending/running and 'inactive' when it leaves those
// states. A trigger runs inside the statement that fired it, so inside its
// write transaction; writers are serialised, so seq is the commit order, and
// replaying the history per key (history.h) tells how many runs of the key
// were ever active at once. Plain C++: worker programs install it too.
#pragma once

#include <string>

namespace runs_test {

// The DDL of history table `table`; `key` is the SQL expression of a run's
// key in the triggers ("new.concurrency_key", or "''" for a schema without
// that column). Idempotent (IF NOT EXISTS), so that several processes may
// each make sure it exists.
inline std::string history_sql(const std::string& table, const std::string& key) {
  return "CREATE TABLE IF NOT EXISTS " + table + " ("
         "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
         "  run_id INTEGER NOT NULL,"
         "  concurrency_key TEXT NOT NULL,"
         "  event TEXT NOT NULL CHECK (event IN ('active', 'inactive')));"
         "CREATE TRIGGER IF NOT EXISTS " + table + "_insert AFTER INSERT ON runs"
         " WHEN new.status IN ('pending', 'running')"
         " BEGIN INSERT INTO " + table + " (run_id, concurrency_key, event)"
         "  VALUES (new.id, " + key + ", 'active'); END;"
         "CREATE TRIGGER IF NOT EXISTS " + table + "_update AFTER UPDATE OF status ON runs"
         " WHEN (old.status IN ('pending', 'running')) <> (new.status IN ('pending', 'running'))"
         " BEGIN INSERT INTO " + table + " (run_id, concurrency_key, event)"
         "  VALUES (new.id, " + key + ","
         "   CASE WHEN new.status IN ('pending', 'running') THEN 'active' ELSE 'inactive' END); END;";
}

}  // namespace runs_test
