#include "index/index_location.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <boost/filesystem.hpp>
#include <cstdlib>

#include "util/path.h"

namespace fs = boost::filesystem;

namespace dtkfs {
namespace {

// FNV-1a 64: a stable name for a path (std::hash is not stable across builds).
uint64_t StableHash(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string SafeName(const std::string& base) {
  std::string out;
  for (unsigned char c : base) {
    if (out.size() >= 64) break;
    out.push_back(std::isalnum(c) || c == '-' || c == '_' || c == '.' ? static_cast<char>(c) : '_');
  }
  return out.empty() ? std::string("root") : out;
}

bool IsSameOrBelowAbs(const std::string& p, const std::string& dir) {
  if (dir == "/") return true;
  return p == dir || (p.size() > dir.size() && p.compare(0, dir.size(), dir) == 0 &&
                      p[dir.size()] == '/');
}

}  // namespace

Result<std::string> CanonicalDirectory(const std::string& p) {
  boost::system::error_code ec;
  fs::path c = fs::canonical(fs::path(p), ec);
  if (ec) return Status::FromErrno(ec.value(), "resolve", p);
  struct stat st;
  if (::stat(c.c_str(), &st) != 0) return Status::FromErrno(errno, "stat", p);
  if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument(fmt::format("{}: not a directory", p));
  return c.string();
}

Result<std::string> StateDirectory() {
  if (const char* x = std::getenv("XDG_STATE_HOME"); x != nullptr && x[0] == '/')
    return std::string(x) + "/dtkfs";
  const char* home = std::getenv("HOME");
  if (home == nullptr || home[0] != '/')
    return Status::InvalidArgument("neither XDG_STATE_HOME nor HOME is set; pass --index PATH");
  return std::string(home) + "/.local/state/dtkfs";
}

Result<std::string> DefaultIndexPath(const std::string& canonical_source) {
  auto dir = StateDirectory();
  if (!dir.ok()) return dir.status();
  std::string base = fs::path(canonical_source).filename().string();
  if (base == "/" || base.empty()) base = "root";
  return fmt::format("{}/{}-{:016x}.dtkidx", *dir, SafeName(base), StableHash(canonical_source));
}

Result<std::string> PrepareIndexPath(Env& env, const std::string& canonical_source,
                                     const std::string& index_path) {
  fs::path abs = fs::absolute(fs::path(index_path));
  fs::path parent = abs.parent_path();
  DTKFS_RETURN_IF_ERROR(env.CreateDirs(parent.string(), 0700));
  boost::system::error_code ec;
  fs::path canon_parent = fs::canonical(parent, ec);
  if (ec) return Status::FromErrno(ec.value(), "resolve", parent.string());
  if (IsSameOrBelowAbs(canon_parent.string(), canonical_source))
    return Status::InvalidArgument(fmt::format(
        "index {} is inside the source {}: it would count itself; choose a path outside it",
        index_path, canonical_source));
  return (canon_parent / abs.filename()).string();
}

Result<std::unique_ptr<FileLock>> LockIndex(Env& env, const std::string& index_path) {
  return env.LockFile(index_path + ".lock");
}

std::optional<FoundIndex> FindIndexFor(Env& env, const std::string& canonical_path) {
  std::string cur = canonical_path;
  while (true) {
    auto idx = DefaultIndexPath(cur);
    if (idx.ok() && env.FileExists(*idx)) {
      FoundIndex f;
      f.source_root = cur;
      f.index_path = *idx;
      if (canonical_path.size() > cur.size())
        f.relative = canonical_path.substr(cur == "/" ? 1 : cur.size() + 1);
      return f;
    }
    if (cur == "/") return std::nullopt;
    size_t slash = cur.rfind('/');
    cur = slash == 0 ? std::string("/") : cur.substr(0, slash);
  }
}

}  // namespace dtkfs
