#include "datasets/density2d.h"

#include <gtest/gtest.h>

#include <cmath>

#include "autodiff/errors.h"
#include "tests/support/expect_error.h"

namespace anode::datasets {
namespace {

TEST(Density2d, DeterministicForASeedAndNamed) {
  for (Density2d d : {Density2d::kTwoMoons, Density2d::kEightGaussians, Density2d::kCheckerboard}) {
    EXPECT_EQ(parse_density2d(density2d_name(d)), d);
    const Tensor<double> a = sample_density2d<double>(d, 100, 3), b = sample_density2d<double>(d, 100, 3);
    const Tensor<double> c = sample_density2d<double>(d, 100, 4);
    ASSERT_EQ(a.shape(), (Shape{100, 2}));
    bool differs = false;
    for (Index i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i], b[i]);
      differs = differs || a[i] != c[i];
    }
    EXPECT_TRUE(differs);
  }
}

// The eight Gaussians: mean 0, E|x|^2 = R^2 + 2 sigma^2 = 8 + 0.25.
TEST(Density2d, EightGaussiansMoments) {
  const Tensor<double> x = sample_density2d<double>(Density2d::kEightGaussians, 20000, 1);
  double m0 = 0, m1 = 0, r2 = 0;
  for (Index i = 0; i < 20000; ++i) {
    m0 += x(i, 0);
    m1 += x(i, 1);
    r2 += x(i, 0) * x(i, 0) + x(i, 1) * x(i, 1);
  }
  EXPECT_NEAR(m0 / 20000, 0.0, 0.05);
  EXPECT_NEAR(m1 / 20000, 0.0, 0.05);
  EXPECT_NEAR(r2 / 20000, 8.25, 0.1);
  // The closed-form density integrates to about 1 on a grid.
  Tensor<double> grid(Shape{160 * 160, 2});
  for (Index i = 0; i < 160; ++i)
    for (Index j = 0; j < 160; ++j) {
      grid(i * 160 + j, 0) = -8 + 0.1 * (i + 0.5);
      grid(i * 160 + j, 1) = -8 + 0.1 * (j + 0.5);
    }
  const Tensor<double> lp = log_density2d(Density2d::kEightGaussians, grid);
  double mass = 0;
  for (double v : lp) mass += std::exp(v) * 0.01;
  EXPECT_NEAR(mass, 1.0, 1e-3);
}

// Checkerboard samples lie on the black squares: finite log density there.
TEST(Density2d, CheckerboardSamplesAreOnTheSupport) {
  const Tensor<double> x = sample_density2d<double>(Density2d::kCheckerboard, 5000, 2);
  const Tensor<double> lp = log_density2d(Density2d::kCheckerboard, x);
  for (double v : lp) EXPECT_DOUBLE_EQ(v, -std::log(32.0));
  Tensor<double> white(Shape{1, 2});
  white(0, 0) = 1;  // square (0, -1): a white one
  white(0, 1) = -1;
  EXPECT_TRUE(std::isinf(log_density2d(Density2d::kCheckerboard, white)[0]));
}

// Two moons: the points lie near the two half circles (noise 0.1, scaled 2).
TEST(Density2d, TwoMoonsNearTheArcs) {
  const Tensor<double> x = sample_density2d<double>(Density2d::kTwoMoons, 2000, 5);
  for (Index i = 0; i < 2000; ++i) {
    const double a = (x(i, 0) + 1) / 2, b = (x(i, 1) + 0.2) / 2;
    const double d_upper = std::abs(std::hypot(a, b) - 1), d_lower = std::abs(std::hypot(a - 1, b - 0.5) - 1);
    EXPECT_LT(std::min(d_upper, d_lower), 0.6);
  }
}

TEST(Density2d, BadInput) {
  testing::expect_error<ValueError>([] { parse_density2d("spiral"); }, {"spiral", "two_moons"});
  testing::expect_error<ValueError>([] { sample_density2d<float>(Density2d::kTwoMoons, 0, 1); }, {"n must be >= 1"});
  testing::expect_error<ValueError>([] { log_density2d(Density2d::kTwoMoons, Tensor<double>(Shape{1, 2})); },
                                    {"two_moons"});
  testing::expect_error<ShapeError>([] { log_density2d(Density2d::kCheckerboard, Tensor<double>(Shape{3})); },
                                    {"[n, 2]"});
}

}  // namespace
}  // namespace anode::datasets
