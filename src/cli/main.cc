// dtkfs: the command line. Parses with CLI11 and dispatches to cli/cmd_*.cc.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <set>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/output.h"
#include "fs/daemon.h"

int main(int argc, char** argv) {
  using namespace dtkfs::cli;
  // mount.fuse3 (fstab: `SRC MNT fuse.dtkfs OPTIONS`) runs `dtkfs SRC MNT -o OPTIONS`.
  static const std::set<std::string> kCommands = {"scan", "du", "top", "check", "mount",
                                                  "umount", "status", "compact"};
  std::vector<char*> args(argv, argv + argc);
  static char mount_word[] = "mount";
  if (argc >= 3 && args[1][0] != '-' && kCommands.count(args[1]) == 0)
    args.insert(args.begin() + 1, mount_word);
  argc = static_cast<int>(args.size());
  argv = args.data();

  CLI::App app{"dtkfs: how big is this directory tree, right now?"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "dtkfs 0.1");

  ScanArgs scan;
  auto* scan_cmd = app.add_subcommand("scan", "Build or rebuild the size index of SRC");
  scan_cmd->add_option("SRC", scan.source, "source directory")->required();
  scan_cmd->add_option("--index", scan.index, "index file (default: under $XDG_STATE_HOME/dtkfs)");

  DuArgs du;
  auto* du_cmd = app.add_subcommand("du", "Print BYTES<TAB>PATH for each PATH, from the index");
  // `-h` means human-readable in du and top, as in du(1); --help stays the help flag.
  du_cmd->set_help_flag("--help", "Print this help message and exit");
  du_cmd->add_option("PATH", du.paths, "paths inside a scanned source")->required();
  du_cmd->add_option("--index", du.index, "index file (default: found from PATH)");
  du_cmd->add_flag("-h,--human-readable", du.human, "sizes like 1.5K, 234M, 2G");
  du_cmd->add_flag("--json", du.json, "a JSON array of {path, bytes, files, dirs}");

  TopArgs top;
  auto* top_cmd = app.add_subcommand("top", "The N largest directories below PATH");
  top_cmd->set_help_flag("--help", "Print this help message and exit");
  top_cmd->add_option("PATH", top.path, "a directory inside a scanned source")->required();
  top_cmd->add_option("--index", top.index, "index file (default: found from PATH)");
  top_cmd->add_option("-n", top.count, "how many (default 10)");
  top_cmd->add_option("--depth", top.depth, "only directories at most D levels below PATH");
  top_cmd->add_flag("-h,--human-readable", top.human, "sizes like 1.5K, 234M, 2G");
  top_cmd->add_flag("--json", top.json, "a JSON array of {path, bytes, files, dirs}");

  CheckArgs check;
  auto* check_cmd =
      app.add_subcommand("check", "Walk SRC, compare with its index, list what differs");
  check_cmd->add_option("SRC", check.source, "source directory")->required();
  check_cmd->add_option("--index", check.index, "index file (default: the source's)");
  check_cmd->add_flag("--repair", check.repair, "rewrite the index from the walk");


  dtkfs::fs::MountArgs mount;
  auto* mount_cmd = app.add_subcommand(
      "mount", "Mount a passthrough of SRC at MNT whose directories answer user.total_bytes");
  mount_cmd->add_option("SRC", mount.source, "source directory")->required();
  mount_cmd->add_option("MNT", mount.mountpoint, "mount point (an empty directory)")->required();
  mount_cmd->add_option("--index", mount.index, "index file (default: the source's)");
  mount_cmd->add_option("--compact-interval", mount.compact_interval,
                        "seconds between compactions when there are changes (default 60)");
  mount_cmd->add_flag("-f,--foreground", mount.foreground, "stay in the foreground, log to stderr");
  mount_cmd->add_option("-o", mount.options,
                        "mount options: index=PATH, compact_interval=S, list_totals, "
                        "allow_other, ... (comma-separated, repeatable)");

  std::string mnt;
  auto* umount_cmd = app.add_subcommand(
      "umount", "Unmount MNT and wait for the daemon's final compaction");
  umount_cmd->add_option("MNT", mnt, "mount point")->required();
  auto* status_cmd = app.add_subcommand("status", "Show the daemon's state for MNT");
  status_cmd->add_option("MNT", mnt, "mount point")->required();
  auto* compact_cmd = app.add_subcommand("compact", "Compact MNT's index now");
  compact_cmd->add_option("MNT", mnt, "mount point")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitError;
  }
  if (*scan_cmd) return RunScan(scan);
  if (*du_cmd) return RunDu(du);
  if (*top_cmd) return RunTop(top);
  if (*check_cmd) return RunCheck(check);
  if (*mount_cmd) return dtkfs::fs::RunMount(mount);
  if (*umount_cmd) return RunUmount(mnt);
  if (*status_cmd) return RunStatus(mnt);
  if (*compact_cmd) return RunCompact(mnt);
  return kExitError;
}
