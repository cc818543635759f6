#include "support/reference_walk.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace dtkfs::testing {
namespace {

[[noreturn]] void Fail(const char* op, const std::string& root, const std::string& rel, int err) {
  throw std::runtime_error(fmt::format("ReferenceWalk: {} {}{}{}: {}", op, root,
                                       rel.empty() ? "" : "/", rel, std::strerror(err)));
}

// The names in the directory open as dir_fd (without "." and ".."). dir_fd stays open.
std::vector<std::string> ListNames(int dir_fd, const std::string& root, const std::string& rel) {
  int list_fd = ::dup(dir_fd);
  if (list_fd < 0) Fail("dup", root, rel, errno);
  DIR* dir = ::fdopendir(list_fd);
  if (dir == nullptr) {
    int err = errno;
    ::close(list_fd);
    Fail("fdopendir", root, rel, err);
  }
  std::vector<std::string> names;
  while (true) {
    errno = 0;
    struct dirent* d = ::readdir(dir);
    if (d == nullptr) {
      int err = errno;
      ::closedir(dir);
      if (err != 0) Fail("readdir", root, rel, err);
      return names;
    }
    if (std::strcmp(d->d_name, ".") == 0 || std::strcmp(d->d_name, "..") == 0) continue;
    names.emplace_back(d->d_name);
  }
}

// Fills out[rel] for the directory open as dir_fd and, recursively, for every directory below.
// Returns its totals. Closes dir_fd.
Totals WalkDirectory(int dir_fd, const std::string& root, const std::string& rel,
                     std::map<std::string, Totals>& out) {
  Totals totals;
  for (const std::string& name : ListNames(dir_fd, root, rel)) {
    const std::string child = rel.empty() ? name : rel + "/" + name;
    struct stat st;
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      Fail("fstatat", root, child, errno);
    if (!S_ISDIR(st.st_mode)) {
      totals.bytes += static_cast<uint64_t>(st.st_size);
      totals.files += 1;
      continue;
    }
    int child_fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (child_fd < 0) Fail("openat", root, child, errno);
    const Totals sub = WalkDirectory(child_fd, root, child, out);
    totals.bytes += sub.bytes;
    totals.files += sub.files;
    totals.dirs += sub.dirs + 1;
  }
  ::close(dir_fd);
  out[rel] = totals;
  return totals;
}

// A path as a test log can show it: printable ASCII as is, every other byte as \xHH, and the
// middle of very long paths elided.
std::string Printable(const std::string& p) {
  constexpr size_t kKeep = 60;
  std::string shown;
  auto append = [&shown](std::string_view part) {
    for (unsigned char c : part) {
      if (c >= 0x20 && c < 0x7f && c != '\\')
        shown += static_cast<char>(c);
      else
        shown += fmt::format("\\x{:02x}", c);
    }
  };
  if (p.size() <= 2 * kKeep + 20) {
    append(p);
  } else {
    append(std::string_view(p).substr(0, kKeep));
    shown += fmt::format("...({} bytes)...", p.size());
    append(std::string_view(p).substr(p.size() - kKeep));
  }
  return "\"" + shown + "\"";
}

std::string Show(const Totals& t) {
  return fmt::format("bytes={} files={} dirs={}", t.bytes, t.files, t.dirs);
}

}  // namespace

std::map<std::string, Totals> ReferenceWalk(const std::string& root) {
  std::map<std::string, Totals> out;
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) Fail("open", root, "", errno);
  WalkDirectory(fd, root, "", out);
  return out;
}

std::string DescribeDifferences(const std::map<std::string, Totals>& expected,
                                const std::map<std::string, Totals>& actual) {
  constexpr size_t kMaxLines = 50;
  std::vector<std::string> lines;
  auto e = expected.begin();
  auto a = actual.begin();
  while (e != expected.end() || a != actual.end()) {
    if (a == actual.end() || (e != expected.end() && e->first < a->first)) {
      lines.push_back(
          fmt::format("missing    {}: expected {}", Printable(e->first), Show(e->second)));
      ++e;
    } else if (e == expected.end() || a->first < e->first) {
      lines.push_back(
          fmt::format("unexpected {}: actual {}", Printable(a->first), Show(a->second)));
      ++a;
    } else {
      if (!(e->second == a->second))
        lines.push_back(fmt::format("differs    {}: expected {}, actual {}", Printable(e->first),
                                    Show(e->second), Show(a->second)));
      ++e;
      ++a;
    }
  }
  if (lines.empty()) return std::string();
  std::string out = fmt::format("{} directories differ (expected {}, actual {} entries):\n",
                                lines.size(), expected.size(), actual.size());
  for (size_t i = 0; i < lines.size() && i < kMaxLines; ++i) out += "  " + lines[i] + "\n";
  if (lines.size() > kMaxLines) out += fmt::format("  ... and {} more\n", lines.size() - kMaxLines);
  return out;
}

}  // namespace dtkfs::testing
