// Test Envs over the real one: ForwardingEnv passes every call on (a base to override a few
// calls); NoSyncEnv skips fsync, directory sync and syncfs. Power loss is not what the tests
// that use it simulate (FaultEnv does that), and on a busy disk real syncs would make tests
// that write hundreds of indexes take minutes.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "env/env.h"

namespace dtkfs::testing {

// Forwards everything to base.
class ForwardingEnv : public Env {
 public:
  explicit ForwardingEnv(Env& base) : base_(base) {}
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path,
                                                        mode_t mode) override {
    return base_.NewWritableFile(path, mode);
  }
  Result<std::unique_ptr<WritableFile>> ReopenWritableFile(const std::string& path) override {
    return base_.ReopenWritableFile(path);
  }
  Result<std::string> ReadFileToString(const std::string& path, size_t max_bytes) override {
    return base_.ReadFileToString(path, max_bytes);
  }
  Result<std::shared_ptr<const MappedFile>> MapReadOnly(const std::string& path) override {
    return base_.MapReadOnly(path);
  }
  Status Rename(const std::string& from, const std::string& to) override {
    return base_.Rename(from, to);
  }
  Status Remove(const std::string& path) override { return base_.Remove(path); }
  Status SyncDir(const std::string& dir) override { return base_.SyncDir(dir); }
  Status SyncFilesystem(const std::string& path) override { return base_.SyncFilesystem(path); }
  Status CreateDirs(const std::string& dir, mode_t mode) override {
    return base_.CreateDirs(dir, mode);
  }
  bool FileExists(const std::string& path) override { return base_.FileExists(path); }
  Result<std::vector<std::string>> ListDirectory(const std::string& dir) override {
    return base_.ListDirectory(dir);
  }
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    return base_.LockFile(path);
  }
  Result<std::unique_ptr<FileLock>> LockDirectory(const std::string& dir) override {
    return base_.LockDirectory(dir);
  }

 private:
  Env& base_;
};

class NoSyncEnv final : public ForwardingEnv {
 public:
  NoSyncEnv() : ForwardingEnv(Env::Default()) {}
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path,
                                                        mode_t mode) override {
    auto f = ForwardingEnv::NewWritableFile(path, mode);
    if (!f.ok()) return f.status();
    return std::unique_ptr<WritableFile>(new File(std::move(f).value()));
  }
  Status SyncDir(const std::string&) override { return Status::Ok(); }
  Status SyncFilesystem(const std::string&) override { return Status::Ok(); }

 private:
  class File final : public WritableFile {
   public:
    explicit File(std::unique_ptr<WritableFile> base) : base_(std::move(base)) {}
    Status WriteAt(uint64_t offset, std::string_view data) override {
      return base_->WriteAt(offset, data);
    }
    Status Sync() override { return Status::Ok(); }
    Status Close() override { return base_->Close(); }
    const std::string& path() const override { return base_->path(); }

   private:
    std::unique_ptr<WritableFile> base_;
  };
};

// One NoSyncEnv for a whole test binary.
inline Env& NoSyncDefault() {
  static NoSyncEnv env;
  return env;
}

}  // namespace dtkfs::testing
