// fanotify's read buffer, one event at a time. Events are aligned to 4 bytes only (an event
// that carries a name is padded to 4 bytes, the kernel's FANOTIFY_EVENT_ALIGN), while
// struct fanotify_event_metadata holds a 64-bit mask and needs 8: reading it in place
// (FAN_EVENT_OK and FAN_EVENT_NEXT through a struct pointer) is a misaligned access, which
// UBSan reports for the second event of most reads. Each event's metadata is copied out; its
// info records (fields of 4 bytes at most) are read in place.
//
// Thread-safety: a pure function.
#pragma once

#include <sys/fanotify.h>

#include <cstddef>
#include <cstring>

namespace dtkfs::watch {

// Calls fn(meta, event) for each whole event in buf[0, n): meta is a copy of its metadata,
// event where the event starts (its info records follow at event + meta.metadata_len). Stops
// at a truncated or malformed event.
template <typename Fn>
void ForEachFanotifyEvent(const char* buf, size_t n, Fn&& fn) {
  size_t at = 0;
  while (n - at >= sizeof(struct fanotify_event_metadata)) {
    struct fanotify_event_metadata meta;
    std::memcpy(&meta, buf + at, sizeof meta);
    if (meta.event_len < sizeof meta || meta.event_len > n - at) return;
    const struct fanotify_event_metadata& copy = meta;
    fn(copy, buf + at);
    at += meta.event_len;
  }
}

}  // namespace dtkfs::watch
