#include "util/kill_point.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

#include "util/log.h"

namespace dtkfs::kill_point {
namespace {

struct Target {
  std::string name;  // "" when none
  long count = 1;
};

Target ReadTarget() {
  Target t;
  const char* v = std::getenv("DTKFS_KILL_AT");
  if (v == nullptr || *v == '\0') return t;
  std::string s = v;
  if (const size_t colon = s.find(':'); colon != std::string::npos) {
    t.count = std::max(1L, std::strtol(s.c_str() + colon + 1, nullptr, 10));
    s.resize(colon);
  }
  if (std::find(kKillPoints.begin(), kKillPoints.end(), s) == kKillPoints.end()) {
    log::Error("DTKFS_KILL_AT={}: no such kill point", s);
    std::abort();
  }
  t.name = s;
  return t;
}

thread_local const char* scope_prefix = nullptr;

}  // namespace

Scope::Scope(const char* prefix) : previous_(scope_prefix) { scope_prefix = prefix; }
Scope::~Scope() { scope_prefix = previous_; }

void ReachStep(std::string_view step) {
  if (scope_prefix == nullptr) return;
  Reach(std::string(scope_prefix) + "." + std::string(step));
}

bool Enabled() { return true; }

void Reach(std::string_view name) {
  static const Target target = ReadTarget();
  static std::atomic<long> passed{0};
  if (target.name.empty() || name != target.name) return;
  if (passed.fetch_add(1) + 1 < target.count) return;
  ::kill(::getpid(), SIGKILL);
  ::pause();
}

}  // namespace dtkfs::kill_point
