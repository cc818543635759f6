// The Prometheus path-label rule of docs/export.md read backwards: `\xHH` is byte HH,
// anything else is itself (the exposition format's own escapes already undone).
#pragma once

#include <string>

namespace dtkfs::testing {

inline std::string DecodeLabelText(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 2, "\\x") == 0 && i + 4 <= text.size()) {
      out += static_cast<char>(std::stoi(text.substr(i + 2, 2), nullptr, 16));
      i += 3;
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace dtkfs::testing
