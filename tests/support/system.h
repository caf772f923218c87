// What several tests ask of the system: this machine's host name (as the
// extension records it for a run's owner) and a file's whole text.
#pragma once

#include <gtest/gtest.h>
#include <limits.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace runs_test {

inline std::string host_name() {
  char host[HOST_NAME_MAX + 1] = {};
  EXPECT_EQ(gethostname(host, sizeof host - 1), 0) << "gethostname";
  return host;
}

// The file's bytes; the test fails when it cannot be read.
inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace runs_test
