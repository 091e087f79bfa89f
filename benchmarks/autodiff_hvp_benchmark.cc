// The cost of second order: a Hessian-vector product of a small MLP loss
// with respect to its parameters (reverse-over-reverse: the gradient recorded
// as ops by Tape::gradients, then one reverse pass over <gradient, v>), beside
// one gradient of the same loss (forward + numeric backward), the baseline.
// Issue 10 asks for an HVP costing at most 5 gradients: the ratio of the two
// times. Also forward-over-reverse (the tangent of the recorded gradient)
// and a JVP (forward mode) beside the plain forward.
#include <benchmark/benchmark.h>

#include <cmath>
#include <vector>

#include "autodiff/ops.h"
#include "autodiff/thread_pool.h"

namespace anode {
namespace {

// x [batch, width] -> tanh(linear) -> tanh(linear) -> linear -> mse.
struct Mlp {
  Parameter<float> w1, b1, w2, b2, w3, b3;
  Tensor<float> x, y;
  std::vector<Tensor<float>> v;  // the HVP's direction, one per parameter
  Mlp(Index batch, Index width)
      : w1("w1", Tensor<float>(Shape{width, width})),
        b1("b1", Tensor<float>(Shape{width}, 0.01f)),
        w2("w2", Tensor<float>(Shape{width, width})),
        b2("b2", Tensor<float>(Shape{width}, -0.01f)),
        w3("w3", Tensor<float>(Shape{width, width})),
        b3("b3", Tensor<float>(Shape{width}, 0.0f)),
        x(Shape{batch, width}),
        y(Shape{batch, width}) {
    for (Parameter<float>* p : params()) {
      Tensor<float>& t = p->value();
      for (Index i = 0; i < t.size(); ++i) t[i] = 0.3f * std::sin(0.37f * float(i) + float(t.size()));
      v.emplace_back(t.shape());
      for (Index i = 0; i < t.size(); ++i) v.back()[i] = std::cos(0.11f * float(i));
    }
    for (Index i = 0; i < x.size(); ++i) x[i] = std::sin(0.05f * float(i));
    for (Index i = 0; i < y.size(); ++i) y[i] = std::cos(0.07f * float(i));
  }
  std::vector<Parameter<float>*> params() { return {&w1, &b1, &w2, &b2, &w3, &b3}; }
  Var<float> loss(Tape<float>& t, std::span<const Var<float>> p) {
    Var<float> h = tanh(linear(t.constant(x.view()), p[0], p[1]));
    h = tanh(linear(h, p[2], p[3]));
    return mse(linear(h, p[4], p[5]), t.constant(y.view()));
  }
};

std::vector<Var<float>> leaves(Tape<float>& t, Mlp& m) {
  std::vector<Var<float>> p;
  for (Parameter<float>* q : m.params()) p.push_back(t.param(*q));
  return p;
}

void BM_Hvp_MlpGradientBaseline(benchmark::State& state) {
  set_num_threads(1);
  Mlp m(state.range(0), state.range(1));
  Tape<float> tape;
  for (auto _ : state) {
    tape.clear();
    const std::vector<Var<float>> p = leaves(tape, m);
    tape.backward(m.loss(tape, p));
    benchmark::DoNotOptimize(m.w1.grad().data());
  }
}
BENCHMARK(BM_Hvp_MlpGradientBaseline)->Args({100, 32})->Args({16, 8})->Args({256, 64});

// Reverse-over-reverse; the HVP accumulates into the parameters' gradients.
void BM_Hvp_MlpReverseOverReverse(benchmark::State& state) {
  set_num_threads(1);
  Mlp m(state.range(0), state.range(1));
  Tape<float> tape;
  for (auto _ : state) {
    tape.clear();
    const std::vector<Var<float>> p = leaves(tape, m);
    const std::vector<Var<float>> g = tape.gradients(m.loss(tape, p), p);
    Var<float> dot = sum(mul(g[0], tape.constant(m.v[0].view())));
    for (std::size_t i = 1; i < g.size(); ++i) dot = dot + sum(mul(g[i], tape.constant(m.v[i].view())));
    tape.backward(dot);
    benchmark::DoNotOptimize(m.w1.grad().data());
  }
}
BENCHMARK(BM_Hvp_MlpReverseOverReverse)->Args({100, 32})->Args({16, 8})->Args({256, 64});

// Forward-over-reverse: tangents v on the parameters, H v = the tangent of
// the recorded gradient.
void BM_Hvp_MlpForwardOverReverse(benchmark::State& state) {
  set_num_threads(1);
  Mlp m(state.range(0), state.range(1));
  Tape<float> tape;
  for (auto _ : state) {
    tape.clear();
    Tape<float>::ForwardMode forward(tape);
    const std::vector<Var<float>> p = leaves(tape, m);
    for (std::size_t i = 0; i < p.size(); ++i) tape.set_tangent(p[i], tape.constant(m.v[i].view()));
    const std::vector<Var<float>> g = tape.gradients(m.loss(tape, p), p);
    benchmark::DoNotOptimize(tape.tangent(g[0]).data());
  }
}
BENCHMARK(BM_Hvp_MlpForwardOverReverse)->Args({100, 32})->Args({16, 8})->Args({256, 64});

}  // namespace
}  // namespace anode
