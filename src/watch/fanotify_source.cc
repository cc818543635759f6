// fanotify: one filesystem mark per filesystem counted in the tree; each event names a
// directory by its file handle and an entry by name. A handle is opened (open_by_handle_at,
// relative to a directory of its filesystem inside the tree) and its path read back from
// /proc/self/fd; paths outside the root are dropped, and remembered as outside until a
// directory moves.
#include <dirent.h>
#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "util/log.h"
#include "watch/events.h"
#include "watch/fanotify_events.h"

namespace dtkfs::watch {
namespace {

constexpr uint64_t kBaseMask =
    FAN_CREATE | FAN_DELETE | FAN_MODIFY | FAN_ATTRIB | FAN_CLOSE_WRITE | FAN_ONDIR;
constexpr size_t kMaxOutside = 65536;  // remembered "outside the tree" handles

std::string FsidKey(const __kernel_fsid_t& fsid) {
  return std::string(reinterpret_cast<const char*>(&fsid), sizeof fsid);
}

class FanotifySource final : public EventSource {
 public:
  FanotifySource(int fd, std::string root, std::unordered_map<std::string, int> mount_fds)
      : fd_(fd), root_(std::move(root)), mount_fds_(std::move(mount_fds)) {}
  ~FanotifySource() override {
    ::close(fd_);
    for (auto& [key, fd] : mount_fds_) ::close(fd);
  }

  int fd() const override { return fd_; }
  std::string Describe() const override { return "fanotify"; }

  Status ReadAvailable(Batch* batch) override {
    alignas(struct fanotify_event_metadata) char buf[64 * 1024];
    std::unordered_map<std::string, std::optional<std::string>> resolved;  // this read's
    files_seen_.clear();
    const pid_t self = ::getpid();  // read now: the daemon forks after opening the source
    while (true) {
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return Status::Ok();
        return Status::FromErrno(errno, "read", "fanotify");
      }
      if (n == 0) return Status::Ok();
      ForEachFanotifyEvent(
          buf, static_cast<size_t>(n),
          [&](const struct fanotify_event_metadata& meta, const char* event) {
            ++batch->events;
            if (meta.mask & FAN_Q_OVERFLOW) {
              batch->overflow = true;
              return;
            }
            if (meta.pid == self) return;  // the mount's own syscalls
            const bool is_dir = (meta.mask & FAN_ONDIR) != 0;
            // A directory moved: an outside answer may be wrong now.
            if (is_dir && (meta.mask & (FAN_RENAME | FAN_MOVED_FROM | FAN_MOVED_TO)))
              outside_.clear();
            Parse(meta, event, is_dir, &resolved, batch);
          });
    }
  }

 private:
  void Parse(const struct fanotify_event_metadata& meta, const char* event, bool is_dir,
             std::unordered_map<std::string, std::optional<std::string>>* resolved, Batch* batch) {
    const char* p = event + meta.metadata_len;
    const char* end = event + meta.event_len;
    bool named = false;
    bool inside = false;  // a name in the tree came with it
    const struct fanotify_event_info_fid* target = nullptr;
    while (p + sizeof(struct fanotify_event_info_header) <= end) {
      const auto* hdr = reinterpret_cast<const struct fanotify_event_info_header*>(p);
      if (hdr->len == 0 || p + hdr->len > end) break;
      const uint8_t type = hdr->info_type;
      const auto* fid = reinterpret_cast<const struct fanotify_event_info_fid*>(p);
      if (type == FAN_EVENT_INFO_TYPE_FID) target = fid;
      if (type == FAN_EVENT_INFO_TYPE_DFID_NAME || type == FAN_EVENT_INFO_TYPE_OLD_DFID_NAME ||
          type == FAN_EVENT_INFO_TYPE_NEW_DFID_NAME) {
        named = true;
        const auto* handle = reinterpret_cast<const struct file_handle*>(fid->handle);
        const char* name = reinterpret_cast<const char*>(handle->f_handle) + handle->handle_bytes;
        if (name < p + hdr->len && *name != '\0' && std::strcmp(name, ".") != 0) {
          std::string key = FsidKey(fid->fsid);
          key.append(reinterpret_cast<const char*>(handle),
                     sizeof(struct file_handle) + handle->handle_bytes);
          auto it = resolved->find(key);
          if (it == resolved->end())
            it = resolved->emplace(key, Resolve(key, fid->fsid, handle)).first;
          const bool new_dir = is_dir && (type == FAN_EVENT_INFO_TYPE_NEW_DFID_NAME ||
                                          (type == FAN_EVENT_INFO_TYPE_DFID_NAME &&
                                           (meta.mask & (FAN_MOVED_TO | FAN_CREATE))));
          if (it->second) {
            batch->changes.push_back(Change{*it->second, name, is_dir, new_dir});
            inside = true;
          }
        }
      }
      p += hdr->len;
    }
    // The file itself, when the name cannot be trusted to lead to it: no name came with it
    // (the writer's name is gone), or the file has other names (the writer's name may have
    // been replaced while it held the file open; a write reaches every name). Once per file
    // and read.
    if (target == nullptr || is_dir) return;
    const bool contents = (meta.mask & (FAN_MODIFY | FAN_CLOSE_WRITE | FAN_ATTRIB)) != 0;
    if (named && (!contents || !inside)) return;  // outside the tree: not ours
    const auto* handle = reinterpret_cast<const struct file_handle*>(target->handle);
    std::string key = FsidKey(target->fsid);
    key.append(reinterpret_cast<const char*>(handle),
               sizeof(struct file_handle) + handle->handle_bytes);
    if (!files_seen_.insert(key).second) return;
    if (auto inode = ResolveInode(target); inode && (!named || inode->nlink > 1))
      batch->inodes.push_back(InodeChange{inode->dev, inode->ino});
  }

  struct Resolved {
    dev_t dev;
    ino_t ino;
    nlink_t nlink;
  };
  // An O_PATH fd for handle, opened relative to a directory of its filesystem in the tree;
  // -1 when the filesystem is not one of the tree's or the object is gone (ESTALE).
  int OpenHandle(const __kernel_fsid_t& fsid, const struct file_handle* handle) {
    auto mount = mount_fds_.find(FsidKey(fsid));
    if (mount == mount_fds_.end()) return -1;
    std::string copy(reinterpret_cast<const char*>(handle),
                     sizeof(struct file_handle) + handle->handle_bytes);
    return ::open_by_handle_at(mount->second, reinterpret_cast<struct file_handle*>(copy.data()),
                               O_PATH | O_CLOEXEC);
  }

  std::optional<Resolved> ResolveInode(const struct fanotify_event_info_fid* fid) {
    const int fd = OpenHandle(fid->fsid, reinterpret_cast<const struct file_handle*>(fid->handle));
    if (fd < 0) return std::nullopt;
    struct stat st;
    const bool ok = ::fstat(fd, &st) == 0;
    ::close(fd);
    if (!ok || st.st_nlink == 0) return std::nullopt;  // no name left anywhere
    return Resolved{st.st_dev, st.st_ino, st.st_nlink};
  }

  // The store path of the directory with this handle, or nullopt when it is outside the tree
  // or gone.
  std::optional<std::string> Resolve(const std::string& key, const __kernel_fsid_t& fsid,
                                     const struct file_handle* handle) {
    if (outside_.count(key) != 0) return std::nullopt;
    const int fd = OpenHandle(fsid, handle);
    if (fd < 0) return std::nullopt;  // gone (its parent's event says so), or not ours
    // A removed directory (its parent's event says so) has no links left; its path would
    // read "... (deleted)", which a live directory may be named too.
    struct stat st;
    if (::fstat(fd, &st) != 0 || st.st_nlink == 0) {
      ::close(fd);
      return std::nullopt;
    }
    auto full = PathOf(fd);
    if (!full) return std::nullopt;
    const std::string_view path = *full;
    std::optional<std::string> rel;
    if (root_ == "/") {
      if (path.starts_with("/")) rel = std::string(path.substr(1));
    } else if (path == root_) {
      rel = std::string();
    } else if (path.starts_with(root_) && path.size() > root_.size() && path[root_.size()] == '/') {
      rel = std::string(path.substr(root_.size() + 1));
    }
    if (!rel) {
      if (outside_.size() >= kMaxOutside) outside_.clear();
      outside_.insert(key);
    }
    return rel;
  }

  // The path of directory fd (which it closes). A path longer than PATH_MAX cannot be read
  // back at once: the nearest ancestor whose path can is found through "..", and the names
  // below it by their inode numbers.
  static std::optional<std::string> PathOf(int fd) {
    std::vector<std::string> below;  // names under the ancestor, nearest first
    std::optional<std::string> out;
    for (int level = 0; level < 4096 && fd >= 0; ++level) {
      char target[PATH_MAX + 1];
      const std::string proc = "/proc/self/fd/" + std::to_string(fd);
      const ssize_t len = ::readlink(proc.c_str(), target, PATH_MAX);
      if (len > 0 && len < PATH_MAX) {
        out = std::string(target, static_cast<size_t>(len));
        for (auto it = below.rbegin(); it != below.rend(); ++it) *out += "/" + *it;
        break;
      }
      if (len >= 0 || errno != ENAMETOOLONG) break;
      struct stat self;
      const int parent = ::openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (parent < 0 || ::fstat(fd, &self) != 0) {
        if (parent >= 0) ::close(parent);
        break;
      }
      auto name = NameIn(parent, self.st_ino);
      ::close(fd);
      fd = parent;
      if (!name) break;
      below.push_back(std::move(*name));
    }
    if (fd >= 0) ::close(fd);
    return out;
  }
  // The name of the directory with inode ino in directory dir (by getdents' d_ino).
  static std::optional<std::string> NameIn(int dir, ino_t ino) {
    DIR* d = ::fdopendir(::dup(dir));
    if (d == nullptr) return std::nullopt;
    std::optional<std::string> name;
    while (struct dirent* e = ::readdir(d)) {
      if (e->d_ino == ino && std::strcmp(e->d_name, ".") != 0 &&
          std::strcmp(e->d_name, "..") != 0) {
        name = e->d_name;
        break;
      }
    }
    ::closedir(d);
    return name;
  }

  const int fd_;
  const std::string root_;
  std::unordered_map<std::string, int> mount_fds_;  // fsid -> a directory of it in the tree
  std::unordered_set<std::string> outside_;
  std::unordered_set<std::string> files_seen_;  // this read's files resolved by handle
};

}  // namespace

Result<std::unique_ptr<EventSource>> OpenFanotify(const std::string& root,
                                                  const std::vector<std::string>& marks) {
  const int fd =
      ::fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME_TARGET,
                      O_RDONLY | O_LARGEFILE | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "fanotify_init", root);
  std::unordered_map<std::string, int> mount_fds;
  auto fail = [&](const Status& s) -> Result<std::unique_ptr<EventSource>> {
    ::close(fd);
    for (auto& [key, mfd] : mount_fds) ::close(mfd);
    return s;
  };
  for (const std::string& mark : marks) {
    struct statfs sfs;
    const int mfd = ::open(mark.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mfd < 0) return fail(Status::FromErrno(errno, "open", mark));
    if (::fstatfs(mfd, &sfs) != 0) {
      const int err = errno;
      ::close(mfd);
      return fail(Status::FromErrno(err, "statfs", mark));
    }
    __kernel_fsid_t fsid;
    std::memcpy(&fsid, &sfs.f_fsid, sizeof fsid);
    if (!mount_fds.emplace(FsidKey(fsid), mfd).second) {
      ::close(mfd);
      continue;  // a filesystem met twice needs one mark
    }
    // FAN_RENAME (5.17) reports both names in one event; older kernels get the pair.
    int rc = ::fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, kBaseMask | FAN_RENAME, mfd,
                             nullptr);
    if (rc != 0 && errno == EINVAL)
      rc = ::fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
                           kBaseMask | FAN_MOVED_FROM | FAN_MOVED_TO, mfd, nullptr);
    if (rc != 0) return fail(Status::FromErrno(errno, "fanotify_mark", mark));
  }
  return std::unique_ptr<EventSource>(new FanotifySource(fd, root, std::move(mount_fds)));
}

}  // namespace dtkfs::watch
