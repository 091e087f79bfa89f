#include "autodiff/gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <span>
#include <vector>

#include "autodiff/thread_pool.h"

namespace anode {
namespace {

// Storage for one operand: rows x cols used out of rows x ld, the padding
// filled with NaN so that any read outside the matrix shows in the result.
template <class T>
struct Matrix {
  Index rows, cols, ld;
  std::vector<T> data;

  Matrix(Index r, Index c, Index pad, std::mt19937& rng)
      : rows(r), cols(c), ld(c + pad),
        data(static_cast<std::size_t>(std::max<Index>(r * (c + pad), 1)),
             std::numeric_limits<T>::quiet_NaN()) {
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    for (Index i = 0; i < r; ++i)
      for (Index j = 0; j < c; ++j) at(i, j) = static_cast<T>(u(rng));
  }
  T& at(Index i, Index j) { return data[i * ld + j]; }
  T at(Index i, Index j) const { return data[i * ld + j]; }
};

struct Case {
  bool ta, tb;
  Index m, n, k;
  double alpha, beta;
  Index pad = 0;       // extra elements per row of A, B and C
  bool nan_c = false;  // fill C with NaN (only meaningful with beta == 0)
};

std::string describe(const Case& c) {
  return "ta=" + std::to_string(c.ta) + " tb=" + std::to_string(c.tb) + " m=" +
         std::to_string(c.m) + " n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) +
         " alpha=" + std::to_string(c.alpha) + " beta=" + std::to_string(c.beta) +
         " pad=" + std::to_string(c.pad);
}

// Runs gemm<T> on one case and compares with a double-accumulating
// reference. The tolerance scales with k and the magnitudes summed.
template <class T>
void check(const Case& cs, unsigned seed = 1) {
  SCOPED_TRACE(describe(cs));
  std::mt19937 rng(seed);
  Matrix<T> a = cs.ta ? Matrix<T>(cs.k, cs.m, cs.pad, rng) : Matrix<T>(cs.m, cs.k, cs.pad, rng);
  Matrix<T> b = cs.tb ? Matrix<T>(cs.n, cs.k, cs.pad, rng) : Matrix<T>(cs.k, cs.n, cs.pad, rng);
  Matrix<T> c(cs.m, cs.n, cs.pad, rng);
  if (cs.nan_c)
    for (Index i = 0; i < cs.m; ++i)
      for (Index j = 0; j < cs.n; ++j) c.at(i, j) = std::numeric_limits<T>::quiet_NaN();
  const Matrix<T> c0 = c;
  const T alpha = static_cast<T>(cs.alpha), beta = static_cast<T>(cs.beta);

  gemm<T>(cs.ta, cs.tb, cs.m, cs.n, cs.k, alpha, a.data.data(), a.ld, b.data.data(), b.ld, beta,
          c.data.data(), c.ld);

  const double eps = std::numeric_limits<T>::epsilon();
  int failures = 0;
  for (Index i = 0; i < cs.m; ++i) {
    for (Index j = 0; j < cs.n; ++j) {
      double s = 0, mag = 0;
      for (Index p = 0; p < cs.k; ++p) {
        double av = cs.ta ? a.at(p, i) : a.at(i, p);
        double bv = cs.tb ? b.at(j, p) : b.at(p, j);
        s += av * bv;
        mag += std::abs(av * bv);
      }
      double want = double(alpha) * s, scale = std::abs(double(alpha)) * mag;
      if (beta != T(0)) {
        want += double(beta) * c0.at(i, j);
        scale += std::abs(double(beta) * c0.at(i, j));
      }
      const double got = c.at(i, j);
      const double tol = 4 * eps * double(cs.k + 2) * std::max(scale, 1e-30);
      if (!(std::abs(got - want) <= tol) && ++failures <= 5)
        ADD_FAILURE() << "C(" << i << ", " << j << ") = " << got << ", want " << want;
    }
    // Row padding of C is never written.
    for (Index j = cs.n; j < c.ld; ++j)
      if (!std::isnan(c.at(i, j)) && ++failures <= 5) ADD_FAILURE() << "wrote C padding";
  }
}

template <class T>
class GemmTest : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(GemmTest, Types);

constexpr bool kBools[] = {false, true};

// Every case under all four combinations of transposed operands.
template <class T>
void check_every_transpose(std::span<const Case> shapes) {
  for (bool ta : kBools)
    for (bool tb : kBools)
      for (Case cs : shapes) {
        cs.ta = ta;
        cs.tb = tb;
        check<T>(cs);
      }
}

TYPED_TEST(GemmTest, SmallOddShapesAllTransposes) {
  const Index sizes[] = {1, 3, 17, 33, 65, 100};
  const Index ks[] = {1, 3, 17, 65};
  for (bool ta : kBools)
    for (bool tb : kBools)
      for (Index m : sizes)
        for (Index n : sizes)
          for (Index k : ks) check<TypeParam>({ta, tb, m, n, k, 1.0, 0.0});
}

TYPED_TEST(GemmTest, LargerShapesCrossBlockBoundaries) {
  // K beyond one K block (384 floats, 192 doubles), N beyond one N block
  // (512), M beyond one M block (1008), the engine's layer shapes and sizes
  // that are not multiples of the micro-tile.
  const Case shapes[] = {
      {false, false, 129, 129, 129, 1.0, 0.0}, {false, false, 100, 20, 784, 1.0, 0.0},
      {false, false, 20, 784, 100, 1.0, 1.0},  {false, false, 100, 784, 20, 1.0, 0.0},
      {false, false, 33, 530, 7, 0.5, -1.0},   {false, false, 17, 40, 401, 1.0, 0.5},
      {false, false, 65, 1030, 3, 1.0, 0.0},   {false, false, 128, 64, 64, 1.0, 0.0},
      {false, false, 128, 64, 12, 1.0, 1.0},   {false, false, 100, 10, 30, 1.0, 0.0},
      {false, false, 150, 97, 100, -2.0, 0.5}, {false, false, 1030, 100, 9, 1.0, 0.5},
  };
  check_every_transpose<TypeParam>(shapes);
}

TYPED_TEST(GemmTest, NarrowProducts) {
  // n <= 32 and k <= 384 take gemm_narrow (one B sliver, A in place): tall
  // (more than one M block), at the width and depth limits and just past
  // them, B strides that are a multiple of 1 KiB (packed, not read in
  // place), alpha/beta and every transpose.
  const Case shapes[] = {
      {false, false, 2100, 10, 30, 1.0, 1.0},     {false, false, 100, 32, 384, 1.0, 0.0},
      {false, false, 100, 16, 385, 1.0, 0.5},     {false, false, 100, 33, 10, 1.0, 1.0},
      {false, false, 100, 30, 30, 1.0, 1.0, 226}, {false, false, 100, 10, 30, 1.0, 0.0, 246},
      {false, false, 13, 1, 1, -0.5, 2.0},        {false, false, 1, 31, 7, 2.0, 0.0},
  };
  check_every_transpose<TypeParam>(shapes);
}

TYPED_TEST(GemmTest, ZeroSizes) {
  for (bool ta : kBools)
    for (bool tb : kBools) {
      check<TypeParam>({ta, tb, 0, 5, 7, 1.0, 0.5});
      check<TypeParam>({ta, tb, 5, 0, 7, 1.0, 0.5});
      // k == 0: C = beta * C, and C = 0 for beta == 0 even over NaN.
      check<TypeParam>({ta, tb, 5, 7, 0, 1.0, 0.5});
      check<TypeParam>({ta, tb, 5, 7, 0, 1.0, 0.0, 0, true});
      check<TypeParam>({ta, tb, 0, 0, 0, 1.0, 0.0});
    }
}

TYPED_TEST(GemmTest, LeadingDimensionsLargerThanNeeded) {
  for (bool ta : kBools)
    for (bool tb : kBools)
      for (Index pad : {1, 3, 16, 37}) {
        check<TypeParam>({ta, tb, 17, 33, 65, 1.0, 0.5, pad});
        check<TypeParam>({ta, tb, 100, 129, 40, 1.0, 0.0, pad});
        check<TypeParam>({ta, tb, 40, 40, 400, 1.0, 1.0, pad});
      }
}

TYPED_TEST(GemmTest, AlphaAndBeta) {
  for (bool ta : kBools)
    for (bool tb : kBools)
      for (double alpha : {1.0, -0.5, 3.0})
        for (double beta : {0.0, 1.0, -2.0, 0.25}) {
          check<TypeParam>({ta, tb, 33, 47, 19, alpha, beta, 2});
          check<TypeParam>({ta, tb, 20, 50, 400, alpha, beta});
        }
}

TYPED_TEST(GemmTest, AlphaZeroOnlyScalesC) {
  for (double beta : {0.0, 1.0, 0.5}) check<TypeParam>({false, true, 9, 11, 13, 0.0, beta, 1});
}

TYPED_TEST(GemmTest, BetaZeroIgnoresNaNInC) {
  for (bool ta : kBools)
    for (bool tb : kBools)
      for (Index k : {1, 20, 500}) {
        check<TypeParam>({ta, tb, 13, 45, k, 1.0, 0.0, 2, true});
        check<TypeParam>({ta, tb, 100, 20, k, 2.0, 0.0, 0, true});
      }
}

// gemm_bias must round every element exactly as copying the bias into C's
// rows and accumulating with beta = 1 does (Linear's forward relied on the
// latter), over one and several K blocks, every transpose, ragged widths and
// products split over threads (by rows or by columns), and must not touch
// C's row padding.
TYPED_TEST(GemmTest, BiasMatchesCopiedBiasWithBetaOne) {
  using T = TypeParam;
  const Case shapes[] = {
      {false, false, 1, 1, 1, 1.0, 1.0},      {false, false, 100, 10, 30, 1.0, 1.0},
      {false, false, 100, 30, 10, 1.0, 1.0},  {false, false, 100, 20, 784, 1.0, 1.0},
      {false, false, 17, 33, 65, -0.5, 1.0},  {false, false, 33, 530, 7, 2.0, 1.0},
      {false, false, 129, 129, 400, 1.0, 1.0, 3}, {false, false, 12, 16, 5, 1.0, 1.0, 1},
      {false, false, 5, 7, 0, 1.0, 1.0, 2},   {false, false, 9, 11, 13, 0.0, 1.0},
      {false, false, 16, 1030, 70, 1.0, 1.0},  // split over threads by columns
  };
  for (bool ta : kBools)
    for (bool tb : kBools)
      for (Case cs : shapes) {
        cs.ta = ta;
        cs.tb = tb;
        SCOPED_TRACE(describe(cs));
        std::mt19937 rng(3);
        Matrix<T> a = cs.ta ? Matrix<T>(cs.k, cs.m, cs.pad, rng) : Matrix<T>(cs.m, cs.k, cs.pad, rng);
        Matrix<T> b = cs.tb ? Matrix<T>(cs.n, cs.k, cs.pad, rng) : Matrix<T>(cs.k, cs.n, cs.pad, rng);
        const Matrix<T> bias(1, cs.n, 0, rng);
        // C starts as NaN: gemm_bias must not read it.
        Matrix<T> got(cs.m, cs.n, cs.pad, rng), want(cs.m, cs.n, cs.pad, rng);
        for (Index i = 0; i < cs.m; ++i)
          for (Index j = 0; j < cs.n; ++j) {
            got.at(i, j) = std::numeric_limits<T>::quiet_NaN();
            want.at(i, j) = bias.at(0, j);
          }
        const T alpha = static_cast<T>(cs.alpha);
        gemm_bias<T>(cs.ta, cs.tb, cs.m, cs.n, cs.k, alpha, a.data.data(), a.ld, b.data.data(),
                     b.ld, bias.data.data(), got.data.data(), got.ld);
        gemm<T>(cs.ta, cs.tb, cs.m, cs.n, cs.k, alpha, a.data.data(), a.ld, b.data.data(), b.ld,
                T(1), want.data.data(), want.ld);
        int failures = 0;
        for (Index i = 0; i < cs.m; ++i) {
          for (Index j = 0; j < cs.n; ++j)
            if (std::memcmp(&got.at(i, j), &want.at(i, j), sizeof(T)) != 0 && ++failures <= 5)
              ADD_FAILURE() << "C(" << i << ", " << j << ") = " << got.at(i, j) << ", want "
                            << want.at(i, j);
          for (Index j = cs.n; j < got.ld; ++j)
            if (!std::isnan(got.at(i, j)) && ++failures <= 5) ADD_FAILURE() << "wrote C padding";
        }
      }
}

// Restores the thread count when a test ends.
class ThreadCount {
 public:
  ThreadCount() : saved_(num_threads()) {}
  ~ThreadCount() { set_num_threads(saved_); }

 private:
  int saved_;
};

TYPED_TEST(GemmTest, ResultsDoNotDependOnThreadCount) {
  using T = TypeParam;
  ThreadCount restore;
  const Case shapes[] = {
      {false, false, 256, 256, 500, 1.0, 0.5}, {false, true, 100, 20, 784, 1.0, 0.0},
      {true, false, 20, 784, 100, 1.0, 1.0},   {true, true, 131, 300, 70, -1.0, 0.0},
      {false, true, 128, 64, 64, 1.0, 0.0},    {false, false, 1, 4000, 300, 1.0, 0.0},
      {false, true, 4000, 30, 10, 1.0, 1.0},   {true, false, 3000, 20, 30, 1.0, 0.0},
  };
  for (const Case& cs : shapes) {
    SCOPED_TRACE(describe(cs));
    std::mt19937 rng(7);
    Matrix<T> a = cs.ta ? Matrix<T>(cs.k, cs.m, 0, rng) : Matrix<T>(cs.m, cs.k, 0, rng);
    Matrix<T> b = cs.tb ? Matrix<T>(cs.n, cs.k, 0, rng) : Matrix<T>(cs.k, cs.n, 0, rng);
    const Matrix<T> c0(cs.m, cs.n, 0, rng);
    std::vector<std::vector<T>> results;
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      Matrix<T> c = c0;
      gemm<T>(cs.ta, cs.tb, cs.m, cs.n, cs.k, T(cs.alpha), a.data.data(), a.ld, b.data.data(),
              b.ld, T(cs.beta), c.data.data(), c.ld);
      results.push_back(c.data);
    }
    for (std::size_t r = 1; r < results.size(); ++r)
      EXPECT_EQ(0, std::memcmp(results[0].data(), results[r].data(), results[0].size() * sizeof(T)))
          << "thread count " << r + 1 << " differs from 1";
  }
}

}  // namespace
}  // namespace anode
