// Every differentiable op: a finite-difference gradient check (double) on
// several shapes, broadcasting included, and its error messages.
#include "autodiff/ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "autodiff/grad_check.h"
#include "autodiff/op_kit.h"
#include "tests/support/expect_error.h"

namespace anode {
namespace {

using V = Var<double>;
using Fn = std::function<V(Tape<double>&, std::span<const V>)>;

// Where an op's inputs are drawn from: smooth regions only.
enum class Domain { kAny, kPositive, kAwayFromZero };

struct OpCase {
  std::string name;
  std::vector<Shape> shapes;
  Fn f;
  Domain domain = Domain::kAny;
};

std::ostream& operator<<(std::ostream& os, const OpCase& c) { return os << c.name; }

Tensor<double> random_tensor(const Shape& s, Domain d, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(-2.0, 2.0);
  Tensor<double> t(s);
  for (double& x : t) {
    x = u(rng);
    if (d == Domain::kPositive) x = std::abs(x) + 0.2;
    if (d == Domain::kAwayFromZero) x = (x < 0 ? -1 : 1) * (std::abs(x) + 0.3);
  }
  return t;
}

const std::vector<int> kLabels3 = {2, 0, 1};
const std::vector<int> kLabels1 = {4};

std::vector<OpCase> all_cases() {
  std::vector<OpCase> c;
  const Shape s23{2, 3}, s3{3}, s1{1}, s0{}, s423{4, 2, 3}, s13{1, 3}, s5{5};
  auto unary = [&](std::string name, std::function<V(V)> op, Domain d) {
    for (const Shape& s : {s0, s5, s23, s423}) {
      c.push_back({name + "_" + std::to_string(s.numel()), {s},
                   [op](Tape<double>&, std::span<const V> x) { return op(x[0]); }, d});
    }
  };
  unary("tanh", &tanh<double>, Domain::kAny);
  unary("relu", &relu<double>, Domain::kAwayFromZero);
  unary("softplus", &softplus<double>, Domain::kAny);
  unary("sigmoid", &sigmoid<double>, Domain::kAny);
  unary("exp", &exp<double>, Domain::kAny);
  unary("log", &log<double>, Domain::kPositive);
  unary("square", &square<double>, Domain::kAny);
  unary("sqrt", &sqrt<double>, Domain::kPositive);
  unary("neg", &neg<double>, Domain::kAny);

  unary("sin", &sin<double>, Domain::kAny);
  unary("cos", &cos<double>, Domain::kAny);
  unary("abs", &abs<double>, Domain::kAwayFromZero);
  unary("log1p", &log1p<double>, Domain::kPositive);
  unary("reciprocal", &reciprocal<double>, Domain::kAwayFromZero);
  unary("pow3", [](V x) { return pow(x, 3.0); }, Domain::kAny);
  unary("pow2_5", [](V x) { return pow(x, 2.5); }, Domain::kPositive);
  unary("pow_neg1_5", [](V x) { return pow(x, -1.5); }, Domain::kPositive);
  unary("pow0", [](V x) { return pow(x, 0.0); }, Domain::kAny);
  // Inputs fall in (-2, 2): both bounds active, none within a step of one.
  unary("clamp", [](V x) { return clamp(x, -0.55, 0.75); }, Domain::kAny);
  // Scalars on either side of an operator.
  unary("scalar_minus_x", [](V x) { return 1.0 - x; }, Domain::kAny);
  unary("scalar_over_x", [](V x) { return 2.0 / x; }, Domain::kAwayFromZero);
  unary("one_over_x", [](V x) { return 1.0 / x; }, Domain::kAwayFromZero);
  unary("x_over_scalar", [](V x) { return x / 3.0; }, Domain::kAny);
  unary("scalar_plus_x", [](V x) { return 2.0 + x; }, Domain::kAny);
  unary("scalar_times_x", [](V x) { return 2.0 * x - 0.5; }, Domain::kAny);

  // Every broadcasting pattern, each in both operand orders: equal shapes,
  // scalar, row vector (with and without the leading 1), a missing leading
  // axis of rank 3, a column [n, 1] against [n, d], an outer "product"
  // [n, 1] against [1, d], a middle axis, one element against a vector.
  const Shape s21{2, 1}, s41_3{4, 1, 3}, s1_2_1{1, 2, 1}, s11{1, 1};
  const std::vector<std::pair<Shape, Shape>> patterns = {
      {s23, s23}, {s23, s3},  {s23, s0},   {s423, s3},  {s423, s23}, {s23, s13},
      {s1, s5},   {s21, s23}, {s21, s13},  {s41_3, s423}, {s1_2_1, s423}, {s11, s3},
      {s41_3, s21}};
  auto binary = [&](std::string name, V (*op)(V, V), Domain d) {
    int k = 0;
    for (auto [a, b] : patterns) {
      for (bool swap : {false, true}) {
        if (swap && a == b) continue;
        c.push_back({name + "_" + std::to_string(k++), {swap ? b : a, swap ? a : b},
                     [op](Tape<double>&, std::span<const V> x) { return op(x[0], x[1]); }, d});
      }
    }
  };
  binary("add", &add<double>, Domain::kAny);
  binary("sub", &sub<double>, Domain::kAny);
  binary("mul", &mul<double>, Domain::kAny);
  binary("div", &div<double>, Domain::kAwayFromZero);
  binary("pow", &pow<double>, Domain::kPositive);
  binary("minimum", &minimum<double>, Domain::kAny);
  binary("maximum", &maximum<double>, Domain::kAny);
  // A chain through a broadcast: both operands used twice.
  c.push_back({"mul_broadcast_chain", {s21, s13}, [](Tape<double>&, std::span<const V> x) {
                 return mul(sub(x[0], x[1]), add(x[1], mul(x[0], x[0])));
               }});
  // where(cond, a, b): cond an input away from zero (so a step never flips
  // it; it gets a zero gradient), every pattern over a and b in both orders,
  // and the condition itself broadcast.
  {
    int k = 0;
    for (auto [a, b] : patterns) {
      for (bool swap : {false, true}) {
        if (swap && a == b) continue;
        const Shape sa = swap ? b : a, sb = swap ? a : b;
        for (const Shape& sc : {sa, s0}) {
          c.push_back({"where_" + std::to_string(k++), {sc, sa, sb},
                       [](Tape<double>&, std::span<const V> x) { return where(x[0], x[1], x[2]); },
                       Domain::kAwayFromZero});
        }
      }
    }
    c.push_back({"where_cond_broadcast", {s21, s13, s23},
                 [](Tape<double>&, std::span<const V> x) { return where(x[0], x[1], x[2]); },
                 Domain::kAwayFromZero});
  }
  // broadcast_to and sum_to (the adjoint pair the recorded rules use), on
  // the broadcasting patterns: the small shape against the large one.
  {
    int k = 0;
    for (auto [a, b] : patterns) {
      const Shape big = op::broadcast_shapes("test", a, b);
      for (const Shape& small : {a, b}) {
        c.push_back({"broadcast_to_" + std::to_string(k), {small},
                     [big](Tape<double>&, std::span<const V> x) { return broadcast_to(x[0], big); }});
        c.push_back({"sum_to_" + std::to_string(k++), {big},
                     [small](Tape<double>&, std::span<const V> x) { return sum_to(x[0], small); }});
      }
    }
  }
  for (int axis : {0, 1, 2, -1}) {
    c.push_back({"logsumexp_axis" + std::to_string(axis + 1), {s423},
                 [axis](Tape<double>&, std::span<const V> x) { return logsumexp(x[0], axis); }});
  }
  c.push_back({"logsumexp_vector", {s5}, [](Tape<double>&, std::span<const V> x) { return logsumexp(x[0], 0); }});
  c.push_back({"logsumexp_large", {s23}, [](Tape<double>&, std::span<const V> x) {
                 return logsumexp(scale(x[0], 300.0), 1);
               }});

  c.push_back({"scale", {s23}, [](Tape<double>&, std::span<const V> x) { return scale(x[0], -1.7); }});
  c.push_back({"add_scalar", {s23}, [](Tape<double>&, std::span<const V> x) { return add_scalar(x[0], 0.3); }});
  c.push_back({"lincomb", {s23, s23, s23}, [](Tape<double>&, std::span<const V> x) {
                 const double coeffs[] = {0.5, -2.0, 1.25};
                 return lincomb<double>(x, coeffs);
               }});
  c.push_back({"lincomb_repeated", {s23}, [](Tape<double>&, std::span<const V> x) {
                 const V terms[] = {x[0], x[0]};
                 const double coeffs[] = {0.5, 2.0};
                 return lincomb<double>(terms, coeffs);
               }});
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      Shape a = ta ? Shape{4, 3} : Shape{3, 4};
      Shape b = tb ? Shape{5, 4} : Shape{4, 5};
      c.push_back({std::string("matmul_") + (ta ? "T" : "N") + (tb ? "T" : "N"), {a, b},
                   [ta, tb](Tape<double>&, std::span<const V> x) { return matmul(x[0], x[1], ta, tb); }});
    }
  }
  c.push_back({"linear", {Shape{4, 3}, Shape{5, 3}, Shape{5}},
               [](Tape<double>&, std::span<const V> x) { return linear(x[0], x[1], x[2]); }});
  c.push_back({"linear_nobias", {Shape{4, 3}, Shape{5, 3}},
               [](Tape<double>&, std::span<const V> x) { return linear(x[0], x[1]); }});
  c.push_back({"sum", {s423}, [](Tape<double>&, std::span<const V> x) { return sum(x[0]); }});
  c.push_back({"mean", {s423}, [](Tape<double>&, std::span<const V> x) { return mean(x[0]); }});
  for (int axis : {0, 1, 2, -1}) {
    c.push_back({"sum_axis" + std::to_string(axis + 1), {s423},
                 [axis](Tape<double>&, std::span<const V> x) { return sum(x[0], axis); }});
    c.push_back({"mean_axis" + std::to_string(axis + 1), {s423},
                 [axis](Tape<double>&, std::span<const V> x) { return mean(x[0], axis); }});
  }
  c.push_back({"reshape", {s423}, [](Tape<double>&, std::span<const V> x) {
                 return mul(reshape(x[0], Shape{8, 3}), reshape(x[0], Shape{8, 3}));
               }});
  c.push_back({"slice_last", {s423}, [](Tape<double>&, std::span<const V> x) { return slice_last(x[0], 1, 2); }});
  c.push_back({"slice_last_2d", {Shape{3, 7}}, [](Tape<double>&, std::span<const V> x) { return slice_last(x[0], 0, 4); }});
  c.push_back({"concat_last", {Shape{2, 3}, Shape{2, 1}, Shape{2, 4}},
               [](Tape<double>&, std::span<const V> x) { return concat_last<double>(x); }});
  c.push_back({"concat_axis1", {Shape{2, 3, 2}, Shape{2, 1, 2}},
               [](Tape<double>&, std::span<const V> x) { return concat<double>(x, 1); }});
  c.push_back({"concat_axis0", {Shape{2, 3}, Shape{1, 3}},
               [](Tape<double>&, std::span<const V> x) { return concat<double>(x, 0); }});
  c.push_back({"pad_last", {s423}, [](Tape<double>&, std::span<const V> x) {
                 return mul(pad_last(x[0], 2), pad_last(x[0], 2));
               }});
  c.push_back({"stack", {s23, s23, s23}, [](Tape<double>&, std::span<const V> x) {
                 return mul(stack<double>(x), stack<double>(x));
               }});
  c.push_back({"select", {s423}, [](Tape<double>&, std::span<const V> x) {
                 return add(square(select(x[0], 1)), select(x[0], 3));
               }});
  c.push_back({"mse", {s23, s23}, [](Tape<double>&, std::span<const V> x) { return mse(x[0], x[1]); }});
  c.push_back({"softmax_cross_entropy", {Shape{3, 4}}, [](Tape<double>&, std::span<const V> x) {
                 return softmax_cross_entropy<double>(x[0], kLabels3);
               }});
  c.push_back({"softmax_cross_entropy_1row", {Shape{1, 6}}, [](Tape<double>&, std::span<const V> x) {
                 return softmax_cross_entropy<double>(x[0], kLabels1);
               }});
  // A composite: a two-layer MLP with an MSE loss, every op chained.
  c.push_back({"mlp", {Shape{4, 3}, Shape{5, 3}, Shape{5}, Shape{2, 5}, Shape{2}, Shape{4, 2}},
               [](Tape<double>&, std::span<const V> x) {
                 V h = tanh(linear(x[0], x[1], x[2]));
                 return mse(linear(h, x[3], x[4]), x[5]);
               }});
  return c;
}

class OpGradTest : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpGradTest, MatchesFiniteDifferences) {
  const OpCase& op = GetParam();
  std::mt19937_64 rng(42);
  std::vector<Tensor<double>> inputs;
  for (const Shape& s : op.shapes) inputs.push_back(random_tensor(s, op.domain, rng));
  Fn f = op.f;
  GradCheckResult r = grad_check(
      [&](Tape<double>& t, std::span<const V> x) { return f(t, x); }, inputs);
  EXPECT_TRUE(r.ok) << op.name << ": " << r.message;
}

INSTANTIATE_TEST_SUITE_P(AllOps, OpGradTest, ::testing::ValuesIn(all_cases()),
                         [](const auto& info) { return info.param.name; });

// ---- Forward mode and second order, for every op ----------------------------------------

std::vector<Tensor<double>> sample_inputs(const OpCase& op) {
  std::mt19937_64 rng(42);
  std::vector<Tensor<double>> inputs;
  for (const Shape& s : op.shapes) inputs.push_back(random_tensor(s, op.domain, rng));
  return inputs;
}

class OpJvpTest : public ::testing::TestWithParam<OpCase> {};

// J u by forward mode against central differences along u, and against
// reverse mode by the dot-product identity.
TEST_P(OpJvpTest, MatchesFiniteDifferencesAndVjp) {
  const OpCase& op = GetParam();
  const Fn f = op.f;
  GradCheckOptions options;
  options.rtol = 1e-6;
  options.atol = 1e-8;
  GradCheckResult r = jvp_check([&](Tape<double>& t, std::span<const V> x) { return f(t, x); },
                                sample_inputs(op), options);
  EXPECT_TRUE(r.ok) << op.name << ": " << r.message;
}

INSTANTIATE_TEST_SUITE_P(AllOps, OpJvpTest, ::testing::ValuesIn(all_cases()),
                         [](const auto& info) { return info.param.name; });

class OpHvpTest : public ::testing::TestWithParam<OpCase> {};

// Hessian-vector products (reverse-over-reverse) against central
// differences of gradients and against forward-over-reverse; for the
// piecewise-linear ops (relu, abs, clamp, minimum, maximum) the op's own
// second derivative is zero and the check covers its recorded rules.
TEST_P(OpHvpTest, MatchesFiniteDifferencesOfGradients) {
  const OpCase& op = GetParam();
  const Fn f = op.f;
  GradCheckOptions options;
  options.rtol = 1e-5;
  options.atol = 1e-7;
  options.directions = 2;
  GradCheckResult r = hvp_check([&](Tape<double>& t, std::span<const V> x) { return f(t, x); },
                                sample_inputs(op), options);
  EXPECT_TRUE(r.ok) << op.name << ": " << r.message;
}

INSTANTIATE_TEST_SUITE_P(AllOps, OpHvpTest, ::testing::ValuesIn(all_cases()),
                         [](const auto& info) { return info.param.name; });

// ---- Forward values against plain formulas --------------------------------------------

TEST(OpsForward, BroadcastRowVectorAndScalar) {
  Tape<float> t;
  Tensor<float> a(Shape{2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor<float> b(Shape{3}, {10, 20, 30});
  Tensor<float> s(Shape{}, {2});
  Var<float> y = add(t.constant(a), t.constant(b));
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_FLOAT_EQ(y.data()[4], 25);
  Var<float> z = sub(t.constant(s), t.constant(a));
  EXPECT_FLOAT_EQ(z.data()[5], -4);
  Var<float> w = div(t.constant(a), t.constant(b));
  EXPECT_FLOAT_EQ(w.data()[3], 0.4f);
}

TEST(OpsForward, SoftmaxCrossEntropyIsStableForHugeLogits) {
  Tape<float> t;
  Tensor<float> z(Shape{2, 3}, {1000, 0, -1000, -5e4f, 5e4f, 0});
  std::vector<int> labels = {0, 0};
  Var<float> loss = softmax_cross_entropy<float>(t.constant(z), labels);
  // Row 0: label has all the mass, loss 0. Row 1: loss 1e5.
  EXPECT_NEAR(loss.item(), 0.5f * 1e5f, 1.0f);
  EXPECT_TRUE(std::isfinite(loss.item()));
}

TEST(OpsForward, PadAndSliceAndConcat) {
  Tape<double> t;
  Tensor<double> x(Shape{2, 2}, {1, 2, 3, 4});
  Var<double> p = pad_last(t.constant(x), 3);
  EXPECT_EQ(p.shape(), (Shape{2, 5}));
  EXPECT_EQ(p.to_tensor()[5], 3);
  EXPECT_EQ(p.to_tensor()[9], 0);
  Var<double> s = slice_last(p, 1, 2);
  EXPECT_EQ(s.to_tensor()[0], 2);
  EXPECT_EQ(s.to_tensor()[1], 0);
  V parts[] = {t.constant(x), s};
  Var<double> c = concat_last<double>(parts);
  EXPECT_EQ(c.shape(), (Shape{2, 4}));
  EXPECT_EQ(c.to_tensor()[4], 3);
  EXPECT_EQ(c.to_tensor()[6], 4);
  // The parts may be written in place.
  Var<double> xc = t.constant(x);
  EXPECT_EQ(concat_last({xc, s}).to_tensor()[6], 4);
  EXPECT_EQ(concat({xc, s}, 1).shape(), (Shape{2, 4}));
  EXPECT_EQ(concat({xc, xc}, 0).shape(), (Shape{4, 2}));
  EXPECT_EQ(stack({xc, xc, xc}).shape(), (Shape{3, 2, 2}));
}

TEST(OpsForward, LinearMatchesMatmulPlusBias) {
  Tape<double> t;
  std::mt19937_64 rng(3);
  Tensor<double> x = random_tensor(Shape{7, 5}, Domain::kAny, rng);
  Tensor<double> w = random_tensor(Shape{4, 5}, Domain::kAny, rng);
  Tensor<double> b = random_tensor(Shape{4}, Domain::kAny, rng);
  Var<double> y1 = linear(t.constant(x), t.constant(w), t.constant(b));
  Var<double> y2 = add(matmul(t.constant(x), t.constant(w), false, true), t.constant(b));
  for (Index i = 0; i < y1.size(); ++i) EXPECT_NEAR(y1.data()[i], y2.data()[i], 1e-12);
}

// ---- Broadcasting: result shapes and values against a scalar reference ----------------

// The element of `in` (broadcast to `out`) that feeds out's element `flat`.
Index source_index(const Shape& in, const Shape& out, Index flat) {
  Index idx = 0, stride = 1;
  for (int i = out.rank() - 1, j = in.rank() - 1; j >= 0; --i, --j) {
    const Index coord = flat % out[i];
    flat /= out[i];
    if (in[j] != 1) idx += coord * stride;
    stride *= in[j];
  }
  return idx;
}

template <class T>
void expect_binary_matches(Var<T> (*op)(Var<T>, Var<T>), T (*ref)(T, T), const Shape& sa,
                           const Shape& sb, const Shape& expected, Domain d, const char* what) {
  std::mt19937_64 rng(7);
  const Tensor<double> da = random_tensor(sa, d, rng), db = random_tensor(sb, d, rng);
  Tensor<T> a(sa), b(sb);
  for (Index i = 0; i < a.size(); ++i) a[i] = static_cast<T>(da[i]);
  for (Index i = 0; i < b.size(); ++i) b[i] = static_cast<T>(db[i]);
  Tape<T> t;
  for (bool swap : {false, true}) {
    Var<T> y = swap ? op(t.constant(b.view()), t.constant(a.view()))
                    : op(t.constant(a.view()), t.constant(b.view()));
    ASSERT_EQ(y.shape(), expected) << what << " " << sa.str() << " " << sb.str() << " swap " << swap;
    for (Index i = 0; i < y.size(); ++i) {
      const T u = a[source_index(sa, expected, i)], v = b[source_index(sb, expected, i)];
      const T want = swap ? ref(v, u) : ref(u, v);
      EXPECT_NEAR(y.data()[i], want, 4 * std::numeric_limits<T>::epsilon() * std::abs(want))
          << what << " " << sa.str() << " " << sb.str() << " swap " << swap << " at " << i;
    }
  }
}

struct BroadcastCase {
  Shape a, b, out;
};

const std::vector<BroadcastCase> kBroadcastCases = {
    {Shape{}, Shape{1, 1}, Shape{1, 1}},       {Shape{3}, Shape{1, 3}, Shape{1, 3}},
    {Shape{4, 1}, Shape{4, 5}, Shape{4, 5}},   {Shape{4, 1}, Shape{1, 5}, Shape{4, 5}},
    {Shape{2, 3}, Shape{2, 3}, Shape{2, 3}},   {Shape{}, Shape{2, 3}, Shape{2, 3}},
    {Shape{3, 1, 5}, Shape{4, 1}, Shape{3, 4, 5}}, {Shape{2, 1, 4, 1}, Shape{3, 1, 2}, Shape{2, 3, 4, 2}},
    {Shape{37}, Shape{5, 37}, Shape{5, 37}},   {Shape{0, 3}, Shape{3}, Shape{0, 3}},
    {Shape{1}, Shape{0}, Shape{0}}};

template <class T>
void check_all_binaries() {
  for (const BroadcastCase& c : kBroadcastCases) {
    expect_binary_matches<T>(&add<T>, [](T u, T v) { return u + v; }, c.a, c.b, c.out, Domain::kAny, "add");
    expect_binary_matches<T>(&sub<T>, [](T u, T v) { return u - v; }, c.a, c.b, c.out, Domain::kAny, "sub");
    expect_binary_matches<T>(&mul<T>, [](T u, T v) { return u * v; }, c.a, c.b, c.out, Domain::kAny, "mul");
    expect_binary_matches<T>(&div<T>, [](T u, T v) { return u / v; }, c.a, c.b, c.out, Domain::kAwayFromZero, "div");
    expect_binary_matches<T>(&pow<T>, [](T u, T v) { return std::pow(u, v); }, c.a, c.b, c.out, Domain::kPositive, "pow");
    expect_binary_matches<T>(&minimum<T>, [](T u, T v) { return std::min(u, v); }, c.a, c.b, c.out, Domain::kAny, "minimum");
    expect_binary_matches<T>(&maximum<T>, [](T u, T v) { return std::max(u, v); }, c.a, c.b, c.out, Domain::kAny, "maximum");
  }
}

TEST(OpsBroadcast, ShapesAndValuesMatchNumPyInBothOrders) {
  check_all_binaries<double>();
  check_all_binaries<float>();
}

TEST(OpsBroadcast, ColumnGradientSumsOverTheStretchedAxis) {
  // y = sum(a * b), a [2, 1], b [2, 3]: dy/da[i] = sum_j b[i, j].
  Tape<double> t;
  Tensor<double> a(Shape{2, 1}, {2, -1}), b(Shape{2, 3}, {1, 2, 3, 4, 5, 6});
  V va = t.input(a.view()), vb = t.input(b.view());
  t.backward(sum(mul(vb, va)));
  EXPECT_EQ(t.grad(va)[0], 6);
  EXPECT_EQ(t.grad(va)[1], 15);
  EXPECT_EQ(t.grad(vb)[4], -1);
}

TEST(OpsForward, WhereSelectsAndBroadcasts) {
  Tape<float> t;
  Tensor<float> c(Shape{2, 1}, {1, 0}), a(Shape{3}, {1, 2, 3}), b(Shape{}, {-7});
  Var<float> y = where(t.constant(c.view()), t.constant(a.view()), t.constant(b.view()));
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  const float want[] = {1, 2, 3, -7, -7, -7};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y.data()[i], want[i]);
}

template <class T>
void check_unaries() {
  std::mt19937_64 rng(11);
  const Tensor<double> d = random_tensor(Shape{3, 37}, Domain::kPositive, rng);
  Tensor<T> x(d.shape());
  for (Index i = 0; i < x.size(); ++i) x[i] = static_cast<T>(i % 2 ? -d[i] : d[i]);
  Tensor<T> pos(d.shape());
  for (Index i = 0; i < x.size(); ++i) pos[i] = static_cast<T>(d[i]);
  Tape<T> t;
  Var<T> vx = t.constant(x.view()), vp = t.constant(pos.view());
  struct Case {
    const char* name;
    Var<T> y;
    std::function<T(T, T)> ref;  // (x, positive x)
    double ulps;
  };
  const Case cases[] = {
      {"sin", sin(vx), [](T u, T) { return std::sin(u); }, 4},
      {"cos", cos(vx), [](T u, T) { return std::cos(u); }, 4},
      {"abs", abs(vx), [](T u, T) { return std::abs(u); }, 0},
      {"log1p", log1p(vp), [](T, T p) { return std::log1p(p); }, 4},
      {"reciprocal", reciprocal(vx), [](T u, T) { return T(1) / u; }, 0},
      {"pow", pow(vp, 1.7), [](T, T p) { return std::pow(p, T(1.7)); }, 0},
      {"clamp", clamp(vx, -0.5, 1.0), [](T u, T) { return std::clamp(u, T(-0.5), T(1)); }, 0},
      {"1 - x", 1.0 - vx, [](T u, T) { return T(1) - u; }, 0},
      {"2 / x", 2.0 / vx, [](T u, T) { return T(2) / u; }, 2},
      {"x / 4", vx / 4.0, [](T u, T) { return u / T(4); }, 0},
      {"3 + x", 3.0 + vx, [](T u, T) { return T(3) + u; }, 0},
  };
  for (const Case& c : cases) {
    ASSERT_EQ(c.y.shape(), x.shape()) << c.name;
    for (Index i = 0; i < x.size(); ++i) {
      const T want = c.ref(x[i], pos[i]);
      EXPECT_NEAR(c.y.data()[i], want,
                  c.ulps * std::numeric_limits<T>::epsilon() * std::max<T>(std::abs(want), T(1e-30)))
          << c.name << " at " << i << " x " << x[i];
    }
  }
}

TEST(OpsForward, ElementwiseMatchStdInFloatAndDouble) {
  check_unaries<double>();
  check_unaries<float>();
}

TEST(OpsForward, NonSmoothPointsTakeTheDocumentedSide) {
  Tape<double> t;
  Tensor<double> x(Shape{4}, {0.0, -1.0, 1.0, 2.0});
  V vx = t.input(x.view());
  // abs at 0: 0; clamp at its bounds: passes; a tie in minimum: half each.
  V y = add(add(sum(abs(vx)), sum(clamp(vx, -1.0, 1.0))), sum(minimum(vx, vx)));
  t.backward(y);
  EXPECT_EQ(t.grad(vx)[0], 0 + 1 + 1);
  EXPECT_EQ(t.grad(vx)[1], -1 + 1 + 1);
  EXPECT_EQ(t.grad(vx)[2], 1 + 1 + 1);
  EXPECT_EQ(t.grad(vx)[3], 1 + 0 + 1);
  Tensor<double> a(Shape{1}, {3.0}), b(Shape{1}, {3.0});
  V va = t.input(a.view()), vb = t.input(b.view());
  t.backward(maximum(va, vb));
  EXPECT_EQ(t.grad(va)[0], 0.5);
  EXPECT_EQ(t.grad(vb)[0], 0.5);
}

TEST(OpsForward, LogSumExpIsStable) {
  Tape<float> t;
  Tensor<float> x(Shape{2, 3}, {1000, 1000, -1e30f, -1000, -1001, -1002});
  Var<float> y = logsumexp(t.constant(x.view()), 1);
  ASSERT_EQ(y.shape(), (Shape{2}));
  EXPECT_NEAR(y.data()[0], 1000 + std::log(2.0f), 1e-3f);
  const double ref = -1000 + std::log(1 + std::exp(-1.0) + std::exp(-2.0));
  EXPECT_NEAR(y.data()[1], ref, 1e-3);
  Tensor<float> ninf(Shape{2}, {-INFINITY, -INFINITY});
  EXPECT_EQ(logsumexp(t.constant(ninf.view()), 0).item(), -INFINITY);
  Tensor<double> xd(Shape{3, 2}, {0.5, -1, 2, 0, -3, 1.5});
  Tape<double> td;
  V yd = logsumexp(td.constant(xd.view()), 0);
  for (int j = 0; j < 2; ++j) {
    double acc = 0;
    for (int i = 0; i < 3; ++i) acc += std::exp(xd[i * 2 + j]);
    EXPECT_NEAR(yd.data()[j], std::log(acc), 1e-14);
  }
}

TEST(OpsForward, ScalarOperatorsWithDoubleLiteralsOnFloat) {
  Tape<float> t;
  Tensor<float> x(Shape{2}, {2, -4});
  Var<float> v = t.constant(x.view());
  EXPECT_EQ((1.0 - v).data()[1], 5.0f);
  EXPECT_EQ((1.0 / v).data()[0], 0.5f);
  EXPECT_EQ((v / 2.0).data()[1], -2.0f);
  EXPECT_EQ((2.0 + v).data()[0], 4.0f);
  EXPECT_EQ((v * 0.5).data()[0], 1.0f);
  EXPECT_EQ((3.0 * v - 1.0).data()[1], -13.0f);
}

// ---- Errors name the op and the shapes or values -------------------------------------

using testing::expect_error;

TEST(OpsErrors, BroadcastMismatch) {
  Tape<float> t;
  Tensor<float> a(Shape{2, 3}), b(Shape{2}), c(Shape{3, 1}), d(Shape{4, 2, 3});
  expect_error<ShapeError>([&] { add(t.constant(a), t.constant(b)); }, {"add", "[2, 3]", "[2]"});
  expect_error<ShapeError>([&] { mul(t.constant(b), t.constant(a)); }, {"mul", "[2]", "[2, 3]"});
  expect_error<ShapeError>([&] { sub(t.constant(c), t.constant(a)); }, {"sub", "[3, 1]", "[2, 3]", "3 vs 2"});
  expect_error<ShapeError>([&] { div(t.constant(d), t.constant(c)); }, {"div", "[4, 2, 3]", "[3, 1]"});
  expect_error<ShapeError>([&] { pow(t.constant(a), t.constant(b)); }, {"pow", "[2, 3]", "[2]"});
  expect_error<ShapeError>([&] { minimum(t.constant(a), t.constant(c)); }, {"minimum", "[2, 3]", "[3, 1]"});
  expect_error<ShapeError>([&] { maximum(t.constant(c), t.constant(a)); }, {"maximum", "[3, 1]", "[2, 3]"});
  expect_error<ShapeError>([&] { where(t.constant(b), t.constant(a), t.constant(a)); },
                           {"where", "[2]", "[2, 3]"});
}

TEST(OpsErrors, NewOpsNameTheirValues) {
  Tape<float> t;
  Tensor<float> a(Shape{2, 3});
  expect_error<ValueError>([&] { clamp(t.constant(a), 1.0, -1.0); }, {"clamp", "lo 1", "hi -1"});
  expect_error<ValueError>([&] { clamp(t.constant(a), NAN, 1.0); }, {"clamp", "nan"});
  expect_error<ShapeError>([&] { logsumexp(t.constant(a), 2); }, {"logsumexp", "axis 2", "[2, 3]"});
  expect_error<ShapeError>([&] { logsumexp(t.constant(a), -3); }, {"logsumexp", "axis -3"});
  Tensor<float> empty(Shape{2, 0});
  expect_error<ValueError>([&] { logsumexp(t.constant(empty), 1); }, {"logsumexp", "empty", "[2, 0]"});
  expect_error<ValueError>([&] { sin(Var<float>()); }, {"sin", "empty Var"});
  Tape<float> other;
  expect_error<ValueError>([&] { where(t.constant(a), other.constant(a), t.constant(a)); },
                           {"where", "different tapes"});
}

TEST(OpsErrors, MatmulAndLinear) {
  Tape<float> t;
  Tensor<float> a(Shape{2, 3}), b(Shape{2, 3}), v(Shape{3});
  expect_error<ShapeError>([&] { matmul(t.constant(a), t.constant(b)); }, {"matmul", "[2, 3]"});
  expect_error<ShapeError>([&] { matmul(t.constant(a), t.constant(v)); }, {"matmul", "rank 2", "[3]"});
  Tensor<float> w(Shape{4, 2});
  expect_error<ShapeError>([&] { linear(t.constant(a), t.constant(w)); }, {"linear", "[2, 3]", "[4, 2]"});
  Tensor<float> w2(Shape{4, 3}), bad_bias(Shape{3});
  expect_error<ShapeError>([&] { linear(t.constant(a), t.constant(w2), t.constant(bad_bias)); },
                           {"linear", "bias", "[3]"});
}

TEST(OpsErrors, LossesAndLabels) {
  Tape<float> t;
  Tensor<float> z(Shape{2, 3});
  std::vector<int> bad = {0, 3};
  expect_error<ValueError>([&] { softmax_cross_entropy<float>(t.constant(z), bad); },
                           {"softmax_cross_entropy", "label 3", "row 1", "[0, 3)"});
  std::vector<int> negative = {-1, 0};
  expect_error<ValueError>([&] { softmax_cross_entropy<float>(t.constant(z), negative); }, {"label -1"});
  std::vector<int> short_labels = {0};
  expect_error<ShapeError>([&] { softmax_cross_entropy<float>(t.constant(z), short_labels); },
                           {"1 labels", "[2, 3]"});
  Tensor<float> empty(Shape{0, 3});
  std::vector<int> none;
  expect_error<ValueError>([&] { softmax_cross_entropy<float>(t.constant(empty), none); }, {"empty"});
  Tensor<float> y(Shape{2, 2});
  expect_error<ShapeError>([&] { mse(t.constant(z), t.constant(y)); }, {"mse", "[2, 3]", "[2, 2]"});
  expect_error<ValueError>([&] { mse(t.constant(empty), t.constant(empty)); }, {"mse", "empty"});
  expect_error<ValueError>([&] { mean(t.constant(empty)); }, {"mean", "empty"});
}

TEST(OpsErrors, ShapeOps) {
  Tape<float> t;
  Tensor<float> x(Shape{2, 3});
  expect_error<ShapeError>([&] { reshape(t.constant(x), Shape{4, 2}); }, {"reshape", "[2, 3]", "[4, 2]"});
  expect_error<ShapeError>([&] { slice_last(t.constant(x), 2, 2); }, {"slice_last", "[2, 4)", "[2, 3]"});
  expect_error<ValueError>([&] { pad_last(t.constant(x), -1); }, {"pad_last", "-1"});
  Tensor<float> y(Shape{3, 3});
  Var<float> parts[] = {t.constant(x), t.constant(y)};
  expect_error<ShapeError>([&] { concat_last<float>(parts); }, {"concat_last", "[3, 3]", "[2, 3]"});
  expect_error<ShapeError>([&] { concat<float>(parts, 1); }, {"concat", "axis 1"});
  expect_error<ShapeError>([&] { sum(t.constant(x), 2); }, {"axis 2", "[2, 3]"});
  expect_error<ShapeError>([&] { select(t.constant(x), 2); }, {"select", "index 2", "[2, 3]"});
  Var<float> mixed[] = {t.constant(x), t.constant(y)};
  expect_error<ShapeError>([&] { stack<float>(mixed); }, {"stack", "[3, 3]", "[2, 3]"});
  float c[] = {1.0f};
  Var<float> one[] = {t.constant(x), t.constant(x)};
  expect_error<ValueError>([&] { lincomb<float>(one, c); }, {"lincomb", "2 terms", "1 coefficients"});
}

TEST(OpsErrors, VarsFromDifferentTapes) {
  Tape<float> t1, t2;
  Tensor<float> x(Shape{2});
  expect_error<ValueError>([&] { add(t1.constant(x), t2.constant(x)); }, {"add", "different tapes"});
  expect_error<ValueError>([&] { tanh(Var<float>()); }, {"tanh", "empty Var"});
}

}  // namespace
}  // namespace anode
