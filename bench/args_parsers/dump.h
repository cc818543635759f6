// Shared by own.cc, cli11.cc, po.cc: the argument structs (as in src/cli/commands.h and
// src/fs/daemon.h) and a printer for the parsed values. Not part of any parser's line count.
#pragma once
#include <cstdio>
#include <string>
#include <vector>

struct ScanArgs {
  std::string source, index;
};
struct DuArgs {
  std::string index;
  bool human = false, json = false;
  std::vector<std::string> paths;
};
struct TopArgs {
  std::string index;
  size_t count = 10, depth = 0;
  bool human = false, json = false;
  std::string path;
};
struct CheckArgs {
  std::string source, index;
  bool repair = false;
};
struct MountArgs {
  std::string source, mountpoint, index;
  double compact_interval = 60;
  bool foreground = false;
  std::vector<std::string> options;
};

inline std::string Join(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + ("'" + v[i] + "'");
  return s + "]";
}
inline int Dump(const ScanArgs& a) {
  std::printf("scan source='%s' index='%s'\n", a.source.c_str(), a.index.c_str());
  return 0;
}
inline int Dump(const DuArgs& a) {
  std::printf("du paths=%s index='%s' human=%d json=%d\n", Join(a.paths).c_str(), a.index.c_str(),
              a.human, a.json);
  return 0;
}
inline int Dump(const TopArgs& a) {
  std::printf("top path='%s' index='%s' n=%zu depth=%zu human=%d json=%d\n", a.path.c_str(),
              a.index.c_str(), a.count, a.depth, a.human, a.json);
  return 0;
}
inline int Dump(const CheckArgs& a) {
  std::printf("check source='%s' index='%s' repair=%d\n", a.source.c_str(), a.index.c_str(),
              a.repair);
  return 0;
}
inline int Dump(const MountArgs& a) {
  std::printf("mount source='%s' mnt='%s' index='%s' interval=%g fg=%d o=%s\n", a.source.c_str(),
              a.mountpoint.c_str(), a.index.c_str(), a.compact_interval, a.foreground,
              Join(a.options).c_str());
  return 0;
}
inline int Dump(const char* cmd, const std::string& mnt) {
  std::printf("%s mnt='%s'\n", cmd, mnt.c_str());
  return 0;
}
