// Output helpers shared by the CLI commands: du-style human units, JSON strings, and the
// exit-status convention (0 ok, 1 findings, 2 error).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "dtkfs/totals.h"
#include "scan/scanner.h"

namespace dtkfs::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFindings = 1;
inline constexpr int kExitError = 2;

// 1023 -> "1023", 1536 -> "1.5K", 10.2 MiB -> "11M": like `du -h` (powers of 1024, rounded
// up, one decimal below 10).
std::string HumanBytes(uint64_t bytes);
// The length of the well-formed UTF-8 sequence at s[i] (1 to 4), or 0 when the bytes there
// are not one (a stray continuation byte, an overlong form, a surrogate, above U+10FFFF, or
// cut short by the end of s).
size_t Utf8SequenceLength(std::string_view s, size_t i);
// A JSON string literal. Control bytes are escaped; bytes that are not valid UTF-8 are
// written as \u00XX (their Latin-1 reading), so the output is always valid JSON.
std::string JsonString(std::string_view s);
// One "BYTES<TAB>PATH" line (human units when human is set).
std::string DuLine(uint64_t bytes, std::string_view path, bool human);
// {"path":...,"bytes":...,"files":...,"dirs":...}
std::string JsonRecord(std::string_view path, const Totals& t);
// Prints "dtkfs: MESSAGE" to stderr.
void PrintError(std::string_view message);
// Scan progress for a terminal: "\rscanning: N entries, D dirs, R entries/s", ending the
// line at the last report; none when stderr is not a terminal.
std::function<void(const ScanProgress&)> TerminalProgress();

}  // namespace dtkfs::cli
