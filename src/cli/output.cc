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

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20) {
      out += fmt::format("\\u{:04x}", c);
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else {
      // Accept a well-formed UTF-8 sequence as is.
      size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
      bool ok = len > 0 && i + len <= n && !(c == 0xC0 || c == 0xC1 || c > 0xF4);
      for (size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xC0) == 0x80;
      if (ok) {
        out.append(s.substr(i, len));
        i += len;
      } else {
        out += fmt::format("\\u{:04x}", c);
        ++i;
      }
    }
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
