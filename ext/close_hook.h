// The "runs_close_hook" virtual table: tells a connection's CloseListener
// when the connection closes, in time to finalize its statements. It knows
// nothing of what the listener holds.
#pragma once

#include <memory>

#include "sqlite.h"

namespace runs {

// What the close hook serves (the statement cache).
class CloseListener {
 public:
  // The table connected: its disconnect will run at close.
  virtual void hook_connected() noexcept = 0;
  // The table disconnected: sqlite3_close() disconnects it before it checks
  // for unfinalized statements.
  virtual void hook_disconnected() noexcept = 0;

 protected:
  ~CloseListener() = default;
};

// Registers the eponymous virtual table "runs_close_hook" (no rows) on `db`,
// which tells `listener` when it connects and disconnects.
int register_close_hook(sqlite3* db, std::shared_ptr<CloseListener> listener);

// Connects the table (preparing a statement that names it is enough), so that
// its xDisconnect will run at close. Throws Error if it cannot.
void attach_close_hook(sqlite3* db);

}  // namespace runs
