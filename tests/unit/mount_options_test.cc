// The mount options table (src/fs/mount_options.h): one parser, one precedence.
#include "fs/mount_options.h"

#include <catch2/catch.hpp>

using namespace dtkfs::fs;

TEST_CASE("mount options: the last value wins, so long flags (appended) beat -o", "[fs]") {
  // What the CLI builds for `-o index=/a,compact_interval=5 --index /b --compact-interval 7`.
  auto o = ParseMountOptions({"index=/a,compact_interval=5", MountOption("index", "/b"),
                              MountOption("compact_interval", "7")});
  REQUIRE(o.ok());
  CHECK(o->index == "/b");
  CHECK(o->compact_interval == 7);
}

TEST_CASE("mount options: dtkfs's own are taken, fstab's dropped, libfuse's passed on", "[fs]") {
  auto o = ParseMountOptions({"defaults,nofail,_netdev,list_totals,threads=3,ro",
                              "allow_other,entry_timeout=2.5,attr_timeout=0,compact_threshold=9"});
  REQUIRE(o.ok());
  CHECK(o->fs.list_totals);
  CHECK(o->threads == 3);
  CHECK(o->fs.entry_timeout == 2.5);
  CHECK(o->fs.attr_timeout == 0);
  CHECK(o->fs.compact_threshold == 9);
  // libfuse gets ro and allow_other, and default_permissions comes with allow_other.
  std::string fuse;
  for (const auto& a : o->fuse) fuse += a + " ";
  CHECK(fuse.find("ro") != std::string::npos);
  CHECK(fuse.find("allow_other") != std::string::npos);
  CHECK(fuse.find("default_permissions") != std::string::npos);
  CHECK(fuse.find("defaults") == std::string::npos);
  CHECK(fuse.find("nofail") == std::string::npos);
  CHECK(fuse.find("threads") == std::string::npos);
}

TEST_CASE("mount options: a path with commas and backslashes survives as one value", "[fs]") {
  auto o = ParseMountOptions({MountOption("index", "/state/a,b\\c.idx")});
  REQUIRE(o.ok());
  CHECK(o->index == "/state/a,b\\c.idx");
}

TEST_CASE("mount options: bad values are refused with the valid range", "[fs]") {
  for (const char* bad : {"compact_interval=inf", "compact_interval=-1", "threads=0", "threads=1.5",
                          "entry_timeout=nan", "compact_threshold=1e12"}) {
    INFO(bad);
    auto o = ParseMountOptions({bad});
    REQUIRE_FALSE(o.ok());
    CHECK(o.status().message().find("valid:") != std::string::npos);
  }
  auto empty = ParseMountOptions({"index="});
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.status().message().find("empty") != std::string::npos);
}

TEST_CASE("regression: subtype= and fsname= are dtkfs's own: refused", "[fs]") {
  CHECK_FALSE(ParseMountOptions({"subtype=other"}).ok());
  CHECK_FALSE(ParseMountOptions({"ro,fsname=x"}).ok());
}

TEST_CASE("mount options: watch= and verify= choose how the source is watched", "[fs]") {
  auto defaults = ParseMountOptions({});
  REQUIRE(defaults.ok());
  CHECK(defaults->watch == WatchMode::kAuto);
  CHECK(defaults->verify);
  auto chosen = ParseMountOptions({"watch=inotify,verify=off"});
  REQUIRE(chosen.ok());
  CHECK(chosen->watch == WatchMode::kInotify);
  CHECK_FALSE(chosen->verify);
  CHECK(ParseMountOptions({"watch=fanotify"})->watch == WatchMode::kFanotify);
  CHECK(ParseMountOptions({"watch=off", "watch=auto"})->watch == WatchMode::kAuto);
  for (const char* bad : {"watch=yes", "watch=", "verify=1", "verify=", "watch=FANOTIFY"}) {
    INFO(bad);
    auto r = ParseMountOptions({bad});
    REQUIRE_FALSE(r.ok());
    const std::string key(bad, std::string_view(bad).find('='));
    CHECK_THAT(r.status().message(), Catch::Contains("-o " + key + ": bad value"));
  }
  // None of them reaches libfuse.
  for (const std::string& arg : chosen->fuse) CHECK(arg.find("watch") == std::string::npos);
}

TEST_CASE("the kernel keeps its caches long only when every change beside the mount is seen",
          "[fs]") {
  auto defaults = ParseMountOptions({});
  REQUIRE(defaults.ok());
  Options fs = defaults->fs;
  ChooseKernelCaching(*defaults, /*whole_source_watched=*/true, &fs);
  CHECK(fs.kernel_keeps);
  CHECK(fs.entry_timeout == kWatchedCacheTimeout);
  CHECK(fs.attr_timeout == kWatchedCacheTimeout);
  fs = defaults->fs;
  ChooseKernelCaching(*defaults, /*whole_source_watched=*/false, &fs);
  CHECK_FALSE(fs.kernel_keeps);
  CHECK(fs.entry_timeout == 1.0);
  CHECK(fs.attr_timeout == 1.0);
  // Chosen, whatever the watching.
  for (bool watched : {true, false}) {
    auto on = ParseMountOptions({"kernel_cache=on"});
    REQUIRE(on.ok());
    fs = on->fs;
    ChooseKernelCaching(*on, watched, &fs);
    CHECK(fs.kernel_keeps);
    CHECK(fs.attr_timeout == kWatchedCacheTimeout);
    auto off = ParseMountOptions({"kernel_cache=off"});
    REQUIRE(off.ok());
    fs = off->fs;
    ChooseKernelCaching(*off, watched, &fs);
    CHECK_FALSE(fs.kernel_keeps);
    CHECK(fs.entry_timeout == 1.0);
  }
  for (const char* bad : {"kernel_cache=", "kernel_cache=yes", "kernel_cache=ON"}) {
    INFO(bad);
    CHECK_FALSE(ParseMountOptions({bad}).ok());
  }
  // Given timeouts win either way.
  auto given = ParseMountOptions({"entry_timeout=0,attr_timeout=7"});
  REQUIRE(given.ok());
  for (bool watched : {true, false}) {
    fs = given->fs;
    ChooseKernelCaching(*given, watched, &fs);
    CHECK(fs.entry_timeout == 0.0);
    CHECK(fs.attr_timeout == 7.0);
  }
}

TEST_CASE("mount options: track_sizes= turns size accounting off", "[fs]") {
  CHECK(ParseMountOptions({})->fs.track_sizes);
  CHECK_FALSE(ParseMountOptions({"track_sizes=off"})->fs.track_sizes);
  CHECK(ParseMountOptions({"track_sizes=off,track_sizes=on"})->fs.track_sizes);
  for (const char* bad : {"track_sizes=", "track_sizes=no", "track_sizes=OFF"}) {
    INFO(bad);
    CHECK_FALSE(ParseMountOptions({bad}).ok());
  }
  CHECK(ParseMountOptions({"track_sizes=off"})->fuse.empty());
}

TEST_CASE("regression: options mount(8) adds for a helper are accepted, not passed to libfuse",
          "[fs]") {
  // What `mount -a` hands mount.dtkfs for `defaults,user,nofail,_netdev,x-systemd.automount`
  // (util-linux drops x-* itself today; older ones and other callers do not).
  auto o = ParseMountOptions({"rw,noexec,nosuid,nodev,user,_netdev,nofail",
                              "defaults,noauto,auto,users,x-systemd.automount,"
                              "x-systemd.requires=/srv,x-gvfs-show,comment=systemd.automount"});
  INFO(o.status().message());
  REQUIRE(o.ok());
  std::string fuse;
  for (const auto& a : o->fuse) fuse += a + " ";
  CHECK(fuse == "-o rw,noexec,nosuid,nodev ");
  // Only whole prefixes: an option that merely starts with an x is still libfuse's to refuse.
  CHECK(ParseMountOptions({"xattr_cache"})->fuse == std::vector<std::string>{"-o", "xattr_cache"});
}

TEST_CASE("mount options: the help lists every row of the table with its range", "[fs]") {
  const std::string help = MountOptionsHelp();
  for (const char* name : {"index=PATH",
                           "compact_interval=S",
                           "compact_threshold=N",
                           "threads=N",
                           "fd_budget=N",
                           "entry_timeout=S",
                           "attr_timeout=S",
                           "watch=auto|fanotify|inotify|off",
                           "verify=on|off",
                           "track_sizes=on|off",
                           "kernel_cache=auto|on|off",
                           "list_totals",
                           "allow_other",
                           "default_permissions",
                           "subtype=",
                           "fsname=",
                           "max_read=",
                           "defaults",
                           "noauto",
                           "nofail",
                           "_netdev",
                           "users",
                           "x-*",
                           "comment=*"}) {
    INFO(name);
    CHECK_THAT(help, Catch::Contains(name));
  }
  CHECK_THAT(help, Catch::Contains("whole numbers 1 to 256 threads"));
  CHECK_THAT(help, Catch::Contains("0 to 604800 seconds (0: no timer)"));
}

// Bug: `-o ,` or `-o ro,,list_totals,` (a doubled or trailing comma in an fstab line) made
// the mount fail with "libfuse refused the mount options": the empty item went to libfuse.
TEST_CASE("regression: empty items of -o are dropped, not handed to libfuse", "[fs]") {
  auto o = ParseMountOptions({",", "ro,,list_totals,", ",,allow_other"});
  REQUIRE(o.ok());
  CHECK(o->fs.list_totals);
  for (const auto& a : o->fuse) {
    INFO(a);
    CHECK_FALSE(a.empty());
    CHECK(a.find(",,") == std::string::npos);
    CHECK(a.front() != ',');
    CHECK(a.back() != ',');
  }
}
