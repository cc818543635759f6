// Logging: to stderr in the foreground, to syslog (ident "dtkfs") as a daemon.
// Thread-safe (each line is one write or one syslog call).
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace dtkfs::log {

enum class Level { kError, kWarning, kInfo };

// Switches every later line to syslog.
void UseSyslog();
void Write(Level level, std::string_view message);

template <typename... Args>
void Error(fmt::format_string<Args...> f, Args&&... args) {
  Write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void Warning(fmt::format_string<Args...> f, Args&&... args) {
  Write(Level::kWarning, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void Info(fmt::format_string<Args...> f, Args&&... args) {
  Write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace dtkfs::log
