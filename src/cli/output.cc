#include "cli/output.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace dtkfs::cli {

std::string HumanBytes(uint64_t bytes) {
  static const char kUnits[] = "KMGTPE";
  if (bytes < 1024) return fmt::format("{}", bytes);
  double v = static_cast<double>(bytes);
  int u = -1;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  if (v < 10) {
    double r = std::ceil(v * 10) / 10;
    if (r < 10) return fmt::format("{:.1f}{}", r, kUnits[u]);
    v = r;
  }
  double r = std::ceil(v);
  if (r >= 1024 && u < 5) return fmt::format("1.0{}", kUnits[u + 1]);
  return fmt::format("{:.0f}{}", r, kUnits[u]);
}

size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = byte(0);
  if (c < 0x80) return 1;
  // The second byte's range depends on the first (RFC 3629 section 4): it rules out overlong
  // forms (E0, F0), UTF-16 surrogates (ED) and code points above U+10FFFF (F4).
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size() || byte(1) < lo || byte(1) > hi) return 0;
  for (size_t k = 2; k < len; ++k)
    if ((byte(k) & 0xC0) != 0x80) return 0;
  return len;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t len = Utf8SequenceLength(s, i);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || len == 0) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out.append(s.substr(i, len));
    }
    i += len == 0 ? 1 : len;
  }
  out += '"';
  return out;
}

std::string DuLine(uint64_t bytes, std::string_view path, bool human) {
  return fmt::format("{}\t{}", human ? HumanBytes(bytes) : fmt::format("{}", bytes), path);
}

std::string JsonRecord(std::string_view path, const Totals& t) {
  return fmt::format(R"({{"path":{},"bytes":{},"files":{},"dirs":{}}})", JsonString(path), t.bytes,
                     t.files, t.dirs);
}

void PrintError(std::string_view message) { fmt::print(stderr, "dtkfs: {}\n", message); }

std::function<void(const ScanProgress&)> TerminalProgress() {
  if (::isatty(STDERR_FILENO) != 1) return nullptr;
  return [](const ScanProgress& p) {
    const double rate = p.seconds > 0 ? static_cast<double>(p.entries) / p.seconds : 0;
    fmt::print(stderr, "\rscanning: {} entries, {} dirs, {:.0f} entries/s   {}", p.entries, p.dirs,
               rate, p.done ? "\n" : "");
    std::fflush(stderr);
  };
}

}  // namespace dtkfs::cli
