// The interpolating adjoint (dense and checkpointed) and the quadrature
// adjoint: convergence to the continuous gradient on a linear ODE with a
// closed-form gradient, for every tableau; agreement with backprop, the
// backsolve adjoint and finite differences on tanh dynamics; the same
// forward numbers as every method; end-time gradients; counters; memory.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autodiff/ops.h"
#include "ode/solver.h"
#include "gradients.h"
#include "test_dynamics.h"

namespace anode::ode {
namespace {

constexpr Gradient kNew[] = {Gradient::kInterpolating, Gradient::kInterpolatingCheckpoint, Gradient::kQuadrature};

// dh/dt = A h with A = [[alpha, beta], [-beta, alpha]] (h a row: h A^T),
// alpha and beta parameters: h(t) = e^(alpha t) R(beta t) h0 with the
// rotation R(x) = [[cos x, sin x], [-sin x, cos x]].
class Spiral : public Dynamics<double> {
 public:
  Spiral(double alpha, double beta)
      : alpha_("alpha", Tensor<double>(Shape{1}, {alpha})), beta_("beta", Tensor<double>(Shape{1}, {beta})),
        m_(Shape{2, 2}, {0, -1, 1, 0}) {
    params_ = {&alpha_, &beta_};
  }
  Var<double> operator()(double, Var<double> h) override {
    Tape<double>& tape = h.tape();
    return add(mul(h, tape.param(alpha_)), mul(matmul(h, tape.constant(m_.view())), tape.param(beta_)));
  }
  const std::vector<Parameter<double>*>& parameters() const override { return params_; }
  double alpha() const { return alpha_.value()[0]; }
  double beta() const { return beta_.value()[0]; }

 private:
  Parameter<double> alpha_, beta_;
  Tensor<double> m_;
  std::vector<Parameter<double>*> params_;
};

// L = w . h(T) for h0 = (x, y): the exact value and gradient.
struct Exact {
  double loss, d_alpha, d_beta, d_h0[2], d_t;
};

Exact spiral_exact(double alpha, double beta, const double h0[2], const double w[2], double t) {
  const double e = std::exp(alpha * t), c = std::cos(beta * t), s = std::sin(beta * t);
  const double h[2] = {e * (c * h0[0] + s * h0[1]), e * (-s * h0[0] + c * h0[1])};
  const double dr[2] = {e * (-s * h0[0] + c * h0[1]), e * (-c * h0[0] - s * h0[1])};  // e R'(beta t) h0
  Exact x;
  x.loss = w[0] * h[0] + w[1] * h[1];
  x.d_alpha = t * x.loss;
  x.d_beta = t * (w[0] * dr[0] + w[1] * dr[1]);
  x.d_h0[0] = e * (c * w[0] - s * w[1]);  // e R^T w
  x.d_h0[1] = e * (s * w[0] + c * w[1]);
  // dL/dT = w . A h(T)
  x.d_t = w[0] * (alpha * h[0] + beta * h[1]) + w[1] * (-beta * h[0] + alpha * h[1]);
  return x;
}

struct Got {
  double loss, d_alpha, d_beta, d_h0[2], d_t;
  SolveStats stats;
};

constexpr double kH0[2] = {0.7, -0.4};
constexpr double kW[2] = {1.3, 0.5};
constexpr double kT = 2.0;

Got spiral_gradient(Spiral& f, const SolverOptions& o, bool end_time) {
  for (Parameter<double>* p : f.parameters()) p->zero_grad();
  Tape<double> tape;
  Tensor<double> y0(Shape{1, 2}, {kH0[0], kH0[1]});
  Tensor<double> w(Shape{1, 2}, {kW[0], kW[1]});
  Tensor<double> tt(Shape{}, {kT});
  Var<double> h0 = tape.input(y0.view());
  Var<double> t1 = tape.input(tt.view());
  Got g{};
  Var<double> y = end_time ? odeint<double>(f, h0, 0.0, t1, o, &g.stats) : odeint<double>(f, h0, {0.0, kT}, o, &g.stats);
  Var<double> loss = sum(mul(y, tape.constant(w.view())));
  g.loss = loss.item();
  tape.backward(loss);
  g.d_alpha = f.parameters()[0]->grad()[0];
  g.d_beta = f.parameters()[1]->grad()[0];
  g.d_h0[0] = tape.grad(h0)[0];
  g.d_h0[1] = tape.grad(h0)[1];
  g.d_t = end_time ? tape.grad(t1)[0] : 0;
  return g;
}

// The largest error of the gradient against the closed form (relative to
// max(1, |exact|)).
double gradient_error(const Got& g, const Exact& x, bool end_time) {
  auto rel = [](double a, double b) { return std::abs(a - b) / std::max(1.0, std::abs(b)); };
  double e = std::max({rel(g.d_alpha, x.d_alpha), rel(g.d_beta, x.d_beta), rel(g.d_h0[0], x.d_h0[0]),
                       rel(g.d_h0[1], x.d_h0[1])});
  if (end_time) e = std::max(e, rel(g.d_t, x.d_t));
  return e;
}

class Convergence : public ::testing::TestWithParam<Method> {};

TEST_P(Convergence, EachMethodConvergesToTheContinuousGradient) {
  // As the tolerance (adaptive) or the step (fixed) shrinks, the gradient of
  // every optimize-then-discretize method approaches the exact gradient of
  // the continuous problem, also the end-time gradient.
  const Method m = GetParam();
  const bool adaptive = tableau(m).adaptive();
  Spiral f(-0.3, 2.0);
  const Exact x = spiral_exact(f.alpha(), f.beta(), kH0, kW, kT);
  for (Gradient g : {Gradient::kAdjoint, Gradient::kInterpolating, Gradient::kInterpolatingCheckpoint,
                     Gradient::kQuadrature}) {
    std::vector<double> errs;
    // (bosh3, third order, takes ~1000 steps at 1e-7 already.)
    const std::vector<double> levels = !adaptive ? std::vector<double>{20, 80, 320}
                                       : m == Method::kBosh3 ? std::vector<double>{1e-3, 1e-5, 1e-7}
                                                             : std::vector<double>{1e-3, 1e-6, 1e-9};
    for (double level : levels) {
      SolverOptions o;
      o.method = m;
      o.gradient = g;
      if (adaptive) {
        o.rtol = o.atol = level;
      } else {
        o.steps = static_cast<int>(level);
      }
      Got got = spiral_gradient(f, o, true);
      errs.push_back(gradient_error(got, x, true));
      EXPECT_GT(got.stats.nfe_backward, 0);
      EXPECT_GT(got.stats.accepted_backward, 0);
    }
    const std::string what = std::string(tableau(m).name) + " " + gradient_name(g);
    EXPECT_LT(errs[1], errs[0]) << what;
    EXPECT_LT(errs[2], errs[1]) << what;
    if (adaptive) {
      // Within a small multiple of the tolerance (the error grows over the
      // interval; the gradient adds the two solves' errors).
      EXPECT_LT(errs[0], 0.05) << what;
      EXPECT_LT(errs[2], 50 * levels[2]) << what;
    } else {
      // 16x the steps: at least the method's order in error reduction
      // (euler: 16x, rk4: 16^4x), less a factor 4.
      const double order = tableau(m).order;
      EXPECT_LT(errs[2], errs[0] * std::pow(16.0, -order) * 4) << what;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTableaus, Convergence,
                         ::testing::Values(Method::kEuler, Method::kMidpoint, Method::kRk4, Method::kBosh3,
                                           Method::kDopri5, Method::kTsit5),
                         [](const auto& info) { return std::string(tableau(info.param).name); });

// ---- Tanh dynamics: against backprop, the adjoint and finite differences ----------

using testing::gradients;
using testing::Grads;
using testing::max_rel_diff;
using testing::options;

class Agreement : public ::testing::TestWithParam<Method> {};

TEST_P(Agreement, SameForwardAndCloseToBackpropAndTheAdjoint) {
  // Several output times (each adds its cotangent), time-dependent tanh
  // dynamics. The forward values and counters are those of every method;
  // the gradients agree with backprop through a very accurate solve, as
  // closely as the backsolve adjoint does.
  const Method m = GetParam();
  MlpDynamics<double> f(3, 6, 13, /*time_dependent=*/true);
  Tensor<double> y0 = MlpDynamics<double>::random({4, 3}, 2, 1.0);
  const double times[] = {0.0, 0.3, 0.8, 1.5};
  Grads ref = gradients(f, y0, times, options(Method::kDopri5, Gradient::kBackprop, 1e-12));
  SolverOptions o = options(m, Gradient::kBackprop, 1e-8);
  if (!tableau(m).adaptive()) o.steps = 200;
  Grads bp = gradients(f, y0, times, o);
  o.gradient = Gradient::kAdjoint;
  Grads adj = gradients(f, y0, times, o);
  const double adj_err = max_rel_diff(adj, ref);
  for (Gradient g : kNew) {
    o.gradient = g;
    Grads got = gradients(f, y0, times, o);
    const std::string what = std::string(tableau(m).name) + " " + gradient_name(g);
    for (Index i = 0; i < got.y.size(); ++i) ASSERT_EQ(got.y[i], bp.y[i]) << what;
    EXPECT_EQ(got.stats.nfe_forward, bp.stats.nfe_forward) << what;
    EXPECT_EQ(got.stats.accepted, bp.stats.accepted) << what;
    EXPECT_EQ(got.stats.rejected, bp.stats.rejected) << what;
    EXPECT_GT(got.stats.nfe_backward, 0) << what;
    EXPECT_GT(got.stats.accepted_backward, 0) << what;
    const double err = max_rel_diff(got, ref);
    EXPECT_LT(err, std::max(1e-6, 10 * adj_err)) << what << " (adjoint: " << adj_err << ")";
  }
}

INSTANTIATE_TEST_SUITE_P(AllTableaus, Agreement,
                         ::testing::Values(Method::kEuler, Method::kMidpoint, Method::kRk4, Method::kBosh3,
                                           Method::kDopri5, Method::kTsit5),
                         [](const auto& info) { return std::string(tableau(info.param).name); });

TEST(AdjointMethods, MatchFiniteDifferences) {
  // Against central differences of the loss (fixed rk4 steps, fine enough
  // that the discrete gradient is the continuous one to ~1e-8), in h0 and
  // every parameter element.
  MlpDynamics<double> f(2, 4, 3, /*time_dependent=*/true);
  Tensor<double> y0 = MlpDynamics<double>::random({3, 2}, 5, 1.0);
  const double times[] = {0.0, 0.6, 1.0};
  SolverOptions o = options(Method::kRk4, Gradient::kBackprop, 1e-6);
  o.steps = 100;
  Grads fd;
  fd.h0 = Tensor<double>(y0.shape());
  for (Parameter<double>* p : f.parameters()) fd.params.emplace_back(p->shape());
  auto loss = [&] { return gradients(f, y0, times, o).loss; };
  auto central = [&](double& v) {
    const double saved = v, h = 1e-6 * std::max(1.0, std::abs(saved));
    v = saved + h;
    const double up = loss();
    v = saved - h;
    const double down = loss();
    v = saved;
    return (up - down) / (2 * h);
  };
  Tensor<double> y = y0;
  for (Index i = 0; i < y.size(); ++i) {
    const double saved = y[i], h = 1e-6 * std::max(1.0, std::abs(saved));
    y[i] = saved + h;
    const double up = gradients(f, y, times, o).loss;
    y[i] = saved - h;
    const double down = gradients(f, y, times, o).loss;
    y[i] = saved;
    fd.h0[i] = (up - down) / (2 * h);
  }
  for (std::size_t k = 0; k < f.parameters().size(); ++k) {
    Parameter<double>& p = *f.parameters()[k];
    for (Index i = 0; i < p.size(); ++i) fd.params[k][i] = central(p.value()[i]);
  }
  for (Gradient g : kNew) {
    o.gradient = g;
    EXPECT_LT(max_rel_diff(gradients(f, y0, times, o), fd), 1e-6) << gradient_name(g);
  }
}

TEST(AdjointMethods, EndTimeGradientOnTanhDynamics) {
  // dL/dT against a central difference in T.
  MlpDynamics<double> f(2, 5, 31, /*time_dependent=*/true);
  Tensor<double> y0 = MlpDynamics<double>::random({3, 2}, 9, 1.0);
  for (Gradient g : kNew) {
    SolverOptions o = options(Method::kTsit5, g, 1e-10);
    const auto [dldt, fd] = testing::end_time_gradient_and_difference(f, y0, o);
    EXPECT_NEAR(dldt, fd, 1e-6 * std::max(1.0, std::abs(fd))) << gradient_name(g);
  }
}

TEST(AdjointMethods, SeminormTakesNoMoreSteps) {
  MlpDynamics<double> f(4, 16, 29);
  Tensor<double> y0 = MlpDynamics<double>::random({8, 4}, 6, 1.0);
  const double times[] = {0.0, 1.0};
  Grads ref = gradients(f, y0, times, options(Method::kDopri5, Gradient::kBackprop, 1e-12));
  for (Gradient g : {Gradient::kInterpolating, Gradient::kInterpolatingCheckpoint}) {
    SolverOptions o = options(Method::kDopri5, g, 1e-6);
    Grads full = gradients(f, y0, times, o);
    o.adjoint_seminorm = true;
    Grads semi = gradients(f, y0, times, o);
    EXPECT_LE(semi.stats.nfe_backward, full.stats.nfe_backward) << gradient_name(g);
    EXPECT_LT(max_rel_diff(semi, ref), 1e-3) << gradient_name(g);
  }
}

TEST(AdjointMethods, SecondBackwardPassGivesTheSameGradient) {
  for (Gradient g : kNew) {
    for (Method m : {Method::kRk4, Method::kDopri5}) {
      MlpDynamics<double> f(3, 6, 5);
      Tensor<double> y0 = MlpDynamics<double>::random({2, 3}, 8, 1.0);
      SolverOptions o = options(m, g, 1e-6);
      if (m == Method::kRk4) o.steps = 20;
      const double times[] = {0.0, 0.5, 1.0};
      Tape<double> tape;
      Var<double> h0 = tape.input(y0.view());
      Var<double> loss = sum(square(odeint<double>(f, h0, times, o)));
      tape.backward(loss);
      const Tensor<double> first = Tensor<double>::from_view(tape.grad(h0));
      const Tensor<double> theta_first = f.parameters()[0]->grad();
      tape.backward(loss);
      for (Index i = 0; i < first.size(); ++i) EXPECT_EQ(first[i], tape.grad(h0)[i]) << gradient_name(g);
      for (Index i = 0; i < theta_first.size(); ++i) {
        EXPECT_NEAR(f.parameters()[0]->grad()[i], 2 * theta_first[i], 1e-12) << gradient_name(g);
      }
    }
  }
}

// ---- Memory -------------------------------------------------------------------

// The tape arena's peak over one gradient of sum(h(t_i)) through rk4 steps.
std::size_t peak_bytes(Gradient g, int steps, int outputs) {
  MlpDynamics<float> f(4, 16, 1);
  Tensor<float> y0 = MlpDynamics<float>::random({32, 4}, 2, 1.0);
  Tape<float> tape;
  SolverOptions o;
  o.method = Method::kRk4;
  o.steps = steps;
  o.gradient = g;
  std::vector<float> times;
  for (int i = 0; i <= outputs; ++i) times.push_back(static_cast<float>(i) / outputs);
  tape.arena().reset_peak();
  Var<float> y = odeint<float>(f, tape.input(y0.view()), times, o);
  tape.backward(sum(y));
  return tape.arena().peak_bytes();
}

TEST(AdjointMethods, MemoryGrowsAsDocumented) {
  const std::size_t state = 32 * 4 * sizeof(float);
  // Dense storage: one state per stage and one per step, per step.
  for (Gradient g : {Gradient::kInterpolating, Gradient::kQuadrature}) {
    EXPECT_GT(peak_bytes(g, 300, 1) - peak_bytes(g, 10, 1), 290 * 5 * state) << gradient_name(g);
  }
  // Checkpointed: only one interval's steps at a time, so 10 intervals of
  // 30 steps need far less than one of 300.
  const std::size_t ck10 = peak_bytes(Gradient::kInterpolatingCheckpoint, 300, 10);
  EXPECT_LT(ck10, peak_bytes(Gradient::kInterpolatingCheckpoint, 300, 1) / 4);
  EXPECT_LT(ck10, peak_bytes(Gradient::kInterpolating, 300, 10) / 4);
}

}  // namespace
}  // namespace anode::ode
