#include "env/map_guard.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <map>
#include <mutex>
#include <thread>

#include "util/log.h"

namespace dtkfs {
namespace {

int LeaseSignal() { return SIGRTMIN + 1; }

std::atomic<int> g_pipe_write{-1};  // the signal handler's only state

void OnLeaseBreak(int, siginfo_t* info, void*) {
  const int saved = errno;
  const int fd = info->si_fd;
  // A full pipe loses nothing: a lease keeps signalling until it is given up.
  [[maybe_unused]] ssize_t n = ::write(g_pipe_write.load(), &fd, sizeof fd);
  errno = saved;
}

// Leases belong to open files, which fork shares: after a fork both processes hold the same
// leases. The process that calls Rearm (the daemon's child) takes them over; until then the
// parent still answers breaks for its own memory, but leaves the lease for the child to give
// up (shared entries), so the child is never left reading a file that shrank.
class MapGuard {
 public:
  static MapGuard& Instance() {
    static MapGuard* guard = [] {
      auto* g = new MapGuard;  // never destroyed: the thread may outlive main
      ::pthread_atfork([] { Instance().mu_.lock(); }, [] { Instance().AfterForkParent(); },
                       [] { Instance().mu_.unlock(); });
      return g;
    }();
    return *guard;
  }

  int GuardAndMap(int fd, GuardedMapping* mapping, const std::function<int()>& map) {
    std::lock_guard lock(mu_);
    if (!EnsureRunningLocked()) return kNoLease;
    if (::fcntl(fd, F_SETSIG, LeaseSignal()) != 0 || ::fcntl(fd, F_SETLEASE, F_RDLCK) != 0)
      return kNoLease;
    // A break arriving from here on waits for mu_: by then the mapping is registered.
    if (int err = map(); err != 0) {
      ::fcntl(fd, F_SETLEASE, F_UNLCK);
      return err;
    }
    registry_[fd] = Entry{mapping, false};
    return 0;
  }

  void Unguard(int fd) {
    std::lock_guard lock(mu_);
    auto it = registry_.find(fd);
    if (it == registry_.end()) return;
    if (!it->second.shared) ::fcntl(fd, F_SETLEASE, F_UNLCK);
    registry_.erase(it);
  }

  void Rearm() {
    std::lock_guard lock(mu_);
    if (owner_ == ::getpid()) return;
    if (!EnsureRunningLocked()) return;
    for (auto it = registry_.begin(); it != registry_.end();) {
      const int fd = it->first;
      it->second.shared = false;
      ::fcntl(fd, F_SETOWN, ::getpid());
      // A break that came before the line above signalled the parent, which left the lease
      // to us: during a break the lease reads as the type it is being broken to.
      if (::fcntl(fd, F_GETLEASE) != F_RDLCK) {
        it->second.mapping->Detach();
        ::fcntl(fd, F_SETLEASE, F_UNLCK);
        it = registry_.erase(it);
      } else {
        ++it;
      }
    }
  }

 private:
  struct Entry {
    GuardedMapping* mapping;
    bool shared;  // existed at a fork: another process may rely on the lease too
  };

  void AfterForkParent() {
    for (auto& [fd, entry] : registry_) entry.shared = true;
    mu_.unlock();
  }

  // Caller holds mu_. Starts the pipe, the handler and the thread once per process (a forked
  // child gets its own pipe: the parent's thread still reads the old one).
  bool EnsureRunningLocked() {
    if (owner_ == ::getpid()) return true;
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return false;
    // Only the handler's end must never block.
    ::fcntl(p[1], F_SETFL, O_NONBLOCK);
    if (read_fd_ >= 0) {  // inherited from the parent
      ::close(read_fd_);
      ::close(g_pipe_write.load());
    }
    read_fd_ = p[0];
    g_pipe_write.store(p[1]);
    struct sigaction sa {};
    sa.sa_sigaction = OnLeaseBreak;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(LeaseSignal(), &sa, nullptr) != 0) return false;
    const int read_fd = read_fd_;
    std::thread([this, read_fd] { Run(read_fd); }).detach();
    owner_ = ::getpid();
    return true;
  }

  void Run(int read_fd) {
    const pid_t me = ::getpid();
    while (true) {
      int fd;
      const ssize_t n = ::read(read_fd, &fd, sizeof fd);
      if (n != sizeof fd) {
        if (n < 0 && errno == EINTR) continue;
        return;
      }
      std::lock_guard lock(mu_);
      if (owner_ != me) return;  // a forked child runs its own thread
      auto it = registry_.find(fd);
      if (it == registry_.end()) continue;  // already detached or unmapped
      it->second.mapping->Detach();
      if (!it->second.shared) ::fcntl(fd, F_SETLEASE, F_UNLCK);
      registry_.erase(it);
    }
  }

  std::mutex mu_;  // guards registry_, owner_, read_fd_
  std::map<int, Entry> registry_;
  pid_t owner_ = -1;  // the process whose thread serves the registry
  int read_fd_ = -1;
};

}  // namespace

int GuardAndMap(int fd, GuardedMapping* mapping, const std::function<int()>& map) {
  return MapGuard::Instance().GuardAndMap(fd, mapping, map);
}
void UnguardMapping(int fd) { MapGuard::Instance().Unguard(fd); }
void RearmMapGuards() { MapGuard::Instance().Rearm(); }

}  // namespace dtkfs
