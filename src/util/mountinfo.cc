#include "util/mountinfo.h"

#include <charconv>
#include <fstream>
#include <sstream>

namespace dtkfs {
namespace {

bool IsOctal(char c) { return c >= '0' && c <= '7'; }

bool ParseU64(std::string_view s, uint64_t* out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::string DecodeMountInfoField(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && IsOctal(field[i + 1]) &&
        IsOctal(field[i + 2]) && IsOctal(field[i + 3])) {
      out.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                      (field[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(field[i]);
    }
  }
  return out;
}

std::vector<MountInfo> ParseMountInfo(std::string_view text) {
  // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
  // (1)(2)(3)   (4)   (5)      (6)         (7)  (8) (9)   (10)       (11)
  std::vector<MountInfo> out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    std::vector<std::string_view> fields;
    while (!line.empty()) {
      const size_t sp = line.find(' ');
      if (sp != 0) fields.push_back(line.substr(0, sp));
      line.remove_prefix(sp == std::string_view::npos ? line.size() : sp + 1);
    }
    size_t dash = 6;  // the optional fields end at a lone "-"
    while (dash < fields.size() && fields[dash] != "-") ++dash;
    if (fields.size() < 6 || dash + 1 >= fields.size()) continue;
    MountInfo m;
    if (!ParseU64(fields[0], &m.id) || !ParseU64(fields[1], &m.parent_id)) continue;
    m.device = std::string(fields[2]);
    m.root = DecodeMountInfoField(fields[3]);
    m.mount_point = DecodeMountInfoField(fields[4]);
    m.fstype = std::string(fields[dash + 1]);
    if (dash + 3 < fields.size()) m.super_options = DecodeMountInfoField(fields[dash + 3]);
    out.push_back(std::move(m));
  }
  return out;
}

Result<std::vector<MountInfo>> ReadMountInfo() {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return Status::FromErrno(errno, "read", "/proc/self/mountinfo");
  std::stringstream text;
  text << in.rdbuf();
  return ParseMountInfo(text.str());
}

}  // namespace dtkfs
