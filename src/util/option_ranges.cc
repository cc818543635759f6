#include "util/option_ranges.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <string>

namespace dtkfs {

Result<double> ParseNumber(std::string_view text, const NumberRange& range) {
  const std::string s(text);
  char* end = nullptr;
  const double d = s.empty() || std::isspace(static_cast<unsigned char>(s[0]))
                       ? std::nan("")
                       : std::strtod(s.c_str(), &end);
  const bool number = end != nullptr && end == s.c_str() + s.size();
  const bool finite = number && std::isfinite(d);
  const bool whole = !range.integral || d == std::floor(d);
  if (finite && whole && d >= range.min && d <= range.max) return d;
  return Status::InvalidArgument(fmt::format("'{}' is {} (valid: {}{} to {} {})", text,
                                             !number   ? "not a number"
                                             : !finite ? "not a finite number"
                                             : !whole  ? "not a whole number"
                                                       : "out of range",
                                             range.integral ? "whole numbers " : "",
                                             static_cast<uint64_t>(range.min),
                                             static_cast<uint64_t>(range.max), range.unit));
}

}  // namespace dtkfs
