// inotify: one watch per directory of the tree, each mapped to its store path. A directory
// renamed inside the tree (IN_MOVED_FROM and IN_MOVED_TO with one cookie in one read) moves
// the paths of its watches; one moved out loses them (its watches still fire, unnamed, until
// the kernel drops them); the caller watches every directory that appears (Watch), which
// also gives a watch already held its new path.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <unordered_map>
#include <vector>

#include "scan/scanner.h"
#include "util/log.h"
#include "util/path.h"
#include "watch/events.h"

namespace dtkfs::watch {
namespace {

// Watches are added through /proc/self/fd of the directory opened without following a
// symlink (any depth, no race with a symlink planted on the way), so the magic link itself
// is followed.
constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY |
                           IN_ATTRIB | IN_CLOSE_WRITE | IN_ONLYDIR | IN_EXCL_UNLINK;

bool IsSameOrBelow(std::string_view p, std::string_view dir) {
  if (dir.empty()) return true;
  return p.starts_with(dir) && (p.size() == dir.size() || p[dir.size()] == '/');
}

class InotifySource final : public EventSource {
 public:
  InotifySource(int fd, int root_fd, std::string root)
      : fd_(fd), root_fd_(root_fd), root_(std::move(root)) {}
  ~InotifySource() override {
    ::close(fd_);
    ::close(root_fd_);
  }

  int fd() const override { return fd_; }
  bool WatchesDirectories() const override { return true; }
  uint64_t Unwatched() const override { return unwatched_; }

  std::string Describe() const override {
    return fmt::format("inotify ({} directories watched, {} not)", paths_.size(), unwatched_);
  }

  void Watch(const std::string& dir) override {
    const int dir_fd = OpenTreeDir(root_fd_, dir);
    if (dir_fd < 0) return;  // gone meanwhile, or not a directory: its parent's event says so
    const std::string proc = "/proc/self/fd/" + std::to_string(dir_fd);
    const int wd = ::inotify_add_watch(fd_, proc.c_str(), kMask);
    ::close(dir_fd);
    if (wd < 0) {
      if (errno == ENOSPC || errno == ENOMEM) {
        if (unwatched_++ == 0)
          log::Warning(
              "inotify: out of watches at {} directories (fs.inotify.max_user_watches); "
              "changes beside the mount in the rest are not seen until a verification",
              paths_.size());
      }
      return;  // gone meanwhile, or not a directory any more: its parent's event says so
    }
    paths_[wd] = dir;
  }

  Status ReadAvailable(Batch* batch) override {
    alignas(struct inotify_event) char buf[64 * 1024];
    // Directories are named by watch, turned into paths after the whole read: a directory
    // renamed later in the read has its events applied at its new path.
    struct Raw {
      int wd;
      std::string name;
      bool is_dir, new_dir;
    };
    std::vector<Raw> raw;
    std::unordered_map<uint32_t, std::string> moved_from;  // cookie -> old path, this read
    while (true) {
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        return Status::FromErrno(errno, "read", "inotify");
      }
      if (n == 0) break;
      for (const char* p = buf; p < buf + n;) {
        const auto* ev = reinterpret_cast<const struct inotify_event*>(p);
        p += sizeof(struct inotify_event) + ev->len;
        ++batch->events;
        if (ev->mask & IN_Q_OVERFLOW) {
          batch->overflow = true;
          continue;
        }
        if (ev->mask & IN_IGNORED) {
          paths_.erase(ev->wd);
          continue;
        }
        auto it = paths_.find(ev->wd);
        if (it == paths_.end() || ev->len == 0 || ev->name[0] == '\0') continue;
        const bool is_dir = (ev->mask & IN_ISDIR) != 0;
        raw.push_back(
            Raw{ev->wd, ev->name, is_dir, is_dir && (ev->mask & (IN_MOVED_TO | IN_CREATE)) != 0});
        if (!is_dir) continue;
        const std::string child = path::Join(it->second, ev->name);
        if (ev->mask & IN_MOVED_FROM) moved_from[ev->cookie] = child;
        if (ev->mask & IN_MOVED_TO) {
          auto from = moved_from.find(ev->cookie);
          if (from != moved_from.end()) {
            MovePaths(from->second, child);
            moved_from.erase(from);
          }
        }
      }
    }
    for (auto& [cookie, old_path] : moved_from) DropPaths(old_path);  // moved out
    for (Raw& r : raw) {
      auto it = paths_.find(r.wd);
      if (it != paths_.end())
        batch->changes.push_back(Change{it->second, std::move(r.name), r.is_dir, r.new_dir});
    }
    return Status::Ok();
  }

 private:
  void MovePaths(const std::string& from, const std::string& to) {
    for (auto& [wd, p] : paths_)
      if (IsSameOrBelow(p, from)) p = to + p.substr(from.size());
  }
  void DropPaths(const std::string& dir) {
    for (auto it = paths_.begin(); it != paths_.end();) {
      if (!IsSameOrBelow(it->second, dir)) {
        ++it;
        continue;
      }
      ::inotify_rm_watch(fd_, it->first);
      it = paths_.erase(it);
    }
  }

  const int fd_;
  const int root_fd_;
  const std::string root_;
  std::unordered_map<int, std::string> paths_;  // watch -> store path
  uint64_t unwatched_ = 0;
};

}  // namespace

Result<std::unique_ptr<EventSource>> OpenInotify(const std::string& root) {
  const int root_fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return Status::FromErrno(errno, "open", root);
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    ::close(root_fd);
    return Status::FromErrno(err, "inotify_init1", root);
  }
  return std::unique_ptr<EventSource>(new InotifySource(fd, root_fd, root));
}

}  // namespace dtkfs::watch
