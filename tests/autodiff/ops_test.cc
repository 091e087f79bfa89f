// Every differentiable op: a finite-difference gradient check (double) on
// several shapes, broadcasting included, and its error messages.
#include "autodiff/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "autodiff/grad_check.h"
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
  auto unary = [&](std::string name, V (*op)(V), Domain d) {
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

  auto binary = [&](std::string name, V (*op)(V, V), Domain d) {
    const std::vector<std::pair<Shape, Shape>> pairs = {
        {s23, s23}, {s23, s3}, {s3, s23}, {s23, s0}, {s0, s23}, {s423, s3}, {s423, s23}, {s23, s13}, {s13, s23}, {s1, s5}};
    int k = 0;
    for (auto [a, b] : pairs) {
      c.push_back({name + "_" + std::to_string(k++), {a, b},
                   [op](Tape<double>&, std::span<const V> x) { return op(x[0], x[1]); }, d});
    }
  };
  binary("add", &add<double>, Domain::kAny);
  binary("sub", &sub<double>, Domain::kAny);
  binary("mul", &mul<double>, Domain::kAny);
  binary("div", &div<double>, Domain::kAwayFromZero);

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

// ---- Errors name the op and the shapes or values -------------------------------------

using testing::expect_error;

TEST(OpsErrors, BroadcastMismatch) {
  Tape<float> t;
  Tensor<float> a(Shape{2, 3}), b(Shape{2});
  expect_error<ShapeError>([&] { add(t.constant(a), t.constant(b)); }, {"add", "[2, 3]", "[2]"});
  expect_error<ShapeError>([&] { mul(t.constant(b), t.constant(a)); }, {"mul", "[2, 3]", "[2]"});
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
