// ODE solver benchmarks: the cost of a forward solve per step and per
// function evaluation for every method, and the time and memory of one
// gradient through an RK4 solve for each gradient method.
//
//   bazel build -c opt //benchmarks:ode_benchmark
//   bazel-bin/benchmarks/ode_benchmark --benchmark_filter=Odeint
//
// The dynamics is a batch-128 MLP, 16 -> 64 tanh -> 64 tanh -> 16 (float).
// Everything runs at one thread unless $ANODE_NUM_THREADS says otherwise, and
// is timed in process CPU time (robust to a shared, noisy machine).
//
// Counters:
//   BM_Odeint_Forward/<method>: ns_per_step, ns_per_nfe (process CPU time
//     divided by accepted steps / function evaluations), steps and nfe per
//     solve, rejected steps per solve. euler, midpoint and rk4 take 10 fixed
//     steps on [0, 1]; bosh3, dopri5 and tsit5 are adaptive at
//     rtol = atol = 1e-6 (their step counts are reported). The forward runs
//     without recording (a no-grad solve: the pure integration cost).
//   BM_Odeint_Gradient_<Backprop|Adjoint|Checkpoint>/N: one gradient of
//     mean(h(1)^2) with respect to the dynamics' parameters through N RK4
//     steps; peak_bytes is the tape arena's peak during that gradient (values,
//     adjoints, saved data, checkpoints), tape_nodes the nodes recorded by the
//     forward.

#include <benchmark/benchmark.h>
#include <time.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <tuple>
#include <utility>

#include "benchmarks/bench_util.h"
#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "autodiff/thread_pool.h"
#include "models/dynamics.h"
#include "ode/solver.h"

namespace anode {
namespace {

using bench::use_threads;
using bench::warm_up;
using bench::thread_cpu_seconds;
using bench::process_cpu_ns;

constexpr Index kBatch = 128, kDim = 16, kHidden = 64;

struct Problem {
  datasets::Rng rng{7};
  models::MlpDynamics<float> f{kDim,  kDim, {kHidden, kHidden}, models::Activation::kTanh,
                               models::Activation::kIdentity, false, rng};
  Tensor<float> h0{Shape{kBatch, kDim}};
  Problem() {
    for (float& v : h0) v = static_cast<float>(rng.normal());
  }
};

void BM_Odeint_Forward(benchmark::State& state, ode::Method method) {
  use_threads();
  Problem p;
  ode::SolverOptions o;
  o.method = method;
  if (ode::tableau(method).adaptive()) {
    o.rtol = o.atol = 1e-6;
  } else {
    o.steps = 10;
  }
  const float times[] = {0.0f, 1.0f};
  Tape<float> tape;
  ode::SolveStats st;
  auto solve = [&] {
    tape.clear();
    typename Tape<float>::NoGradGuard no_grad(tape);
    Var<float> h1 = ode::odeint<float>(p.f, tape.constant(p.h0.view()), times, o, &st);
    benchmark::DoNotOptimize(h1.data());
  };
  warm_up(solve);
  std::int64_t steps = 0, nfe = 0, rejected = 0;
  const double t0 = process_cpu_ns();
  for (auto _ : state) {
    solve();
    steps += st.accepted;
    nfe += st.nfe_forward;
    rejected += st.rejected;
  }
  const double ns = process_cpu_ns() - t0;
  const double it = static_cast<double>(state.iterations());
  state.counters["ns_per_step"] = ns / static_cast<double>(steps);
  state.counters["ns_per_nfe"] = ns / static_cast<double>(nfe);
  state.counters["steps"] = static_cast<double>(steps) / it;
  state.counters["nfe"] = static_cast<double>(nfe) / it;
  state.counters["rejected"] = static_cast<double>(rejected) / it;
  state.SetLabel(ode::tableau(method).adaptive() ? "adaptive rtol=atol=1e-6" : "10 fixed steps");
}
BENCHMARK_CAPTURE(BM_Odeint_Forward, euler, ode::Method::kEuler)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_Odeint_Forward, midpoint, ode::Method::kMidpoint)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_Odeint_Forward, rk4, ode::Method::kRk4)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_Odeint_Forward, bosh3, ode::Method::kBosh3)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_Odeint_Forward, dopri5, ode::Method::kDopri5)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_Odeint_Forward, tsit5, ode::Method::kTsit5)->MeasureProcessCPUTime();

// One gradient of mean(h(1)^2) through an RK4 solve of `steps` steps.
class GradientRun {
 public:
  GradientRun(ode::Gradient gradient, int steps, int budget) {
    options_.method = ode::Method::kRk4;
    options_.steps = steps;
    options_.gradient = gradient;
    options_.checkpoint_states = budget;
  }

  void run() {
    for (Parameter<float>* q : p_.f.parameters()) q->zero_grad();
    tape_.clear();
    tape_.arena().reset_peak();
    const float times[] = {0.0f, 1.0f};
    Var<float> h1 = ode::odeint<float>(p_.f, tape_.constant(p_.h0.view()), times, options_, &stats_);
    Var<float> loss = mean(square(h1));
    nodes_ = tape_.num_nodes();
    tape_.backward(loss);
    benchmark::DoNotOptimize(p_.f.parameters()[0]->grad().data());
  }

  void report(benchmark::State& state) const {
    state.counters["peak_bytes"] = static_cast<double>(tape_.arena().peak_bytes());
    state.counters["tape_nodes"] = static_cast<double>(nodes_);
    state.counters["nfe_backward"] = static_cast<double>(stats_.nfe_backward);
    state.counters["recomputed"] = static_cast<double>(stats_.recomputed);
  }

 private:
  Problem p_;
  ode::SolverOptions options_;
  Tape<float> tape_;
  ode::SolveStats stats_;
  std::size_t nodes_ = 0;
};

// Google Benchmark calls a benchmark function several times (to size the
// iteration count, then once per repetition); the run's tape lives across
// those calls so that only the first pays the warm-up (at N = 1000, backprop
// touches over a gigabyte of fresh pages). One slot: the previous
// benchmark's tape is freed when another one starts.
GradientRun& gradient_run(ode::Gradient gradient, int steps, int budget) {
  static std::unique_ptr<GradientRun> slot;
  static std::tuple<ode::Gradient, int, int> key;
  if (!slot || key != std::make_tuple(gradient, steps, budget)) {
    slot.reset();
    slot = std::make_unique<GradientRun>(gradient, steps, budget);
    key = {gradient, steps, budget};
    warm_up([&] { slot->run(); });
  }
  return *slot;
}

void odeint_gradient(benchmark::State& state, ode::Gradient gradient) {
  use_threads();
  const double peak = bench::peak_gflops();
  GradientRun& r = gradient_run(gradient, static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  for (auto _ : state) r.run();
  r.report(state);
  state.counters["peak_GFLOPS"] = peak;
}

void BM_FmaPeak(benchmark::State& state) {
  double flops = 0;
  for (auto _ : state) flops += bench::fma_loop(1 << 16);
  state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FmaPeak);

// N = 10, 100, 1000 at the default budget; N = 1000 at a budget of 8 too.
void gradient_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "budget"});
  for (int n : {10, 100, 1000}) b->Args({n, 64});
  b->Args({1000, 8});
  b->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
}

void BM_Odeint_Gradient_Backprop(benchmark::State& state) { odeint_gradient(state, ode::Gradient::kBackprop); }
void BM_Odeint_Gradient_Adjoint(benchmark::State& state) { odeint_gradient(state, ode::Gradient::kAdjoint); }
void BM_Odeint_Gradient_Checkpoint(benchmark::State& state) { odeint_gradient(state, ode::Gradient::kCheckpoint); }
void BM_Odeint_Gradient_Interpolating(benchmark::State& state) {
  odeint_gradient(state, ode::Gradient::kInterpolating);
}
void BM_Odeint_Gradient_InterpolatingCheckpoint(benchmark::State& state) {
  odeint_gradient(state, ode::Gradient::kInterpolatingCheckpoint);
}
void BM_Odeint_Gradient_Quadrature(benchmark::State& state) { odeint_gradient(state, ode::Gradient::kQuadrature); }
void BM_Odeint_Gradient_Binomial(benchmark::State& state) { odeint_gradient(state, ode::Gradient::kBinomial); }
void BM_Odeint_Gradient_Symplectic(benchmark::State& state) { odeint_gradient(state, ode::Gradient::kSymplectic); }
BENCHMARK(BM_Odeint_Gradient_Backprop)->Apply(gradient_args);
BENCHMARK(BM_Odeint_Gradient_Adjoint)->Apply(gradient_args);
BENCHMARK(BM_Odeint_Gradient_Checkpoint)->Apply(gradient_args);
BENCHMARK(BM_Odeint_Gradient_Interpolating)->Apply(gradient_args);
BENCHMARK(BM_Odeint_Gradient_InterpolatingCheckpoint)->Apply(gradient_args);
BENCHMARK(BM_Odeint_Gradient_Quadrature)->Apply(gradient_args);
BENCHMARK(BM_Odeint_Gradient_Binomial)->Apply(gradient_args);
BENCHMARK(BM_Odeint_Gradient_Symplectic)->Apply(gradient_args);

}  // namespace
}  // namespace anode
