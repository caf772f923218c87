#include "transaction.h"

namespace runs {

void Transaction::require_standalone(sqlite3* db) {
  if (!sqlite3_get_autocommit(db)) {
    throw Error(SQLITE_ERROR,
                "cannot run inside a transaction, because it commits its own: "
                "call it after COMMIT or ROLLBACK");
  }
  switch (sqlite3_txn_state(db, nullptr)) {
    case SQLITE_TXN_NONE:
      return;
    case SQLITE_TXN_READ:
      throw Error(SQLITE_ERROR,
                  "must be a statement of its own, with no FROM clause: this statement, or "
                  "another one of this connection still being stepped, holds a read transaction");
    default:
      throw Error(SQLITE_ERROR,
                  "must be a statement of its own: it cannot run inside a statement that "
                  "writes (INSERT ... SELECT, a trigger, a CHECK constraint)");
  }
}

Transaction::Transaction(sqlite3* db, Statement& begin, Statement& commit, Statement& rollback)
    : db_(db), callers_rowid_(sqlite3_last_insert_rowid(db)), commit_(commit), rollback_(rollback) {
  Query(begin).run();
  open_ = true;
}

Transaction::~Transaction() {
  sqlite3_set_last_insert_rowid(db_, callers_rowid_);
  // A statement that failed with ROLLBACK semantics may have ended the
  // transaction already; ROLLBACK with none open would be an error.
  if (!open_ || sqlite3_get_autocommit(db_)) return;
  try {
    Query(rollback_).run();
  } catch (...) {
    // Nothing more can be done here; SQLite rolls back at close.
  }
}

void Transaction::commit() {
  Query(commit_).run();
  open_ = false;
}

}  // namespace runs
