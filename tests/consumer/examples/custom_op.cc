// A user-defined op, sinh, written with the public op kit exactly as in the
// README ("Writing your own op"), checked against finite differences with
// grad_check and then used inside ODE dynamics under every gradient method.
#include <cmath>
#include <cstdio>

#include "autodiff/grad_check.h"
#include "autodiff/op_kit.h"
#include "autodiff/ops.h"
#include "ode/solver.h"

using namespace anode;

// d/dx sinh(x) = cosh(x).
template <class T>
void sinh_backward(Tape<T>& t, const Node<T>& nd) {
  op::Grad<T> gx = t.in_grad(nd, 0);  // null if x needs no gradient
  if (!gx) return;
  const T* x = t.in_value(nd, 0);
  const T* gy = t.out_adj(nd);  // d loss / d y
  for (Index i = 0; i < gx.size; ++i) gx.put(i, gy[i] * std::cosh(x[i]));
}

template <class T>
Var<T> sinh(Var<T> x) {
  Tape<T>& t = op::tape_of("sinh", x);
  auto [y, out] = t.make_output(x.shape());
  for (Index i = 0; i < x.size(); ++i) out[i] = std::sinh(x.data()[i]);
  t.record(y, {x}, op::make_node<T>("sinh", &sinh_backward<T>));
  return y;
}

int main() {
  std::vector<Tensor<double>> inputs = {Tensor<double>(Shape{3, 5}, 0.3)};
  for (Index i = 0; i < inputs[0].size(); ++i) inputs[0][i] = 0.1 * static_cast<double>(i) - 0.7;
  GradCheckResult r = grad_check(
      [](Tape<double>&, std::span<const Var<double>> x) { return sinh(x[0]); }, inputs);
  std::printf("grad_check(sinh): %s\n", r.ok ? "ok" : r.message.c_str());
  if (!r.ok) return 1;

  // dh/dt = -sinh(w h): the gradient in w agrees across the three methods.
  Parameter<double> w("w", Tensor<double>(Shape{1}, 0.8));
  ode::FunctionDynamics<double> f([&](double, Var<double> h) { return -sinh(h.tape().param(w) * h); },
                                  {&w});
  Tensor<double> h0(Shape{2, 1}, {0.5, -1.0});
  double g[3];
  const ode::Gradient methods[] = {ode::Gradient::kBackprop, ode::Gradient::kAdjoint,
                                   ode::Gradient::kCheckpoint};
  for (int m = 0; m < 3; ++m) {
    ode::SolverOptions opt;
    opt.rtol = opt.atol = 1e-10;
    opt.gradient = methods[m];
    w.zero_grad();
    Tape<double> tape;
    tape.backward(sum(square(ode::odeint(f, tape.constant(h0.view()), {0.0, 2.0}, opt))));
    g[m] = w.grad()[0];
    std::printf("d loss / d w with %-10s %.10f\n", ode::gradient_name(methods[m]), g[m]);
  }
  return std::abs(g[1] - g[0]) < 1e-6 && std::abs(g[2] - g[0]) < 1e-9 ? 0 : 1;
}
