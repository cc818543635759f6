// SuspectTotals (src/store/suspect_totals.h): the first failure wins, ok statuses do not
// count, and concurrent recorders leave exactly one of their messages.
#include "store/suspect_totals.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace dtkfs;

TEST_CASE("SuspectTotals keeps the first failure only", "[store][safety]") {
  SuspectTotals t;
  CHECK_FALSE(t.Reason());
  t.Record(Status::Ok());
  CHECK_FALSE(t.Reason());
  t.Record(Status::Corruption("unlink d: totals of 'd' would go negative"));
  t.Record(Status::NotFound("rmdir x: not in the size store"));
  REQUIRE(t.Reason());
  CHECK(*t.Reason() == "unlink d: totals of 'd' would go negative");
}

TEST_CASE("SuspectTotals from many threads records one whole message", "[store][safety]") {
  SuspectTotals t;
  std::set<std::string> sent;
  for (int i = 0; i < 8; ++i)
    sent.insert("failure number " + std::to_string(i) + std::string(64, 'x'));
  std::atomic<bool> saw_empty{false};  // Catch2 assertions are not for other threads
  std::vector<std::thread> threads;
  for (const auto& m : sent)
    threads.emplace_back([&t, &saw_empty, m] {
      for (int k = 0; k < 1000; ++k) {
        t.Record(Status::Corruption(m));
        auto r = t.Reason();
        if (r && r->empty()) saw_empty = true;
      }
    });
  for (auto& th : threads) th.join();
  CHECK_FALSE(saw_empty);
  REQUIRE(t.Reason());
  CHECK(sent.count(*t.Reason()) == 1);
}
