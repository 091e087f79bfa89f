// conv2d: forward against a direct-convolution reference (float and double),
// finite-difference gradient checks (double) for x, w and bias, float
// gradients against double ones, independence of the thread count, transient
// scratch, and the error messages.
#include "autodiff/conv.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "autodiff/grad_check.h"
#include "autodiff/kernels.h"
#include "autodiff/ops.h"
#include "autodiff/thread_pool.h"
#include "tests/autodiff/allocation_counter.h"
#include "tests/support/expect_error.h"

namespace anode {
namespace {

template <class T>
Tensor<T> random_tensor(const Shape& s, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Tensor<T> t(s);
  for (T& x : t) x = static_cast<T>(u(rng));
  return t;
}

// y[n, o, a, b] = bias[o] + sum_{c, i, j} w[o, c, i, j] x[n, c, a + i - p, b + j - p],
// accumulated in double, straight from the definition.
template <class T>
std::vector<double> reference_conv(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* bias,
                                   Index p, Index& ho, Index& wo) {
  const Index N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const Index O = w.shape()[0], k = w.shape()[2];
  ho = H + 2 * p - k + 1;
  wo = W + 2 * p - k + 1;
  std::vector<double> y(static_cast<std::size_t>(N * O * ho * wo));
  for (Index n = 0; n < N; ++n)
    for (Index o = 0; o < O; ++o)
      for (Index a = 0; a < ho; ++a)
        for (Index b = 0; b < wo; ++b) {
          double s = bias ? static_cast<double>((*bias)[o]) : 0.0;
          for (Index c = 0; c < C; ++c)
            for (Index i = 0; i < k; ++i)
              for (Index j = 0; j < k; ++j) {
                const Index r = a + i - p, q = b + j - p;
                if (r < 0 || r >= H || q < 0 || q >= W) continue;
                s += static_cast<double>(w[((o * C + c) * k + i) * k + j]) *
                     static_cast<double>(x[((n * C + c) * H + r) * W + q]);
              }
          y[static_cast<std::size_t>(((n * O + o) * ho + a) * wo + b)] = s;
        }
  return y;
}

struct FwdCase {
  Index n, c, h, w, o, k, padding;
  bool bias;
};

std::vector<FwdCase> forward_cases() {
  std::vector<FwdCase> cases;
  const Index sizes[][4] = {{1, 1, 5, 5}, {2, 3, 7, 5}, {3, 4, 6, 9}, {2, 5, 1, 4}};
  for (auto [n, c, h, w] : sizes)
    for (Index k : {1, 3, 5})
      for (Index padding : {-1, 0, 2})
        for (bool bias : {false, true}) {
          const Index p = padding == -1 ? (k - 1) / 2 : padding;
          if (h + 2 * p - k + 1 <= 0 || w + 2 * p - k + 1 <= 0) continue;
          cases.push_back({n, c, h, w, c + 2, k, padding, bias});
        }
  // Large enough for im2col in several blocks of output positions (blocks
  // end mid-row), in float and double.
  for (Index padding : {-1, 0, 1}) cases.push_back({2, 16, 19, 23, 7, 5, padding, true});
  return cases;
}

template <class T>
class ConvForwardTest : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(ConvForwardTest, Scalars);

TYPED_TEST(ConvForwardTest, MatchesDirectConvolution) {
  using T = TypeParam;
  const double tol = std::is_same_v<T, float> ? 2e-5 : 1e-13;
  std::mt19937_64 rng(7);
  const std::vector<FwdCase> cases = forward_cases();
  ASSERT_GT(cases.size(), 50u);
  for (const FwdCase& cs : cases) {
    SCOPED_TRACE("x [" + std::to_string(cs.n) + ", " + std::to_string(cs.c) + ", " +
                 std::to_string(cs.h) + ", " + std::to_string(cs.w) + "] o " +
                 std::to_string(cs.o) + " k " + std::to_string(cs.k) + " padding " +
                 std::to_string(cs.padding) + (cs.bias ? " bias" : ""));
    Tensor<T> x = random_tensor<T>(Shape{cs.n, cs.c, cs.h, cs.w}, rng);
    Tensor<T> w = random_tensor<T>(Shape{cs.o, cs.c, cs.k, cs.k}, rng);
    Tensor<T> b = random_tensor<T>(Shape{cs.o}, rng);
    Tape<T> t;
    Var<T> y = cs.bias ? conv2d(t.constant(x), t.constant(w), t.constant(b), cs.padding)
                       : conv2d(t.constant(x), t.constant(w), Var<T>(), cs.padding);
    Index ho = 0, wo = 0;
    const Index p = cs.padding == -1 ? (cs.k - 1) / 2 : cs.padding;
    std::vector<double> ref = reference_conv(x, w, cs.bias ? &b : nullptr, p, ho, wo);
    ASSERT_EQ(y.shape(), (Shape{cs.n, cs.o, ho, wo}));
    for (Index i = 0; i < y.size(); ++i) {
      const double r = ref[static_cast<std::size_t>(i)];
      ASSERT_NEAR(y.data()[i], r, tol * (1 + std::abs(r)) * static_cast<double>(cs.c * cs.k * cs.k))
          << "element " << i;
    }
  }
}

TEST(ConvForward, DefaultsToSamePaddingAndNoBias) {
  std::mt19937_64 rng(3);
  Tensor<double> x = random_tensor<double>(Shape{2, 3, 6, 5}, rng);
  Tensor<double> w = random_tensor<double>(Shape{4, 3, 3, 3}, rng);
  Tape<double> t;
  Var<double> y = conv2d(t.constant(x), t.constant(w));
  EXPECT_EQ(y.shape(), (Shape{2, 4, 6, 5}));
  Var<double> z = conv2d(t.constant(x), t.constant(w), Var<double>(), 1);
  for (Index i = 0; i < y.size(); ++i) EXPECT_EQ(y.data()[i], z.data()[i]);
}

// ---- Gradients ---------------------------------------------------------------------------

struct GradCase {
  std::string name;
  Shape x, w;
  bool bias;
  Index padding;
  // Small cases also check every entry of J^T v; larger ones only the
  // dot-product identity along random directions (each finite difference is
  // a fresh tape, slow under the sanitizers).
  bool elementwise;
};

std::ostream& operator<<(std::ostream& os, const GradCase& c) { return os << c.name; }

std::vector<GradCase> grad_cases() {
  return {
      {"k1_pointwise", Shape{2, 3, 4, 5}, Shape{4, 3, 1, 1}, true, -1, false},
      {"k1_pointwise_small", Shape{1, 2, 3, 3}, Shape{3, 2, 1, 1}, true, -1, true},
      {"k1_padding2", Shape{1, 2, 2, 3}, Shape{2, 2, 1, 1}, true, 2, true},
      {"k3_same", Shape{2, 3, 6, 5}, Shape{4, 3, 3, 3}, true, -1, false},
      {"k3_same_small", Shape{1, 2, 3, 4}, Shape{2, 2, 3, 3}, true, -1, true},
      {"k3_same_nobias", Shape{3, 2, 5, 5}, Shape{2, 2, 3, 3}, false, -1, false},
      {"k3_valid", Shape{2, 2, 5, 6}, Shape{3, 2, 3, 3}, true, 0, false},
      {"k3_valid_small", Shape{1, 1, 4, 3}, Shape{2, 1, 3, 3}, false, 0, true},
      {"k3_padding2", Shape{1, 1, 2, 3}, Shape{2, 1, 3, 3}, true, 2, true},
      {"k5_same", Shape{2, 2, 5, 4}, Shape{3, 2, 5, 5}, true, -1, false},
      {"k5_padding1_small", Shape{1, 1, 4, 5}, Shape{1, 1, 5, 5}, true, 1, true},
      // More images than the backward pass's 16 fixed groups: partial sums.
      {"k3_many_images", Shape{19, 2, 3, 3}, Shape{2, 2, 3, 3}, true, -1, false},
      {"k1_many_images", Shape{18, 2, 2, 3}, Shape{3, 2, 1, 1}, true, -1, false},
      // im2col in several blocks of output positions, for x and for g.
      {"k5_blocked_same", Shape{1, 16, 19, 23}, Shape{7, 16, 5, 5}, true, -1, false},
      {"k5_blocked_valid", Shape{1, 16, 19, 23}, Shape{7, 16, 5, 5}, false, 0, false},
  };
}

class ConvGradTest : public ::testing::TestWithParam<GradCase> {};

TEST_P(ConvGradTest, MatchesFiniteDifferences) {
  const GradCase& c = GetParam();
  std::mt19937_64 rng(11);
  std::vector<Tensor<double>> inputs = {random_tensor<double>(c.x, rng),
                                        random_tensor<double>(c.w, rng)};
  if (c.bias) inputs.push_back(random_tensor<double>(Shape{c.w[0]}, rng));
  GradCheckOptions options;
  options.max_elementwise = c.elementwise ? 4096 : 0;
  options.directions = c.elementwise ? 3 : 8;
  const Index padding = c.padding;
  GradCheckResult r = grad_check(
      [&](Tape<double>&, std::span<const Var<double>> v) {
        return conv2d(v[0], v[1], v.size() > 2 ? v[2] : Var<double>(), padding);
      },
      inputs, options);
  EXPECT_TRUE(r.ok) << c.name << ": " << r.message;
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvGradTest, ::testing::ValuesIn(grad_cases()),
                         [](const auto& info) { return info.param.name; });

std::vector<Tensor<double>> conv_inputs(const GradCase& c) {
  std::mt19937_64 rng(11);
  std::vector<Tensor<double>> inputs = {random_tensor<double>(c.x, rng),
                                        random_tensor<double>(c.w, rng)};
  if (c.bias) inputs.push_back(random_tensor<double>(Shape{c.w[0]}, rng));
  return inputs;
}

// Forward mode (tangent rule) against finite differences and the VJP.
TEST_P(ConvGradTest, JvpMatchesFiniteDifferencesAndVjp) {
  const GradCase& c = GetParam();
  const Index padding = c.padding;
  GradCheckResult r = jvp_check(
      [&](Tape<double>&, std::span<const Var<double>> v) {
        return conv2d(v[0], v[1], v.size() > 2 ? v[2] : Var<double>(), padding);
      },
      conv_inputs(c));
  EXPECT_TRUE(r.ok) << c.name << ": " << r.message;
}

// Second order: conv2d is bilinear, so its Hessian couples x and w; the
// recorded backward (a conv2d with the flipped weight, conv2d_weight_grad)
// is checked against finite differences of gradients and forward-over-reverse.
TEST_P(ConvGradTest, HvpMatchesFiniteDifferencesOfGradients) {
  const GradCase& c = GetParam();
  const Index k = c.w[2], padding = c.padding == -1 ? (k - 1) / 2 : c.padding;
  auto f = [&](Tape<double>&, std::span<const Var<double>> v) {
    return conv2d(v[0], v[1], v.size() > 2 ? v[2] : Var<double>(), padding);
  };
  if (padding > k - 1) {
    // The transposed convolution would need a negative padding: refused.
    testing::expect_error<ValueError>([&] { hvp_check(f, conv_inputs(c)); }, {"conv2d", "padding <= k - 1"});
    return;
  }
  GradCheckOptions options;
  options.rtol = 1e-5;
  options.atol = 1e-7;
  options.directions = 1;
  GradCheckResult r = hvp_check(f, conv_inputs(c), options);
  EXPECT_TRUE(r.ok) << c.name << ": " << r.message;
}

// A conv chained with other ops, gradients through both convolutions.
TEST(ConvGrad, TwoLayerChain) {
  std::mt19937_64 rng(5);
  std::vector<Tensor<double>> inputs = {
      random_tensor<double>(Shape{2, 2, 4, 4}, rng), random_tensor<double>(Shape{3, 2, 3, 3}, rng),
      random_tensor<double>(Shape{3}, rng), random_tensor<double>(Shape{2, 3, 1, 1}, rng)};
  GradCheckOptions options;
  options.max_elementwise = 0;
  options.directions = 8;
  GradCheckResult r = grad_check(
      [](Tape<double>&, std::span<const Var<double>> v) {
        return sum(square(conv2d(tanh(conv2d(v[0], v[1], v[2])), v[3])));
      },
      inputs, options);
  EXPECT_TRUE(r.ok) << r.message;
}

// The float instantiation's backward pass agrees with the double one.
TEST(ConvGrad, FloatMatchesDouble) {
  std::mt19937_64 rng(9);
  const Shape sx{3, 4, 7, 6}, sw{5, 4, 3, 3}, sb{5};
  std::vector<Tensor<double>> in = {random_tensor<double>(sx, rng), random_tensor<double>(sw, rng),
                                    random_tensor<double>(sb, rng)};
  Tensor<double> cot = random_tensor<double>(Shape{3, 5, 7, 6}, rng);
  std::vector<Tensor<float>> inf;
  for (const Tensor<double>& t : in) inf.push_back(cast<float>(t));
  Tensor<float> cotf = cast<float>(cot);
  auto fd = [](Tape<double>&, std::span<const Var<double>> v) { return conv2d(v[0], v[1], v[2]); };
  auto ff = [](Tape<float>&, std::span<const Var<float>> v) { return conv2d(v[0], v[1], v[2]); };
  VjpResult<double> rd = vjp<double>(fd, in, cot.view());
  VjpResult<float> rf = vjp<float>(ff, inf, cotf.view());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const double scale = 1 + kernels::max_abs(rd.grads[i].data(), rd.grads[i].size());
    for (Index j = 0; j < rd.grads[i].size(); ++j) {
      ASSERT_NEAR(rf.grads[i][j], rd.grads[i][j], 1e-4 * scale)
          << "input " << i << " element " << j;
    }
  }
}

// Only the inputs that need a gradient get one; constants are skipped.
TEST(ConvGrad, ConstantInputsGetNoGradient) {
  std::mt19937_64 rng(4);
  Tensor<double> x = random_tensor<double>(Shape{2, 2, 5, 5}, rng);
  Tensor<double> w = random_tensor<double>(Shape{3, 2, 3, 3}, rng);
  Tensor<double> b = random_tensor<double>(Shape{3}, rng);
  Tape<double> t;
  Var<double> xv = t.constant(x), wv = t.input(w), bv = t.constant(b);
  t.backward(sum(conv2d(xv, wv, bv)));
  // d sum / dw[o, c, i, j] = sum over n and the output window of x.
  Tape<double> t2;
  Var<double> wv2 = t2.input(w);
  t2.backward(sum(conv2d(t2.constant(x), wv2, t2.constant(b))));
  TensorView<const double> g1 = t.grad(wv), g2 = t2.grad(wv2);
  for (Index i = 0; i < g1.size(); ++i) EXPECT_EQ(g1[i], g2[i]);
  double center = 0;  // w[o, c, 1, 1] sees every pixel of channel c
  for (Index n = 0; n < 2; ++n)
    for (Index q = 0; q < 25; ++q) center += x[(n * 2 + 1) * 25 + q];
  EXPECT_NEAR(g1[(0 * 2 + 1) * 9 + 4], center, 1e-12);
  Tape<double>::NoGradGuard no_grad(t);
  const std::size_t nodes = t.num_nodes();
  conv2d(t.input(x), t.input(w));
  EXPECT_EQ(t.num_nodes(), nodes);
}

// Per-image work is split over threads; the sums over images are not.
TEST(ConvGrad, ResultsDoNotDependOnThreadCount) {
  std::mt19937_64 rng(6);
  std::vector<Tensor<float>> in = {random_tensor<float>(Shape{21, 3, 6, 6}, rng),
                                   random_tensor<float>(Shape{4, 3, 3, 3}, rng),
                                   random_tensor<float>(Shape{4}, rng)};
  Tensor<float> cot = random_tensor<float>(Shape{21, 4, 6, 6}, rng);
  auto f = [](Tape<float>&, std::span<const Var<float>> v) { return conv2d(v[0], v[1], v[2]); };
  const int saved = num_threads();
  std::vector<VjpResult<float>> results;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    results.push_back(vjp<float>(f, in, cot.view()));
  }
  set_num_threads(saved);
  for (std::size_t r = 1; r < results.size(); ++r) {
    for (Index j = 0; j < results[0].value.size(); ++j) {
      ASSERT_EQ(results[r].value[j], results[0].value[j]);
    }
    for (std::size_t i = 0; i < in.size(); ++i) {
      for (Index j = 0; j < results[0].grads[i].size(); ++j) {
        ASSERT_EQ(results[r].grads[i][j], results[0].grads[i][j]) << "input " << i;
      }
    }
  }
}

// The im2col buffers go back to the arena: a recorded conv keeps only its output.
TEST(ConvMemory, ScratchIsTransient) {
  std::mt19937_64 rng(8);
  Tensor<float> x = random_tensor<float>(Shape{4, 8, 10, 10}, rng);
  Tensor<float> w = random_tensor<float>(Shape{8, 8, 3, 3}, rng);
  Tape<float> t;
  Var<float> xv = t.input(x), wv = t.input(w);
  const std::size_t before = t.arena().bytes_used();
  Var<float> y = conv2d(xv, wv);
  EXPECT_EQ(t.arena().bytes_used() - before, sizeof(float) * static_cast<std::size_t>(y.size()));
  EXPECT_GT(t.arena().peak_bytes() - before, sizeof(float) * static_cast<std::size_t>(y.size()));
  Var<float> loss = sum(y);
  const std::size_t recorded = t.arena().bytes_used();
  t.backward(loss);
  // Adjoints of y, x, w (and the loss seed), nothing else.
  const std::size_t adjoints =
      sizeof(float) * static_cast<std::size_t>(y.size() + x.size() + w.size());
  EXPECT_LE(t.arena().bytes_used() - recorded, adjoints + 4 * kAlignment);
}

// A training step in steady state (tape cleared and reused) makes no heap
// allocation: scratch comes from the arena, partial sums too.
TEST(ConvMemory, SteadyStateMakesNoHeapAllocation) {
  // One thread: a pool thread takes its GEMM scratch on its first product,
  // and whether it got work during the warm-up depends on scheduling.
  const int threads = num_threads();
  set_num_threads(1);
  std::mt19937_64 rng(10);
  Tensor<float> x = random_tensor<float>(Shape{18, 4, 9, 9}, rng);
  Parameter<float> w("w", random_tensor<float>(Shape{6, 4, 3, 3}, rng));
  Parameter<float> b("b", random_tensor<float>(Shape{6}, rng));
  Parameter<float> w1("w1", random_tensor<float>(Shape{4, 6, 1, 1}, rng));
  Tape<float> t;
  auto step = [&] {
    t.clear();
    Var<float> h = tanh(conv2d(t.input(x), t.param(w), t.param(b)));
    t.backward(sum(conv2d(h, t.param(w1))));
  };
  for (int i = 0; i < 3; ++i) step();
  const long before = testing::allocations();
  for (int i = 0; i < 5; ++i) step();
  EXPECT_EQ(testing::allocations() - before, 0);
  set_num_threads(threads);
}

// ---- Errors name the op and the shapes -------------------------------------------------

using testing::expect_error;

TEST(ConvErrors, Shapes) {
  Tape<float> t;
  Tensor<float> x(Shape{2, 3, 5, 5}), x3(Shape{3, 5, 5}), w(Shape{4, 3, 3, 3});
  auto c = [&](const Tensor<float>& a) { return t.constant(a); };
  expect_error<ShapeError>([&] { conv2d(c(x3), c(w)); },
                           {"conv2d", "[3, 5, 5]", "[4, 3, 3, 3]", "rank 4"});
  Tensor<float> w2(Shape{4, 3, 9});
  expect_error<ShapeError>([&] { conv2d(c(x), c(w2)); }, {"conv2d", "[4, 3, 9]", "rank 4"});
  Tensor<float> wc(Shape{4, 2, 3, 3});
  expect_error<ShapeError>([&] { conv2d(c(x), c(wc)); },
                           {"conv2d", "[2, 3, 5, 5]", "[4, 2, 3, 3]", "3 channels", "expects 2"});
  Tensor<float> we(Shape{4, 3, 2, 2});
  expect_error<ShapeError>([&] { conv2d(c(x), c(we)); }, {"conv2d", "[4, 3, 2, 2]", "even"});
  Tensor<float> wz(Shape{4, 3, 0, 0});
  expect_error<ShapeError>([&] { conv2d(c(x), c(wz)); }, {"conv2d", "[4, 3, 0, 0]", "even"});
  Tensor<float> ws(Shape{4, 3, 3, 5});
  expect_error<ShapeError>([&] { conv2d(c(x), c(ws)); }, {"conv2d", "[4, 3, 3, 5]", "not square"});
  Tensor<float> w7(Shape{4, 3, 7, 7});
  expect_error<ShapeError>([&] { conv2d(c(x), c(w7), Var<float>(), 0); },
                           {"conv2d", "[2, 3, 5, 5]", "[4, 3, 7, 7]", "padding 0", "-1 x -1"});
  Tensor<float> bad_bias(Shape{3}), bias2(Shape{1, 4});
  expect_error<ShapeError>([&] { conv2d(c(x), c(w), c(bad_bias)); }, {"conv2d", "bias [3]", "[4]"});
  expect_error<ShapeError>([&] { conv2d(c(x), c(w), c(bias2)); }, {"conv2d", "bias [1, 4]", "[4]"});
}

TEST(ConvErrors, PaddingAndTapes) {
  Tape<float> t, t2;
  Tensor<float> x(Shape{1, 1, 4, 4}), w(Shape{1, 1, 3, 3});
  expect_error<ValueError>([&] { conv2d(t.constant(x), t.constant(w), Var<float>(), -2); },
                           {"conv2d", "padding", "-2"});
  expect_error<ValueError>([&] { conv2d(t.constant(x), t2.constant(w)); },
                           {"conv2d", "different tapes"});
  expect_error<ValueError>([&] { conv2d(Var<float>(), t.constant(w)); }, {"conv2d", "empty Var"});
}

}  // namespace
}  // namespace anode
