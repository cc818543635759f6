// dtkfs's command line with CLI11 (header-only), all in this one file.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "dump.h"

int main(int argc, char** argv) {
  // mount.fuse3 (fstab: `SRC MNT fuse.dtkfs OPTIONS`) runs `dtkfs SRC MNT -o OPTIONS`.
  static const std::set<std::string> kCommands = {"scan",   "du",     "top",     "check", "mount",
                                                  "umount", "status", "compact", "help"};
  std::vector<char*> args(argv, argv + argc);
  static char mount_word[] = "mount";
  if (argc >= 3 && args[1][0] != '-' && kCommands.count(args[1]) == 0)
    args.insert(args.begin() + 1, mount_word);

  CLI::App app("how big is this directory tree, right now?", "dtkfs");
  app.set_version_flag("--version", "dtkfs 0.1");
  app.require_subcommand(1);
  // --json=1 and the like are errors, as in args.h.
  app.option_defaults()->disable_flag_override();

  ScanArgs scan;
  CLI::App* scan_cmd = app.add_subcommand("scan", "Build or rebuild the size index of SRC");
  scan_cmd->add_option("SRC", scan.source, "source directory")->required();
  scan_cmd->add_option("--index", scan.index, "index file (default: under $XDG_STATE_HOME/dtkfs)")
      ->type_name("FILE");

  // `-h` means human-readable in du and top, as in du(1); --help stays the help flag.
  DuArgs du;
  CLI::App* du_cmd =
      app.add_subcommand("du", "Print BYTES<TAB>PATH for each PATH, from the index or the mount");
  du_cmd->set_help_flag("--help", "Print this help message and exit");
  du_cmd->add_option("PATH", du.paths, "paths inside a scanned source or a dtkfs mount")
      ->required();
  du_cmd->add_option("--index", du.index, "index file (default: found from PATH)")
      ->type_name("FILE");
  du_cmd->add_flag("-h,--human-readable", du.human, "sizes like 1.5K, 234M, 2G");
  du_cmd->add_flag("--json", du.json, "a JSON array of {path, bytes, files, dirs}");

  TopArgs top;
  auto whole = [](const std::string& s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos
               ? std::string()
               : "'" + s + "' is not a whole number";
  };
  CLI::App* top_cmd = app.add_subcommand("top", "The N largest directories below PATH");
  top_cmd->set_help_flag("--help", "Print this help message and exit");
  top_cmd->add_option("PATH", top.path, "a directory inside a scanned source or a dtkfs mount")
      ->required();
  top_cmd->add_option("--index", top.index, "index file (default: found from PATH)")
      ->type_name("FILE");
  top_cmd->add_option("-n", top.count, "how many (default 10)")->type_name("N")->check(whole);
  top_cmd->add_option("--depth", top.depth, "only directories at most D levels below PATH")
      ->type_name("D")
      ->check(whole);
  top_cmd->add_flag("-h,--human-readable", top.human, "sizes like 1.5K, 234M, 2G");
  top_cmd->add_flag("--json", top.json, "a JSON array of {path, bytes, files, dirs}");

  CheckArgs check;
  CLI::App* check_cmd =
      app.add_subcommand("check", "Walk SRC, compare with its index, list what differs");
  check_cmd->add_option("SRC", check.source, "source directory")->required();
  check_cmd->add_option("--index", check.index, "index file (default: the source's)")
      ->type_name("FILE");
  check_cmd->add_flag("--repair", check.repair, "rewrite the index from the walk");

  MountArgs mount;
  CLI::App* mount_cmd = app.add_subcommand(
      "mount", "Mount a passthrough of SRC at MNT whose directories answer user.total_bytes");
  mount_cmd->add_option("SRC", mount.source, "source directory")->required();
  mount_cmd->add_option("MNT", mount.mountpoint, "mount point (an empty directory)")->required();
  mount_cmd->add_option("--index", mount.index, "index file (default: the source's)")
      ->type_name("FILE");
  mount_cmd
      ->add_option("--compact-interval", mount.compact_interval,
                   "seconds between compactions when there are changes (default 60)")
      ->type_name("SECONDS")
      ->check([](const std::string& s) {
        double d = 0;
        return CLI::detail::lexical_cast(s, d) && d >= 0 ? std::string()
                                                         : "'" + s + "' is not a number of seconds";
      });
  mount_cmd->add_flag("-f,--foreground", mount.foreground, "stay in the foreground, log to stderr");
  mount_cmd
      ->add_option("-o", mount.options,
                   "mount options: index=PATH, compact_interval=S, list_totals, allow_other, "
                   "... (comma-separated, repeatable)")
      ->type_name("OPTIONS")
      ->allow_extra_args(false);

  std::string mnt;
  CLI::App* umount_cmd =
      app.add_subcommand("umount", "Unmount MNT and wait for the daemon's final compaction");
  umount_cmd->add_option("MNT", mnt, "mount point")->required();
  CLI::App* status_cmd = app.add_subcommand("status", "Show the daemon's state for MNT");
  status_cmd->add_option("MNT", mnt, "mount point")->required();
  CLI::App* compact_cmd = app.add_subcommand("compact", "Compact MNT's index now");
  compact_cmd->add_option("MNT", mnt, "mount point")->required();

  if (args.size() > 1 && std::string(args[1]) == "help") {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  }
  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::string where = "dtkfs";
    for (const CLI::App* sub : app.get_subcommands({}))
      if (sub->parsed()) where += " " + sub->get_name();
    std::fprintf(stderr, "%s: %s (see %s --help)\n", where.c_str(), e.what(), where.c_str());
    return 2;
  }
  if (scan_cmd->parsed()) return Dump(scan);
  if (du_cmd->parsed()) return Dump(du);
  if (top_cmd->parsed()) return Dump(top);
  if (check_cmd->parsed()) return Dump(check);
  if (mount_cmd->parsed()) return Dump(mount);
  if (umount_cmd->parsed()) return Dump("umount", mnt);
  if (status_cmd->parsed()) return Dump("status", mnt);
  if (compact_cmd->parsed()) return Dump("compact", mnt);
  return 2;
}
