// The project's headline workloads (their definitions are fixed; the PyTorch
// twins in benchmarks/peers/torch_twins.py compute exactly the same thing):
//
// W1 mnist-anode-step: batch 100 of 784 floats; Linear 784 -> 20 (no
//   activation); zero-pad p = 10; dynamics Linear 30 -> 10, tanh,
//   Linear 10 -> 10, tanh, Linear 10 -> 30; RK4, 10 steps on [0, 1]; keep the
//   first 20; Linear 20 -> 10; softmax cross-entropy; backward; Adam (lr 0.05).
//   BM_W1_MnistAnodeStep/<backprop|adjoint>: time per training step.
// W2 spheres-anode-step: 2-D inputs, batch 128, p = 10 (state 12); dynamics
//   Linear 12 -> 64, relu, Linear 64 -> 64, relu, Linear 64 -> 12; RK4, 10
//   steps on [0, 1]; Linear 12 -> 1; MSE; Adam (lr 0.05).
//   BM_W2_SpheresAnodeStep/<backprop|adjoint>: time per training step, GEMM
//   GFLOP/s and the fraction of the single-core FMA peak measured in this
//   binary (BM_FmaPeak; the same loop, best of ten 20 ms runs, feeds
//   peak_fraction, the best of all its measurements in the run).
// W3 grad-scaling: the W2 model with N = 10, 100, 1000 RK4 steps:
//   BM_W3_GradScaling_<Backprop|Adjoint|Checkpoint|Binomial|Symplectic>/N: time and peak tape
//   arena bytes ("peak_bytes") of one gradient (forward + backward, no
//   optimizer step).
//
// W2's FLOPs (GEMMs only; bias adds, activations, RK combinations and Adam
// are O(elements) and not counted). One dynamics evaluation on a batch of
// B = 128 costs F = 2 B (12*64 + 64*64 + 64*12) = 1,441,792 FLOP. A training
// step with backprop evaluates f 4N = 40 times; the backward pass of each
// Linear is two GEMMs as large as its forward (dW, dX), except that the first
// evaluation's input is data, so its first layer's dX (2 B 12*64 = 196,608)
// is not computed. The head (12 -> 1) adds 3 * 2 B 12 = 9,216. Total:
//   3 * 40 * F - 196,608 + 9,216 = 172,827,648 FLOP per step (~173 MFLOP).
// With the adjoint: the forward solve (40 F), then 40 VJPs each recomputing
// f and taking dX and dW (3 F): 160 F + 9,216 = 230,695,936 FLOP. The
// checkpoint method does the same work (a forward solve, then every step
// re-run and backpropagated, the state always an input needing dX). See
// w2_flops().
//
// All benchmarks run at one thread (anode::set_num_threads(1)) unless
// $ANODE_NUM_THREADS is set, and are timed in process CPU time.
//
//   bazel build -c opt //benchmarks:models_benchmark
//   bazel-bin/benchmarks/models_benchmark --benchmark_repetitions=5

#include <benchmark/benchmark.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>
#include <random>
#include <tuple>
#include <vector>

#include "benchmarks/bench_util.h"
#include "autodiff/ops.h"
#include "autodiff/optim.h"
#include "autodiff/tape.h"
#include "autodiff/thread_pool.h"
#include "experiments/configs.h"
#include "models/model.h"

namespace anode {
namespace {

using bench::use_threads;
using bench::warm_up;
using bench::thread_cpu_seconds;
using bench::process_cpu_ns;

// ---- FMA peak --------------------------------------------------------------------
// bench::fma_loop: the same loop as BM_FmaPeak in autodiff_gemm_benchmark.cc.

using bench::fma_loop;
using bench::peak_gflops;

void BM_FmaPeak(benchmark::State& state) {
  double flops = 0;
  for (auto _ : state) flops += fma_loop(1 << 16);
  state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FmaPeak);

// ---- Workloads ---------------------------------------------------------------------

// The MNIST experiment's ANODE p = 10 (experiments/configs.h), with what W1's
// PyTorch twin fixes differently: no activation after the input layer or at
// the dynamics' output, RK4 with 10 steps, nn.Linear's initialization.
models::ModelConfig w1_config(ode::Gradient g) {
  models::ModelConfig c = experiments::mnist_mlp_config(models::Augmentation::kZeroPad, 10);
  c.input_activation = models::Activation::kIdentity;
  c.final_activation = models::Activation::kIdentity;
  c.block.solver = ode::SolverOptions{};
  c.block.solver.method = ode::Method::kRk4;
  c.block.solver.steps = 10;
  c.block.solver.gradient = g;
  c.init = models::Init::kPytorch;  // as the twin's nn.Linear
  c.seed = 1;
  return c;
}

models::ModelConfig w2_config(ode::Gradient g, int steps) {
  models::ModelConfig c;
  c.input_dim = 2;
  c.augmentation = models::Augmentation::kZeroPad;
  c.augment_dim = 10;
  c.hidden = {64, 64};
  c.hidden_activation = models::Activation::kRelu;
  c.final_activation = models::Activation::kIdentity;
  c.block.solver.method = ode::Method::kRk4;
  c.block.solver.steps = steps;
  c.block.solver.gradient = g;
  c.block.t_end = 1.0;
  c.output_dim = 1;
  c.head = models::Head::kRegression;
  c.init = models::Init::kPytorch;
  c.seed = 2;
  return c;
}

constexpr Index kW1Batch = 100, kW2Batch = 128;

// MNIST-like data: pixels in [0, 1], labels 0..9.
struct W1Data {
  Tensor<float> x{Shape{kW1Batch, 784}};
  std::vector<int> labels = std::vector<int>(kW1Batch);
  W1Data() {
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<float> u(0, 1);
    for (float& v : x) v = u(rng);
    for (int& l : labels) l = static_cast<int>(rng() % 10);
  }
};

// Nested spheres in 2-D: +1 inside radius 0.5, -1 in the annulus [1, 1.5].
struct W2Data {
  Tensor<float> x{Shape{kW2Batch, 2}};
  Tensor<float> y{Shape{kW2Batch, 1}};
  W2Data() {
    std::mt19937_64 rng(12);
    std::uniform_real_distribution<double> u(0, 1);
    for (Index i = 0; i < kW2Batch; ++i) {
      const bool inner = i % 2 == 0;
      const double r = inner ? 0.5 * u(rng) : 1.0 + 0.5 * u(rng);
      const double a = 6.283185307179586 * u(rng);
      x(i, 0) = static_cast<float>(r * std::cos(a));
      x(i, 1) = static_cast<float>(r * std::sin(a));
      y(i, 0) = inner ? 1.0f : -1.0f;
    }
  }
};

// GEMM FLOPs of one W2 gradient (forward + backward) with N RK4 steps.
double w2_flops(ode::Gradient g, int steps) {
  const double b = kW2Batch;
  const double f = 2 * b * (12 * 64 + 64 * 64 + 64 * 12);  // one evaluation of f
  const double first_dx = 2 * b * 12 * 64;                  // layer 1's dX
  const double head = 3 * 2 * b * 12;                       // 12 -> 1: y, dW, dX
  const double evals = 4.0 * steps;
  switch (g) {
    case ode::Gradient::kBackprop:
      return 3 * evals * f - first_dx + head;
    case ode::Gradient::kAdjoint:  // forward solve, then a VJP (f, dX, dW) per stage
      return evals * f + 3 * evals * f + head;
    case ode::Gradient::kCheckpoint:  // forward solve, then backprop through each re-run step
    case ode::Gradient::kBinomial:    // the same (recomputed states not counted, as for checkpoint)
      return evals * f + 3 * evals * f + head;
    case ode::Gradient::kSymplectic:  // forward solve; per step its stages again, then a VJP per stage
      return evals * f + evals * f + 3 * evals * f + head;
    case ode::Gradient::kInterpolating:  // forward solve, then a VJP per backward stage
      return evals * f + 3 * evals * f + head;
    case ode::Gradient::kInterpolatingCheckpoint:  // and the forward re-solve
      return 2 * evals * f + 3 * evals * f + head;
    case ode::Gradient::kQuadrature:  // RK4: 4 stage VJPs, 2 Gauss nodes, 1 end-of-step VJP per step
      return evals * f + 3 * 7.0 * steps * f + head;
  }
  return 0;
}

// One workload: model, data, tape and (for training steps) Adam; run() is one
// training step (zero grads, forward, loss, backward, Adam) or, without the
// optimizer, one gradient (zero grads, forward, loss, backward).
class Workload {
 public:
  enum Kind { kW1, kW2 };

  Workload(Kind kind, ode::Gradient g, int steps, bool train)
      : kind_(kind), model_(kind == kW1 ? w1_config(g) : w2_config(g, steps)) {
    if (train) adam_.emplace(model_.parameters(), AdamOptions{.lr = 0.05});
  }

  void run() {
    for (Parameter<float>* p : model_.parameters()) p->zero_grad();
    tape_.clear();
    tape_.arena().reset_peak();
    Var<float> loss;
    if (kind_ == kW1) {
      loss = softmax_cross_entropy<float>(model_(tape_.constant(w1_.x.view()), true), w1_.labels);
    } else {
      loss = mse(model_(tape_.constant(w2_.x.view()), true), tape_.constant(w2_.y.view()));
    }
    nodes_ = tape_.num_nodes();
    tape_.backward(loss);
    if (adam_) adam_->step();
    benchmark::DoNotOptimize(loss.item());
  }

  void report(benchmark::State& state) const {
    state.counters["peak_bytes"] = static_cast<double>(tape_.arena().peak_bytes());
    state.counters["tape_nodes"] = static_cast<double>(nodes_);
  }

 private:
  Kind kind_;
  W1Data w1_;
  W2Data w2_;
  models::AnodeModel<float> model_;
  std::optional<Adam<float>> adam_;
  Tape<float> tape_;
  std::size_t nodes_ = 0;
};

// Google Benchmark calls a benchmark function several times (to size the
// iteration count, then once per repetition). The workload lives across
// those calls, so only the first one pays the warm-up (and, for W3 at
// N = 1000, gigabytes of first-touch page faults). One slot: the previous
// benchmark's workload is freed when another one starts.
Workload& workload(Workload::Kind kind, ode::Gradient g, int steps, bool train) {
  static std::unique_ptr<Workload> slot;
  static std::tuple<Workload::Kind, ode::Gradient, int, bool> key;
  const auto want = std::make_tuple(kind, g, steps, train);
  if (!slot || key != want) {
    slot.reset();
    slot = std::make_unique<Workload>(kind, g, steps, train);
    key = want;
    warm_up([&] { slot->run(); });
  }
  return *slot;
}

void BM_W1_MnistAnodeStep(benchmark::State& state, ode::Gradient g) {
  use_threads();
  Workload& w = workload(Workload::kW1, g, 10, true);
  for (auto _ : state) w.run();
  w.report(state);
}
BENCHMARK_CAPTURE(BM_W1_MnistAnodeStep, backprop, ode::Gradient::kBackprop)
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_W1_MnistAnodeStep, adjoint, ode::Gradient::kAdjoint)
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMicrosecond);

void BM_W2_SpheresAnodeStep(benchmark::State& state, ode::Gradient g) {
  use_threads();
  const double peak = peak_gflops();  // measured before the timed loop
  Workload& w = workload(Workload::kW2, g, 10, true);
  for (auto _ : state) w.run();
  const double flops = w2_flops(g, 10);
  const double it = static_cast<double>(state.iterations());
  state.counters["GFLOPS"] = benchmark::Counter(flops * it * 1e-9, benchmark::Counter::kIsRate);
  state.counters["peak_fraction"] = benchmark::Counter(flops * it * 1e-9 / peak, benchmark::Counter::kIsRate);
  state.counters["peak_GFLOPS"] = peak;
  state.counters["MFLOP_per_step"] = flops * 1e-6;
  w.report(state);
}
BENCHMARK_CAPTURE(BM_W2_SpheresAnodeStep, backprop, ode::Gradient::kBackprop)
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_W2_SpheresAnodeStep, adjoint, ode::Gradient::kAdjoint)
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMicrosecond);

// One gradient of the W2 model (no optimizer step) with N RK4 steps.
void w3_grad(benchmark::State& state, ode::Gradient g) {
  use_threads();
  const int steps = static_cast<int>(state.range(0));
  Workload& w = workload(Workload::kW2, g, steps, false);
  for (auto _ : state) w.run();
  const double flops = w2_flops(g, steps);
  state.counters["GFLOPS"] = benchmark::Counter(flops * static_cast<double>(state.iterations()) * 1e-9,
                                                benchmark::Counter::kIsRate);
  w.report(state);
}

void BM_W3_GradScaling_Backprop(benchmark::State& state) { w3_grad(state, ode::Gradient::kBackprop); }
void BM_W3_GradScaling_Adjoint(benchmark::State& state) { w3_grad(state, ode::Gradient::kAdjoint); }
void BM_W3_GradScaling_Checkpoint(benchmark::State& state) { w3_grad(state, ode::Gradient::kCheckpoint); }
BENCHMARK(BM_W3_GradScaling_Backprop)->Arg(10)->Arg(100)->Arg(1000)->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_W3_GradScaling_Adjoint)->Arg(10)->Arg(100)->Arg(1000)->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_W3_GradScaling_Checkpoint)->Arg(10)->Arg(100)->Arg(1000)->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
void BM_W3_GradScaling_Binomial(benchmark::State& state) { w3_grad(state, ode::Gradient::kBinomial); }
void BM_W3_GradScaling_Symplectic(benchmark::State& state) { w3_grad(state, ode::Gradient::kSymplectic); }
BENCHMARK(BM_W3_GradScaling_Binomial)->Arg(10)->Arg(100)->Arg(1000)->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_W3_GradScaling_Symplectic)->Arg(10)->Arg(100)->Arg(1000)->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace anode
