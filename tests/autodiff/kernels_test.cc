// Every kernel against a scalar std:: reference (double or long double), at
// sizes around the vector width, unaligned pointers, broadcast periods,
// special values, dense ULP sweeps of the transcendentals, and bit-equality
// across thread counts.
#include "autodiff/kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "autodiff/thread_pool.h"

namespace anode {
namespace {

namespace kn = kernels;

// Reference precision: double for float kernels, long double for double.
template <class T>
using Ref = std::conditional_t<std::is_same_v<T, float>, double, long double>;

constexpr Index kSizes[] = {0, 1, 15, 16, 17, 31, 33, 100, 1000, 100003};
// Element offsets from a 64-byte boundary: aligned, and two misalignments.
constexpr Index kOffsets[] = {0, 1, 3};

// Exactly n elements, `offset` elements past a 64-byte boundary, from their
// own heap block: ASan flags any access past the end.
template <class T>
class Buf {
 public:
  explicit Buf(Index n, Index offset = 0)
      : n_(n), offset_(offset), bytes_(std::max<std::size_t>(1, (n + offset) * sizeof(T))) {
    base_ = static_cast<T*>(::operator new(bytes_, std::align_val_t(64)));
    std::fill(base_, base_ + n + offset, T(0));
  }
  Buf(const Buf& o) : Buf(o.n_, o.offset_) { std::copy(o.data(), o.data() + n_, data()); }
  Buf& operator=(const Buf&) = delete;
  ~Buf() { ::operator delete(base_, std::align_val_t(64)); }

  T* data() { return base_ + offset_; }
  const T* data() const { return base_ + offset_; }
  T& operator[](Index i) { return data()[i]; }
  T operator[](Index i) const { return data()[i]; }
  Index size() const { return n_; }

 private:
  Index n_, offset_;
  std::size_t bytes_;
  T* base_;
};

template <class T>
Buf<T> random_buf(Index n, Index offset, double lo, double hi, unsigned seed) {
  Buf<T> b(n, offset);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  for (Index i = 0; i < n; ++i) b[i] = static_cast<T>(d(rng));
  return b;
}

template <class T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// Distance of `got` from the exact value `ref`, in units in the last place
// of T at ref (subnormal ulp below the normal range). Exact agreement on
// NaN, infinities and results that overflow T.
template <class T>
double ulps(T got, Ref<T> ref) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  if (std::isnan(ref)) return std::isnan(got) ? 0 : kInf;
  const T rounded = static_cast<T>(ref);
  if (std::isinf(rounded)) return got == rounded ? 0 : kInf;
  if (!std::isfinite(got)) return kInf;
  using R = Ref<T>;
  const R a = std::max<R>(std::fabs(ref), std::numeric_limits<T>::min());
  const R ulp = std::ldexp(R(1), std::ilogb(a) - (std::numeric_limits<T>::digits - 1));
  return static_cast<double>(std::fabs(static_cast<R>(got) - ref) / ulp);
}

// Relative tolerance of a few roundings on a sum of magnitude `mag`.
template <class T>
bool close(T got, Ref<T> ref, Ref<T> mag, double k) {
  if (std::isnan(ref)) return std::isnan(got);
  return std::fabs(static_cast<Ref<T>>(got) - ref) <=
         k * std::numeric_limits<T>::epsilon() * mag + std::numeric_limits<T>::denorm_min();
}

// ---- Reference functions -------------------------------------------------------

template <class R>
R ref_sigmoid(R x) {
  return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x));
}
template <class R>
R ref_softplus(R x) {
  if (std::isnan(x)) return x;
  return std::max(x, R(0)) + std::log1p(std::exp(-std::fabs(x)));
}

enum class Fn { kTanh, kSigmoid, kSoftplus, kExp, kLog };

const char* name(Fn f) {
  switch (f) {
    case Fn::kTanh: return "tanh";
    case Fn::kSigmoid: return "sigmoid";
    case Fn::kSoftplus: return "softplus";
    case Fn::kExp: return "exp";
    case Fn::kLog: return "log";
  }
  return "";
}

template <class T>
void apply(Fn f, const T* x, T* y, Index n) {
  switch (f) {
    case Fn::kTanh: kn::tanh(x, y, n); break;
    case Fn::kSigmoid: kn::sigmoid(x, y, n); break;
    case Fn::kSoftplus: kn::softplus(x, y, n); break;
    case Fn::kExp: kn::exp(x, y, n); break;
    case Fn::kLog: kn::log(x, y, n); break;
  }
}

template <class T>
Ref<T> reference(Fn f, T xv) {
  const Ref<T> x = xv;
  switch (f) {
    case Fn::kTanh: return std::tanh(x);
    case Fn::kSigmoid: return ref_sigmoid(x);
    case Fn::kSoftplus: return ref_softplus(x);
    case Fn::kExp: return std::exp(x);
    case Fn::kLog: return std::log(x);
  }
  return 0;
}

// Max ULP error accepted for each transcendental (measured maxima are
// printed by DenseSweepUlp and sit below these).
// Max ULP error accepted for each transcendental, float and double alike.
// Measured maxima (printed by DenseSweepUlp): tanh 1.28, sigmoid 2.22,
// softplus 1.54, exp 0.98, log 0.76.
double ulp_bound(Fn f) {
  switch (f) {
    case Fn::kTanh: return 2;
    case Fn::kSigmoid: return 3;
    case Fn::kSoftplus: return 2;
    case Fn::kExp: return 1.5;
    case Fn::kLog: return 1.5;
  }
  return 0;
}

constexpr Fn kFns[] = {Fn::kTanh, Fn::kSigmoid, Fn::kSoftplus, Fn::kExp, Fn::kLog};

// Input range exercising each function's interesting region and both tails.
std::pair<double, double> domain(Fn f) {
  switch (f) {
    case Fn::kTanh: return {-12, 12};
    case Fn::kSigmoid: return {-40, 40};
    case Fn::kSoftplus: return {-40, 40};
    case Fn::kExp: return {-80, 80};
    case Fn::kLog: return {1e-6, 1e6};
  }
  return {0, 1};
}

template <class T>
class KernelsTest : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(KernelsTest, Types);

// ---- Unary maps ------------------------------------------------------------------

TYPED_TEST(KernelsTest, TranscendentalsMatchStdAtEverySizeAndOffset) {
  using T = TypeParam;
  for (Fn f : kFns) {
    auto [lo, hi] = domain(f);
    for (Index n : kSizes) {
      for (Index off : kOffsets) {
        SCOPED_TRACE(std::string(name(f)) + " n=" + std::to_string(n) + " offset=" + std::to_string(off));
        Buf<T> x = random_buf<T>(n, off, lo, hi, unsigned(n + 7 * off));
        Buf<T> y(n, (off + 1) % 4);
        apply(f, x.data(), y.data(), n);
        double worst = 0;
        for (Index i = 0; i < n; ++i) worst = std::max(worst, ulps(y[i], reference(f, x[i])));
        EXPECT_LE(worst, ulp_bound(f));
        // In place (y == x) gives the same bits.
        Buf<T> z = x;
        apply(f, z.data(), z.data(), n);
        for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(z[i], y[i])) << i;
      }
    }
  }
}

TYPED_TEST(KernelsTest, ExactUnaryMapsMatchScalar) {
  using T = TypeParam;
  for (Index n : kSizes) {
    for (Index off : kOffsets) {
      SCOPED_TRACE("n=" + std::to_string(n) + " offset=" + std::to_string(off));
      Buf<T> x = random_buf<T>(n, off, -3, 3, unsigned(n + off));
      Buf<T> y(n, 2);
      const T c = T(-1.75);
      kn::relu(x.data(), y.data(), n);
      for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(y[i], x[i] > 0 ? x[i] : T(0))) << i;
      kn::square(x.data(), y.data(), n);
      for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(y[i], T(x[i] * x[i]))) << i;
      kn::scale(x.data(), c, y.data(), n);
      for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(y[i], T(c * x[i]))) << i;
      Buf<T> z = x;  // in place, as ops.cc does for scale(tmp, -1, tmp)
      kn::scale(z.data(), c, z.data(), n);
      for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(z[i], y[i])) << i;
      for (Index i = 0; i < n; ++i) z[i] = std::fabs(x[i]);
      kn::sqrt(z.data(), y.data(), n);
      for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(y[i], std::sqrt(z[i]))) << i;
    }
  }
}

// Special inputs, 37 of them so that they straddle a vector body and a tail.
template <class T>
std::vector<T> special_inputs() {
  using L = std::numeric_limits<T>;
  std::vector<T> v = {T(0), -T(0), L::infinity(), -L::infinity(), L::quiet_NaN(), -L::quiet_NaN(),
                      L::max(), -L::max(), L::min(), -L::min(), L::denorm_min(), -L::denorm_min(),
                      T(1), T(-1), T(1e-30), T(-1e-30), T(0.625), T(-0.625), T(9.1), T(-9.1),
                      T(19.1), T(-19.1), T(88.7), T(88.73), T(-87.3), T(-103.9), T(-104.5),
                      T(709.7), T(709.8), T(-745.1), T(-745.2), T(1e30), T(-1e30), T(50), T(-50),
                      T(1e-5), T(0.5)};
  return v;
}

TYPED_TEST(KernelsTest, SpecialValues) {
  using T = TypeParam;
  using L = std::numeric_limits<T>;
  const std::vector<T> in = special_inputs<T>();
  const Index n = static_cast<Index>(in.size());
  for (Index off : kOffsets) {
    Buf<T> x(n, off), y(n, off);
    std::copy(in.begin(), in.end(), x.data());
    for (Fn f : kFns) {
      apply(f, x.data(), y.data(), n);
      for (Index i = 0; i < n; ++i) {
        SCOPED_TRACE(std::string(name(f)) + "(" + std::to_string(x[i]) + ")");
        EXPECT_LE(ulps(y[i], reference(f, x[i])), ulp_bound(f)) << y[i];
      }
    }
    // Signs, exact limits and NaN propagation spelled out.
    kn::tanh(x.data(), y.data(), n);
    EXPECT_TRUE(same_bits(y[1], -T(0)));  // tanh(-0) = -0
    EXPECT_EQ(y[2], T(1));
    EXPECT_EQ(y[3], T(-1));
    EXPECT_TRUE(std::isnan(y[4]) && std::isnan(y[5]));
    EXPECT_EQ(y[6], T(1));
    EXPECT_EQ(y[10], L::denorm_min());
    kn::exp(x.data(), y.data(), n);
    EXPECT_EQ(y[2], L::infinity());
    EXPECT_TRUE(same_bits(y[3], T(0)));
    EXPECT_TRUE(std::isnan(y[4]));
    EXPECT_EQ(y[6], L::infinity());
    EXPECT_EQ(y[7], T(0));
    EXPECT_EQ(y[0], T(1));
    kn::log(x.data(), y.data(), n);
    EXPECT_EQ(y[0], -L::infinity());
    EXPECT_EQ(y[1], -L::infinity());
    EXPECT_EQ(y[2], L::infinity());
    EXPECT_TRUE(std::isnan(y[3]) && std::isnan(y[4]) && std::isnan(y[7]) && std::isnan(y[11]));
    EXPECT_EQ(y[12], T(0));
    kn::sigmoid(x.data(), y.data(), n);
    EXPECT_EQ(y[0], T(0.5));
    EXPECT_EQ(y[2], T(1));
    EXPECT_TRUE(same_bits(y[3], T(0)));
    EXPECT_TRUE(std::isnan(y[4]));
    kn::softplus(x.data(), y.data(), n);
    EXPECT_EQ(y[2], L::infinity());
    EXPECT_TRUE(same_bits(y[3], T(0)));
    EXPECT_TRUE(std::isnan(y[4]));
    EXPECT_EQ(y[6], L::max());    // softplus(x) = x for large x
    EXPECT_EQ(y[31], T(1e30));
    EXPECT_GT(y[34], T(0));  // ~e^x far left, no overflow
    kn::relu(x.data(), y.data(), n);
    EXPECT_TRUE(same_bits(y[1], T(0)));
    EXPECT_TRUE(std::isnan(y[4]));  // NaN propagates
    EXPECT_EQ(y[2], L::infinity());
    EXPECT_EQ(y[3], T(0));
  }
}

// Inputs spread evenly over the bit patterns of [lo, hi] (lo, hi > 0),
// i.e. log-uniformly; with `both_signs`, negated copies too.
template <class T>
std::vector<T> bit_sweep(T lo, T hi, Index count, bool both_signs) {
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  U a, b;
  std::memcpy(&a, &lo, sizeof(T));
  std::memcpy(&b, &hi, sizeof(T));
  const U step = std::max<U>(1, (b - a) / static_cast<U>(count));
  std::vector<T> v;
  for (U u = a; u <= b && u >= a; u += step) {
    T t;
    std::memcpy(&t, &u, sizeof(T));
    v.push_back(t);
    if (both_signs) v.push_back(-t);
  }
  return v;
}

TYPED_TEST(KernelsTest, DenseSweepUlp) {
  using T = TypeParam;
  using L = std::numeric_limits<T>;
  constexpr bool kFloat = std::is_same_v<T, float>;
  const Index count = kFloat ? 300000 : 100000;
  for (Fn f : kFns) {
    std::vector<T> x;
    switch (f) {
      case Fn::kTanh: x = bit_sweep<T>(L::denorm_min(), T(25), count, true); break;
      case Fn::kSigmoid:
      case Fn::kSoftplus: x = bit_sweep<T>(L::denorm_min(), kFloat ? T(110) : T(750), count, true); break;
      case Fn::kExp: {
        x = bit_sweep<T>(L::denorm_min(), kFloat ? T(88.72) : T(709.78), count, false);
        std::vector<T> neg = bit_sweep<T>(L::denorm_min(), kFloat ? T(103.9) : T(745.1), count, false);
        for (T v : neg) x.push_back(-v);
        break;
      }
      case Fn::kLog: x = bit_sweep<T>(L::denorm_min(), L::max(), 2 * count, false); break;
    }
    // Plus a dense linear sweep of the core range.
    const T span = f == Fn::kLog ? T(4) : T(8);
    for (Index i = 0; i < count; ++i) {
      const T v = span * (T(i) / T(count)) + (f == Fn::kLog ? T(1e-3) : -span / 2);
      x.push_back(v);
    }
    const Index n = static_cast<Index>(x.size());
    std::vector<T> y(n);
    apply(f, x.data(), y.data(), n);
    double worst = 0;
    T arg = 0;
    for (Index i = 0; i < n; ++i) {
      const double e = ulps(y[i], reference(f, x[i]));
      if (e > worst) worst = e, arg = x[i];
    }
    std::printf("[ sweep    ] %-6s %-8s max error %.3f ulp at x = %.9g (%lld points)\n",
                kFloat ? "float" : "double", name(f), worst, double(arg), static_cast<long long>(n));
    EXPECT_LE(worst, ulp_bound(f)) << name(f) << " at " << arg;
  }
}

// ---- Unary backward ----------------------------------------------------------------

TYPED_TEST(KernelsTest, BackwardKernelsAccumulate) {
  using T = TypeParam;
  using R = Ref<T>;
  struct Case {
    const char* name;
    void (*kernel)(const T*, const T*, T*, Index, bool);
    R (*deriv)(R);  // f'(.) from the saved input or output
    double lo, hi;
  };
  const Case cases[] = {
      {"tanh", &kn::tanh_backward<T>, [](R y) { return 1 - y * y; }, -1, 1},
      {"sigmoid", &kn::sigmoid_backward<T>, [](R y) { return y * (1 - y); }, 0, 1},
      {"relu", &kn::relu_backward<T>, [](R x) { return x > 0 ? R(1) : R(0); }, -2, 2},
      {"softplus", &kn::softplus_backward<T>, [](R x) { return ref_sigmoid(x); }, -30, 30},
      {"exp", &kn::exp_backward<T>, [](R y) { return y; }, 0, 5},
      {"log", &kn::log_backward<T>, [](R x) { return 1 / x; }, 0.1, 5},
      {"sqrt", &kn::sqrt_backward<T>, [](R y) { return R(0.5) / y; }, 0.1, 5},
      {"square", &kn::square_backward<T>, [](R x) { return 2 * x; }, -3, 3},
      {"sin", &kn::sin_backward<T>, [](R x) { return std::cos(x); }, -5, 5},
      {"cos", &kn::cos_backward<T>, [](R x) { return -std::sin(x); }, -5, 5},
      {"abs", &kn::abs_backward<T>, [](R x) { return x > 0 ? R(1) : (x < 0 ? R(-1) : R(0)); }, -2, 2},
      {"log1p", &kn::log1p_backward<T>, [](R x) { return 1 / (1 + x); }, -0.5, 5},
  };
  for (const Case& c : cases) {
    for (Index n : kSizes) {
      for (Index off : kOffsets) {
        SCOPED_TRACE(std::string(c.name) + " n=" + std::to_string(n) + " offset=" + std::to_string(off));
        Buf<T> u = random_buf<T>(n, off, c.lo, c.hi, 1);
        Buf<T> gy = random_buf<T>(n, (off + 1) % 4, -2, 2, 2);
        Buf<T> gx = random_buf<T>(n, (off + 2) % 4, -2, 2, 3);  // nonzero: must accumulate
        const Buf<T> gx0 = gx;
        c.kernel(u.data(), gy.data(), gx.data(), n, false);
        for (Index i = 0; i < n; ++i) {
          const R term = R(gy[i]) * c.deriv(R(u[i]));
          ASSERT_TRUE(close(gx[i], R(gx0[i]) + term, std::fabs(R(gx0[i])) + std::fabs(term), 6)) << i;
        }
        // overwrite: the bits of accumulating into zeros, the old contents
        // (NaN here) never read.
        Buf<T> zeros(n, (off + 2) % 4), fresh(n, (off + 2) % 4);
        for (Index i = 0; i < n; ++i) fresh[i] = std::numeric_limits<T>::quiet_NaN();
        c.kernel(u.data(), gy.data(), zeros.data(), n, false);
        c.kernel(u.data(), gy.data(), fresh.data(), n, true);
        for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(fresh[i], zeros[i])) << i;
      }
    }
  }
}

TYPED_TEST(KernelsTest, TrigAbsLog1pMatchStdAtEverySizeAndOffset) {
  using T = TypeParam;
  using R = Ref<T>;
  struct Case {
    const char* name;
    void (*kernel)(const T*, T*, Index);
    R (*ref)(R);
    double lo, hi, max_ulps, floor;  // |error| <= max_ulps eps max(|want|, floor)
  };
  const Case cases[] = {
      {"sin", &kn::sin<T>, [](R x) { return std::sin(x); }, -20, 20, 4, 1},
      {"cos", &kn::cos<T>, [](R x) { return std::cos(x); }, -20, 20, 4, 1},
      {"abs", &kn::abs<T>, [](R x) { return std::fabs(x); }, -5, 5, 0.5, 0},
      {"log1p", &kn::log1p<T>, [](R x) { return std::log1p(x); }, -0.9, 5, 4, 0},
  };
  for (const Case& c : cases) {
    for (Index n : kSizes) {
      for (Index off : kOffsets) {
        SCOPED_TRACE(std::string(c.name) + " n=" + std::to_string(n) + " offset=" + std::to_string(off));
        const Buf<T> x = random_buf<T>(n, off, c.lo, c.hi, 5);
        Buf<T> y(n, (off + 1) % 4);
        c.kernel(x.data(), y.data(), n);
        for (Index i = 0; i < n; ++i) {
          const R want = c.ref(R(x[i]));
          // sin and cos near their zeros: an absolute bound (eps of 1).
          ASSERT_TRUE(close(y[i], want, std::max<R>(std::fabs(want), R(c.floor)), c.max_ulps))
              << i << " x=" << x[i] << " got " << y[i];
        }
      }
    }
  }
}

TYPED_TEST(KernelsTest, BroadcastToAndReduceToShapeAreAdjoint) {
  using T = TypeParam;
  struct Case {
    Shape in, out;
  };
  const Case cases[] = {{Shape{}, Shape{2, 3}},       {Shape{3, 1}, Shape{3, 4}},
                        {Shape{1, 4}, Shape{3, 4}},   {Shape{2, 1, 3}, Shape{2, 5, 3}},
                        {Shape{5, 1}, Shape{2, 5, 7}}, {Shape{1, 3, 1, 2}, Shape{2, 3, 4, 2}},
                        {Shape{2, 3}, Shape{2, 3}},    {Shape{1, 3}, Shape{0, 3}}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.in.str() + " -> " + c.out.str());
    const Buf<T> x = random_buf<T>(c.in.numel(), 1, -2, 2, 6);
    Buf<T> y(c.out.numel(), 2);
    kn::broadcast_to(x.data(), c.in, y.data(), c.out);
    // Brute force: out's coordinates, each taken modulo in's (size-1) axes.
    Buf<T> sums(c.in.numel(), 0);
    for (Index i = 0; i < c.in.numel(); ++i) sums[i] = T(1);
    const Buf<T> g = random_buf<T>(c.out.numel(), 3, -2, 2, 7);
    std::vector<double> want_sums(c.in.numel(), 1.0);
    for (Index f = 0; f < c.out.numel(); ++f) {
      Index rem = f, src = 0, stride = 1;
      for (int i = c.out.rank() - 1, j = c.in.rank() - 1; j >= 0; --i, --j) {
        const Index coord = rem % c.out[i];
        rem /= c.out[i];
        if (c.in[j] != 1) src += coord * stride;
        stride *= c.in[j];
      }
      ASSERT_EQ(y[f], x[src]) << f;
      want_sums[src] += static_cast<double>(g[f]);
    }
    kn::reduce_to_shape_add(g.data(), c.out, sums.data(), c.in);
    for (Index i = 0; i < c.in.numel(); ++i) {
      EXPECT_NEAR(sums[i], want_sums[i], 1e-5 * (1 + std::fabs(want_sums[i]))) << i;
    }
  }
}

// ---- Binary maps with periodic broadcasting --------------------------------------

struct Shape2 {
  Index rows, cols;
};
constexpr Shape2 kShapes[] = {{0, 5}, {1, 1}, {3, 1}, {1, 15}, {2, 16}, {3, 17}, {5, 31},
                              {4, 33}, {10, 100}, {7, 1000}, {97, 1031}, {1, 100003},
                              {100, 10}, {128, 12}, {37, 20}, {100, 30}, {9, 8}};

TYPED_TEST(KernelsTest, BinaryMapsBroadcastExactly) {
  using T = TypeParam;
  for (const Shape2& s : kShapes) {
    const Index n = s.rows * s.cols;
    // (na, nb): elementwise, row vector either side, scalar either side, both periodic.
    const std::pair<Index, Index> periods[] = {{n, n}, {n, s.cols}, {s.cols, n}, {n, 1}, {1, n},
                                               {s.cols, 1}, {1, s.cols}, {s.cols, s.cols}, {1, 1}};
    for (auto [na, nb] : periods) {
      if (n == 0 && (na == 0 || nb == 0)) continue;
      for (Index off : kOffsets) {
        SCOPED_TRACE("n=" + std::to_string(n) + " na=" + std::to_string(na) + " nb=" + std::to_string(nb) +
                     " offset=" + std::to_string(off));
        Buf<T> a = random_buf<T>(na, off, -2, 2, 4);
        Buf<T> b = random_buf<T>(nb, (off + 1) % 4, 0.5, 2, 5);
        Buf<T> y(n, (off + 2) % 4);
        kn::add(a.data(), na, b.data(), nb, y.data(), n);
        for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(y[i], T(a[i % na] + b[i % nb]))) << i;
        kn::sub(a.data(), na, b.data(), nb, y.data(), n);
        for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(y[i], T(a[i % na] - b[i % nb]))) << i;
        kn::mul(a.data(), na, b.data(), nb, y.data(), n);
        for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(y[i], T(a[i % na] * b[i % nb]))) << i;
        kn::div(a.data(), na, b.data(), nb, y.data(), n);
        for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(y[i], T(a[i % na] / b[i % nb]))) << i;
      }
    }
    // In place over the full-length operand: y == a.
    Buf<T> a = random_buf<T>(n, 1, -2, 2, 6), b = random_buf<T>(s.cols, 0, -2, 2, 7);
    const Buf<T> a0 = a;
    kn::mul(a.data(), n, b.data(), s.cols, a.data(), n);
    for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(a[i], T(a0[i] * b[i % s.cols]))) << i;
  }
}

// ---- BLAS-1 -----------------------------------------------------------------------

TYPED_TEST(KernelsTest, AddToAxpyLincombExact) {
  using T = TypeParam;
  for (Index n : kSizes) {
    for (Index off : kOffsets) {
      SCOPED_TRACE("n=" + std::to_string(n) + " offset=" + std::to_string(off));
      Buf<T> x = random_buf<T>(n, off, -2, 2, 8);
      Buf<T> y = random_buf<T>(n, (off + 1) % 4, -2, 2, 9);
      const Buf<T> y0 = y;
      kn::add_to(x.data(), y.data(), n);
      for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(y[i], T(y0[i] + x[i]))) << i;
      const T alpha = T(0.37);
      Buf<T> z = y0;
      kn::axpy(alpha, x.data(), z.data(), n);  // one fused rounding per element
      for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(z[i], std::fma(alpha, x[i], y0[i]))) << i;
      for (Index i = 0; i < n; ++i) z[i] = std::numeric_limits<T>::quiet_NaN();
      kn::axpy(alpha, x.data(), z.data(), n, true);  // overwrite: z not read
      for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(z[i], std::fma(alpha, x[i], T(0)))) << i;

      Buf<T> x2 = random_buf<T>(n, 2, -2, 2, 10), x3 = random_buf<T>(n, 3, -2, 2, 11);
      const T* xs[] = {x.data(), x2.data(), x3.data()};
      const T c[] = {T(0.5), T(-1.25), T(3.1)};
      for (Index k = 1; k <= 3; ++k) {
        kn::lincomb(xs, c, k, z.data(), n);
        for (Index i = 0; i < n; ++i) {
          T s = xs[0][i] * c[0];
          for (Index j = 1; j < k; ++j) s = std::fma(xs[j][i], c[j], s);
          ASSERT_TRUE(same_bits(z[i], s)) << i << " k=" << k;
        }
      }
    }
  }
}

TYPED_TEST(KernelsTest, PeriodicGradientKernels) {
  using T = TypeParam;
  using R = Ref<T>;
  for (const Shape2& s : kShapes) {
    const Index n = s.rows * s.cols;
    if (n == 0) continue;
    for (Index m : {n, Index(1), s.cols}) {
      for (Index off : {Index(0), Index(1)}) {
        SCOPED_TRACE("n=" + std::to_string(n) + " m=" + std::to_string(m) + " offset=" + std::to_string(off));
        Buf<T> x = random_buf<T>(n, off, -2, 2, 12);
        // reduce_rows_add: g[i % m] += x[i].
        Buf<T> g = random_buf<T>(m, (off + 1) % 4, -1, 1, 13);
        const Buf<T> g0 = g;
        kn::reduce_rows_add(x.data(), n, g.data(), m);
        for (Index j = 0; j < m; ++j) {
          R ref = g0[j], mag = std::fabs(R(g0[j]));
          for (Index i = j; i < n; i += m) ref += x[i], mag += std::fabs(R(x[i]));
          ASSERT_TRUE(close(g[j], ref, mag, 24 + 2 * std::log2(double(n / m) + 1))) << j;
        }
        // broadcast_add: gx[i] += gy[i % m], exact.
        Buf<T> gx = random_buf<T>(n, (off + 2) % 4, -1, 1, 14);
        const Buf<T> gx0 = gx;
        kn::broadcast_add(g0.data(), m, gx.data(), n);
        for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(gx[i], T(gx0[i] + g0[i % m]))) << i;
        // mul_reduce_add: out[i % m] += a[i] * b[i % nb].
        for (Index nb : {n, Index(1), s.cols}) {
          Buf<T> b = random_buf<T>(nb, 3, -2, 2, 15);
          Buf<T> out = random_buf<T>(m, 1, -1, 1, 16);
          const Buf<T> out0 = out;
          kn::mul_reduce_add(x.data(), b.data(), nb, n, out.data(), m);
          for (Index j = 0; j < m; ++j) {
            R ref = out0[j], mag = std::fabs(R(out0[j]));
            for (Index i = j; i < n; i += m) {
              ref += R(x[i]) * R(b[i % nb]);
              mag += std::fabs(R(x[i]) * R(b[i % nb]));
            }
            ASSERT_TRUE(close(out[j], ref, mag, 24 + 2 * std::log2(double(n / m) + 1))) << j << " nb=" << nb;
          }
        }
      }
    }
  }
}

// ---- Reductions ------------------------------------------------------------------

TYPED_TEST(KernelsTest, ReductionsMatchLongDouble) {
  using T = TypeParam;
  using R = Ref<T>;
  for (Index n : {Index(0), Index(1), Index(15), Index(16), Index(17), Index(31), Index(33), Index(100),
                  Index(1000), Index(100003), Index(1000003)}) {
    for (Index off : kOffsets) {
      SCOPED_TRACE("n=" + std::to_string(n) + " offset=" + std::to_string(off));
      Buf<T> a = random_buf<T>(n, off, -1, 2, 17), b = random_buf<T>(n, (off + 1) % 4, -1, 2, 18);
      R s = 0, sa = 0, ss = 0, d = 0, da = 0, q = 0, mx = 0;
      for (Index i = 0; i < n; ++i) {
        s += a[i], sa += std::fabs(R(a[i]));
        ss += R(a[i]) * a[i];
        d += R(a[i]) * b[i], da += std::fabs(R(a[i]) * b[i]);
        q += (R(a[i]) - b[i]) * (R(a[i]) - b[i]);
        mx = std::max<R>(mx, std::fabs(a[i]));
      }
      // A few roundings per level of the pairwise tree and per lane chain.
      const double k = 24 + 2 * std::log2(double(n) + 1);
      EXPECT_TRUE(close(kn::sum(a.data(), n), s, sa, k)) << kn::sum(a.data(), n) << " vs " << double(s);
      EXPECT_TRUE(close(kn::sum_squares(a.data(), n), ss, ss, k));
      EXPECT_TRUE(close(kn::dot(a.data(), b.data(), n), d, da, k));
      EXPECT_TRUE(close(kn::squared_distance(a.data(), b.data(), n), q, q, k));
      EXPECT_EQ(kn::max_abs(a.data(), n), T(mx));
    }
  }
}

TYPED_TEST(KernelsTest, FloatSumStaysAccurateOnLongArrays) {
  using T = TypeParam;
  // 0.1 is inexact in binary; a naive float loop over 1M of them is off by
  // about 1%, the pairwise blocks stay within a few ulp.
  const Index n = 1'000'037;
  Buf<T> x(n, 1);
  std::fill(x.data(), x.data() + n, T(0.1));
  const Ref<T> ref = Ref<T>(T(0.1)) * n;
  EXPECT_LT(std::fabs(kn::sum(x.data(), n) - ref) / ref, 8 * std::numeric_limits<T>::epsilon());
}

TYPED_TEST(KernelsTest, ReductionsPropagateNonFinite) {
  using T = TypeParam;
  using L = std::numeric_limits<T>;
  for (Index n : {Index(1), Index(17), Index(100003)}) {
    for (Index pos : {Index(0), n / 2, n - 1}) {
      Buf<T> x = random_buf<T>(n, 1, -1, 1, 19);
      x[pos] = L::quiet_NaN();
      EXPECT_TRUE(std::isnan(kn::sum(x.data(), n)));
      EXPECT_TRUE(std::isnan(kn::dot(x.data(), x.data(), n)));
      EXPECT_TRUE(std::isnan(kn::max_abs(x.data(), n))) << n << " " << pos;
      EXPECT_FALSE(kn::all_finite(x.data(), n));
      x[pos] = -L::infinity();
      EXPECT_EQ(kn::sum(x.data(), n), -L::infinity());
      EXPECT_EQ(kn::sum_squares(x.data(), n), L::infinity());
      EXPECT_EQ(kn::max_abs(x.data(), n), L::infinity());
      EXPECT_FALSE(kn::all_finite(x.data(), n));
      x[pos] = L::max();
      EXPECT_TRUE(kn::all_finite(x.data(), n));
    }
  }
  EXPECT_EQ(kn::sum(static_cast<const T*>(nullptr), 0), T(0));
  EXPECT_EQ(kn::max_abs(static_cast<const T*>(nullptr), 0), T(0));
  EXPECT_TRUE(kn::all_finite(static_cast<const T*>(nullptr), 0));
  // Every position of a short array, so each lands in the body and the tail.
  for (Index n = 1; n <= 70; ++n) {
    for (Index pos = 0; pos < n; ++pos) {
      Buf<T> x(n, 3);
      std::fill(x.data(), x.data() + n, T(1));
      x[pos] = L::infinity();
      ASSERT_FALSE(kn::all_finite(x.data(), n)) << n << " " << pos;
      x[pos] = -L::quiet_NaN();
      ASSERT_TRUE(std::isnan(kn::max_abs(x.data(), n))) << n << " " << pos;
    }
  }
}

TYPED_TEST(KernelsTest, SumAxisAndBackward) {
  using T = TypeParam;
  using R = Ref<T>;
  struct Dims {
    Index outer, len, inner;
  };
  const Dims dims[] = {{1, 1, 1}, {3, 100, 1}, {2, 5, 3}, {4, 7, 17}, {1, 1000, 33}, {5, 0, 4}, {0, 3, 2}, {2, 3, 100}};
  for (const Dims& d : dims) {
    SCOPED_TRACE(std::to_string(d.outer) + "x" + std::to_string(d.len) + "x" + std::to_string(d.inner));
    const Index n = d.outer * d.len * d.inner, m = d.outer * d.inner;
    Buf<T> x = random_buf<T>(n, 1, -2, 2, 20);
    Buf<T> y = random_buf<T>(m, 2, -9, 9, 21);  // overwritten
    kn::sum_axis(x.data(), d.outer, d.len, d.inner, y.data());
    for (Index o = 0; o < d.outer; ++o) {
      for (Index i = 0; i < d.inner; ++i) {
        R ref = 0, mag = 0;
        for (Index a = 0; a < d.len; ++a) {
          ref += x[(o * d.len + a) * d.inner + i];
          mag += std::fabs(R(x[(o * d.len + a) * d.inner + i]));
        }
        ASSERT_TRUE(close(y[o * d.inner + i], ref, mag, 2 * d.len + 2));
      }
    }
    Buf<T> gx = random_buf<T>(n, 3, -1, 1, 22);
    const Buf<T> gx0 = gx;
    kn::sum_axis_backward(y.data(), d.outer, d.len, d.inner, gx.data());
    for (Index o = 0; o < d.outer; ++o) {
      for (Index a = 0; a < d.len; ++a) {
        for (Index i = 0; i < d.inner; ++i) {
          const Index j = (o * d.len + a) * d.inner + i;
          ASSERT_TRUE(same_bits(gx[j], T(gx0[j] + y[o * d.inner + i])));
        }
      }
    }
  }
}

// ---- Softmax cross-entropy ---------------------------------------------------------

TYPED_TEST(KernelsTest, SoftmaxCrossEntropy) {
  using T = TypeParam;
  using R = Ref<T>;
  const Shape2 shapes[] = {{1, 1}, {3, 10}, {5, 16}, {4, 17}, {2, 33}, {100, 10}, {3, 1000}};
  for (const Shape2& s : shapes) {
    SCOPED_TRACE(std::to_string(s.rows) + "x" + std::to_string(s.cols));
    const Index n = s.rows * s.cols;
    Buf<T> z = random_buf<T>(n, 1, -20, 20, 23);
    std::vector<int> labels(s.rows);
    for (Index r = 0; r < s.rows; ++r) labels[r] = static_cast<int>((r * 7) % s.cols);
    Buf<T> p(n, 2), loss(s.rows, 3);
    kn::softmax_xent(z.data(), labels.data(), s.rows, s.cols, p.data(), loss.data());
    for (Index r = 0; r < s.rows; ++r) {
      R m = z[r * s.cols];
      for (Index j = 0; j < s.cols; ++j) m = std::max<R>(m, z[r * s.cols + j]);
      R sum = 0;
      // The kernel subtracts the max in T (exact when within a factor 2).
      auto shifted = [&](Index j) { return R(T(z[r * s.cols + j] - T(m))); };
      for (Index j = 0; j < s.cols; ++j) sum += std::exp(shifted(j));
      for (Index j = 0; j < s.cols; ++j) ASSERT_LE(ulps(p[r * s.cols + j], std::exp(shifted(j)) / sum), 4) << j;
      const R ref_loss = std::log(sum) + m - z[r * s.cols + labels[r]];
      ASSERT_TRUE(close(loss[r], ref_loss, std::fabs(m) + std::fabs(R(z[r * s.cols + labels[r]])) + 1, 8));
    }
    Buf<T> gx = random_buf<T>(n, 0, -1, 1, 24);
    const Buf<T> gx0 = gx;
    const T scale = T(0.25);
    kn::softmax_xent_backward(p.data(), labels.data(), s.rows, s.cols, scale, gx.data());
    for (Index r = 0; r < s.rows; ++r) {
      for (Index j = 0; j < s.cols; ++j) {
        const Index i = r * s.cols + j;
        T want = std::fma(scale, p[i], gx0[i]);
        if (j == labels[r]) want -= scale;
        ASSERT_TRUE(same_bits(gx[i], want)) << i;
      }
    }
  }
}

// ---- Threading: results independent of the thread count -------------------------

TYPED_TEST(KernelsTest, SameBitsWithOneOrTwoThreads) {
  using T = TypeParam;
  const int saved = num_threads();
  const Index n = 300'017;  // above every grain and reduction chunk; odd, so there is a tail
  const Buf<T> x = random_buf<T>(n, 1, -5, 5, 25), b = random_buf<T>(1000, 0, -1, 1, 26);
  const Buf<T> g0 = random_buf<T>(n, 2, -1, 1, 27);
  // Runs `op` writing `out` with 1 and then 2 threads and compares the bits.
  auto check = [&](const char* what, auto op) {
    SCOPED_TRACE(what);
    Buf<T> one = g0, two = g0;
    set_num_threads(1);
    op(one.data());
    set_num_threads(2);
    op(two.data());
    for (Index i = 0; i < n; ++i) ASSERT_TRUE(same_bits(one[i], two[i])) << i;
  };
  for (Fn f : kFns) check(name(f), [&](T* y) { apply(f, x.data(), y, n); });
  check("tanh_backward", [&](T* g) { kn::tanh_backward(x.data(), x.data(), g, n); });
  check("add periodic", [&](T* y) { kn::add(x.data(), n - 17, b.data(), 1000, y, n - 17); });
  check("sum", [&](T* y) { y[0] = kn::sum(x.data(), n); });
  check("dot", [&](T* y) { y[0] = kn::dot(x.data(), g0.data(), n); });
  set_num_threads(saved);
}

}  // namespace
}  // namespace anode
