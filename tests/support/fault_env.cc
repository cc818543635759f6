#include "support/fault_env.h"

namespace dtkfs::testing {
namespace {

class FaultFile final : public WritableFile {
 public:
  FaultFile(FaultEnv& env, std::unique_ptr<WritableFile> base)
      : env_(env), base_(std::move(base)) {}
  Status WriteAt(uint64_t offset, std::string_view data) override {
    DTKFS_RETURN_IF_ERROR(env_.Step("write " + path()));
    return base_->WriteAt(offset, data);
  }
  Status Sync() override {
    DTKFS_RETURN_IF_ERROR(env_.Step("sync " + path()));
    return base_->Sync();
  }
  Status Close() override {
    Status s = env_.Step("close " + path());
    Status c = base_->Close();  // the fd is released either way
    return s.ok() ? c : s;
  }
  const std::string& path() const override { return base_->path(); }

 private:
  FaultEnv& env_;
  std::unique_ptr<WritableFile> base_;
};

}  // namespace

Status FaultEnv::Step(const std::string& what) {
  std::lock_guard l(mu_);
  const int n = step_++;
  log_.push_back(what);
  if (fail_step_ >= 0 && (n == fail_step_ || (crash_ && n > fail_step_)))
    return Status::FromErrno(fail_errno_, "injected", what);
  return Status::Ok();
}

Result<std::unique_ptr<WritableFile>> FaultEnv::NewWritableFile(const std::string& path,
                                                                mode_t mode) {
  DTKFS_RETURN_IF_ERROR(Step("create " + path));
  auto f = ForwardingEnv::NewWritableFile(path, mode);
  if (!f.ok()) return f.status();
  return std::unique_ptr<WritableFile>(new FaultFile(*this, std::move(f).value()));
}

Result<std::unique_ptr<WritableFile>> FaultEnv::ReopenWritableFile(const std::string& path) {
  DTKFS_RETURN_IF_ERROR(Step("reopen " + path));
  auto f = ForwardingEnv::ReopenWritableFile(path);
  if (!f.ok()) return f.status();
  return std::unique_ptr<WritableFile>(new FaultFile(*this, std::move(f).value()));
}

Status FaultEnv::Rename(const std::string& from, const std::string& to) {
  DTKFS_RETURN_IF_ERROR(Step("rename " + from));
  return ForwardingEnv::Rename(from, to);
}
Status FaultEnv::Remove(const std::string& path) {
  DTKFS_RETURN_IF_ERROR(Step("remove " + path));
  return ForwardingEnv::Remove(path);
}
Status FaultEnv::SyncDir(const std::string& dir) {
  DTKFS_RETURN_IF_ERROR(Step("syncdir " + dir));
  return ForwardingEnv::SyncDir(dir);
}
Status FaultEnv::SyncFilesystem(const std::string& path) {
  DTKFS_RETURN_IF_ERROR(Step("syncfs " + path));
  return ForwardingEnv::SyncFilesystem(path);
}

}  // namespace dtkfs::testing
