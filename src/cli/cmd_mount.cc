// dtkfs mount / umount / status / compact: the mount daemon and its control channel.
#include <fmt/format.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "cli/commands.h"
#include "cli/output.h"
#include "fs/control.h"
#include "fs/daemon.h"

extern char** environ;

namespace dtkfs::cli {
namespace {

// The "key: value" lines of user.dtkfs.status on MNT, or nullopt (with errno) if MNT is not
// a dtkfs mount.
std::optional<std::map<std::string, std::string>> ReadStatus(const std::string& mnt,
                                                             std::string* raw) {
  char buf[4096];
  ssize_t n = ::getxattr(mnt.c_str(), std::string(fs::kControlStatus).c_str(), buf, sizeof buf);
  if (n < 0) return std::nullopt;
  raw->assign(buf, static_cast<size_t>(n));
  std::map<std::string, std::string> out;
  std::istringstream in(*raw);
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(": ");
    if (colon != std::string::npos) out[line.substr(0, colon)] = line.substr(colon + 2);
  }
  return out;
}

int NotAMount(const std::string& mnt) {
  int err = errno;
  PrintError(fmt::format("{}: not a dtkfs mount ({})", mnt,
                         err == ENODATA || err == ENOTSUP ? "no dtkfs control attributes"
                                                          : std::strerror(err)));
  return kExitError;
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
  struct pollfd p {fd, POLLIN, 0};
  while (::poll(&p, 1, 10000) == 0)
    fmt::print(stderr, "dtkfs: waiting for the daemon (pid {}) to finish its final compaction\n",
               pid);
  ::close(fd);
}

}  // namespace

int RunUmount(const std::string& mnt) {
  std::string raw;
  auto status = ReadStatus(mnt, &raw);
  if (!status) return NotAMount(mnt);
  const pid_t pid = static_cast<pid_t>(std::stol((*status)["pid"]));
  const std::string index = (*status)["index"];
  if (RunCommand({"fusermount3", "-u", mnt}) != 0) {
    PrintError(fmt::format("{}: fusermount3 -u failed (busy? close what uses it)", mnt));
    return kExitError;
  }
  WaitForExit(pid);
  std::ifstream in(fs::ExitStatusPath(index));
  std::string result;
  std::getline(in, result);
  if (result == "ok") return kExitOk;
  PrintError(fmt::format("{}: final compaction {}", mnt,
                         result.empty() ? "result unknown (daemon killed?)" : result));
  return kExitError;
}

int RunStatus(const std::string& mnt) {
  std::string raw;
  if (!ReadStatus(mnt, &raw)) return NotAMount(mnt);
  fmt::print("{}", raw);
  return kExitOk;
}

int RunCompact(const std::string& mnt) {
  const std::string name(fs::kControlCompact);
  if (::setxattr(mnt.c_str(), name.c_str(), "1", 1, 0) != 0) {
    int err = errno;
    std::string raw;
    if (!ReadStatus(mnt, &raw)) return NotAMount(mnt);
    PrintError(fmt::format("{}: compaction failed: {}", mnt, std::strerror(err)));
    return kExitError;
  }
  std::string raw;
  auto status = ReadStatus(mnt, &raw);
  if (status)
    fmt::print(stderr, "dtkfs: compacted: generation {}, {} entries\n", (*status)["generation"],
               (*status)["entries"]);
  return kExitOk;
}

}  // namespace dtkfs::cli
