// Which mounts inside a source are aliases (src/scan/nested_mounts.h), from mountinfo text.
#include "scan/nested_mounts.h"

#include <catch2/catch.hpp>

using namespace dtkfs;

TEST_CASE("mount table: bind mounts and repeated filesystems inside the source are aliases",
          "[scan][mounts]") {
  const std::string info =
      "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
      "20 1 8:2 / /srv rw - ext4 /dev/sda2 rw\n"                // the source's filesystem
      "30 20 8:2 /data/a /srv/data/b rw - ext4 /dev/sda2 rw\n"  // bind of a subdirectory
      "31 20 8:2 / /srv/data/whole rw - ext4 /dev/sda2 rw\n"    // the source's fs again
      "32 20 0:50 / /srv/data/tmp rw - tmpfs tmpfs rw\n"        // a separate fs, once
      "33 20 0:60 / /srv/data/twice1 rw - tmpfs tmpfs rw\n"     // one fs at two places
      "34 20 0:60 / /srv/data/twice2 rw - tmpfs tmpfs rw\n"
      "35 30 0:70 / /srv/data/b/inner rw - tmpfs tmpfs rw\n"  // below an alias
      "36 20 0:80 / /srv/data/with\\040space rw - tmpfs tmpfs rw\n"
      "37 1 0:90 / /srvx rw - tmpfs tmpfs rw\n";  // beside, not inside
  NestedMounts m = NestedMounts::Parse(info, "/srv/data", 20);
  CHECK(m.alias_paths() == std::set<std::string>{"b", "twice1", "twice2", "whole"});
  CHECK(m.IsAlias(30));
  CHECK(m.IsAlias(31));
  CHECK_FALSE(m.IsAlias(32));
  CHECK_FALSE(m.IsAlias(35));  // never reached
  CHECK_FALSE(m.IsAlias(36));
  CHECK(m.Knows(36));
  CHECK_FALSE(m.Knows(37));
}

TEST_CASE("mount table: a later mount at the same point hides the earlier one", "[scan][mounts]") {
  const std::string info =
      "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
      "40 1 0:50 / /s/m rw - tmpfs tmpfs rw\n"
      "41 40 8:1 /s/x /s/m rw - ext4 /dev/sda1 rw\n";  // a bind over the tmpfs
  NestedMounts m = NestedMounts::Parse(info, "/s", 1);
  CHECK(m.alias_paths() == std::set<std::string>{"m"});
  CHECK(m.IsAlias(41));
}
