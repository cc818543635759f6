// fanotify's read buffer split into events (src/watch/fanotify_events.h).
#include "watch/fanotify_events.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <vector>

using dtkfs::watch::ForEachFanotifyEvent;

namespace {

// Appends an event of event_len bytes (metadata, then zeros as its info records).
void Append(std::vector<char>& buf, uint32_t event_len, uint64_t mask, int32_t pid) {
  struct fanotify_event_metadata meta {};
  meta.event_len = event_len;
  meta.vers = FANOTIFY_METADATA_VERSION;
  meta.metadata_len = FAN_EVENT_METADATA_LEN;
  meta.mask = mask;
  meta.fd = FAN_NOFD;
  meta.pid = pid;
  const size_t at = buf.size();
  buf.resize(at + std::max<size_t>(event_len, sizeof meta), '\0');
  std::memcpy(buf.data() + at, &meta, sizeof meta);
}

}  // namespace

// Events that carry a name are padded to 4 bytes, not 8: the second event of such a read
// starts at an address the 64-bit mask may not be read from in place (UBSan: "misaligned
// address ... for type 'const struct fanotify_event_metadata'", seen in the daemon's log
// under the big-tree workload).
TEST_CASE("regression: fanotify events at 4-byte offsets are read without a misaligned access",
          "[watch]") {
  std::vector<char> bytes;
  Append(bytes, 84, FAN_CREATE | FAN_ONDIR, 7);  // 84: a multiple of 4, not of 8
  Append(bytes, 108, FAN_MODIFY, 8);
  Append(bytes, 24, FAN_Q_OVERFLOW, 9);
  alignas(struct fanotify_event_metadata) char buf[256];
  REQUIRE(bytes.size() <= sizeof buf);
  std::memcpy(buf, bytes.data(), bytes.size());

  std::vector<uint64_t> masks;
  std::vector<int32_t> pids;
  std::vector<size_t> offsets;
  ForEachFanotifyEvent(buf, bytes.size(),
                       [&](const struct fanotify_event_metadata& meta, const char* event) {
                         masks.push_back(meta.mask);
                         pids.push_back(meta.pid);
                         offsets.push_back(static_cast<size_t>(event - buf));
                       });
  CHECK(masks == std::vector<uint64_t>{FAN_CREATE | FAN_ONDIR, FAN_MODIFY, FAN_Q_OVERFLOW});
  CHECK(pids == std::vector<int32_t>{7, 8, 9});
  CHECK(offsets == std::vector<size_t>{0, 84, 192});

  // A truncated event (a short read) and a malformed one end the walk.
  size_t seen = 0;
  ForEachFanotifyEvent(buf, bytes.size() - 1, [&](const auto&, const char*) { ++seen; });
  CHECK(seen == 2);
  std::vector<char> bad;
  Append(bad, 8, FAN_CREATE, 1);  // shorter than its own metadata
  bad.resize(sizeof(struct fanotify_event_metadata));
  alignas(struct fanotify_event_metadata) char bad_buf[sizeof(struct fanotify_event_metadata)];
  std::memcpy(bad_buf, bad.data(), sizeof bad_buf);
  seen = 0;
  ForEachFanotifyEvent(bad_buf, sizeof bad_buf, [&](const auto&, const char*) { ++seen; });
  CHECK(seen == 0);
}
