// runs::Transaction: BEGIN IMMEDIATE that rolls back unless committed.
// runs::SavepointOrTransaction: a SAVEPOINT inside the caller's transaction,
// else a Transaction of its own.
#pragma once

#include <optional>

#include "statement.h"

namespace runs {

// Takes the database's write lock on construction (BEGIN IMMEDIATE, waiting as
// long as the connection's busy handler allows) and rolls back on destruction
// unless commit() succeeded, so a function that fails anywhere leaves the
// connection in autocommit with nothing half-written. The caller's
// last_insert_rowid() is restored on destruction: the function's own inserts
// are not the caller's.
class Transaction {
 public:
  // The three statements are prepared before the lock is taken, so the
  // rollback can always run.
  Transaction(sqlite3* db, Statement& begin, Statement& commit, Statement& rollback);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit();

  // A function that commits its own transaction must be a statement of its
  // own: not inside BEGIN ... COMMIT, and not in a statement that already
  // reads or writes (SELECT f() FROM t, INSERT ... SELECT f()). Throws if it is.
  static void require_standalone(sqlite3* db);

  // A transition may join the caller's transaction, but not a statement that
  // writes (INSERT ... SELECT f(), UPDATE ... SET x = f(), RETURNING f()): that
  // is where a CHECK constraint of a hostile schema would call it, and SQLite
  // (3.40) applies neither SQLITE_DIRECTONLY nor trusted_schema=OFF to CHECK
  // constraints. Throws if any statement of the connection is being stepped
  // and writes.
  static void require_no_writing_statement(sqlite3* db);

 private:
  sqlite3* db_;
  sqlite3_int64 callers_rowid_;
  Statement& commit_;
  Statement& rollback_;
  bool open_ = false;
};

// Writes that join the caller's transaction when the connection is in one,
// and else take a transaction of their own:
//   - in autocommit: a Transaction (BEGIN IMMEDIATE ... COMMIT);
//   - inside the caller's transaction: takes the write lock (steps
//     `write_lock`, a statement that writes nothing, unless the transaction
//     already writes), then SAVEPOINT; commit() releases the savepoint, so the
//     work commits or rolls back with the caller's transaction; destruction
//     without commit() rolls back to the savepoint and releases it, leaving the
//     caller's transaction as it was. A deferred transaction that has not read
//     yet waits for the write lock like BEGIN IMMEDIATE (busy_timeout); one
//     that has read cannot wait for it (SQLite calls no busy handler there),
//     and one whose read snapshot is stale cannot write at all: both throw an
//     Error that says so.
// A statement with ROLLBACK semantics (RAISE(ROLLBACK), INSERT OR ROLLBACK)
// ends the caller's whole transaction: rolled_back_callers() then says so.
class SavepointOrTransaction {
 public:
  // The statements of both ways, prepared before the lock is taken.
  struct Statements {
    Statement& begin;        // BEGIN IMMEDIATE
    Statement& commit;       // COMMIT
    Statement& rollback;     // ROLLBACK
    Statement& savepoint;    // SAVEPOINT name
    Statement& release;      // RELEASE name
    Statement& rollback_to;  // ROLLBACK TO name
  };

  // True when the connection is inside a transaction (BEGIN, SAVEPOINT).
  static bool in_callers_transaction(sqlite3* db) noexcept { return !sqlite3_get_autocommit(db); }

  // `write_lock` is needed only inside the caller's transaction (see
  // in_callers_transaction()); it may be null otherwise.
  SavepointOrTransaction(sqlite3* db, const Statements& statements, Statement* write_lock);
  ~SavepointOrTransaction();
  SavepointOrTransaction(const SavepointOrTransaction&) = delete;
  SavepointOrTransaction& operator=(const SavepointOrTransaction&) = delete;

  void commit();
  bool joined() const noexcept { return !own_; }
  // Joined, and a statement ended the caller's transaction (the connection
  // is back in autocommit): nothing of it, or of this, remains.
  bool rolled_back_callers() const noexcept { return !own_ && sqlite3_get_autocommit(db_); }

 private:
  sqlite3* db_;
  Statements statements_;
  std::optional<Transaction> own_;
  sqlite3_int64 callers_rowid_ = 0;
  bool open_ = false;
};

}  // namespace runs
