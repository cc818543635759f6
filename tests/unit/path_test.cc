#include "util/path.h"

#include <catch2/catch.hpp>

using namespace dtkfs;

TEST_CASE("path helpers split ancestors and subtree prefixes", "[util]") {
  CHECK(path::Parent("a/b/c") == "a/b");
  CHECK(path::Parent("a") == "");
  CHECK(path::Basename("a/b/c") == "c");
  CHECK(path::Join("", "x") == "x");
  CHECK(path::Join("a", "x") == "a/x");
  CHECK(path::SubtreePrefix("") == "");
  CHECK(path::SubtreePrefix("a") == "a/");
  CHECK(path::IsStrictlyBelow("a/b", "a"));
  CHECK_FALSE(path::IsStrictlyBelow("ab", "a"));
  CHECK_FALSE(path::IsStrictlyBelow("a", "a"));
  CHECK(path::IsStrictlyBelow("a", ""));
  CHECK(path::Depth("") == 0);
  CHECK(path::Depth("a/b") == 2);
  std::vector<std::string> seen;
  path::ForSelfAndAncestors("a/b/c", [&](std::string_view p) { seen.emplace_back(p); });
  CHECK(seen == std::vector<std::string>{"a/b/c", "a/b", "a", ""});
  CHECK(path::IsValidRelative("a/b c/\n\xff"));
  CHECK_FALSE(path::IsValidRelative("/a"));
  CHECK_FALSE(path::IsValidRelative("a//b"));
  CHECK_FALSE(path::IsValidRelative("a/../b"));
}
