#include "cli/mount_helper.h"

#include <fmt/format.h>

namespace dtkfs::cli {
namespace {

constexpr std::string_view kHelperName = "mount.dtkfs";

std::string_view BaseName(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

Status HelperUsage(std::string problem) {
  return Status::InvalidArgument(fmt::format("{}: {} (usage: {} SRC MNT [-sfnv] [-o OPTIONS])",
                                             kHelperName, problem, kHelperName));
}

// mount.dtkfs SRC MNT [-sfnv] [-o OPTIONS] [-t TYPE], flags in any order and place.
Result<Invocation> ReadHelperInvocation(const std::vector<std::string>& argv) {
  Invocation out;
  std::vector<std::string> positionals, options;
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      out.args = {argv[0], "mount", "--help"};
      return out;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      positionals.push_back(arg);
      continue;
    }
    // A cluster of flags (-snv), possibly ending in -o or -t with its value (-oro, -o ro).
    for (size_t k = 1; k < arg.size(); ++k) {
      const char flag = arg[k];
      if (flag == 'f') {
        out.fake = true;
      } else if (flag == 'n' || flag == 's' || flag == 'v') {
        // No mtab to write, nothing sloppy to allow, nothing more to say.
      } else if (flag == 'o' || flag == 't') {
        std::string value = arg.substr(k + 1);
        if (value.empty()) {
          if (i + 1 >= argv.size()) return HelperUsage(fmt::format("-{} needs a value", flag));
          value = argv[++i];
        }
        // -t names the type mount(8) was given (dtkfs); the name of this program says it too.
        if (flag == 'o' && !value.empty()) options.push_back(std::move(value));
        break;
      } else if (flag == 'N') {
        return HelperUsage("-N (mount in another namespace) is not supported");
      } else {
        return HelperUsage(fmt::format("unknown option '-{}'", flag));
      }
    }
  }
  if (positionals.size() != 2)
    return HelperUsage(fmt::format("expected SRC and MNT, got {} arguments", positionals.size()));
  out.args = {argv[0], "mount", positionals[0], positionals[1]};
  for (std::string& o : options) {
    out.args.push_back("-o");
    out.args.push_back(std::move(o));
  }
  return out;
}

}  // namespace

Result<Invocation> ReadInvocation(const std::vector<std::string>& argv,
                                  const std::function<bool(std::string_view)>& is_command) {
  if (!argv.empty() && BaseName(argv[0]) == kHelperName) return ReadHelperInvocation(argv);
  Invocation out;
  out.args = argv;
  // mount.fuse3's form: the first word is a source, not a command.
  if (argv.size() >= 3 && !argv[1].empty() && argv[1][0] != '-' && !is_command(argv[1]))
    out.args.insert(out.args.begin() + 1, "mount");
  return out;
}

}  // namespace dtkfs::cli
