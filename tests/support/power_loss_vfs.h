// PowerLossVfs: a shim over the default (unix) VFS that records, for the
// files of one directory, what a power cut at each moment would leave on
// the disk, and DiskModel::survivors(), which lists what may survive one.
//
// The model. A file's content is durable as of its last fsync (xSync); the
// writes and truncates since then are pending. A file's name is durable once
// the directory was fsynced after its creation or unlink; the creations and
// unlinks since then are pending, in order. The unix VFS fsyncs the directory
// itself, in two places (os_unix.c): at the first xSync of a rollback journal,
// WAL or super-journal that it opened with O_CREAT (UNIXFILE_DIRSYNC), and in
// xDelete when SQLite asks for it (the journal's unlink at synchronous=EXTRA).
// Both go through the unix VFS's "openDirectory" system call, which this shim
// replaces (xSetSystemCall) with one that records the directory fsync that
// follows; so the model follows what the VFS does rather than restating
// when it does it.
//
// A cut point is taken at begin(), before every fsync (of a file, or of the
// directory between a journal's fsync and the directory's) and at end(): the
// durable state then, with everything pending. What a power cut at that
// moment leaves (survivors()): the durable state plus
//   * the names: a prefix of the pending creations and unlinks (a journaling
//     file system commits them in order), from none to all;
//   * the contents: none of the pending writes (the cut the brief asks for:
//     everything since each file's last fsync is dropped), all of them, all
//     of some files and none of the others, the first k in the order they were
//     made, all but one, or only one; and `random_subsets` subsets drawn
//     with `random` (each pending write kept or not, as a coin falls).
// Left out: a write torn inside itself (SQLite's unix VFS reports
// SQLITE_IOCAP_POWERSAFE_OVERWRITE: a write damages no bytes around it),
// garbage in a file's unwritten tail (the "older file system" of the
// synchronous=NORMAL documentation), writes that reach the disk out of order
// across an fsync (a disk that lies about fsync), and the -shm file, which
// SQLite rebuilds from the WAL after a cut (it is never opened through xOpen).
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "vfs_shim.h"

namespace runs_test {

struct DiskModel {
  // A write or truncate not yet made durable by an fsync of its file.
  struct Change {
    long seq = 0;  // the order of all changes, every file together
    bool truncate = false;
    sqlite3_int64 offset = 0;  // where the write starts, or the size a truncate leaves
    std::string bytes;
  };
  struct Inode {
    std::string durable;          // the content as of the file's last fsync
    std::vector<Change> pending;  // since then, in order
  };
  // A creation (inode >= 0) or unlink (inode < 0) not yet made durable by an
  // fsync of the directory.
  struct NameChange {
    std::string name;
    int inode = -1;
  };

  std::map<std::string, int> names;  // durable directory entries: file name -> inode
  std::vector<NameChange> pending_names;
  std::map<int, Inode> inodes;

  static void apply(std::string& content, const Change& change) {
    if (change.truncate) {
      content.resize(static_cast<std::size_t>(change.offset));
      return;
    }
    const std::size_t end = static_cast<std::size_t>(change.offset) + change.bytes.size();
    if (content.size() < end) content.resize(end, '\0');
    content.replace(static_cast<std::size_t>(change.offset), change.bytes.size(), change.bytes);
  }

  // What the disk holds after a cut.
  struct Survivor {
    std::string how;                            // which pending changes reached the disk
    std::map<std::string, std::string> files;  // file name -> content
  };

  // The files when the first `name_changes` pending name changes and the
  // pending writes whose seq is in `kept` reached the disk.
  std::map<std::string, std::string> files(std::size_t name_changes, const std::set<long>& kept) const {
    std::map<std::string, int> dir = names;
    for (std::size_t i = 0; i < name_changes && i < pending_names.size(); ++i) {
      const NameChange& change = pending_names[i];
      if (change.inode < 0) {
        dir.erase(change.name);
      } else {
        dir[change.name] = change.inode;
      }
    }
    std::map<std::string, std::string> out;
    for (const auto& [name, id] : dir) {
      const Inode& inode = inodes.at(id);
      std::string content = inode.durable;
      for (const Change& change : inode.pending) {
        if (kept.count(change.seq) != 0) apply(content, change);
      }
      out[name] = std::move(content);
    }
    return out;
  }

  // Every change of every file still pending, in order: seq numbers.
  std::vector<long> pending_changes() const {
    std::vector<long> out;
    for (const auto& [id, inode] : inodes) {
      for (const Change& change : inode.pending) out.push_back(change.seq);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // What a power cut now may leave (see the header), each distinct outcome once.
  std::vector<Survivor> survivors(std::mt19937_64* random = nullptr, int random_subsets = 0) const {
    const std::vector<long> all = pending_changes();
    std::vector<std::pair<std::string, std::set<long>>> contents;
    contents.emplace_back("no unsynced write", std::set<long>{});
    contents.emplace_back("every write", std::set<long>(all.begin(), all.end()));
    // Some files' writes and not the others'.
    std::vector<std::pair<std::string, std::vector<long>>> by_file;
    for (const auto& [name, id] : current_names_of_pending()) {
      std::vector<long> seqs;
      for (const Change& change : inodes.at(id).pending) seqs.push_back(change.seq);
      by_file.emplace_back(name, seqs);
    }
    if (by_file.size() <= 8) {
      for (unsigned mask = 1; mask + 1 < (1u << by_file.size()); ++mask) {
        std::set<long> kept;
        std::string how = "the writes of";
        for (std::size_t f = 0; f < by_file.size(); ++f) {
          if ((mask & (1u << f)) == 0) continue;
          kept.insert(by_file[f].second.begin(), by_file[f].second.end());
          how += " " + by_file[f].first;
        }
        contents.emplace_back(how + " only", kept);
      }
    }
    for (std::size_t k = 0; k < all.size(); ++k) {
      contents.emplace_back("the first " + std::to_string(k + 1) + " writes",
                            std::set<long>(all.begin(), all.begin() + static_cast<long>(k) + 1));
      std::set<long> but_one(all.begin(), all.end());
      but_one.erase(all[k]);
      contents.emplace_back("every write but write " + std::to_string(k + 1), but_one);
      contents.emplace_back("write " + std::to_string(k + 1) + " only", std::set<long>{all[k]});
    }
    for (int n = 0; random != nullptr && all.size() > 2 && n < random_subsets; ++n) {
      std::set<long> kept;
      std::string how = "random writes:";
      for (std::size_t k = 0; k < all.size(); ++k) {
        if (((*random)() & 1) == 0) continue;
        kept.insert(all[k]);
        how += " " + std::to_string(k + 1);
      }
      contents.emplace_back(how, kept);
    }
    std::vector<Survivor> out;
    std::set<std::map<std::string, std::string>> seen;
    for (std::size_t p = 0; p <= pending_names.size(); ++p) {
      const std::string names_how = pending_names.empty() ? ""
                                    : "; " + std::to_string(p) + " of " +
                                          std::to_string(pending_names.size()) + " unsynced creations/unlinks";
      for (const auto& [how, kept] : contents) {
        Survivor survivor{how + names_how, files(p, kept)};
        if (seen.insert(survivor.files).second) out.push_back(std::move(survivor));
      }
    }
    return out;
  }

 private:
  // The inodes with pending writes, by a name that refers to them (durable
  // or pending), for the messages.
  std::map<std::string, int> current_names_of_pending() const {
    std::map<int, std::string> name_of;
    for (const auto& [name, id] : names) name_of[id] = name;
    for (const NameChange& change : pending_names) {
      if (change.inode >= 0) name_of[change.inode] = change.name;
    }
    std::map<std::string, int> out;
    for (const auto& [id, inode] : inodes) {
      if (inode.pending.empty()) continue;
      const auto it = name_of.find(id);
      out[(it == name_of.end() ? "(unlinked " + std::to_string(id) + ")" : it->second)] = id;
    }
    return out;
  }
};

class PowerLossVfs : private VfsShim {
 public:
  static constexpr const char* kName = "runs_power";

  struct Cut {
    std::string where;  // "before the fsync of runs.db-wal", ...
    DiskModel disk;
  };

  // The one instance, registered on first use.
  static PowerLossVfs& instance() {
    static PowerLossVfs vfs;
    return vfs;
  }

  // Starts recording the files of `dir`: what they hold now is durable.
  void begin(const std::string& dir) {
    dir_ = dir;
    disk_ = DiskModel{};
    current_.clear();
    cuts_.clear();
    next_inode_ = 0;
    seq_ = 0;
    syncing_ = -1;
    returned_at_.clear();
    if (DIR* d = opendir(dir.c_str())) {
      while (const dirent* entry = readdir(d)) {
        const std::string name = entry->d_name;
        if (name == "." || name == ".." || ends_with(name, "-shm")) continue;
        const int id = next_inode_++;
        disk_.inodes[id].durable = read_file(dir + "/" + name);
        disk_.names[name] = id;
        current_[name] = id;
      }
      closedir(d);
    }
    cut("at the start");
    recording_ = true;
  }

  // A call under test returned: the cut points from here on come after it.
  void returned() { returned_at_.push_back(cuts_.size()); }

  // Stops recording; the last cut point is the disk as it is now.
  void end() {
    cut("at the end");
    recording_ = false;
  }

  const std::vector<Cut>& cuts() const { return cuts_; }
  // For each returned(), the index of the first cut point after it.
  const std::vector<std::size_t>& returned_at() const { return returned_at_; }

  // The model checked against the real files: each file of the directory
  // must hold what the model says it holds now (every pending change
  // applied). Empty when they agree, else what differs.
  std::string disagreement() const {
    std::string out;
    for (const auto& [name, id] : current_) {
      std::string content = disk_.inodes.at(id).durable;
      for (const DiskModel::Change& change : disk_.inodes.at(id).pending) DiskModel::apply(content, change);
      if (read_file(dir_ + "/" + name) != content) out += name + " differs from the model; ";
    }
    return out;
  }

 private:
  PowerLossVfs() : VfsShim(kName) {
    sqlite3_vfs* unix_vfs = sqlite3_vfs_find("unix");
    if (unix_vfs == nullptr || unix_vfs->xGetSystemCall == nullptr) return;
    real_open_directory_ =
        reinterpret_cast<OpenDirectory>(unix_vfs->xGetSystemCall(unix_vfs, "openDirectory"));
    if (real_open_directory_ == nullptr) return;
    hooked_ = unix_vfs->xSetSystemCall(unix_vfs, "openDirectory",
                                       reinterpret_cast<sqlite3_syscall_ptr>(open_directory)) == SQLITE_OK;
  }

 public:
  // Whether directory fsyncs are seen (the default VFS is unix and lets its
  // openDirectory be replaced).
  bool sees_directory_syncs() const { return hooked_; }

 private:
  using OpenDirectory = int (*)(const char*, int*);

  static bool ends_with(const std::string& text, const std::string& tail) {
    return text.size() >= tail.size() && text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
  }
  static std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream content;
    content << in.rdbuf();
    return content.str();
  }
  // The file name of `path` when it is in the recorded directory, else "".
  std::string tracked_name(const char* path) const {
    if (!recording_ || path == nullptr) return "";
    const std::string p = path;
    if (p.size() <= dir_.size() + 1 || p.compare(0, dir_.size() + 1, dir_ + "/") != 0) return "";
    return p.substr(dir_.size() + 1);
  }

  void cut(const std::string& where) { cuts_.push_back(Cut{where, disk_}); }

  void make_durable(int id) {
    DiskModel::Inode& inode = disk_.inodes[id];
    for (const DiskModel::Change& change : inode.pending) DiskModel::apply(inode.durable, change);
    inode.pending.clear();
  }

  void directory_synced(const char* path) {
    const std::string p = path;
    const std::string::size_type slash = p.rfind('/');
    if (!recording_ || slash == std::string::npos || p.substr(0, slash) != dir_) return;
    if (syncing_ >= 0) make_durable(syncing_);  // unixSync fsyncs the file, then the directory
    cut("before the directory fsync" + what_);
    for (const DiskModel::NameChange& change : disk_.pending_names) {
      if (change.inode < 0) {
        disk_.names.erase(change.name);
      } else {
        disk_.names[change.name] = change.inode;
      }
    }
    disk_.pending_names.clear();
  }

  static int open_directory(const char* path, int* fd) {
    PowerLossVfs& vfs = instance();
    const int rc = vfs.real_open_directory_(path, fd);
    if (rc == SQLITE_OK) vfs.directory_synced(path);
    return rc;
  }

  int open(const char* path, File& file, int flags, int* out_flags) override {
    const std::string name = tracked_name(path);
    if (name.empty()) return VfsShim::open(path, file, flags, out_flags);
    const auto known = current_.find(name);
    const bool existed = known != current_.end() || access(path, F_OK) == 0;
    const int rc = VfsShim::open(path, file, flags, out_flags);
    if (rc != SQLITE_OK) return rc;
    if (known != current_.end()) {
      file.id = known->second;
    } else {
      file.id = next_inode_++;
      current_[name] = file.id;
      if (existed) {  // made outside the recording: durable as it is
        disk_.inodes[file.id].durable = read_file(path);
        disk_.names[name] = file.id;
      } else {
        disk_.inodes[file.id];
        disk_.pending_names.push_back({name, file.id});
      }
    }
    return rc;
  }

  int remove(const char* path, int sync_dir) override {
    const std::string name = tracked_name(path);
    const auto known = current_.find(name);
    if (name.empty() || known == current_.end()) return VfsShim::remove(path, sync_dir);
    // Recorded first: a directory fsync inside the call makes it durable.
    disk_.pending_names.push_back({name, -1});
    what_ = " after the unlink of " + name;
    const int rc = VfsShim::remove(path, sync_dir);
    what_.clear();
    if (rc == SQLITE_OK) {
      current_.erase(known);
    } else if (!disk_.pending_names.empty() && disk_.pending_names.back().inode < 0) {
      disk_.pending_names.pop_back();
    }
    return rc;
  }

  int write(File& file, const void* data, int amount, sqlite3_int64 offset) override {
    const int rc = VfsShim::write(file, data, amount, offset);
    if (rc == SQLITE_OK && recording_ && file.id >= 0) {
      DiskModel::Change change;
      change.seq = seq_++;
      change.offset = offset;
      change.bytes.assign(static_cast<const char*>(data), static_cast<std::size_t>(amount));
      disk_.inodes[file.id].pending.push_back(std::move(change));
    }
    return rc;
  }

  int truncate(File& file, sqlite3_int64 size) override {
    const int rc = VfsShim::truncate(file, size);
    if (rc == SQLITE_OK && recording_ && file.id >= 0) {
      DiskModel::Change change;
      change.seq = seq_++;
      change.truncate = true;
      change.offset = size;
      disk_.inodes[file.id].pending.push_back(std::move(change));
    }
    return rc;
  }

  int sync(File& file, int flags) override {
    if (!recording_ || file.id < 0) return VfsShim::sync(file, flags);
    const std::string name = file.path != nullptr ? tracked_name(file.path) : "";
    cut("before the fsync of " + name);
    syncing_ = file.id;
    what_ = " after the fsync of " + name;
    const int rc = VfsShim::sync(file, flags);
    syncing_ = -1;
    what_.clear();
    if (rc == SQLITE_OK) make_durable(file.id);
    return rc;
  }

  OpenDirectory real_open_directory_ = nullptr;
  bool hooked_ = false;
  bool recording_ = false;
  std::string dir_;
  DiskModel disk_;
  std::map<std::string, int> current_;  // the directory as the process sees it: name -> inode
  std::vector<Cut> cuts_;
  int next_inode_ = 0;
  long seq_ = 0;
  int syncing_ = -1;   // the inode whose xSync is running
  std::string what_;   // what the running xSync or xDelete does, for the cut's description
  std::vector<std::size_t> returned_at_;
};

}  // namespace runs_test
