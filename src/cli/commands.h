// The dtkfs subcommands. Each returns an exit status: 0 ok, 1 findings, 2 error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dtkfs::cli {

struct ScanArgs {
  std::string source;
  std::string index;
};
int RunScan(const ScanArgs& args);

struct DuArgs {
  std::string index;
  bool human = false;
  bool json = false;
  std::vector<std::string> paths;
};
int RunDu(const DuArgs& args);

struct TopArgs {
  std::string index;
  size_t count = 10;
  size_t depth = 0;  // 0: any depth
  bool human = false;
  bool json = false;
  std::string path;
};
int RunTop(const TopArgs& args);

struct CheckArgs {
  std::string source;
  std::string index;
  bool repair = false;
  bool json = false;  // one JSON object on stdout instead of lines (docs/export.md)
};
int RunCheck(const CheckArgs& args);

// dtkfs export --format ncdu|prometheus [--index FILE] [--output FILE] [--depth N] [--top N]
// [--live compact|list] [--verbose] PATH (docs/export.md).
struct ExportArgs {
  static constexpr size_t kNotGiven = SIZE_MAX;
  static constexpr size_t kDefaultDepth = 1;
  static constexpr size_t kDefaultTop = 100;
  std::string format;  // "ncdu" or "prometheus"
  std::string index;
  std::string output;        // "": standard output
  size_t depth = kNotGiven;  // prometheus only
  size_t top = kNotGiven;    // prometheus only
  // On a mount: "compact" (or ""): compact, then read the index, listing the mount only when
  // that cannot be done; "list": list the mount's directories.
  std::string live;
  bool verbose = false;  // say on stderr where the totals came from
  std::string path;
};
int RunExport(const ExportArgs& args);

int RunUmount(const std::string& mountpoint);
// json: one JSON object, the status keys as its fields (docs/export.md, "JSON output").
int RunStatus(const std::string& mountpoint, bool json);
int RunCompact(const std::string& mountpoint);
// dtkfs verify MNT: every directory reconciled with the source now; waits for the end.
int RunVerify(const std::string& mountpoint);

}  // namespace dtkfs::cli
