// ChildProcess: a program started with posix_spawn (a fresh program: no SQLite
// state inherited, unlike a fork), its stdin and stdout connected to pipes
// held by the test, SIGPIPE at its default even when the test ignores it.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
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

// Starts args[0] with `args`. On failure: the test fails and pid is -1.
inline ChildProcess spawn_child(std::vector<std::string> args) {
  ChildProcess child;
  int in[2];
  int out[2];
  // O_CLOEXEC: each child inherits only its own two ends, as its stdin and
  // stdout, so that a child's exit closes its stdout for good.
  if (pipe2(in, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return child;
  }
  if (pipe2(out, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    close(in[0]);
    close(in[1]);
    return child;
  }
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
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
    ADD_FAILURE() << "posix_spawn " << args[0] << ": " << std::strerror(rc);
    close(in[1]);
    close(out[0]);
    child.pid = -1;
    return child;
  }
  child.in = in[1];
  child.out = out[0];
  return child;
}

}  // namespace runs_test
