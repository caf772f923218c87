// sql_worker: a separate process that holds one SQLite connection with the
// extension loaded and runs the SQL statements it reads, one per line, from
// stdin. For each it prints the rows (columns joined by '|', NULL as
// "NULL"), then an end marker line, "-- ok" or "-- error: <message>", and
// flushes. Tests use it
// (through WorkerProcess) to play a second process, an owner to be killed,
// or an old owner that writes after its run was reclaimed.
//
//   sql_worker [--name COMM] [--exit-main-thread] DATABASE EXTENSION
//
// --name sets the process name (prctl(PR_SET_NAME), as /proc/<pid>/stat
// shows it); --exit-main-thread runs everything in a second thread and ends
// the main one with pthread_exit(), which leaves the process's leader a
// zombie while the process works on.
#include <pthread.h>
#include <sqlite3.h>
#include <sys/prctl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

namespace {

int serve(const char* database, const char* extension) {
  sqlite3* db = nullptr;
  if (sqlite3_open(database, &db) != SQLITE_OK) {
    std::cerr << "sql_worker: cannot open " << database << ": " << sqlite3_errmsg(db) << "\n";
    return 1;
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_enable_load_extension(db, 1);
  char* error = nullptr;
  if (sqlite3_load_extension(db, extension, nullptr, &error) != SQLITE_OK) {
    std::cerr << "sql_worker: cannot load " << extension << ": " << (error ? error : "?") << "\n";
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

}  // namespace

int main(int argc, char** argv) {
  bool exit_main_thread = false;
  int arg = 1;
  for (; arg < argc && std::strncmp(argv[arg], "--", 2) == 0; ++arg) {
    if (std::strcmp(argv[arg], "--exit-main-thread") == 0) {
      exit_main_thread = true;
    } else if (std::strcmp(argv[arg], "--name") == 0 && arg + 1 < argc) {
      prctl(PR_SET_NAME, argv[++arg], 0, 0, 0);
    } else {
      break;
    }
  }
  if (argc - arg != 2) {
    std::cerr << "usage: sql_worker [--name COMM] [--exit-main-thread] DATABASE EXTENSION\n";
    return 2;
  }
  if (!exit_main_thread) return serve(argv[arg], argv[arg + 1]);
  // The worker thread serves only once the main thread has ended.
  std::thread([main_thread = pthread_self(), database = argv[arg], extension = argv[arg + 1]] {
    pthread_join(main_thread, nullptr);
    std::exit(serve(database, extension));
  }).detach();
  pthread_exit(nullptr);
}
