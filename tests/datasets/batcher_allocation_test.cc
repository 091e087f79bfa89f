// Counts heap allocations by replacing the global operator new: its own binary.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "datasets/batcher.h"

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace anode::datasets {
namespace {

TEST(BatcherAllocationTest, NextAndStartEpochDoNotAllocate) {
  Tensor<float> x(Shape{1000, 1, 28, 28});
  Tensor<float> y(Shape{1000, 10});
  std::vector<int> labels(1000, 3);
  Batcher<float> with_targets(x, y, {.batch_size = 96, .seed = 1});
  Batcher<float> with_labels(x, labels, {.batch_size = 96, .shuffle = false});
  const long before = g_allocations.load();
  Index batches = 0;
  for (Index epoch = 0; epoch < 3; ++epoch) {
    with_targets.start_epoch(epoch);
    with_labels.start_epoch(epoch);
    while (with_targets.next() && with_labels.next()) ++batches;
  }
  const long after = g_allocations.load();
  EXPECT_EQ(batches, 3 * 11);  // ceil(1000 / 96), the last one partial
  EXPECT_EQ(after - before, 0);
}

}  // namespace
}  // namespace anode::datasets
