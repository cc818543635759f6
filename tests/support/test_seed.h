// The seed of a randomized test: DTKFS_TEST_SEED when set (to repeat a failure), else a fresh
// one. Either way it is printed, so every run can be repeated.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

namespace dtkfs::testing {

inline unsigned TestSeed(const char* test) {
  unsigned seed;
  if (const char* v = std::getenv("DTKFS_TEST_SEED"); v != nullptr && *v != '\0')
    seed = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
  else
    seed = std::random_device{}();
  std::fprintf(stderr, "%s: seed %u (repeat with DTKFS_TEST_SEED=%u)\n", test, seed, seed);
  return seed;
}

}  // namespace dtkfs::testing
