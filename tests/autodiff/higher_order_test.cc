// Higher-order differentiation on the tape: gradients recorded as ops
// (Tape::gradients), forward mode (Tape::ForwardMode, jvp), hvp; gradients of
// gradients against finite differences, including through a backprop ODE
// solve; and the errors a user meets when a derivative cannot be taken.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "autodiff/functional.h"
#include "autodiff/grad_check.h"
#include "autodiff/op_kit.h"
#include "autodiff/ops.h"
#include "ode/solver.h"
#include "tests/support/expect_error.h"

namespace anode {
namespace {

using testing::expect_error;
using V = Var<double>;

Tensor<double> random_tensor(const Shape& s, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Tensor<double> t(s);
  for (double& e : t) e = u(rng);
  return t;
}

// Tensors that back input() leaves (which reference their data) for the
// length of a test.
struct Store {
  std::vector<std::unique_ptr<Tensor<double>>> kept;
  TensorView<const double> operator()(const Shape& s, std::uint64_t seed) {
    kept.push_back(std::make_unique<Tensor<double>>(random_tensor(s, seed)));
    return kept.back()->view();
  }
};

// Options for a function that takes gradients of its own inputs.
GradCheckOptions nested() {
  GradCheckOptions o;
  o.nested = true;
  return o;
}

// A small MLP loss with its parameters as inputs: x [4, 3], w1 [5, 3],
// b1 [5], w2 [2, 5], target [4, 2].
V mlp_loss(Tape<double>&, std::span<const V> v) {
  V h = tanh(linear(v[0], v[1], v[2]));
  return mse(linear(h, v[3]), v[4]);
}

std::vector<Tensor<double>> mlp_inputs() {
  return {random_tensor({4, 3}, 1), random_tensor({5, 3}, 2), random_tensor({5}, 3),
          random_tensor({2, 5}, 4), random_tensor({4, 2}, 5)};
}

// grad of a function that itself takes a recorded gradient: the gradient of
// the squared gradient norm, |d loss / d inputs|^2, against finite
// differences (grad_check differentiates the outer function in reverse).
TEST(GradOfGrad, SquaredGradientNormMatchesFiniteDifferences) {
  auto f = [](Tape<double>& t, std::span<const V> v) {
    const std::vector<V> g = t.gradients(mlp_loss(t, v), v);
    V s = t.scalar(0);
    for (const V& gi : g) s = s + sum(square(gi));
    return s;
  };
  GradCheckResult r = grad_check(f, mlp_inputs(), nested());
  EXPECT_TRUE(r.ok) << r.message;
}

// A vector-Jacobian product inside the function, with a cotangent that is
// itself differentiable (FFJORD's e^T df/dh), differentiated again.
TEST(GradOfGrad, VjpWithDifferentiableCotangent) {
  auto f = [](Tape<double>& t, std::span<const V> v) {
    const V y = tanh(matmul(v[0], v[1]));  // [3, 2]
    const V x[] = {v[0]};
    const V cot[] = {sin(v[2])};
    const V ys[] = {y};
    const V g = t.gradients(ys, cot, x)[0];  // sin(e)^T dy/dx
    return sum(mul(g, v[0]));
  };
  GradCheckResult r =
      grad_check(f, std::vector<Tensor<double>>{random_tensor({3, 4}, 7), random_tensor({4, 2}, 8),
                                                random_tensor({3, 2}, 9)},
                 nested());
  EXPECT_TRUE(r.ok) << r.message;
}

// Third order: the gradient of an HVP-like quantity.
TEST(GradOfGrad, ThirdOrderOfAScalarFunction) {
  // f(x) = sum(x^4): d/dx of <grad(grad f . u), u> = 24 x u^2... checked by FD.
  const Tensor<double> u = random_tensor({5}, 12);
  auto f = [&](Tape<double>& t, std::span<const V> v) {
    const V g = t.gradients(sum(pow(v[0], 4.0)), v)[0];
    const V hu = t.gradients(sum(mul(g, t.constant(u.view()))), v)[0];
    return sum(mul(hu, t.constant(u.view())));
  };
  GradCheckResult r = grad_check(f, std::vector<Tensor<double>>{random_tensor({5}, 13)}, nested());
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Hvp, MlpAgainstFiniteDifferencesAndForwardOverReverse) {
  GradCheckOptions options;
  options.rtol = 1e-5;
  options.atol = 1e-7;
  GradCheckResult r = hvp_check([](Tape<double>& t, std::span<const V> v) { return mlp_loss(t, v); }, mlp_inputs(), options);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Jvp, MlpAgainstFiniteDifferencesAndVjp) {
  GradCheckResult r = jvp_check([](Tape<double>& t, std::span<const V> v) { return mlp_loss(t, v); }, mlp_inputs());
  EXPECT_TRUE(r.ok) << r.message;
}

// Parameters are leaves whose numeric backward accumulates into
// Parameter::grad; a recorded gradient leaves those buffers alone, and the
// outer backward then accumulates d(outer)/dtheta only.
TEST(Gradients, LeaveParameterBuffersAloneAndDifferentiateThem) {
  Store keep;
  Parameter<double> w("w", random_tensor({3}, 21));
  Tape<double> tape;
  const V x = tape.input(keep({3}, 22));
  const V pw = tape.param(w);
  const V y = sum(mul(square(x), pw));  // dy/dx = 2 x w
  const V xs[] = {x};
  const V g = tape.gradients(y, xs)[0];
  for (double e : w.grad()) EXPECT_EQ(e, 0.0);
  tape.backward(sum(g));  // d/dw sum(2 x w) = 2 x
  for (Index i = 0; i < 3; ++i) {
    EXPECT_NEAR(w.grad()[i], 2 * x.data()[i], 1e-14);
    EXPECT_NEAR(tape.grad(x)[i], 2 * w.value()[i], 1e-14);
  }
}

TEST(Gradients, UnreachedAndConstantValuesGetZeros) {
  Store keep;
  Tape<double> tape;
  const V x = tape.input(keep({2}, 1));
  const V c = tape.constant_copy(random_tensor({2}, 2).view());
  const V z = tape.input(keep({3}, 3));
  const V wrt[] = {x, c, z};
  const std::vector<V> g = tape.gradients(sum(mul(x, c)), wrt);
  for (Index i = 0; i < 2; ++i) EXPECT_EQ(g[0].data()[i], c.data()[i]);
  for (Index i = 0; i < 2; ++i) EXPECT_EQ(g[1].data()[i], 0.0);
  for (Index i = 0; i < 3; ++i) EXPECT_EQ(g[2].data()[i], 0.0);
}

// Float: the recorded gradient equals the numeric backward's bit for bit
// on an MLP (same kernels, same order).
TEST(Gradients, FloatRecordedGradientMatchesNumeric) {
  Tape<float> tape;
  Tensor<float> xs(Shape{4, 3}), ws(Shape{5, 3});
  for (Index i = 0; i < xs.size(); ++i) xs[i] = std::sin(float(i));
  for (Index i = 0; i < ws.size(); ++i) ws[i] = std::cos(float(i));
  const Var<float> x = tape.input(xs.view()), w = tape.input(ws.view());
  const Var<float> y = sum(tanh(linear(x, w)));
  const Var<float> wrt[] = {x, w};
  const std::vector<Var<float>> g = tape.gradients(y, wrt);
  tape.backward(y);
  for (Index i = 0; i < xs.size(); ++i) EXPECT_FLOAT_EQ(g[0].data()[i], tape.grad(x)[i]);
  for (Index i = 0; i < ws.size(); ++i) EXPECT_FLOAT_EQ(g[1].data()[i], tape.grad(w)[i]);
}

// ---- Through an ODE solve ---------------------------------------------------------

// A gradient of a gradient through a backprop solve: the gradient of
// |d h(1) / d h0 . e|^2-like quantity against finite differences.
TEST(GradOfGrad, ThroughABackpropOdeSolve) {
  const Tensor<double> e = random_tensor({2, 2}, 31);
  for (ode::Method m : {ode::Method::kRk4, ode::Method::kDopri5}) {
    auto f = [&](Tape<double>& t, std::span<const V> v) {
      const V a = v[1];
      ode::FunctionDynamics<double> dyn([a](double, V h) { return tanh(matmul(h, a)); });
      ode::SolverOptions o;
      o.method = m;
      if (m == ode::Method::kRk4) o.steps = 8;
      o.rtol = 1e-8;
      o.atol = 1e-8;
      o.gradient = ode::Gradient::kBackprop;
      const V h1 = ode::odeint(dyn, v[0], {0.0, 1.0}, o);
      const V x[] = {v[0]};
      const V g = t.gradients(sum(mul(h1, t.constant(e.view()))), x)[0];  // e^T dh1/dh0
      return sum(square(g));
    };
    GradCheckResult r = grad_check(
        f, std::vector<Tensor<double>>{random_tensor({2, 2}, 32), random_tensor({2, 2}, 33)},
        nested());
    EXPECT_TRUE(r.ok) << ode::method_name(m) << ": " << r.message;
  }
}

// The adjoint method's solve is one node with a numeric backward only: a
// recorded gradient through it is refused, naming it.
TEST(GradOfGrad, AdjointSolveIsRefusedByName) {
  Store keep;
  Tape<double> tape;
  const V a = tape.input(keep({2, 2}, 41));
  const V h0 = tape.input(keep({3, 2}, 42));
  ode::FunctionDynamics<double> dyn([a](double, V h) { return tanh(matmul(h, a)); });
  ode::SolverOptions o;
  o.gradient = ode::Gradient::kAdjoint;
  const V h1 = ode::odeint(dyn, h0, {0.0, 1.0}, o);
  const V x[] = {h0};
  expect_error<ValueError>([&] { tape.gradients(sum(h1), x); },
                           {"gradients", "no recordable backward rule"});
  Tape<double> t2;
  Tape<double>::ForwardMode forward(t2);
  const V h2 = t2.input(keep({3, 2}, 42));
  t2.set_tangent(h2, t2.constant_copy(random_tensor({3, 2}, 43).view()));
  const V a2 = t2.constant_copy(random_tensor({2, 2}, 41).view());
  ode::FunctionDynamics<double> dyn2([a2](double, V h) { return tanh(matmul(h, a2)); });
  expect_error<ValueError>([&] { ode::odeint(dyn2, h2, {0.0, 1.0}, o); }, {"jvp"});
}

// The README's example, with the closed forms: f = sum(x sin x),
// df/dx = sin x + x cos x, d2f/dx2 = 2 cos x - x sin x (diagonal).
TEST(Readme, JvpHvpAndGradOfGrad) {
  auto f = [](Tape<double>&, std::span<const Var<double>> x) { return sum(sin(x[0]) * x[0]); };
  auto grad_norm2 = [&](Tape<double>& t, std::span<const Var<double>> x) {
    Var<double> g = t.gradients(f(t, x), x)[0];
    return sum(square(g));
  };
  std::vector<Tensor<double>> x = {Tensor<double>(Shape{3}, 0.5)};
  std::vector<Tensor<double>> v = {Tensor<double>(Shape{3}, 1.0)};
  std::vector<Tensor<double>> d = grad<double>(grad_norm2, x);
  HvpResult<double> h = hvp<double>(f, x, v);
  JvpResult<double> j = jvp<double>(f, x, v);
  const double g = std::sin(0.5) + 0.5 * std::cos(0.5), hd = 2 * std::cos(0.5) - 0.5 * std::sin(0.5);
  for (Index i = 0; i < 3; ++i) {
    EXPECT_NEAR(h.hvps[0][i], hd, 1e-15);
    EXPECT_NEAR(d[0][i], 2 * hd * g, 1e-15);
  }
  EXPECT_NEAR(j.tangent[0], 3 * g, 1e-15);
}

// ---- Errors -------------------------------------------------------------------------

// A user op written with only a numeric backward (no OpRules).
template <class T>
void cube_backward(Tape<T>& t, const Node<T>& nd) {
  op::Grad<T> gx = t.in_grad(nd, 0);
  if (!gx) return;
  for (Index i = 0; i < gx.size; ++i) gx.put(i, t.out_adj(nd)[i] * 3 * t.in_value(nd, 0)[i] * t.in_value(nd, 0)[i]);
}
template <class T>
Var<T> cube(Var<T> x) {
  Tape<T>& t = op::tape_of("cube", x);
  auto [y, out] = t.make_output(x.shape());
  for (Index i = 0; i < x.size(); ++i) out[i] = x.data()[i] * x.data()[i] * x.data()[i];
  t.record(y, {x}, op::make_node<T>("cube", &cube_backward<T>));
  return y;
}

TEST(HigherOrderErrors, OpWithoutRulesIsNamed) {
  const std::vector<Tensor<double>> x = {random_tensor({3}, 1)};
  auto f = [](Tape<double>&, std::span<const V> v) { return sum(cube(v[0])); };
  expect_error<ValueError>([&] { jvp<double>(f, x, x); }, {"jvp", "'cube'", "forward-mode rule"});
  expect_error<ValueError>([&] { hvp<double>(f, x, x); }, {"gradients", "'cube'", "recordable"});
  // First order still works.
  EXPECT_NEAR(grad<double>(f, x)[0][1], 3 * x[0][1] * x[0][1], 1e-14);
}

TEST(HigherOrderErrors, TangentsUnderNoGradAreRefused) {
  Store keep;
  Tape<double> tape;
  Tape<double>::ForwardMode forward(tape);
  const V x = tape.input(keep({3}, 1));
  tape.set_tangent(x, tape.constant_copy(random_tensor({3}, 2).view()));
  Tape<double>::NoGradGuard no_grad(tape);
  expect_error<ValueError>([&] { tanh(x); }, {"jvp", "NoGradGuard", "tangent would be lost"});
}

TEST(HigherOrderErrors, BadArguments) {
  Store keep;
  Tape<double> tape, other;
  const V x = tape.input(keep({3}, 1));
  const V c = tape.constant_copy(random_tensor({3}, 2).view());
  expect_error<ValueError>([&] { tape.set_tangent(c, x); }, {"set_tangent", "needs no gradient"});
  expect_error<ShapeError>([&] { tape.set_tangent(x, tape.zeros(Shape{2})); }, {"set_tangent", "[2]", "[3]"});
  const V o = other.input(keep({3}, 3));
  const V wrt[] = {o};
  expect_error<ValueError>([&] { tape.gradients(sum(x), wrt); }, {"gradients", "not a Var on this tape"});
  const V xs[] = {x};
  expect_error<ShapeError>([&] { tape.gradients(x, xs); }, {"gradients", "one element"});
  const std::vector<Tensor<double>> in = {random_tensor({3}, 1)};
  const std::vector<Tensor<double>> bad = {random_tensor({2}, 1)};
  auto f = [](Tape<double>&, std::span<const V> v) { return sum(v[0]); };
  expect_error<ShapeError>([&] { jvp<double>(f, in, bad); }, {"jvp", "tangent 0", "[2]"});
  expect_error<ValueError>([&] { hvp<double>(f, in, {}); }, {"hvp", "1 inputs but 0"});
  auto vec = [](Tape<double>&, std::span<const V> v) { return v[0]; };
  expect_error<ShapeError>([&] { hvp<double>(vec, in, in); }, {"hvp", "one element"});
}

}  // namespace
}  // namespace anode
