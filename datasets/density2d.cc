#include "datasets/density2d.h"

#include <cmath>
#include <limits>
#include <numbers>
#include <string>

#include "autodiff/errors.h"
#include "datasets/random.h"

namespace anode::datasets {

Density2d parse_density2d(std::string_view name) {
  if (name == "two_moons") return Density2d::kTwoMoons;
  if (name == "eight_gaussians") return Density2d::kEightGaussians;
  if (name == "checkerboard") return Density2d::kCheckerboard;
  throw ValueError("unknown density '" + std::string(name) +
                   "' (expected two_moons, eight_gaussians or checkerboard)");
}

const char* density2d_name(Density2d d) {
  switch (d) {
    case Density2d::kTwoMoons: return "two_moons";
    case Density2d::kEightGaussians: return "eight_gaussians";
    case Density2d::kCheckerboard: return "checkerboard";
  }
  return "";
}

namespace {
constexpr double kGaussStd = 0.5 / std::numbers::sqrt2;
constexpr double kGaussRadius = 4.0 / std::numbers::sqrt2;
}  // namespace

template <class T>
Tensor<T> sample_density2d(Density2d d, Index n, std::uint64_t seed) {
  if (n < 1) throw ValueError("sample_density2d: n must be >= 1, got " + std::to_string(n));
  Rng rng(seed);
  Tensor<T> x(Shape{n, 2});
  for (Index i = 0; i < n; ++i) {
    double a = 0, b = 0;
    switch (d) {
      case Density2d::kTwoMoons: {
        // make_moons: upper half circle, or the lower one shifted by (1, 0.5).
        const double t = std::numbers::pi * rng.uniform();
        if (rng.below(2) == 0) {
          a = std::cos(t);
          b = std::sin(t);
        } else {
          a = 1 - std::cos(t);
          b = 0.5 - std::sin(t);
        }
        a = 2 * (a + 0.1 * rng.normal()) - 1;
        b = 2 * (b + 0.1 * rng.normal()) - 0.2;
        break;
      }
      case Density2d::kEightGaussians: {
        const double angle = static_cast<double>(rng.below(8)) * std::numbers::pi / 4;
        a = kGaussRadius * std::cos(angle) + kGaussStd * rng.normal();
        b = kGaussRadius * std::sin(angle) + kGaussStd * rng.normal();
        break;
      }
      case Density2d::kCheckerboard: {
        // Column u in [-2, 2); a row in [0, 1) or [-2, -1), moved up by one on
        // odd columns; then scaled by 2.
        const double u = rng.uniform(-2.0, 2.0);
        const double v = rng.uniform() - 2.0 * static_cast<double>(rng.below(2));
        const double shift = static_cast<double>(((static_cast<long>(std::floor(u)) % 2) + 2) % 2);
        a = 2 * u;
        b = 2 * (v + shift);
        break;
      }
    }
    x(i, 0) = static_cast<T>(a);
    x(i, 1) = static_cast<T>(b);
  }
  return x;
}

template <class T>
Tensor<T> log_density2d(Density2d d, const Tensor<T>& x) {
  if (x.shape().rank() != 2 || x.shape()[1] != 2) {
    throw ShapeError("log_density2d: points must be [n, 2], got " + x.shape().str());
  }
  const Index n = x.shape()[0];
  Tensor<T> out(Shape{n});
  for (Index i = 0; i < n; ++i) {
    const double a = x(i, 0), b = x(i, 1);
    double lp = 0;
    switch (d) {
      case Density2d::kTwoMoons:
        throw ValueError("log_density2d: two_moons has no closed-form density");
      case Density2d::kEightGaussians: {
        double s = 0;
        for (int k = 0; k < 8; ++k) {
          const double ang = k * std::numbers::pi / 4;
          const double da = a - kGaussRadius * std::cos(ang), db = b - kGaussRadius * std::sin(ang);
          s += std::exp(-(da * da + db * db) / (2 * kGaussStd * kGaussStd));
        }
        lp = std::log(s / (8 * 2 * std::numbers::pi * kGaussStd * kGaussStd));
        break;
      }
      case Density2d::kCheckerboard: {
        // Area of the support: 8 squares of side 2.
        const bool in = a >= -4 && a < 4 && b >= -4 && b < 4 &&
                        (static_cast<long>(std::floor(a / 2) + std::floor(b / 2)) % 2 + 2) % 2 == 0;
        lp = in ? -std::log(32.0) : -std::numeric_limits<double>::infinity();
        break;
      }
    }
    out[i] = static_cast<T>(lp);
  }
  return out;
}

template Tensor<float> sample_density2d(Density2d, Index, std::uint64_t);
template Tensor<double> sample_density2d(Density2d, Index, std::uint64_t);
template Tensor<float> log_density2d(Density2d, const Tensor<float>&);
template Tensor<double> log_density2d(Density2d, const Tensor<double>&);

}  // namespace anode::datasets
