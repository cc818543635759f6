// xattr_bench: the round trip of one getxattr(2) on a path, as a script's getfattr pays it
// without the process start.
//
//   xattr_bench PATH NAME [--batches B] [--per-batch N]
//
// Calls getxattr(PATH, NAME) N times per batch (default 2,000), B batches (default 25),
// and prints "key value" lines: the median and best per-call time of the batches in
// nanoseconds. Fails if a call fails (so a missing attribute is not timed as an error path).
#include <sys/xattr.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: xattr_bench PATH NAME [--batches B] [--per-batch N]\n");
    return 2;
  }
  const char* path = argv[1];
  const char* name = argv[2];
  long batches = 25, per_batch = 2000;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--batches") == 0) batches = std::atol(argv[i + 1]);
    if (std::strcmp(argv[i], "--per-batch") == 0) per_batch = std::atol(argv[i + 1]);
  }
  char value[256];
  std::vector<double> ns;
  for (long b = 0; b < batches; ++b) {
    const auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < per_batch; ++i) {
      if (::getxattr(path, name, value, sizeof value) < 0) {
        std::fprintf(stderr, "xattr_bench: getxattr %s %s: %s\n", path, name, std::strerror(errno));
        return 1;
      }
    }
    const auto t1 = std::chrono::steady_clock::now();
    ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() /
                 static_cast<double>(per_batch));
  }
  std::sort(ns.begin(), ns.end());
  std::printf("getxattr_median_ns %.0f\ngetxattr_min_ns %.0f\n", ns[ns.size() / 2], ns.front());
  return 0;
}
