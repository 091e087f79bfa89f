#ifndef ANODE_DATASETS_DENSITY2D_H_
#define ANODE_DATASETS_DENSITY2D_H_

// Two-dimensional densities for continuous normalizing flows, as in FFJORD's
// toy experiments (Grathwohl et al. 2019, lib/toy_data.py): two moons, eight
// Gaussians on a circle, and a checkerboard. Samples are deterministic for a
// seed and drawn in double.

#include <cstdint>
#include <string_view>

#include "autodiff/tensor.h"

namespace anode::datasets {

enum class Density2d {
  /// Two interleaved half circles (scikit-learn's make_moons, Gaussian noise
  /// 0.1), scaled by 2 and shifted by (-1, -0.2) to centre them.
  kTwoMoons,
  /// An equal mixture of 8 Gaussians (std 0.5 / sqrt 2) centred on the
  /// circle of radius 4 / sqrt 2 at angles k pi / 4.
  kEightGaussians,
  /// Uniform on the 8 black squares of side 2 of a 4 x 4 checkerboard on
  /// [-4, 4]^2.
  kCheckerboard,
};

/// "two_moons", "eight_gaussians", "checkerboard" (ValueError listing them otherwise).
Density2d parse_density2d(std::string_view name);
const char* density2d_name(Density2d d);

/// n samples [n, 2]. ValueError for n < 1.
template <class T>
Tensor<T> sample_density2d(Density2d d, Index n, std::uint64_t seed);

/// The exact density p(x) of the eight-Gaussians and checkerboard sets at x
/// [n, 2] (log p, [n]); two moons has no closed form (ValueError).
template <class T>
Tensor<T> log_density2d(Density2d d, const Tensor<T>& x);

}  // namespace anode::datasets

#endif  // ANODE_DATASETS_DENSITY2D_H_
