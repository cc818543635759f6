// The POSIX Env: thin wrappers, each turning errno into a Status once.
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/filesystem.hpp>
#include <cerrno>
#include <cstring>

#include "env/env.h"
#include "env/map_guard.h"
#include "util/log.h"

namespace dtkfs {
namespace {

// The open error for one of dtkfs's own files, with a plain word for the planted symlink
// (O_NOFOLLOW reports it as ELOOP).
Status OpenError(int err, std::string_view op, const std::string& path) {
  if (err == ELOOP)
    return Status::InvalidArgument(fmt::format(
        "{} {}: is a symbolic link; dtkfs never follows links for its own files", op, path));
  return Status::FromErrno(err, op, path);
}

// dtkfs's own files (index, lock, markers) must be regular files of the effective user:
// anything else was put there by someone else, and a daemon running as root must not be
// steered by it.
Status CheckOwnRegularFile(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::FromErrno(errno, "stat", path);
  if (!S_ISREG(st.st_mode))
    return Status::InvalidArgument(fmt::format("{}: not a regular file ({}); refusing to use it",
                                               path,
                                               S_ISDIR(st.st_mode)    ? "a directory"
                                               : S_ISFIFO(st.st_mode) ? "a fifo"
                                                                      : "a special file"));
  if (st.st_uid != ::geteuid())
    return Status::InvalidArgument(
        fmt::format("{}: owned by uid {}, not by this user (uid {}); refusing to use it", path,
                    st.st_uid, ::geteuid()));
  return Status::Ok();
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status WriteAt(uint64_t offset, std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(errno, "write", path_);
      }
      data.remove_prefix(static_cast<size_t>(n));
      offset += static_cast<uint64_t>(n);
    }
    return Status::Ok();
  }
  Status Sync() override {
    if (::fsync(fd_) != 0) return Status::FromErrno(errno, "fsync", path_);
    return Status::Ok();
  }
  Status Close() override {
    int fd = fd_;
    fd_ = -1;
    if (fd >= 0 && ::close(fd) != 0) return Status::FromErrno(errno, "close", path_);
    return Status::Ok();
  }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  int fd_;
};

// A read-only view of a whole file: a shared mapping guarded against truncation
// (map_guard.h), or, where the file cannot be guarded, a private copy read with pread.
class PosixMappedFile final : public MappedFile, public GuardedMapping {
 public:
  PosixMappedFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixMappedFile() override {
    UnguardMapping(fd_);  // before the fd can be reused: waits for a Detach in progress
    if (base_ != nullptr && mapped_len_ > 0) ::munmap(base_, mapped_len_);
    if (fd_ >= 0) ::close(fd_);
  }

  // Maps the file under its lease (GuardAndMap holds the lease from before the size is read,
  // so the file cannot shrink under the mapping), or copies it when it cannot be guarded.
  Status Load() {
    const int rc = GuardAndMap(fd_, this, [this] { return MapShared(); });
    if (rc == 0) return Status::Ok();
    if (rc != kNoLease) return Status::FromErrno(rc, "mmap", path_);
    // Someone has the file open for writing (or leases are not to be had): read it into
    // memory. The copy may be of a file being changed; it is marked detached, so the next
    // compaction rewrites the index, and a torn copy fails validation like any bad file.
    const int err = CopyWithPread();
    if (err != 0) return Status::FromErrno(err, "read", path_);
    detached_.store(true);
    return Status::Ok();
  }

  void Detach() override {
    if (!CopyOver()) {
      log::Error(
          "index {}: changed by another process while mapped, and no memory to copy it "
          "({}): the daemon may stop",
          path_, std::strerror(errno));
      return;
    }
    detached_.store(true);
    log::Warning(
        "index {}: opened for writing by another process while mapped; serving a "
        "private copy until the next compaction rewrites it",
        path_);
  }
  const char* data() const override { return static_cast<const char*>(base_); }
  size_t size() const override { return size_; }
  const std::string& path() const override { return path_; }
  bool detached() const override { return detached_.load(); }
  std::optional<double> modified_time() const override { return modified_; }

 private:
  void RecordModified(const struct stat& st) {
    modified_ =
        static_cast<double>(st.st_mtim.tv_sec) + static_cast<double>(st.st_mtim.tv_nsec) / 1e9;
  }

  // Called with the lease held: the size read here stays valid while mapped.
  int MapShared() {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return errno;
    RecordModified(st);
    size_ = static_cast<size_t>(st.st_size);
    if (size_ == 0) return 0;
    // MAP_POPULATE: the whole index is verified at open anyway; prefaulting in one call is
    // cheaper than a fault per page.
    void* base = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED | MAP_POPULATE, fd_, 0);
    if (base == MAP_FAILED) return errno;
    base_ = base;
    mapped_len_ = size_;
    return 0;
  }

  // Reads the file into anonymous memory with pread: no mapping of a file that may shrink.
  int CopyWithPread() {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return errno;
    RecordModified(st);
    size_t want = static_cast<size_t>(st.st_size);
    if (want == 0) return 0;
    void* mem = ::mmap(nullptr, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return errno;
    size_t got = 0;
    while (got < want) {
      const ssize_t n =
          ::pread(fd_, static_cast<char*>(mem) + got, want - got, static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int err = errno;
        ::munmap(mem, want);
        return err;
      }
      if (n == 0) break;  // shrank while read: what was read fails validation
      got += static_cast<size_t>(n);
    }
    ::mprotect(mem, want, PROT_READ);
    base_ = mem;
    size_ = got;
    mapped_len_ = want;
    return 0;
  }

  // Moves a private copy of the mapped bytes over the mapping (same address, same bytes).
  // Called with the lease still held, so the file is intact while it is read.
  bool CopyOver() {
    if (base_ == nullptr || size_ == 0) return true;
    void* copy = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (copy == MAP_FAILED) return false;
    std::memcpy(copy, base_, size_);
    ::mprotect(copy, size_, PROT_READ);
    if (::mremap(copy, size_, size_, MREMAP_MAYMOVE | MREMAP_FIXED, base_) == MAP_FAILED) {
      const int err = errno;
      ::munmap(copy, size_);
      errno = err;
      return false;
    }
    return true;
  }

  std::string path_;
  int fd_;  // kept open: the lease lives on it
  void* base_ = nullptr;
  size_t size_ = 0;
  size_t mapped_len_ = 0;  // the mapping's length (a pread copy may hold fewer bytes)
  std::atomic<bool> detached_{false};
  std::optional<double> modified_;  // set by Load, before any reader sees the file
};

class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}
  ~PosixFileLock() override { ::close(fd_); }  // closing drops the flock

 private:
  int fd_;
};

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path,
                                                        mode_t mode) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return Status::FromErrno(errno, "remove stale", path);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
      if (errno == EEXIST)
        return Status::InvalidArgument(
            fmt::format("create {}: something else created it between its removal and this create; "
                        "refusing to write through it",
                        path));
      return Status::FromErrno(errno, "create", path);
    }
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd));
  }

  Result<std::unique_ptr<WritableFile>> ReopenWritableFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return OpenError(errno, "open", path);
    if (Status s = CheckOwnRegularFile(fd, path); !s.ok()) {
      ::close(fd);
      return s;
    }
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd));
  }

  Result<std::string> ReadFileToString(const std::string& path, size_t max_bytes) override {
    // O_NONBLOCK: opening a planted fifo must not hang; it is refused below.
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return Status::NotFound(path + ": does not exist");
      return OpenError(errno, "open", path);
    }
    if (Status s = CheckOwnRegularFile(fd, path); !s.ok()) {
      ::close(fd);
      return s;
    }
    // Sized by the file, not by max_bytes: a caller's bound (the journal's is 1 GiB) must
    // not become an allocation, zero-filled page by page, for a file of a few bytes.
    struct stat st;
    size_t cap = 4096;
    if (::fstat(fd, &st) == 0 && st.st_size > 0) cap = static_cast<size_t>(st.st_size) + 1;
    std::string out(std::min(cap, max_bytes), '\0');
    size_t got = 0;
    while (got < max_bytes) {
      if (got == out.size()) out.resize(std::min(max_bytes, out.size() * 2));  // it grew
      ssize_t n = ::read(fd, out.data() + got, out.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        return Status::FromErrno(err, "read", path);
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    ::close(fd);
    out.resize(got);
    return out;
  }

  Result<std::shared_ptr<const MappedFile>> MapReadOnly(const std::string& path) override {
    // O_NONBLOCK: a planted fifo must not hang the open; it is refused below.
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno(errno, "open", path);
    // The file mapped is the one checked: same fd, this user's regular file.
    if (Status s = CheckOwnRegularFile(fd, path); !s.ok()) {
      ::close(fd);
      return s;
    }
    auto mapped = std::make_shared<PosixMappedFile>(path, fd);  // owns fd from here
    DTKFS_RETURN_IF_ERROR(mapped->Load());
    return std::shared_ptr<const MappedFile>(std::move(mapped));
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0)
      return Status::FromErrno(errno, "rename " + from + " to", to);
    return Status::Ok();
  }

  Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return Status::FromErrno(errno, "remove", path);
    return Status::Ok();
  }

  Status SyncDir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno(errno, "open directory", dir);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return Status::FromErrno(err, "fsync directory", dir);
    return Status::Ok();
  }

  Status SyncFilesystem(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno(errno, "open", path);
    int rc = ::syncfs(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return Status::FromErrno(err, "syncfs", path);
    return Status::Ok();
  }

  Status CreateDirs(const std::string& dir, mode_t mode) override {
    boost::filesystem::path p(dir);
    boost::filesystem::path cur;
    for (const auto& part : p) {
      cur /= part;
      if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST)
        return Status::FromErrno(errno, "mkdir", cur.string());
    }
    return Status::Ok();
  }

  bool FileExists(const std::string& path) override {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
  }

  Result<std::vector<std::string>> ListDirectory(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return Status::FromErrno(errno, "list", dir);
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* e = ::readdir(d)) {
      const std::string_view name = e->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    const int err = errno;
    ::closedir(d);
    if (err != 0) return Status::FromErrno(err, "list", dir);
    return names;
  }

  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    // Not remove-then-O_EXCL like NewWritableFile: the lock file must stay the same inode
    // while anyone may hold it, or two processes could each lock their own copy. O_NOFOLLOW
    // and the owner check keep a planted link or file from being used instead.
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    if (fd < 0) return OpenError(errno, "open lock file", path);
    if (Status s = CheckOwnRegularFile(fd, path); !s.ok()) {
      ::close(fd);
      return s;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK)
        return Status::Busy(path + ": locked by another dtkfs process (one daemon per index)");
      return Status::FromErrno(err, "flock", path);
    }
    return std::unique_ptr<FileLock>(new PosixFileLock(fd));
  }

  Result<std::unique_ptr<FileLock>> LockDirectory(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return OpenError(errno, "open directory", dir);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK) return Status::Busy(dir + ": locked by another dtkfs process");
      return Status::FromErrno(err, "flock", dir);
    }
    return std::unique_ptr<FileLock>(new PosixFileLock(fd));
  }
};

}  // namespace

Env& Env::Default() {
  static PosixEnv env;
  return env;
}

}  // namespace dtkfs

namespace dtkfs {
namespace {
class MemoryFile final : public MappedFile {
 public:
  MemoryFile(std::string bytes, std::string name)
      : bytes_(std::move(bytes)), name_(std::move(name)) {}
  const char* data() const override { return bytes_.data(); }
  size_t size() const override { return bytes_.size(); }
  const std::string& path() const override { return name_; }

 private:
  std::string bytes_;
  std::string name_;
};
}  // namespace

std::shared_ptr<const MappedFile> MakeMemoryFile(std::string bytes, std::string name) {
  return std::make_shared<MemoryFile>(std::move(bytes), std::move(name));
}
}  // namespace dtkfs
