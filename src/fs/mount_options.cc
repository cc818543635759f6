#include "fs/mount_options.h"

#include <fmt/format.h>
#include <fuse_opt.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <string_view>
#include <thread>
#include <utility>

#include "util/option_ranges.h"

namespace dtkfs::fs {
namespace {

// What fuse_opt_parse fills: strings as given (numbers are checked after), flags as 0/1.
struct RawOptions {
  char* index = nullptr;
  char* compact_interval = nullptr;
  char* compact_threshold = nullptr;
  char* threads = nullptr;
  char* fd_budget = nullptr;
  char* entry_timeout = nullptr;
  char* attr_timeout = nullptr;
  char* watch = nullptr;
  char* verify = nullptr;
  char* journal = nullptr;
  char* track_sizes = nullptr;
  char* kernel_cache = nullptr;
  int list_totals = 0;
  int allow_other = 0;
  int default_permissions = 0;
  ~RawOptions() {
    for (char* s : {index, compact_interval, compact_threshold, threads, fd_budget, entry_timeout,
                    attr_timeout, watch, verify, journal, track_sizes, kernel_cache})
      std::free(s);
  }
};

enum Key { kAllowOther = 1, kDefaultPermissions, kOwnedByDtkfs };

// The one table: what fuse_opt_parse matches, and what `dtkfs mount --help` lists (the man
// page's test reads that list). A row's value names what follows its '=' in the help; a row
// with a range prints it, from util/option_ranges.h.
struct Spec {
  fuse_opt opt;
  const char* value;  // "" for a word without '='
  const char* help;
  const NumberRange* range = nullptr;
};

constexpr char kIgnored[] = "fstab's and mount(8)'s words: ignored";
constexpr char kRefused[] = "refused: dtkfs names its mounts and sizes its reads itself";

#define DTKFS_OPT(templ, field) \
  { templ, offsetof(RawOptions, field), 0 }
const Spec kSpecs[] = {
    {DTKFS_OPT("index=%s", index), "PATH", "index file (default: under $XDG_STATE_HOME/dtkfs)"},
    {DTKFS_OPT("compact_interval=%s", compact_interval), "S",
     "seconds between compactions when something changed (default 60)", &ranges::kCompactInterval},
    {DTKFS_OPT("compact_threshold=%s", compact_threshold), "N",
     "overlay entries that start a compaction early (default 200000)", &ranges::kCompactThreshold},
    {DTKFS_OPT("threads=%s", threads), "N",
     "FUSE worker threads (default: one per core, at least 2)", &ranges::kThreads},
    {DTKFS_OPT("fd_budget=%s", fd_budget), "N",
     "source descriptors kept open (default: half of RLIMIT_NOFILE, at most 32768)",
     &ranges::kFdBudget},
    {DTKFS_OPT("entry_timeout=%s", entry_timeout), "S",
     "kernel name cache (default 3600 with kernel_cache, else 1)", &ranges::kEntryTimeout},
    {DTKFS_OPT("attr_timeout=%s", attr_timeout), "S",
     "kernel attribute cache (default 3600 with kernel_cache, else 1)", &ranges::kAttrTimeout},
    {DTKFS_OPT("watch=%s", watch), "auto|fanotify|inotify|off",
     "how changes beside the mount are seen (default auto)"},
    {DTKFS_OPT("verify=%s", verify), "on|off",
     "verify every directory after a mount from an index (default on)"},
    {DTKFS_OPT("journal=%s", journal), "on|off",
     "write-intent journal: after a crash, reconcile only what changed (default on)"},
    {DTKFS_OPT("kernel_cache=%s", kernel_cache), "auto|on|off",
     "the kernel keeps names and attributes 3600 s and pages and listings across opens: auto "
     "(default) when fanotify watches the source, on, or off (1 s, nothing kept)"},
    {DTKFS_OPT("track_sizes=%s", track_sizes), "on|off",
     "count sizes (default on); off: a plain passthrough whose size names answer ENODATA"},
    {{"list_totals", offsetof(RawOptions, list_totals), 1},
     "",
     "listxattr lists the user.total_* names"},
    // libfuse's, noted on the way through.
    {FUSE_OPT_KEY("allow_other", kAllowOther), "",
     "other users may use the mount (brings default_permissions)"},
    {FUSE_OPT_KEY("default_permissions", kDefaultPermissions), "",
     "the kernel checks permissions against the source's modes"},
    // dtkfs names its mounts itself (fuse.dtkfs, dtkfs:SOURCE): `dtkfs umount`, `status` and
    // `du` find them by that name in the mount table.
    {FUSE_OPT_KEY("subtype=", kOwnedByDtkfs), "", kRefused},
    {FUSE_OPT_KEY("fsname=", kOwnedByDtkfs), "", kRefused},
    // dtkfs negotiates transfer sizes itself (OpInit); a max_read libfuse disagrees with
    // makes the daemon quit right after mounting.
    {FUSE_OPT_KEY("max_read=", kOwnedByDtkfs), "", kRefused},
    // fstab's and mount(8)'s words, meaningless to a running daemon; x-* and comment= too,
    // in KeepForLibfuse (fuse_opt matches a prefix only up to an '=').
    {FUSE_OPT_KEY("defaults", FUSE_OPT_KEY_DISCARD), "", kIgnored},
    {FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD), "", kIgnored},
    {FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD), "", kIgnored},
    {FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD), "", kIgnored},
    {FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD), "", kIgnored},
    {FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD), "", kIgnored},
    {FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD), "", kIgnored},
};
#undef DTKFS_OPT

// Options no fuse_opt template can match (a prefix without '='): mount(8)'s x-* (x-systemd.*,
// x-gvfs-show, ...) and comment=, which fstab lines carry for other programs.
constexpr std::string_view kIgnoredPrefixes[] = {"x-", "comment="};

// Keeps libfuse's options (returns 1), noting the two that matter to dtkfs.
int KeepForLibfuse(void* data, const char* arg, int key, fuse_args*) {
  auto* raw = static_cast<RawOptions*>(data);
  if (key == kOwnedByDtkfs) return -1;  // fuse_opt_parse fails: refused below
  // An empty item ("a,,b", a lone ",", a trailing comma in fstab) means nothing; libfuse
  // would refuse the whole mount for it.
  if (key == FUSE_OPT_KEY_OPT && arg[0] == '\0') return 0;
  if (key == FUSE_OPT_KEY_OPT)
    for (std::string_view prefix : kIgnoredPrefixes)
      if (std::string_view(arg).substr(0, prefix.size()) == prefix) return 0;
  if (key == kAllowOther) raw->allow_other = 1;
  if (key == kDefaultPermissions) raw->default_permissions = 1;
  return 1;
}

// Checks a numeric option given as text (nullptr: not given, keep the default).
Status Number(const char* name, const char* text, const NumberRange& range, double* out) {
  if (text == nullptr) return Status::Ok();
  auto d = ParseNumber(text, range);
  if (!d.ok())
    return Status::InvalidArgument(fmt::format("-o {}: bad value: {}", name, d.status().message()));
  *out = *d;
  return Status::Ok();
}

}  // namespace

std::string MountOption(std::string_view key, std::string_view value) {
  std::string out(key);
  out.push_back('=');
  for (char c : value) {
    if (c == ',' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string MountOptionsHelp() {
  std::vector<std::pair<std::string, std::string>> rows;  // names, help
  for (const Spec& spec : kSpecs) {
    std::string name = spec.opt.templ;
    if (size_t percent = name.find('%'); percent != std::string::npos) name.resize(percent);
    name += spec.value;
    std::string help = spec.help;
    if (spec.range != nullptr)
      help += fmt::format("; {}{} to {} {}", spec.range->integral ? "whole numbers " : "",
                          static_cast<uint64_t>(spec.range->min),
                          static_cast<uint64_t>(spec.range->max), spec.range->unit);
    if (!rows.empty() && rows.back().second == help)
      rows.back().first += ", " + name;
    else
      rows.emplace_back(std::move(name), std::move(help));
  }
  std::string prefixes;
  for (std::string_view prefix : kIgnoredPrefixes)
    prefixes += fmt::format("{}{}*", prefixes.empty() ? "" : ", ", prefix);
  for (auto& [names, help] : rows)
    if (help == kIgnored) names += ", " + prefixes;
  std::string out = "Mount options (-o, comma-separated; also an fstab line's options):\n";
  for (const auto& [names, help] : rows) {
    out += fmt::format("  {}\n", names);
    out += fmt::format("      {}\n", help);
  }
  out +=
      "libfuse's own (ro, rw, nosuid, nodev, noexec, allow_root, auto_unmount, ...) pass "
      "through;\nanything libfuse does not know is refused.\n";
  return out;
}

namespace {

// An on|off option (nullptr: not given, out keeps its default).
Status OnOff(std::string_view name, const char* value, bool* out) {
  if (value == nullptr) return Status::Ok();
  const std::string_view v = value;
  if (v != "on" && v != "off")
    return Status::InvalidArgument(
        fmt::format("-o {}: bad value '{}': on or off", name, std::string(v)));
  *out = v == "on";
  return Status::Ok();
}

}  // namespace

void ChooseKernelCaching(const MountOptions& options, bool whole_source_watched, Options* fs) {
  fs->kernel_keeps = options.kernel_cache == KernelCacheMode::kAuto
                         ? whole_source_watched
                         : options.kernel_cache == KernelCacheMode::kOn;
  const double timeout = fs->kernel_keeps ? kWatchedCacheTimeout : 1.0;
  if (!options.entry_timeout_given) fs->entry_timeout = timeout;
  if (!options.attr_timeout_given) fs->attr_timeout = timeout;
}

Result<MountOptions> ParseMountOptions(const std::vector<std::string>& o_values) {
  MountOptions out;
  out.threads = std::max(2u, std::thread::hardware_concurrency());
  fuse_args args = FUSE_ARGS_INIT(0, nullptr);
  struct ArgsOwner {
    fuse_args* a;
    ~ArgsOwner() { fuse_opt_free_args(a); }
  } owner{&args};
  if (fuse_opt_add_arg(&args, "dtkfs") != 0) return Status::FromErrno(ENOMEM, "parse", "-o");
  for (const std::string& o : o_values)
    if (fuse_opt_add_arg(&args, "-o") != 0 || fuse_opt_add_arg(&args, o.c_str()) != 0)
      return Status::FromErrno(ENOMEM, "parse", "-o");
  std::vector<fuse_opt> table;
  for (const Spec& spec : kSpecs) table.push_back(spec.opt);
  table.push_back(FUSE_OPT_END);
  RawOptions raw;
  if (fuse_opt_parse(&args, &raw, table.data(), KeepForLibfuse) != 0)
    return Status::InvalidArgument(
        "-o: malformed mount options, or subtype=, fsname= or max_read=, which dtkfs sets "
        "itself");

  if (raw.index != nullptr) {
    if (raw.index[0] == '\0')
      return Status::InvalidArgument(
          "-o index: an empty path names no file; leave it out for the default location");
    out.index = raw.index;
  }
  double threshold = static_cast<double>(out.fs.compact_threshold);
  double threads = out.threads;
  DTKFS_RETURN_IF_ERROR(Number("compact_interval", raw.compact_interval, ranges::kCompactInterval,
                               &out.compact_interval));
  DTKFS_RETURN_IF_ERROR(
      Number("compact_threshold", raw.compact_threshold, ranges::kCompactThreshold, &threshold));
  DTKFS_RETURN_IF_ERROR(Number("threads", raw.threads, ranges::kThreads, &threads));
  double fd_budget = 0;
  DTKFS_RETURN_IF_ERROR(Number("fd_budget", raw.fd_budget, ranges::kFdBudget, &fd_budget));
  out.fs.fd_budget = static_cast<size_t>(fd_budget);
  DTKFS_RETURN_IF_ERROR(
      Number("entry_timeout", raw.entry_timeout, ranges::kEntryTimeout, &out.fs.entry_timeout));
  DTKFS_RETURN_IF_ERROR(
      Number("attr_timeout", raw.attr_timeout, ranges::kAttrTimeout, &out.fs.attr_timeout));
  out.entry_timeout_given = raw.entry_timeout != nullptr;
  out.attr_timeout_given = raw.attr_timeout != nullptr;
  out.fs.compact_threshold = static_cast<size_t>(threshold);
  out.threads = static_cast<unsigned>(threads);
  out.fs.list_totals = raw.list_totals != 0;
  if (raw.watch != nullptr) {
    const std::string_view w = raw.watch;
    if (w == "auto")
      out.watch = WatchMode::kAuto;
    else if (w == "fanotify")
      out.watch = WatchMode::kFanotify;
    else if (w == "inotify")
      out.watch = WatchMode::kInotify;
    else if (w == "off")
      out.watch = WatchMode::kOff;
    else
      return Status::InvalidArgument(fmt::format(
          "-o watch: bad value '{}': one of auto, fanotify, inotify, off", std::string(w)));
  }
  DTKFS_RETURN_IF_ERROR(OnOff("verify", raw.verify, &out.verify));
  DTKFS_RETURN_IF_ERROR(OnOff("journal", raw.journal, &out.journal));
  DTKFS_RETURN_IF_ERROR(OnOff("track_sizes", raw.track_sizes, &out.fs.track_sizes));
  if (raw.kernel_cache != nullptr) {
    const std::string_view k = raw.kernel_cache;
    if (k == "auto")
      out.kernel_cache = KernelCacheMode::kAuto;
    else if (k == "on")
      out.kernel_cache = KernelCacheMode::kOn;
    else if (k == "off")
      out.kernel_cache = KernelCacheMode::kOff;
    else
      return Status::InvalidArgument(
          fmt::format("-o kernel_cache: bad value '{}': one of auto, on, off", std::string(k)));
  }

  // What is left is libfuse's (argv[0] is ours).
  for (int i = 1; i < args.argc; ++i) out.fuse.emplace_back(args.argv[i]);
  // Shared mounts check permissions in the kernel, against the source's modes.
  if (raw.allow_other && !raw.default_permissions) {
    out.fuse.emplace_back("-o");
    out.fuse.emplace_back("default_permissions");
  }
  return out;
}

}  // namespace dtkfs::fs
