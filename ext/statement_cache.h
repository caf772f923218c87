// runs::StatementCache: a connection's prepared statements, kept until it closes.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <string_view>

#include "close_hook.h"
#include "statement.h"

namespace runs {

// Prepares each statement on first use and keeps it for later calls, so the
// success path costs no preparation. The statements must be finalized before
// sqlite3_close() looks for unfinalized statements (else sqlite3_close()
// fails with SQLITE_BUSY and sqlite3_close_v2() leaves a zombie connection).
// Function destructors run too late for that; the disconnect of a virtual
// table runs in time, so the cache attaches the "runs_close_hook" table (see
// close_hook.h) before it holds its first statement, and listens to it: the
// table's xDisconnect clears the cache.
class StatementCache final : public CloseListener {
 public:
  static constexpr std::size_t kCapacity = 32;

  explicit StatementCache(sqlite3* db) noexcept : db_(db) {}

  // The statement in `slot`, prepared from `sql` on first use. A slot always
  // holds the same SQL. Throws Error when SQLite cannot prepare it.
  Statement& get(std::size_t slot, std::string_view sql);

  // Finalizes every statement; later get() calls prepare them again.
  void clear() noexcept;

  // The close hook's xConnect and xDisconnect.
  void hook_connected() noexcept override { hooked_ = true; }
  void hook_disconnected() noexcept override {
    clear();
    hooked_ = false;
  }

 private:
  sqlite3* db_;
  bool hooked_ = false;
  std::array<std::unique_ptr<Statement>, kCapacity> statements_{};
};

}  // namespace runs
