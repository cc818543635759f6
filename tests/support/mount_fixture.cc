#include "support/mount_fixture.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "dtkfs/xattr_names.h"
#include "support/reference_walk.h"

extern char** environ;

namespace dtkfs::testing {

std::string DtkfsBinary() { return DTKFS_BINARY; }
std::string KillableBinary() { return DTKFS_KILLABLE_BINARY; }

CommandResult Run(const std::vector<std::string>& argv) {
  CommandResult r;
  TempDir tmp;
  const std::string out = tmp / "out", err = tmp / "err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<std::string> copy = argv;
  std::vector<char*> args;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid;
  if (posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ) == 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  posix_spawn_file_actions_destroy(&fa);
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

MountFixture::MountFixture() {
  ::mkdir(src().c_str(), 0755);
  ::mkdir(mnt().c_str(), 0755);
  ::mkdir(state().c_str(), 0700);
  available_ =
      ::access("/dev/fuse", R_OK | W_OK) == 0 &&
      (::access("/usr/bin/fusermount3", X_OK) == 0 || ::access("/bin/fusermount3", X_OK) == 0);
}

bool MountFixture::mounted() const {
  struct stat a, b;
  if (::stat(mnt().c_str(), &a) != 0) return true;  // ENOTCONN: a dead mount is still there
  if (::stat(dir_.path().c_str(), &b) != 0) return false;
  return a.st_dev != b.st_dev;
}

MountFixture::~MountFixture() {
  if (mounted()) {
    Run({DtkfsBinary(), "umount", mnt()});
    if (mounted()) Run({"fusermount3", "-u", "-z", mnt()});
  }
}

CommandResult MountFixture::Mount(const std::vector<std::string>& extra) {
  return MountUnder({}, extra);
}

CommandResult MountFixture::MountUnder(const std::vector<std::string>& launcher,
                                       const std::vector<std::string>& extra) {
  std::vector<std::string> argv = launcher;
  for (const std::string& a :
       {binary_, std::string("mount"), src(), mnt(), std::string("--index"), index()})
    argv.push_back(a);
  argv.insert(argv.end(), extra.begin(), extra.end());
  return Run(argv);
}

pid_t MountFixture::DaemonPid() const {
  char buf[4096];
  const ssize_t n = ::getxattr(mnt().c_str(), xattr::kControlStatus, buf, sizeof buf);
  if (n <= 0) return -1;
  const std::string status(buf, static_cast<size_t>(n));
  const auto at = status.find("pid: ");
  return at == std::string::npos ? -1 : static_cast<pid_t>(std::atoi(status.c_str() + at + 5));
}

std::string MountFixture::StatusField(const std::string& key) const {
  char buf[8192];
  const ssize_t n = ::getxattr(mnt().c_str(), xattr::kControlStatus, buf, sizeof buf);
  if (n <= 0) return "";
  const std::string status(buf, static_cast<size_t>(n));
  const std::string prefix = key + ": ";
  size_t at = status.rfind("\n" + prefix);
  at = status.compare(0, prefix.size(), prefix) == 0 ? 0 : at == std::string::npos ? at : at + 1;
  if (at == std::string::npos) return "";
  const size_t end = status.find('\n', at);
  return status.substr(at + prefix.size(), end - at - prefix.size());
}

bool MountFixture::WaitForVerify(uint64_t runs, int timeout_s) const {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string done = StatusField("verify_runs");
    if (!done.empty() && std::stoull(done) >= runs &&
        StatusField("verify").rfind("running", 0) != 0)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

bool WaitForExit(pid_t pid, int timeout_s) {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;  // already gone
  struct pollfd p {
    fd, POLLIN, 0
  };
  const int ready = ::poll(&p, 1, timeout_s * 1000);
  ::close(fd);
  return ready == 1;
}

bool ProcessAlive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (pid <= 0 || !std::getline(in, line)) return false;
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z' &&
         line[paren + 2] != 'X';
}

bool ProcessGone(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return true;
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string state, field;
  rest >> state;
  for (int i = 4; i <= 20 && rest >> field; ++i) {
  }
  return state == "Z" && field == "1";  // field 20: num_threads
}

void MountFixture::AbortConnection() const {
  std::string device;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    if (point == mnt()) device = dev;
  }
  if (device.empty()) return;
  const std::string conn = "/sys/fs/fuse/connections/" + device.substr(device.find(':') + 1);
  if (!std::filesystem::exists(conn))
    ::mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, nullptr);
  std::ofstream(conn + "/abort") << "1";
}

bool MountFixture::CrashDaemon() {
  const pid_t pid = DaemonPid();
  if (pid <= 0 || ::kill(pid, SIGKILL) != 0) return false;
  for (int i = 0; i < 1000 && !ProcessGone(pid); ++i) {
    if (!ProcessAlive(pid)) AbortConnection();
    ::usleep(20000);
  }
  Run({"fusermount3", "-u", "-z", mnt()});
  return ProcessGone(pid);
}

CommandResult MountFixture::Unmount() { return Run({binary_, "umount", mnt()}); }

bool ReadTotals(const std::string& p, Totals* out) {
  for (auto [name, field] :
       {std::pair{xattr::kTotalBytes, &out->bytes}, std::pair{xattr::kTotalFiles, &out->files},
        std::pair{xattr::kTotalDirs, &out->dirs}}) {
    char buf[32];
    ssize_t n = ::lgetxattr(p.c_str(), name, buf, sizeof buf - 1);
    if (n <= 0) return false;
    buf[n] = '\0';
    for (ssize_t i = 0; i < n; ++i)
      if (buf[i] < '0' || buf[i] > '9') return false;  // digits only, no NUL, no newline
    *field = std::strtoull(buf, nullptr, 10);
  }
  return true;
}

std::map<std::string, Totals> MountMapTotals(const std::string& mnt,
                                             const std::map<std::string, Totals>& dirs) {
  std::map<std::string, Totals> out;
  for (const auto& [rel, unused] : dirs) {
    std::string p = rel.empty() ? mnt : mnt + "/" + rel;
    if (p.size() >= 4000) continue;  // beyond PATH_MAX: not reachable by path here
    Totals t;
    if (ReadTotals(p, &t)) out[rel] = t;
  }
  return out;
}

std::map<std::string, Totals> MountFixture::MountTotals() const {
  return MountMapTotals(mnt(), ReferenceWalk(src()));
}

std::string MountFixture::Differences() const {
  auto expected = ReferenceWalk(src());
  for (auto it = expected.begin(); it != expected.end();) {
    if ((mnt().size() + 1 + it->first.size()) >= 4000)
      it = expected.erase(it);
    else
      ++it;
  }
  return DescribeDifferences(expected, MountMapTotals(mnt(), expected));
}

}  // namespace dtkfs::testing
