#include "cli/totals_source.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <boost/filesystem.hpp>
#include <chrono>
#include <cstdlib>

#include "cli/mount_point.h"
#include "dtkfs/xattr_names.h"
#include "index/index_location.h"
#include "store/overlay.h"
#include "util/path.h"

namespace fs = boost::filesystem;

namespace dtkfs::cli {

std::optional<Totals> IndexTotalsSource::Lookup(const std::string& rel) const {
  return reader_->Lookup(rel);
}

std::vector<std::pair<std::string, Totals>> IndexTotalsSource::ListBelow(const std::string& rel,
                                                                         size_t max_depth) const {
  std::vector<std::pair<std::string, Totals>> out;
  const size_t base_depth = path::Depth(rel);
  auto [first, last] = reader_->SubtreeRange(rel);
  for (size_t i = first; i < last; ++i) {
    std::string_view p = reader_->path_at(i);
    if (max_depth == 0 || path::Depth(p) - base_depth <= max_depth)
      out.emplace_back(std::string(p), reader_->totals_at(i));
  }
  return out;
}

std::optional<double> IndexTotalsSource::TotalsTime() const {
  // The file this reader mapped, not whatever the path names now: a compaction may have
  // renamed a newer index over it since.
  if (exact_at_) return exact_at_;
  return reader_->file_modified_time();
}

namespace {

// Live totals of a mounted dtkfs, read from the xattrs the daemon answers.
class MountTotalsSource final : public TotalsSource {
 public:
  explicit MountTotalsSource(std::string root) : root_(std::move(root)) {}
  std::optional<Totals> Lookup(const std::string& rel) const override {
    return Read(rel.empty() ? root_ : root_ + "/" + rel);
  }
  std::vector<std::pair<std::string, Totals>> ListBelow(const std::string& rel,
                                                        size_t max_depth) const override {
    // Lists directories only (readdir's d_type), asking each for its totals: no file stat.
    std::vector<std::pair<std::string, Totals>> out;
    std::vector<std::pair<std::string, size_t>> stack{{rel, 0}};
    while (!stack.empty()) {
      auto [dir, depth] = stack.back();
      stack.pop_back();
      if (max_depth != 0 && depth >= max_depth) continue;
      std::string full = dir.empty() ? root_ : root_ + "/" + dir;
      DIR* dp = ::opendir(full.c_str());
      if (dp == nullptr) continue;
      while (struct dirent* d = ::readdir(dp)) {
        std::string name = d->d_name;
        if (name == "." || name == ".." || d->d_type != DT_DIR) continue;
        std::string child = path::Join(dir, name);
        if (auto t = Read(root_ + "/" + child)) out.emplace_back(child, *t);
        stack.emplace_back(child, depth + 1);
      }
      ::closedir(dp);
    }
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    return out;
  }
  std::optional<double> TotalsTime() const override {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  static std::optional<Totals> Read(const std::string& p) {
    Totals t;
    for (auto [name, field] :
         {std::pair{xattr::kTotalBytes, &t.bytes}, std::pair{xattr::kTotalFiles, &t.files},
          std::pair{xattr::kTotalDirs, &t.dirs}}) {
      char buf[32];
      ssize_t n = ::lgetxattr(p.c_str(), name, buf, sizeof buf - 1);
      if (n <= 0) return std::nullopt;
      buf[n] = '\0';
      *field = std::strtoull(buf, nullptr, 10);
    }
    return t;
  }

 private:
  std::string root_;
};

// The root of the dtkfs mount holding canonical, from the mount table: a user.dtkfs.status
// xattr can be carried by any directory, and must not make dtkfs read totals a user wrote
// there.
std::optional<std::string> MountRootOf(const std::string& canonical) {
  return DtkfsMountHolding(canonical);
}

// Canonical form of path, resolving the parent only (so a symlink argument is itself).
Result<std::string> CanonicalNoFollow(const std::string& p) {
  boost::system::error_code ec;
  fs::path abs = fs::absolute(fs::path(p));
  fs::path name = abs.filename();
  if (name == "." || name == ".." || name.empty() || abs.parent_path().empty()) {
    fs::path c = fs::canonical(abs, ec);
    if (ec) return Status::FromErrno(ec.value(), "resolve", p);
    return c.string();
  }
  fs::path parent = fs::canonical(abs.parent_path(), ec);
  if (ec) return Status::FromErrno(ec.value(), "resolve", p);
  return (parent / name).string();
}

std::string RelativeTo(const std::string& canonical, const std::string& root) {
  if (canonical == root) return std::string();
  return canonical.substr(root == "/" ? 1 : root.size() + 1);
}

bool IsUnder(const std::string& canonical, const std::string& root) {
  if (root == "/") return true;
  return canonical == root ||
         (canonical.size() > root.size() && canonical.compare(0, root.size(), root) == 0 &&
          canonical[root.size()] == '/');
}

}  // namespace

Result<Target> Resolve(Env& env, const std::string& p, const std::string& index_path) {
  auto canonical = CanonicalNoFollow(p);
  if (!canonical.ok()) return canonical.status();
  struct stat st;
  if (::lstat(canonical->c_str(), &st) != 0) return Status::FromErrno(errno, "stat", p);

  Target t;
  t.is_directory = S_ISDIR(st.st_mode);
  t.own_size = t.is_directory ? 0 : static_cast<uint64_t>(st.st_size);
  if (index_path.empty()) {
    if (auto mount_root = MountRootOf(*canonical)) {
      t.relative = RelativeTo(*canonical, *mount_root);
      t.source = std::make_shared<MountTotalsSource>(*mount_root);
      t.mount_root = *mount_root;
      return t;
    }
  }

  std::string index_file = index_path;
  std::string root;
  if (index_file.empty()) {
    auto found = FindIndexFor(env, *canonical);
    if (!found)
      return Status::NotFound(fmt::format(
          "{}: not inside a scanned source (run `dtkfs scan SRC` first, or pass --index)", p));
    index_file = found->index_path;
    root = found->source_root;
  }
  auto reader = IndexReader::Open(env, index_file);
  if (!reader.ok()) return reader.status();
  if (root.empty()) root = std::string((*reader)->source_root());
  if (!IsUnder(*canonical, root))
    return Status::InvalidArgument(
        fmt::format("{}: not inside {}, the source of index {}", p, root, index_file));
  t.relative = RelativeTo(*canonical, root);
  t.source = std::make_shared<IndexTotalsSource>(std::move(reader).value());
  return t;
}

Result<Target> ResolveDirectory(Env& env, const std::string& path, const std::string& index_path) {
  auto target = Resolve(env, path, index_path);
  if (target.ok() && !target->is_directory)
    return Status::InvalidArgument(fmt::format("{}: not a directory", path));
  return target;
}

}  // namespace dtkfs::cli
