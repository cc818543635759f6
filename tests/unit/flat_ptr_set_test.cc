// FlatPtrSet against std::unordered_multiset: random inserts (repeats included) and erases,
// with a good hash and with hashes that put everything in one run (every erase shifts).
#include "util/flat_ptr_set.h"

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <unordered_set>
#include <vector>

#include "support/test_seed.h"

using dtkfs::FlatPtrSet;

namespace {

struct Item {
  int key;
};

// Every item in one run of slots (the home slot is the same for all).
struct OneHash {
  size_t operator()(const Item*) const { return 7; }
  size_t operator()(int) const { return 7; }
};
// Two homes: runs that meet and wrap around the end of the array.
struct ParityHash {
  size_t operator()(const Item* i) const { return (*this)(i->key); }
  size_t operator()(int k) const { return static_cast<size_t>(k & 1); }
};
struct KeyHash {
  size_t operator()(const Item* i) const { return (*this)(i->key); }
  size_t operator()(int k) const { return static_cast<size_t>(k); }
};
struct KeyEq {
  bool operator()(int k, const Item* i) const { return i->key == k; }
};

std::map<Item*, int> Counts(const FlatPtrSet<Item, OneHash, KeyEq>& s) {
  std::map<Item*, int> out;
  for (Item* i : s) out[i]++;
  return out;
}

template <class Hash>
void CheckAgainstMultiset(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Item> items(200);
  for (size_t i = 0; i < items.size(); ++i) items[i].key = static_cast<int>(i);
  FlatPtrSet<Item, Hash, KeyEq> set;
  std::unordered_multiset<Item*> ref;
  for (int step = 0; step < 20000; ++step) {
    Item* it = &items[rng() % (step < 10000 ? items.size() : 40)];  // later: many repeats
    if (rng() % 3 != 0) {
      set.insert(it);
      ref.insert(it);
    } else {
      const auto found = ref.find(it);
      CHECK(set.erase(it) == (found != ref.end()));
      if (found != ref.end()) ref.erase(found);
    }
    REQUIRE(set.size() == ref.size());
    if (step % 97 == 0) {
      std::unordered_multiset<Item*> seen;
      for (Item* i : set) seen.insert(i);
      REQUIRE(seen == ref);
      for (Item& i : items) REQUIRE((set.find(i.key) == &i) == (ref.count(&i) != 0));
    }
  }
  while (!ref.empty()) {
    REQUIRE(set.erase(*ref.begin()));
    ref.erase(ref.begin());
  }
  CHECK(set.empty());
  CHECK(set.capacity() == FlatPtrSet<Item>::kMinCapacity);  // shrunk as it emptied
}

}  // namespace

TEST_CASE("flat pointer set: inserts, repeats, finds and erases as a multiset does", "[util]") {
  const uint64_t seed = dtkfs::testing::TestSeed("flat pointer set");
  CheckAgainstMultiset<KeyHash>(seed);
  CheckAgainstMultiset<ParityHash>(seed + 1);
  CheckAgainstMultiset<OneHash>(seed + 2);
}

TEST_CASE("flat pointer set: erase takes one occurrence of that pointer, never an equal one",
          "[util]") {
  Item a{1}, b{1};  // equal keys, different objects
  FlatPtrSet<Item, OneHash, KeyEq> set;
  set.insert(&a);
  set.insert(&a);
  set.insert(&b);
  CHECK(set.erase(&a));
  CHECK(Counts(set) == std::map<Item*, int>{{&a, 1}, {&b, 1}});
  CHECK(set.erase(&b));
  CHECK_FALSE(set.erase(&b));
  CHECK(set.find(1) == &a);
  CHECK(set.erase(&a));
  CHECK(set.find(1) == nullptr);
  CHECK(set.empty());
}

TEST_CASE("flat pointer set: memory follows the size, up and down", "[util]") {
  std::vector<Item> items(10000);
  FlatPtrSet<Item, KeyHash, KeyEq> set;
  for (size_t i = 0; i < items.size(); ++i) {
    items[i].key = static_cast<int>(i);
    set.insert(&items[i]);
    REQUIRE(set.size() * 4 <= set.capacity() * 3);  // at most 3/4 full
  }
  CHECK(set.capacity() <= 4 * items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    REQUIRE(set.erase(&items[i]));
    if (set.capacity() > FlatPtrSet<Item>::kMinCapacity)
      REQUIRE(set.size() * 8 >= set.capacity());  // at least 1/8 full
  }
  CHECK(set.capacity() == FlatPtrSet<Item>::kMinCapacity);
}
