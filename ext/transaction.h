// runs::Transaction: BEGIN IMMEDIATE that rolls back unless committed.
// runs::WriteTransaction: the checks and the write lock of a function that
// writes: a Transaction of its own, a SAVEPOINT in the caller's transaction, or
// the caller's transaction as it is, as the function's Join allows.
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

// Where a function that writes may be called, and what it then writes in.
enum class Join {
  // Only as a statement of its own (Transaction::require_standalone()), in a
  // transaction of its own: reap_stale_runs().
  kNever,
  // Also inside the caller's transaction when that already holds the write
  // lock, in a savepoint of it: start_run(), try_start_run().
  kHoldingWriteLock,
  // Also inside the caller's transaction when that does not hold the write
  // lock yet, as long as no statement that writes is being stepped: begin()
  // takes the lock with its `write_lock` first: runs_migrate().
  kTakingWriteLock,
  // Anywhere but inside a statement that writes
  // (Transaction::require_no_writing_statement()): in a transaction of its own
  // in autocommit outside any statement, and else in the caller's transaction
  // or statement as it is, with no savepoint: cancel_run().
  kAsIs,
};

// The write lock for one function call, taken the way the connection's state
// and the function's Join allow:
//  - in autocommit: a Transaction of its own (BEGIN IMMEDIATE ... COMMIT);
//  - inside the caller's transaction that already holds the write lock
//    (BEGIN IMMEDIATE or EXCLUSIVE, or a deferred one that has written): it
//    joins it with SAVEPOINT runs_call, released by commit(), so that what the
//    function wrote commits or rolls back with the caller's transaction.
//  - inside the caller's transaction that does not hold the write lock yet
//    (a deferred BEGIN, as migration tools run each migration), with
//    Join::kTakingWriteLock: begin() steps `write_lock`, a statement that
//    takes the lock and writes nothing, then joins as above. A transaction
//    that has not read yet waits for the lock like BEGIN IMMEDIATE
//    (busy_timeout); one that has read cannot wait for it (SQLite calls no
//    busy handler there), and one whose read snapshot is stale cannot write at
//    all: both throw an Error that says so.
//  - with Join::kAsIs, anywhere else: nothing of its own; the function's
//    statements run in the caller's transaction or statement.
// It is used in three steps, in this order, so that nothing is prepared
// inside the transaction (there, a failed allocation in sqlite3_prepare(), a
// heap limit, makes SQLite refuse every statement, ROLLBACK included, until
// the caller's statement ends, and the connection would stay in the
// transaction): the constructor checks where it is called; the function
// prepares its statements; begin() takes the lock.
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

  // Throws an Error where `join` does not let the function run, and where it
  // would write in a transaction or savepoint of its own on a read-only
  // database. Takes no lock.
  WriteTransaction(sqlite3* db, Join join);
  ~WriteTransaction();
  WriteTransaction(const WriteTransaction&) = delete;
  WriteTransaction& operator=(const WriteTransaction&) = delete;

  // Whether begin() will join the caller's transaction with a savepoint.
  bool joins_callers() const noexcept { return mode_ == Mode::kSavepoint; }
  // Takes the write lock as the class comment says; call it once, after the
  // function's statements are prepared.
  void begin(const Statements& sql, Statement* write_lock = nullptr);
  void commit();
  // Joined, and a statement with ROLLBACK semantics (RAISE(ROLLBACK), INSERT
  // OR ROLLBACK) ended the caller's whole transaction: nothing of it remains.
  bool rolled_back_callers() const noexcept {
    return mode_ == Mode::kSavepoint && sqlite3_get_autocommit(db_);
  }

 private:
  // Throws where Join::kHoldingWriteLock does not let a function run: inside
  // a transaction that does not hold the write lock (it could not take it
  // without failing at once, SQLITE_BUSY, or ending the caller's
  // transaction); inside a statement that writes; or in autocommit, inside a
  // statement that holds a transaction (Transaction::require_standalone()).
  static void require_allowed(sqlite3* db);

  enum class Mode { kOwn, kSavepoint, kCallers };

  sqlite3* db_;
  Mode mode_ = Mode::kOwn;
  std::optional<Transaction> own_;
  // The savepoint, when joined.
  std::optional<sqlite3_int64> callers_rowid_;
  Statement* release_ = nullptr;
  Statement* rollback_to_ = nullptr;
  bool joined_ = false;
};

}  // namespace runs
