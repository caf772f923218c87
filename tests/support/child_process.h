// ChildProcess for the tests: spawn_process.h's start_child(), a failure to start
// reported as a test failure.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "spawn_process.h"

namespace runs_test {

// Starts args[0] with `args` (spawn_process.h's start_child). On failure: the test
// fails and pid is -1.
inline ChildProcess spawn_child(std::vector<std::string> args) {
  std::string error;
  const ChildProcess child = start_child(std::move(args), error);
  if (child.pid < 0) ADD_FAILURE() << error;
  return child;
}

}  // namespace runs_test
