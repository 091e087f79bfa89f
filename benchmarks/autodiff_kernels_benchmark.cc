// Elementwise kernels and reductions (autodiff/kernels.h) against scalar
// std:: loops and xsimd's own math.
//
// Counter GB/s: decimal gigabytes moved per second, counted honestly per
// element: a forward map reads x and writes y (8 bytes in float); tanh's
// forward+backward adds the backward pass reading y, gy, gx and writing gx
// (another 16). Sizes are elements. `threads` is the pool size (0: all
// hardware threads). One-thread runs are timed in CPU time (on a shared
// machine this excludes time spent descheduled); all-thread runs in wall
// time, since their work is on several threads.
//   bazel-bin/benchmarks/autodiff_benchmark --benchmark_filter='Tanh|Exp|Sigmoid|Softplus|Sum|Add'

// GCC 12's AVX-512 intrinsics (inlined from xsimd's own math below) trip
// -W(maybe-)uninitialized on _mm512_undefined_*() (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>
#include <xsimd/xsimd.hpp>

#include "autodiff/kernels.h"
#include "autodiff/tensor.h"
#include "autodiff/thread_pool.h"

namespace anode {
namespace {

Tensor<float> random_tensor(Index n, float lo, float hi, unsigned seed) {
  Tensor<float> t(Shape{n});
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  for (Index i = 0; i < n; ++i) t.data()[i] = d(rng);
  return t;
}

int hardware_threads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

// Applies the `threads` argument (0: all) and returns the count used.
int use_threads(const benchmark::State& state) {
  const int t = state.range(1) == 0 ? hardware_threads() : static_cast<int>(state.range(1));
  set_num_threads(t);
  return t;
}

void report(benchmark::State& state, double bytes_per_element) {
  const double bytes = bytes_per_element * static_cast<double>(state.range(0)) *
                       static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsRate);
}

// 1M elements on one thread (CPU time) and on all threads (wall time).
void one_thread(benchmark::internal::Benchmark* b) { b->ArgNames({"n", "threads"})->Args({1 << 20, 1}); }
void all_threads(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "threads"})->Args({1 << 20, 0})->UseRealTime();
}
// Sizes around the threading grains, for choosing them.
void grain_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "threads"});
  for (int n : {1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20}) b->Args({n, 1})->Args({n, 2});
}

// ---- Unary forward maps -------------------------------------------------------------

enum class Map { kTanh, kExp, kSigmoid, kSoftplus };

void apply_kernel(Map m, const float* x, float* y, Index n) {
  switch (m) {
    case Map::kTanh: kernels::tanh(x, y, n); break;
    case Map::kExp: kernels::exp(x, y, n); break;
    case Map::kSigmoid: kernels::sigmoid(x, y, n); break;
    case Map::kSoftplus: kernels::softplus(x, y, n); break;
  }
}

template <Map M>
void BM_Forward(benchmark::State& state) {
  const Index n = state.range(0);
  use_threads(state);
  const Tensor<float> x = random_tensor(n, -6, 6, 1);
  Tensor<float> y(Shape{n});
  for (auto _ : state) {
    apply_kernel(M, x.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  report(state, 2 * sizeof(float));
  set_num_threads(hardware_threads());
}

// The baseline: the plain loop over std:: functions that kernels.cc replaced.
template <Map M>
void BM_ScalarStd(benchmark::State& state) {
  const Index n = state.range(0);
  const Tensor<float> x = random_tensor(n, -6, 6, 1);
  Tensor<float> y(Shape{n});
  const float* xp = x.data();
  float* yp = y.data();
  for (auto _ : state) {
    for (Index i = 0; i < n; ++i) {
      const float v = xp[i];
      switch (M) {
        case Map::kTanh: yp[i] = std::tanh(v); break;
        case Map::kExp: yp[i] = std::exp(v); break;
        case Map::kSigmoid: yp[i] = 1.0f / (1.0f + std::exp(-v)); break;
        case Map::kSoftplus: yp[i] = std::max(v, 0.0f) + std::log1p(std::exp(-std::abs(v))); break;
      }
    }
    benchmark::DoNotOptimize(yp);
    benchmark::ClobberMemory();
  }
  report(state, 2 * sizeof(float));
}

// xsimd 8.1's own vectorized math (one thread), for comparison.
template <Map M>
void BM_Xsimd(benchmark::State& state) {
  using V = xsimd::batch<float>;
  constexpr Index W = V::size;
  const Index n = state.range(0);
  const Tensor<float> x = random_tensor(n, -6, 6, 1);
  Tensor<float> y(Shape{n});
  for (auto _ : state) {
    for (Index i = 0; i + W <= n; i += W) {
      const V v = V::load_aligned(x.data() + i);
      V r;
      switch (M) {
        case Map::kTanh: r = xsimd::tanh(v); break;
        case Map::kExp: r = xsimd::exp(v); break;
        case Map::kSigmoid: r = V(1.0f) / (V(1.0f) + xsimd::exp(-v)); break;
        case Map::kSoftplus: r = xsimd::max(v, V(0.0f)) + xsimd::log1p(xsimd::exp(-xsimd::abs(v))); break;
      }
      r.store_aligned(y.data() + i);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  report(state, 2 * sizeof(float));
}

void BM_Tanh_Forward(benchmark::State& s) { BM_Forward<Map::kTanh>(s); }
void BM_Tanh_ScalarStd(benchmark::State& s) { BM_ScalarStd<Map::kTanh>(s); }
void BM_Tanh_Xsimd(benchmark::State& s) { BM_Xsimd<Map::kTanh>(s); }
void BM_Exp_Forward(benchmark::State& s) { BM_Forward<Map::kExp>(s); }
void BM_Exp_ScalarStd(benchmark::State& s) { BM_ScalarStd<Map::kExp>(s); }
void BM_Exp_Xsimd(benchmark::State& s) { BM_Xsimd<Map::kExp>(s); }
void BM_Sigmoid_Forward(benchmark::State& s) { BM_Forward<Map::kSigmoid>(s); }
void BM_Sigmoid_ScalarStd(benchmark::State& s) { BM_ScalarStd<Map::kSigmoid>(s); }
void BM_Sigmoid_Xsimd(benchmark::State& s) { BM_Xsimd<Map::kSigmoid>(s); }
void BM_Softplus_Forward(benchmark::State& s) { BM_Forward<Map::kSoftplus>(s); }
void BM_Softplus_ScalarStd(benchmark::State& s) { BM_ScalarStd<Map::kSoftplus>(s); }
void BM_Softplus_Xsimd(benchmark::State& s) { BM_Xsimd<Map::kSoftplus>(s); }

BENCHMARK(BM_Tanh_Forward)->Apply(one_thread);
BENCHMARK(BM_Tanh_Forward)->Apply(all_threads);
BENCHMARK(BM_Tanh_ScalarStd)->Arg(1 << 20);
BENCHMARK(BM_Tanh_Xsimd)->Arg(1 << 20);
BENCHMARK(BM_Exp_Forward)->Apply(one_thread);
BENCHMARK(BM_Exp_Forward)->Apply(all_threads);
BENCHMARK(BM_Exp_ScalarStd)->Arg(1 << 20);
BENCHMARK(BM_Exp_Xsimd)->Arg(1 << 20);
BENCHMARK(BM_Sigmoid_Forward)->Apply(one_thread);
BENCHMARK(BM_Sigmoid_Forward)->Apply(all_threads);
BENCHMARK(BM_Sigmoid_ScalarStd)->Arg(1 << 20);
BENCHMARK(BM_Sigmoid_Xsimd)->Arg(1 << 20);
BENCHMARK(BM_Softplus_Forward)->Apply(one_thread);
BENCHMARK(BM_Softplus_Forward)->Apply(all_threads);
BENCHMARK(BM_Softplus_ScalarStd)->Arg(1 << 20);
BENCHMARK(BM_Softplus_Xsimd)->Arg(1 << 20);

// ---- tanh forward + backward ---------------------------------------------------------

// y = tanh(x), then gx += gy (1 - y^2): 8 + 16 bytes per element.
void BM_Tanh_ForwardBackward(benchmark::State& state) {
  const Index n = state.range(0);
  use_threads(state);
  const Tensor<float> x = random_tensor(n, -6, 6, 1), gy = random_tensor(n, -1, 1, 2);
  Tensor<float> y(Shape{n}), gx(Shape{n});
  for (auto _ : state) {
    kernels::tanh(x.data(), y.data(), n);
    kernels::tanh_backward(y.data(), gy.data(), gx.data(), n);
    benchmark::DoNotOptimize(gx.data());
    benchmark::ClobberMemory();
  }
  report(state, 6 * sizeof(float));
  set_num_threads(hardware_threads());
}
BENCHMARK(BM_Tanh_ForwardBackward)->Apply(one_thread);
BENCHMARK(BM_Tanh_ForwardBackward)->Apply(all_threads);

void BM_Tanh_ForwardBackwardScalarStd(benchmark::State& state) {
  const Index n = state.range(0);
  const Tensor<float> x = random_tensor(n, -6, 6, 1), gy = random_tensor(n, -1, 1, 2);
  Tensor<float> y(Shape{n}), gx(Shape{n});
  const float *xp = x.data(), *gp = gy.data();
  float *yp = y.data(), *gxp = gx.data();
  for (auto _ : state) {
    for (Index i = 0; i < n; ++i) yp[i] = std::tanh(xp[i]);
    for (Index i = 0; i < n; ++i) gxp[i] += gp[i] * (1.0f - yp[i] * yp[i]);
    benchmark::DoNotOptimize(gxp);
    benchmark::ClobberMemory();
  }
  report(state, 6 * sizeof(float));
}
BENCHMARK(BM_Tanh_ForwardBackwardScalarStd)->Arg(1 << 20);

// Sizes around the threading grain (kGrainCompute / kGrainMemory in kernels.cc).
void BM_Tanh_Grain(benchmark::State& s) { BM_Forward<Map::kTanh>(s); }
BENCHMARK(BM_Tanh_Grain)->Apply(grain_args)->UseRealTime();

void BM_AddTo_Grain(benchmark::State& state) {
  const Index n = state.range(0);
  use_threads(state);
  const Tensor<float> x = random_tensor(n, -1, 1, 1);
  Tensor<float> y(Shape{n});
  for (auto _ : state) {
    kernels::add_to(x.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  report(state, 3 * sizeof(float));
  set_num_threads(hardware_threads());
}
BENCHMARK(BM_AddTo_Grain)->Apply(grain_args)->UseRealTime();

// ---- Reductions --------------------------------------------------------------------

void BM_Sum_Pairwise(benchmark::State& state) {
  const Index n = state.range(0);
  use_threads(state);
  const Tensor<float> x = random_tensor(n, -1, 1, 1);
  for (auto _ : state) benchmark::DoNotOptimize(kernels::sum(x.data(), n));
  report(state, sizeof(float));
  set_num_threads(hardware_threads());
}
BENCHMARK(BM_Sum_Pairwise)->Apply(one_thread);
BENCHMARK(BM_Sum_Pairwise)->Apply(all_threads);

// The baseline: one sequential float accumulator (what the reference did;
// without -ffast-math the compiler may not reorder it).
void BM_Sum_ScalarLoop(benchmark::State& state) {
  const Index n = state.range(0);
  const Tensor<float> x = random_tensor(n, -1, 1, 1);
  for (auto _ : state) {
    float s = 0;
    for (Index i = 0; i < n; ++i) s += x.data()[i];
    benchmark::DoNotOptimize(s);
  }
  report(state, sizeof(float));
}
BENCHMARK(BM_Sum_ScalarLoop)->Arg(1 << 20);

}  // namespace
}  // namespace anode
