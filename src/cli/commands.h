// The dtkfs subcommands. Each returns an exit status: 0 ok, 1 findings, 2 error.
#pragma once

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
};
int RunCheck(const CheckArgs& args);

int RunUmount(const std::string& mountpoint);
int RunStatus(const std::string& mountpoint);
int RunCompact(const std::string& mountpoint);
// dtkfs verify MNT: every directory reconciled with the source now; waits for the end.
int RunVerify(const std::string& mountpoint);

}  // namespace dtkfs::cli
