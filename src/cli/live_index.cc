#include "cli/live_index.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <chrono>

#include "cli/mount_point.h"
#include "cli/mount_status.h"

namespace dtkfs::cli {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::optional<uint64_t> WholeNumber(const std::string& text) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return n;
}

LiveIndex Listing(std::string why, bool failed = false) {
  LiveIndex out;
  out.why_not = std::move(why);
  out.failed = failed;
  return out;
}

}  // namespace

LiveIndex CompactAndOpenIndex(Env& env, const std::string& mount_root) {
  auto before = ReadMountStatus(mount_root);
  if (!before.ok()) return Listing(before.status().message());
  const std::string index = before->fields["index"];
  if (index.empty() || index[0] != '/')
    return Listing(fmt::format("{}: its status names no index file", mount_root));
  // The daemon's files are its user's: another user's export lists the mount (and is spared
  // a compaction it could not use).
  const uid_t me = ::geteuid();
  if (auto owner = DtkfsMountOwner(mount_root); owner && *owner != me)
    return Listing(fmt::format("{}: the mount belongs to uid {}, not to this user (uid {})",
                               mount_root, *owner, me));
  struct stat st;
  if (::lstat(index.c_str(), &st) != 0)
    return Listing(Status::FromErrno(errno, "stat index", index).message());
  if (!S_ISREG(st.st_mode) || st.st_uid != me)
    return Listing(fmt::format("index {}: not a regular file of this user", index));

  // Every change made through the mount before this moment is in the index the compaction
  // writes (Compactor::CompactNow runs a compaction that starts after the request).
  const double requested = Now();
  if (Status s = RequestCompaction(mount_root); !s.ok()) return Listing(s.message(), true);
  // The generation published by that compaction (or a later one): the file read below must
  // be at least that new, or it is not the file the daemon just wrote.
  auto after = ReadMountStatus(mount_root);
  if (!after.ok()) return Listing(after.status().message());
  const auto generation = WholeNumber(after->fields["generation"]);
  if (!generation || after->fields["index"] != index)
    return Listing(fmt::format("{}: its status changed oddly during the compaction", mount_root));

  auto reader = IndexReader::Open(env, index);
  if (!reader.ok()) return Listing(reader.status().message(), true);
  const std::string_view source = (*reader)->source_root();
  if ((*reader)->generation() < *generation ||
      (!source.empty() && source != before->fields["source"]))
    return Listing(
        fmt::format("index {}: generation {} of source {}, not the daemon's (generation {} of "
                    "source {})",
                    index, (*reader)->generation(), source, *generation, before->fields["source"]),
        true);
  LiveIndex out;
  out.reader = std::move(reader).value();
  out.exact_at = requested;
  return out;
}

}  // namespace dtkfs::cli
