// VfsShim: a VFS registered under a name of its own over the default VFS,
// forwarding every call to it. A test VFS derives from it and overrides the
// calls it watches or changes: FaultVfs (fault_vfs.h) fails writes,
// PowerLossVfs (power_loss_vfs.h) records writes and syncs, the torture
// worker counts events, messages_test's clock reads a time of its choosing. The overrides run inside SQLite's calls: they must
// not throw.
#pragma once

#include <sqlite3.h>

#include <cstring>

namespace runs_test {

class VfsShim {
 public:
  // Registers the VFS as `name`, as the default VFS if `make_default`.
  explicit VfsShim(const char* name, bool make_default = false) {
    real_ = sqlite3_vfs_find(nullptr);
    vfs_ = *real_;  // paths, randomness, time: as the default VFS has them
    vfs_.szOsFile = static_cast<int>(sizeof(File)) + real_->szOsFile;
    vfs_.zName = name;
    vfs_.pNext = nullptr;
    vfs_.pAppData = this;
    vfs_.xOpen = open_file;
    vfs_.xDelete = delete_file;
    if (vfs_.iVersion >= 2) vfs_.xCurrentTimeInt64 = current_time_int64;
    registered_ = sqlite3_vfs_register(&vfs_, make_default ? 1 : 0) == SQLITE_OK;
  }
  virtual ~VfsShim() { sqlite3_vfs_unregister(&vfs_); }
  VfsShim(const VfsShim&) = delete;
  VfsShim& operator=(const VfsShim&) = delete;

  const char* name() const { return vfs_.zName; }
  bool registered() const { return registered_; }

 protected:
  // One open file: SQLite's handle, then the default VFS's.
  struct File {
    sqlite3_file base;
    VfsShim* shim;
    const char* path;  // as SQLite named it (valid until close); NULL for a temporary file
    int flags;         // the SQLITE_OPEN_* flags it was opened with
    int id;            // for the derived VFS's own bookkeeping; -1 unless it sets one
    sqlite3_file* real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
    const sqlite3_io_methods& methods() { return *real()->pMethods; }
  };

  sqlite3_vfs* real_vfs() const { return real_; }

  // The calls a derived VFS may override; by default each forwards.
  virtual int open(const char* path, File& file, int flags, int* out_flags) {
    return real_->xOpen(real_, path, file.real(), flags, out_flags);
  }
  virtual int remove(const char* path, int sync_dir) { return real_->xDelete(real_, path, sync_dir); }
  virtual int close(File& file) { return file.methods().xClose(file.real()); }
  virtual int write(File& file, const void* data, int amount, sqlite3_int64 offset) {
    return file.methods().xWrite(file.real(), data, amount, offset);
  }
  virtual int truncate(File& file, sqlite3_int64 size) { return file.methods().xTruncate(file.real(), size); }
  virtual int sync(File& file, int flags) { return file.methods().xSync(file.real(), flags); }
  // The time SQLite's 'now' reads: milliseconds since the julian epoch.
  virtual int current_time(sqlite3_int64* ms) { return real_->xCurrentTimeInt64(real_, ms); }
  // False: no memory-mapped reads, every page goes through xRead.
  virtual bool memory_mapped_reads() const { return true; }
  // Called before each call that changes a file or a lock, with its name:
  // "open", "delete", "write", "truncate", "sync", "lock", "unlock",
  // "shm_lock".
  virtual void before(const char* /*operation*/) {}

 private:
  static File& file_of(sqlite3_file* f) { return *reinterpret_cast<File*>(f); }
  static sqlite3_file* real(sqlite3_file* f) { return file_of(f).real(); }
  static const sqlite3_io_methods& methods(sqlite3_file* f) { return file_of(f).methods(); }

  static int open_file(sqlite3_vfs* vfs, sqlite3_filename path, sqlite3_file* f, int flags, int* out_flags) {
    File& file = file_of(f);
    std::memset(&file, 0, sizeof(File));
    file.shim = static_cast<VfsShim*>(vfs->pAppData);
    file.path = path;
    file.flags = flags;
    file.id = -1;
    file.shim->before("open");
    const int rc = file.shim->open(path, file, flags, out_flags);
    file.base.pMethods = file.real()->pMethods != nullptr ? &io_methods() : nullptr;
    return rc;
  }
  static int current_time_int64(sqlite3_vfs* vfs, sqlite3_int64* ms) {
    return static_cast<VfsShim*>(vfs->pAppData)->current_time(ms);
  }
  static int delete_file(sqlite3_vfs* vfs, const char* path, int sync_dir) {
    VfsShim* shim = static_cast<VfsShim*>(vfs->pAppData);
    shim->before("delete");
    return shim->remove(path, sync_dir);
  }

  static int close_file(sqlite3_file* f) { return file_of(f).shim->close(file_of(f)); }
  static int read(sqlite3_file* f, void* p, int n, sqlite3_int64 offset) {
    return methods(f).xRead(real(f), p, n, offset);
  }
  static int write_file(sqlite3_file* f, const void* p, int n, sqlite3_int64 offset) {
    file_of(f).shim->before("write");
    return file_of(f).shim->write(file_of(f), p, n, offset);
  }
  static int truncate_file(sqlite3_file* f, sqlite3_int64 size) {
    file_of(f).shim->before("truncate");
    return file_of(f).shim->truncate(file_of(f), size);
  }
  static int sync_file(sqlite3_file* f, int flags) {
    file_of(f).shim->before("sync");
    return file_of(f).shim->sync(file_of(f), flags);
  }
  static int file_size(sqlite3_file* f, sqlite3_int64* size) { return methods(f).xFileSize(real(f), size); }
  static int lock_file(sqlite3_file* f, int level) {
    file_of(f).shim->before("lock");
    return methods(f).xLock(real(f), level);
  }
  static int unlock_file(sqlite3_file* f, int level) {
    file_of(f).shim->before("unlock");
    return methods(f).xUnlock(real(f), level);
  }
  static int check_reserved_lock(sqlite3_file* f, int* out) {
    return methods(f).xCheckReservedLock(real(f), out);
  }
  static int file_control(sqlite3_file* f, int op, void* arg) { return methods(f).xFileControl(real(f), op, arg); }
  static int sector_size(sqlite3_file* f) { return methods(f).xSectorSize(real(f)); }
  static int device_characteristics(sqlite3_file* f) { return methods(f).xDeviceCharacteristics(real(f)); }
  static int shm_map(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
    return methods(f).xShmMap(real(f), page, size, extend, out);
  }
  static int shm_lock_file(sqlite3_file* f, int offset, int n, int flags) {
    file_of(f).shim->before("shm_lock");
    return methods(f).xShmLock(real(f), offset, n, flags);
  }
  static void shm_barrier(sqlite3_file* f) { methods(f).xShmBarrier(real(f)); }
  static int shm_unmap(sqlite3_file* f, int delete_flag) { return methods(f).xShmUnmap(real(f), delete_flag); }
  static int fetch(sqlite3_file* f, sqlite3_int64 offset, int amount, void** out) {
    if (!file_of(f).shim->memory_mapped_reads()) {
      *out = nullptr;
      return SQLITE_OK;
    }
    return methods(f).xFetch(real(f), offset, amount, out);
  }
  static int unfetch(sqlite3_file* f, sqlite3_int64 offset, void* page) {
    if (!file_of(f).shim->memory_mapped_reads()) return SQLITE_OK;
    return methods(f).xUnfetch(real(f), offset, page);
  }

  static const sqlite3_io_methods& io_methods() {
    static const sqlite3_io_methods m = {
        3,         close_file, read,      write_file, truncate_file, sync_file,
        file_size, lock_file,  unlock_file, check_reserved_lock,     file_control,
        sector_size,           device_characteristics, shm_map,      shm_lock_file,
        shm_barrier,           shm_unmap, fetch,      unfetch};
    return m;
  }

  sqlite3_vfs* real_ = nullptr;
  sqlite3_vfs vfs_{};
  bool registered_ = false;
};

}  // namespace runs_test
