// index_load_bench: how long does it take to open a big index, and to answer one lookup?
//
//   index_load_bench [--dirs N] [--index PATH] [--keep] [--runs R] [--lookups L] [--seed S]
//       Generates an index of N directories (default 1,000,000; paths nested 5-8 deep, about
//       40 bytes on average) into PATH (default: a temporary file, removed at the end), then
//       measures IndexReader::Open (open + fstat + mmap(MAP_POPULATE) + full validation with
//       CRC32C and sort check; new mapping every run, page cache warm) and Lookup latency.
//   index_load_bench --existing PATH [--lookup KEY]... [--runs R] [--lookups L]
//       The same measurements on an index that already exists (e.g. one `dtkfs scan` wrote);
//       each --lookup KEY (a path relative to the source root, "" for the root) is also timed
//       alone, hot, and as open + lookup (what `dtkfs du` does once the process is up).
//   index_load_bench --scan TREE [--index PATH] [--runs R] [--threads T]
//       In-process breakdown of `dtkfs scan`: ScanTree (walk + sort, T walker threads,
//       default the scanner's default) vs WriteIndex, and how much of the write is fsync
//       (file) and fsync (directory).
//
// Output: one "key value" pair per line (values in the unit the key names); lines starting
// with '#' are comments for people. bench/core_bench.sh parses it.
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "env/env.h"
#include "index/index_builder.h"
#include "index/index_reader.h"
#include "scan/scanner.h"
#include "util/crc32c.h"
#include "util/path.h"

namespace {

using Clock = std::chrono::steady_clock;
using dtkfs::Env;
using dtkfs::Status;

double CpuMs() {  // this thread's CPU time: what Open costs without other load's share
  struct timespec ts;
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}
double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
double Ns(Clock::duration d) { return std::chrono::duration<double, std::nano>(d).count(); }

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "index_load_bench: %s\n", what.c_str());
  std::exit(1);
}

struct Stats {
  double median = 0, min = 0, p90 = 0, max = 0;
  size_t n = 0;
};

Stats Summarize(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.n = v.size();
  s.min = v.front();
  s.max = v.back();
  s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  s.p90 = v[std::min(v.size() - 1, static_cast<size_t>(0.9 * static_cast<double>(v.size())))];
  return s;
}

void Print(const std::string& key, const Stats& s, const char* unit) {
  std::printf("%s_median_%s %.3f\n", key.c_str(), unit, s.median);
  std::printf("%s_min_%s %.3f\n", key.c_str(), unit, s.min);
  std::printf("%s_p90_%s %.3f\n", key.c_str(), unit, s.p90);
  std::printf("%s_max_%s %.3f\n", key.c_str(), unit, s.max);
}

// Keeps the optimiser from dropping lookups whose result is otherwise unused (an atomic's
// stores are observable).
std::atomic<uint64_t> g_sink{0};

// ---------------------------------------------------------------------------------------
// A realistic directory tree: thousands of top-level projects, each a random tree whose
// directories are 5 to 8 levels deep, with names drawn from words seen in real trees.

class TreeGen {
 public:
  TreeGen(size_t target, uint64_t seed) : target_(target), rng_(seed) {}

  std::vector<std::string> Run() {
    out_.reserve(target_);
    out_.emplace_back();  // the root
    for (size_t top = 0; out_.size() < target_; ++top) {
      std::string name = std::string(Word()) + "-" + std::to_string(top);
      Subtree(name, 1);
    }
    return std::move(out_);
  }

 private:
  std::string_view Word() {
    static constexpr std::string_view kWords[] = {
        "src",        "lib",          "include",   "test",   "tests",  "docs",   "firmware",
        "build",      "core",         "util",      "net",    "fs",     "mm",     "arch",
        "drivers",    "kernel",       "photos",    "2023",   "2024",   "music",  "video",
        "data",       "cache",        "tmp",       "config", "assets", "images", "styles",
        "js",         "node_modules", "vendor",    "pkg",    "cmd",    "api",    "v1",
        "v2",         "old",          "new",       "backup", "logs",   "home",   "share",
        "local",      "etc",          "var",       "opt",    "usr",    "proj",   "client",
        "server",     "common",       "tools",     "script", "res",    "raw",    "out",
        "components", "resources",    "Downloads", "main",   "dev",    "prod",   "misc",
        "notes"};
    return kWords[rng_() % std::size(kWords)];
  }

  void Subtree(const std::string& path, int depth) {
    if (out_.size() >= target_) return;
    out_.push_back(path);
    if (depth >= 8) return;
    if (depth >= 5 && rng_() % 2 == 0) return;  // leaves at depth 5..8
    const int fanout = 1 + static_cast<int>(rng_() % 4);
    std::vector<std::string> names;
    for (int i = 0; i < fanout; ++i) {
      std::string name(Word());
      if (std::find(names.begin(), names.end(), name) != names.end()) name += std::to_string(i);
      names.push_back(name);
      Subtree(path + "/" + name, depth + 1);
    }
  }

  size_t target_;
  std::mt19937_64 rng_;
  std::vector<std::string> out_;
};

void Generate(const std::string& index, size_t dirs, uint64_t seed) {
  const auto t0 = Clock::now();
  std::vector<std::string> paths = TreeGen(dirs, seed).Run();
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  uint64_t bytes = 0, depth = 0;
  for (const auto& p : paths) {
    bytes += p.size();
    if (!p.empty()) depth += 1 + static_cast<uint64_t>(std::count(p.begin(), p.end(), '/'));
  }
  std::mt19937_64 rng(seed + 1);
  std::vector<dtkfs::Totals> totals(paths.size());
  for (auto& t : totals) t = dtkfs::Totals{rng() % (1ull << 32), rng() % 10000, rng() % 1000};
  dtkfs::IndexMeta meta;
  meta.source_root = "/bench/generated";
  Status s = dtkfs::WriteIndex(Env::Default(), index, meta, [&](const dtkfs::EntryEmitter& emit) {
    for (size_t i = 0; i < paths.size(); ++i) {
      Status e = emit(paths[i], totals[i]);
      if (!e.ok()) return e;
    }
    return Status::Ok();
  });
  if (!s.ok()) Die(s.message());
  const double n = static_cast<double>(paths.size() - 1);
  std::printf("# generated %zu directories into %s in %.0f ms\n", paths.size(), index.c_str(),
              Ms(Clock::now() - t0));
  std::printf("generated_dirs %zu\n", paths.size());
  std::printf("avg_path_bytes %.1f\n", static_cast<double>(bytes) / n);
  std::printf("avg_depth %.2f\n", static_cast<double>(depth) / n);
}

// ---------------------------------------------------------------------------------------

std::shared_ptr<const dtkfs::IndexReader> OpenOrDie(const std::string& index) {
  auto r = dtkfs::IndexReader::Open(Env::Default(), index);
  if (!r.ok()) Die(r.status().message());
  return std::move(r).value();
}

void MeasureOpen(const std::string& index, int runs) {
  auto warm = OpenOrDie(index);  // page cache warm; the timed runs below map afresh
  std::printf("index_dirs %zu\n", warm->size());
  std::printf("index_file_bytes %zu\n", warm->file_size());
  warm.reset();

  std::vector<double> open_ms, open_cpu_ms, map_ms, validate_ms;
  for (int i = 0; i < runs; ++i) {
    const double c0 = CpuMs();
    auto t0 = Clock::now();
    auto r = OpenOrDie(index);
    auto t1 = Clock::now();
    const double c1 = CpuMs();
    g_sink += r->size();
    r.reset();  // munmap is not part of the measurement
    open_ms.push_back(Ms(t1 - t0));
    open_cpu_ms.push_back(c1 - c0);
  }
  // The same two halves, separately: MapReadOnly (open, fstat, mmap+populate) and Validate.
  for (int i = 0; i < runs; ++i) {
    auto t0 = Clock::now();
    auto file = Env::Default().MapReadOnly(index);
    auto t1 = Clock::now();
    if (!file.ok()) Die(file.status().message());
    auto r = dtkfs::IndexReader::FromFile(std::move(file).value());
    auto t2 = Clock::now();
    if (!r.ok()) Die(r.status().message());
    map_ms.push_back(Ms(t1 - t0));
    validate_ms.push_back(Ms(t2 - t1));
  }
  // Where validate's time goes: its three passes redone one at a time over a mapped file.
  std::vector<double> crc_ms, sort_ms, syntax_ms;
  {
    auto r = OpenOrDie(index);
    auto file = Env::Default().MapReadOnly(index);
    if (!file.ok()) Die(file.status().message());
    const char* data = (*file)->data();
    const size_t size = (*file)->size();
    for (int i = 0; i < runs; ++i) {
      auto t0 = Clock::now();
      g_sink += dtkfs::crc32c::Value(data, size);
      auto t1 = Clock::now();
      size_t unsorted = 0;
      for (size_t k = 1; k < r->size(); ++k) unsorted += !(r->path_at(k - 1) < r->path_at(k));
      auto t2 = Clock::now();
      size_t bad = 0;
      for (size_t k = 1; k < r->size(); ++k) bad += !dtkfs::path::IsValidRelative(r->path_at(k));
      auto t3 = Clock::now();
      g_sink += unsorted + bad;
      crc_ms.push_back(Ms(t1 - t0));
      sort_ms.push_back(Ms(t2 - t1));
      syntax_ms.push_back(Ms(t3 - t2));
    }
  }
  std::printf("# Open = open+fstat+mmap(MAP_POPULATE)+validate (CRC32C, bounds, sort), %d runs\n",
              runs);
  std::printf("open_runs %d\n", runs);
  Print("open", Summarize(open_ms), "ms");
  Print("open_cpu", Summarize(open_cpu_ms), "ms");
  Print("map", Summarize(map_ms), "ms");
  Print("validate", Summarize(validate_ms), "ms");
  std::printf(
      "# validate's parts, timed alone: CRC32C of the whole file, sort check, path syntax\n");
  Print("part_crc", Summarize(crc_ms), "ms");
  Print("part_sort", Summarize(sort_ms), "ms");
  Print("part_syntax", Summarize(syntax_ms), "ms");
}

// Random lookups of existing paths, timed in batches (a clock read per lookup would cost
// as much as the lookup); the per-lookup figure is the batch time over its size.
void MeasureLookups(const std::string& index, size_t lookups, uint64_t seed) {
  auto r = OpenOrDie(index);
  std::mt19937_64 rng(seed + 2);
  const size_t kKeys = std::min<size_t>(r->size(), 1 << 16);
  std::vector<std::string> keys;
  keys.reserve(kKeys);
  for (size_t i = 0; i < kKeys; ++i) keys.emplace_back(r->path_at(rng() % r->size()));
  constexpr size_t kBatch = 1000;
  std::vector<double> per_lookup_ns;
  size_t k = 0;
  for (size_t done = 0; done < lookups; done += kBatch) {
    uint64_t sum = 0;
    auto t0 = Clock::now();
    for (size_t i = 0; i < kBatch; ++i) {
      auto t = r->Lookup(keys[k]);
      if (++k == keys.size()) k = 0;
      sum += t ? t->bytes : 1;
    }
    auto t1 = Clock::now();
    g_sink += sum;
    per_lookup_ns.push_back(Ns(t1 - t0) / kBatch);
  }
  std::printf("# Lookup: random existing paths, %zu lookups in batches of %zu\n",
              per_lookup_ns.size() * kBatch, kBatch);
  Print("lookup", Summarize(per_lookup_ns), "ns");
}

// One key: hot lookup latency, and open + lookup + close (what `dtkfs du` does in-process).
void MeasureKey(const std::string& index, const std::string& key, int runs, size_t label) {
  auto r = OpenOrDie(index);
  if (!r->Lookup(key)) Die("--lookup '" + key + "': not in the index");
  constexpr size_t kBatch = 1000;
  std::vector<double> hot_ns;
  for (int b = 0; b < 1000; ++b) {
    uint64_t sum = 0;
    auto t0 = Clock::now();
    for (size_t i = 0; i < kBatch; ++i) {
      std::string_view k = key;
      asm volatile("" : "+r"(k));  // an opaque key each time: no hoisting out of the loop
      sum += r->Lookup(k)->bytes;
    }
    auto t1 = Clock::now();
    g_sink += sum;
    hot_ns.push_back(Ns(t1 - t0) / kBatch);
  }
  r.reset();
  std::vector<double> open_lookup_us;
  for (int i = 0; i < std::max(runs, 100); ++i) {
    auto t0 = Clock::now();
    auto fresh = OpenOrDie(index);
    g_sink += fresh->Lookup(key)->bytes;
    fresh.reset();
    open_lookup_us.push_back(Ns(Clock::now() - t0) / 1000);
  }
  std::printf("# key %zu = '%s': hot lookup, and open+lookup+unmap\n", label, key.c_str());
  Print("key" + std::to_string(label) + "_lookup", Summarize(hot_ns), "ns");
  Print("key" + std::to_string(label) + "_open_lookup", Summarize(open_lookup_us), "us");
}

// ---------------------------------------------------------------------------------------
// --scan: an Env that forwards to the default one and times the fsyncs.

std::atomic<int64_t> g_fsync_ns{0}, g_dirsync_ns{0};

class TimedFile final : public dtkfs::WritableFile {
 public:
  explicit TimedFile(std::unique_ptr<dtkfs::WritableFile> f) : f_(std::move(f)) {}
  Status WriteAt(uint64_t offset, std::string_view data) override {
    return f_->WriteAt(offset, data);
  }
  Status Sync() override {
    auto t0 = Clock::now();
    Status s = f_->Sync();
    g_fsync_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
    return s;
  }
  Status Close() override { return f_->Close(); }
  const std::string& path() const override { return f_->path(); }

 private:
  std::unique_ptr<dtkfs::WritableFile> f_;
};

class TimedEnv final : public Env {
 public:
  explicit TimedEnv(Env& base) : base_(base) {}
  dtkfs::Result<std::unique_ptr<dtkfs::WritableFile>> NewWritableFile(const std::string& path,
                                                                      mode_t mode) override {
    auto f = base_.NewWritableFile(path, mode);
    if (!f.ok()) return f.status();
    return std::unique_ptr<dtkfs::WritableFile>(new TimedFile(std::move(f).value()));
  }
  dtkfs::Result<std::unique_ptr<dtkfs::WritableFile>> ReopenWritableFile(
      const std::string& path) override {
    return base_.ReopenWritableFile(path);
  }
  dtkfs::Result<std::string> ReadFileToString(const std::string& path, size_t max_bytes) override {
    return base_.ReadFileToString(path, max_bytes);
  }
  dtkfs::Result<std::shared_ptr<const dtkfs::MappedFile>> MapReadOnly(
      const std::string& path) override {
    return base_.MapReadOnly(path);
  }
  Status Rename(const std::string& from, const std::string& to) override {
    return base_.Rename(from, to);
  }
  Status Remove(const std::string& path) override { return base_.Remove(path); }
  Status SyncDir(const std::string& dir) override {
    auto t0 = Clock::now();
    Status s = base_.SyncDir(dir);
    g_dirsync_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
    return s;
  }
  Status SyncFilesystem(const std::string& path) override { return base_.SyncFilesystem(path); }
  Status CreateDirs(const std::string& dir, mode_t mode) override {
    return base_.CreateDirs(dir, mode);
  }
  bool FileExists(const std::string& path) override { return base_.FileExists(path); }
  dtkfs::Result<std::vector<std::string>> ListDirectory(const std::string& dir) override {
    return base_.ListDirectory(dir);
  }
  dtkfs::Result<std::unique_ptr<dtkfs::FileLock>> LockFile(const std::string& path) override {
    return base_.LockFile(path);
  }
  dtkfs::Result<std::unique_ptr<dtkfs::FileLock>> LockDirectory(const std::string& dir) override {
    return base_.LockDirectory(dir);
  }

 private:
  Env& base_;
};

void MeasureScan(const std::string& tree, const std::string& index, int runs, unsigned threads) {
  TimedEnv env(Env::Default());
  std::vector<double> total, walk, write, fsync_ms, dirsync_ms;
  size_t dirs = 0, entries = 0;
  for (int i = 0; i < runs + 1; ++i) {  // the first run only warms
    g_fsync_ns = 0;
    g_dirsync_ns = 0;
    auto t0 = Clock::now();
    dtkfs::ScanOptions options;
    options.threads = threads;
    auto scan = dtkfs::ScanTree(tree, "", options);
    if (!scan.ok()) Die(scan.status().message());
    auto t1 = Clock::now();
    dtkfs::IndexMeta meta;
    meta.source_root = tree;
    meta.generation = static_cast<uint64_t>(i) + 1;
    Status s = dtkfs::WriteIndex(env, index, meta, [&](const dtkfs::EntryEmitter& emit) {
      for (const auto& [p, t] : scan->dirs) {
        Status e = emit(p, t);
        if (!e.ok()) return e;
      }
      return Status::Ok();
    });
    if (!s.ok()) Die(s.message());
    auto t2 = Clock::now();
    dirs = scan->dirs.size();
    entries = scan->entries;
    if (i == 0) continue;
    total.push_back(Ms(t2 - t0));
    walk.push_back(Ms(t1 - t0));
    write.push_back(Ms(t2 - t1));
    fsync_ms.push_back(static_cast<double>(g_fsync_ns.load()) / 1e6);
    dirsync_ms.push_back(static_cast<double>(g_dirsync_ns.load()) / 1e6);
  }
  std::printf("# in-process scan of %s: %zu directories, %zu entries, %u threads, %d runs\n",
              tree.c_str(), dirs, entries, threads, runs);
  std::printf("scan_threads %u\n", threads);
  std::printf("scan_runs %d\n", runs);
  std::printf("scan_dirs %zu\n", dirs);
  std::printf("scan_entries %zu\n", entries);
  Print("scan_total", Summarize(total), "ms");
  Print("scan_walk", Summarize(walk), "ms");
  Print("scan_write", Summarize(write), "ms");
  Print("scan_fsync", Summarize(fsync_ms), "ms");
  Print("scan_dirsync", Summarize(dirsync_ms), "ms");
}

}  // namespace

int main(int argc, char** argv) {
  size_t dirs = 1'000'000;
  size_t lookups = 1'000'000;
  int runs = 20;
  unsigned threads = dtkfs::ScanOptions{}.threads;
  uint64_t seed = 42;
  bool keep = false;
  std::string index, existing, scan_tree;
  std::vector<std::string> keys;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--dirs")
      dirs = std::stoull(value());
    else if (a == "--lookups")
      lookups = std::stoull(value());
    else if (a == "--runs")
      runs = std::stoi(value());
    else if (a == "--seed")
      seed = std::stoull(value());
    else if (a == "--index")
      index = value();
    else if (a == "--keep")
      keep = true;
    else if (a == "--existing")
      existing = value();
    else if (a == "--lookup")
      keys.push_back(value());
    else if (a == "--scan")
      scan_tree = value();
    else if (a == "--threads")
      threads = static_cast<unsigned>(std::stoul(value()));
    else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: index_load_bench [--dirs N] [--index PATH] [--keep] [--runs R] [--lookups L]\n"
          "       index_load_bench --existing PATH [--lookup KEY]... [--runs R] [--lookups L]\n"
          "       index_load_bench --scan TREE [--index PATH] [--runs R] [--threads T]\n");
      return 0;
    } else {
      Die("unknown argument " + a + " (see --help)");
    }
  }
  if (runs < 1 || dirs < 1) Die("--runs and --dirs must be positive");
  if (!index.empty()) keep = true;  // a file the caller named is theirs to remove

  std::string tmpdir;
  auto temp_index = [&] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/index_load_bench.XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) Die("mkdtemp " + tmpl + ": " + std::strerror(errno));
    tmpdir = tmpl;
    return tmpdir + "/bench.dtkidx";
  };

  if (!scan_tree.empty()) {
    if (index.empty()) index = temp_index();
    MeasureScan(scan_tree, index, runs, threads);
  } else {
    if (!existing.empty()) {
      index = existing;
      keep = true;
    } else {
      if (index.empty()) index = temp_index();
      Generate(index, dirs, seed);
    }
    MeasureOpen(index, runs);
    MeasureLookups(index, lookups, seed);
    for (size_t i = 0; i < keys.size(); ++i) MeasureKey(index, keys[i], runs, i);
  }
  if (!keep) ::unlink(index.c_str());
  if (!tmpdir.empty()) {
    ::unlink((index + ".tmp").c_str());
    ::rmdir(tmpdir.c_str());
  }
  return 0;
}
