// runs::Transaction: BEGIN IMMEDIATE that rolls back unless committed.
#pragma once

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

}  // namespace runs
