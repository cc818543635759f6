// A small declarative command-line parser: one program with subcommands, each with flags,
// options that take a value, and positional arguments. Kept over CLI11 and
// Boost.Program_options after measuring all three on dtkfs's command line
// (docs/benchmarks.md, "Command-line parser"): a third of CLI11's compile time, the smallest
// binary, no new library, and every behaviour below without glue.
//
//   Program program("dtkfs", "how big is this directory tree, right now?", "dtkfs 0.1");
//   Command& du = program.Add("du", "Print BYTES<TAB>PATH for each PATH");
//   du.Flag("-h,--human-readable", "sizes like 1.5K", &args.human);
//   du.Option("--index", "FILE", "index file", &args.index);
//   du.Positionals("PATH", "paths inside a scanned source", &args.paths);
//   Command* chosen = nullptr;
//   if (auto exit = program.Parse(argc, argv, &chosen)) return *exit;
//
// Option forms: `--name VALUE`, `--name=VALUE`, `-n VALUE`, `-nVALUE`; `--` ends options.
// `--help` (and `-h` where a command does not use it) prints usage to stdout and exits 0;
// any usage error prints one line naming the command and the problem to stderr, exit 2.
#pragma once

#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/option_ranges.h"

namespace dtkfs::cli {

class Command {
 public:
  Command(std::string name, std::string summary);

  // names: comma-separated spellings, e.g. "-f,--foreground".
  Command& Flag(std::string names, std::string help, bool* target);
  // A string option refuses an empty value ('--index ""' must not mean "the default").
  Command& Option(std::string names, std::string value_name, std::string help, std::string* target);
  // Numeric options take their valid range from util/option_ranges.h.
  Command& Option(std::string names, std::string value_name, std::string help,
                  const NumberRange& range, size_t* target);
  Command& Option(std::string names, std::string value_name, std::string help,
                  const NumberRange& range, double* target);
  // Each use appends one value.
  Command& Option(std::string names, std::string value_name, std::string help,
                  std::vector<std::string>* target);
  // Positionals are taken in the order declared; a vector takes all that remain (at least one).
  Command& Positional(std::string name, std::string help, std::string* target);
  Command& Positionals(std::string name, std::string help, std::vector<std::string>* target);

  // Text printed after the options in --help (e.g. mount's -o options, from their table).
  Command& Epilog(std::string text);

  const std::string& name() const { return name_; }
  const std::string& summary() const { return summary_; }
  std::string Usage(std::string_view program) const;
  // Fills the targets from args; returns the problem, or "" when the arguments are fine.
  std::string Parse(const std::vector<std::string>& args, bool* help) const;

 private:
  struct Opt {
    std::vector<std::string> names;
    std::string value_name;  // empty: a flag
    std::string help;
    std::function<std::string(std::string_view)> set;  // returns a problem or ""
  };
  struct Pos {
    std::string name, help;
    std::function<void(std::string)> set;
    bool many;
  };
  Command& AddOption(std::string names, std::string value_name, std::string help,
                     std::function<std::string(std::string_view)> set);
  const Opt* Find(std::string_view name) const;

  std::string name_, summary_, epilog_;
  std::vector<Opt> options_;
  std::vector<Pos> positionals_;
};

class Program {
 public:
  Program(std::string name, std::string summary, std::string version);
  Command& Add(std::string name, std::string summary);
  // Parses argv; on success sets *chosen and returns nullopt; otherwise returns the exit
  // status to leave with (0 after --help/--version, 2 after a usage error).
  std::optional<int> Parse(int argc, char** argv, const Command** chosen) const;
  std::string Usage() const;
  // Whether name is one of the commands (or "help").
  bool HasCommand(std::string_view name) const;

 private:
  std::string name_, summary_, version_;
  std::deque<Command> commands_;  // a deque: Add's references stay valid
};

}  // namespace dtkfs::cli
