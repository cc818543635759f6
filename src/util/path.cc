#include "util/path.h"

#include <algorithm>

namespace dtkfs::path {

std::string_view Parent(std::string_view p) {
  size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : p.substr(0, slash);
}

std::string_view Basename(std::string_view p) {
  size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

std::string Join(std::string_view dir, std::string_view name) {
  std::string out;
  out.reserve(dir.size() + 1 + name.size());
  out.append(dir);
  if (!dir.empty()) out.push_back('/');
  out.append(name);
  return out;
}

std::string SubtreePrefix(std::string_view dir) {
  if (dir.empty()) return std::string();
  std::string out(dir);
  out.push_back('/');
  return out;
}

bool IsStrictlyBelow(std::string_view p, std::string_view dir) {
  if (dir.empty()) return !p.empty();
  return p.size() > dir.size() + 1 && p.substr(0, dir.size()) == dir && p[dir.size()] == '/';
}

bool IsSameOrBelow(std::string_view p, std::string_view dir) {
  return p == dir || IsStrictlyBelow(p, dir);
}

bool IsSameOrBelowAbsolute(std::string_view p, std::string_view dir) {
  if (dir == "/") return !p.empty() && p[0] == '/';
  return p == dir ||
         (p.size() > dir.size() && p.substr(0, dir.size()) == dir && p[dir.size()] == '/');
}

size_t Depth(std::string_view p) {
  if (p.empty()) return 0;
  return 1 + static_cast<size_t>(std::count(p.begin(), p.end(), '/'));
}

bool IsValidRelative(std::string_view p) {
  if (p.empty()) return true;
  if (p.front() == '/' || p.back() == '/') return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    std::string_view comp = p.substr(start, end - start);
    if (comp.empty() || comp == "." || comp == ".." || comp.find('\0') != std::string_view::npos)
      return false;
    start = end + 1;
  }
  return true;
}

}  // namespace dtkfs::path
