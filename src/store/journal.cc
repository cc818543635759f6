#include "store/journal.h"

#include <fmt/format.h>

#include <algorithm>

#include "dtkfs/index_format.h"
#include "index/index_files.h"
#include "index/index_lifecycle.h"
#include "util/crc32c.h"
#include "util/kill_point.h"
#include "util/log.h"
#include "util/path.h"

namespace dtkfs {
namespace {

constexpr std::string_view kJournalMagic{"DTKJRNL1", 8};
constexpr size_t kHeaderSize = 32;
constexpr size_t kRecordHeader = 9;  // length u32, CRC u32, type u8
// Larger than any store path; a length beyond it is a bad record, not an allocation.
constexpr size_t kMaxPayload = format::kMaxPathLength;
// Far above any generation a daemon reaches; the generation after it cannot wrap.
constexpr uint64_t kMaxJournalGeneration = uint64_t{1} << 48;
// A journal this large is read as far as this; more is not a torn tail but a damaged file.
constexpr size_t kMaxJournalBytes = size_t{1} << 30;

uint32_t RecordCrc(uint8_t type, std::string_view payload) {
  return crc32c::Extend(crc32c::Value(&type, 1), payload.data(), payload.size());
}

std::string IndexDir(const std::string& index) {
  return std::string(path::Parent(index).empty() ? "." : path::Parent(index));
}

}  // namespace

std::string EncodeJournalHeader(uint64_t generation) {
  std::string h(kHeaderSize, '\0');
  h.replace(0, kJournalMagic.size(), kJournalMagic);
  format::StoreU64(h.data() + 8, generation);
  format::StoreU32(h.data() + 24, crc32c::Value(h.data(), 24));
  return h;
}

std::string EncodeJournalRecord(const JournalRecord& record) {
  std::string r(kRecordHeader, '\0');
  const auto type = static_cast<uint8_t>(record.type);
  format::StoreU32(r.data(), static_cast<uint32_t>(record.path.size()));
  format::StoreU32(r.data() + 4, RecordCrc(type, record.path));
  r[8] = static_cast<char>(type);
  r += record.path;
  return r;
}

JournalFile DecodeJournal(std::string_view bytes) {
  JournalFile out;
  if (bytes.size() < kHeaderSize || bytes.substr(0, kJournalMagic.size()) != kJournalMagic ||
      format::LoadU32(bytes.data() + 24) != crc32c::Value(bytes.data(), 24)) {
    out.torn = !bytes.empty();
    return out;
  }
  out.generation = format::LoadU64(bytes.data() + 8);
  size_t at = kHeaderSize;
  while (at < bytes.size()) {
    if (bytes.size() - at < kRecordHeader) {
      out.torn = true;
      break;
    }
    const uint32_t len = format::LoadU32(bytes.data() + at);
    const uint32_t crc = format::LoadU32(bytes.data() + at + 4);
    const auto type = static_cast<uint8_t>(bytes[at + 8]);
    if (len > kMaxPayload || bytes.size() - at - kRecordHeader < len) {
      out.torn = true;
      break;
    }
    const std::string_view payload = bytes.substr(at + kRecordHeader, len);
    const bool known = type == static_cast<uint8_t>(JournalRecord::Type::kDirty) ||
                       type == static_cast<uint8_t>(JournalRecord::Type::kReplaced);
    if (crc != RecordCrc(type, payload) || !known ||
        (!payload.empty() && !path::IsValidRelative(payload))) {
      out.torn = true;
      break;
    }
    out.records.push_back({static_cast<JournalRecord::Type>(type), std::string(payload)});
    at += kRecordHeader + len;
  }
  return out;
}

size_t JournalSet::records() const {
  size_t n = 0;
  for (const JournalFile& f : pending) n += f.records.size();
  return n;
}

Result<JournalSet> ReadJournals(Env& env, const std::string& index, uint64_t covered) {
  JournalSet set;
  auto names = env.ListDirectory(IndexDir(index));
  if (!names.ok()) return names.status().WithContext("journal");
  const std::string index_name(path::Basename(index));
  std::vector<std::pair<uint64_t, std::string>> found;
  for (const std::string& name : *names)
    if (auto g = JournalGeneration(index_name, name)) found.emplace_back(*g, name);
  std::sort(found.begin(), found.end());
  for (const auto& [generation, name] : found) {
    const std::string file = path::Join(IndexDir(index), name);
    // The next journal begins after the newest generation found: a name near 2^64 would
    // make it wrap to 1, below what the index covers, and its marks would be read as
    // obsolete after a crash. No daemon counts that far (a compaction a second for 8
    // million years), so such a file was planted or damaged.
    if (generation > kMaxJournalGeneration)
      return Status::Corruption(
          fmt::format("journal {}: generation {} out of range", file, generation));
    if (generation <= covered) {
      set.obsolete.push_back(file);
      continue;
    }
    auto bytes = env.ReadFileToString(file, kMaxJournalBytes + 1);
    if (!bytes.ok()) return bytes.status().WithContext("journal");
    if (bytes->size() > kMaxJournalBytes)
      return Status::Corruption(
          fmt::format("journal {}: larger than {} bytes", file, kMaxJournalBytes));
    JournalFile f = DecodeJournal(*bytes);
    if (f.generation != 0 && f.generation != generation)
      return Status::Corruption(fmt::format("journal {}: holds generation {}", file, f.generation));
    f.generation = generation;
    f.path = file;
    set.last_generation = generation;
    set.pending.push_back(std::move(f));
  }
  return set;
}

Journal::Journal(Env& env, std::string index, uint64_t first_generation)
    : env_(env), index_(std::move(index)), generation_(std::max<uint64_t>(first_generation, 1)) {}

Journal::~Journal() {
  if (file_) file_->Close().PermitUnchecked();
}

Status Journal::MarkDirty(DirKey dir, const std::function<std::optional<std::string>()>& path) {
  {
    std::unique_lock lock(mu_);
    if (auto it = marked_.find(dir); it != marked_.end())
      return WaitDurableLocked(lock, it->second);
  }
  const std::optional<std::string> p = path();
  if (!p) return Status::Ok();
  std::unique_lock lock(mu_);
  if (auto it = marked_.find(dir); it != marked_.end()) return WaitDurableLocked(lock, it->second);
  return AppendLocked(lock, EncodeJournalRecord({JournalRecord::Type::kDirty, *p}), &marked_[dir]);
}

Status Journal::MarkDirtyPath(const std::string& path) {
  std::unique_lock lock(mu_);
  if (auto it = marked_paths_.find(path); it != marked_paths_.end())
    return WaitDurableLocked(lock, it->second);
  return AppendLocked(lock, EncodeJournalRecord({JournalRecord::Type::kDirty, path}),
                      &marked_paths_[path]);
}

void Journal::Cover(DirKey dir) {
  std::lock_guard lock(mu_);
  marked_.emplace(dir, 0);
}

Status Journal::MarkReplaced(const std::string& path) {
  std::unique_lock lock(mu_);
  return AppendLocked(lock, EncodeJournalRecord({JournalRecord::Type::kReplaced, path}), nullptr);
}

Status Journal::AppendLocked(std::unique_lock<std::mutex>& lock, std::string record,
                             uint64_t* key) {
  if (broken_generation_ == generation_) {
    // Nothing written can be trusted in this generation; the next mount after a crash
    // rescans (INDEX.last-exit says so, once the write that broke it has said so: until
    // then the operation waits).
    cv_.wait(lock, [&] { return !writing_; });
    if (key) *key = 0;
    if (broken_generation_ == generation_) return poison_failure_;
  }
  queue_ += record;
  const uint64_t seq = ++queued_seq_;
  if (key) *key = seq;
  return WaitDurableLocked(lock, seq);
}

Status Journal::WaitDurableLocked(std::unique_lock<std::mutex>& lock, uint64_t seq) {
  while (durable_seq_ < seq) {
    if (writing_) {
      cv_.wait(lock);
      continue;
    }
    // Leader: writes everything queued so far, its own record and its followers', with one
    // fsync.
    writing_ = true;
    std::string batch;
    batch.swap(queue_);
    const uint64_t upto = queued_seq_;
    const uint64_t generation = generation_;
    lock.unlock();
    Status s = Io([&] { return WriteBatch(generation, batch); });
    if (!s.ok()) {
      // Broken before INDEX.last-exit says so, under poison_mu_ (Break): a Retire of an older
      // broken generation then cannot clear what this one writes.
      std::lock_guard poison(poison_mu_);
      {
        std::lock_guard relock(mu_);
        if (broken_generation_ != generation)
          log::Error("{}; until the next compaction, a crash means a full rescan", s.message());
        broken_generation_ = generation;
        broken_ = s.message();
      }
      Status poisoned = Io([&] { return Break(s); });
      std::lock_guard relock(mu_);
      poison_failure_ = poisoned;
    }
    lock.lock();
    writing_ = false;
    newest_file_ = std::max(newest_file_, generation);
    if (s.ok()) {
      ++syncs_;
      records_ += upto - durable_seq_;
    }
    durable_seq_ = upto;
    cv_.notify_all();
  }
  return broken_generation_ == generation_ ? poison_failure_ : Status::Ok();
}

Status Journal::WriteBatch(uint64_t generation, const std::string& batch) {
  DTKFS_KILL_POINT("journal.before-append");
  bool created = false;
  if (!file_ || file_generation_ != generation) {
    if (file_) file_->Close().PermitUnchecked();
    file_.reset();
    auto f = env_.NewWritableFile(JournalPath(index_, generation), 0600);
    if (!f.ok()) return f.status().WithContext("journal");
    file_ = std::move(f).value();
    file_generation_ = generation;
    file_offset_ = 0;
    created = true;
  }
  std::string bytes = created ? EncodeJournalHeader(generation) + batch : batch;
  if (Status s = file_->WriteAt(file_offset_, bytes); !s.ok()) {
    file_.reset();  // rewritten from its header at the next try
    return s.WithContext("journal");
  }
  DTKFS_KILL_POINT("journal.after-append");
  if (Status s = file_->Sync(); !s.ok()) {
    file_.reset();
    return s.WithContext("journal");
  }
  // A new file's name must be durable too, or a power cut could take the whole file.
  if (created) {
    if (Status s = env_.SyncDir(IndexDir(index_)); !s.ok()) {
      file_.reset();
      return s.WithContext("journal");
    }
  }
  file_offset_ += bytes.size();
  DTKFS_KILL_POINT("journal.after-sync");
  return Status::Ok();
}

Status Journal::Break(const Status& why) {
  Status s = WriteExitStatus(env_, index_, fmt::format("running\njournal: {}\n", why.message()));
  if (!s.ok())
    log::Error("journal: cannot record that it broke ({}); changes fail until it can", s.message());
  return s.ok() ? Status::Ok() : s.WithContext("journal broken, and saying so failed");
}

bool Journal::HasFilesAfter(uint64_t covered) const {
  std::lock_guard lock(mu_);
  return newest_file_ > covered;
}

void Journal::NoteExisting(uint64_t generation) {
  std::lock_guard lock(mu_);
  newest_file_ = std::max(newest_file_, generation);
}

uint64_t Journal::generation() const {
  std::lock_guard lock(mu_);
  return generation_;
}

uint64_t Journal::Advance() {
  std::unique_lock lock(mu_);
  // The freeze holds every changing operation off, so nothing should be queued; a mark
  // still in flight finishes in the generation it began in.
  cv_.wait(lock, [&] { return !writing_ && durable_seq_ == queued_seq_; });
  const uint64_t ended = generation_++;
  marked_.clear();
  marked_paths_.clear();
  if (file_) file_->Close().PermitUnchecked();
  file_.reset();
  return ended;
}

void Journal::Retire(uint64_t generation) {
  Io([&] {
    RetireFiles(generation);
    return Status::Ok();
  }).PermitUnchecked();
}

void Journal::RetireFiles(uint64_t generation) {
  auto set = ReadJournals(env_, index_, generation);
  if (set.ok()) {
    for (const std::string& file : set->obsolete) {
      // Not synced: a removal a crash undoes leaves a file the index already covers.
      if (Status s = env_.Remove(file); !s.ok())
        log::Warning("journal: cannot remove {}: {}", file, s.message());
    }
  } else {
    log::Warning("{}", set.status().message());
  }
  DTKFS_KILL_POINT("journal.after-retire");
  // The broken generations are covered by a durable index: a crash no longer needs more than
  // the journal from here on. Under poison_mu_, so a newer generation breaking meanwhile
  // writes its line after this one is cleared, never before.
  std::lock_guard poison(poison_mu_);
  {
    std::lock_guard lock(mu_);
    if (broken_generation_ == 0 || broken_generation_ > generation) return;
  }
  if (!WriteExitStatus(env_, index_, "running\n").ok()) return;
  std::lock_guard lock(mu_);
  log::Info("journal: working again");
  broken_generation_ = 0;
  broken_.clear();
  poison_failure_ = Status::Ok();
}

Journal::Stats Journal::GetStats() const {
  std::lock_guard lock(mu_);
  Stats s;
  s.generation = generation_;
  s.records = records_;
  s.syncs = syncs_;
  s.marked = marked_.size() + marked_paths_.size();
  s.broken = broken_;
  return s;
}

}  // namespace dtkfs
