#include "scan/scanner.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "scan/nested_mounts.h"
#include "util/beneath.h"
#include "util/fd_limit.h"
#include "util/path.h"

namespace dtkfs {
namespace {

// Paths longer than this are opened relative to the parent's fd instead of the root's, so
// depth has no limit (PATH_MAX is 4096).
constexpr size_t kMaxRootRelativePath = 3000;
constexpr size_t kDentsBuffer = 64 * 1024;
constexpr size_t kPublishBatch = 128;

// Reads the directory open as fd to its end with getdents64, calling fn(entry) for every
// entry but "." and "..". Returns 0, or the errno of a failed read (entries before it were
// given to fn).
template <typename Fn>
int ForEachEntry(int fd, Fn&& fn) {
  alignas(8) static thread_local char buf[kDentsBuffer];
  while (true) {
    const long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return 0;
    for (long off = 0; off < n;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf + off);
      off += d->d_reclen;
      const char* name = d->d_name;
      if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
      fn(*d);
    }
  }
}

struct Node {
  Node* parent = nullptr;
  std::string path;
  std::atomic<uint64_t> bytes{0}, files{0}, dirs{0};
  // Children still being walked, plus one for the node's own listing.
  std::atomic<uint64_t> pending{1};
};

struct Work {
  Node* node;
  int fd;  // already open (deep paths), or -1
};

class Walk {
 public:
  Walk(int root_fd, dev_t root_dev, unsigned threads, const std::set<std::string>& aliases,
       std::function<bool(const struct stat&)> wants_size)
      : root_fd_(root_fd),
        root_dev_(root_dev),
        threads_(threads),
        aliases_(aliases),
        wants_size_(std::move(wants_size)) {}

  void Run(Node* start, int start_fd);
  std::vector<ScanError> TakeErrors() { return std::move(errors_); }
  std::deque<Node>& arena(size_t i) { return arenas_[i]; }
  std::vector<LinkSighting> TakeSightings() {
    std::vector<LinkSighting> all;
    for (auto& v : sightings_)
      all.insert(all.end(), std::make_move_iterator(v.begin()), std::make_move_iterator(v.end()));
    return all;
  }
  size_t arenas() const { return arenas_.size(); }
  std::vector<ScannedSize> TakeSizes() { return std::move(sizes_); }
  std::atomic<uint64_t> entries{0};
  std::atomic<uint64_t> dirs{0};

 private:
  void Worker(size_t id);
  void ListDirectory(size_t id, Work w);
  void Finish(Node* n);
  void AddError(std::string path, const char* op, int err);

  const int root_fd_;
  const dev_t root_dev_;  // link-table keys are relative to it (src/index/link_table.h)
  const unsigned threads_;
  // Nested mounts not descended into (nested_mounts.h): counted as empty directories.
  const std::set<std::string>& aliases_;
  std::vector<std::deque<Node>> arenas_;  // one per worker: nodes never move once created
  std::vector<std::vector<LinkSighting>> sightings_;  // one per worker: files with nlink > 1
  const std::function<bool(const struct stat&)> wants_size_;
  std::mutex sizes_mu_;  // guards sizes_
  std::vector<ScannedSize> sizes_;

  std::mutex mu_;  // guards stack_, busy_, errors_
  std::condition_variable cv_;
  std::vector<Work> stack_;
  unsigned busy_ = 0;
  std::vector<ScanError> errors_;
};

void Walk::AddError(std::string p, const char* op, int err) {
  std::lock_guard lock(mu_);
  errors_.push_back(ScanError{std::move(p), op, err});
}

// A directory's listing and all its children are done: fold it into its parent, and the
// parent into its own parent when that was the last thing it waited for.
void Walk::Finish(Node* n) {
  while (n->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    Node* p = n->parent;
    if (p == nullptr) return;
    p->bytes.fetch_add(n->bytes.load(std::memory_order_relaxed), std::memory_order_relaxed);
    p->files.fetch_add(n->files.load(std::memory_order_relaxed), std::memory_order_relaxed);
    p->dirs.fetch_add(n->dirs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    n = p;
  }
}

void Walk::ListDirectory(size_t id, Work w) {
  Node* node = w.node;
  int fd = w.fd >= 0 ? w.fd : OpenBeneath(root_fd_, node->path, O_RDONLY | O_DIRECTORY);
  if (fd < 0) {
    AddError(node->path, "open", errno);
    Finish(node);
    return;
  }
  std::vector<Work> children;
  uint64_t bytes = 0, files = 0, seen = 0;
  auto publish = [&] {
    if (children.empty()) return;
    {
      std::lock_guard lock(mu_);
      stack_.insert(stack_.end(), children.begin(), children.end());
    }
    cv_.notify_all();
    children.clear();
  };
  const int read_err = ForEachEntry(fd, [&](const struct dirent64& entry) {
    const char* name = entry.d_name;
    ++seen;
    unsigned char type = entry.d_type;
    struct stat st;
    if (type != DT_DIR) {
      if (::fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) AddError(path::Join(node->path, name), "stat", errno);
        return;  // ENOENT: removed while we looked; it is not there
      }
      if (!S_ISDIR(st.st_mode)) {
        // A file bind mount inside the tree (nested_mounts.h): hidden, not counted.
        if (!aliases_.empty() && aliases_.count(path::Join(node->path, name)) != 0) return;
        bytes += static_cast<uint64_t>(st.st_size);
        ++files;
        if (wants_size_ && wants_size_(st)) {
          std::lock_guard lock(sizes_mu_);
          sizes_.push_back(ScannedSize{st.st_dev, st.st_ino, static_cast<uint64_t>(st.st_size),
                                       st.st_nlink, path::Join(node->path, name)});
        }
        if (st.st_nlink > 1) {
          sightings_[id].push_back(LinkSighting{LinkKey{st.st_dev ^ root_dev_, st.st_ino},
                                                static_cast<uint64_t>(st.st_size),
                                                path::Join(node->path, name)});
        }
        return;
      }
    }
    if (!aliases_.empty() && aliases_.count(path::Join(node->path, name)) != 0) {
      node->dirs.fetch_add(1, std::memory_order_relaxed);
      arenas_[id].emplace_back().path = path::Join(node->path, name);  // its own entry
      arenas_[id].back().pending.store(0);
      return;
    }
    Node& child = arenas_[id].emplace_back();
    child.parent = node;
    child.path = path::Join(node->path, name);
    int child_fd = -1;
    if (child.path.size() > kMaxRootRelativePath) {
      child_fd = ::openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child_fd < 0) {
        AddError(child.path, "open", errno);
        node->dirs.fetch_add(1, std::memory_order_relaxed);  // it exists; its content is unknown
        return;
      }
    }
    node->pending.fetch_add(1, std::memory_order_relaxed);
    children.push_back(Work{&child, child_fd});
    if (children.size() >= kPublishBatch) publish();
  });
  if (read_err != 0) AddError(node->path, "read", read_err);
  ::close(fd);
  node->bytes.fetch_add(bytes, std::memory_order_relaxed);
  node->files.fetch_add(files, std::memory_order_relaxed);
  entries.fetch_add(seen, std::memory_order_relaxed);
  dirs.fetch_add(1, std::memory_order_relaxed);
  publish();
  Finish(node);
}

void Walk::Worker(size_t id) {
  std::unique_lock lock(mu_);
  while (true) {
    if (stack_.empty()) {
      if (busy_ == 0) {
        cv_.notify_all();
        return;
      }
      cv_.wait(lock);
      continue;
    }
    Work w = stack_.back();
    stack_.pop_back();
    ++busy_;
    lock.unlock();
    ListDirectory(id, w);
    lock.lock();
    --busy_;
  }
}

void Walk::Run(Node* start, int start_fd) {
  arenas_.resize(threads_);
  sightings_.resize(threads_);
  stack_.push_back(Work{start, start_fd});
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads_; ++i) pool.emplace_back([this, i] { Worker(i); });
  Worker(0);
  for (auto& t : pool) t.join();
}

}  // namespace

int OpenTreeDir(int root_fd, const std::string& start) {
  return OpenBeneath(root_fd, start, O_RDONLY | O_DIRECTORY);
}

Result<DirListing> ListOneDirectory(const std::string& root, const std::string& dir) {
  const int root_fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return Status::FromErrno(errno, "open", root);
  std::set<std::string> aliases;
  if (auto mounts = NestedMounts::Load(root); mounts.ok()) aliases = mounts->alias_paths();
  auto listing = ListDirectoryAt(root_fd, dir, aliases, false);
  ::close(root_fd);
  if (!listing.ok()) return listing.status().WithContext(root);
  return listing;
}

Result<DirListing> ListDirectoryAt(int root_fd, const std::string& dir,
                                   const std::set<std::string>& aliases, bool with_entries) {
  if (!path::IsValidRelative(dir))
    return Status::InvalidArgument(fmt::format("list: bad path {}", dir));
  const int fd = OpenTreeDir(root_fd, dir);
  if (fd < 0) {
    const int open_err = errno;
    if (open_err == ENOENT || open_err == ENOTDIR || open_err == ELOOP)
      return Status::NotFound(fmt::format("{}: not a directory of the tree", dir));
    return Status::FromErrno(open_err, "open", dir);
  }
  DirListing out;
  struct stat self;
  if (::fstat(fd, &self) == 0) {
    out.dev = self.st_dev;
    out.ino = self.st_ino;
  }
  const int read_err = ForEachEntry(fd, [&](const struct dirent64& entry) {
    const char* name = entry.d_name;
    struct stat st;
    if (::fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return;  // gone meanwhile
    const bool alias = !aliases.empty() && aliases.count(path::Join(dir, name)) != 0;
    const bool is_dir = S_ISDIR(st.st_mode);
    if (is_dir) {
      out.subdirs.emplace_back(name);  // an alias directory counts, as an empty one
    } else if (!alias) {
      out.bytes += static_cast<uint64_t>(st.st_size);
      ++out.files;
    } else {
      return;
    }
    if (with_entries)
      out.entries.push_back(ListedEntry{name, st.st_dev, st.st_ino,
                                        static_cast<uint64_t>(st.st_size), st.st_nlink, is_dir});
  });
  ::close(fd);
  if (read_err != 0) return Status::FromErrno(read_err, "read", dir);
  std::sort(out.subdirs.begin(), out.subdirs.end());
  return out;
}

std::string ScanError::ToString(const std::string& root) const {
  std::string full = path.empty() ? root : root + "/" + path;
  return fmt::format("{} {}: {}", op, full, std::strerror(err));
}

Result<ScanResult> ScanTree(const std::string& root, const std::string& start,
                            const ScanOptions& options) {
  RaiseFdLimit();
  int root_fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return Status::FromErrno(errno, "open", root);
  if (!path::IsValidRelative(start)) {
    ::close(root_fd);
    return Status::InvalidArgument(fmt::format("scan {}: bad start path {}", root, start));
  }
  int start_fd = OpenTreeDir(root_fd, start);
  if (start_fd < 0) {
    int err = errno;
    ::close(root_fd);
    return Status::FromErrno(err, "open", root + "/" + start);
  }

  struct stat root_st;
  if (::fstat(root_fd, &root_st) != 0) {
    int err = errno;
    ::close(root_fd);
    ::close(start_fd);
    return Status::FromErrno(err, "stat", root);
  }
  std::set<std::string> aliases;
  if (auto mounts = NestedMounts::Load(root); mounts.ok()) aliases = mounts->alias_paths();
  Walk walk(root_fd, root_st.st_dev, std::max(1u, options.threads), aliases, options.wants_size);
  Node start_node;
  start_node.path = start;

  // The progress reporter wakes every 200 ms, or at once when the walk ends.
  std::mutex progress_mu;
  std::condition_variable progress_cv;
  bool done = false;
  std::thread progress;
  const auto t0 = std::chrono::steady_clock::now();
  if (options.on_progress) {
    progress = std::thread([&] {
      std::unique_lock lock(progress_mu);
      while (!progress_cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return done; })) {
        options.on_progress(ScanProgress{
            walk.entries.load(), walk.dirs.load(),
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()});
      }
    });
  }
  walk.Run(&start_node, start_fd);
  {
    std::lock_guard lock(progress_mu);
    done = true;
  }
  progress_cv.notify_all();
  if (progress.joinable()) progress.join();
  ::close(root_fd);

  ScanResult result;
  result.entries = walk.entries.load();
  size_t total = 1;
  for (size_t i = 0; i < walk.arenas(); ++i) total += walk.arena(i).size();
  result.dirs.reserve(total);
  auto totals_of = [](const Node& n) {
    return Totals{n.bytes.load(), n.files.load(), n.dirs.load()};
  };
  result.dirs.emplace_back(std::move(start_node.path), totals_of(start_node));
  for (size_t i = 0; i < walk.arenas(); ++i) {
    for (Node& n : walk.arena(i)) result.dirs.emplace_back(std::move(n.path), totals_of(n));
  }
  std::sort(result.dirs.begin(), result.dirs.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  result.links = GroupLinkSightings(walk.TakeSightings());
  result.sizes = walk.TakeSizes();
  result.errors = walk.TakeErrors();
  std::sort(result.errors.begin(), result.errors.end(),
            [](const ScanError& a, const ScanError& b) { return a.path < b.path; });
  if (options.on_progress)
    options.on_progress(ScanProgress{
        result.entries, walk.dirs.load(),
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), true});
  return result;
}

}  // namespace dtkfs
