#include "datasets/synthetic.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "autodiff/errors.h"

namespace anode::datasets {
namespace {

double norm_of_row(const Tensor<double>& x, Index i) {
  double s = 0;
  for (Index j = 0; j < x.shape()[1]; ++j) s += x(i, j) * x(i, j);
  return std::sqrt(s);
}

// ---- Sinusoids -------------------------------------------------------------------

TEST(SinusoidTest, DefaultsFollowTheReport) {
  const Curve<double> c = sinusoid<double>(SinusoidKind::kSin);
  EXPECT_EQ(c.x.shape(), (Shape{100, 1}));
  EXPECT_EQ(c.y.shape(), (Shape{100, 1}));
  EXPECT_EQ(c.y_clean.shape(), (Shape{100, 1}));
  EXPECT_EQ(c.size(), 100);
  EXPECT_DOUBLE_EQ(c.x[0], 0.0);
  EXPECT_DOUBLE_EQ(c.x[99], 2 * std::numbers::pi);
  for (Index i = 1; i < 100; ++i) EXPECT_GT(c.x[i], c.x[i - 1]);
  double sq = 0;
  for (Index i = 0; i < 100; ++i) {
    EXPECT_DOUBLE_EQ(c.y_clean[i], std::sin(c.x[i]));
    sq += (c.y[i] - c.y_clean[i]) * (c.y[i] - c.y_clean[i]);
  }
  const double noise_std = std::sqrt(sq / 100);
  EXPECT_GT(noise_std, 0.07);
  EXPECT_LT(noise_std, 0.13);
}

TEST(SinusoidTest, SinPlusX) {
  const Curve<double> c = sinusoid<double>(SinusoidKind::kSinPlusX, {.noise_std = 0});
  for (Index i = 0; i < c.size(); ++i) {
    EXPECT_DOUBLE_EQ(c.y_clean[i], std::sin(c.x[i]) + c.x[i]);
    EXPECT_EQ(c.y[i], c.y_clean[i]);
  }
}

TEST(SinusoidTest, DeterministicForASeed) {
  const SinusoidOptions o{.seed = 11};
  const Curve<double> a = sinusoid<double>(SinusoidKind::kSin, o);
  const Curve<double> b = sinusoid<double>(SinusoidKind::kSin, o);
  const Curve<double> c = sinusoid<double>(SinusoidKind::kSin, {.seed = 12});
  bool differs = false;
  for (Index i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a.y[i], b.y[i]);
    differs |= a.y[i] != c.y[i];
  }
  EXPECT_TRUE(differs);
}

TEST(SinusoidTest, FloatMatchesDouble) {
  const Curve<float> f = sinusoid<float>(SinusoidKind::kSinPlusX, {.seed = 3});
  const Curve<double> d = sinusoid<double>(SinusoidKind::kSinPlusX, {.seed = 3});
  for (Index i = 0; i < d.size(); ++i) {
    EXPECT_EQ(f.x[i], static_cast<float>(d.x[i]));
    EXPECT_EQ(f.y[i], static_cast<float>(d.y[i]));
  }
}

TEST(SinusoidTest, RandomXAndXNoiseOptions) {
  const Curve<double> c = sinusoid<double>(
      SinusoidKind::kSin, {.n = 50, .x_min = -1, .x_max = 3, .noise_std = 0, .random_x = true});
  EXPECT_EQ(c.size(), 50);
  for (Index i = 0; i < 50; ++i) {
    EXPECT_GE(c.x[i], -1.0);
    EXPECT_LT(c.x[i], 3.0);
    if (i > 0) {
      EXPECT_GE(c.x[i], c.x[i - 1]);
    }
  }
  // x noise leaves y's noise as it was.
  const Curve<double> a = sinusoid<double>(SinusoidKind::kSin, {.seed = 4});
  const Curve<double> b = sinusoid<double>(SinusoidKind::kSin, {.x_noise_std = 0.01, .seed = 4});
  bool x_moved = false;
  for (Index i = 0; i < a.size(); ++i) {
    x_moved |= a.x[i] != b.x[i];
    EXPECT_NEAR(a.x[i], b.x[i], 0.06);
  }
  EXPECT_TRUE(x_moved);
}

TEST(SinusoidTest, SinglePointAndPoints) {
  const Curve<float> c = sinusoid<float>(SinusoidKind::kSin, {.n = 1, .noise_std = 0});
  EXPECT_EQ(c.size(), 1);
  EXPECT_EQ(c.x[0], 0.0f);
  const Curve<float> d = sinusoid<float>(SinusoidKind::kSinPlusX, {.n = 5});
  const Tensor<float> p = d.points();
  EXPECT_EQ(p.shape(), (Shape{5, 2}));
  for (Index i = 0; i < 5; ++i) {
    EXPECT_EQ(p(i, 0), d.x[i]);
    EXPECT_EQ(p(i, 1), d.y[i]);
  }
}

TEST(SinusoidTest, RejectsBadOptions) {
  EXPECT_THROW(sinusoid<float>(SinusoidKind::kSin, {.n = 0}), ValueError);
  EXPECT_THROW(sinusoid<float>(SinusoidKind::kSin, {.x_min = 1, .x_max = 1}), ValueError);
  EXPECT_THROW(sinusoid<float>(SinusoidKind::kSin, {.noise_std = -0.1}), ValueError);
  EXPECT_THROW(sinusoid<float>(SinusoidKind::kSin, {.x_noise_std = -1}), ValueError);
}

// ---- Nested spheres --------------------------------------------------------------

TEST(NestedSpheresTest, DefaultsFollowTheReport) {
  const LabelledSet<double> s = nested_spheres<double>();
  EXPECT_EQ(s.features.shape(), (Shape{4000, 2}));
  EXPECT_EQ(s.targets.shape(), (Shape{4000, 1}));
  ASSERT_EQ(s.labels.size(), 4000u);
  Index inner = 0;
  for (Index i = 0; i < 4000; ++i) {
    const double r = norm_of_row(s.features, i);
    if (s.targets[i] == 1.0) {
      ++inner;
      EXPECT_EQ(s.labels[i], 1);
      EXPECT_LE(r, 1.0 + 1e-12);
    } else {
      EXPECT_EQ(s.targets[i], -1.0);
      EXPECT_EQ(s.labels[i], 0);
      EXPECT_GE(r, 2.0 - 1e-12);
      EXPECT_LE(r, 3.0 + 1e-12);
    }
  }
  EXPECT_EQ(inner, 2000);
  // Shuffled: both classes among the first 20 points.
  int first_inner = 0;
  for (Index i = 0; i < 20; ++i) first_inner += s.labels[i];
  EXPECT_GT(first_inner, 0);
  EXPECT_LT(first_inner, 20);
}

TEST(NestedSpheresTest, UniformInVolume) {
  const int d = 3;
  const LabelledSet<double> s = nested_spheres<double>({.n = 20000, .dim = d, .seed = 1});
  // Half the volume of the ball lies within r1 / 2^(1/d); half the shell's
  // within ((r2^d + r3^d) / 2)^(1/d).
  const double ball_half = std::pow(0.5, 1.0 / d);
  const double shell_half = std::pow((8.0 + 27.0) / 2, 1.0 / d);
  Index in_ball = 0, ball_low = 0, in_shell = 0, shell_low = 0;
  for (Index i = 0; i < s.size(); ++i) {
    const double r = norm_of_row(s.features, i);
    if (s.labels[i] == 1) {
      ++in_ball;
      ball_low += r < ball_half;
    } else {
      ++in_shell;
      shell_low += r < shell_half;
    }
  }
  EXPECT_NEAR(static_cast<double>(ball_low) / in_ball, 0.5, 0.02);
  EXPECT_NEAR(static_cast<double>(shell_low) / in_shell, 0.5, 0.02);
}

TEST(NestedSpheresTest, DupontSampling) {
  const LabelledSet<double> s =
      nested_spheres<double>({.n = 20000, .radial = RadialSampling::kDupont, .seed = 2});
  // r = 2 + u^(1/2): P(r < 2.5) = P(u < 1/4) = 1/4 (uniform volume: 0.45).
  Index shell = 0, low = 0;
  for (Index i = 0; i < s.size(); ++i) {
    if (s.labels[i] == 0) {
      ++shell;
      low += norm_of_row(s.features, i) < 2.5;
    }
  }
  EXPECT_NEAR(static_cast<double>(low) / shell, 0.25, 0.02);
}

TEST(NestedSpheresTest, DirectionsAreIsotropic) {
  const LabelledSet<double> s = nested_spheres<double>({.n = 20000, .dim = 4, .seed = 3});
  for (Index j = 0; j < 4; ++j) {
    double mean = 0;
    for (Index i = 0; i < s.size(); ++i) mean += s.features(i, j);
    EXPECT_NEAR(mean / s.size(), 0.0, 0.03);
  }
}

TEST(NestedSpheresTest, OptionsAndDeterminism) {
  const NestedSpheresOptions o{.n = 101, .dim = 5, .r1 = 0.5, .r2 = 1, .r3 = 1.5,
                               .inner_fraction = 0.25, .shuffle = false, .seed = 9};
  const LabelledSet<float> a = nested_spheres<float>(o);
  const LabelledSet<float> b = nested_spheres<float>(o);
  const LabelledSet<double> d = nested_spheres<double>(o);
  EXPECT_EQ(a.features.shape(), (Shape{101, 5}));
  const Index n_inner = 25;  // round(101 / 4)
  for (Index i = 0; i < 101; ++i) {
    EXPECT_EQ(a.labels[i], i < n_inner ? 1 : 0);
    for (Index j = 0; j < 5; ++j) {
      EXPECT_EQ(a.features(i, j), b.features(i, j));
      EXPECT_EQ(a.features(i, j), static_cast<float>(d.features(i, j)));
    }
  }
  const LabelledSet<float> c = nested_spheres<float>({.n = 101, .dim = 5, .seed = 10});
  EXPECT_NE(a.features[0], c.features[0]);
  // Shuffling permutes the same points.
  const LabelledSet<double> shuffled = nested_spheres<double>({.n = 10, .shuffle = true, .seed = 4});
  const LabelledSet<double> ordered = nested_spheres<double>({.n = 10, .shuffle = false, .seed = 4});
  for (Index i = 0; i < 10; ++i) {
    bool found = false;
    for (Index k = 0; k < 10; ++k) {
      found |= shuffled.features(i, 0) == ordered.features(k, 0) &&
               shuffled.features(i, 1) == ordered.features(k, 1) &&
               shuffled.labels[i] == ordered.labels[k];
    }
    EXPECT_TRUE(found) << "row " << i;
  }
}

TEST(NestedSpheresTest, OneDimensionAndEdgeCounts) {
  const LabelledSet<double> s = nested_spheres<double>({.n = 200, .dim = 1});
  for (Index i = 0; i < 200; ++i) {
    const double r = std::abs(s.features[i]);
    if (s.labels[i] == 1) {
      EXPECT_LE(r, 1.0);
    } else {
      EXPECT_GE(r, 2.0);
    }
  }
  EXPECT_EQ(nested_spheres<float>({.n = 0}).size(), 0);
  const LabelledSet<float> all_outer = nested_spheres<float>({.n = 7, .inner_fraction = 0});
  for (int l : all_outer.labels) EXPECT_EQ(l, 0);
}

TEST(NestedSpheresTest, RejectsBadOptions) {
  EXPECT_THROW(nested_spheres<float>({.n = -1}), ValueError);
  EXPECT_THROW(nested_spheres<float>({.dim = 0}), ValueError);
  EXPECT_THROW(nested_spheres<float>({.r1 = 2, .r2 = 2}), ValueError);
  EXPECT_THROW(nested_spheres<float>({.r1 = 0}), ValueError);
  EXPECT_THROW(nested_spheres<float>({.r2 = 3, .r3 = 3}), ValueError);
  EXPECT_THROW(nested_spheres<float>({.inner_fraction = 1.5}), ValueError);
  try {
    nested_spheres<float>({.r1 = 2.5});
    FAIL() << "no exception";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("r1 = 2.5"), std::string::npos) << e.what();
  }
}

// ---- The 1-D crossing map --------------------------------------------------------

TEST(Crossing1dTest, TheTwoPointsOfFigure2) {
  const LabelledSet<float> s = crossing_1d<float>();
  EXPECT_EQ(s.features.shape(), (Shape{2, 1}));
  EXPECT_EQ(s.targets.shape(), (Shape{2, 1}));
  EXPECT_EQ(s.features[0], 1.0f);
  EXPECT_EQ(s.targets[0], -1.0f);
  EXPECT_EQ(s.labels[0], 0);
  EXPECT_EQ(s.features[1], -1.0f);
  EXPECT_EQ(s.targets[1], 1.0f);
  EXPECT_EQ(s.labels[1], 1);
}

TEST(Crossing1dTest, JitterMovesInputsOnly) {
  const LabelledSet<double> s = crossing_1d<double>({.n_per_side = 50, .jitter = 0.05, .seed = 1});
  EXPECT_EQ(s.size(), 100);
  bool moved = false;
  for (Index i = 0; i < 100; ++i) {
    const double center = i % 2 == 0 ? 1.0 : -1.0;
    EXPECT_NEAR(s.features[i], center, 0.3);
    moved |= s.features[i] != center;
    EXPECT_EQ(s.targets[i], -center);
  }
  EXPECT_TRUE(moved);
  const LabelledSet<double> t = crossing_1d<double>({.n_per_side = 50, .jitter = 0.05, .seed = 1});
  for (Index i = 0; i < 100; ++i) EXPECT_EQ(s.features[i], t.features[i]);
}

TEST(Crossing1dTest, RejectsBadOptions) {
  EXPECT_THROW(crossing_1d<float>({.n_per_side = 0}), ValueError);
  EXPECT_THROW(crossing_1d<float>({.jitter = -1}), ValueError);
}

}  // namespace
}  // namespace anode::datasets
