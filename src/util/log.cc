#include "util/log.h"

#include <syslog.h>

#include <atomic>
#include <cstdio>
#include <string>

namespace dtkfs::log {
namespace {
std::atomic<bool> g_syslog{false};
}

void UseSyslog() {
  ::openlog("dtkfs", LOG_PID, LOG_DAEMON);
  g_syslog.store(true);
}

void Write(Level level, std::string_view message) {
  if (g_syslog.load()) {
    int prio = level == Level::kError ? LOG_ERR : level == Level::kWarning ? LOG_WARNING : LOG_INFO;
    ::syslog(prio, "%.*s", static_cast<int>(message.size()), message.data());
    return;
  }
  const char* tag = level == Level::kError     ? "error: "
                    : level == Level::kWarning ? "warning: "
                                               : "";
  std::string line = fmt::format("dtkfs: {}{}\n", tag, message);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace dtkfs::log
