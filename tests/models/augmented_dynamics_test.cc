// CNF and RNODE dynamics: the exact trace on a linear flow, the gradient of
// their losses against finite differences (backprop), and the adjoint method
// against backprop for these augmented states (the VJP inside f evaluated
// again on the adjoint's nested scope), plus the OdeBlock's RNODE term.
#include "models/augmented_dynamics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autodiff/functional.h"
#include "autodiff/grad_check.h"
#include "autodiff/ops.h"
#include "models/ode_block.h"
#include "ode/solver.h"
#include "tests/support/expect_error.h"

namespace anode::models {
namespace {

using V = Var<double>;

Tensor<double> random_tensor(const Shape& s, std::uint64_t seed, double scale = 1.0) {
  datasets::Rng rng(seed);
  Tensor<double> t(s);
  for (double& e : t) e = scale * rng.uniform(-1.0, 1.0);
  return t;
}

// f(t, z) = tanh(z W1 + t) W2: weights as captured Vars (every gradient
// method differentiates captured values).
ode::FunctionDynamics<double> mlp(V w1, V w2) {
  return ode::FunctionDynamics<double>([w1, w2](double t, V z) {
    return matmul(tanh(add_scalar(matmul(z, w1), t)), w2);
  });
}

ode::SolverOptions tight(ode::Gradient g) {
  ode::SolverOptions o;
  o.method = ode::Method::kDopri5;
  o.rtol = 1e-10;
  o.atol = 1e-10;
  o.gradient = g;
  return o;
}

// On f(z) = z A^T, tr(df/dz) = tr(A): l(T) = T tr(A) for every row.
TEST(CnfDynamics, ExactTraceOfALinearFlow) {
  Tape<double> tape;
  const Tensor<double> a = random_tensor({2, 2}, 1);
  const V av = tape.constant(a.view());
  ode::FunctionDynamics<double> f([av](double, V z) { return matmul(z, av, false, true); });
  CnfDynamics<double> cnf(f, 2);
  const Tensor<double> x = random_tensor({5, 2}, 2);
  const V h1 = ode::odeint(cnf, pad_last(tape.constant(x.view()), 1), {0.0, 0.7}, tight(ode::Gradient::kBackprop));
  for (Index b = 0; b < 5; ++b) EXPECT_NEAR(h1.data()[b * 3 + 2], 0.7 * (a[0] + a[3]), 1e-9);
}

// The loss -mean(log p(x)) with Hutchinson's estimator, d/d(W1, W2, x) by
// backprop through RK4 against finite differences.
TEST(CnfDynamics, HutchinsonLossGradientMatchesFiniteDifferences) {
  Tensor<double> e(Shape{4, 2});
  datasets::Rng rng(3);
  sample_noise(Noise::kRademacher, e, rng);
  auto loss = [&](Tape<double>&, std::span<const V> v) {
    ode::FunctionDynamics<double> f = mlp(v[0], v[1]);
    CnfDynamics<double> cnf(f, 2);
    cnf.use_hutchinson(&e);
    ode::SolverOptions o;
    o.method = ode::Method::kRk4;
    o.steps = 6;
    const V h1 = ode::odeint(cnf, pad_last(v[2], 1), {0.0, 1.0}, o);
    const V z = slice_last(h1, 0, 2);
    return neg(mean(add(scale(sum(square(z), 1), -0.5), reshape(slice_last(h1, 2, 1), Shape{4}))));
  };
  GradCheckResult r = grad_check(loss, std::vector<Tensor<double>>{random_tensor({2, 5}, 4), random_tensor({5, 2}, 5),
                                                                   random_tensor({4, 2}, 6)});
  EXPECT_TRUE(r.ok) << r.message;
}

// d loss / d(W1, W2, x) by the adjoint method equals backprop's to the
// solves' tolerance, for the CNF state [z, l] and the RNODE state [h, k, j].
void expect_adjoint_matches_backprop(bool cnf_state) {
  const std::vector<Tensor<double>> inputs = {random_tensor({2, 6}, 7), random_tensor({6, 2}, 8),
                                              random_tensor({3, 2}, 9)};
  Tensor<double> e(Shape{3, 2});
  datasets::Rng rng(10);
  sample_noise(Noise::kGaussian, e, rng);
  std::vector<Tensor<double>> g[2];
  double value[2];
  for (int m = 0; m < 2; ++m) {
    const ode::Gradient method = m == 0 ? ode::Gradient::kBackprop : ode::Gradient::kAdjoint;
    // The dynamics must outlive the backward pass (the adjoint calls it).
    Tape<double> tape;
    std::vector<V> v;
    for (const Tensor<double>& x : inputs) v.push_back(tape.input(x.view()));
    ode::FunctionDynamics<double> f = mlp(v[0], v[1]);
    CnfDynamics<double> cnf(f, 2);
    cnf.use_hutchinson(&e);
    RegularizedDynamics<double> reg(f, {2}, true);
    reg.set_noise(&e);
    V loss;
    if (cnf_state) {
      const V h1 = ode::odeint(cnf, pad_last(v[2], 1), {0.0, 1.0}, tight(method));
      loss = add(sum(square(slice_last(h1, 0, 2))), sum(slice_last(h1, 2, 1)));
    } else {
      const V h1 = ode::odeint(reg, RegularizedDynamics<double>::augment(v[2]), {0.0, 1.0}, tight(method));
      loss = add(sum(square(reg.state(h1))),
                 add(mean(RegularizedDynamics<double>::kinetic(h1)), mean(RegularizedDynamics<double>::jacobian(h1))));
    }
    tape.backward(loss);
    value[m] = loss.item();
    for (const V& x : v) g[m].push_back(Tensor<double>::from_view(tape.grad(x)));
  }
  EXPECT_NEAR(value[0], value[1], 1e-12);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    for (Index k = 0; k < g[0][i].size(); ++k) {
      EXPECT_NEAR(g[1][i][k], g[0][i][k], 1e-6 * std::max(1.0, std::abs(g[0][i][k])))
          << (cnf_state ? "cnf" : "rnode") << " input " << i << " element " << k;
    }
  }
}

TEST(CnfDynamics, AdjointMatchesBackprop) { expect_adjoint_matches_backprop(true); }
TEST(RegularizedDynamics, AdjointMatchesBackprop) { expect_adjoint_matches_backprop(false); }

// k(T) = integral of |f|^2: for f = c (a constant field), k(T) = T |c|^2;
// the Jacobian term of a constant field is 0, of f = a z it is T a^2 |e|^2.
TEST(RegularizedDynamics, IntegralsOfSimpleFields) {
  Tape<double> tape;
  Tensor<double> e(Shape{2, 3}, 1.0);
  ode::FunctionDynamics<double> f([](double, V h) { return scale(h, 0.5); });
  RegularizedDynamics<double> reg(f, {3}, true);
  reg.set_noise(&e);
  const Tensor<double> x(Shape{2, 3}, 1.0);
  const V h1 = ode::odeint(reg, RegularizedDynamics<double>::augment(tape.constant(x.view())), {0.0, 2.0},
                           tight(ode::Gradient::kBackprop));
  // h(t) = e^(t/2): |f|^2 = 3 e^t / 4 per row, integral (3/4)(e^2 - 1).
  EXPECT_NEAR(RegularizedDynamics<double>::kinetic(h1).data()[0], 0.75 * (std::exp(2.0) - 1), 1e-8);
  EXPECT_NEAR(RegularizedDynamics<double>::jacobian(h1).data()[1], 2.0 * 0.25 * 3, 1e-8);
  EXPECT_NEAR(reg.state(h1).data()[0], std::exp(1.0), 1e-8);
}

TEST(OdeBlock, RnodeTermOnlyInTraining) {
  Tape<double> tape;
  ode::FunctionDynamics<double> f([](double, V h) { return tanh(h); });
  OdeBlockConfig c;
  c.kinetic = 0.5;
  c.jacobian = 0.25;
  OdeBlock<double> block(f, c, 1);
  const Tensor<double> x = random_tensor({4, 3}, 11);
  const V train = block(tape.constant(x.view()), true);
  ASSERT_TRUE(block.regularization().valid());
  EXPECT_NEAR(block.regularization().item(), 0.5 * block.last_kinetic() + 0.25 * block.last_jacobian(), 1e-12);
  EXPECT_GT(block.last_kinetic(), 0);
  const V eval = block(tape.constant(x.view()), false);
  EXPECT_FALSE(block.regularization().valid());
  for (Index i = 0; i < eval.size(); ++i) EXPECT_NEAR(train.data()[i], eval.data()[i], 1e-5);
  c.kinetic = -1;
  testing::expect_error<ValueError>([&] { OdeBlock<double>(f, c, 1); }, {"RNODE", "kinetic"});
}

TEST(AugmentedDynamics, Errors) {
  Tape<double> tape;
  ode::FunctionDynamics<double> f([](double, V h) { return h; });
  CnfDynamics<double> cnf(f, 2);
  const Tensor<double> bad(Shape{3, 2}, 0.0), ok(Shape{3, 3}, 0.0);
  testing::expect_error<ShapeError>([&] { cnf(0.0, tape.constant(bad.view())); }, {"CnfDynamics", "[3, 2]"});
  cnf.use_hutchinson(nullptr);
  testing::expect_error<ValueError>([&] { cnf(0.0, tape.constant(ok.view())); }, {"Hutchinson", "noise"});
  RegularizedDynamics<double> reg(f, {1}, true);
  testing::expect_error<ValueError>([&] { reg(0.0, tape.constant(ok.view())); }, {"set_noise"});
  testing::expect_error<ValueError>([] { parse_noise("uniform"); }, {"uniform", "rademacher"});
}

}  // namespace
}  // namespace anode::models
