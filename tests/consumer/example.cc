// Fit a tiny MLP to y = sin(3x) with Adam: the README's example.
#include <cmath>
#include <cstdio>

#include "autodiff/ops.h"
#include "autodiff/optim.h"

using namespace anode;

int main() {
  Tensor<float> x(Shape{64, 1}), y(Shape{64, 1});
  for (Index i = 0; i < 64; ++i) {
    x[i] = -1.0f + 2.0f * static_cast<float>(i) / 63.0f;
    y[i] = std::sin(3.0f * x[i]);
  }
  Parameter<float> w1("w1", Tensor<float>(Shape{32, 1}, 1.0f)), b1("b1", Tensor<float>(Shape{32}));
  Parameter<float> w2("w2", Tensor<float>(Shape{1, 32}, 0.1f)), b2("b2", Tensor<float>(Shape{1}));
  for (Index i = 0; i < 32; ++i) b1.value()[i] = -1.0f + 2.0f * static_cast<float>(i) / 31.0f;
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
  }
  std::printf("final mse %.2e\n", loss);
  return loss < 1e-3f ? 0 : 1;
}
