#include "cli/text_sink.h"

#include <cerrno>
#include <cstdio>

namespace dtkfs::cli {

void TextSink::Append(std::string_view text) {
  if (!status_.ok()) return;
  buffer_.append(text);
  if (buffer_.size() >= kChunkBytes) Flush();
}

void TextSink::Flush() {
  if (status_.ok() && !buffer_.empty()) status_ = write_(buffer_);
  buffer_.clear();
}

Status TextSink::Finish() {
  Flush();
  return status_;
}

TextSink::WriteFn StdoutWriter() {
  return [](std::string_view text) {
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0)
      return Status::FromErrno(errno != 0 ? errno : EIO, "write", "standard output");
    return Status::Ok();
  };
}

TextSink::WriteFn FileWriter(WritableFile& file) {
  return [&file, offset = uint64_t{0}](std::string_view text) mutable {
    Status s = file.WriteAt(offset, text);
    offset += text.size();
    return s;
  };
}

}  // namespace dtkfs::cli
