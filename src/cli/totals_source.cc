#include "cli/totals_source.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <boost/filesystem.hpp>

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

namespace {

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
  Target t;
  t.relative = RelativeTo(*canonical, root);
  t.is_directory = S_ISDIR(st.st_mode);
  t.own_size = t.is_directory ? 0 : static_cast<uint64_t>(st.st_size);
  t.source = std::make_shared<IndexTotalsSource>(std::move(reader).value());
  return t;
}

}  // namespace dtkfs::cli
