// PowerLossEnv: an Env over a real directory that can lose power, like LevelDB's
// FaultInjectionTestEnv. Calls go through to the base Env (so the process sees what it wrote);
// beside them it records what is durable, and SimulatePowerLoss() rewrites the real files to
// that durable state, so a fresh Env (Env::Default()) then sees what a machine would after
// a power cut. The model is that of ext4 data=ordered, taken conservatively:
//
//   - A file's data is durable as of its last WritableFile::Sync. Data written but not synced
//     is dropped: the file is restored to its synced content (empty if it was never synced).
//   - A name created, renamed or removed is durable only after a SyncDir of its directory:
//     until then power loss undoes it. A created file disappears; a renamed file is back at
//     its old name (with its synced content) and the target has its previous durable content
//     back, or disappears; a removed file comes back.
//   - A directory made by CreateDirs is durable only after a SyncDir of its parent; otherwise
//     it disappears at power loss with everything in it.
//   - SyncFilesystem(path) (syncfs) makes everything on path's filesystem durable: data and
//     names.
//   - SetUnsynced() changes what happens to unsynced writes: kDrop (the default, above), kKeep
//     (all of them reached the disk), or kTornPrefix (a seeded random prefix of each file's
//     unsynced writes, in the order made, the last one cut at a random byte: a torn tail).
//     Names follow the rules above in every mode.
//   - What is on disk when the env first touches a name (files written before the env was
//     made, or by other means) counts as durable. Only regular files are tracked; Rename and
//     Remove of anything else, LockFile and LockDirectory pass through untracked.
//
// A power cut at a chosen step: like FaultEnv, every mutating call (create, reopen, write,
// sync, close, rename, remove, syncdir, syncfs, mkdir) is a numbered step. CutPowerAt(n)
// makes step n and every later one fail with EIO without doing anything (the machine is
// off); SimulatePowerLoss() then restores the durable state. A test cuts at every n from 0 to
// steps() of a clean run. The env also composes with FaultEnv (PowerLossEnv over FaultEnv):
// a failed base call changes nothing in the model.
//
// Call SimulatePowerLoss() once the code under test has stopped calling the env (its
// threads joined); after it the env starts afresh: the disk as it is then is durable, steps
// count from 0, the cut is cleared, and WritableFiles opened before it fail with EIO (their
// process is gone).
//
// Thread-safety: safe to call from any thread (one mutex guards the model), as env.h promises
// for every Env; a WritableFile is used by one thread at a time. Creations, renames, removals
// and mkdir hold the mutex across the base call (a base Env that blocks there blocks the
// others); writes and syncs do not.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "env/env.h"
#include "support/env_wrappers.h"

namespace dtkfs::testing {

class PowerLossEnv final : public ForwardingEnv {
 public:
  // base does the real I/O (NoSyncDefault() keeps tests fast: durability is simulated here).
  explicit PowerLossEnv(Env& base = Env::Default());
  ~PowerLossEnv() override;

  enum class Unsynced { kDrop, kKeep, kTornPrefix };
  // What SimulatePowerLoss keeps of data written and not synced (seed: kTornPrefix's choices).
  void SetUnsynced(Unsynced mode, uint64_t seed = 0);

  // Rewrites the real files to their durable state (see above), then starts afresh.
  // Fails only if the disk cannot be rewritten.
  Status SimulatePowerLoss();

  // Step n (counted from 0) and every later mutating call fail with EIO and have no effect.
  void CutPowerAt(int step);
  // The next mutating call and every later one fail (CutPowerAt(steps())).
  void CutPowerNow();
  bool power_cut() const;  // true once a call has been refused by a cut
  int steps() const;       // mutating calls so far (including refused ones)
  // The names of the steps so far ("create /x/i.tmp", "write /x/i.tmp", "syncdir /x", ...).
  std::vector<std::string> log() const;

  // The paths whose current name or content would change at a power loss now: what is not
  // yet durable (for tests that want to assert a call left nothing pending).
  std::vector<std::string> NotDurable() const;

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path,
                                                        mode_t mode) override;
  Result<std::unique_ptr<WritableFile>> ReopenWritableFile(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Remove(const std::string& path) override;
  Status SyncDir(const std::string& dir) override;
  Status SyncFilesystem(const std::string& path) override;
  Status CreateDirs(const std::string& dir, mode_t mode) override;

 private:
  class File;
  friend class File;
  // One file's contents: as the process sees them, and as the disk would keep them.
  struct Inode {
    std::string live;
    std::optional<std::string> durable;  // nullopt: never synced (empty after power loss)
    // The writes since the last sync, in order (offset, bytes): what kDrop drops.
    std::vector<std::pair<uint64_t, std::string>> pending;
    mode_t mode = 0600;
  };
  using InodeRef = std::shared_ptr<Inode>;

  // Counts a step; the cut's failure, or Ok. Needs mu_.
  Status StepLocked(const std::string& what);
  // Starts tracking path (normalised) with what is on disk now, as durable. Needs mu_.
  void TouchLocked(const std::string& path);
  Status FileWrite(File& f, uint64_t offset, std::string_view data);
  Status FileSync(File& f);
  Status FileClose(File& f);
  bool IsDeadLocked(const File& f) const;
  // Inode's synced content, and what SetUnsynced keeps of its unsynced writes. Needs mu_.
  std::string AfterPowerLossLocked(const Inode& inode, std::mt19937_64& rng) const;
  // content (with the first writes of pending in it) is now durable. Needs mu_.
  static void MakeDurableLocked(Inode& inode, std::string content, size_t writes);
  // Whether path's directory is on the filesystem of dev (unknown: no).
  static bool OnDevice(const std::string& path, dev_t dev);

  mutable std::mutex mu_;  // guards everything below
  // Every name touched: what it names now and what it would name after a power loss
  // (nullptr: nothing).
  std::map<std::string, InodeRef> live_names_;
  std::map<std::string, InodeRef> durable_names_;
  std::set<std::string> new_dirs_;  // made by CreateDirs, parent not synced since
  Unsynced unsynced_ = Unsynced::kDrop;
  uint64_t seed_ = 0;
  uint64_t epoch_ = 0;  // bumped by SimulatePowerLoss: older files are dead
  int step_ = 0;
  int cut_step_ = -1;
  bool cut_hit_ = false;
  std::vector<std::string> log_;
};

}  // namespace dtkfs::testing
