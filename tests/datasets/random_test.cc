#include "datasets/random.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace anode::datasets {
namespace {

TEST(RngTest, EngineIsTheStandardMt19937_64) {
  // The standard fixes the 10000th output of a default-seeded mt19937_64.
  std::mt19937_64 reference;
  reference.discard(9999);
  EXPECT_EQ(reference(), 9981545732273789042ULL);
  Rng rng(5489);  // the engine's default seed
  for (int i = 0; i < 9999; ++i) rng.bits();
  EXPECT_EQ(rng.bits(), 9981545732273789042ULL);
}

TEST(RngTest, SameSeedSameStream) {
  Rng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const double x = a.normal(), y = b.normal(), z = c.normal();
    EXPECT_EQ(x, y);
    differs |= x != z;
  }
  EXPECT_TRUE(differs);
}

TEST(RngTest, UniformIsInRangeWithTheRightMean) {
  Rng rng(1);
  double sum = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
}

TEST(RngTest, NormalHasMeanZeroAndUnitVariance) {
  Rng rng(2);
  const int n = 200000;
  double s = 0, s2 = 0;
  for (int i = 0; i < n; ++i) {
    const double x = rng.normal();
    s += x;
    s2 += x * x;
  }
  EXPECT_NEAR(s / n, 0.0, 0.01);
  EXPECT_NEAR(s2 / n, 1.0, 0.02);
  Rng shifted(2);
  Rng plain(2);
  EXPECT_DOUBLE_EQ(shifted.normal(3.0, 2.0), 3.0 + 2.0 * plain.normal());
}

TEST(RngTest, BelowIsUnbiasedAndInRange) {
  Rng rng(3);
  std::vector<int> counts(7, 0);
  const int n = 70000;
  for (int i = 0; i < n; ++i) {
    const auto k = rng.below(7);
    ASSERT_LT(k, 7u);
    ++counts[k];
  }
  for (int c : counts) EXPECT_NEAR(c, n / 7, 400);
  EXPECT_EQ(rng.below(1), 0u);
}

TEST(RngTest, ShuffleIsAPermutationAndDeterministic) {
  std::vector<int> a(50), b(50);
  std::iota(a.begin(), a.end(), 0);
  std::iota(b.begin(), b.end(), 0);
  Rng r1(9), r2(9);
  r1.shuffle(a.begin(), a.end());
  r2.shuffle(b.begin(), b.end());
  EXPECT_EQ(a, b);
  std::vector<int> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> identity(50);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_EQ(sorted, identity);
  EXPECT_NE(a, identity);
}

TEST(RngTest, PinnedValuesDoNotDrift) {
  // Data sets are defined by these numbers: a change here changes every
  // seeded data set, so it must be deliberate.
  Rng rng(42);
  EXPECT_EQ(rng.below(1000), 406u);
  EXPECT_DOUBLE_EQ(rng.uniform(), 0.63903139385469743);
}

TEST(MixSeedTest, StreamsDiffer) {
  EXPECT_NE(mix_seed(0, 0), mix_seed(0, 1));
  EXPECT_NE(mix_seed(0, 0), mix_seed(1, 0));
  EXPECT_EQ(mix_seed(5, 7), mix_seed(5, 7));
}

}  // namespace
}  // namespace anode::datasets
