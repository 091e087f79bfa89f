// The three gradient methods against each other and against finite
// differences, on smooth (tanh) neural dynamics in double.
#include <gtest/gtest.h>

#include <cmath>

#include "autodiff/grad_check.h"
#include "ode/solver.h"
#include "gradients.h"
#include "test_dynamics.h"

namespace anode::ode {
namespace {

using testing::gradients;
using testing::Grads;
using testing::max_rel_diff;
using testing::options;

class MethodsAgree : public ::testing::TestWithParam<Method> {};

TEST_P(MethodsAgree, BackpropEqualsCheckpointToRounding) {
  // Checkpoint keeping every state, and keeping budgets of 2, 3 and 5 states
  // (the backward pass recomputes the dropped ones segment by segment).
  MlpDynamics<double> f(3, 6, 5, /*time_dependent=*/true);
  Tensor<double> y0 = MlpDynamics<double>::random({4, 3}, 8, 1.0);
  const double times[] = {0.0, 0.4, 0.7, 1.2};
  SolverOptions o = options(GetParam(), Gradient::kBackprop, 1e-7);
  if (!tableau(GetParam()).adaptive()) o.steps = 37;
  Grads bp = gradients(f, y0, times, o);
  o.gradient = Gradient::kCheckpoint;
  o.checkpoint_states = 0;
  Grads all = gradients(f, y0, times, o);
  ASSERT_GT(all.stats.accepted, 12);
  EXPECT_EQ(bp.loss, all.loss);
  EXPECT_LT(max_rel_diff(all, bp), 1e-12);
  EXPECT_GT(all.stats.nfe_backward, 0);
  for (int budget : {2, 3, 5}) {
    o.checkpoint_states = budget;
    Grads ck = gradients(f, y0, times, o);
    EXPECT_EQ(bp.loss, ck.loss);
    EXPECT_LT(max_rel_diff(ck, bp), 1e-12) << "budget " << budget;
    // Recomputing a dropped state costs one more evaluation per stage.
    EXPECT_GT(ck.stats.nfe_backward, all.stats.nfe_backward) << "budget " << budget;
  }
}

INSTANTIATE_TEST_SUITE_P(AllMethods, MethodsAgree,
                         ::testing::Values(Method::kEuler, Method::kMidpoint, Method::kRk4,
                                           Method::kBosh3, Method::kDopri5, Method::kTsit5),
                         [](const auto& info) { return std::string(tableau(info.param).name); });

TEST(Gradients, InitialStateGradientMatchesFiniteDifferences) {
  // With a fixed step sequence the discrete solution is a smooth function of
  // h0, so its reverse-mode derivative must match central differences.
  // (Adaptive step sequences change with the inputs; fixed steps here.)
  MlpDynamics<double> f(2, 5, 21);
  Tensor<double> y0 = MlpDynamics<double>::random({3, 2}, 4, 1.0);
  std::vector<Tensor<double>> inputs = {y0};
  const double times[] = {0.0, 0.5, 1.0};
  for (Gradient g : {Gradient::kBackprop, Gradient::kCheckpoint}) {
    for (Method m : {Method::kRk4, Method::kTsit5}) {
      SolverOptions o = options(m, g, 1e-6);
      o.steps = 7;
      GradCheckResult r = grad_check(
          [&](Tape<double>&, std::span<const Var<double>> x) { return odeint<double>(f, x[0], times, o); },
          inputs);
      EXPECT_TRUE(r.ok) << gradient_name(g) << " " << tableau(m).name << ": " << r.message;
    }
  }
}

TEST(Gradients, ParameterGradientsMatchFiniteDifferences) {
  MlpDynamics<double> f(2, 4, 3, /*time_dependent=*/true);
  Tensor<double> y0 = MlpDynamics<double>::random({3, 2}, 5, 1.0);
  const double times[] = {0.0, 0.6, 1.0};
  for (Gradient g : {Gradient::kBackprop, Gradient::kCheckpoint}) {
    SolverOptions o = options(Method::kDopri5, g, 1e-6);
    o.steps = 6;  // fixed steps: the discrete map is smooth in theta
    Grads an = gradients(f, y0, times, o);
    for (std::size_t pi = 0; pi < f.parameters().size(); ++pi) {
      Parameter<double>& p = *f.parameters()[pi];
      for (Index i = 0; i < p.size(); ++i) {
        const double saved = p.value()[i];
        const double h = 1e-6 * std::max(1.0, std::abs(saved));
        p.value()[i] = saved + h;
        double up = gradients(f, y0, times, o).loss;
        p.value()[i] = saved - h;
        double down = gradients(f, y0, times, o).loss;
        p.value()[i] = saved;
        const double fd = (up - down) / (2 * h);
        EXPECT_NEAR(an.params[pi][i], fd, 1e-6 * std::max(1.0, std::abs(fd)))
            << gradient_name(g) << " " << p.name() << "[" << i << "]";
      }
    }
  }
}

TEST(Gradients, AdjointConvergesToTheDiscreteGradient) {
  MlpDynamics<double> f(3, 6, 13, /*time_dependent=*/true);
  Tensor<double> y0 = MlpDynamics<double>::random({5, 3}, 2, 1.0);
  const double times[] = {0.0, 0.5, 1.0};
  // Reference: backprop through a very accurate solve.
  Grads ref = gradients(f, y0, times, options(Method::kDopri5, Gradient::kBackprop, 1e-12));
  double previous = 1e9;
  for (double tol : {1e-3, 1e-6, 1e-9}) {
    Grads adj = gradients(f, y0, times, options(Method::kDopri5, Gradient::kAdjoint, tol));
    double err = max_rel_diff(adj, ref);
    EXPECT_LT(err, 100 * tol) << "tol " << tol;
    EXPECT_LT(err, previous);
    previous = err;
    EXPECT_GT(adj.stats.nfe_backward, 0);
    EXPECT_GT(adj.stats.accepted_backward, 0);
  }
  EXPECT_LT(previous, 1e-7);
}

TEST(Gradients, AdjointWithFixedStepsAndTsit5) {
  MlpDynamics<double> f(3, 6, 17);
  Tensor<double> y0 = MlpDynamics<double>::random({2, 3}, 3, 1.0);
  const double times[] = {0.0, 1.0};
  Grads ref = gradients(f, y0, times, options(Method::kDopri5, Gradient::kBackprop, 1e-12));
  SolverOptions o = options(Method::kRk4, Gradient::kAdjoint, 0);
  o.steps = 200;
  EXPECT_LT(max_rel_diff(gradients(f, y0, times, o), ref), 1e-7);
  o = options(Method::kTsit5, Gradient::kAdjoint, 1e-9);
  EXPECT_LT(max_rel_diff(gradients(f, y0, times, o), ref), 1e-6);
}

TEST(Gradients, AdjointSeminormTakesNoMoreSteps) {
  MlpDynamics<double> f(4, 16, 29);
  Tensor<double> y0 = MlpDynamics<double>::random({8, 4}, 6, 1.0);
  const double times[] = {0.0, 1.0};
  Grads ref = gradients(f, y0, times, options(Method::kDopri5, Gradient::kBackprop, 1e-12));
  SolverOptions o = options(Method::kDopri5, Gradient::kAdjoint, 1e-6);
  Grads full = gradients(f, y0, times, o);
  o.adjoint_seminorm = true;
  Grads semi = gradients(f, y0, times, o);
  EXPECT_LE(semi.stats.nfe_backward, full.stats.nfe_backward);
  EXPECT_LT(max_rel_diff(semi, ref), 1e-3);
}

TEST(Gradients, AdjointEndTimeGradient) {
  // dL/dT = <dL/dh(T), f(T, h(T))>; compare with a central difference in T.
  MlpDynamics<double> f(2, 5, 31, /*time_dependent=*/true);
  Tensor<double> y0 = MlpDynamics<double>::random({3, 2}, 9, 1.0);
  SolverOptions o = options(Method::kDopri5, Gradient::kAdjoint, 1e-10);
  const auto [dldt, fd] = testing::end_time_gradient_and_difference(f, y0, o);
  EXPECT_NEAR(dldt, fd, 1e-6 * std::max(1.0, std::abs(fd)));
}

// The tape arena's peak over one gradient of sum(h(1)) through RK4 steps.
std::size_t gradient_peak_bytes(MlpDynamics<float>& f, const Tensor<float>& y0, Gradient g, int steps,
                                int checkpoint_states) {
  Tape<float> tape;
  SolverOptions o;
  o.method = Method::kRk4;
  o.steps = steps;
  o.gradient = g;
  o.checkpoint_states = checkpoint_states;
  const float times[] = {0.0f, 1.0f};
  tape.arena().reset_peak();
  Var<float> y = odeint<float>(f, tape.input(y0.view()), times, o);
  tape.backward(sum(y));
  return tape.arena().peak_bytes();
}

TEST(Gradients, AdjointMemoryIsFlatInSteps) {
  // The tape's arena peak must not grow with the number of steps.
  MlpDynamics<float> f(4, 16, 1);
  Tensor<float> y0 = MlpDynamics<float>::random({32, 4}, 2, 1.0);
  auto peak = [&](Gradient g, int steps) { return gradient_peak_bytes(f, y0, g, steps, 64); };
  EXPECT_EQ(peak(Gradient::kAdjoint, 10), peak(Gradient::kAdjoint, 1000));
  EXPECT_GT(peak(Gradient::kBackprop, 1000), 50 * peak(Gradient::kBackprop, 10) / 2);
  std::size_t ck = peak(Gradient::kCheckpoint, 1000), bp = peak(Gradient::kBackprop, 1000);
  EXPECT_LT(ck, bp / 5);
}

TEST(Gradients, BoundedCheckpointMemory) {
  // Keeping at most 32 states, checkpoint memory grows like budget + steps /
  // budget states (plus a few words per step): 4x the steps, far less than 4x
  // the memory. Keeping every state grows linearly.
  MlpDynamics<float> f(16, 16, 1);
  Tensor<float> y0 = MlpDynamics<float>::random({64, 16}, 2, 1.0);
  auto peak = [&](int budget, int steps) {
    return gradient_peak_bytes(f, y0, Gradient::kCheckpoint, steps, budget);
  };
  const std::size_t state = 64 * 16 * sizeof(float);
  // Above a 4-step solve (one step's tape), 1024 steps add 32 kept states,
  // 31 recomputed ones and a few words per step; keeping every state adds
  // about 1024 states.
  const std::size_t base = peak(32, 4);
  EXPECT_LT(peak(32, 1024) - base, 80 * state);
  EXPECT_LT(peak(32, 1024), 2 * peak(32, 256));
  EXPECT_GT(peak(0, 1024) - base, 1000 * state);
}

TEST(Gradients, SecondBackwardPassGivesTheSameGradient) {
  // Bounded checkpoints reuse their recomputation buffers, binomial's
  // reversal overwrites the states its forward solve stored, and the adjoint
  // re-solves backwards: a second reverse pass over the same tape must give
  // the same input gradient (and add the same amount to the parameters).
  for (Gradient g : {Gradient::kBackprop, Gradient::kAdjoint, Gradient::kCheckpoint, Gradient::kBinomial,
                     Gradient::kSymplectic}) {
    MlpDynamics<double> f(3, 6, 5);
    Tensor<double> y0 = MlpDynamics<double>::random({2, 3}, 8, 1.0);
    SolverOptions o = options(Method::kRk4, g, 0);
    o.steps = 20;
    o.checkpoint_states = 3;
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

}  // namespace
}  // namespace anode::ode
