#include "support/power_loss_env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/filesystem.hpp>
#include <cerrno>
#include <random>
#include <utility>

namespace dtkfs::testing {
namespace {

// An absolute path without "//", "/./" or a trailing slash (".." is kept as it is).
std::string Normalize(const std::string& path) {
  std::string in = path;
  if (in.empty() || in[0] != '/') in = boost::filesystem::current_path().string() + "/" + in;
  std::string out;
  size_t i = 0;
  while (i < in.size()) {
    while (i < in.size() && in[i] == '/') ++i;
    size_t j = in.find('/', i);
    if (j == std::string::npos) j = in.size();
    std::string_view part(in.data() + i, j - i);
    if (!part.empty() && part != ".") {
      out += '/';
      out += part;
    }
    i = j;
  }
  return out.empty() ? "/" : out;
}

std::string Parent(const std::string& normalized) {
  const size_t slash = normalized.rfind('/');
  if (slash == 0 || slash == std::string::npos) return "/";
  return normalized.substr(0, slash);
}

bool IsBelow(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         (dir == "/" || path[dir.size()] == '/');
}

// The whole content of a regular file (nullopt if path is not one, or cannot be read).
std::optional<std::string> ReadRegular(const std::string& path, mode_t* mode) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  *mode = st.st_mode & 07777;
  return out;
}

// pwrite semantics on a string: a hole before offset reads as zeros.
void ApplyWrite(std::string& content, uint64_t offset, std::string_view data) {
  if (content.size() < offset + data.size()) content.resize(offset + data.size(), '\0');
  content.replace(offset, data.size(), data);
}

Status WriteWhole(const std::string& path, mode_t mode, const std::string& content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return Status::FromErrno(errno, "power loss: restore", path);
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Status::FromErrno(err, "power loss: restore", path);
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return Status::Ok();
}

}  // namespace

class PowerLossEnv::File final : public WritableFile {
 public:
  File(PowerLossEnv& env, std::unique_ptr<WritableFile> base, InodeRef inode, uint64_t epoch)
      : env_(env), base_(std::move(base)), inode_(std::move(inode)), epoch_(epoch) {}
  Status WriteAt(uint64_t offset, std::string_view data) override {
    return env_.FileWrite(*this, offset, data);
  }
  Status Sync() override { return env_.FileSync(*this); }
  Status Close() override { return env_.FileClose(*this); }
  const std::string& path() const override { return base_->path(); }

 private:
  friend class PowerLossEnv;
  PowerLossEnv& env_;
  std::unique_ptr<WritableFile> base_;
  InodeRef inode_;
  const uint64_t epoch_;
};

PowerLossEnv::PowerLossEnv(Env& base) : ForwardingEnv(base) {}
PowerLossEnv::~PowerLossEnv() = default;

void PowerLossEnv::CutPowerAt(int step) {
  std::lock_guard l(mu_);
  cut_step_ = step;
}
void PowerLossEnv::CutPowerNow() {
  std::lock_guard l(mu_);
  cut_step_ = step_;
}
bool PowerLossEnv::power_cut() const {
  std::lock_guard l(mu_);
  return cut_hit_;
}
int PowerLossEnv::steps() const {
  std::lock_guard l(mu_);
  return step_;
}
std::vector<std::string> PowerLossEnv::log() const {
  std::lock_guard l(mu_);
  return log_;
}

std::vector<std::string> PowerLossEnv::NotDurable() const {
  std::lock_guard l(mu_);
  std::vector<std::string> out;
  for (const auto& [p, live] : live_names_) {
    const InodeRef& durable = durable_names_.at(p);
    if (live != durable || (live && (live->durable != live->live || !live->pending.empty())))
      out.push_back(p);
  }
  for (const auto& d : new_dirs_) out.push_back(d + "/");
  return out;
}

Status PowerLossEnv::StepLocked(const std::string& what) {
  const int n = step_++;
  log_.push_back(what);
  if (cut_step_ >= 0 && n >= cut_step_) {
    cut_hit_ = true;
    return Status::FromErrno(EIO, "power cut", what);
  }
  return Status::Ok();
}

void PowerLossEnv::TouchLocked(const std::string& path) {
  if (live_names_.count(path)) return;
  InodeRef inode;
  mode_t mode = 0;
  if (auto content = ReadRegular(path, &mode)) {
    inode = std::make_shared<Inode>();
    inode->live = *content;
    inode->durable = std::move(content);
    inode->mode = mode;
  }
  live_names_[path] = inode;
  durable_names_[path] = inode;
}

std::string PowerLossEnv::AfterPowerLossLocked(const Inode& inode, std::mt19937_64& rng) const {
  std::string content = inode.durable.value_or("");
  if (unsynced_ == Unsynced::kDrop || inode.pending.empty()) return content;
  size_t keep = inode.pending.size();
  size_t torn_bytes = 0;  // of the write after the kept ones
  if (unsynced_ == Unsynced::kTornPrefix) {
    keep = std::uniform_int_distribution<size_t>(0, inode.pending.size())(rng);
    if (keep < inode.pending.size())
      torn_bytes = std::uniform_int_distribution<size_t>(0, inode.pending[keep].second.size())(rng);
  }
  for (size_t i = 0; i < keep; ++i)
    ApplyWrite(content, inode.pending[i].first, inode.pending[i].second);
  if (keep < inode.pending.size() && torn_bytes > 0) {
    const auto& [offset, bytes] = inode.pending[keep];
    ApplyWrite(content, offset, std::string_view(bytes).substr(0, torn_bytes));
  }
  return content;
}

bool PowerLossEnv::IsDeadLocked(const File& f) const { return f.epoch_ != epoch_; }

bool PowerLossEnv::OnDevice(const std::string& path, dev_t dev) {
  struct stat st;
  return ::stat(Parent(path).c_str(), &st) == 0 && st.st_dev == dev;
}

Result<std::unique_ptr<WritableFile>> PowerLossEnv::NewWritableFile(const std::string& path,
                                                                    mode_t mode) {
  std::lock_guard l(mu_);
  DTKFS_RETURN_IF_ERROR(StepLocked("create " + path));
  const std::string p = Normalize(path);
  TouchLocked(p);
  auto f = ForwardingEnv::NewWritableFile(path, mode);
  if (!f.ok()) {
    // The base may have removed the old file before its create failed.
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) live_names_[p] = nullptr;
    return f.status();
  }
  auto inode = std::make_shared<Inode>();
  struct stat st;
  inode->mode = ::lstat(p.c_str(), &st) == 0 ? (st.st_mode & 07777) : (mode & 07777);
  live_names_[p] = inode;
  return std::unique_ptr<WritableFile>(
      new File(*this, std::move(f).value(), std::move(inode), epoch_));
}

Result<std::unique_ptr<WritableFile>> PowerLossEnv::ReopenWritableFile(const std::string& path) {
  std::lock_guard l(mu_);
  DTKFS_RETURN_IF_ERROR(StepLocked("reopen " + path));
  const std::string p = Normalize(path);
  TouchLocked(p);
  auto f = ForwardingEnv::ReopenWritableFile(path);
  if (!f.ok()) return f.status();
  InodeRef inode = live_names_[p];
  if (!inode) {  // not a regular file when touched, one now: durable as it is
    inode = std::make_shared<Inode>();
    mode_t mode = 0600;
    inode->live = ReadRegular(p, &mode).value_or("");
    inode->durable = inode->live;
    inode->mode = mode;
    live_names_[p] = inode;
  }
  return std::unique_ptr<WritableFile>(
      new File(*this, std::move(f).value(), std::move(inode), epoch_));
}

Status PowerLossEnv::FileWrite(File& f, uint64_t offset, std::string_view data) {
  {
    std::lock_guard l(mu_);
    if (IsDeadLocked(f)) return Status::FromErrno(EIO, "write after power loss", f.path());
    DTKFS_RETURN_IF_ERROR(StepLocked("write " + f.path()));
  }
  DTKFS_RETURN_IF_ERROR(f.base_->WriteAt(offset, data));
  std::lock_guard l(mu_);
  if (IsDeadLocked(f)) return Status::Ok();  // landed after the power loss: not modelled
  ApplyWrite(f.inode_->live, offset, data);
  f.inode_->pending.emplace_back(offset, std::string(data));
  return Status::Ok();
}

Status PowerLossEnv::FileSync(File& f) {
  std::string snapshot;
  size_t writes;
  {
    std::lock_guard l(mu_);
    if (IsDeadLocked(f)) return Status::FromErrno(EIO, "sync after power loss", f.path());
    DTKFS_RETURN_IF_ERROR(StepLocked("sync " + f.path()));
    snapshot = f.inode_->live;
    writes = f.inode_->pending.size();
  }
  DTKFS_RETURN_IF_ERROR(f.base_->Sync());
  std::lock_guard l(mu_);
  if (!IsDeadLocked(f)) MakeDurableLocked(*f.inode_, std::move(snapshot), writes);
  return Status::Ok();
}

Status PowerLossEnv::FileClose(File& f) {
  Status s;
  {
    std::lock_guard l(mu_);
    s = IsDeadLocked(f) ? Status::FromErrno(EIO, "close after power loss", f.path())
                        : StepLocked("close " + f.path());
  }
  Status c = f.base_->Close();  // the descriptor is released either way
  return s.ok() ? c : s;
}

Status PowerLossEnv::Rename(const std::string& from, const std::string& to) {
  std::lock_guard l(mu_);
  DTKFS_RETURN_IF_ERROR(StepLocked("rename " + from));
  const std::string f = Normalize(from), t = Normalize(to);
  TouchLocked(f);
  TouchLocked(t);
  DTKFS_RETURN_IF_ERROR(ForwardingEnv::Rename(from, to));
  if (f != t) {
    live_names_[t] = live_names_[f];
    live_names_[f] = nullptr;
  }
  return Status::Ok();
}

Status PowerLossEnv::Remove(const std::string& path) {
  std::lock_guard l(mu_);
  DTKFS_RETURN_IF_ERROR(StepLocked("remove " + path));
  const std::string p = Normalize(path);
  TouchLocked(p);
  DTKFS_RETURN_IF_ERROR(ForwardingEnv::Remove(path));
  live_names_[p] = nullptr;
  return Status::Ok();
}

Status PowerLossEnv::SyncDir(const std::string& dir) {
  std::vector<std::pair<std::string, InodeRef>> names;
  std::vector<std::string> dirs;
  uint64_t epoch;
  {
    std::lock_guard l(mu_);
    DTKFS_RETURN_IF_ERROR(StepLocked("syncdir " + dir));
    const std::string d = Normalize(dir);
    for (const auto& [p, inode] : live_names_)
      if (Parent(p) == d) names.emplace_back(p, inode);
    for (const auto& nd : new_dirs_)
      if (Parent(nd) == d) dirs.push_back(nd);
    epoch = epoch_;
  }
  DTKFS_RETURN_IF_ERROR(ForwardingEnv::SyncDir(dir));
  std::lock_guard l(mu_);
  if (epoch != epoch_) return Status::Ok();
  for (auto& [p, inode] : names) durable_names_[p] = std::move(inode);
  for (const auto& nd : dirs) new_dirs_.erase(nd);
  return Status::Ok();
}

Status PowerLossEnv::SyncFilesystem(const std::string& path) {
  std::vector<std::pair<std::string, InodeRef>> names;
  struct Content {
    InodeRef inode;
    std::string bytes;
    size_t writes;
  };
  std::vector<Content> contents;
  std::vector<std::string> dirs;
  uint64_t epoch;
  {
    std::lock_guard l(mu_);
    DTKFS_RETURN_IF_ERROR(StepLocked("syncfs " + path));
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) {
      for (const auto& [p, inode] : live_names_) {
        if (!OnDevice(p, st.st_dev)) continue;
        names.emplace_back(p, inode);
        if (inode) contents.push_back({inode, inode->live, inode->pending.size()});
      }
      for (const auto& nd : new_dirs_)
        if (OnDevice(nd, st.st_dev)) dirs.push_back(nd);
    }
    epoch = epoch_;
  }
  DTKFS_RETURN_IF_ERROR(ForwardingEnv::SyncFilesystem(path));
  std::lock_guard l(mu_);
  if (epoch != epoch_) return Status::Ok();
  for (auto& [p, inode] : names) durable_names_[p] = std::move(inode);
  for (auto& c : contents) MakeDurableLocked(*c.inode, std::move(c.bytes), c.writes);
  for (const auto& nd : dirs) new_dirs_.erase(nd);
  return Status::Ok();
}

Status PowerLossEnv::CreateDirs(const std::string& dir, mode_t mode) {
  std::lock_guard l(mu_);
  DTKFS_RETURN_IF_ERROR(StepLocked("mkdir " + dir));
  const std::string d = Normalize(dir);
  std::vector<std::string> missing;  // the components that do not exist yet
  for (size_t slash = d.find('/', 1);; slash = d.find('/', slash + 1)) {
    const std::string prefix = slash == std::string::npos ? d : d.substr(0, slash);
    struct stat st;
    if (::lstat(prefix.c_str(), &st) != 0) missing.push_back(prefix);
    if (slash == std::string::npos) break;
  }
  Status s = ForwardingEnv::CreateDirs(dir, mode);
  for (const auto& m : missing) {
    struct stat st;
    if (::lstat(m.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) new_dirs_.insert(m);
  }
  return s;
}

void PowerLossEnv::MakeDurableLocked(Inode& inode, std::string content, size_t writes) {
  inode.durable = std::move(content);
  inode.pending.erase(
      inode.pending.begin(),
      inode.pending.begin() + static_cast<std::ptrdiff_t>(std::min(writes, inode.pending.size())));
}

void PowerLossEnv::SetUnsynced(Unsynced mode, uint64_t seed) {
  std::lock_guard l(mu_);
  unsynced_ = mode;
  seed_ = seed;
}

Status PowerLossEnv::SimulatePowerLoss() {
  std::lock_guard l(mu_);
  Status first;
  std::mt19937_64 rng(seed_);
  // Directories whose creation was not made durable go, with everything in them.
  std::vector<std::string> lost_dirs;
  auto in_lost_dir = [&](const std::string& p) {
    for (const auto& d : lost_dirs)
      if (IsBelow(p, d)) return true;
    return false;
  };
  for (const auto& d : new_dirs_) {  // sorted: a parent comes before its children
    if (in_lost_dir(d)) continue;
    boost::system::error_code ec;
    boost::filesystem::remove_all(d, ec);
    if (ec && first.ok()) first = Status::FromErrno(ec.value(), "power loss: remove", d);
    lost_dirs.push_back(d);
  }
  for (const auto& [p, durable] : durable_names_) {
    if (in_lost_dir(p)) continue;
    const InodeRef& live = live_names_.at(p);
    if (live == durable && (!live || (live->durable == live->live && live->pending.empty())))
      continue;  // nothing to undo
    // Replaced rather than rewritten in place: a mapping a test still holds keeps its inode.
    if (::unlink(p.c_str()) != 0 && errno != ENOENT && first.ok())
      first = Status::FromErrno(errno, "power loss: remove", p);
    if (durable) {
      Status s = WriteWhole(p, durable->mode, AfterPowerLossLocked(*durable, rng));
      if (!s.ok() && first.ok()) first = s;
    }
  }
  live_names_.clear();
  durable_names_.clear();
  new_dirs_.clear();
  ++epoch_;
  seed_ = rng();  // the next power loss tears differently
  step_ = 0;
  cut_step_ = -1;
  cut_hit_ = false;
  log_.clear();
  return first;
}

}  // namespace dtkfs::testing
