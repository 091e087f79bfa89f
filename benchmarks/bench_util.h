#ifndef ANODE_BENCHMARKS_BENCH_UTIL_H_
#define ANODE_BENCHMARKS_BENCH_UTIL_H_

// Shared by the ODE and model benchmarks.

#include <benchmark/benchmark.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <xsimd/xsimd.hpp>

#include "autodiff/thread_pool.h"

namespace anode::bench {

/// One thread unless ANODE_NUM_THREADS asks for more; set once, before the
/// first benchmark runs (set_num_threads is not meant for hot loops).
inline void use_threads() {
  static const int threads = [] {
    const char* env = std::getenv("ANODE_NUM_THREADS");
    const int n = env != nullptr && std::atoi(env) >= 1 ? std::atoi(env) : 1;
    set_num_threads(n);
    return n;
  }();
  benchmark::DoNotOptimize(threads);
}

/// Untimed warm-up runs: the first grows the tape's arena and touches its
/// pages for the first time (page faults cost tens of microseconds each on
/// this VM), the optimizer's and the kernels' state settles; after them a
/// step allocates nothing.
template <class F>
void warm_up(F&& run) {
  for (int i = 0; i < 3; ++i) run();
}

/// CPU time of the calling thread / of the process.
inline double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
inline double process_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return 1e9 * static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec);
}

/// The single-core FMA loop: 24 independent chains of vector FMAs
/// (AVX-512 here: xsimd::batch<float> is 16 wide) cover the FMA latency
/// times the two pipes and stay in registers. Returns the FLOPs done.
inline double fma_loop(long reps) {
  constexpr int kChains = 24;
  using VecF = xsimd::batch<float>;
  VecF acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = VecF(1.0f + 1e-3f * static_cast<float>(j));
  const VecF mul(0.999999f), add(1e-6f);
  for (long r = 0; r < reps; ++r) {
#pragma GCC unroll 24
    for (int j = 0; j < kChains; ++j) acc[j] = xsimd::fma(acc[j], mul, add);
  }
  VecF sum(0.0f);
  for (int j = 0; j < kChains; ++j) sum += acc[j];
  benchmark::DoNotOptimize(sum);
  return 2.0 * kChains * static_cast<double>(VecF::size) * static_cast<double>(reps);
}

/// Single-core peak in GFLOP/s: the best of ten runs of about 20 ms each, in
/// thread CPU time (time spent descheduled on a shared machine would otherwise
/// lower the peak and inflate a fraction of it), and the best seen so far in
/// this process, so a peak measured in a noisy moment does not flatter a
/// fraction.
inline double peak_gflops() {
  static double best = 0;
  for (int trial = 0; trial < 10; ++trial) {
    const double t0 = thread_cpu_seconds();
    const double flops = fma_loop(1 << 18);
    best = std::max(best, flops / (thread_cpu_seconds() - t0) * 1e-9);
  }
  return best;
}

}  // namespace anode::bench

#endif  // ANODE_BENCHMARKS_BENCH_UTIL_H_
