// Bad solver input never hangs and never goes silent: every non-finite value
// the solver computes (also those used only for dense output, and every piece
// of a mixed norm) is a SolverError, step counts are checked before any cast,
// fixed-step solves are capped by max_steps, and every option is validated
// (NaN and infinity included).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>

#include "ode/solver.h"
#include "test_dynamics.h"
#include "tests/support/expect_error.h"

namespace anode::ode {
namespace {

using anode::testing::expect_error;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(SolverNonFinite, EndOfStepDerivativeUsedOnlyByDenseOutputIsChecked) {
  // f is NaN from t = 1 on. Euler and midpoint never evaluate f at t = 1 for
  // the state, but their Hermite output at 0.95 (inside the last step) needs
  // f(1, y1).
  FunctionDynamics<double> f([](double t, Var<double> h) { return scale(h, t >= 1.0 ? kNan : -1.0); });
  for (Method m : {Method::kEuler, Method::kMidpoint}) {
    for (Gradient g : {Gradient::kBackprop, Gradient::kAdjoint, Gradient::kCheckpoint, Gradient::kInterpolating,
                       Gradient::kInterpolatingCheckpoint, Gradient::kQuadrature}) {
      Tape<double> tape;
      Tensor<double> y0(Shape{1, 2}, 1.0);
      SolverOptions o;
      o.method = m;
      o.steps = 10;
      o.gradient = g;
      const double times[] = {0.0, 0.95, 1.0};
      expect_error<SolverError>([&] { odeint<double>(f, tape.input(y0.view()), times, o); },
                                {method_name(m), "t = 1", "dense output", "NaN or Inf"});
    }
  }
}

TEST(SolverNonFinite, FixedStepStageWithZeroWeightIsChecked) {
  // bosh3 with fixed steps: its 4th stage f(t + h, y1) (c = 1, the only one)
  // has weight 0 in the new state; it is NaN at t = 1 only, i.e. only in the
  // last step's 4th stage, which nothing else reads.
  FunctionDynamics<double> f([](double t, Var<double> h) { return scale(h, t >= 1.0 ? kNan : -1.0); });
  Tape<double> tape;
  Tensor<double> y0(Shape{1, 2}, 1.0);
  SolverOptions o;
  o.method = Method::kBosh3;
  o.steps = 4;
  const double times[] = {0.0, 1.0};
  expect_error<SolverError>([&] { odeint<double>(f, tape.input(y0.view()), times, o); }, {"bosh3", "NaN or Inf"});
}

TEST(SolverNonFinite, NanAdjointIsNotMaskedByAFinitePieceOfTheMixedNorm) {
  // f = -sqrt(h) at h = 0: the state stays 0, but df/dh is infinite, so the
  // adjoint a becomes NaN; a_theta of the listed (unused) parameter stays 0
  // and, as the last piece of the mixed norm, used to replace the NaN.
  Parameter<double> w("w", Tensor<double>(Shape{1}, {1.0}));
  FunctionDynamics<double> f([](double, Var<double> h) { return neg(sqrt(h)); }, {&w});
  for (Gradient g : {Gradient::kAdjoint, Gradient::kInterpolating, Gradient::kInterpolatingCheckpoint,
                     Gradient::kQuadrature}) {
    Tape<double> tape;
    Tensor<double> y0(Shape{1, 3}, 0.0);
    SolverOptions o;
    o.gradient = g;
    const double times[] = {0.0, 1.0};
    Var<double> y = odeint<double>(f, tape.input(y0.view()), times, o);
    expect_error<SolverError>([&] { tape.backward(sum(y)); },
                              {(std::string("dopri5 ") + gradient_name(g)).c_str(), "NaN or Inf"});
  }
}

TEST(SolverNonFinite, NanDerivativeAtTheInitialStateFailsAtOnce) {
  // No step size can help: the error comes without shrinking the step first.
  FunctionDynamics<double> f([](double, Var<double> h) { return scale(h, kNan); });
  Tape<double> tape;
  Tensor<double> y0(Shape{1, 2}, 1.0);
  SolveStats st;
  const double times[] = {0.0, 1.0};
  expect_error<SolverError>([&] { odeint<double>(f, tape.input(y0.view()), times, SolverOptions{}, &st); },
                            {"dopri5", "t = 0", "initial state", "NaN or Inf"});
  EXPECT_EQ(st.nfe_forward, 1);
}

TEST(SolverStepCount, TinyStepSizeIsRefusedNotWrappedToOneStep) {
  // span / 1e-300 does not fit an integer: it used to become one step (and
  // y(1) = 0 for y' = -y); now the count is checked against max_steps first.
  FunctionDynamics<double> f([](double, Var<double> h) { return scale(h, -1.0); });
  Tape<double> tape;
  Tensor<double> y0(Shape{1, 1}, 1.0);
  SolverOptions o;
  o.method = Method::kEuler;
  const double times[] = {0.0, 1.0};
  for (double step : {1e-300, 5e-324}) {
    o.step_size = step;
    expect_error<SolverError>([&] { odeint<double>(f, tape.constant(y0.view()), times, o); },
                              {"euler", "step_size", "max_steps (100000)"});
  }
}

TEST(SolverStepCount, FixedStepSolvesObeyMaxSteps) {
  FunctionDynamics<double> f([](double, Var<double> h) { return scale(h, -1.0); });
  Tape<double> tape;
  Tensor<double> y0(Shape{1, 1}, 1.0);
  const double times[] = {0.0, 1.0};
  SolverOptions o;
  o.method = Method::kRk4;
  o.steps = std::numeric_limits<int>::max();
  const auto start = std::chrono::steady_clock::now();
  expect_error<SolverError>([&] { odeint<double>(f, tape.constant(y0.view()), times, o); },
                            {"rk4", "2147483647", "max_steps (100000)"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  // Within the cap, a fixed solve runs: exactly max_steps steps are allowed.
  o.steps = 50;
  o.max_steps = 50;
  SolveStats st;
  odeint<double>(f, tape.constant(y0.view()), times, o, &st);
  EXPECT_EQ(st.accepted, 50);
  o.max_steps = 49;
  expect_error<SolverError>([&] { odeint<double>(f, tape.constant(y0.view()), times, o); }, {"max_steps (49)"});
}

TEST(SolverStepCount, FixedStepBelowTheResolutionOfTimeIsRefused) {
  FunctionDynamics<float> f([](float, Var<float> h) { return scale(h, -1.0f); });
  Tape<float> tape;
  Tensor<float> y0(Shape{1, 1}, 1.0f);
  const float times[] = {1e6f, 1e6f + 1.0f};
  SolverOptions o;
  o.method = Method::kEuler;
  o.steps = 1000;
  expect_error<SolverError>([&] { odeint<float>(f, tape.constant(y0.view()), times, o); },
                            {"euler", "resolution of t"});
}

struct BadOption {
  const char* name;
  std::function<void(SolverOptions&)> set;
};

TEST(SolverOptionsCheck, NanAndInfiniteSettingsAreRefusedByName) {
  const BadOption cases[] = {
      {"rtol", [](SolverOptions& o) { o.rtol = kNan; }},
      {"rtol", [](SolverOptions& o) { o.rtol = kInf; }},
      {"atol", [](SolverOptions& o) { o.atol = kInf; }},
      {"atol", [](SolverOptions& o) { o.atol = kNan; }},
      {"first_step", [](SolverOptions& o) { o.first_step = kNan; }},
      {"first_step", [](SolverOptions& o) { o.first_step = kInf; }},
      {"min_step", [](SolverOptions& o) { o.min_step = kNan; }},
      {"step_size", [](SolverOptions& o) { o.step_size = kNan; }},
      {"safety", [](SolverOptions& o) { o.safety = kNan; }},
      {"min_factor", [](SolverOptions& o) { o.min_factor = kNan; }},
      {"max_factor", [](SolverOptions& o) { o.max_factor = kInf; }},
      {"pi_beta", [](SolverOptions& o) { o.pi_beta = kNan; }},
      {"pi_beta", [](SolverOptions& o) { o.pi_beta = -0.1; }},
      {"pi_beta", [](SolverOptions& o) { o.pi_beta = 0.5; }},  // a <= 0: errors would grow the step
      {"max_steps", [](SolverOptions& o) { o.max_steps = 0; }},
      {"adjoint_rtol", [](SolverOptions& o) { o.gradient = Gradient::kAdjoint; o.adjoint_rtol = kNan; }},
      {"adjoint_atol", [](SolverOptions& o) { o.gradient = Gradient::kAdjoint; o.adjoint_atol = kInf; }},
      // NaN is refused even where the setting is unused (fixed steps).
      {"rtol", [](SolverOptions& o) { o.method = Method::kRk4; o.steps = 4; o.rtol = kNan; }},
      {"max_steps", [](SolverOptions& o) { o.method = Method::kRk4; o.steps = 4; o.max_steps = -1; }},
  };
  FunctionDynamics<double> f([](double, Var<double> h) { return scale(h, -1.0); });
  const double times[] = {0.0, 1.0};
  for (const BadOption& c : cases) {
    SCOPED_TRACE(c.name);
    Tape<double> tape;
    Tensor<double> y0(Shape{1, 1}, 1.0);
    SolverOptions o;
    c.set(o);
    expect_error<SolverError>([&] { odeint<double>(f, tape.constant(y0.view()), times, o); }, {c.name});
  }
}

TEST(SolverOptionsCheck, DefaultsAndUsualSettingsStayValid) {
  FunctionDynamics<double> f([](double, Var<double> h) { return scale(h, -1.0); });
  const double times[] = {0.0, 1.0};
  for (Method m : {Method::kBosh3, Method::kDopri5, Method::kTsit5}) {
    Tape<double> tape;
    Tensor<double> y0(Shape{1, 1}, 1.0);
    SolverOptions o;
    o.method = m;
    o.pi_beta = 0.08;
    o.adjoint_rtol = 1e-6;
    o.gradient = Gradient::kAdjoint;
    Var<double> y = odeint<double>(f, tape.constant(y0.view()), times, o);
    EXPECT_NEAR(y.data()[0], std::exp(-1.0), 1e-3);
  }
}

}  // namespace
}  // namespace anode::ode
