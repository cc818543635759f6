// dtkfs export --format ncdu|prometheus [--index FILE] [--output FILE] [--depth N] [--top N]
// PATH: the totals of PATH and the directories below it, from the live xattrs of a mount or
// from an index, in a format another tool reads (docs/export.md). No walk of the files.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <boost/filesystem.hpp>
#include <chrono>
#include <cstring>
#include <random>

#include "cli/commands.h"
#include "cli/export_ncdu.h"
#include "cli/export_prometheus.h"
#include "cli/live_index.h"
#include "cli/output.h"
#include "cli/text_sink.h"
#include "cli/totals_source.h"
#include "dtkfs/xattr_names.h"
#include "env/install_file.h"

#ifndef DTKFS_VERSION
#define DTKFS_VERSION "unknown"
#endif

namespace dtkfs::cli {
namespace {

// PATH as the export shows it: absolute (ncdu's root name is an absolute path; a scraper has
// no working directory), without resolving symlinks, no trailing slash.
std::string ShownRoot(const std::string& p) {
  std::string shown = boost::filesystem::absolute(p).lexically_normal().string();
  while (shown.size() > 1 && (shown.back() == '/' || shown.back() == '.')) {
    if (shown.back() == '.' && shown[shown.size() - 2] != '/') break;
    shown.pop_back();
  }
  return shown;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// What is written, given where to.
using Body = std::function<void(TextSink&)>;

// A temporary name beside output that no other export picks: exports do not serialise, and
// with one shared name a second export would remove the first's half-written file and the
// first would rename the second's half-written file over output.
std::string UniqueTempPath(const std::string& output) {
  std::random_device random;
  return fmt::format("{}.tmp.{}.{:08x}", output, ::getpid(), random());
}

// Writes to a character device or a fifo named directly (/dev/null, /dev/full, a named
// pipe), as a shell redirection would: there is nothing to replace atomically.
Status StreamTo(const std::string& output, const Body& body) {
  const int fd = ::open(output.c_str(), O_WRONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open", output);
  struct stat st;
  if (::fstat(fd, &st) != 0 || !(S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) {
    ::close(fd);
    return Status::InvalidArgument(fmt::format("{}: changed while opened; not written", output));
  }
  TextSink sink([&](std::string_view text) {
    while (!text.empty()) {
      const ssize_t n = ::write(fd, text.data(), text.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Status::FromErrno(n < 0 ? errno : EIO, "write", output);
      text.remove_prefix(static_cast<size_t>(n));
    }
    return Status::Ok();
  });
  body(sink);
  Status s = sink.Finish();
  if (::close(fd) != 0 && s.ok()) s = Status::FromErrno(errno, "close", output);
  return s;
}

// Writes body to standard output, or installs it at output whole (a temporary file beside it,
// renamed over it; removed on any failure, so no partial file is ever seen there). What is
// at output decides: nothing or a regular file is replaced; a character device or a fifo is
// written into; a symbolic link, a directory and anything else are refused, untouched.
Status Emit(const std::string& output, const Body& body) {
  if (output.empty()) {
    TextSink sink(StdoutWriter());
    body(sink);
    return sink.Finish();
  }
  struct stat st;
  if (::lstat(output.c_str(), &st) == 0) {
    if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) return StreamTo(output, body);
    // Replacing a link would destroy it (/dev/stdout as root), and following it would let a
    // planted link steer the file elsewhere.
    if (S_ISLNK(st.st_mode))
      return Status::InvalidArgument(fmt::format(
          "{}: a symbolic link; neither followed nor replaced (give the file it points to, or "
          "leave out --output for standard output)",
          output));
    if (S_ISDIR(st.st_mode)) return Status::InvalidArgument(fmt::format("{}: a directory", output));
    if (!S_ISREG(st.st_mode))
      return Status::InvalidArgument(
          fmt::format("{}: not a regular file, a character device or a fifo; not written", output));
  } else if (errno != ENOENT) {
    return Status::FromErrno(errno, "stat", output);
  }
  // 0666 less the umask, like a shell redirection: node_exporter runs as another user.
  return InstallFileVia(Env::Default(), output, UniqueTempPath(output), 0666,
                        [&](WritableFile& file) {
                          TextSink sink(FileWriter(file));
                          body(sink);
                          return sink.Finish();
                        });
}

// Replacing the index being read with its own export would lose the index.
Status CheckOutputIsNotIndex(const std::string& output, const IndexReader* index) {
  if (output.empty() || index == nullptr) return Status::Ok();
  struct stat out, idx;
  if (::stat(output.c_str(), &out) != 0 || ::stat(index->file_path().c_str(), &idx) != 0)
    return Status::Ok();
  if (out.st_dev == idx.st_dev && out.st_ino == idx.st_ino)
    return Status::InvalidArgument(
        fmt::format("--output {} is the index the totals are read from; not replacing it", output));
  return Status::Ok();
}

// On a live mount, unless --live list: replaces target's listing of the mount with the index
// its daemon writes when asked to compact (cli/live_index.h), if that can be had and holds
// PATH. Returns where the totals come from: "index", "compaction" or "listing".
std::string ChooseSource(Env& env, const ExportArgs& args, Target& target) {
  const auto say = [&](std::string_view what) {
    if (args.verbose) fmt::print(stderr, "dtkfs: export: {}\n", what);
  };
  if (target.mount_root.empty()) {
    say("totals from the index (offline)");
    return "index";
  }
  if (args.live == "list") {
    say(fmt::format("totals from listing the mount {} (--live list)", target.mount_root));
    return "listing";
  }
  LiveIndex live = CompactAndOpenIndex(env, target.mount_root);
  if (live.reader && !live.reader->Find(target.relative))
    live = LiveIndex{nullptr, 0, fmt::format("{}: not in the compacted index", args.path), false};
  if (!live.reader) {
    const std::string why = fmt::format("listing the mount {} instead of reading its index: {}",
                                        target.mount_root, live.why_not);
    if (live.failed)
      PrintError(fmt::format("export: warning: {}", why));
    else
      say(fmt::format("totals from {}", why));
    return "listing";
  }
  say(fmt::format("totals from the index {} (generation {}), read after a compaction of {}",
                  live.reader->file_path(), live.reader->generation(), target.mount_root));
  target.source = std::make_shared<IndexTotalsSource>(live.reader, live.exact_at);
  return "compaction";
}

}  // namespace

int RunExport(const ExportArgs& args) {
  const bool ncdu = args.format == "ncdu";
  if (!ncdu && args.format != "prometheus") {
    PrintError(args.format.empty()
                   ? "export: --format is required (ncdu or prometheus)"
                   : fmt::format("export: --format '{}' is not ncdu or prometheus", args.format));
    return kExitError;
  }
  if (ncdu && (args.depth != ExportArgs::kNotGiven || args.top != ExportArgs::kNotGiven)) {
    PrintError(
        "export: --depth and --top bound the series of --format prometheus; an ncdu export is "
        "always the whole tree");
    return kExitError;
  }
  if (!args.live.empty() && args.live != "compact" && args.live != "list") {
    PrintError(fmt::format("export: --live '{}' is not compact or list", args.live));
    return kExitError;
  }
  Env& env = Env::Default();
  auto target = ResolveDirectory(env, args.path, args.index);
  if (!target.ok()) {
    PrintError(target.status().message());
    return kExitError;
  }
  const std::string from = ChooseSource(env, args, *target);
  const TotalsSource& source = *target->source;
  if (Status s = CheckOutputIsNotIndex(args.output, source.index_reader()); !s.ok()) {
    PrintError(fmt::format("export: {}", s.message()));
    return kExitError;
  }
  const std::optional<Totals> root = source.Lookup(target->relative);
  if (!root && !target->mount_root.empty()) {
    // A mount that cannot answer: say why (a dead daemon answers ENOTCONN), not "not in the
    // index".
    const std::string full =
        target->relative.empty() ? target->mount_root : target->mount_root + "/" + target->relative;
    const int err = ::lgetxattr(full.c_str(), xattr::kTotalBytes, nullptr, 0) < 0 ? errno : EIO;
    PrintError(fmt::format("{}: cannot read its totals from the dtkfs mount {}: {}{}", args.path,
                           target->mount_root, std::strerror(err),
                           err == ENOTCONN ? " (its daemon is gone; `dtkfs umount` it)" : ""));
    return kExitError;
  }
  if (!root) {
    PrintError(fmt::format(
        "{}: not in the index (created after the last scan? run dtkfs scan or dtkfs check "
        "--repair)",
        args.path));
    return kExitError;
  }
  const std::string shown = ShownRoot(args.path);
  const double now = Now();

  if (ncdu) {
    const NcduTree tree =
        BuildNcduTree(shown, target->relative, *root, source.ListBelow(target->relative, 0));
    const NcduMetadata meta{DTKFS_VERSION, static_cast<uint64_t>(now), from, source.TotalsTime()};
    Status s = Emit(args.output, [&](TextSink& out) { WriteNcdu(tree, meta, out); });
    if (!s.ok()) {
      PrintError(fmt::format("export: {}", s.message()));
      return kExitError;
    }
    if (tree.inconsistent > 0) {
      PrintError(fmt::format(
          "export: {} directories changed while they were read (their subdirectories add up to "
          "more than their totals); run the export again",
          tree.inconsistent));
      return kExitFindings;
    }
    return kExitOk;
  }

  const size_t depth = args.depth == ExportArgs::kNotGiven ? ExportArgs::kDefaultDepth : args.depth;
  const size_t top = args.top == ExportArgs::kNotGiven ? ExportArgs::kDefaultTop : args.top;
  PrometheusExport e;
  e.root = shown;
  e.export_time = now;
  e.totals_time = source.TotalsTime();
  e.dirs.emplace_back(shown, *root);
  if (depth > 0) {
    auto below = source.ListBelow(target->relative, depth);
    // The largest first (ties by path, so the choice is stable), then back in path order.
    const auto larger = [](const auto& a, const auto& b) {
      return a.second.bytes != b.second.bytes ? a.second.bytes > b.second.bytes : a.first < b.first;
    };
    const size_t n = std::min(top, below.size());
    std::partial_sort(below.begin(), below.begin() + static_cast<long>(n), below.end(), larger);
    below.resize(n);
    std::sort(below.begin(), below.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    const size_t strip = target->relative.empty() ? 0 : target->relative.size() + 1;
    for (auto& [rel, totals] : below)
      e.dirs.emplace_back(shown + (shown == "/" ? "" : "/") + rel.substr(strip), totals);
  }
  Status s = Emit(args.output, [&](TextSink& out) { WritePrometheus(e, out); });
  if (!s.ok()) {
    PrintError(fmt::format("export: {}", s.message()));
    return kExitError;
  }
  return kExitOk;
}

}  // namespace dtkfs::cli
