// SmallTmpfs: a small tmpfs mounted on a directory for a test (a full disk on demand),
// unmounted lazily when the test ends. Needs root; mounted() says whether it worked.
#pragma once

#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace dtkfs::testing {

class SmallTmpfs {
 public:
  // size: tmpfs's size= ("1m").
  SmallTmpfs(const std::string& dir, const std::string& size) : dir_(dir) {
    ::mkdir(dir_.c_str(), 0700);
    mounted_ =
        ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, ("size=" + size + ",mode=0700").c_str()) == 0;
    if (!mounted_) error_ = std::strerror(errno);
  }
  ~SmallTmpfs() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  SmallTmpfs(const SmallTmpfs&) = delete;
  SmallTmpfs& operator=(const SmallTmpfs&) = delete;
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

 private:
  std::string dir_;
  bool mounted_ = false;
  std::string error_;
};

}  // namespace dtkfs::testing
