// FlatPtrSet: a hash set of pointers kept in one array (open addressing, linear probing,
// deletion by backward shift): a slot of 8 bytes per element and no allocation of its own,
// for sets kept per inode the kernel knows, by the million (the inode table, each
// directory's children), where std::unordered_set spends a 32-byte node and a bucket on
// each. It grows at 3/4 full and shrinks below 1/8, so the memory of erased elements goes
// back with them.
//
// A multiset: insert always adds, so a pointer may be in it more than once (a file with two
// names in one directory), and erase takes away one occurrence of exactly that pointer.
// find(key) returns an element Eq calls equal to key: Hash and Eq may take other key types
// than T* (transparent look-up). Hash's result is mixed again (Fibonacci hashing), so an
// identity hash such as std::hash of a pointer spreads well.
//
// Not thread-safe. insert and erase invalidate iterators; hashing an element (Hash(T*)) must
// give the same value for as long as it is in the set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace dtkfs {

template <class T, class Hash = std::hash<const T*>, class Eq = std::equal_to<>>
class FlatPtrSet {
 public:
  static constexpr size_t kMinCapacity = 4;

  FlatPtrSet() = default;
  FlatPtrSet(const FlatPtrSet&) = delete;
  FlatPtrSet& operator=(const FlatPtrSet&) = delete;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return capacity_; }

  void insert(T* p) {
    if ((size_ + 1) * 4 > capacity_ * 3) Resize(capacity_ == 0 ? kMinCapacity : capacity_ * 2);
    Place(p);
    ++size_;
  }

  // An element equal to key, or null.
  template <class K>
  T* find(const K& key) const {
    if (size_ == 0) return nullptr;
    for (size_t i = Home(hash_(key));; i = Next(i)) {
      T* s = slots_[i];
      if (s == nullptr) return nullptr;
      if (eq_(key, s)) return s;
    }
  }

  // Takes away one occurrence of p itself; false when p is not in the set.
  bool erase(T* p) {
    if (size_ == 0) return false;
    size_t hole = Home(hash_(p));
    while (slots_[hole] != p) {
      if (slots_[hole] == nullptr) return false;
      hole = Next(hole);
    }
    // Backward shift: each later element of the run moves into the hole when the hole lies
    // between its home slot and where it is, so every element stays reachable from home.
    for (size_t j = Next(hole); slots_[j] != nullptr; j = Next(j)) {
      const size_t home = Home(hash_(slots_[j]));
      if (((j - home) & Mask()) >= ((j - hole) & Mask())) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = nullptr;
    --size_;
    if (capacity_ > kMinCapacity && size_ * 8 < capacity_) Resize(capacity_ / 2);
    return true;
  }

  class iterator {
   public:
    T* operator*() const { return *slot_; }
    iterator& operator++() {
      ++slot_;
      Skip();
      return *this;
    }
    bool operator==(const iterator&) const = default;

   private:
    friend class FlatPtrSet;
    iterator(T* const* slot, T* const* end) : slot_(slot), end_(end) { Skip(); }
    void Skip() {
      while (slot_ != end_ && *slot_ == nullptr) ++slot_;
    }
    T* const* slot_;
    T* const* end_;
  };
  iterator begin() const { return iterator(slots_.get(), slots_.get() + capacity_); }
  iterator end() const { return iterator(slots_.get() + capacity_, slots_.get() + capacity_); }

 private:
  size_t Mask() const { return capacity_ - 1; }
  size_t Next(size_t i) const { return (i + 1) & Mask(); }
  size_t Home(size_t h) const {
    return static_cast<size_t>((static_cast<uint64_t>(h) * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void Place(T* p) {
    size_t i = Home(hash_(p));
    while (slots_[i] != nullptr) i = Next(i);
    slots_[i] = p;
  }
  void Resize(size_t capacity) {  // a power of two
    std::unique_ptr<T*[]> old = std::move(slots_);
    const size_t old_capacity = capacity_;
    slots_ = std::make_unique<T*[]>(capacity);  // null slots
    capacity_ = capacity;
    shift_ = 64;
    for (size_t c = capacity; c > 1; c >>= 1) --shift_;
    for (size_t i = 0; i < old_capacity; ++i)
      if (old[i] != nullptr) Place(old[i]);
  }

  std::unique_ptr<T*[]> slots_;
  size_t capacity_ = 0;
  uint32_t size_ = 0;
  uint32_t shift_ = 64;  // 64 - log2(capacity_)
  [[no_unique_address]] Hash hash_;
  [[no_unique_address]] Eq eq_;
};

}  // namespace dtkfs
