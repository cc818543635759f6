// TempDir: a fresh directory under $TMPDIR (or /tmp), removed with everything in it.
#pragma once

#include <boost/filesystem.hpp>
#include <string>

namespace dtkfs::testing {

class TempDir {
 public:
  TempDir() {
    path_ = boost::filesystem::temp_directory_path() /
            boost::filesystem::unique_path("dtkfs-test-%%%%-%%%%-%%%%");
    boost::filesystem::create_directories(path_);
  }
  ~TempDir() {
    boost::system::error_code ec;
    boost::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path() const { return path_.string(); }
  std::string operator/(const std::string& rel) const { return (path_ / rel).string(); }

 private:
  boost::filesystem::path path_;
};

}  // namespace dtkfs::testing
