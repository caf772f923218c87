// WorkerProcess: a sql_worker child process (posix_spawn: a fresh program, no
// SQLite state inherited), driven statement by statement in lockstep.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "child_process.h"

namespace runs_test {

class WorkerProcess {
 public:
  // Starts `wrapper... sql_worker options... database extension`: a wrapper
  // (unshare, setpriv, sh -c '... exec "$@"' sh) that ends by exec'ing its
  // arguments keeps the worker's pid, so that kill_hard() kills the worker.
  explicit WorkerProcess(const std::string& database, const std::vector<std::string>& wrapper = {},
                         const std::vector<std::string>& options = {}) {
    std::vector<std::string> args = wrapper;
    args.push_back(SQL_WORKER_PATH);
    args.insert(args.end(), options.begin(), options.end());
    args.push_back(database);
    args.push_back(RUNS_EXTENSION_PATH);
    const ChildProcess child = spawn_child(std::move(args));
    pid_ = child.pid;
    to_ = child.in;
    from_ = child.out;
  }

  ~WorkerProcess() {
    if (to_ >= 0) close(to_);  // end of input: the worker closes and exits
    if (from_ >= 0) close(from_);
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
  }
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  pid_t pid() const noexcept { return pid_; }

  // Runs one statement (a single line) in the worker; returns its rows, one
  // line each, columns joined by '|', then "error: <message>" if it failed.
  std::string run(const std::string& sql) {
    const std::string line = sql + "\n";
    if (write(to_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      ADD_FAILURE() << "worker " << pid_ << " does not read: " << sql;
      return "";
    }
    std::string answer;
    while (!complete(answer)) {
      pollfd fd{from_, POLLIN, 0};
      // A hang guard, not synchronisation: a healthy worker answers at once.
      if (poll(&fd, 1, 30000) != 1) {
        ADD_FAILURE() << "worker " << pid_ << " did not answer: " << sql;
        return answer;
      }
      char buffer[4096];
      const ssize_t n = read(from_, buffer, sizeof buffer);
      if (n <= 0) {
        ADD_FAILURE() << "worker " << pid_ << " exited while running: " << sql;
        return answer;
      }
      answer.append(buffer, static_cast<std::size_t>(n));
    }
    // Drop the end marker, keep the error.
    const auto start = answer.rfind('\n', answer.size() - 2);
    const auto marker = start == std::string::npos ? 0 : start + 1;
    const std::string last = answer.substr(marker);
    answer.erase(marker);
    if (last != "-- ok\n") answer += last.substr(3);
    if (!answer.empty() && answer.back() == '\n') answer.pop_back();
    return answer;
  }

  // SIGKILL, then reap: afterwards no process has this pid (until reused).
  void kill_hard() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    pid_ = -1;
  }

 private:
  // True once `answer` ends with sql_worker's end marker line.
  static bool complete(const std::string& answer) {
    if (answer.empty() || answer.back() != '\n') return false;
    const auto start = answer.rfind('\n', answer.size() - 2);
    const std::string last = answer.substr(start == std::string::npos ? 0 : start + 1);
    return last == "-- ok\n" || last.rfind("-- error: ", 0) == 0;
  }

  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
};

}  // namespace runs_test
