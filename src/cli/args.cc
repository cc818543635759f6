#include "cli/args.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

namespace dtkfs::cli {
namespace {

std::vector<std::string> SplitNames(const std::string& names) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= names.size()) {
    size_t end = names.find(',', start);
    if (end == std::string::npos) end = names.size();
    out.push_back(names.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool IsOptionLike(std::string_view arg) { return arg.size() > 1 && arg[0] == '-'; }

}  // namespace

Command::Command(std::string name, std::string summary)
    : name_(std::move(name)), summary_(std::move(summary)) {}

Command& Command::AddOption(std::string names, std::string value_name, std::string help,
                            std::function<std::string(std::string_view)> set) {
  options_.push_back(
      Opt{SplitNames(names), std::move(value_name), std::move(help), std::move(set)});
  return *this;
}

Command& Command::Flag(std::string names, std::string help, bool* target) {
  return AddOption(std::move(names), "", std::move(help), [target](std::string_view) {
    *target = true;
    return std::string();
  });
}

Command& Command::Option(std::string names, std::string value_name, std::string help,
                         std::string* target) {
  return AddOption(std::move(names), std::move(value_name), std::move(help),
                   [target](std::string_view v) {
                     if (v.empty()) return std::string("an empty value is not allowed");
                     *target = std::string(v);
                     return std::string();
                   });
}

Command& Command::Option(std::string names, std::string value_name, std::string help,
                         const NumberRange& range, size_t* target) {
  return AddOption(std::move(names), std::move(value_name), std::move(help),
                   [target, range](std::string_view v) {
                     auto n = ParseNumber(v, range);
                     if (!n.ok()) return n.status().message();
                     *target = static_cast<size_t>(*n);
                     return std::string();
                   });
}

Command& Command::Option(std::string names, std::string value_name, std::string help,
                         const NumberRange& range, double* target) {
  return AddOption(std::move(names), std::move(value_name), std::move(help),
                   [target, range](std::string_view v) {
                     auto d = ParseNumber(v, range);
                     if (!d.ok()) return d.status().message();
                     *target = *d;
                     return std::string();
                   });
}

Command& Command::Option(std::string names, std::string value_name, std::string help,
                         std::vector<std::string>* target) {
  return AddOption(std::move(names), std::move(value_name), std::move(help),
                   [target](std::string_view v) {
                     target->emplace_back(v);
                     return std::string();
                   });
}

Command& Command::Positional(std::string name, std::string help, std::string* target) {
  positionals_.push_back(Pos{std::move(name), std::move(help),
                             [target](std::string v) { *target = std::move(v); }, false});
  return *this;
}

Command& Command::Positionals(std::string name, std::string help,
                              std::vector<std::string>* target) {
  positionals_.push_back(Pos{std::move(name), std::move(help),
                             [target](std::string v) { target->push_back(std::move(v)); }, true});
  return *this;
}

Command& Command::Epilog(std::string text) {
  epilog_ = std::move(text);
  return *this;
}

const Command::Opt* Command::Find(std::string_view name) const {
  for (const Opt& o : options_)
    for (const std::string& n : o.names)
      if (n == name) return &o;
  return nullptr;
}

std::string Command::Usage(std::string_view program) const {
  std::string line = fmt::format("Usage: {} {}", program, name_);
  if (!options_.empty()) line += " [OPTIONS]";
  for (const Pos& p : positionals_) line += p.many ? fmt::format(" {}...", p.name) : " " + p.name;
  std::string out = fmt::format("{}\n\n{}\n", line, summary_);
  if (!positionals_.empty()) {
    out += "\nArguments:\n";
    for (const Pos& p : positionals_) out += fmt::format("  {:<24}{}\n", p.name, p.help);
  }
  out += "\nOptions:\n";
  for (const Opt& o : options_) {
    std::string spelled;
    for (const std::string& n : o.names) spelled += (spelled.empty() ? "" : ", ") + n;
    if (!o.value_name.empty()) spelled += " " + o.value_name;
    if (spelled.size() >= 24) spelled += "\n" + std::string(26, ' ');
    out += fmt::format("  {:<24}{}\n", spelled, o.help);
  }
  out += fmt::format("  {:<24}{}\n", "--help", "print this help and exit");
  if (!epilog_.empty()) out += "\n" + epilog_;
  return out;
}

std::string Command::Parse(const std::vector<std::string>& args, bool* help) const {
  size_t next_pos = 0;
  bool options_done = false;
  size_t taken_by_many = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!options_done && arg == "--") {
      options_done = true;
      continue;
    }
    if (!options_done && IsOptionLike(arg)) {
      if (arg == "--help" || (arg == "-h" && !Find("-h"))) {
        *help = true;
        return "";
      }
      std::string name = arg;
      std::optional<std::string> inline_value;
      if (arg.rfind("--", 0) == 0) {
        if (size_t eq = arg.find('='); eq != std::string::npos) {
          name = arg.substr(0, eq);
          inline_value = arg.substr(eq + 1);
        }
      } else if (arg.size() > 2 && !Find(arg)) {  // -nVALUE
        name = arg.substr(0, 2);
        inline_value = arg.substr(2);
      }
      const Opt* opt = Find(name);
      if (!opt) return fmt::format("unknown option '{}'", arg);
      if (opt->value_name.empty()) {
        if (inline_value) return fmt::format("{} takes no value", name);
        opt->set("");
        continue;
      }
      if (!inline_value) {
        if (i + 1 >= args.size())
          return fmt::format("{} needs a value ({})", name, opt->value_name);
        inline_value = args[++i];
      }
      if (std::string problem = opt->set(*inline_value); !problem.empty())
        return fmt::format("{}: {}", name, problem);
      continue;
    }
    if (next_pos >= positionals_.size()) return fmt::format("unexpected argument '{}'", arg);
    const Pos& p = positionals_[next_pos];
    p.set(arg);
    if (p.many)
      ++taken_by_many;
    else
      ++next_pos;
  }
  if (next_pos < positionals_.size() && !(positionals_[next_pos].many && taken_by_many > 0))
    return fmt::format("missing {}", positionals_[next_pos].name);
  return "";
}

Program::Program(std::string name, std::string summary, std::string version)
    : name_(std::move(name)), summary_(std::move(summary)), version_(std::move(version)) {}

Command& Program::Add(std::string name, std::string summary) {
  commands_.emplace_back(std::move(name), std::move(summary));
  return commands_.back();
}

bool Program::HasCommand(std::string_view name) const {
  if (name == "help") return true;
  for (const Command& c : commands_)
    if (c.name() == name) return true;
  return false;
}

std::string Program::Usage() const {
  std::string out =
      fmt::format("Usage: {} COMMAND [ARGS]...\n\n{}: {}\n\nCommands:\n", name_, name_, summary_);
  for (const Command& c : commands_) out += fmt::format("  {:<10}{}\n", c.name(), c.summary());
  out += fmt::format("\n`{} COMMAND --help` tells more; `{} --version` prints the version.\n",
                     name_, name_);
  return out;
}

std::optional<int> Program::Parse(int argc, char** argv, const Command** chosen) const {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fprintf(stderr, "%s: a command is required\n%s", name_.c_str(), Usage().c_str());
    return 2;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(Usage().c_str(), stdout);
    return 0;
  }
  if (args[0] == "--version") {
    std::puts(version_.c_str());
    return 0;
  }
  for (const Command& c : commands_) {
    if (c.name() != args[0]) continue;
    bool help = false;
    const std::string problem = c.Parse({args.begin() + 1, args.end()}, &help);
    if (help) {
      std::fputs(c.Usage(name_).c_str(), stdout);
      return 0;
    }
    if (!problem.empty()) {
      std::fprintf(stderr, "%s %s: %s (see %s %s --help)\n", name_.c_str(), c.name().c_str(),
                   problem.c_str(), name_.c_str(), c.name().c_str());
      return 2;
    }
    *chosen = &c;
    return std::nullopt;
  }
  std::fprintf(stderr, "%s: unknown command '%s' (see %s --help)\n", name_.c_str(), args[0].c_str(),
               name_.c_str());
  return 2;
}

}  // namespace dtkfs::cli
