// A universal differential equation: a damped pendulum whose gravity term is
// known and whose damping is not. theta'' = -sin(theta) + NN(theta, omega),
// where the truth is -0.3 omega. The network learns the missing term from
// trajectories (backprop through the solver steps).
#include <cmath>
#include <cstdio>

#include "autodiff/ops.h"
#include "autodiff/optim.h"
#include "datasets/random.h"
#include "ode/solver.h"

using namespace anode;

Tensor<double> uniform(Shape shape, double lo, double hi, datasets::Rng& rng) {
  Tensor<double> t(shape);
  for (double& v : t) v = rng.uniform(lo, hi);
  return t;
}

int main() {
  datasets::Rng rng(7);
  // h = [theta, omega], 16 trajectories.
  Tensor<double> h0 = uniform({16, 2}, -1.5, 1.5, rng);
  std::vector<double> times;
  for (int i = 0; i <= 20; ++i) times.push_back(0.2 * i);  // t in [0, 4]

  ode::FunctionDynamics<double> truth([](double, Var<double> h) {
    Var<double> theta = slice_last(h, 0, 1), omega = slice_last(h, 1, 1);
    Var<double> parts[] = {omega, -sin(theta) - 0.3 * omega};
    return concat_last<double>(parts);
  });
  ode::SolverOptions opt;  // dopri5
  opt.rtol = 1e-7;
  opt.atol = 1e-9;
  Tensor<double> data;
  {
    Tape<double> tape;
    Tape<double>::NoGradGuard no_grad(tape);
    data = ode::odeint(truth, tape.constant(h0.view()), times, opt).to_tensor();  // [20, 16, 2]
  }

  // The unknown term: a 2-16-1 tanh network.
  Parameter<double> w1("w1", uniform({16, 2}, -0.5, 0.5, rng)), b1("b1", Tensor<double>(Shape{16}));
  Parameter<double> w2("w2", uniform({1, 16}, -0.1, 0.1, rng)), b2("b2", Tensor<double>(Shape{1}));
  auto nn = [&](Var<double> h) {
    Tape<double>& t = h.tape();
    return linear(tanh(linear(h, t.param(w1), t.param(b1))), t.param(w2), t.param(b2));
  };
  ode::FunctionDynamics<double> ude(
      [&](double, Var<double> h) {
        Var<double> theta = slice_last(h, 0, 1), omega = slice_last(h, 1, 1);
        Var<double> parts[] = {omega, -sin(theta) + nn(h)};  // known physics + network
        return concat_last<double>(parts);
      },
      {&w1, &b1, &w2, &b2});

  opt.rtol = 1e-5;
  opt.atol = 1e-7;
  Adam<double> adam({&w1, &b1, &w2, &b2}, {.lr = 0.01});
  Tape<double> tape;
  double loss = 0;
  for (int step = 0; step <= 500; ++step) {
    adam.zero_grad();
    tape.clear();
    Var<double> l = mse(ode::odeint(ude, tape.constant(h0.view()), times, opt), tape.constant(data.view()));
    loss = l.item();
    if (step % 100 == 0) std::printf("step %3d  mse %.3e\n", step, loss);
    if (step == 500) break;
    tape.backward(l);
    adam.step();
  }
  // What did it learn? Compare NN(theta, omega) with -0.3 omega off the data.
  double worst = 0;
  Tape<double> probe;
  Tape<double>::NoGradGuard no_grad(probe);
  for (double theta : {-1.0, 0.0, 1.0}) {
    for (double omega : {-1.0, 0.5}) {
      Tensor<double> h(Shape{1, 2}, {theta, omega});
      const double learned = nn(probe.constant(h.view())).item();
      std::printf("theta %+.1f omega %+.1f: learned %+.4f, true %+.4f\n", theta, omega, learned, -0.3 * omega);
      worst = std::max(worst, std::abs(learned + 0.3 * omega));
    }
  }
  return loss < 1e-4 && worst < 0.05 ? 0 : 1;
}
