#include "fs/credentials.h"

#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using dtkfs::fs::ParseStatusGroups;

TEST_CASE("a caller's supplementary groups are read from its /proc status", "[fs]") {
  const std::string status =
      "Name:\tsh\nUmask:\t0022\nUid:\t65534\t65534\t65534\t65534\n"
      "Gid:\t65534\t65534\t65534\t65534\nFDSize:\t64\nGroups:\t4 24 4242 \nNStgid:\t7\n";
  auto groups = ParseStatusGroups(status);
  REQUIRE(groups.has_value());
  CHECK(*groups == std::vector<gid_t>{4, 24, 4242});
}

TEST_CASE("a caller without supplementary groups has none", "[fs]") {
  auto groups = ParseStatusGroups("Name:\tx\nGroups:\t\nNStgid:\t7\n");
  REQUIRE(groups.has_value());
  CHECK(groups->empty());
  groups = ParseStatusGroups("Groups:");  // the last line, no newline
  REQUIRE(groups.has_value());
  CHECK(groups->empty());
}

TEST_CASE("a status that cannot be read gives no groups rather than wrong ones", "[fs]") {
  CHECK_FALSE(ParseStatusGroups("").has_value());
  CHECK_FALSE(ParseStatusGroups("Name:\tx\nUid:\t0\n").has_value());
  CHECK_FALSE(ParseStatusGroups("Groups:\t4 x24\n").has_value());
  CHECK_FALSE(ParseStatusGroups("Groups:\t4 -1\n").has_value());
  CHECK_FALSE(ParseStatusGroups("Groups:\t99999999999\n").has_value());
  // A key that only starts the same is another key.
  CHECK_FALSE(ParseStatusGroups("GroupsX:\t1\n").has_value());
}

TEST_CASE("the live status of this process parses", "[fs]") {
  std::ifstream in("/proc/self/status");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto groups = ParseStatusGroups(text);
  REQUIRE(groups.has_value());
  std::vector<gid_t> mine(static_cast<size_t>(::getgroups(0, nullptr)));
  mine.resize(static_cast<size_t>(::getgroups(static_cast<int>(mine.size()), mine.data())));
  std::sort(mine.begin(), mine.end());
  std::sort(groups->begin(), groups->end());
  CHECK(*groups == mine);
}
