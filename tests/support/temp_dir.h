// TempDir: a mkdtemp directory holding one test database, removed with its files.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace runs_test {

// Where a test that needs no real disk keeps its databases: $<variable>
// when set, else /dev/shm (tmpfs) when it is a writable directory, else ""
// (TempDir's default, $TMPDIR).
inline std::string fast_database_dir(const char* variable) {
  const char* chosen = std::getenv(variable);
  if (chosen != nullptr && *chosen != '\0') return chosen;
  return access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "";
}

class TempDir {
 public:
  // In `base`; by default in $TMPDIR, or /tmp.
  explicit TempDir(std::string base = "") {
    if (base.empty()) {
      const char* tmpdir = std::getenv("TMPDIR");
      base = tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
    }
    std::string pattern = base + "/runs-test-XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (mkdtemp(buffer.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp " << pattern << ": " << std::strerror(errno);
      return;
    }
    path_ = buffer.data();
  }
  ~TempDir() {
    if (path_.empty()) return;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      const std::string file = db() + suffix;
      if (unlink(file.c_str()) != 0 && errno != ENOENT) {
        ADD_FAILURE() << "unlink " << file << ": " << std::strerror(errno);
      }
    }
    if (rmdir(path_.c_str()) != 0) ADD_FAILURE() << "rmdir " << path_ << ": " << std::strerror(errno);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The database file in the directory.
  std::string db() const { return path_ + "/runs.db"; }

 private:
  std::string path_;
};

}  // namespace runs_test
