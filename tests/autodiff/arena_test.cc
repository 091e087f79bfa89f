#include "autodiff/arena.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "autodiff/tensor.h"

namespace anode {
namespace {

TEST(Arena, AlignedAndNeverMoves) {
  Arena arena(4096);
  std::vector<char*> ptrs;
  for (int i = 0; i < 100; ++i) {
    char* p = static_cast<char*>(arena.allocate(1000 + i));
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % kAlignment, 0u);
    p[0] = static_cast<char>(i);
    ptrs.push_back(p);
  }
  for (int i = 0; i < 100; ++i) EXPECT_EQ(ptrs[i][0], static_cast<char>(i));
  EXPECT_GE(arena.peak_bytes(), 100u * 1000);
}

TEST(Arena, ClearKeepsBlocksAndTheNextRoundDoesNotGrow) {
  Arena arena(4096);
  for (int i = 0; i < 50; ++i) arena.allocate(10000);
  std::size_t cap = arena.capacity();
  arena.clear();
  EXPECT_EQ(arena.bytes_used(), 0u);
  EXPECT_EQ(arena.capacity(), cap);
  // The same round now fits without growing.
  for (int i = 0; i < 50; ++i) arena.allocate(10000);
  EXPECT_EQ(arena.capacity(), cap);
}

TEST(Arena, RewindRestoresUsageAcrossBlocks) {
  Arena arena(4096);
  arena.allocate(1000);
  Arena::Mark m = arena.mark();
  std::size_t used = arena.bytes_used();
  for (int i = 0; i < 20; ++i) arena.allocate(3000);  // spills into new blocks
  arena.rewind(m);
  EXPECT_EQ(arena.bytes_used(), used);
  void* again = arena.allocate(10);
  EXPECT_NE(again, nullptr);
}

}  // namespace
}  // namespace anode
