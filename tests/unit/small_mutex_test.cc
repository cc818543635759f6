// SmallMutex: mutual exclusion under contention, and the Lockable surface.
#include "util/small_mutex.h"

#include <catch2/catch.hpp>
#include <mutex>
#include <thread>
#include <vector>

TEST_CASE("small mutex: four threads incrementing under it lose no update", "[util]") {
  dtkfs::SmallMutex mu;
  uint64_t counter = 0;  // deliberately not atomic: only the mutex protects it
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 200000; ++i) {
        std::lock_guard lock(mu);
        counter++;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(counter == 800000);
  CHECK(sizeof(dtkfs::SmallMutex) == 4);
}

TEST_CASE("small mutex: try_lock fails while held and succeeds once released", "[util]") {
  dtkfs::SmallMutex mu;
  REQUIRE(mu.try_lock());
  bool other = true;
  std::thread([&] { other = mu.try_lock(); }).join();
  CHECK_FALSE(other);
  mu.unlock();
  std::thread([&] {
    other = mu.try_lock();
    if (other) mu.unlock();
  }).join();
  CHECK(other);
}
