// Solvers against closed-form solutions: observed order of convergence,
// adaptive tolerance, dense output, backward-in-time solves, counters.
#include "ode/solver.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <span>
#include <vector>

#include "test_dynamics.h"

namespace anode::ode {
namespace {

// Harmonic oscillator x'' = -x as [x, v]' = [v, -x]; two trajectories.
LinearDynamics<double> oscillator() {
  return LinearDynamics<double>(Tensor<double>(Shape{2, 2}, {0, 1, -1, 0}));
}
Tensor<double> oscillator_start() { return Tensor<double>(Shape{2, 2}, {1, 0, 0.3, -0.7}); }
// Exact: x(t) = x0 cos t + v0 sin t, v(t) = -x0 sin t + v0 cos t.
double oscillator_error(const Var<double>& y, double t) {
  Tensor<double> s = oscillator_start();
  double err = 0;
  for (int r = 0; r < 2; ++r) {
    double x0 = s(r, 0), v0 = s(r, 1);
    err = std::max(err, std::abs(y.data()[2 * r] - (x0 * std::cos(t) + v0 * std::sin(t))));
    err = std::max(err, std::abs(y.data()[2 * r + 1] - (-x0 * std::sin(t) + v0 * std::cos(t))));
  }
  return err;
}

double solve_error(Method m, int steps, Gradient g = Gradient::kBackprop) {
  LinearDynamics<double> f = oscillator();
  Tape<double> tape;
  Tensor<double> y0 = oscillator_start();
  SolverOptions o;
  o.method = m;
  o.steps = steps;
  o.gradient = g;
  const double times[] = {0.0, 2.0};
  Var<double> y = odeint<double>(f, tape.constant(y0.view()), times, o);
  return oscillator_error(y, 2.0);
}

class OrderTest : public ::testing::TestWithParam<Method> {};

TEST_P(OrderTest, ObservedOrderMatchesMethod) {
  const Method m = GetParam();
  const Tableau& tab = tableau(m);
  // Step counts in the asymptotic range but above rounding error.
  const int n = tab.order >= 5 ? 8 : 32;
  const double e1 = solve_error(m, n), e2 = solve_error(m, 2 * n);
  const double observed = std::log2(e1 / e2);
  EXPECT_NEAR(observed, tab.order, 0.25) << tab.name << ": errors " << e1 << ", " << e2;
}

INSTANTIATE_TEST_SUITE_P(AllMethods, OrderTest,
                         ::testing::Values(Method::kEuler, Method::kMidpoint, Method::kRk4,
                                           Method::kBosh3, Method::kDopri5, Method::kTsit5),
                         [](const auto& info) { return std::string(tableau(info.param).name); });

TEST(Solver, ExponentialDecayWithFixedSteps) {
  // y' = -2y, y(0) = 1: y(1) = exp(-2), RK4 with 50 steps: error ~ (1/50)^4.
  FunctionDynamics<double> f([](double, Var<double> h) { return scale(h, -2.0); });
  Tape<double> tape;
  Tensor<double> y0(Shape{1, 1}, {1.0});
  SolverOptions o;
  o.method = Method::kRk4;
  o.step_size = 0.02;
  const double times[] = {0.0, 1.0};
  SolveStats st;
  Var<double> y = odeint<double>(f, tape.constant(y0.view()), times, o, &st);
  EXPECT_NEAR(y.item(), std::exp(-2.0), 1e-7);
  EXPECT_EQ(st.accepted, 50);
  EXPECT_EQ(st.nfe_forward, 200);
  EXPECT_EQ(st.rejected, 0);
}

TEST(Solver, TimesAsABracedListOrAContainerWithoutExplicitT) {
  // y' = -2y in float: the times may be written in place (double literals
  // included), or passed as a vector, an array or a C array; T is deduced from
  // the dynamics and the state. All give the span overload's numbers.
  FunctionDynamics<float> f([](float, Var<float> h) { return scale(h, -2.0f); });
  Tape<float> tape;
  Tensor<float> y0(Shape{1, 1}, {1.0f});
  Var<float> h0 = tape.constant(y0.view());
  SolverOptions o;
  o.method = Method::kRk4;
  o.steps = 20;
  const float ts[] = {0.0f, 0.5f, 1.0f};
  const Var<float> want = odeint<float>(f, h0, std::span<const float>(ts), o);
  const std::vector<float> vec(std::begin(ts), std::end(ts));
  const std::array<float, 3> arr = {0.0f, 0.5f, 1.0f};
  const Var<float> got[] = {odeint(f, h0, {0.0, 0.5, 1.0}, o), odeint(f, h0, {0.0f, 0.5f, 1.0f}, o),
                            odeint(f, h0, vec, o), odeint(f, h0, arr, o), odeint(f, h0, ts, o),
                            odeint(f, h0, std::vector<float>{0, 0.5f, 1}, o),
                            odeint(f, h0, std::vector<double>{0, 0.5, 1}, o)};
  ASSERT_EQ(want.shape(), (Shape{2, 1, 1}));
  for (const Var<float>& g : got) {
    ASSERT_EQ(g.shape(), want.shape());
    EXPECT_EQ(g.data()[0], want.data()[0]);
    EXPECT_EQ(g.data()[1], want.data()[1]);
  }
  EXPECT_NEAR(want.data()[1], std::exp(-2.0f), 1e-5f);
  // Times of another arithmetic type are converted (a vector<double> above).
  EXPECT_EQ(odeint(f, h0, std::array<int, 2>{0, 1}, o).item(), want.data()[1]);  // same 20 steps
  // One interval, in double, from integer literals.
  FunctionDynamics<double> fd([](double, Var<double> h) { return scale(h, -2.0); });
  Tape<double> td;
  Tensor<double> yd(Shape{1, 1}, {1.0});
  EXPECT_NEAR(odeint(fd, td.constant(yd.view()), {0, 1}, o).item(), std::exp(-2.0), 1e-6);
}

class AdaptiveTest : public ::testing::TestWithParam<Method> {};

TEST_P(AdaptiveTest, MeetsToleranceAgainstClosedForm) {
  for (double tol : {1e-4, 1e-7, 1e-10}) {
    LinearDynamics<double> f = oscillator();
    Tape<double> tape;
    Tensor<double> y0 = oscillator_start();
    SolverOptions o;
    o.method = GetParam();
    o.rtol = tol;
    o.atol = tol;
    o.max_steps = 1000000;
    const double times[] = {0.0, 5.0};
    SolveStats st;
    Var<double> y = odeint<double>(f, tape.constant(y0.view()), times, o, &st);
    // Global error is a modest multiple of the local tolerance.
    EXPECT_LT(oscillator_error(y, 5.0), 50 * tol) << "tol " << tol;
    EXPECT_GT(st.accepted, 0);
    if (tableau(GetParam()).fsal) {
      // FSAL: stages - 1 new evaluations per attempted step, plus the first
      // derivative and one for the automatic first step.
      EXPECT_EQ(st.nfe_forward, (st.accepted + st.rejected) * (tableau(GetParam()).stages - 1) + 2);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Adaptive, AdaptiveTest,
                         ::testing::Values(Method::kBosh3, Method::kDopri5, Method::kTsit5),
                         [](const auto& info) { return std::string(tableau(info.param).name); });

class DenseOutputTest : public ::testing::TestWithParam<Method> {};

TEST_P(DenseOutputTest, IntermediateTimesAreAccurate) {
  // Outputs between steps come from the interpolant, not extra steps: the
  // step count must not depend on how many outputs we ask for.
  LinearDynamics<double> f = oscillator();
  SolverOptions o;
  o.method = GetParam();
  o.rtol = 1e-8;
  o.atol = 1e-8;
  std::vector<double> times = {0.0};
  for (int i = 1; i <= 40; ++i) times.push_back(0.1 * i);
  Tape<double> tape;
  Tensor<double> y0 = oscillator_start();
  SolveStats many, few;
  Var<double> ys = odeint<double>(f, tape.constant(y0.view()), times, o, &many);
  ASSERT_EQ(ys.shape(), (Shape{40, 2, 2}));
  for (int i = 0; i < 40; ++i) {
    Var<double> yi = select(ys, i);
    // The interpolants are of order 3 (Hermite) or 4: an error a little
    // above the step tolerance.
    EXPECT_LT(oscillator_error(yi, times[i + 1]), 1e-5) << "t = " << times[i + 1];
  }
  const double ends[] = {0.0, 4.0};
  odeint<double>(f, tape.constant(y0.view()), ends, o, &few);
  EXPECT_EQ(many.accepted, few.accepted);
}

INSTANTIATE_TEST_SUITE_P(Adaptive, DenseOutputTest,
                         ::testing::Values(Method::kBosh3, Method::kDopri5, Method::kTsit5),
                         [](const auto& info) { return std::string(tableau(info.param).name); });

TEST(Solver, FixedStepHermiteOutputs) {
  // RK4 with 40 steps over [0, 4] and outputs off the grid.
  LinearDynamics<double> f = oscillator();
  SolverOptions o;
  o.method = Method::kRk4;
  o.steps = 40;
  const double times[] = {0.0, 0.55, 1.234, 4.0};
  Tape<double> tape;
  Tensor<double> y0 = oscillator_start();
  Var<double> ys = odeint<double>(f, tape.constant(y0.view()), times, o);
  for (int i = 0; i < 3; ++i) EXPECT_LT(oscillator_error(select(ys, i), times[i + 1]), 1e-4);
}

TEST(Solver, BackwardInTime) {
  // Integrate from 3 back to 0: recovers the start state.
  LinearDynamics<double> f = oscillator();
  SolverOptions o;
  o.rtol = o.atol = 1e-10;
  Tape<double> tape;
  Tensor<double> y0 = oscillator_start();
  const double fwd[] = {0.0, 3.0}, back[] = {3.0, 1.5, 0.0};
  Var<double> y3 = odeint<double>(f, tape.constant(y0.view()), fwd, o);
  Var<double> yb = odeint<double>(f, y3, back, o);
  EXPECT_LT(oscillator_error(select(yb, 0), 1.5), 1e-8);
  EXPECT_LT(oscillator_error(select(yb, 1), 0.0), 1e-8);
}

TEST(Solver, TimeDependentDynamics) {
  // y' = cos(t) y => y = y0 exp(sin t).
  FunctionDynamics<double> f([](double t, Var<double> h) { return scale(h, std::cos(t)); });
  SolverOptions o;
  o.method = Method::kTsit5;
  o.rtol = o.atol = 1e-10;
  Tape<double> tape;
  Tensor<double> y0(Shape{1, 1}, {2.0});
  const double times[] = {0.0, 2.5};
  Var<double> y = odeint<double>(f, tape.constant(y0.view()), times, o);
  EXPECT_NEAR(y.item(), 2.0 * std::exp(std::sin(2.5)), 1e-8);
}

TEST(Solver, SameForwardNumbersForEveryGradientMethod) {
  MlpDynamics<float> f(3, 8, 7);
  Tensor<float> y0 = MlpDynamics<float>::random({4, 3}, 11, 1.0);
  const float times[] = {0.0f, 0.3f, 1.0f};
  SolverOptions o;
  o.method = Method::kDopri5;
  o.rtol = 1e-4f;
  Tensor<float> ref;
  for (Gradient g : {Gradient::kBackprop, Gradient::kAdjoint, Gradient::kCheckpoint, Gradient::kInterpolating,
                     Gradient::kInterpolatingCheckpoint, Gradient::kQuadrature}) {
    o.gradient = g;
    Tape<float> tape;
    Tensor<float> y = odeint<float>(f, tape.input(y0.view()), times, o).to_tensor();
    if (ref.empty()) ref = y;
    for (Index i = 0; i < y.size(); ++i) EXPECT_EQ(y[i], ref[i]) << gradient_name(g);
  }
}

TEST(HigherOrder, SecondOrderOscillatorFromPositionOnly) {
  // x'' = -4x as a second-order system where g sees only x.
  FunctionDynamics<double> g([](double, Var<double> x) { return scale(x, -4.0); });
  HigherOrderDynamics<double> f(g, 2, 1, true);
  SolverOptions o;
  o.rtol = o.atol = 1e-10;
  Tape<double> tape;
  Tensor<double> y0(Shape{1, 2}, {1.0, 0.0});
  const double times[] = {0.0, 1.0};
  Var<double> y = odeint<double>(f, tape.constant(y0.view()), times, o);
  EXPECT_NEAR(y.data()[0], std::cos(2.0), 1e-8);
  EXPECT_NEAR(y.data()[1], -2.0 * std::sin(2.0), 1e-8);
}

TEST(HigherOrder, ThirdOrder) {
  // x''' = x with x = e^t: state [x, x', x''] all e^t.
  FunctionDynamics<double> g([](double, Var<double> h) { return slice_last(h, 0, 1); });
  HigherOrderDynamics<double> f(g, 3, 1, false);
  SolverOptions o;
  o.rtol = o.atol = 1e-10;
  Tape<double> tape;
  Tensor<double> y0(Shape{1, 3}, {1.0, 1.0, 1.0});
  const double times[] = {0.0, 1.0};
  Var<double> y = odeint<double>(f, tape.constant(y0.view()), times, o);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(y.data()[i], std::exp(1.0), 1e-8);
}

}  // namespace
}  // namespace anode::ode
