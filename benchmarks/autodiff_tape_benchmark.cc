// The tape's own cost: a small MLP forward + backward where the arithmetic is
// negligible, reported per recorded op (ns/op), beside the same computation
// done by hand-written loops without a tape (the baseline).
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "autodiff/gemm.h"
#include "autodiff/kernels.h"
#include "autodiff/ops.h"
#include "autodiff/thread_pool.h"

namespace anode {
namespace {

struct TinyMlp {
  Index batch, width;
  Parameter<float> w1, b1, w2, b2;
  Tensor<float> x, y;
  TinyMlp(Index batch, Index width)
      : batch(batch),
        width(width),
        w1("w1", Tensor<float>(Shape{width, width}, 0.01f)),
        b1("b1", Tensor<float>(Shape{width}, 0.0f)),
        w2("w2", Tensor<float>(Shape{width, width}, 0.01f)),
        b2("b2", Tensor<float>(Shape{width}, 0.0f)),
        x(Shape{batch, width}, 0.5f),
        y(Shape{batch, width}, 0.25f) {}
};

// linear, tanh, linear, mse: 4 ops recorded (plus 6 leaves).
void BM_Tape_MlpForwardBackward(benchmark::State& state) {
  set_num_threads(1);
  TinyMlp m(state.range(0), state.range(1));
  Tape<float> tape;
  std::size_t nodes = 0;
  for (auto _ : state) {
    tape.clear();
    Var<float> h = tanh(linear(tape.constant(m.x.view()), tape.param(m.w1), tape.param(m.b1)));
    Var<float> loss = mse(linear(h, tape.param(m.w2), tape.param(m.b2)), tape.constant(m.y.view()));
    tape.backward(loss);
    nodes = tape.num_nodes();
    benchmark::DoNotOptimize(m.w1.grad().data());
  }
  state.counters["nodes"] = static_cast<double>(nodes);
  // Seconds of CPU per recorded op (forward + backward), shown as e.g. 150n.
  state.counters["time_per_op"] = benchmark::Counter(
      static_cast<double>(nodes), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Tape_MlpForwardBackward)->Args({1, 4})->Args({8, 16})->Args({100, 10});

// The same forward and backward written as plain loops over gemm and
// kernels: what the tape adds on top of the arithmetic.
void BM_Tape_MlpByHandBaseline(benchmark::State& state) {
  set_num_threads(1);
  TinyMlp m(state.range(0), state.range(1));
  const Index b = m.batch, w = m.width;
  std::vector<float> h1(b * w), a1(b * w), out(b * w), g(b * w), ga(b * w), gh(b * w);
  for (auto _ : state) {
    // forward
    for (Index r = 0; r < b; ++r) std::copy(m.b1.value().begin(), m.b1.value().end(), h1.data() + r * w);
    gemm<float>(false, true, b, w, w, 1.0f, m.x.data(), w, m.w1.value().data(), w, 1.0f, h1.data(), w);
    kernels::tanh(h1.data(), a1.data(), b * w);
    for (Index r = 0; r < b; ++r) std::copy(m.b2.value().begin(), m.b2.value().end(), out.data() + r * w);
    gemm<float>(false, true, b, w, w, 1.0f, a1.data(), w, m.w2.value().data(), w, 1.0f, out.data(), w);
    float loss = kernels::squared_distance(out.data(), m.y.data(), b * w) / static_cast<float>(b * w);
    benchmark::DoNotOptimize(loss);
    // backward
    kernels::sub(out.data(), b * w, m.y.data(), b * w, g.data(), b * w);
    kernels::scale(g.data(), 2.0f / static_cast<float>(b * w), g.data(), b * w);
    gemm<float>(true, false, w, w, b, 1.0f, g.data(), w, a1.data(), w, 1.0f, m.w2.grad().data(), w);
    kernels::reduce_rows_add(g.data(), b * w, m.b2.grad().data(), w);
    gemm<float>(false, false, b, w, w, 1.0f, g.data(), w, m.w2.value().data(), w, 0.0f, ga.data(), w);
    std::fill(gh.begin(), gh.end(), 0.0f);
    kernels::tanh_backward(a1.data(), ga.data(), gh.data(), b * w);
    gemm<float>(true, false, w, w, b, 1.0f, gh.data(), w, m.x.data(), w, 1.0f, m.w1.grad().data(), w);
    kernels::reduce_rows_add(gh.data(), b * w, m.b1.grad().data(), w);
    benchmark::DoNotOptimize(m.w1.grad().data());
  }
}
BENCHMARK(BM_Tape_MlpByHandBaseline)->Args({1, 4})->Args({8, 16})->Args({100, 10});

// Recording cost alone: a long chain of cheap scalar ops, forward + backward.
void BM_Tape_ScalarChain(benchmark::State& state) {
  const Index n = state.range(0);
  Tensor<float> x(Shape{}, {0.5f});
  Tape<float> tape;
  for (auto _ : state) {
    tape.clear();
    Var<float> v = tape.input(x.view());
    for (Index i = 0; i < n; ++i) v = tanh(v);
    tape.backward(v);
    benchmark::DoNotOptimize(tape.grad(v).data);
  }
  state.counters["time_per_op"] = benchmark::Counter(
      static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_Tape_ScalarChain)->Arg(1000)->Arg(100000);

}  // namespace
}  // namespace anode
