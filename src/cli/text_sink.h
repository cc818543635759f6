// TextSink: where an export's text goes, handed on in large pieces: standard output, or the
// body of a file that InstallFile (src/env/install_file.h) puts in place whole. Writers
// append; the first failure is kept, later appends are dropped, and Finish reports it.
//
// Not thread-safe: one writer at a time.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "env/env.h"

namespace dtkfs::cli {

class TextSink {
 public:
  using WriteFn = std::function<Status(std::string_view)>;
  explicit TextSink(WriteFn write) : write_(std::move(write)) {}

  void Append(std::string_view text);
  // Hands on what is buffered; returns the first failure, if any.
  [[nodiscard]] Status Finish();

 private:
  static constexpr size_t kChunkBytes = 1 << 20;
  void Flush();

  WriteFn write_;
  std::string buffer_;
  Status status_;
};

// Writes to standard output (a failure names it: "write standard output: ...").
TextSink::WriteFn StdoutWriter();
// Writes to file from its start, piece after piece. file must outlive the writer.
TextSink::WriteFn FileWriter(WritableFile& file);

}  // namespace dtkfs::cli
