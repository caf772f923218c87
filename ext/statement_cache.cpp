#include "statement_cache.h"

#include "error.h"

namespace runs {

Statement& StatementCache::get(std::size_t slot, std::string_view sql) {
  std::unique_ptr<Statement>& statement = statements_.at(slot);
  if (!statement) {
    if (!hooked_) {
      attach_close_hook(db_);
      // Unhooked, the statements would outlive the connection's close.
      if (!hooked_) {
        throw Error(SQLITE_ERROR,
                    "a table or view named runs_close_hook hides this extension's close hook: "
                    "rename it");
      }
    }
    statement = std::make_unique<Statement>(db_, sql, SQLITE_PREPARE_PERSISTENT);
  }
  return *statement;
}

void StatementCache::clear() noexcept {
  for (auto& statement : statements_) statement.reset();
}

}  // namespace runs
