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

void Transaction::require_no_writing_statement(sqlite3* db) {
  for (sqlite3_stmt* stmt = sqlite3_next_stmt(db, nullptr); stmt != nullptr;
       stmt = sqlite3_next_stmt(db, stmt)) {
    if (sqlite3_stmt_busy(stmt) && !sqlite3_stmt_readonly(stmt)) {
      throw Error(SQLITE_ERROR,
                  "must not run inside a statement that writes (INSERT ... SELECT, UPDATE ... SET, "
                  "a CHECK constraint): call it in a SELECT of its own");
    }
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

void WriteTransaction::require_allowed(sqlite3* db) {
  if (sqlite3_get_autocommit(db)) {
    Transaction::require_standalone(db);
    return;
  }
  if (sqlite3_txn_state(db, nullptr) != SQLITE_TXN_WRITE) {
    throw Error(SQLITE_ERROR,
                "cannot run inside a transaction that does not hold the write lock: begin it "
                "with BEGIN IMMEDIATE, or call it outside any transaction");
  }
  Transaction::require_no_writing_statement(db);
}

WriteTransaction::WriteTransaction(sqlite3* db, const Statements& sql) : db_(db) {
  if (sqlite3_get_autocommit(db)) {
    own_.emplace(db, sql.begin, sql.commit, sql.rollback);
    return;
  }
  callers_rowid_ = sqlite3_last_insert_rowid(db);
  release_ = &sql.release;
  rollback_to_ = &sql.rollback_to;
  Query(sql.savepoint).run();
  joined_ = true;
}

WriteTransaction::~WriteTransaction() {
  if (own_) return;  // Transaction's destructor does the rest
  sqlite3_set_last_insert_rowid(db_, callers_rowid_);
  // A statement that failed with ROLLBACK semantics (SQLITE_FULL, an I/O
  // error) may have ended the caller's transaction, and the savepoint with it.
  if (!joined_ || sqlite3_get_autocommit(db_)) return;
  try {
    Query(*rollback_to_).run();
    Query(*release_).run();
  } catch (...) {
    // Nothing more can be done here: the caller's COMMIT or ROLLBACK ends it.
  }
}

void WriteTransaction::commit() {
  if (own_) {
    own_->commit();
    return;
  }
  Query(*release_).run();
  joined_ = false;
}

}  // namespace runs
