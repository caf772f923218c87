// lock_holder DB MODE: holds a lock on DB until its stdin closes.
//   MODE write      BEGIN IMMEDIATE (the write lock; readers go on)
//   MODE exclusive  BEGIN EXCLUSIVE (in rollback-journal mode, readers wait too)
//   MODE read       BEGIN and a read (a shared lock: a writer cannot commit
//                   in rollback-journal mode)
// Prints "locked\n" once it holds the lock, then blocks reading stdin; at EOF
// it rolls back and exits 0. Any failure prints a line and exits 1. Started
// by tests with fork+exec (posix_spawn): no connection crosses a fork.
#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

int fail(sqlite3* db, const std::string& what) {
  std::printf("lock_holder: %s: %s\n", what.c_str(), db != nullptr ? sqlite3_errmsg(db) : "");
  std::fflush(stdout);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return fail(nullptr, "usage: lock_holder DB write|exclusive|read");
  const std::string mode = argv[2];
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    return fail(db, std::string("open ") + argv[1]);
  }
  const char* sql = mode == "write"       ? "BEGIN IMMEDIATE"
                    : mode == "exclusive" ? "BEGIN EXCLUSIVE"
                    : mode == "read"      ? "BEGIN; SELECT count(*) FROM sqlite_schema"
                                          : nullptr;
  if (sql == nullptr) return fail(db, "unknown mode " + mode);
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return fail(db, sql);
  std::fputs("locked\n", stdout);
  std::fflush(stdout);
  char buffer[64];
  while (read(STDIN_FILENO, buffer, sizeof buffer) > 0) {
  }
  if (sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr) != SQLITE_OK) return fail(db, "ROLLBACK");
  if (sqlite3_close(db) != SQLITE_OK) return fail(db, "close");
  return 0;
}
