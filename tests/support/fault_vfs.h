// FaultVfs: the default VFS with writes that fail on request, as a full disk
// (SQLITE_FULL, what the unix VFS returns for ENOSPC) or a failing disk
// (SQLITE_IOERR_WRITE, for EIO) makes them fail. Register it once, open a
// connection with vfs "runs_fault", then arm(n, code): the n-th write from
// then on (0 = the next one), to any file of any connection of this VFS, and
// every write after it fail with `code` until disarm(). A full disk stays
// full. refuse_journals(true): no rollback journal can be created.
#pragma once

#include "vfs_shim.h"

namespace runs_test {

class FaultVfs : private VfsShim {
 public:
  static constexpr const char* kName = "runs_fault";

  // Registers the VFS (not as the default); safe to call more than once.
  static void install() { instance(); }

  static void arm(int writes_before_failure, int code) {
    instance().countdown_ = writes_before_failure;
    instance().code_ = code;
    instance().failed_ = 0;
  }
  static void disarm() { instance().countdown_ = -1; }
  // While set, a rollback journal cannot be created (SQLITE_CANTOPEN, what
  // the unix VFS returns in a directory the process may not write to).
  static void refuse_journals(bool refuse) { instance().refuse_journals_ = refuse; }
  // How many writes failed since arm().
  static int failed_writes() { return instance().failed_; }

 private:
  FaultVfs() : VfsShim(kName) {}
  static FaultVfs& instance() {
    static FaultVfs vfs;
    return vfs;
  }

  int open(const char* path, File& file, int flags, int* out_flags) override {
    if (refuse_journals_ && (flags & SQLITE_OPEN_MAIN_JOURNAL) != 0) return SQLITE_CANTOPEN;
    return VfsShim::open(path, file, flags, out_flags);
  }
  int write(File& file, const void* data, int amount, sqlite3_int64 offset) override {
    if (countdown_ == 0) {
      ++failed_;
      return code_;
    }
    if (countdown_ > 0) --countdown_;
    return VfsShim::write(file, data, amount, offset);
  }
  // No memory-mapped reads: every page goes through xRead.
  bool memory_mapped_reads() const override { return false; }

  int countdown_ = -1;  // -1: no failure; else writes left before they fail
  int code_ = SQLITE_FULL;
  int failed_ = 0;
  bool refuse_journals_ = false;
};

}  // namespace runs_test
