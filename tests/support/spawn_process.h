// Starting programs with posix_spawn (a fresh program: no SQLite state
// inherited, unlike a fork), for the tests and the benchmarks alike: nothing
// here reports through GoogleTest (child_process.h adds that for the tests).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace runs_test {

struct ChildProcess {
  pid_t pid = -1;
  int in = -1;   // the child's stdin, our write end
  int out = -1;  // the child's stdout, our read end
};

// argv for posix_spawn: pointers into `args`, then nullptr.
inline std::vector<char*> spawn_argv(std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  return argv;
}

// Starts args[0] with `args`, its stdin and stdout connected to pipes held by
// the caller, SIGPIPE at its default even when the caller ignores it. On
// failure: pid is -1 and `error` says why.
inline ChildProcess start_child(std::vector<std::string> args, std::string& error) {
  ChildProcess child;
  int in[2];
  int out[2];
  // O_CLOEXEC: each child inherits only its own two ends, as its stdin and
  // stdout, so that a child's exit closes its stdout for good.
  if (pipe2(in, O_CLOEXEC) != 0) {
    error = std::string("pipe2: ") + std::strerror(errno);
    return child;
  }
  if (pipe2(out, O_CLOEXEC) != 0) {
    error = std::string("pipe2: ") + std::strerror(errno);
    close(in[0]);
    close(in[1]);
    return child;
  }
  std::vector<char*> argv = spawn_argv(args);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF);
  const int rc = posix_spawn(&child.pid, argv[0], &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    error = "posix_spawn " + args[0] + ": " + std::strerror(rc);
    close(in[1]);
    close(out[0]);
    child.pid = -1;
    return child;
  }
  child.in = in[1];
  child.out = out[0];
  return child;
}

// Runs args[0] with `args`, its output discarded, to its end: true when it
// exits 0 (false too when it cannot be started).
inline bool exits_successfully(std::vector<std::string> args) {
  std::vector<char*> argv = spawn_argv(args);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return false;
  int status = 0;
  return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace runs_test
