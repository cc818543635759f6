#include "env/install_file.h"

#include "util/kill_point.h"
#include "util/path.h"

namespace dtkfs {

std::string TempPathFor(const std::string& path) { return path + ".tmp"; }

static std::string DirectoryOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status InstallFile(Env& env, const std::string& path, mode_t mode,
                   const std::function<Status(WritableFile&)>& write_body) {
  return InstallFileVia(env, path, TempPathFor(path), mode, write_body);
}

Status InstallFileVia(Env& env, const std::string& path, const std::string& tmp, mode_t mode,
                      const std::function<Status(WritableFile&)>& write_body) {
  auto file = env.NewWritableFile(tmp, mode);
  if (!file.ok()) return file.status();
  Status s = write_body(**file);
  if (s.ok()) kill_point::ReachStep("after-tmp");
  if (s.ok()) s = (*file)->Sync();
  Status close_status = (*file)->Close();
  if (s.ok()) s = close_status;
  if (s.ok()) kill_point::ReachStep("after-fsync");
  if (s.ok()) s = env.Rename(tmp, path);
  if (!s.ok()) {
    // The old file at path is untouched; the tmp file is garbage either way.
    env.Remove(tmp).PermitUnchecked();
    return s;
  }
  kill_point::ReachStep("after-rename");
  // After the rename the new file is visible; syncing the directory makes that durable.
  DTKFS_RETURN_IF_ERROR(env.SyncDir(DirectoryOf(path)));
  kill_point::ReachStep("after-dir-sync");
  return Status::Ok();
}

}  // namespace dtkfs
