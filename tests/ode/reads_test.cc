// Every gradient method differentiates what the dynamics actually reads, not
// what parameters() says: a parameter it does not list, and a differentiable
// Var computed outside it and captured (on the outer tape). Each case under
// each method against backprop and against central differences, in float and
// double; and a forward-only solve records nothing per step.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "autodiff/ops.h"
#include "ode/solver.h"
#include "test_dynamics.h"
#include "tests/support/expect_error.h"

namespace anode::ode {
namespace {

template <class T>
Tensor<T> random(Shape s, unsigned seed, double scale) {
  return MlpDynamics<T>::random(s, seed, scale);
}

constexpr Gradient kMethods[] = {Gradient::kBackprop,      Gradient::kAdjoint,
                                 Gradient::kCheckpoint,    Gradient::kInterpolating,
                                 Gradient::kInterpolatingCheckpoint, Gradient::kQuadrature,
                                 Gradient::kBinomial,      Gradient::kSymplectic};
// The optimize-then-discretize methods (accurate to their tolerances).
constexpr Gradient kAdjoints[] = {Gradient::kAdjoint, Gradient::kInterpolating,
                                  Gradient::kInterpolatingCheckpoint, Gradient::kQuadrature};

template <class T>
SolverOptions options(Gradient g) {
  SolverOptions o;
  o.method = Method::kDopri5;
  o.gradient = g;
  // Tight in double (adjoint vs backprop to ~1e-7); float can do ~1e-5.
  o.rtol = o.atol = std::is_same_v<T, double> ? 1e-9 : 1e-5;
  return o;
}

// The tolerance between methods: the adjoints are accurate to their solves'
// tolerance, backprop and the exact methods (checkpoint, binomial,
// symplectic) agree to rounding.
template <class T>
double method_tol(Gradient g) {
  if (is_adjoint_family(g)) return std::is_same_v<T, double> ? 1e-6 : 2e-3;
  return std::is_same_v<T, double> ? 1e-12 : 1e-5;
}

// A problem: a loss built on a fresh tape from the solution, and the
// parameters whose gradients are compared.
template <class T>
struct Problem {
  // Records everything upstream of the solve, the solve and the loss.
  std::function<Var<T>(Tape<T>&, const SolverOptions&)> loss;
  std::vector<Parameter<T>*> params;
};

template <class T>
std::vector<Tensor<T>> gradients(Problem<T>& p, const SolverOptions& o, T* loss_value = nullptr) {
  for (Parameter<T>* q : p.params) q->zero_grad();
  Tape<T> tape;
  Var<T> loss = p.loss(tape, o);
  if (loss_value) *loss_value = loss.item();
  tape.backward(loss);
  std::vector<Tensor<T>> g;
  for (Parameter<T>* q : p.params) g.push_back(q->grad());
  return g;
}

template <class T>
double max_rel_diff(const std::vector<Tensor<T>>& a, const std::vector<Tensor<T>>& b) {
  double worst = 0;
  for (std::size_t k = 0; k < a.size(); ++k) {
    for (Index i = 0; i < a[k].size(); ++i) {
      const double x = a[k][i], y = b[k][i];
      worst = std::max(worst, std::abs(x - y) / std::max(1.0, std::abs(y)));
    }
  }
  return worst;
}

// Central differences of the loss in every parameter element (double only).
std::vector<Tensor<double>> finite_differences(Problem<double>& p, const SolverOptions& o) {
  std::vector<Tensor<double>> g;
  for (Parameter<double>* q : p.params) {
    Tensor<double> d(q->shape());
    for (Index i = 0; i < q->size(); ++i) {
      const double saved = q->value()[i];
      const double h = 1e-6 * std::max(1.0, std::abs(saved));
      double up = 0, down = 0;
      q->value()[i] = saved + h;
      gradients(p, o, &up);
      q->value()[i] = saved - h;
      gradients(p, o, &down);
      q->value()[i] = saved;
      d[i] = (up - down) / (2 * h);
    }
    g.push_back(std::move(d));
  }
  return g;
}

// Checks every method against backprop, and backprop (fixed steps, so the
// discrete map is smooth) against finite differences in double. Also checks
// the gradient is not zero: the silent failure this guards against.
template <class T>
void check_all_methods(Problem<T>& p) {
  std::vector<Tensor<T>> bp = gradients(p, options<T>(Gradient::kBackprop));
  double norm = 0;
  for (const Tensor<T>& g : bp) {
    for (Index i = 0; i < g.size(); ++i) norm += std::abs(static_cast<double>(g[i]));
  }
  ASSERT_GT(norm, 1e-3) << "backprop's gradient is zero: the problem tests nothing";
  for (Gradient m : kMethods) {
    std::vector<Tensor<T>> g = gradients(p, options<T>(m));
    EXPECT_LT(max_rel_diff(g, bp), method_tol<T>(m)) << gradient_name(m);
  }
  if constexpr (std::is_same_v<T, double>) {
    SolverOptions o = options<T>(Gradient::kBackprop);
    o.method = Method::kRk4;
    o.steps = 16;
    std::vector<Tensor<double>> fd = finite_differences(p, o);
    o.checkpoint_states = 3;  // binomial and checkpoint recompute states
    for (Gradient m : {Gradient::kBackprop, Gradient::kCheckpoint, Gradient::kBinomial, Gradient::kSymplectic}) {
      o.gradient = m;
      EXPECT_LT(max_rel_diff(gradients(p, o), fd), 1e-6) << gradient_name(m) << " vs FD";
    }
    // The adjoints with fixed steps differ from the discrete gradient by
    // their own discretization error; with many steps they are close.
    o.steps = 200;
    const std::vector<Tensor<double>> fd200 = finite_differences(p, o);
    for (Gradient m : kAdjoints) {
      o.gradient = m;
      EXPECT_LT(max_rel_diff(gradients(p, o), fd200), 1e-5) << gradient_name(m) << " vs FD";
    }
  }
}

template <class T>
class Reads : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(Reads, Types);

TYPED_TEST(Reads, ParameterTheDynamicsDoesNotListGetsItsGradient) {
  using T = TypeParam;
  Parameter<T> w("w", random<T>({3, 3}, 1, 0.7));
  Parameter<T> b("b", random<T>({3}, 2, 0.3));
  // Lists none of its parameters; h0 is data (the common case that failed).
  FunctionDynamics<T> f([&](T, Var<T> h) {
    return tanh(linear(h, h.tape().param(w), h.tape().param(b)));
  });
  Tensor<T> y0 = random<T>({2, 3}, 3, 1.0);
  Tensor<T> wts = random<T>({2, 3}, 4, 1.0);
  const T times[] = {0, 1};
  Problem<T> p{[&](Tape<T>& tape, const SolverOptions& o) {
                 Var<T> y = odeint<T>(f, tape.constant(y0.view()), times, o);
                 return sum(mul(y, tape.constant(wts.view())));
               },
               {&w, &b}};
  check_all_methods(p);
}

TYPED_TEST(Reads, UnlistedParameterCostsNoSecondSolve) {
  // Finding an unlisted parameter must not make every call solve twice: f is
  // called as often as with the parameter listed, plus at most the one
  // probing evaluation, under every method.
  using T = TypeParam;
  Parameter<T> w("w", random<T>({3, 3}, 1, 0.7));
  int calls = 0;
  auto rhs = [&](T, Var<T> h) {
    ++calls;
    return tanh(linear(h, h.tape().param(w)));
  };
  FunctionDynamics<T> unlisted(rhs), listed(rhs, {&w});
  Tensor<T> y0 = random<T>({2, 3}, 3, 1.0);
  const T times[] = {0, 1};
  for (Gradient m : kMethods) {
    Tape<T> tape;
    calls = 0;
    Var<T> ya = odeint<T>(unlisted, tape.constant(y0.view()), times, options<T>(m));
    const int unlisted_calls = calls;
    calls = 0;
    Var<T> yb = odeint<T>(listed, tape.constant(y0.view()), times, options<T>(m));
    EXPECT_GT(calls, 10) << gradient_name(m);
    EXPECT_LE(unlisted_calls, calls + 1) << gradient_name(m);
    EXPECT_TRUE(ya.requires_grad()) << gradient_name(m);
    EXPECT_TRUE(yb.requires_grad()) << gradient_name(m);
  }
}

TYPED_TEST(Reads, ParameterMissingFromANonEmptyListGetsItsGradient) {
  using T = TypeParam;
  Parameter<T> w1("w1", random<T>({4, 3}, 5, 0.7));
  Parameter<T> w2("w2", random<T>({3, 4}, 6, 0.7));
  // Lists w1 only.
  FunctionDynamics<T> f(
      [&](T, Var<T> h) {
        return linear(tanh(linear(h, h.tape().param(w1))), h.tape().param(w2));
      },
      {&w1});
  Tensor<T> y0 = random<T>({2, 3}, 7, 1.0);
  const T times[] = {0, 0.5, 1};
  Problem<T> p{[&](Tape<T>& tape, const SolverOptions& o) {
                 Var<T> h0 = tape.input(y0.view());
                 return sum(square(odeint<T>(f, h0, times, o)));
               },
               {&w1, &w2}};
  check_all_methods(p);
}

TYPED_TEST(Reads, CapturedDifferentiableValueGetsItsGradient) {
  using T = TypeParam;
  Parameter<T> u("u", random<T>({2, 3}, 8, 0.5));
  Parameter<T> w("w", random<T>({3, 3}, 9, 0.7));
  Tensor<T> y0 = random<T>({2, 3}, 10, 1.0);
  const T times[] = {0, 1};
  // c = tanh(u) is computed on the outer tape and read inside f.
  Var<T> c;
  FunctionDynamics<T> f([&](T, Var<T> h) { return mul(tanh(linear(h, h.tape().param(w))), c); },
                        {&w});
  Problem<T> p{[&](Tape<T>& tape, const SolverOptions& o) {
                 c = tanh(tape.param(u));
                 return sum(odeint<T>(f, tape.constant(y0.view()), times, o));
               },
               {&u, &w}};
  check_all_methods(p);
}

TYPED_TEST(Reads, CapturedInitialStateGetsBothGradients) {
  using T = TypeParam;
  // dh/dt = k (h0 - h) * h: h0 is both the initial state and a captured
  // value; d/dh0 is the sum of both paths.
  Parameter<T> a("a", random<T>({2, 2}, 11, 0.5));
  Parameter<T> k("k", random<T>({2, 2}, 12, 0.5));
  Var<T> h0;
  FunctionDynamics<T> f([&](T, Var<T> h) { return mul(mul(h.tape().param(k), sub(h0, h)), h); },
                        {&k});
  const T times[] = {0, 1};
  Problem<T> p{[&](Tape<T>& tape, const SolverOptions& o) {
                 h0 = tanh(tape.param(a));
                 return sum(square(odeint<T>(f, h0, times, o)));
               },
               {&a, &k}};
  check_all_methods(p);
}

TYPED_TEST(Reads, ValueReadOnlyInTheBackwardPassIsRefusedByName) {
  using T = TypeParam;
  Parameter<T> u("u", random<T>({2, 3}, 13, 0.5));
  Tensor<T> y0 = random<T>({2, 3}, 14, 1.0);
  const T times[] = {0, 1};
  bool read_c = false;  // f changes what it reads between the passes
  Var<T> c;
  FunctionDynamics<T> f([&](T, Var<T> h) { return read_c ? mul(h, c) : neg(h); });
  for (Gradient m : {Gradient::kAdjoint, Gradient::kCheckpoint, Gradient::kInterpolating,
                     Gradient::kInterpolatingCheckpoint, Gradient::kQuadrature, Gradient::kBinomial,
                     Gradient::kSymplectic}) {
    Tape<T> tape;
    c = tape.param(u);
    read_c = false;
    Var<T> loss = sum(odeint<T>(f, tape.input(y0.view()), times, options<T>(m)));
    read_c = true;
    testing::expect_error<SolverError>([&] { tape.backward(loss); },
                                       {"backward pass", "[2, 3]", "did not read in the forward"});
  }
}

// ---- Inference records nothing ----------------------------------------------------

// Arena bytes a forward-only solve of `steps` rk4 steps leaves on the tape.
template <class T>
std::size_t bytes_after(Gradient m, int steps, bool no_grad_guard, Dynamics<T>& f) {
  Tape<T> tape;
  Tensor<T> y0 = random<T>({4, 3}, 15, 1.0);
  SolverOptions o;
  o.method = Method::kRk4;
  o.steps = steps;
  o.gradient = m;
  const T times[] = {0, 1};
  const std::size_t before = tape.arena().bytes_used();
  if (no_grad_guard) {
    typename Tape<T>::NoGradGuard guard(tape);
    odeint<T>(f, tape.constant(y0.view()), times, o);
  } else {
    odeint<T>(f, tape.constant(y0.view()), times, o);
  }
  return tape.arena().bytes_used() - before;
}

TYPED_TEST(Reads, ForwardOnlySolveKeepsNothingPerStep) {
  using T = TypeParam;
  MlpDynamics<T> mlp(3, 8, 16);
  LinearDynamics<T> lin(random<T>({3, 3}, 17, 0.5));
  for (Gradient m : kMethods) {
    // Under NoGradGuard, with parameters; and with nothing differentiable at all.
    EXPECT_EQ(bytes_after<T>(m, 10, true, mlp), bytes_after<T>(m, 1000, true, mlp)) << gradient_name(m);
    EXPECT_EQ(bytes_after<T>(m, 10, false, lin), bytes_after<T>(m, 1000, false, lin))
        << gradient_name(m);
  }
  // While a solve that can need a gradient keeps its steps (backprop).
  EXPECT_LT(bytes_after<T>(Gradient::kBackprop, 10, false, mlp),
            bytes_after<T>(Gradient::kBackprop, 1000, false, mlp));
}

}  // namespace
}  // namespace anode::ode
