#ifndef ANODE_DATASETS_SYNTHETIC_H_
#define ANODE_DATASETS_SYNTHETIC_H_

// The report's toy data sets (Section 1.1 and 4.1-4.2): noisy sinusoids, nested
// spheres in any dimension, and the 1-D map g(1) = -1, g(-1) = 1 of Figure 2.
// All are deterministic for a seed and identical for T = float and T = double
// up to the final rounding (values are drawn in double, then converted).

#include <cstdint>
#include <numbers>
#include <vector>

#include "autodiff/tensor.h"

namespace anode::datasets {

/// A sampled curve y(x): x, noisy y and noise-free y, each [n, 1].
template <class T>
struct Curve {
  Tensor<T> x;
  Tensor<T> y;
  Tensor<T> y_clean;

  Index size() const { return x.shape()[0]; }
  /// The points (x_i, y_i) as one [n, 2] tensor: the trajectory a time-series
  /// model of report 4.1 is fit to, starting from (0, 0).
  Tensor<T> points() const;
};

/// Which function sinusoid() samples (report 4.1).
enum class SinusoidKind {
  kSin,         ///< y = sin x
  kSinPlusX,    ///< y = sin x + x
};

/// Options for sinusoid().
///
/// The default interval [0, 2 pi] is one full period. It starts at x = 0, where
/// both functions are 0, matching the report's initial condition (0, 0) for
/// the trajectory through the points (x, y(x)); it contains the points pi/2 and
/// 5 pi/6 the report uses to show why plain NODEs fail. The x are an evenly
/// spaced grid (the time axis of a time series) unless random_x is set.
struct SinusoidOptions {
  Index n = 100;                          ///< number of points (report: 100)
  double x_min = 0.0;                     ///< start of the x-interval
  double x_max = 2.0 * std::numbers::pi;  ///< end of the x-interval (inclusive)
  double noise_std = 0.1;                 ///< std of the Gaussian noise added to y
  double x_noise_std = 0.0;               ///< std of the Gaussian noise added to x
  bool random_x = false;                  ///< x uniform in [x_min, x_max), sorted
  std::uint64_t seed = 0;
};

/// n points of y = sin x or y = sin x + x with Gaussian noise (report 4.1).
/// Throws ValueError for n < 1, x_max <= x_min or a negative noise std.
template <class T>
Curve<T> sinusoid(SinusoidKind kind, const SinusoidOptions& options = {});

/// Inputs with regression targets and integer class labels.
template <class T>
struct LabelledSet {
  Tensor<T> features;       ///< [n, d]
  Tensor<T> targets;        ///< [n, 1], +1 or -1
  std::vector<int> labels;  ///< 1 where the target is +1, 0 where it is -1

  Index size() const { return features.shape()[0]; }
};

/// How nested_spheres() draws the radius of a point in [r_lo, r_hi].
enum class RadialSampling {
  /// Uniform in volume: r = (r_lo^d + u (r_hi^d - r_lo^d))^(1/d), u ~ U[0, 1).
  kUniformVolume,
  /// As Dupont et al. (2019) and the DiffEqFlux ANODE tutorial do:
  /// r = r_lo + (r_hi - r_lo) u^(1/d). Uniform in volume for the inner ball
  /// (r_lo = 0); in the shell it puts more points towards the outer radius.
  kDupont,
};

/// Options for nested_spheres(). Defaults: the report's Section 4.2 set (4000
/// points in the plane, ball of radius 1 against the annulus 2..3, half each).
struct NestedSpheresOptions {
  Index n = 4000;               ///< total number of points
  int dim = 2;                  ///< dimension d of the space
  double r1 = 1.0;              ///< radius of the inner ball (label +1)
  double r2 = 2.0;              ///< inner radius of the shell (label -1)
  double r3 = 3.0;              ///< outer radius of the shell
  double inner_fraction = 0.5;  ///< share of points in the ball (rounded to nearest)
  RadialSampling radial = RadialSampling::kUniformVolume;
  bool shuffle = true;          ///< mix the classes; else all inner points first
  std::uint64_t seed = 0;
};

/// Points of the ball |x| <= r1 (target +1, label 1) and of the shell
/// r2 <= |x| <= r3 (target -1, label 0) in R^d (report 4.2, Figure 3). The
/// direction is a normalized Gaussian vector, the radius as `radial` says.
/// Throws ValueError unless n >= 0, dim >= 1, 0 < r1 < r2 < r3 and
/// 0 <= inner_fraction <= 1.
template <class T>
LabelledSet<T> nested_spheres(const NestedSpheresOptions& options = {});

/// Options for crossing_1d().
struct Crossing1dOptions {
  Index n_per_side = 1;   ///< points near +1 and near -1 each
  double jitter = 0.0;    ///< std of Gaussian noise added to the inputs only
  std::uint64_t seed = 0;
};

/// The 1-D map of report Figure 2, g(1) = -1 and g(-1) = 1, which no NODE can
/// represent: 2 n_per_side inputs alternating +1, -1 (plus jitter), [n, 1], with
/// targets -1, +1 (exact, whatever the jitter) and labels 0, 1.
/// Throws ValueError for n_per_side < 1 or a negative jitter.
template <class T>
LabelledSet<T> crossing_1d(const Crossing1dOptions& options = {});

}  // namespace anode::datasets

#endif  // ANODE_DATASETS_SYNTHETIC_H_
