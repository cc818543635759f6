#include "env/map_guard.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <mutex>
#include <thread>

#include "util/log.h"

namespace dtkfs {
namespace {

int LeaseSignal() { return SIGRTMIN + 1; }

int g_pipe_write = -1;  // the signal handler's only state

void OnLeaseBreak(int, siginfo_t* info, void*) {
  const int saved = errno;
  const int fd = info->si_fd;
  // A full pipe loses nothing: a lease keeps signalling until it is given up.
  [[maybe_unused]] ssize_t n = ::write(g_pipe_write, &fd, sizeof fd);
  errno = saved;
}

class MapGuard {
 public:
  static MapGuard& Instance() {
    static MapGuard* guard = new MapGuard;  // never destroyed: the thread may outlive main
    return *guard;
  }

  bool Guard(int fd, GuardedMapping* mapping) {
    std::lock_guard lock(mu_);
    if (!EnsureRunningLocked()) return false;
    if (::fcntl(fd, F_SETSIG, LeaseSignal()) != 0 || ::fcntl(fd, F_SETLEASE, F_RDLCK) != 0)
      return false;
    registry_[fd] = mapping;
    return true;
  }

  void Unguard(int fd) {
    std::lock_guard lock(mu_);
    if (registry_.erase(fd) != 0) ::fcntl(fd, F_SETLEASE, F_UNLCK);
  }

  void Rearm() {
    std::lock_guard lock(mu_);
    if (owner_ == ::getpid()) return;
    owner_ = -1;  // the thread was the parent's; the child has none
    if (!EnsureRunningLocked()) return;
    for (auto& [fd, m] : registry_) ::fcntl(fd, F_SETOWN, ::getpid());
  }

 private:
  // Caller holds mu_. Starts the pipe, the handler and the thread once per process.
  bool EnsureRunningLocked() {
    if (owner_ == ::getpid()) return true;
    if (read_fd_ < 0) {
      int p[2];
      if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return false;
      read_fd_ = p[0];
      g_pipe_write = p[1];
      // The reader blocks; only the handler's end must never block.
      ::fcntl(read_fd_, F_SETFL, 0);
      struct sigaction sa {};
      sa.sa_sigaction = OnLeaseBreak;
      sa.sa_flags = SA_SIGINFO | SA_RESTART;
      sigemptyset(&sa.sa_mask);
      if (::sigaction(LeaseSignal(), &sa, nullptr) != 0) return false;
    }
    std::thread([this] { Run(); }).detach();
    owner_ = ::getpid();
    return true;
  }

  void Run() {
    const pid_t me = ::getpid();
    while (true) {
      int fd;
      const ssize_t n = ::read(read_fd_, &fd, sizeof fd);
      if (n != sizeof fd) {
        if (n < 0 && errno == EINTR) continue;
        return;
      }
      std::lock_guard lock(mu_);
      if (owner_ != me) return;  // a forked child runs its own thread
      auto it = registry_.find(fd);
      if (it == registry_.end()) continue;  // already detached or unmapped
      it->second->Detach();
      ::fcntl(fd, F_SETLEASE, F_UNLCK);
      registry_.erase(it);
    }
  }

  std::mutex mu_;  // guards registry_, owner_, read_fd_
  std::map<int, GuardedMapping*> registry_;
  pid_t owner_ = -1;  // the process whose thread serves the registry
  int read_fd_ = -1;
};

}  // namespace

bool GuardMapping(int fd, GuardedMapping* mapping) {
  return MapGuard::Instance().Guard(fd, mapping);
}
void UnguardMapping(int fd) { MapGuard::Instance().Unguard(fd); }
void RearmMapGuards() { MapGuard::Instance().Rearm(); }

}  // namespace dtkfs
