// dtkfs: the command line. Declares the subcommands (cli/args.h) and dispatches to
// cli/cmd_*.cc and fs/daemon.cc.
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/mount_helper.h"
#include "cli/output.h"
#include "fs/daemon.h"
#include "fs/mount_options.h"

int main(int argc, char** argv) {
  using namespace dtkfs::cli;
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
          .Flag("--repair", "rewrite the index from the walk", &check.repair)
          .Flag("--json", "one JSON object of findings (fields: docs/export.md, \"JSON output\")",
                &check.json);

  ExportArgs exp;
  const Command& export_cmd =
      program
          .Add("export",
               "Write the totals of PATH and the directories below it for ncdu or Prometheus, "
               "from the index (on a mount: right after compacting it), without a walk")
          .Positional("PATH", "a directory inside a scanned source or a dtkfs mount", &exp.path)
          .Option("--format", "ncdu|prometheus",
                  "ncdu (ncdu's JSON export, 1.2: `ncdu -f FILE` browses it) or prometheus "
                  "(node_exporter textfile gauges)",
                  &exp.format)
          .Option("--index", "FILE", "index file (default: found from PATH)", &exp.index)
          .Option("--output", "FILE",
                  "write FILE whole (a temporary file beside it, then renamed) instead of "
                  "standard output",
                  &exp.output)
          .Option("--depth", "N",
                  "prometheus: directories at most N levels below PATH (default 1; 0: PATH "
                  "alone); refused with ncdu, which is always the whole tree",
                  dtkfs::ranges::kExportDepth, &exp.depth)
          .Option("--top", "N",
                  "prometheus: only the N largest of those directories (default 100; PATH is "
                  "always written); refused with ncdu",
                  dtkfs::ranges::kExportTop, &exp.top)
          .Option("--live", "compact|list",
                  "on a mount: compact it, then read its index, with no directory listed "
                  "(compact, the default; lists the mount when the index is not this user's or "
                  "the compaction fails), or list its directories (list)",
                  &exp.live)
          .Flag("-v,--verbose", "say on stderr where the totals came from, and why", &exp.verbose);

  dtkfs::fs::MountArgs mount;
  std::string mount_index;  // the long flags, handed to the daemon as -o values (below)
  double mount_interval = std::numeric_limits<double>::quiet_NaN();  // NaN: not given
  const Command& mount_cmd =
      program
          .Add("mount",
               "Mount a passthrough of SRC at MNT whose directories answer "
               "user.total_bytes")
          .Positional("SRC", "source directory", &mount.source)
          .Positional("MNT", "mount point (an empty directory)", &mount.mountpoint)
          .Option("--index", "FILE", "index file (default: the source's; same as -o index=)",
                  &mount_index)
          .Option("--compact-interval", "SECONDS",
                  "seconds between compactions when there are changes (default 60; "
                  "0 to 604800, 0: no timer; same as -o compact_interval=)",
                  dtkfs::ranges::kCompactInterval, &mount_interval)
          .Flag("-f,--foreground", "stay in the foreground, log to stderr", &mount.foreground)
          .Option("-o", "OPTIONS",
                  "mount options (below; comma-separated, repeatable; the last value of an "
                  "option wins, and the long flags come after every -o)",
                  &mount.options)
          .Epilog(dtkfs::fs::MountOptionsHelp());

  std::string mnt;
  const Command& umount_cmd =
      program.Add("umount", "Unmount MNT and wait for the daemon's final compaction")
          .Positional("MNT", "mount point", &mnt);
  bool status_json = false;
  const Command& status_cmd =
      program.Add("status", "Show the daemon's state for MNT")
          .Positional("MNT", "mount point", &mnt)
          .Flag("--json", "one JSON object (fields: docs/export.md, \"JSON output\")",
                &status_json);
  const Command& compact_cmd =
      program.Add("compact", "Compact MNT's index now").Positional("MNT", "mount point", &mnt);
  const Command& verify_cmd =
      program
          .Add("verify",
               "Compare every directory of MNT with its source now and correct what differs; "
               "waits for the end")
          .Positional("MNT", "mount point", &mnt);

  // mount(8)'s ways in (fstab types fuse.dtkfs and dtkfs) become `dtkfs mount ...`.
  auto invocation = ReadInvocation(std::vector<std::string>(argv, argv + argc),
                                   [&](std::string_view word) { return program.HasCommand(word); });
  if (!invocation.ok()) {
    std::fprintf(stderr, "%s\n", invocation.status().message().c_str());
    return kExitError;
  }
  if (invocation->fake) return kExitOk;
  std::vector<char*> args;
  for (std::string& arg : invocation->args) args.push_back(arg.data());
  args.push_back(nullptr);

  const Command* chosen = nullptr;
  if (auto exit = program.Parse(static_cast<int>(args.size()) - 1, args.data(), &chosen))
    return *exit == 0 ? kExitOk : kExitError;
  if (chosen == &scan_cmd) return RunScan(scan);
  if (chosen == &du_cmd) return RunDu(du);
  if (chosen == &top_cmd) return RunTop(top);
  if (chosen == &check_cmd) return RunCheck(check);
  if (chosen == &export_cmd) return RunExport(exp);
  if (chosen == &mount_cmd) {
    // One precedence for every way an option arrives (fs/mount_options.h): the long flags
    // are -o values after all the others, so they win.
    if (!mount_index.empty()) mount.options.push_back(dtkfs::fs::MountOption("index", mount_index));
    if (!std::isnan(mount_interval))
      mount.options.push_back(
          dtkfs::fs::MountOption("compact_interval", fmt::format("{}", mount_interval)));
    mount.on_scan_progress = TerminalProgress();
    return dtkfs::fs::RunMount(mount);
  }
  if (chosen == &umount_cmd) return RunUmount(mnt);
  if (chosen == &status_cmd) return RunStatus(mnt, status_json);
  if (chosen == &compact_cmd) return RunCompact(mnt);
  if (chosen == &verify_cmd) return RunVerify(mnt);
  return kExitError;
}
