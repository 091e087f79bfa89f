// The exact methods added beside backprop and checkpoint, binomial
// checkpointing and the symplectic adjoint: for every tableau, with fixed
// and adaptive steps, in float and double, the same forward numbers as
// backprop and the same gradient to rounding, with several output times
// (interpolated ones included); their counters; their memory; finite
// differences; the end-time gradient. (A second backward pass: gradient_test.)
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "autodiff/grad_check.h"
#include "ode/binomial_schedule.h"
#include "ode/solver.h"
#include "test_dynamics.h"

namespace anode::ode {
namespace {

template <class T>
struct Grads {
  std::vector<T> y;  // the forward result
  Tensor<T> h0;
  std::vector<Tensor<T>> params;
  SolveStats stats;
};

// loss = sum(w * h(t_i)) with fixed weights w: every output time and element
// gets its own cotangent.
template <class T>
Grads<T> gradients(MlpDynamics<T>& f, const Tensor<T>& y0, std::span<const T> times, const SolverOptions& o) {
  for (Parameter<T>* p : f.parameters()) p->zero_grad();
  Tape<T> tape;
  Grads<T> g;
  Var<T> h0 = tape.input(y0.view());
  Var<T> y = odeint<T>(f, h0, times, o, &g.stats);
  g.y.assign(y.data(), y.data() + y.size());
  Tensor<T> w = MlpDynamics<T>::random(y.shape(), 99, 1.0);
  tape.backward(sum(mul(y, tape.constant(w.view()))));
  g.h0 = Tensor<T>::from_view(tape.grad(h0));
  for (Parameter<T>* p : f.parameters()) g.params.push_back(p->grad());
  return g;
}

template <class T>
double max_rel_diff(const Grads<T>& a, const Grads<T>& b) {
  double worst = 0;
  auto cmp = [&](const Tensor<T>& x, const Tensor<T>& y) {
    for (Index i = 0; i < x.size(); ++i) {
      const double u = x[i], v = y[i];
      worst = std::max(worst, std::abs(u - v) / std::max(1.0, std::abs(v)));
    }
  };
  cmp(a.h0, b.h0);
  for (std::size_t i = 0; i < a.params.size(); ++i) cmp(a.params[i], b.params[i]);
  return worst;
}

constexpr Method kAll[] = {Method::kEuler, Method::kMidpoint, Method::kRk4,
                           Method::kBosh3, Method::kDopri5,   Method::kTsit5};

template <class T>
class ExactMethods : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(ExactMethods, Types);

TYPED_TEST(ExactMethods, EqualBackpropToRoundingForEveryTableau) {
  using T = TypeParam;
  const bool is_double = std::is_same_v<T, double>;
  // Rounding only: the methods sum the same terms in another order.
  const double tol = is_double ? 1e-12 : 2e-5;
  MlpDynamics<T> f(3, 6, 5, /*time_dependent=*/true);
  Tensor<T> y0 = MlpDynamics<T>::random({4, 3}, 8, 1.0);
  const T times[] = {0, T(0.4), T(0.7), T(1.2)};
  for (Method m : kAll) {
    for (bool adaptive : {false, true}) {
      if (adaptive && !tableau(m).adaptive()) continue;
      SolverOptions o;
      o.method = m;
      o.rtol = o.atol = is_double ? 1e-7 : 1e-6;
      if (!adaptive) o.steps = 37;
      const std::string where = std::string(tableau(m).name) + (adaptive ? " adaptive" : " fixed");
      Grads<T> bp = gradients<T>(f, y0, times, o);
      ASSERT_GT(bp.stats.accepted, 8) << where;
      o.gradient = Gradient::kSymplectic;
      Grads<T> sy = gradients<T>(f, y0, times, o);
      EXPECT_EQ(sy.y, bp.y) << where << ": the same forward numbers";
      EXPECT_EQ(sy.stats.nfe_forward, bp.stats.nfe_forward) << where;
      EXPECT_EQ(sy.stats.accepted, bp.stats.accepted) << where;
      EXPECT_EQ(sy.stats.rejected, bp.stats.rejected) << where;
      EXPECT_LT(max_rel_diff(sy, bp), tol) << where << " symplectic";
      EXPECT_EQ(sy.stats.accepted_backward, bp.stats.accepted) << where << ": every step replayed once";
      EXPECT_GT(sy.stats.nfe_backward, 0) << where;
      EXPECT_EQ(sy.stats.recomputed, 0) << where;
      o.gradient = Gradient::kBinomial;
      for (int budget : {1, 2, 3, 5, 0}) {
        o.checkpoint_states = budget;
        Grads<T> bi = gradients<T>(f, y0, times, o);
        const std::string w = where + " binomial budget " + std::to_string(budget);
        EXPECT_EQ(bi.y, bp.y) << w;
        EXPECT_LT(max_rel_diff(bi, bp), tol) << w;
        EXPECT_EQ(bi.stats.accepted_backward, bp.stats.accepted) << w;
        // The schedule's advances; a fixed-step forward did its first sweep.
        const std::int64_t n = bp.stats.accepted;
        const int c = budget == 0 ? static_cast<int>(n) : budget;
        const std::int64_t advances = binomial_advances(n, c);
        EXPECT_EQ(bi.stats.recomputed, adaptive ? advances : advances - (n - 1)) << w;
      }
    }
  }
}

TEST(ExactMethods, BinomialRecomputesLessThanTheUniformStrideAtTheSameBudget) {
  MlpDynamics<double> f(3, 6, 5);
  Tensor<double> y0 = MlpDynamics<double>::random({4, 3}, 8, 1.0);
  const double times[] = {0.0, 1.0};
  SolverOptions o;
  o.method = Method::kRk4;
  o.steps = 200;
  Grads<double> bp = gradients<double>(f, y0, times, o);
  for (int budget : {4, 8, 16}) {
    o.checkpoint_states = budget;
    o.gradient = Gradient::kCheckpoint;
    Grads<double> uni = gradients<double>(f, y0, times, o);
    o.gradient = Gradient::kBinomial;
    Grads<double> bin = gradients<double>(f, y0, times, o);
    EXPECT_LT(max_rel_diff(uni, bp), 1e-12);
    EXPECT_LT(max_rel_diff(bin, bp), 1e-12);
    // The uniform stride recomputes about N - budget states but holds a
    // whole segment of them (memory budget + N / budget); binomial holds at
    // most `budget`, paying more recomputation only when it must.
    EXPECT_GT(uni.stats.recomputed, 0) << budget;
    EXPECT_EQ(bin.stats.recomputed, binomial_advances(200, budget) - 199) << budget;
  }
}

// The tape arena's peak over one gradient of sum(h(1)); with `backward_only`,
// what the backward pass adds above the bytes in use when it starts.
std::size_t peak_bytes(MlpDynamics<float>& f, const Tensor<float>& y0, Method m, Gradient g, int steps,
                       int budget, bool backward_only = false) {
  Tape<float> tape;
  SolverOptions o;
  o.method = m;
  o.steps = steps;
  o.gradient = g;
  o.checkpoint_states = budget;
  const float times[] = {0.0f, 1.0f};
  tape.arena().reset_peak();
  Var<float> y = odeint<float>(f, tape.input(y0.view()), times, o);
  Var<float> loss = sum(y);
  const std::size_t before = tape.arena().bytes_used();
  if (backward_only) tape.arena().reset_peak();
  tape.backward(loss);
  return tape.arena().peak_bytes() - (backward_only ? before : 0);
}

TEST(ExactMethods, SymplecticHoldsOneStageOfTheNetworkNotOneStep) {
  // A wide network and a small state: the tape of f dominates. Keeping every
  // state, checkpoint's backward pass holds one step's 7 dopri5 evaluations
  // at a time on the tape; the symplectic adjoint's one evaluation (and 2 x
  // 7 stage-sized buffers). (The forward solve's own peak, a step's 7
  // unrecorded evaluations, is the same for every method.)
  MlpDynamics<float> f(4, 256, 3);
  Tensor<float> y0 = MlpDynamics<float>::random({64, 4}, 2, 1.0);
  const std::size_t sy = peak_bytes(f, y0, Method::kDopri5, Gradient::kSymplectic, 8, 0, true);
  const std::size_t ck = peak_bytes(f, y0, Method::kDopri5, Gradient::kCheckpoint, 8, 0, true);
  EXPECT_LT(sy, ck / 4) << "symplectic " << sy << " checkpoint " << ck;
  const std::size_t sy_full = peak_bytes(f, y0, Method::kDopri5, Gradient::kSymplectic, 8, 0);
  EXPECT_LT(sy_full, peak_bytes(f, y0, Method::kDopri5, Gradient::kCheckpoint, 8, 0));
  // And its memory grows by about one state per step.
  const std::size_t state = 64 * 4 * sizeof(float);
  const std::size_t sy_long = peak_bytes(f, y0, Method::kDopri5, Gradient::kSymplectic, 48, 0);
  EXPECT_LT(sy_long - sy_full, 40 * (state + 64));
}

TEST(ExactMethods, BinomialMemoryIsBoundedByTheBudget) {
  MlpDynamics<float> f(16, 8, 1);
  Tensor<float> y0 = MlpDynamics<float>::random({64, 16}, 2, 1.0);
  const std::size_t state = 64 * 16 * sizeof(float);
  auto peak = [&](Gradient g, int budget, int steps) {
    return peak_bytes(f, y0, Method::kRk4, g, steps, budget);
  };
  // 8 states whatever N (plus a few words per step for the step sizes);
  // the uniform stride at the same budget also holds a segment of N / 8.
  const std::size_t base = peak(Gradient::kBinomial, 8, 8);
  EXPECT_LT(peak(Gradient::kBinomial, 8, 512) - base, 2 * state + 504 * 32);
  EXPECT_GT(peak(Gradient::kCheckpoint, 8, 512) - base, 50 * state);
}

TEST(ExactMethods, InitialStateGradientMatchesFiniteDifferences) {
  MlpDynamics<double> f(2, 5, 21);
  Tensor<double> y0 = MlpDynamics<double>::random({3, 2}, 4, 1.0);
  std::vector<Tensor<double>> inputs = {y0};
  const double times[] = {0.0, 0.5, 1.0};
  for (Gradient g : {Gradient::kBinomial, Gradient::kSymplectic}) {
    for (Method m : {Method::kRk4, Method::kTsit5}) {
      SolverOptions o;
      o.method = m;
      o.gradient = g;
      o.steps = 7;
      o.checkpoint_states = 3;
      GradCheckResult r = grad_check(
          [&](Tape<double>&, std::span<const Var<double>> x) { return odeint<double>(f, x[0], times, o); },
          inputs);
      EXPECT_TRUE(r.ok) << gradient_name(g) << " " << tableau(m).name << ": " << r.message;
    }
  }
}

TEST(ExactMethods, EndTimeGradientAsTheAdjointGivesIt) {
  // dL/dT = <dL/dh(T), f(T, h(T))>: the same number as the adjoint's (the same
  // forward solution and cotangent), and a central difference in T agrees.
  MlpDynamics<double> f(2, 5, 31, /*time_dependent=*/true);
  Tensor<double> y0 = MlpDynamics<double>::random({3, 2}, 9, 1.0);
  auto loss_at = [&](Gradient g, double t_end, double* dldt, Tensor<double>* dh0) {
    SolverOptions o;
    o.gradient = g;
    o.rtol = o.atol = 1e-10;
    Tape<double> tape;
    Tensor<double> tt(Shape{}, {t_end});
    Var<double> t1 = tape.input(tt.view());
    Var<double> h0 = tape.input(y0.view());
    Var<double> loss = sum(square(odeint<double>(f, h0, 0.0, t1, o)));
    if (dldt) {
      tape.backward(loss);
      *dldt = tape.grad(t1)[0];
      *dh0 = Tensor<double>::from_view(tape.grad(h0));
    }
    return loss.item();
  };
  double adj = 0;
  Tensor<double> adj_h0;
  loss_at(Gradient::kAdjoint, 0.8, &adj, &adj_h0);
  const double h = 1e-5;
  const double fd = (loss_at(Gradient::kAdjoint, 0.8 + h, nullptr, nullptr) -
                     loss_at(Gradient::kAdjoint, 0.8 - h, nullptr, nullptr)) / (2 * h);
  for (Gradient g : {Gradient::kBinomial, Gradient::kSymplectic}) {
    double dldt = 0;
    Tensor<double> dh0;
    loss_at(g, 0.8, &dldt, &dh0);
    EXPECT_EQ(dldt, adj) << gradient_name(g);
    EXPECT_NEAR(dldt, fd, 1e-6 * std::max(1.0, std::abs(fd))) << gradient_name(g);
    for (Index i = 0; i < dh0.size(); ++i) EXPECT_NEAR(dh0[i], adj_h0[i], 1e-7) << gradient_name(g);
  }
}

TEST(ExactMethods, ParseAndNameTheMethods) {
  EXPECT_EQ(parse_gradient("binomial"), Gradient::kBinomial);
  EXPECT_EQ(parse_gradient("symplectic"), Gradient::kSymplectic);
  EXPECT_STREQ(gradient_name(Gradient::kBinomial), "binomial");
  EXPECT_STREQ(gradient_name(Gradient::kSymplectic), "symplectic");
}

}  // namespace
}  // namespace anode::ode
