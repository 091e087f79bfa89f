// Fit the four rates of a Lotka-Volterra model, dx/dt = a x - b x y,
// dy/dt = c x y - d y, to a trajectory sampled at 41 times, with the
// gradient from the adjoint method (SciML's classic parameter-estimation
// example).
#include <cmath>
#include <cstdio>
#include <vector>

#include "autodiff/ops.h"
#include "autodiff/optim.h"
#include "ode/solver.h"

using namespace anode;

int main() {
  // Four scalar parameters, each a [1] tensor; the truth is (1.5, 1, 3, 1).
  const double truth[4] = {1.5, 1.0, 3.0, 1.0};
  Parameter<double> a("a", Tensor<double>(Shape{1}, 1.2)), b("b", Tensor<double>(Shape{1}, 0.8));
  Parameter<double> c("c", Tensor<double>(Shape{1}, 2.6)), d("d", Tensor<double>(Shape{1}, 0.8));
  ode::FunctionDynamics<double> f(
      [&](double, Var<double> u) {
        Tape<double>& t = u.tape();
        Var<double> x = slice_last(u, 0, 1), y = slice_last(u, 1, 1);  // [1, 1] each
        Var<double> xy = x * y;
        Var<double> parts[] = {t.param(a) * x - t.param(b) * xy, t.param(c) * xy - t.param(d) * y};
        return concat_last<double>(parts);  // [1] against [1, 1] broadcasts
      },
      {&a, &b, &c, &d});

  std::vector<double> times;
  for (int i = 0; i <= 40; ++i) times.push_back(0.25 * i);  // t in [0, 10]
  Tensor<double> u0(Shape{1, 2}, {1.0, 1.0});
  ode::SolverOptions opt;  // dopri5
  opt.rtol = 1e-8;
  opt.atol = 1e-10;

  // The data: the model's own solution at the true rates.
  Tensor<double> data;
  {
    double guess[4];
    Parameter<double>* ps[4] = {&a, &b, &c, &d};
    for (int i = 0; i < 4; ++i) guess[i] = ps[i]->value()[0], ps[i]->value()[0] = truth[i];
    Tape<double> tape;
    Tape<double>::NoGradGuard no_grad(tape);
    data = ode::odeint(f, tape.constant(u0.view()), times, opt).to_tensor();  // [40, 1, 2]
    for (int i = 0; i < 4; ++i) ps[i]->value()[0] = guess[i];
  }

  opt.gradient = ode::Gradient::kAdjoint;
  opt.rtol = 1e-6;
  opt.atol = 1e-8;
  Adam<double> adam({&a, &b, &c, &d}, {.lr = 0.02});
  Tape<double> tape;
  double loss = 0;
  for (int step = 0; step <= 600; ++step) {
    adam.zero_grad();
    tape.clear();
    Var<double> u = ode::odeint(f, tape.constant(u0.view()), times, opt);
    Var<double> l = mse(u, tape.constant(data.view()));
    loss = l.item();
    if (step % 100 == 0) {
      std::printf("step %3d  mse %.3e  a %.4f b %.4f c %.4f d %.4f\n", step, loss, a.value()[0],
                  b.value()[0], c.value()[0], d.value()[0]);
    }
    if (step == 600) break;
    tape.backward(l);
    adam.step();
  }
  double worst = 0;
  Parameter<double>* ps[4] = {&a, &b, &c, &d};
  for (int i = 0; i < 4; ++i) worst = std::max(worst, std::abs(ps[i]->value()[0] - truth[i]));
  std::printf("largest error in a rate: %.2e\n", worst);
  return worst < 1e-2 ? 0 : 1;
}
