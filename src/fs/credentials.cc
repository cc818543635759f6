#include "fs/credentials.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "util/log.h"

namespace dtkfs::fs {

// Who a thread acts as. The daemon's own identity is {0, daemon gid, daemon groups, caps}.
struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  bool caps = true;  // the daemon's effective capabilities (false: none)

  bool operator==(const Identity&) const = default;
};

namespace {

struct Daemon {
  std::atomic<bool> acting{false};  // root: act as callers
  Identity self;
  __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3] = {};  // as at InitCredentials
};
Daemon& TheDaemon() {
  static Daemon d;
  return d;
}

struct ThreadState {
  bool known = false;  // false: still the daemon's identity, as the thread started
  Identity now;
};
thread_local ThreadState t_state;

bool SetCaps(bool effective) {
  const Daemon& d = TheDaemon();
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};  // pid 0: this thread
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
  for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; ++i) {
    data[i] = d.caps[i];
    data[i].effective = effective ? d.caps[i].effective : 0;
  }
  return ::syscall(SYS_capset, &header, data) == 0;
}

// Moves the calling thread from t_state.now to target, in the order the kernel allows:
// capabilities back first (setgroups needs CAP_SETGID, a new fsuid CAP_SETUID), the ids,
// then none again for a non-root caller. False (logged) when the kernel refused a step.
bool Become(const Identity& target) {
  Identity& now = t_state.now;
  if (now == target) return true;
  bool ok = true;
  if (!now.caps) {
    ok = SetCaps(true);
    now.caps = ok;
  }
  if (ok && now.groups != target.groups) {
    // The raw system call: glibc's setgroups changes every thread of the process.
    ok = ::syscall(SYS_setgroups, target.groups.size(), target.groups.data()) == 0;
    if (ok) now.groups = target.groups;
  }
  if (ok && now.gid != target.gid) {
    ::syscall(SYS_setfsgid, target.gid);
    ok = static_cast<gid_t>(::syscall(SYS_setfsgid, -1)) == target.gid;
    if (ok) now.gid = target.gid;
  }
  if (ok && now.uid != target.uid) {
    ::syscall(SYS_setfsuid, target.uid);
    ok = static_cast<uid_t>(::syscall(SYS_setfsuid, -1)) == target.uid;
    if (ok) now.uid = target.uid;
  }
  if (ok && !target.caps) {
    ok = SetCaps(false);
    now.caps = !ok;
  }
  if (!ok) log::Error("cannot act as uid {} gid {}: {}", target.uid, target.gid, errno);
  return ok;
}

// Supplementary groups per calling thread, read from /proc and kept for a second: a
// process that changes its groups (which takes CAP_SETGID) without changing its ids is
// seen with the old ones for up to a second. The kernel's own permission check
// (default_permissions) always uses the current ones.
class GroupCache {
 public:
  std::vector<gid_t> Get(pid_t pid, uid_t uid, gid_t gid) {
    const auto now = std::chrono::steady_clock::now();
    if (pid > 0) {
      std::lock_guard lock(mu_);
      auto it = entries_.find(pid);
      if (it != entries_.end() && it->second.uid == uid && it->second.gid == gid &&
          now - it->second.read < kKeep)
        return it->second.groups;
    }
    // A caller dtkfs cannot see (another pid namespace, or gone): no supplementary groups,
    // the side that can only refuse.
    std::optional<std::vector<gid_t>> read;
    {
      AsDaemon as_daemon;  // the thread may still act as its last caller: /proc may hide pids
      read = Read(pid);
    }
    std::vector<gid_t> groups = read.value_or(std::vector<gid_t>{});
    if (read) {
      std::lock_guard lock(mu_);
      if (entries_.size() >= kMaxEntries) entries_.clear();
      entries_[pid] = Entry{uid, gid, groups, now};
    }
    return groups;
  }

 private:
  static constexpr std::chrono::seconds kKeep{1};
  static constexpr size_t kMaxEntries = 4096;
  struct Entry {
    uid_t uid;
    gid_t gid;
    std::vector<gid_t> groups;
    std::chrono::steady_clock::time_point read;
  };

  static std::optional<std::vector<gid_t>> Read(pid_t pid) {
    if (pid <= 0) return std::nullopt;
    const std::string path = "/proc/" + std::to_string(pid) + "/status";
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::string text(4096, '\0');
    size_t used = 0;
    for (;;) {
      if (used == text.size()) text.resize(text.size() * 2);
      const ssize_t n = ::read(fd, text.data() + used, text.size() - used);
      if (n <= 0) break;
      used += static_cast<size_t>(n);
    }
    ::close(fd);
    text.resize(used);
    return ParseStatusGroups(text);
  }

  std::mutex mu_;
  std::unordered_map<pid_t, Entry> entries_;
};

GroupCache& Groups() {
  static GroupCache cache;
  return cache;
}

}  // namespace

std::optional<std::vector<gid_t>> ParseStatusGroups(std::string_view status) {
  constexpr std::string_view kKey = "Groups:";
  size_t at = 0;
  while (at < status.size() && status.compare(at, kKey.size(), kKey) != 0) {
    const size_t nl = status.find('\n', at);
    if (nl == std::string_view::npos) return std::nullopt;
    at = nl + 1;
  }
  if (at >= status.size()) return std::nullopt;
  size_t end = status.find('\n', at);
  if (end == std::string_view::npos) end = status.size();
  std::string_view line = status.substr(at + kKey.size(), end - at - kKey.size());
  std::vector<gid_t> groups;
  while (!line.empty()) {
    const size_t skip = line.find_first_not_of(" \t");
    if (skip == std::string_view::npos) break;
    line.remove_prefix(skip);
    gid_t g = 0;
    auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), g);
    if (ec != std::errc() || (p != line.data() + line.size() && *p != ' ' && *p != '\t'))
      return std::nullopt;
    groups.push_back(g);
    line.remove_prefix(static_cast<size_t>(p - line.data()));
  }
  return groups;
}

void InitCredentials() {
  Daemon& d = TheDaemon();
  if (::geteuid() != 0) return;
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  if (::syscall(SYS_capget, &header, d.caps) != 0) {
    log::Error("cannot read the daemon's capabilities ({}): acting as the daemon for everyone",
               errno);
    return;
  }
  d.self.uid = 0;
  d.self.gid = ::getegid();
  const int n = ::getgroups(0, nullptr);
  d.self.groups.resize(n > 0 ? static_cast<size_t>(n) : 0);
  if (n > 0) d.self.groups.resize(static_cast<size_t>(::getgroups(n, d.self.groups.data())));
  d.acting = true;
}

namespace {

Identity IdentityOf(const fuse_ctx& ctx) {
  const Daemon& d = TheDaemon();
  if (ctx.uid == 0) {
    // Root keeps the daemon's capabilities; its gid still decides new files' group.
    Identity id = d.self;
    id.gid = ctx.gid;
    return id;
  }
  return Identity{ctx.uid, ctx.gid, Groups().Get(ctx.pid, ctx.uid, ctx.gid), false};
}

// A thread's first use: its credentials are not known to be the daemon's. libfuse starts a
// new worker from a busy one, and a thread inherits its creator's credentials, those of
// whichever caller that worker acted as. So every step is taken once, to the daemon.
void EnsureThreadKnown() {
  if (t_state.known) return;
  t_state.now = Identity{
      static_cast<uid_t>(-1), static_cast<gid_t>(-1), {static_cast<gid_t>(-1)}, /*caps=*/false};
  t_state.known = true;
  Become(TheDaemon().self);
}

}  // namespace

bool ActAsCaller(fuse_req_t req) {
  if (!TheDaemon().acting) return true;
  const fuse_ctx* ctx = fuse_req_ctx(req);
  if (ctx == nullptr) return false;
  return ActAsCaller(*ctx);
}

bool ActAsCaller(const fuse_ctx& caller) {
  if (!TheDaemon().acting) return true;
  const fuse_ctx* ctx = &caller;
  EnsureThreadKnown();
  // Most requests come from the caller before: compare before reading any groups.
  const Identity& now = t_state.now;
  if (ctx->uid != 0 && now.uid == ctx->uid && now.gid == ctx->gid && !now.caps) {
    std::vector<gid_t> groups = Groups().Get(ctx->pid, ctx->uid, ctx->gid);
    if (groups == now.groups) return true;
    return Become(Identity{ctx->uid, ctx->gid, std::move(groups), false});
  }
  return Become(IdentityOf(*ctx));
}

bool UseCallerUmask(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  return ctx != nullptr && UseCallerUmask(ctx->umask);
}

bool UseCallerUmask(mode_t umask) {
  thread_local bool own_fs = false;
  thread_local mode_t umask_now = 0;  // meaningful once own_fs
  const mode_t mask = umask & 0777;
  if (!own_fs) {
    // The umask is per fs_struct, shared by all threads until one unshares its own. The
    // copy holds whatever umask its creator had (a worker started by a worker: that one's
    // last caller's), so it is set the first time, whatever it is.
    if (::unshare(CLONE_FS) != 0) {
      log::Error("cannot give a worker thread its own umask ({})", errno);
      return false;  // the creation fails rather than use another umask
    }
    own_fs = true;
    ::umask(mask);
    umask_now = mask;
    return true;
  }
  if (mask != umask_now) {
    ::umask(mask);
    umask_now = mask;
  }
  return true;
}

AsDaemon::AsDaemon() {
  if (!TheDaemon().acting) return;
  EnsureThreadKnown();
  const Identity& now = t_state.now;
  if (now == TheDaemon().self) return;
  saved_ = std::make_unique<Identity>(now);
  Become(TheDaemon().self);
}

AsDaemon::~AsDaemon() {
  // The rest of the request must not run as the daemon: a thread that cannot act as its
  // caller again (the kernel refused a step it allowed a moment ago) stops the daemon, which
  // a crash loses nothing to, rather than create or write with the daemon's rights.
  if (saved_ && !Become(*saved_)) std::abort();
}

}  // namespace dtkfs::fs
