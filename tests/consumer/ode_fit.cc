// Fit the rate k of dh/dt = -k h to samples of h0 exp(-1.5 t), with the
// gradient from the adjoint method.
#include <cmath>
#include <cstdio>
#include <vector>

#include "autodiff/ops.h"
#include "autodiff/optim.h"
#include "ode/solver.h"

using namespace anode;

int main() {
  const float k_true = 1.5f;
  const std::vector<float> times = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f};
  Tensor<float> h0(Shape{4, 1}, {0.5f, 1.0f, 1.5f, 2.0f});  // four trajectories
  Tensor<float> data(Shape{4, 4, 1});                       // h at times[1..4]
  for (Index i = 0; i < 4; ++i)
    for (Index b = 0; b < 4; ++b) data[4 * i + b] = h0[b] * std::exp(-k_true * times[i + 1]);

  Parameter<float> k("k", Tensor<float>(Shape{1, 1}, {0.2f}));
  ode::FunctionDynamics<float> f(
      [&](float /*t*/, Var<float> h) { return -matmul(h, h.tape().param(k)); }, {&k});
  ode::SolverOptions opt;  // dopri5, adaptive
  opt.rtol = 1e-5;
  opt.atol = 1e-7;
  opt.gradient = ode::Gradient::kAdjoint;  // memory flat in the number of steps
  Adam<float> adam({&k}, {.lr = 0.05});
  Tape<float> tape;
  ode::SolveStats stats;
  float loss = 0;
  for (int step = 0; step < 300; ++step) {
    adam.zero_grad();
    tape.clear();
    Var<float> h = ode::odeint(f, tape.constant(h0.view()), times, opt, &stats);  // [4, 4, 1]
    Var<float> l = mse(h, tape.constant(data.view()));
    tape.backward(l);  // runs the adjoint solve back from t = 2 to 0
    adam.step();
    loss = l.item();
    if (step % 100 == 0) std::printf("step %3d  k %.4f  mse %.2e\n", step, k.value()[0], loss);
  }
  std::printf("k = %.4f (true %.1f), mse %.2e; last step NFE forward %lld, backward %lld\n", k.value()[0],
              k_true, loss, static_cast<long long>(stats.nfe_forward),
              static_cast<long long>(stats.nfe_backward));
  return std::abs(k.value()[0] - k_true) < 1e-2f ? 0 : 1;
}
