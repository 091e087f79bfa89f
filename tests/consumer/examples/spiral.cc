// torchdiffeq's ode_demo.py: learn the spiral dy/dt = (y^3) A from random
// 10-point segments of one trajectory, with dynamics net(y^3), net =
// Linear(2, 50) -> tanh -> Linear(50, 2), RMSprop at lr 1e-3, dopri5 at
// torchdiffeq's default tolerances (rtol 1e-7, atol 1e-9).
//   spiral [iterations]   (torchdiffeq's demo runs 2000)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "autodiff/ops.h"
#include "autodiff/optim.h"
#include "datasets/random.h"
#include "ode/solver.h"

using namespace anode;

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 2000;
  const int data_size = 1000, batch_time = 10, batch_size = 20;
  std::vector<double> t(data_size);
  for (int i = 0; i < data_size; ++i) t[i] = 25.0 * i / (data_size - 1);
  Tensor<double> a(Shape{2, 2}, {-0.1, 2.0, -2.0, -0.1});
  Tensor<double> y0(Shape{1, 2}, {2.0, 0.0});
  ode::SolverOptions opt;  // dopri5
  opt.rtol = 1e-7;
  opt.atol = 1e-9;

  // The true trajectory, [1000, 1, 2] (its first row is y0).
  ode::FunctionDynamics<double> lambda(
      [&](double, Var<double> y) { return matmul(pow(y, 3.0), y.tape().constant(a.view())); });
  Tensor<double> true_y(Shape{data_size, 1, 2});
  {
    Tape<double> tape;
    Tape<double>::NoGradGuard no_grad(tape);
    Var<double> ys = ode::odeint(lambda, tape.constant(y0.view()), t, opt);  // t[1..]
    for (int j = 0; j < 2; ++j) true_y[j] = y0[j];
    for (Index i = 0; i < ys.size(); ++i) true_y[2 + i] = ys.data()[i];
  }

  datasets::Rng rng(0);
  auto normal = [&](Shape s, double sd) {
    Tensor<double> x(s);
    for (double& v : x) v = rng.normal(0.0, sd);
    return x;
  };
  Parameter<double> w1("w1", normal({50, 2}, 0.1)), b1("b1", Tensor<double>(Shape{50}));
  Parameter<double> w2("w2", normal({2, 50}, 0.1)), b2("b2", Tensor<double>(Shape{2}));
  ode::FunctionDynamics<double> func(
      [&](double, Var<double> y) {
        Tape<double>& tp = y.tape();
        return linear(tanh(linear(pow(y, 3.0), tp.param(w1), tp.param(b1))), tp.param(w2), tp.param(b2));
      },
      {&w1, &b1, &w2, &b2});
  Rmsprop<double> rms({&w1, &b1, &w2, &b2}, {.lr = 1e-3});

  const std::vector<double> batch_t(t.begin(), t.begin() + batch_time);
  Tensor<double> batch_y0(Shape{batch_size, 2}), batch_y(Shape{batch_time - 1, batch_size, 2});
  Tape<double> tape;
  auto test_loss = [&] {
    Tape<double> tt;
    Tape<double>::NoGradGuard no_grad(tt);
    Var<double> pred = ode::odeint(func, tt.constant(y0.view()), t, opt);  // [999, 1, 2]
    double s = 0;
    for (Index i = 0; i < pred.size(); ++i) s += std::abs(pred.data()[i] - true_y[2 + i]);
    return s / static_cast<double>(data_size * 2);  // y0's own error is 0
  };
  const double initial = test_loss();
  double best = initial;
  std::printf("Iter 0000 | Total Loss %.6f\n", initial);
  for (int itr = 1; itr <= iterations; ++itr) {
    // A batch: 20 random start indices, the next 10 points of each.
    for (int b = 0; b < batch_size; ++b) {
      const Index s = static_cast<Index>(rng.below(data_size - batch_time));
      for (int j = 0; j < 2; ++j) batch_y0[2 * b + j] = true_y[2 * s + j];
      for (int i = 1; i < batch_time; ++i)
        for (int j = 0; j < 2; ++j) batch_y[(i - 1) * 2 * batch_size + 2 * b + j] = true_y[2 * (s + i) + j];
    }
    rms.zero_grad();
    tape.clear();
    Var<double> pred = ode::odeint(func, tape.constant(batch_y0.view()), batch_t, opt);  // [9, 20, 2]
    Var<double> loss = mean(abs(pred - tape.constant(batch_y.view())));
    tape.backward(loss);
    rms.step();
    if (itr % 100 == 0 || itr == iterations) {
      const double l = test_loss();
      best = std::min(best, l);
      std::printf("Iter %04d | Total Loss %.6f\n", itr, l);
    }
  }
  // The demo's loss bounces (each batch is 20 random segments); it must at
  // least have learned something.
  return best < 0.5 * initial ? 0 : 1;
}
