// sql_worker: a separate process that holds one SQLite connection with the
// extension loaded and runs the SQL statements it reads, one per line, from
// stdin. For each it prints the rows (columns joined by '|', NULL as
// "NULL"), then an end marker line, "-- ok" or "-- error: <message>", and
// flushes. Tests use it
// (through WorkerProcess) to play a second process, an owner to be killed,
// or an old owner that writes after its run was reclaimed.
//
//   sql_worker DATABASE EXTENSION
#include <sqlite3.h>

#include <cstdio>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: sql_worker DATABASE EXTENSION\n";
    return 2;
  }
  sqlite3* db = nullptr;
  if (sqlite3_open(argv[1], &db) != SQLITE_OK) {
    std::cerr << "sql_worker: cannot open " << argv[1] << ": " << sqlite3_errmsg(db) << "\n";
    return 1;
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_enable_load_extension(db, 1);
  char* error = nullptr;
  if (sqlite3_load_extension(db, argv[2], nullptr, &error) != SQLITE_OK) {
    std::cerr << "sql_worker: cannot load " << argv[2] << ": " << (error ? error : "?") << "\n";
    return 1;
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db, line.c_str(), -1, &stmt, nullptr);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
      if ((rc = sqlite3_step(stmt)) != SQLITE_ROW) break;
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
        std::cout << (i > 0 ? "|" : "") << (text != nullptr ? text : "NULL");
      }
      std::cout << "\n";
    }
    if (rc == SQLITE_DONE) {
      std::cout << "-- ok\n";
    } else {
      std::cout << "-- error: " << sqlite3_errmsg(db) << "\n";
    }
    sqlite3_finalize(stmt);
    std::cout.flush();
  }
  sqlite3_close(db);
  return 0;
}
