#include "util/beneath.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>

namespace dtkfs {
namespace {

// One component at a time, each opened O_NOFOLLOW; the directories on the way O_PATH.
int OpenByComponents(int root_fd, const std::string& rel, int flags) {
  if (rel.empty()) return ::openat(root_fd, ".", flags | O_CLOEXEC);
  int dir = root_fd;
  size_t pos = 0;
  for (;;) {
    size_t slash = rel.find('/', pos);
    const bool last = slash == std::string::npos;
    if (last) slash = rel.size();
    const std::string name = rel.substr(pos, slash - pos);
    const int next = name == ".." ? (errno = EXDEV, -1)
                                  : ::openat(dir, name.c_str(),
                                             last ? flags | O_NOFOLLOW | O_CLOEXEC
                                                  : O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    const int err = errno;
    if (dir != root_fd) ::close(dir);
    errno = err;
    if (next < 0 || last) return next;
    dir = next;
    pos = slash + 1;
  }
}

}  // namespace

int OpenBeneath(int root_fd, const std::string& rel, int flags) {
  static std::atomic<bool> no_openat2{false};
  if (!rel.empty() && rel.size() < PATH_MAX && !no_openat2.load(std::memory_order_relaxed)) {
    struct open_how how {};
    how.flags = static_cast<uint64_t>(flags | O_NOFOLLOW | O_CLOEXEC);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    const long fd = ::syscall(SYS_openat2, root_fd, rel.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    if (errno != ENOSYS && errno != EAGAIN) return -1;
    // EAGAIN: a rename raced the lookup (RESOLVE_BENEATH's check); the walk below decides.
    if (errno == ENOSYS) no_openat2.store(true, std::memory_order_relaxed);
  }
  return OpenByComponents(root_fd, rel, flags);
}

int StatBeneath(int root_fd, const std::string& rel, struct stat* st) {
  const int fd = OpenBeneath(root_fd, rel, O_PATH);
  if (fd < 0) return errno;
  const int rc = ::fstat(fd, st);
  const int err = errno;
  ::close(fd);
  return rc == 0 ? 0 : err;
}

}  // namespace dtkfs
