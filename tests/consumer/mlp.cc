// Fit a small MLP to y = sin(3x) with Adam.
#include <cmath>
#include <cstdio>

#include "autodiff/ops.h"
#include "autodiff/optim.h"
#include "datasets/random.h"

using namespace anode;

// A tensor uniform in [-a, a); datasets::Rng gives the same numbers everywhere.
Tensor<float> uniform(Shape shape, double a, datasets::Rng& rng) {
  Tensor<float> t(shape);
  for (float& v : t) v = static_cast<float>(rng.uniform(-a, a));
  return t;
}

int main() {
  Tensor<float> x(Shape{64, 1}), y(Shape{64, 1});
  for (Index i = 0; i < 64; ++i) {
    x[i] = -1.0f + 2.0f * static_cast<float>(i) / 63.0f;
    y[i] = std::sin(3.0f * x[i]);
  }
  // Random initial weights (equal ones would keep all hidden units identical).
  datasets::Rng rng(1);
  Parameter<float> w1("w1", uniform({32, 1}, 2.0, rng)), b1("b1", uniform({32}, 2.0, rng));
  Parameter<float> w2("w2", uniform({1, 32}, 0.2, rng)), b2("b2", Tensor<float>(Shape{1}));
  Adam<float> adam({&w1, &b1, &w2, &b2}, {.lr = 0.01});
  Tape<float> tape;
  float loss = 0;
  for (int step = 0; step < 2000; ++step) {
    adam.zero_grad();
    tape.clear();  // keeps its memory: no allocation after the first step
    Var<float> h = tanh(linear(tape.constant(x.view()), tape.param(w1), tape.param(b1)));
    Var<float> l = mse(linear(h, tape.param(w2), tape.param(b2)), tape.constant(y.view()));
    tape.backward(l);  // gradients accumulate into each Parameter's grad()
    adam.step();
    loss = l.item();
    if (step % 500 == 0) std::printf("step %4d  mse %.2e\n", step, loss);
  }
  std::printf("final mse %.2e\n", loss);
  return loss < 1e-3f ? 0 : 1;
}
