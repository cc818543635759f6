// dtkfs mount / umount / status / compact: the mount daemon and its control channel.
#include <fmt/format.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <boost/filesystem.hpp>
#include <charconv>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "cli/mount_point.h"
#include "cli/mount_status.h"
#include "cli/output.h"
#include "env/env.h"
#include "fs/control.h"
#include "fs/daemon.h"
#include "index/index_files.h"
#include "index/index_lifecycle.h"

extern char** environ;

namespace dtkfs::cli {
namespace {

// Resolves mnt, checks that it is exactly a dtkfs mount point (src/cli/mount_point.h), and
// reads its status. On failure prints why and returns nullopt.
std::optional<MountStatus> OpenMount(const std::string& mnt) {
  auto point = ResolveDtkfsMountPoint(mnt);
  if (!point.ok()) {
    PrintError(point.status().message());
    return std::nullopt;
  }
  auto status = ReadMountStatus(*point);
  if (!status.ok()) {
    PrintError(status.status().message());
    return std::nullopt;
  }
  return std::move(status).value();
}

// The daemon's pid from its status, parsed without exceptions; nullopt unless it is a whole
// number above 1 (never 0, -1 or init: those would make kill() and the wait mean something
// else).
std::optional<pid_t> DaemonPid(const MountStatus& status) {
  auto it = status.fields.find("pid");
  if (it == status.fields.end()) return std::nullopt;
  const std::string& text = it->second;
  pid_t pid = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), pid);
  if (ec != std::errc() || end != text.data() + text.size() || pid <= 1) return std::nullopt;
  return pid;
}

// Whether pid is a dtkfs process run by the user the mount belongs to: the status is text the
// mount serves, and a pid in it must not make umount wait on an unrelated process (a FUSE
// filesystem of another user can call itself dtkfs and serve any text).
Status CheckDaemon(pid_t pid, const std::string& mnt) {
  char exe[PATH_MAX];
  const ssize_t n = ::readlink(fmt::format("/proc/{}/exe", pid).c_str(), exe, sizeof exe - 1);
  if (n <= 0)
    return Status::InvalidArgument(fmt::format("{}: its daemon (pid {}) is gone", mnt, pid));
  std::string name(exe, static_cast<size_t>(n));
  name = name.substr(name.rfind('/') + 1);
  // This program under its own name too (the test build's dtkfs-killable unmounts its own).
  std::string self = "dtkfs";
  if (const ssize_t m = ::readlink("/proc/self/exe", exe, sizeof exe - 1); m > 0)
    self = std::string(exe, static_cast<size_t>(m))
               .substr(std::string(exe, static_cast<size_t>(m)).rfind('/') + 1);
  auto is = [&](const std::string& want) {
    return name == want || name == want + " (deleted)";  // deleted: upgraded while running
  };
  if (!is("dtkfs") && !is(self))
    return Status::InvalidArgument(fmt::format(
        "{}: its status names pid {}, which is not a dtkfs daemon ({}); not waiting on it", mnt,
        pid, name));
  struct stat proc;
  if (::stat(fmt::format("/proc/{}", pid).c_str(), &proc) != 0)
    return Status::InvalidArgument(fmt::format("{}: its daemon (pid {}) is gone", mnt, pid));
  auto owner = DtkfsMountOwner(mnt);
  if (owner && *owner != proc.st_uid)
    return Status::InvalidArgument(fmt::format(
        "{}: its status names pid {} of uid {}, but the mount belongs to uid {}; not waiting "
        "on it",
        mnt, pid, proc.st_uid, *owner));
  return Status::Ok();
}

int RunCommand(std::vector<std::string> argv) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid;
  if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return -1;
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void WaitForExit(pid_t pid) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    while (::kill(pid, 0) == 0) ::usleep(20000);  // no pidfd: poll
    return;
  }
  struct pollfd p {
    fd, POLLIN, 0
  };
  while (::poll(&p, 1, 10000) == 0)
    fmt::print(stderr, "dtkfs: waiting for the daemon (pid {}) to finish its final compaction\n",
               pid);
  ::close(fd);
}

// True when mnt's daemon is gone: the kernel answers ENOTCONN. A status read always asks
// the daemon, where a stat may still be answered from the kernel's attribute cache.
bool IsDeadMount(const std::string& mnt) {
  const std::string name(fs::kControlStatus);
  return ::getxattr(mnt.c_str(), name.c_str(), nullptr, 0) < 0 && errno == ENOTCONN &&
         IsDtkfsMountPointAt(mnt);
}

}  // namespace

int RunUmount(const std::string& mnt) {
  if (IsDeadMount(mnt)) {
    // The daemon is gone (killed) and its mount is dead: unmounting is all there is to do.
    if (RunCommand({"fusermount3", "-u", mnt}) != 0) {
      PrintError(
          fmt::format("{}: a dead dtkfs mount (its daemon is gone); fusermount3 -u failed", mnt));
      return kExitError;
    }
    PrintError(
        fmt::format("{}: its daemon was gone; unmounted without a final compaction (the "
                    "next mount recovers from the journal)",
                    mnt));
    return kExitError;
  }
  auto status = OpenMount(mnt);
  if (!status) return kExitError;
  const std::optional<pid_t> pid = DaemonPid(*status);
  const std::string index = status->fields["index"];
  if (!pid || index.empty() || index[0] != '/') {
    PrintError(fmt::format("{}: its dtkfs status has no valid pid and index; not unmounting",
                           status->mnt));
    return kExitError;
  }
  if (Status s = CheckDaemon(*pid, status->mnt); !s.ok()) {
    PrintError(s.message());
    return kExitError;
  }
  if (RunCommand({"fusermount3", "-u", status->mnt}) != 0) {
    PrintError(fmt::format("{}: fusermount3 -u failed (busy? close what uses it)", status->mnt));
    return kExitError;
  }
  WaitForExit(*pid);
  // INDEX.last-exit: "ok" or "error: ..." on the first line, then "warning: ..." lines, then
  // padding (src/fs/daemon.h). "running" means the daemon never got to write its result.
  auto text = Env::Default().ReadFileToString(ExitStatusPath(index), kExitStatusSize);
  std::vector<std::string> lines;
  if (text.ok()) {
    std::istringstream in(*text);
    std::string line;
    while (std::getline(in, line)) {
      line.erase(line.find_last_not_of(' ') + 1);
      if (!line.empty()) lines.push_back(line);
    }
  }
  for (size_t i = 1; i < lines.size(); ++i)
    if (lines[i].rfind("warning: ", 0) == 0) PrintError(lines[i]);
  const std::string result = lines.empty() ? "" : lines.front();
  if (result == "ok") return kExitOk;
  PrintError(fmt::format(
      "{}: final compaction {}", status->mnt,
      result.empty() || result == "running" ? "result unknown (daemon killed?)" : result));
  return kExitError;
}

namespace {

// The status keys whose values are whole numbers (docs/export.md); --json writes them as
// JSON numbers, every other key as a string.
bool IsNumericStatusKey(std::string_view key) {
  static const std::set<std::string_view> kNumeric = {"pid",
                                                      "entries",
                                                      "overlay",
                                                      "frozen_levels",
                                                      "rename_levels",
                                                      "generation",
                                                      "compactions",
                                                      "uptime_seconds",
                                                      "events",
                                                      "event_overflows",
                                                      "out_of_band_corrected",
                                                      "verify_runs",
                                                      "verify_corrected",
                                                      "descriptors",
                                                      "descriptor_budget",
                                                      "descriptors_evicted",
                                                      "descriptors_reopened",
                                                      "descriptors_stale",
                                                      "inodes"};
  return kNumeric.count(key) > 0;
}

// {"mountpoint": ..., then each status key in the daemon's order}: the first line of a key
// counts, as in OpenMount.
std::string StatusJson(const MountStatus& status) {
  std::string out = fmt::format("{{\"mountpoint\":{}", JsonString(status.mnt));
  std::set<std::string> seen;
  std::istringstream in(status.raw);
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(": ");
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, colon);
    if (!seen.insert(key).second) continue;
    const std::string& value = status.fields.at(key);
    uint64_t number = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
    const bool whole = !value.empty() && ec == std::errc() && end == value.data() + value.size();
    out += fmt::format(",{}:{}", JsonString(key),
                       !IsNumericStatusKey(key) ? JsonString(value)
                       : whole                  ? fmt::format("{}", number)
                                                : std::string("null"));
  }
  return out + "}";
}

}  // namespace

int RunStatus(const std::string& mnt, bool json) {
  auto status = OpenMount(mnt);
  if (!status) return kExitError;
  if (json)
    fmt::print("{}\n", StatusJson(*status));
  else
    fmt::print("{}", status->raw);
  return kExitOk;
}

int RunCompact(const std::string& mnt) {
  auto status = OpenMount(mnt);
  if (!status) return kExitError;
  if (Status s = RequestCompaction(status->mnt); !s.ok()) {
    PrintError(s.message());
    return kExitError;
  }
  auto after = OpenMount(status->mnt);
  if (after)
    fmt::print(stderr, "dtkfs: compacted: generation {}, {} entries\n", after->fields["generation"],
               after->fields["entries"]);
  return kExitOk;
}

int RunVerify(const std::string& mnt) {
  auto before = OpenMount(mnt);
  if (!before) return kExitError;
  const std::string name(fs::kControlVerify);
  if (::setxattr(before->mnt.c_str(), name.c_str(), "1", 1, 0) != 0) {
    PrintError(
        fmt::format("{}: cannot start a verification: {}", before->mnt, std::strerror(errno)));
    return kExitError;
  }
  // Done when a run finished after this request: verify_runs passed its value before, and
  // none is running (a request made during a run starts another after it).
  const std::string runs_before = before->fields["verify_runs"];
  const uint64_t runs0 = std::strtoull(runs_before.c_str(), nullptr, 10);
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto now = OpenMount(before->mnt);
    if (!now) return kExitError;
    const uint64_t runs = std::strtoull(now->fields["verify_runs"].c_str(), nullptr, 10);
    const std::string state = now->fields["verify"];
    if (runs > runs0 && state.rfind("running", 0) != 0) {
      fmt::print("{}\n", state);
      return kExitOk;
    }
  }
}

}  // namespace dtkfs::cli
