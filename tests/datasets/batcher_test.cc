#include "datasets/batcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <type_traits>

#include "autodiff/errors.h"

namespace anode::datasets {
namespace {

static_assert(!std::is_constructible_v<Batcher<float>, Tensor<float>&&, const BatcherOptions&>,
              "a temporary data set would dangle");
static_assert(!std::is_constructible_v<Batcher<float>, const Tensor<float>&, std::vector<int>&&,
                                       const BatcherOptions&>);
static_assert(!std::is_constructible_v<Batcher<float>, const Tensor<float>&, Tensor<float>&&,
                                       const BatcherOptions&>);

// Row i of the features is (10 i, 10 i + 1, 10 i + 2); its target is -i, its label i % 4.
struct Data {
  explicit Data(Index n) : x(Shape{n, 3}), y(Shape{n, 1}), labels(static_cast<std::size_t>(n)) {
    for (Index i = 0; i < n; ++i) {
      for (Index j = 0; j < 3; ++j) x(i, j) = static_cast<float>(10 * i + j);
      y[i] = static_cast<float>(-i);
      labels[i] = static_cast<int>(i % 4);
    }
  }
  Tensor<float> x, y;
  std::vector<int> labels;
};

// Checks that the batch holds the rows its indices() name; returns them.
std::vector<Index> check_batch(const Batcher<float>& b) {
  const auto idx = b.indices();
  const Index size = static_cast<Index>(idx.size());
  EXPECT_EQ(b.features().shape(), (Shape{size, 3}));
  for (Index k = 0; k < size; ++k) {
    for (Index j = 0; j < 3; ++j) EXPECT_EQ(b.features()(k, j), static_cast<float>(10 * idx[k] + j));
    if (!b.targets().empty()) {
      EXPECT_EQ(b.targets()[k], static_cast<float>(-idx[k]));
    }
    if (!b.labels().empty()) {
      EXPECT_EQ(b.labels()[k], idx[k] % 4);
    }
  }
  return {idx.begin(), idx.end()};
}

TEST(BatcherTest, FixedOrderKeepsTheLastPartialBatch) {
  Data d(10);
  Batcher<float> b(d.x, d.y, {.batch_size = 4, .shuffle = false});
  EXPECT_EQ(b.size(), 10);
  EXPECT_EQ(b.num_batches(), 3);
  std::vector<Index> seen;
  std::vector<Index> sizes;
  while (b.next()) {
    const auto rows = check_batch(b);
    EXPECT_EQ(b.targets().shape(), (Shape{static_cast<Index>(rows.size()), 1}));
    sizes.push_back(static_cast<Index>(rows.size()));
    seen.insert(seen.end(), rows.begin(), rows.end());
  }
  EXPECT_EQ(sizes, (std::vector<Index>{4, 4, 2}));
  std::vector<Index> all(10);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(seen, all);
  EXPECT_FALSE(b.next());
  // Every epoch the same order without shuffle.
  b.start_epoch(1);
  ASSERT_TRUE(b.next());
  EXPECT_EQ(b.indices()[0], 0);
  EXPECT_EQ(b.epoch(), 1);
  EXPECT_EQ(b.batch_index(), 0);
}

TEST(BatcherTest, DropLast) {
  Data d(10);
  Batcher<float> b(d.x, d.labels, {.batch_size = 4, .shuffle = false, .drop_last = true});
  EXPECT_EQ(b.num_batches(), 2);
  Index batches = 0;
  while (b.next()) {
    EXPECT_EQ(check_batch(b).size(), 4u);
    EXPECT_EQ(b.labels().size(), 4u);
    ++batches;
  }
  EXPECT_EQ(batches, 2);
  Batcher<float> exact(d.x, {.batch_size = 5, .drop_last = true});
  EXPECT_EQ(exact.num_batches(), 2);
  Batcher<float> none(d.x, {.batch_size = 11, .drop_last = true});
  EXPECT_EQ(none.num_batches(), 0);
  EXPECT_FALSE(none.next());
}

TEST(BatcherTest, ShuffledEpochsArePermutations) {
  Data d(23);
  Batcher<float> b(d.x, d.y, {.batch_size = 5, .seed = 3});
  std::vector<std::vector<Index>> orders;
  for (Index epoch = 0; epoch < 3; ++epoch) {
    b.start_epoch(epoch);
    std::vector<Index> order;
    while (b.next()) {
      const auto rows = check_batch(b);
      order.insert(order.end(), rows.begin(), rows.end());
    }
    std::vector<Index> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    std::vector<Index> all(23);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(sorted, all);
    orders.push_back(order);
  }
  EXPECT_NE(orders[0], orders[1]);
  EXPECT_NE(orders[1], orders[2]);
  std::vector<Index> identity(23);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(orders[0], identity);
}

TEST(BatcherTest, OrderDependsOnlyOnSeedAndEpoch) {
  Data d(30);
  auto order_of = [&](Batcher<float>& b) {
    std::vector<Index> order;
    while (b.next()) order.insert(order.end(), b.indices().begin(), b.indices().end());
    return order;
  };
  Batcher<float> a(d.x, {.batch_size = 7, .seed = 9});
  Batcher<float> c(d.x, {.batch_size = 7, .seed = 9});
  Batcher<float> other(d.x, {.batch_size = 7, .seed = 10});
  EXPECT_EQ(order_of(a), order_of(c));
  EXPECT_NE(order_of(other), (std::vector<Index>{}));
  // Epoch 5 straight away (a resumed run) equals epoch 5 after epochs 0..4.
  for (Index e = 1; e <= 5; ++e) {
    a.start_epoch(e);
    if (e < 5) order_of(a);
  }
  c.start_epoch(5);
  EXPECT_EQ(order_of(a), order_of(c));
  other.start_epoch(0);
  Batcher<float> fresh(d.x, {.batch_size = 7, .seed = 9});
  EXPECT_NE(order_of(other), order_of(fresh));
}

TEST(BatcherTest, BuffersAreReused) {
  Data d(10);
  Batcher<float> b(d.x, d.y, {.batch_size = 4});
  ASSERT_TRUE(b.next());
  const float* features = b.features().data();
  const float* targets = b.targets().data();
  for (Index epoch = 0; epoch < 3; ++epoch) {
    b.start_epoch(epoch);
    while (b.next()) {
      EXPECT_EQ(b.features().data(), features);
      EXPECT_EQ(b.targets().data(), targets);
    }
  }
}

TEST(BatcherTest, ImageShapedFeaturesAndDoubles) {
  Tensor<double> x(Shape{5, 1, 2, 2});
  for (Index i = 0; i < x.size(); ++i) x[i] = static_cast<double>(i);
  Batcher<double> b(x, {.batch_size = 2, .shuffle = false});
  ASSERT_TRUE(b.next());
  EXPECT_EQ(b.features().shape(), (Shape{2, 1, 2, 2}));
  ASSERT_TRUE(b.next());
  EXPECT_EQ(b.features()[0], 8.0);
  ASSERT_TRUE(b.next());
  EXPECT_EQ(b.features().shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(b.features()[3], 19.0);
  EXPECT_TRUE(b.targets().empty());
  EXPECT_TRUE(b.labels().empty());
}

TEST(BatcherTest, BatchLargerThanTheData) {
  Data d(3);
  Batcher<float> b(d.x, d.y, {.batch_size = 100});
  EXPECT_EQ(b.num_batches(), 1);
  ASSERT_TRUE(b.next());
  EXPECT_EQ(check_batch(b).size(), 3u);
  EXPECT_FALSE(b.next());
}

TEST(BatcherTest, EmptyData) {
  Tensor<float> x(Shape{0, 3});
  Batcher<float> b(x, {.batch_size = 4});
  EXPECT_EQ(b.num_batches(), 0);
  EXPECT_FALSE(b.next());
  EXPECT_TRUE(b.indices().empty());
}

TEST(BatcherTest, Errors) {
  Data d(10);
  EXPECT_THROW(Batcher<float>(d.x, d.y, {.batch_size = 0}), ValueError);
  EXPECT_THROW(Batcher<float>(d.x, {.batch_size = -3}), ValueError);
  Tensor<float> y9(Shape{9, 1});
  EXPECT_THROW(Batcher<float>(d.x, y9, {.batch_size = 2}), ShapeError);
  std::vector<int> labels9(9);
  EXPECT_THROW(Batcher<float>(d.x, labels9, {.batch_size = 2}), ShapeError);
  Tensor<float> scalar(Shape{});
  EXPECT_THROW(Batcher<float>(scalar, {.batch_size = 2}), ShapeError);
  try {
    Batcher<float>(d.x, y9, {.batch_size = 2});
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("[10, 3]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[9, 1]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace anode::datasets
