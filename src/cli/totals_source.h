// TotalsSource: where `dtkfs du` and `dtkfs top` read totals from. Offline it is an index
// file (IndexTotalsSource); on a mounted path, the live xattrs (added with the mount).
// Resolve() picks the right one for a user's path.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dtkfs/totals.h"
#include "env/env.h"
#include "index/index_reader.h"

namespace dtkfs::cli {

class TotalsSource {
 public:
  virtual ~TotalsSource() = default;
  // Totals of the directory at rel (relative to the source root).
  virtual std::optional<Totals> Lookup(const std::string& rel) const = 0;
  // Directories strictly below rel, up to max_depth levels (0 = any depth).
  virtual std::vector<std::pair<std::string, Totals>> ListBelow(const std::string& rel,
                                                                size_t max_depth) const = 0;
  // Unix time the totals were exact for: now on a live mount; for an index, its file's last
  // write (the scan or compaction that wrote it). nullopt if that cannot be read.
  virtual std::optional<double> TotalsTime() const = 0;
};

class IndexTotalsSource final : public TotalsSource {
 public:
  explicit IndexTotalsSource(std::shared_ptr<const IndexReader> reader)
      : reader_(std::move(reader)) {}
  std::optional<Totals> Lookup(const std::string& rel) const override;
  std::vector<std::pair<std::string, Totals>> ListBelow(const std::string& rel,
                                                        size_t max_depth) const override;
  std::optional<double> TotalsTime() const override;

 private:
  std::shared_ptr<const IndexReader> reader_;
};

// A user's path resolved to a source of totals.
struct Target {
  std::shared_ptr<const TotalsSource> source;
  std::string relative;  // path below the source root ("" = the root)
  bool is_directory = true;
  uint64_t own_size = 0;  // for a non-directory: its lstat size
};

// index_path empty: find the index of the source containing path (or the mount it is on).
Result<Target> Resolve(Env& env, const std::string& path, const std::string& index_path);

}  // namespace dtkfs::cli
