// Paths as the core sees them: relative to the source root, '/'-separated, no leading or
// trailing '/', the root itself is "". Arbitrary bytes otherwise (no UTF-8 assumption).
// The one place that splits ancestors and builds subtree prefixes. Pure functions.
#pragma once

#include <string>
#include <string_view>

namespace dtkfs::path {

// "a/b/c" -> "a/b"; "a" -> ""; "" -> "" (the root has no parent; callers check IsRoot).
std::string_view Parent(std::string_view p);
// "a/b/c" -> "c"; "a" -> "a".
std::string_view Basename(std::string_view p);
// Join("", "x") -> "x"; Join("a", "x") -> "a/x".
std::string Join(std::string_view dir, std::string_view name);
inline bool IsRoot(std::string_view p) { return p.empty(); }
// The byte prefix every path strictly below dir starts with: "" for the root, "dir/" otherwise.
std::string SubtreePrefix(std::string_view dir);
// True when p is strictly below dir.
bool IsStrictlyBelow(std::string_view p, std::string_view dir);
// True when p is dir or below it.
bool IsSameOrBelow(std::string_view p, std::string_view dir);
// The same for canonical absolute paths of the system ("/" contains everything): is a mount
// point, an index or a source at or below another? The one containment test outside the core's
// relative paths.
bool IsSameOrBelowAbsolute(std::string_view p, std::string_view dir);
// Calls fn(ancestor) for p itself, then each ancestor up to and including the root.
template <typename Fn>
void ForSelfAndAncestors(std::string_view p, Fn&& fn) {
  while (true) {
    fn(p);
    if (p.empty()) return;
    p = Parent(p);
  }
}
// Number of components: "" -> 0, "a" -> 1, "a/b" -> 2.
size_t Depth(std::string_view p);
// Checks the syntax above; used on paths that come from outside (index files, user input).
bool IsValidRelative(std::string_view p);

}  // namespace dtkfs::path
