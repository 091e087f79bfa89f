// Bad input and failing solves: a SolverError naming the solver, the time
// reached and the cause; never a hang or a silent NaN.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ode/solver.h"
#include "test_dynamics.h"
#include "tests/support/expect_error.h"

namespace anode::ode {
namespace {

using anode::testing::expect_error;

constexpr Gradient kAllGradients[] = {Gradient::kBackprop,      Gradient::kAdjoint,
                                      Gradient::kCheckpoint,    Gradient::kInterpolating,
                                      Gradient::kInterpolatingCheckpoint, Gradient::kQuadrature,
                                      Gradient::kBinomial,      Gradient::kSymplectic};

struct Fixture {
  FunctionDynamics<double> decay{[](double, Var<double> h) { return scale(h, -1.0); }};
  Tape<double> tape;
  Tensor<double> y0{Shape{2, 2}, 1.0};
  Var<double> h0 = tape.input(y0.view());
};

TEST(SolverErrors, BadTolerances) {
  Fixture fx;
  const double times[] = {0.0, 1.0};
  SolverOptions o;
  o.rtol = 0;
  expect_error<SolverError>([&] { odeint<double>(fx.decay, fx.h0, times, o); },
      {"dopri5", "t = 0", "rtol", "> 0"});
  o.rtol = 1e-3;
  o.atol = -1;
  expect_error<SolverError>([&] { odeint<double>(fx.decay, fx.h0, times, o); }, {"atol = -1"});
}

TEST(SolverErrors, NonMonotoneTimes) {
  Fixture fx;
  SolverOptions o;
  const double same[] = {0.0, 0.5, 0.5};
  expect_error<SolverError>([&] { odeint<double>(fx.decay, fx.h0, same, o); },
      {"strictly increasing", "times[2] = 0.5", "times[1] = 0.5"});
  const double zigzag[] = {0.0, 1.0, 0.5};
  expect_error<SolverError>([&] { odeint<double>(fx.decay, fx.h0, zigzag, o); }, {"times[2]"});
  const double one[] = {0.0};
  expect_error<SolverError>([&] { odeint<double>(fx.decay, fx.h0, one, o); }, {"at least two"});
  const double nan[] = {0.0, std::numeric_limits<double>::quiet_NaN()};
  expect_error<SolverError>([&] { odeint<double>(fx.decay, fx.h0, nan, o); }, {"not finite"});
}

TEST(SolverErrors, FixedStepMethodWithoutSteps) {
  Fixture fx;
  SolverOptions o;
  o.method = Method::kRk4;
  const double times[] = {0.0, 1.0};
  expect_error<SolverError>([&] { odeint<double>(fx.decay, fx.h0, times, o); }, {"rk4", "steps"});
}

TEST(SolverErrors, CheckpointBudgetOfOneState) {
  Fixture fx;
  SolverOptions o;
  o.gradient = Gradient::kCheckpoint;
  o.checkpoint_states = 1;
  const double times[] = {0.0, 1.0};
  expect_error<SolverError>([&] { odeint<double>(fx.decay, fx.h0, times, o); },
      {"dopri5", "checkpoint_states", "got 1"});
  o.checkpoint_states = -4;
  expect_error<SolverError>([&] { odeint<double>(fx.decay, fx.h0, times, o); }, {"got -4"});
}

TEST(SolverErrors, BinomialBudget) {
  Fixture fx;
  SolverOptions o;
  o.gradient = Gradient::kBinomial;
  o.checkpoint_states = -1;
  const double times[] = {0.0, 1.0};
  expect_error<SolverError>([&] { odeint<double>(fx.decay, fx.h0, times, o); },
      {"dopri5", "binomial budget", "got -1"});
  o.checkpoint_states = 1;  // state 0 only: valid (every step recomputed from it)
  EXPECT_NO_THROW(odeint<double>(fx.decay, fx.h0, times, o));
}

TEST(SolverErrors, UnknownGradientMethodListsTheKnownOnes) {
  expect_error<std::invalid_argument>([] { parse_gradient("revolve"); },
      {"revolve", "backprop", "adjoint", "checkpoint", "binomial", "symplectic"});
}

TEST(SolverErrors, NanInTheInitialState) {
  Fixture fx;
  fx.y0[1] = std::numeric_limits<double>::quiet_NaN();
  const double times[] = {0.0, 1.0};
  for (Gradient g : kAllGradients) {
    SolverOptions o;
    o.gradient = g;
    expect_error<SolverError>([&] { odeint<double>(fx.decay, fx.h0, times, o); }, {"initial state", "NaN"});
  }
}

TEST(SolverErrors, StateBlowsUpWithFixedSteps) {
  // y' = y^2 from y = 1 blows up at t = 1; Euler with big steps overflows to Inf.
  FunctionDynamics<double> f([](double, Var<double> h) { return square(h); });
  Tape<double> tape;
  Tensor<double> y0(Shape{1, 1}, {1.0});
  SolverOptions o;
  o.method = Method::kEuler;
  o.steps = 2000;
  const double times[] = {0.0, 50.0};
  expect_error<SolverError>([&] { odeint<double>(f, tape.constant(y0.view()), times, o); },
      {"euler", "NaN or Inf"});
}

TEST(SolverErrors, StepSizeUnderflowNearASingularity) {
  // y' = y^2, y(0) = 1 has y = 1/(1 - t): the adaptive solver cannot pass t = 1.
  FunctionDynamics<double> f([](double, Var<double> h) { return square(h); });
  Tape<double> tape;
  Tensor<double> y0(Shape{1, 1}, {1.0});
  SolverOptions o;
  o.max_steps = 1000000;
  const double times[] = {0.0, 2.0};
  expect_error<SolverError>([&] { odeint<double>(f, tape.constant(y0.view()), times, o); },
      {"dopri5", "solve failed at t = 0.99", "step size"});
}

TEST(SolverErrors, MaxStepsExceeded) {
  // A fast oscillation over a long interval with a small step budget.
  LinearDynamics<double> f(Tensor<double>(Shape{2, 2}, {0, 50, -50, 0}));
  Tape<double> tape;
  Tensor<double> y0(Shape{1, 2}, {1.0, 0.0});
  SolverOptions o;
  o.max_steps = 20;
  o.rtol = o.atol = 1e-8;
  const double times[] = {0.0, 100.0};
  expect_error<SolverError>([&] { odeint<double>(f, tape.constant(y0.view()), times, o); },
      {"dopri5", "max_steps (20) exceeded"});
}

TEST(SolverErrors, NanInsideDynamicsIsRejectedThenReported) {
  // f returns NaN once |h| > 2: the adaptive solver shrinks steps and finally
  // reports the non-finite state instead of returning NaN.
  FunctionDynamics<double> f([](double, Var<double> h) {
    Var<double> r = scale(h, 3.0);
    if (std::abs(h.data()[0]) > 2.0) r = log(scale(h, -1.0));  // log of a negative: NaN
    return r;
  });
  Tape<double> tape;
  Tensor<double> y0(Shape{1, 1}, {1.0});
  SolverOptions o;
  const double times[] = {0.0, 1.0};
  expect_error<SolverError>([&] { odeint<double>(f, tape.constant(y0.view()), times, o); },
      {"dopri5", "NaN or Inf"});
}

TEST(SolverErrors, AdjointBackwardFailureNamesTheAdjoint) {
  Fixture fx;
  const double times[] = {0.0, 1.0};
  for (Gradient g : {Gradient::kAdjoint, Gradient::kInterpolating, Gradient::kInterpolatingCheckpoint,
                     Gradient::kQuadrature}) {
    SolverOptions o;
    o.gradient = g;
    o.adjoint_rtol = -1;
    expect_error<SolverError>([&] { odeint<double>(fx.decay, fx.h0, times, o); }, {"adjoint_rtol"});
    o.adjoint_rtol = 0;
    o.adjoint_atol = std::numeric_limits<double>::infinity();
    expect_error<SolverError>([&] { odeint<double>(fx.decay, fx.h0, times, o); }, {"adjoint_atol"});
  }
}

TEST(SolverErrors, BackwardPassNanNamesTheMethod) {
  // f turns NaN only in the backward pass (a flag flipped between the
  // passes): each method's backward solve reports it, naming itself.
  bool poison = false;
  FunctionDynamics<double> f([&](double, Var<double> h) {
    Var<double> r = tanh(h);
    return poison ? log(scale(square(h), -1.0)) : r;  // log of a negative: NaN
  });
  const double times[] = {0.0, 1.0};
  for (Gradient g : {Gradient::kAdjoint, Gradient::kInterpolating, Gradient::kInterpolatingCheckpoint,
                     Gradient::kQuadrature}) {
    Tape<double> tape;
    Tensor<double> y0(Shape{2, 1}, 1.0);
    SolverOptions o;
    o.gradient = g;
    poison = false;
    Var<double> y = odeint<double>(f, tape.input(y0.view()), times, o);
    poison = true;
    expect_error<SolverError>([&] { tape.backward(sum(y)); }, {gradient_name(g), "NaN or Inf"});
  }
}

TEST(SolverErrors, GradientNamesRoundTrip) {
  for (Gradient g : kAllGradients) EXPECT_EQ(parse_gradient(gradient_name(g)), g);
  expect_error<std::invalid_argument>([] { parse_gradient("interp"); },
                                      {"interp", "interpolating", "interpolating_checkpoint", "quadrature"});
}

TEST(SolverErrors, EndTimeGradientNeedsAdjoint) {
  Fixture fx;
  Tensor<double> t1(Shape{}, {1.0});
  for (Gradient g : {Gradient::kBackprop, Gradient::kCheckpoint}) {
    SolverOptions o;
    o.gradient = g;
    expect_error<SolverError>([&] { odeint<double>(fx.decay, fx.h0, 0.0, fx.tape.input(t1.view()), o); },
        {"end time", "adjoint", "interpolating", "quadrature", gradient_name(g)});
  }
}

TEST(SolverErrors, DynamicsReturningTheWrongShape) {
  FunctionDynamics<double> f([](double, Var<double> h) { return sum(h, 1); });
  Tape<double> tape;
  Tensor<double> y0(Shape{2, 3}, 1.0);
  SolverOptions o;
  const double times[] = {0.0, 1.0};
  EXPECT_THROW(odeint<double>(f, tape.constant(y0.view()), times, o), ShapeError);
}

TEST(SolverErrors, ParameterUsedOnlyInTheBackwardPass) {
  // A parameter f does not list is found while the forward solve runs (see
  // reads_test); one f starts using only in the backward pass is refused.
  Parameter<double> hidden("hidden", Tensor<double>(Shape{1}, {0.5}));
  bool use = false;
  FunctionDynamics<double> f([&](double, Var<double> h) {
    return use ? mul(h, h.tape().param(hidden)) : neg(h);
  });
  for (Gradient g : {Gradient::kAdjoint, Gradient::kCheckpoint, Gradient::kInterpolating,
                     Gradient::kInterpolatingCheckpoint, Gradient::kQuadrature, Gradient::kBinomial,
                     Gradient::kSymplectic}) {
    Tape<double> tape;
    Tensor<double> y0(Shape{2, 1}, 1.0);
    SolverOptions o;
    o.gradient = g;
    const double times[] = {0.0, 1.0};
    use = false;
    Var<double> y = odeint<double>(f, tape.input(y0.view()), times, o);
    use = true;
    expect_error<SolverError>([&] { tape.backward(sum(y)); }, {"hidden", "backward pass", "forward solve"});
  }
}

}  // namespace
}  // namespace anode::ode
