// FaultVfs: the default VFS with writes that fail on request, as a full disk
// (SQLITE_FULL, what the unix VFS returns for ENOSPC) or a failing disk
// (SQLITE_IOERR_WRITE, for EIO) makes them fail. Register it once, open a
// connection with vfs "runs_fault", then arm(n, code): the n-th write from
// then on (0 = the next one), to any file of any connection of this VFS, and
// every write after it fail with `code` until disarm(). A full disk stays
// full. refuse_journals(true): no rollback journal can be created.
#pragma once

#include <sqlite3.h>

#include <cstring>

namespace runs_test {

class FaultVfs {
 public:
  static constexpr const char* kName = "runs_fault";

  // Registers the VFS (not as the default); safe to call more than once.
  static void install() {
    static bool installed = false;
    if (installed) return;
    sqlite3_vfs* real = sqlite3_vfs_find(nullptr);
    state().real = real;
    static sqlite3_vfs vfs;
    vfs = *real;
    vfs.szOsFile = static_cast<int>(sizeof(File)) + real->szOsFile;
    vfs.zName = kName;
    vfs.pNext = nullptr;
    vfs.pAppData = nullptr;
    vfs.xOpen = open;
    sqlite3_vfs_register(&vfs, 0);
    installed = true;
  }

  static void arm(int writes_before_failure, int code) {
    state().countdown = writes_before_failure;
    state().code = code;
    state().failed = 0;
  }
  static void disarm() { state().countdown = -1; }
  // While set, a rollback journal cannot be created (SQLITE_CANTOPEN, what
  // the unix VFS returns in a directory the process may not write to).
  static void refuse_journals(bool refuse) { state().refuse_journals = refuse; }
  // How many writes failed since arm().
  static int failed_writes() { return state().failed; }

 private:
  struct State {
    sqlite3_vfs* real = nullptr;
    int countdown = -1;  // -1: no failure; else writes left before they fail
    int code = SQLITE_FULL;
    int failed = 0;
    bool refuse_journals = false;
  };
  static State& state() {
    static State s;
    return s;
  }

  struct File {
    sqlite3_file base;
    sqlite3_file* real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
  };
  static sqlite3_file* real(sqlite3_file* f) { return reinterpret_cast<File*>(f)->real(); }

  static int open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
    File* file = reinterpret_cast<File*>(f);
    std::memset(file, 0, sizeof(File));
    if (state().refuse_journals && (flags & SQLITE_OPEN_MAIN_JOURNAL) != 0) return SQLITE_CANTOPEN;
    const int rc = state().real->xOpen(state().real, name, file->real(), flags, out_flags);
    file->base.pMethods = file->real()->pMethods != nullptr ? &methods() : nullptr;
    return rc;
  }

  static int close(sqlite3_file* f) { return real(f)->pMethods->xClose(real(f)); }
  static int read(sqlite3_file* f, void* p, int n, sqlite3_int64 offset) {
    return real(f)->pMethods->xRead(real(f), p, n, offset);
  }
  static int write(sqlite3_file* f, const void* p, int n, sqlite3_int64 offset) {
    State& s = state();
    if (s.countdown == 0) {
      ++s.failed;
      return s.code;
    }
    if (s.countdown > 0) --s.countdown;
    return real(f)->pMethods->xWrite(real(f), p, n, offset);
  }
  static int truncate(sqlite3_file* f, sqlite3_int64 size) {
    return real(f)->pMethods->xTruncate(real(f), size);
  }
  static int sync(sqlite3_file* f, int flags) { return real(f)->pMethods->xSync(real(f), flags); }
  static int file_size(sqlite3_file* f, sqlite3_int64* size) {
    return real(f)->pMethods->xFileSize(real(f), size);
  }
  static int lock(sqlite3_file* f, int level) { return real(f)->pMethods->xLock(real(f), level); }
  static int unlock(sqlite3_file* f, int level) { return real(f)->pMethods->xUnlock(real(f), level); }
  static int check_reserved_lock(sqlite3_file* f, int* out) {
    return real(f)->pMethods->xCheckReservedLock(real(f), out);
  }
  static int file_control(sqlite3_file* f, int op, void* arg) {
    return real(f)->pMethods->xFileControl(real(f), op, arg);
  }
  static int sector_size(sqlite3_file* f) { return real(f)->pMethods->xSectorSize(real(f)); }
  static int device_characteristics(sqlite3_file* f) {
    return real(f)->pMethods->xDeviceCharacteristics(real(f));
  }
  static int shm_map(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
    return real(f)->pMethods->xShmMap(real(f), page, size, extend, out);
  }
  static int shm_lock(sqlite3_file* f, int offset, int n, int flags) {
    return real(f)->pMethods->xShmLock(real(f), offset, n, flags);
  }
  static void shm_barrier(sqlite3_file* f) { real(f)->pMethods->xShmBarrier(real(f)); }
  static int shm_unmap(sqlite3_file* f, int delete_flag) {
    return real(f)->pMethods->xShmUnmap(real(f), delete_flag);
  }
  // No memory-mapped reads: every page goes through read().
  static int fetch(sqlite3_file*, sqlite3_int64, int, void** out) {
    *out = nullptr;
    return SQLITE_OK;
  }
  static int unfetch(sqlite3_file*, sqlite3_int64, void*) { return SQLITE_OK; }

  static const sqlite3_io_methods& methods() {
    static const sqlite3_io_methods m = {
        3,         close,     read,      write,      truncate,    sync,
        file_size, lock,      unlock,    check_reserved_lock,     file_control,
        sector_size,          device_characteristics, shm_map,    shm_lock,
        shm_barrier,          shm_unmap, fetch,      unfetch};
    return m;
  }
};

}  // namespace runs_test
