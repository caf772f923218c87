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

WriteTransaction::WriteTransaction(sqlite3* db, Join join) : db_(db) {
  const bool autocommit = sqlite3_get_autocommit(db);
  switch (join) {
    case Join::kNever:
      Transaction::require_standalone(db);
      break;
    case Join::kHoldingWriteLock:
      require_allowed(db);
      mode_ = autocommit ? Mode::kOwn : Mode::kSavepoint;
      break;
    case Join::kTakingWriteLock:
      if (autocommit) {
        Transaction::require_standalone(db);
      } else {
        Transaction::require_no_writing_statement(db);
        mode_ = Mode::kSavepoint;
      }
      break;
    case Join::kAsIs:
      Transaction::require_no_writing_statement(db);
      if (!autocommit || sqlite3_txn_state(db, nullptr) != SQLITE_TXN_NONE) mode_ = Mode::kCallers;
      break;
  }
  if (mode_ != Mode::kCallers && sqlite3_db_readonly(db, "main") == 1) {
    throw read_only_error(db, SQLITE_READONLY);
  }
}

void WriteTransaction::begin(const Statements& sql, Statement* write_lock) {
  if (mode_ == Mode::kOwn) {
    own_.emplace(db_, sql.begin, sql.commit, sql.rollback);
    return;
  }
  if (mode_ == Mode::kCallers) return;
  const int state = sqlite3_txn_state(db_, "main");
  if (state != SQLITE_TXN_WRITE && write_lock != nullptr) {
    try {
      Query(*write_lock).run();
    } catch (const Error& error) {
      // With no read yet, the busy handler waited as long as busy_timeout
      // allows, and last_error() says so. After a read, SQLite does not wait:
      // a stale snapshot is SQLITE_BUSY_SNAPSHOT (last_error() says so too);
      // anything else busy is another writer holding the lock right now.
      if (state == SQLITE_TXN_READ && error.code() == SQLITE_BUSY) {
        throw Error(SQLITE_BUSY,
                    "another connection holds the write lock, and this transaction has already "
                    "read, so it cannot wait for it: roll back and retry, or begin the "
                    "transaction with BEGIN IMMEDIATE");
      }
      throw;
    }
    if (sqlite3_txn_state(db_, "main") != SQLITE_TXN_WRITE) {
      throw Error(SQLITE_BUSY,
                  "could not take the write lock inside the caller's transaction: roll back "
                  "and retry, or begin the transaction with BEGIN IMMEDIATE");
    }
  }
  callers_rowid_ = sqlite3_last_insert_rowid(db_);
  release_ = &sql.release;
  rollback_to_ = &sql.rollback_to;
  Query(sql.savepoint).run();
  joined_ = true;
}

WriteTransaction::~WriteTransaction() {
  // Own: Transaction's destructor does the rest.
  if (callers_rowid_) sqlite3_set_last_insert_rowid(db_, *callers_rowid_);
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
  if (!joined_) return;  // the caller's transaction, as it is
  Query(*release_).run();
  joined_ = false;
}

}  // namespace runs
