// dtkfs: the command line. Parses with CLI11 and dispatches to cli/cmd_*.cc.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"

int main(int argc, char** argv) {
  using namespace dtkfs::cli;
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
  return kExitError;
}
