// GEMM: anode's packed GEMM against Eigen 3 and OpenBLAS, plus the machine's
// float32 FMA peak. Row-major float C = A B, A m x k, B k x n.
//
// Counters: GFLOPS (2 m n k per call) and peak_frac, the fraction of the
// single-core FMA peak (measured as in BM_FmaPeak) times the threads used.
// Single-threaded variants are timed in CPU time, which leaves out the time
// the thread spent descheduled on a shared machine; the all-threads variants
// use wall-clock time (UseRealTime) since their work is spread over threads.
// Let OpenBLAS detect the CPU itself (a pinned OPENBLAS_CORETYPE may be slower):
//   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
//       bazel-bin/benchmarks/autodiff_benchmark --benchmark_filter='Gemm|FmaPeak'

#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <ctime>
#include <random>
#include <string>
#include <thread>

// GCC 12 flags the intrinsics' own `__m512 __Y = __Y` (_mm512_undefined_ps)
// as (maybe-)uninitialized once Eigen's AVX-512 transposes inline them here;
// the state that matters is the one where the intrinsics header is read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>
#include <xsimd/xsimd.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "autodiff/gemm.h"
#include "autodiff/tensor.h"
#include "autodiff/thread_pool.h"

namespace anode {
namespace {

// ---- FMA peak ----------------------------------------------------------------

// 24 independent accumulator chains: enough to cover FMA latency (4 cycles)
// times the two FMA pipes with room to spare, few enough to stay in registers.
constexpr int kChains = 24;
using VecF = xsimd::batch<float>;

// Runs `reps` rounds of kChains vector FMAs; returns the flops done.
double fma_loop(long reps) {
  VecF acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = VecF(1.0f + 1e-3f * j);
  const VecF mul(0.999999f), add(1e-6f);
  for (long r = 0; r < reps; ++r) {
#pragma GCC unroll 24
    for (int j = 0; j < kChains; ++j) acc[j] = xsimd::fma(acc[j], mul, add);
  }
  for (int j = 0; j < kChains; ++j) benchmark::DoNotOptimize(acc[j]);
  return 2.0 * kChains * VecF::size * static_cast<double>(reps);
}

void BM_FmaPeak(benchmark::State& state) {
  double flops = 0;
  for (auto _ : state) flops += fma_loop(1 << 16);
  state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FmaPeak);

// This thread's CPU time in seconds.
double thread_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Single-core peak in GFLOP/s, measured once in CPU time like BM_FmaPeak: the
// median of five ~8 ms runs of its loop.
double peak_gflops() {
  static const double peak = [] {
    double rates[5];
    for (double& rate : rates) {
      const double t0 = thread_seconds();
      const double flops = fma_loop(1 << 21);
      rate = flops / (thread_seconds() - t0) * 1e-9;
    }
    std::sort(rates, rates + 5);
    return rates[2];
  }();
  return peak;
}

// ---- GEMM --------------------------------------------------------------------

enum class Impl { kPacked1T, kPackedAllT, kEigen, kOpenBlas1T, kOpenBlasAllT };

const int kAllThreads = [] { return num_threads(); }();  // the pool's default

struct Operands {
  Tensor<float> a, b, c;
  Operands(Index m, Index n, Index k) : a(Shape{m, k}), b(Shape{k, n}), c(Shape{m, n}) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1, 1);
    for (float& x : a) x = u(rng);
    for (float& x : b) x = u(rng);
  }
};

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void run_gemm(benchmark::State& state, Impl impl, Index m, Index k, Index n) {
  Operands op(m, n, k);
  int threads = 1;
  switch (impl) {
    case Impl::kPacked1T:
      set_num_threads(1);
      break;
    case Impl::kPackedAllT:
      set_num_threads(kAllThreads);
      threads = kAllThreads;
      break;
    case Impl::kOpenBlas1T:
      openblas_set_num_threads(1);
      break;
    case Impl::kOpenBlasAllT:
      threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      openblas_set_num_threads(threads);
      break;
    case Impl::kEigen:
      break;
  }
  Eigen::Map<const RowMajor> ea(op.a.data(), m, k), eb(op.b.data(), k, n);
  Eigen::Map<RowMajor> ec(op.c.data(), m, n);
  for (auto _ : state) {
    switch (impl) {
      case Impl::kPacked1T:
      case Impl::kPackedAllT:
        gemm<float>(false, false, m, n, k, 1.0f, op.a.data(), k, op.b.data(), n, 0.0f,
                    op.c.data(), n);
        break;
      case Impl::kEigen:
        ec.noalias() = ea * eb;
        break;
      case Impl::kOpenBlas1T:
      case Impl::kOpenBlasAllT:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m),
                    static_cast<int>(n), static_cast<int>(k), 1.0f, op.a.data(), static_cast<int>(k),
                    op.b.data(), static_cast<int>(n), 0.0f, op.c.data(), static_cast<int>(n));
        break;
    }
    benchmark::DoNotOptimize(op.c.data());
    benchmark::ClobberMemory();
  }
  if (impl == Impl::kPackedAllT) set_num_threads(1);
  const double flops = 2.0 * m * n * k * static_cast<double>(state.iterations());
  state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
  state.counters["peak_frac"] =
      benchmark::Counter(flops * 1e-9 / (peak_gflops() * threads), benchmark::Counter::kIsRate);
}

// The engine's layer products in their training-step form, ours against
// Eigen: y = x W^T (NT), dx = dy W (NN), dW = dy^T x (TN).
void run_layer(benchmark::State& state, bool eigen, bool ta, bool tb, Index m, Index k, Index n) {
  set_num_threads(1);
  Tensor<float> a(ta ? Shape{k, m} : Shape{m, k}), b(tb ? Shape{n, k} : Shape{k, n}),
      c(Shape{m, n});
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  for (float& x : a) x = u(rng);
  for (float& x : b) x = u(rng);
  const Index lda = ta ? m : k, ldb = tb ? k : n;
  Eigen::Map<const RowMajor> ea(a.data(), ta ? k : m, ta ? m : k);
  Eigen::Map<const RowMajor> eb(b.data(), tb ? n : k, tb ? k : n);
  Eigen::Map<RowMajor> ec(c.data(), m, n);
  for (auto _ : state) {
    if (!eigen) {
      gemm<float>(ta, tb, m, n, k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(), n);
    } else if (ta && tb) {
      ec.noalias() = ea.transpose() * eb.transpose();
    } else if (ta) {
      ec.noalias() = ea.transpose() * eb;
    } else if (tb) {
      ec.noalias() = ea * eb.transpose();
    } else {
      ec.noalias() = ea * eb;
    }
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * m * n * k * static_cast<double>(state.iterations());
  state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
  state.counters["peak_frac"] =
      benchmark::Counter(flops * 1e-9 / peak_gflops(), benchmark::Counter::kIsRate);
}

// Registers variants side by side per size so that ratios come from
// neighbouring measurements on a noisy machine.
const bool kRegistered = [] {
  benchmark::AddCustomContext("openblas_core", openblas_get_corename());
  benchmark::AddCustomContext("anode_threads", std::to_string(kAllThreads));
  const std::pair<const char*, Impl> impls[] = {
      {"BM_Gemm_Packed1T", Impl::kPacked1T},     {"BM_Gemm_PackedAllT", Impl::kPackedAllT},
      {"BM_Gemm_Eigen", Impl::kEigen},           {"BM_Gemm_OpenBLAS1T", Impl::kOpenBlas1T},
      {"BM_Gemm_OpenBLASAllT", Impl::kOpenBlasAllT},
  };
  auto timed = [](benchmark::internal::Benchmark* bm, Impl impl) {
    if (impl == Impl::kPackedAllT || impl == Impl::kOpenBlasAllT) bm->UseRealTime();
  };
  for (Index s : {64, 128, 256, 512, 1024})
    for (auto [name, impl] : impls)
      timed(benchmark::RegisterBenchmark(name, [impl = impl](benchmark::State& st) {
              run_gemm(st, impl, st.range(0), st.range(0), st.range(0));
            })->Arg(s), impl);
  // (m x k)(k x n): the engine's MLP shapes.
  const Index shapes[][3] = {{100, 784, 20}, {100, 30, 10}, {128, 64, 64}, {128, 12, 64}};
  for (const auto& sh : shapes)
    for (auto [name, impl] : impls)
      timed(benchmark::RegisterBenchmark(name, [impl = impl](benchmark::State& st) {
              run_gemm(st, impl, st.range(0), st.range(1), st.range(2));
            })->Args({sh[0], sh[1], sh[2]}), impl);
  // Training-step forms of a 784 -> 20 layer on a batch of 100, and of the
  // 64 -> 64 layer on 128: (m, k, n) with the transposes the tape uses.
  struct Layer {
    const char* suffix;
    bool ta, tb;
    Index m, k, n;
  };
  const Layer layers[] = {
      {"NT", false, true, 100, 784, 20}, {"NN", false, false, 100, 20, 784},
      {"TN", true, false, 20, 100, 784}, {"NT", false, true, 128, 64, 64},
      {"NN", false, false, 128, 64, 64}, {"TN", true, false, 64, 128, 64},
  };
  for (const Layer& l : layers)
    for (bool eigen : {false, true})
      benchmark::RegisterBenchmark(
          (std::string(eigen ? "BM_Gemm_Eigen_" : "BM_Gemm_Packed1T_") + l.suffix).c_str(),
          [l, eigen](benchmark::State& st) {
            run_layer(st, eigen, l.ta, l.tb, st.range(0), st.range(1), st.range(2));
          })->Args({l.m, l.k, l.n});
  return true;
}();

}  // namespace
}  // namespace anode
