// The command-line parser (src/cli/args.h): the forms users type, and the errors they get.
#include "cli/args.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace dtkfs::cli {
namespace {

struct Parsed {
  std::string index;
  size_t n = 10;
  double seconds = 60;
  bool human = false;
  std::vector<std::string> opts, paths;
  std::string problem;
  bool help = false;
};

Parsed ParseDu(std::vector<std::string> args) {
  Parsed p;
  Command c("du", "test");
  c.Positionals("PATH", "paths", &p.paths)
      .Option("--index", "FILE", "index", &p.index)
      .Option("-n", "N", "count", ranges::kTopCount, &p.n)
      .Option("--interval", "S", "seconds", ranges::kCompactInterval, &p.seconds)
      .Option("-o", "OPTS", "options", &p.opts)
      .Flag("-h,--human-readable", "human", &p.human);
  p.problem = c.Parse(args, &p.help);
  return p;
}

TEST_CASE("args: option forms, repeated options, -- and positionals", "[cli]") {
  Parsed p = ParseDu({"a", "--index", "i1", "-n", "3", "b", "-o", "x,y", "-oz", "--", "-c"});
  CHECK(p.problem == "");
  CHECK(p.index == "i1");
  CHECK(p.n == 3);
  CHECK(p.opts == std::vector<std::string>{"x,y", "z"});
  CHECK(p.paths == std::vector<std::string>{"a", "b", "-c"});
  CHECK_FALSE(p.help);

  p = ParseDu({"--index=/x=y", "-n7", "--interval=0.5", "--human-readable", "p"});
  CHECK(p.problem == "");
  CHECK(p.index == "/x=y");
  CHECK(p.n == 7);
  CHECK(p.seconds == 0.5);
  CHECK(p.human);
  // -h is the command's own flag here, so it is not help.
  p = ParseDu({"-h", "p"});
  CHECK(p.human);
  CHECK_FALSE(p.help);
  CHECK(ParseDu({"p", "--help"}).help);
}

TEST_CASE("regression: numeric options refuse NaN, inf, negative and huge values", "[cli]") {
  const std::string interval_range = " (valid: 0 to 604800 seconds (0: no timer))";
  for (const char* bad : {"1e10", "604801", "1e308"})
    CHECK(ParseDu({"p", "--interval", bad}).problem ==
          std::string("--interval: '") + bad + "' is out of range" + interval_range);
  for (const char* bad : {"inf", "-inf", "nan", "NAN", "infinity", "1e400"})
    CHECK(ParseDu({"p", "--interval", bad}).problem ==
          std::string("--interval: '") + bad + "' is not a finite number" + interval_range);
  CHECK(ParseDu({"p", "--interval", " 5"}).problem ==
        "--interval: ' 5' is not a number" + interval_range);
  for (const char* good : {"0", "604800", "0.25", "1e3"}) {
    INFO(good);
    CHECK(ParseDu({"p", "--interval", good}).problem == "");
  }
  CHECK(ParseDu({"p", "-n", "1e20"}).problem ==
        "-n: '1e20' is out of range (valid: whole numbers 1 to 1000000000 directories)");
  // The -o mount options share the same table and parser (src/fs/daemon.cc).
  CHECK(ParseNumber("inf", ranges::kCompactInterval).status().message() ==
        "'inf' is not a finite number" + interval_range);
  CHECK(!ParseNumber("257", ranges::kThreads).ok());
  CHECK(!ParseNumber("0", ranges::kCompactThreshold).ok());
  CHECK(!ParseNumber("86401", ranges::kEntryTimeout).ok());
  CHECK(*ParseNumber("86400", ranges::kAttrTimeout) == 86400);
}

TEST_CASE("args: usage errors name the problem", "[cli]") {
  CHECK(ParseDu({}).problem == "missing PATH");
  CHECK(ParseDu({"p", "--nope"}).problem == "unknown option '--nope'");
  CHECK(ParseDu({"p", "--index"}).problem == "--index needs a value (FILE)");
  const std::string count_range = " (valid: whole numbers 1 to 1000000000 directories)";
  CHECK(ParseDu({"p", "-n", "x"}).problem == "-n: 'x' is not a number" + count_range);
  CHECK(ParseDu({"p", "-n", "-1"}).problem == "-n: '-1' is out of range" + count_range);
  CHECK(ParseDu({"p", "-n", "5k"}).problem == "-n: '5k' is not a number" + count_range);
  CHECK(ParseDu({"p", "-n", "2.5"}).problem == "-n: '2.5' is not a whole number" + count_range);
  const std::string interval_range = " (valid: 0 to 604800 seconds (0: no timer))";
  CHECK(ParseDu({"p", "--interval", "-3"}).problem ==
        "--interval: '-3' is out of range" + interval_range);
  CHECK(ParseDu({"p", "--index", ""}).problem == "--index: an empty value is not allowed");
  CHECK(ParseDu({"p", "--human-readable=1"}).problem == "--human-readable takes no value");

  std::string one, two;
  bool help = false;
  Command c("umount", "test");
  c.Positional("MNT", "mount point", &one);
  CHECK(c.Parse({"a", "b"}, &help) == "unexpected argument 'b'");
  Command m("mount", "test");
  m.Positional("SRC", "s", &one).Positional("MNT", "m", &two);
  CHECK(m.Parse({"s"}, &help) == "missing MNT");
  CHECK(m.Parse({"s", "m"}, &help) == "");
  CHECK(one == "s");
  CHECK(two == "m");
  CHECK_THAT(m.Usage("dtkfs"), Catch::StartsWith("Usage: dtkfs mount SRC MNT"));
}

}  // namespace
}  // namespace dtkfs::cli
