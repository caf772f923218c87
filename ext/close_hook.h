// The "runs_close_hook" virtual table: finalizes a connection's cached
// statements when the connection closes.
#pragma once

#include <memory>

#include "sqlite.h"

namespace runs {

class StatementCache;

// Registers the eponymous virtual table "runs_close_hook" (no rows) on `db`.
// Its xConnect marks `cache` hooked; its xDisconnect, which sqlite3_close()
// calls before it checks for unfinalized statements, clears `cache`.
int register_close_hook(sqlite3* db, std::shared_ptr<StatementCache> cache);

// Connects the table (preparing a statement that names it is enough), so that
// its xDisconnect will run at close. Throws Error if it cannot.
void attach_close_hook(sqlite3* db);

}  // namespace runs
