// runs::Transaction: BEGIN IMMEDIATE that rolls back unless committed.
// runs::WriteTransaction: a Transaction of its own, or a SAVEPOINT in the
// caller's transaction when that already holds the write lock.
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

// The write lock for one function call, taken the way the connection's state
// allows:
//  - in autocommit: a Transaction of its own (BEGIN IMMEDIATE ... COMMIT);
//  - inside the caller's transaction that already holds the write lock
//    (BEGIN IMMEDIATE or EXCLUSIVE, or a deferred one that has written): it
//    joins it with SAVEPOINT runs_call, released by commit(), so that what the
//    function wrote commits or rolls back with the caller's transaction.
// On destruction without commit() it rolls back its own transaction, or rolls
// back to the savepoint and releases it, leaving the caller's transaction as
// it was. Like Transaction, it restores the caller's last_insert_rowid().
class WriteTransaction {
 public:
  // Prepared before the lock is taken, so the rollback can always run.
  struct Statements {
    Statement& begin;        // BEGIN IMMEDIATE
    Statement& commit;       // COMMIT
    Statement& rollback;     // ROLLBACK
    Statement& savepoint;    // SAVEPOINT runs_call
    Statement& release;      // RELEASE runs_call
    Statement& rollback_to;  // ROLLBACK TO runs_call
  };

  // Throws where a function that writes must not run: inside a transaction
  // that does not hold the write lock (it could not take it without failing
  // at once, SQLITE_BUSY, or ending the caller's transaction); inside a
  // statement that writes; or in autocommit, inside a statement that holds
  // a transaction (Transaction::require_standalone()). Call it first.
  static void require_allowed(sqlite3* db);

  WriteTransaction(sqlite3* db, const Statements& sql);
  ~WriteTransaction();
  WriteTransaction(const WriteTransaction&) = delete;
  WriteTransaction& operator=(const WriteTransaction&) = delete;

  void commit();

 private:
  sqlite3* db_;
  std::optional<Transaction> own_;
  // The savepoint, when joined.
  sqlite3_int64 callers_rowid_ = 0;
  Statement* release_ = nullptr;
  Statement* rollback_to_ = nullptr;
  bool joined_ = false;
};

}  // namespace runs
