#include "datasets/synthetic.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "autodiff/errors.h"
#include "datasets/random.h"

namespace anode::datasets {
namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw ValueError(message);
}

}  // namespace

template <class T>
Tensor<T> Curve<T>::points() const {
  Index n = size();
  Tensor<T> p(Shape{n, 2});
  for (Index i = 0; i < n; ++i) {
    p(i, 0) = x[i];
    p(i, 1) = y[i];
  }
  return p;
}

template <class T>
Curve<T> sinusoid(SinusoidKind kind, const SinusoidOptions& o) {
  require(o.n >= 1, "sinusoid: n must be >= 1, got " + std::to_string(o.n));
  require(o.x_max > o.x_min, "sinusoid: empty interval [" + std::to_string(o.x_min) + ", " +
                                 std::to_string(o.x_max) + "]");
  require(o.noise_std >= 0 && o.x_noise_std >= 0,
          "sinusoid: noise std must be >= 0, got noise_std " + std::to_string(o.noise_std) +
              ", x_noise_std " + std::to_string(o.x_noise_std));
  Rng rng(o.seed);
  std::vector<double> xs(static_cast<std::size_t>(o.n));
  if (o.random_x) {
    for (double& x : xs) x = rng.uniform(o.x_min, o.x_max);
    std::sort(xs.begin(), xs.end());
  } else {
    double step = o.n > 1 ? (o.x_max - o.x_min) / static_cast<double>(o.n - 1) : 0.0;
    for (Index i = 0; i < o.n; ++i) xs[i] = o.x_min + step * static_cast<double>(i);
  }
  Curve<T> c{Tensor<T>(Shape{o.n, 1}), Tensor<T>(Shape{o.n, 1}), Tensor<T>(Shape{o.n, 1})};
  for (Index i = 0; i < o.n; ++i) {
    double x = xs[i];
    double y = std::sin(x) + (kind == SinusoidKind::kSinPlusX ? x : 0.0);
    // Draw y's noise first so that x_noise_std = 0 leaves y's noise unchanged.
    double y_noisy = y + o.noise_std * rng.normal();
    double x_noisy = o.x_noise_std > 0 ? x + o.x_noise_std * rng.normal() : x;
    c.x[i] = static_cast<T>(x_noisy);
    c.y[i] = static_cast<T>(y_noisy);
    c.y_clean[i] = static_cast<T>(y);
  }
  return c;
}

template <class T>
LabelledSet<T> nested_spheres(const NestedSpheresOptions& o) {
  require(o.n >= 0, "nested_spheres: n must be >= 0, got " + std::to_string(o.n));
  require(o.dim >= 1, "nested_spheres: dim must be >= 1, got " + std::to_string(o.dim));
  require(0 < o.r1 && o.r1 < o.r2 && o.r2 < o.r3,
          "nested_spheres: need 0 < r1 < r2 < r3, got r1 = " + std::to_string(o.r1) +
              ", r2 = " + std::to_string(o.r2) + ", r3 = " + std::to_string(o.r3));
  require(o.inner_fraction >= 0 && o.inner_fraction <= 1,
          "nested_spheres: inner_fraction must be in [0, 1], got " +
              std::to_string(o.inner_fraction));
  const Index n = o.n;
  const Index d = o.dim;
  const Index n_inner = std::llround(static_cast<double>(n) * o.inner_fraction);
  Rng rng(o.seed);
  LabelledSet<T> s{Tensor<T>(Shape{n, d}), Tensor<T>(Shape{n, 1}),
                   std::vector<int>(static_cast<std::size_t>(n))};
  std::vector<double> dir(static_cast<std::size_t>(d));
  const double inv_d = 1.0 / static_cast<double>(d);
  for (Index i = 0; i < n; ++i) {
    const bool inner = i < n_inner;
    const double lo = inner ? 0.0 : o.r2;
    const double hi = inner ? o.r1 : o.r3;
    double norm2;
    do {  // a zero vector has no direction; it has probability zero but costs nothing to skip
      norm2 = 0;
      for (double& v : dir) {
        v = rng.normal();
        norm2 += v * v;
      }
    } while (norm2 == 0.0);
    const double u = rng.uniform();
    double r;
    if (o.radial == RadialSampling::kUniformVolume) {
      const double lo_d = std::pow(lo, d), hi_d = std::pow(hi, d);
      r = std::pow(lo_d + u * (hi_d - lo_d), inv_d);
    } else {
      r = lo + (hi - lo) * std::pow(u, inv_d);
    }
    r = std::clamp(r, lo, hi);  // guard pow's last-bit rounding at the ends
    const double f = r / std::sqrt(norm2);
    for (Index j = 0; j < d; ++j) s.features(i, j) = static_cast<T>(dir[j] * f);
    s.targets[i] = inner ? T(1) : T(-1);
    s.labels[i] = inner ? 1 : 0;
  }
  if (o.shuffle && n > 1) {
    std::vector<Index> perm(static_cast<std::size_t>(n));
    for (Index i = 0; i < n; ++i) perm[i] = i;
    rng.shuffle(perm.begin(), perm.end());
    LabelledSet<T> t{Tensor<T>(Shape{n, d}), Tensor<T>(Shape{n, 1}),
                     std::vector<int>(static_cast<std::size_t>(n))};
    for (Index i = 0; i < n; ++i) {
      const Index src = perm[i];
      std::copy(s.features.data() + src * d, s.features.data() + (src + 1) * d,
                t.features.data() + i * d);
      t.targets[i] = s.targets[src];
      t.labels[i] = s.labels[src];
    }
    return t;
  }
  return s;
}

template <class T>
LabelledSet<T> crossing_1d(const Crossing1dOptions& o) {
  require(o.n_per_side >= 1,
          "crossing_1d: n_per_side must be >= 1, got " + std::to_string(o.n_per_side));
  require(o.jitter >= 0, "crossing_1d: jitter must be >= 0, got " + std::to_string(o.jitter));
  const Index n = 2 * o.n_per_side;
  Rng rng(o.seed);
  LabelledSet<T> s{Tensor<T>(Shape{n, 1}), Tensor<T>(Shape{n, 1}),
                   std::vector<int>(static_cast<std::size_t>(n))};
  for (Index i = 0; i < n; ++i) {
    const double x = i % 2 == 0 ? 1.0 : -1.0;
    const double noise = o.jitter > 0 ? o.jitter * rng.normal() : 0.0;
    s.features[i] = static_cast<T>(x + noise);
    s.targets[i] = static_cast<T>(-x);
    s.labels[i] = x < 0 ? 1 : 0;
  }
  return s;
}

#define ANODE_INSTANTIATE(T)                                                       \
  template struct Curve<T>;                                                        \
  template Curve<T> sinusoid<T>(SinusoidKind, const SinusoidOptions&);             \
  template LabelledSet<T> nested_spheres<T>(const NestedSpheresOptions&);          \
  template LabelledSet<T> crossing_1d<T>(const Crossing1dOptions&);
ANODE_INSTANTIATE(float)
ANODE_INSTANTIATE(double)
#undef ANODE_INSTANTIATE

}  // namespace anode::datasets
