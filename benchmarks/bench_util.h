#ifndef ANODE_BENCHMARKS_BENCH_UTIL_H_
#define ANODE_BENCHMARKS_BENCH_UTIL_H_

// Shared by the ODE and model benchmarks.

#include <benchmark/benchmark.h>
#include <time.h>

#include <cstdlib>

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

}  // namespace anode::bench

#endif  // ANODE_BENCHMARKS_BENCH_UTIL_H_
