#ifndef ANODE_TESTS_ODE_GRADIENTS_H_
#define ANODE_TESTS_ODE_GRADIENTS_H_

// What the gradient-method tests compare: one solve's output, loss and
// gradients (in double), and the worst relative difference between two.

#include <algorithm>
#include <cmath>
#include <span>
#include <utility>
#include <vector>

#include "autodiff/ops.h"
#include "ode/solver.h"
#include "test_dynamics.h"

namespace anode::ode::testing {

struct Grads {
  Tensor<double> y, h0;
  std::vector<Tensor<double>> params;
  double loss = 0;
  SolveStats stats;
};

/// loss = sum(w * h(t_i)) over the outputs, with fixed weights w, so every
/// output time and every element gets its own cotangent; the gradients of
/// h0 and of f's parameters.
inline Grads gradients(MlpDynamics<double>& f, const Tensor<double>& y0, std::span<const double> times,
                       const SolverOptions& o) {
  for (Parameter<double>* p : f.parameters()) p->zero_grad();
  Tape<double> tape;
  Grads g;
  Var<double> h0 = tape.input(y0.view());
  Var<double> y = odeint<double>(f, h0, times, o, &g.stats);
  g.y = Tensor<double>::from_view(y.value());
  Tensor<double> w = MlpDynamics<double>::random(y.shape(), 99, 1.0);
  Var<double> loss = sum(mul(y, tape.constant(w.view())));
  g.loss = loss.item();
  tape.backward(loss);
  g.h0 = Tensor<double>::from_view(tape.grad(h0));
  for (Parameter<double>* p : f.parameters()) g.params.push_back(p->grad());
  return g;
}

/// The largest |a - b| / max(1, |b|) over the h0 and parameter gradients.
inline double max_rel_diff(const Grads& a, const Grads& b) {
  double worst = 0;
  auto cmp = [&](const Tensor<double>& x, const Tensor<double>& y) {
    for (Index i = 0; i < x.size(); ++i) {
      worst = std::max(worst, std::abs(x[i] - y[i]) / std::max(1.0, std::abs(y[i])));
    }
  };
  cmp(a.h0, b.h0);
  for (std::size_t i = 0; i < a.params.size(); ++i) cmp(a.params[i], b.params[i]);
  return worst;
}

inline SolverOptions options(Method m, Gradient g, double tol) {
  SolverOptions o;
  o.method = m;
  o.gradient = g;
  o.rtol = o.atol = tol;
  return o;
}

/// dL/dT of L = sum(h(T)^2) at T = 0.8 by `o`'s method (the end time a Var)
/// and by a central difference in T: {gradient, difference}.
inline std::pair<double, double> end_time_gradient_and_difference(MlpDynamics<double>& f, const Tensor<double>& y0,
                                                                  const SolverOptions& o) {
  auto loss_at = [&](double t_end, double* dldt) {
    Tape<double> tape;
    Tensor<double> tt(Shape{}, {t_end});
    Var<double> t1 = tape.input(tt.view());
    Var<double> y = odeint<double>(f, tape.constant(y0.view()), 0.0, t1, o);
    Var<double> loss = sum(square(y));
    if (dldt) {
      tape.backward(loss);
      *dldt = tape.grad(t1)[0];
    }
    return loss.item();
  };
  double dldt = 0;
  loss_at(0.8, &dldt);
  const double h = 1e-5;
  return {dldt, (loss_at(0.8 + h, nullptr) - loss_at(0.8 - h, nullptr)) / (2 * h)};
}

}  // namespace anode::ode::testing

#endif  // ANODE_TESTS_ODE_GRADIENTS_H_
