// dtkfs's command line with Boost.Program_options, all in this one file. Program_options has no
// subcommands: argv[1] picks the command and the rest is parsed with that command's options.
#include <algorithm>
#include <boost/program_options.hpp>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "dump.h"

namespace po = boost::program_options;

namespace {

struct Command {
  std::string name, summary, positionals_usage;
  po::options_description options{"Options"}, hidden;
  po::positional_options_description positionals;
  std::vector<std::string> required;  // positionals that must be given
  bool dash_h_is_help = true;

  Command(std::string n, std::string s) : name(std::move(n)), summary(std::move(s)) {}
  Command& Positional(const char* pos, const char* help, std::string* target) {
    hidden.add_options()(pos, po::value(target)->required(), help);
    positionals.add(pos, 1);
    positionals_usage += std::string(" ") + pos;
    required.push_back(pos);
    return *this;
  }
  Command& Positionals(const char* pos, const char* help, std::vector<std::string>* target) {
    hidden.add_options()(pos, po::value(target), help);
    positionals.add(pos, -1);
    positionals_usage += std::string(" ") + pos + "...";
    required.push_back(pos);
    return *this;
  }
  std::string Usage() const {
    std::ostringstream out;
    out << "Usage: dtkfs " << name << (options.options().empty() ? "" : " [OPTIONS]")
        << positionals_usage << "\n\n"
        << summary << "\n\n"
        << options;
    return out.str();
  }
};

std::string WholeNumber(const std::string& v, size_t* target) {
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), *target);
  if (ec != std::errc() || end != v.data() + v.size() || v.empty())
    return "'" + v + "' is not a whole number";
  return "";
}

std::string Seconds(const std::string& v, double* target) {
  char* end = nullptr;
  *target = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || !(*target >= 0))
    return "'" + v + "' is not a number of seconds";
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  // mount.fuse3 (fstab: `SRC MNT fuse.dtkfs OPTIONS`) runs `dtkfs SRC MNT -o OPTIONS`.
  static const std::set<std::string> kCommands = {"scan",   "du",     "top",     "check", "mount",
                                                  "umount", "status", "compact", "help"};
  std::vector<char*> args(argv, argv + argc);
  static char mount_word[] = "mount";
  if (argc >= 3 && args[1][0] != '-' && kCommands.count(args[1]) == 0)
    args.insert(args.begin() + 1, mount_word);

  ScanArgs scan;
  Command scan_cmd("scan", "Build or rebuild the size index of SRC");
  scan_cmd.Positional("SRC", "source directory", &scan.source);
  scan_cmd.options.add_options()("index", po::value(&scan.index)->value_name("FILE"),
                                 "index file (default: under $XDG_STATE_HOME/dtkfs)");

  // `-h` means human-readable in du and top, as in du(1); --help stays the help flag.
  DuArgs du;
  Command du_cmd("du", "Print BYTES<TAB>PATH for each PATH, from the index or the mount");
  du_cmd.dash_h_is_help = false;
  du_cmd.Positionals("PATH", "paths inside a scanned source or a dtkfs mount", &du.paths);
  du_cmd.options.add_options()("index", po::value(&du.index)->value_name("FILE"),
                               "index file (default: found from PATH)")(
      "human-readable,h", po::bool_switch(&du.human), "sizes like 1.5K, 234M, 2G")(
      "json", po::bool_switch(&du.json), "a JSON array of {path, bytes, files, dirs}");

  TopArgs top;
  std::string top_count, top_depth;
  Command top_cmd("top", "The N largest directories below PATH");
  top_cmd.dash_h_is_help = false;
  top_cmd.Positional("PATH", "a directory inside a scanned source or a dtkfs mount", &top.path);
  top_cmd.options.add_options()("index", po::value(&top.index)->value_name("FILE"),
                                "index file (default: found from PATH)")(
      ",n", po::value(&top_count)->value_name("N"), "how many (default 10)")(
      "depth", po::value(&top_depth)->value_name("D"),
      "only directories at most D levels below PATH")(
      "human-readable,h", po::bool_switch(&top.human), "sizes like 1.5K, 234M, 2G")(
      "json", po::bool_switch(&top.json), "a JSON array of {path, bytes, files, dirs}");

  CheckArgs check;
  Command check_cmd("check", "Walk SRC, compare with its index, list what differs");
  check_cmd.Positional("SRC", "source directory", &check.source);
  check_cmd.options.add_options()("index", po::value(&check.index)->value_name("FILE"),
                                  "index file (default: the source's)")(
      "repair", po::bool_switch(&check.repair), "rewrite the index from the walk");

  MountArgs mount;
  std::string mount_interval;
  Command mount_cmd("mount",
                    "Mount a passthrough of SRC at MNT whose directories answer user.total_bytes");
  mount_cmd.Positional("SRC", "source directory", &mount.source)
      .Positional("MNT", "mount point (an empty directory)", &mount.mountpoint);
  mount_cmd.options.add_options()("index", po::value(&mount.index)->value_name("FILE"),
                                  "index file (default: the source's)")(
      "compact-interval", po::value(&mount_interval)->value_name("SECONDS"),
      "seconds between compactions when there are changes (default 60)")(
      "foreground,f", po::bool_switch(&mount.foreground), "stay in the foreground, log to stderr")(
      ",o", po::value(&mount.options)->value_name("OPTIONS"),
      "mount options: index=PATH, compact_interval=S, list_totals, allow_other, "
      "... (comma-separated, repeatable)");

  std::string mnt;
  Command umount_cmd("umount", "Unmount MNT and wait for the daemon's final compaction");
  umount_cmd.Positional("MNT", "mount point", &mnt);
  Command status_cmd("status", "Show the daemon's state for MNT");
  status_cmd.Positional("MNT", "mount point", &mnt);
  Command compact_cmd("compact", "Compact MNT's index now");
  compact_cmd.Positional("MNT", "mount point", &mnt);

  Command* commands[] = {&scan_cmd,  &du_cmd,     &top_cmd,    &check_cmd,
                         &mount_cmd, &umount_cmd, &status_cmd, &compact_cmd};
  auto program_usage = [&] {
    std::string out =
        "Usage: dtkfs COMMAND [ARGS]...\n\n"
        "dtkfs: how big is this directory tree, right now?\n\nCommands:\n";
    for (const Command* c : commands) {
      std::string name = c->name;
      name.resize(std::max<size_t>(name.size(), 10), ' ');
      out += "  " + name + c->summary + "\n";
    }
    return out + "\n`dtkfs COMMAND --help` tells more; `dtkfs --version` prints the version.\n";
  };
  if (args.size() < 2) {
    std::fprintf(stderr, "dtkfs: a command is required\n%s", program_usage().c_str());
    return 2;
  }
  const std::string first = args[1];
  if (first == "--help" || first == "-h" || first == "help") {
    std::fputs(program_usage().c_str(), stdout);
    return 0;
  }
  if (first == "--version") {
    std::puts("dtkfs 0.1");
    return 0;
  }
  Command* chosen = nullptr;
  for (Command* c : commands)
    if (c->name == first) chosen = c;
  if (!chosen) {
    std::fprintf(stderr, "dtkfs: unknown command '%s' (see dtkfs --help)\n", first.c_str());
    return 2;
  }

  const std::vector<std::string> rest(args.begin() + 2, args.end());
  for (const std::string& a : rest) {
    if (a == "--") break;
    if (a == "--help" || (a == "-h" && chosen->dash_h_is_help)) {
      std::fputs(chosen->Usage().c_str(), stdout);
      return 0;
    }
  }
  std::string problem;
  try {
    po::options_description all;
    all.add(chosen->options).add(chosen->hidden);
    po::variables_map vm;
    po::store(
        po::command_line_parser(rest)
            .options(all)
            .positional(chosen->positionals)
            .style(po::command_line_style::default_style & ~po::command_line_style::allow_guessing)
            .run(),
        vm);
    for (const std::string& pos : chosen->required)
      if (!vm.count(pos) && problem.empty()) problem = "missing " + pos;
    if (problem.empty()) po::notify(vm);
    if (vm.count("-n") && problem.empty())
      if (std::string p = WholeNumber(top_count, &top.count); !p.empty()) problem = "-n: " + p;
    if (vm.count("depth") && problem.empty())
      if (std::string p = WholeNumber(top_depth, &top.depth); !p.empty()) problem = "--depth: " + p;
    if (vm.count("compact-interval") && problem.empty())
      if (std::string p = Seconds(mount_interval, &mount.compact_interval); !p.empty())
        problem = "--compact-interval: " + p;
  } catch (const po::error& e) {
    problem = e.what();
  }
  if (!problem.empty()) {
    std::fprintf(stderr, "dtkfs %s: %s (see dtkfs %s --help)\n", first.c_str(), problem.c_str(),
                 first.c_str());
    return 2;
  }
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
