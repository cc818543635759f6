// dtkfs's command line with the project's own parser (src/cli/args.h, args.cc).
#include <set>
#include <string>
#include <vector>

#include "cli/args.h"
#include "dump.h"
#include "util/option_ranges.h"

int main(int argc, char** argv) {
  using namespace dtkfs::cli;
  // mount.fuse3 (fstab: `SRC MNT fuse.dtkfs OPTIONS`) runs `dtkfs SRC MNT -o OPTIONS`.
  static const std::set<std::string> kCommands = {"scan",   "du",     "top",     "check", "mount",
                                                  "umount", "status", "compact", "help"};
  std::vector<char*> args(argv, argv + argc);
  static char mount_word[] = "mount";
  if (argc >= 3 && args[1][0] != '-' && kCommands.count(args[1]) == 0)
    args.insert(args.begin() + 1, mount_word);

  Program program("dtkfs", "how big is this directory tree, right now?", "dtkfs 0.1");

  ScanArgs scan;
  const Command& scan_cmd =
      program.Add("scan", "Build or rebuild the size index of SRC")
          .Positional("SRC", "source directory", &scan.source)
          .Option("--index", "FILE", "index file (default: under $XDG_STATE_HOME/dtkfs)",
                  &scan.index);

  // `-h` means human-readable in du and top, as in du(1); --help stays the help flag.
  DuArgs du;
  const Command& du_cmd =
      program.Add("du", "Print BYTES<TAB>PATH for each PATH, from the index or the mount")
          .Positionals("PATH", "paths inside a scanned source or a dtkfs mount", &du.paths)
          .Option("--index", "FILE", "index file (default: found from PATH)", &du.index)
          .Flag("-h,--human-readable", "sizes like 1.5K, 234M, 2G", &du.human)
          .Flag("--json", "a JSON array of {path, bytes, files, dirs}", &du.json);

  TopArgs top;
  const Command& top_cmd =
      program.Add("top", "The N largest directories below PATH")
          .Positional("PATH", "a directory inside a scanned source or a dtkfs mount", &top.path)
          .Option("--index", "FILE", "index file (default: found from PATH)", &top.index)
          .Option("-n", "N", "how many (default 10)", dtkfs::ranges::kTopCount, &top.count)
          .Option("--depth", "D", "only directories at most D levels below PATH",
                  dtkfs::ranges::kTopDepth, &top.depth)
          .Flag("-h,--human-readable", "sizes like 1.5K, 234M, 2G", &top.human)
          .Flag("--json", "a JSON array of {path, bytes, files, dirs}", &top.json);

  CheckArgs check;
  const Command& check_cmd =
      program.Add("check", "Walk SRC, compare with its index, list what differs")
          .Positional("SRC", "source directory", &check.source)
          .Option("--index", "FILE", "index file (default: the source's)", &check.index)
          .Flag("--repair", "rewrite the index from the walk", &check.repair);

  MountArgs mount;
  const Command& mount_cmd =
      program
          .Add("mount",
               "Mount a passthrough of SRC at MNT whose directories answer "
               "user.total_bytes")
          .Positional("SRC", "source directory", &mount.source)
          .Positional("MNT", "mount point (an empty directory)", &mount.mountpoint)
          .Option("--index", "FILE", "index file (default: the source's)", &mount.index)
          .Option("--compact-interval", "SECONDS",
                  "seconds between compactions when there are changes (default 60)",
                  dtkfs::ranges::kCompactInterval, &mount.compact_interval)
          .Flag("-f,--foreground", "stay in the foreground, log to stderr", &mount.foreground)
          .Option("-o", "OPTIONS",
                  "mount options: index=PATH, compact_interval=S, list_totals, allow_other, "
                  "... (comma-separated, repeatable)",
                  &mount.options);

  std::string mnt;
  const Command& umount_cmd =
      program.Add("umount", "Unmount MNT and wait for the daemon's final compaction")
          .Positional("MNT", "mount point", &mnt);
  const Command& status_cmd = program.Add("status", "Show the daemon's state for MNT")
                                  .Positional("MNT", "mount point", &mnt);
  const Command& compact_cmd =
      program.Add("compact", "Compact MNT's index now").Positional("MNT", "mount point", &mnt);

  const Command* chosen = nullptr;
  if (auto exit = program.Parse(static_cast<int>(args.size()), args.data(), &chosen))
    return *exit == 0 ? 0 : 2;
  if (chosen == &scan_cmd) return Dump(scan);
  if (chosen == &du_cmd) return Dump(du);
  if (chosen == &top_cmd) return Dump(top);
  if (chosen == &check_cmd) return Dump(check);
  if (chosen == &mount_cmd) return Dump(mount);
  if (chosen == &umount_cmd) return Dump("umount", mnt);
  if (chosen == &status_cmd) return Dump("status", mnt);
  if (chosen == &compact_cmd) return Dump("compact", mnt);
  return 2;
}
