#ifndef ANODE_AUTODIFF_GRAD_CHECK_H_
#define ANODE_AUTODIFF_GRAD_CHECK_H_

// Finite-difference verification of reverse-mode gradients, forward-mode
// tangents and second derivatives, in double.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "autodiff/functional.h"

namespace anode {

struct GradCheckOptions {
  /// Relative tolerance on each compared number.
  double rtol = 1e-6;
  /// Absolute tolerance floor: an error passes if <= max(rtol * |value|, atol).
  double atol = 1e-8;
  /// Seed of the random cotangent and directions.
  std::uint64_t seed = 1;
  /// Inputs with at most this many elements in total are also checked one
  /// element at a time (the full J^T v), not only along random directions.
  Index max_elementwise = 4096;
  /// Random directions for the dot-product identity.
  int directions = 3;
  /// f takes derivatives of its own inputs (Tape::gradients inside: a
  /// gradient of a gradient): evaluate it for the finite differences with
  /// differentiable leaves and recording on, not as constants.
  bool nested = false;
};

struct GradCheckResult {
  bool ok = true;
  /// Largest error / tolerance ratio seen (<= 1 when ok).
  double worst_ratio = 0;
  /// What failed first, with the input index, element and both values.
  std::string message;
};

/// Checks f's reverse-mode derivative at `inputs` two ways:
///  1. dot-product identity: for a random cotangent v and random directions
///     u, <v, J u> by central differences equals sum_i <J_i^T v, u_i>;
///  2. elementwise: each entry of J_i^T v equals the central difference of
///     <v, f> along that entry (when the inputs are small enough).
/// Step h = cbrt(eps) * max(1, |x|). f must be deterministic and smooth at x.
GradCheckResult grad_check(TapeFn<double> f, std::span<const Tensor<double>> inputs,
                           const GradCheckOptions& options = {});

/// Checks f's forward mode (jvp) at `inputs` along random tangents u:
///  1. J u equals the central difference of f along u, element by element;
///  2. the dot-product identity against reverse mode: <v, J u> = <J^T v, u>
///     for a random v, to rounding (relative 1e-10).
GradCheckResult jvp_check(TapeFn<double> f, std::span<const Tensor<double>> inputs,
                          const GradCheckOptions& options = {});

/// Checks f's second derivatives at `inputs` through the scalar
/// L = <w, f> + |f|^2 / 2 (w random), whose Hessian involves every rule of
/// f's ops (sum_k (w_k + f_k) f_k'' + J^T J), along random directions u:
///  1. the recorded gradient (Tape::gradients) equals reverse mode's;
///  2. hvp (reverse-over-reverse) equals the central difference of reverse-
///     mode gradients along u (tolerances: options.rtol and atol);
///  3. forward-over-reverse (the tangent of the recorded gradient) equals
///     it to rounding (relative 1e-9).
GradCheckResult hvp_check(TapeFn<double> f, std::span<const Tensor<double>> inputs,
                          const GradCheckOptions& options = {});

}  // namespace anode

#endif  // ANODE_AUTODIFF_GRAD_CHECK_H_
