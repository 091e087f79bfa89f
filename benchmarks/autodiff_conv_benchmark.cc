// conv2d (autodiff/conv.h) on the conv-ANODE MNIST shapes: x [batch, 64, 28,
// 28], w [64, 64, k, k], k = 3 and 1, "same" padding, float, bias. Against two
// baselines: a direct convolution loop (vectorizable inner loop over the
// output row, one thread) and im2col + OpenBLAS sgemm per image (forward).
//
// Counter GFLOPS: 2 N O C k^2 H W per forward (bias and im2col not counted);
// forward+backward counts three such products (y, dx, dw). Args are
// batch/k/threads (threads 0: the pool's default, all hardware threads).
// One-thread runs are timed in CPU time (on a shared machine this excludes
// time spent descheduled), all-thread runs in wall time, since their work is
// on several threads. Mostly batch 32 to keep the run short (images are
// independent: the per-image cost is the same at 256), plus the training
// shape, batch 256, for the op itself on all threads.
//   bazel-bin/benchmarks/autodiff_benchmark --benchmark_filter=Conv2d

#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <random>
#include <thread>
#include <utility>

#include "autodiff/conv.h"
#include "autodiff/tape.h"
#include "autodiff/tensor.h"
#include "autodiff/thread_pool.h"

namespace anode {
namespace {

constexpr Index kChannels = 64, kSide = 28;

const int kAllThreads = [] { return num_threads(); }();  // the pool's default

Tensor<float> random_tensor(const Shape& s, unsigned seed) {
  Tensor<float> t(s);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  for (float& x : t) x = u(rng);
  return t;
}

double conv_flops(Index batch, Index k) {
  return 2.0 * static_cast<double>(batch * kChannels * kChannels * k * k * kSide * kSide);
}

struct Problem {
  Index batch, k;
  Tensor<float> x, w, b, cot;
  explicit Problem(const benchmark::State& st)
      : batch(st.range(0)),
        k(st.range(1)),
        x(random_tensor(Shape{batch, kChannels, kSide, kSide}, 1)),
        w(random_tensor(Shape{kChannels, kChannels, k, k}, 2)),
        b(random_tensor(Shape{kChannels}, 3)),
        cot(random_tensor(Shape{batch, kChannels, kSide, kSide}, 4)) {
    for (float& v : w) v *= 0.1f;
  }
};

void set_threads(const benchmark::State& st) {
  set_num_threads(st.range(2) == 0 ? kAllThreads : static_cast<int>(st.range(2)));
}

void report(benchmark::State& st, double flops_per_iter) {
  st.counters["GFLOPS"] = benchmark::Counter(
      flops_per_iter * static_cast<double>(st.iterations()) * 1e-9, benchmark::Counter::kIsRate);
  set_num_threads(kAllThreads);
}

void BM_Conv2d_Forward(benchmark::State& st) {
  Problem pr(st);
  set_threads(st);
  Tape<float> tape(std::size_t(1) << 28);
  for (auto _ : st) {
    tape.clear();
    Var<float> y = conv2d(tape.constant(pr.x), tape.constant(pr.w), tape.constant(pr.b));
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  report(st, conv_flops(pr.batch, pr.k));
}

// y = conv2d(x, w, b) and the pull-back of a cotangent to x, w and b (as in
// an adjoint solve: every input needs its gradient).
void BM_Conv2d_ForwardBackward(benchmark::State& st) {
  Problem pr(st);
  set_threads(st);
  Tape<float> tape(std::size_t(1) << 28);
  for (auto _ : st) {
    tape.clear();
    Var<float> x = tape.input(pr.x), w = tape.input(pr.w), b = tape.input(pr.b);
    Var<float> y = conv2d(x, w, b);
    tape.backward(y, pr.cot.view());
    benchmark::DoNotOptimize(tape.grad(w).data);
    benchmark::ClobberMemory();
  }
  report(st, 3 * conv_flops(pr.batch, pr.k));
}

// Baseline: the definition as loops, the inner loop over an output row's
// valid columns (which GCC vectorizes), one thread.
void direct_conv(const Problem& pr, float* y) {
  const Index k = pr.k, p = (k - 1) / 2, C = kChannels, S = kSide;
  for (Index n = 0; n < pr.batch; ++n)
    for (Index o = 0; o < kChannels; ++o) {
      float* yo = y + (n * kChannels + o) * S * S;
      std::fill(yo, yo + S * S, pr.b[o]);
      for (Index c = 0; c < C; ++c) {
        const float* xc = pr.x.data() + (n * C + c) * S * S;
        for (Index i = 0; i < k; ++i)
          for (Index j = 0; j < k; ++j) {
            const float wv = pr.w[((o * C + c) * k + i) * k + j];
            const Index b0 = std::max<Index>(0, p - j), b1 = std::min<Index>(S, S + p - j);
            for (Index a = std::max<Index>(0, p - i); a < std::min<Index>(S, S + p - i); ++a) {
              const float* xr = xc + (a + i - p) * S + (j - p);
              float* yr = yo + a * S;
              for (Index b = b0; b < b1; ++b) yr[b] += wv * xr[b];
            }
          }
      }
    }
}

void BM_Conv2d_Direct(benchmark::State& st) {
  Problem pr(st);
  Tensor<float> y(Shape{pr.batch, kChannels, kSide, kSide});
  for (auto _ : st) {
    direct_conv(pr, y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  report(st, conv_flops(pr.batch, pr.k));
}

// Reference: the same im2col lowering with OpenBLAS's sgemm (its own threads).
void BM_Conv2d_Im2colOpenBLAS(benchmark::State& st) {
  Problem pr(st);
  const Index k = pr.k, p = (k - 1) / 2, S = kSide, patch = kChannels * k * k;
  const int threads =
      st.range(2) == 0 ? static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))
                       : static_cast<int>(st.range(2));
  openblas_set_num_threads(threads);
  Tensor<float> col(Shape{patch, S * S}), y(Shape{pr.batch, kChannels, kSide, kSide});
  for (auto _ : st) {
    for (Index n = 0; n < pr.batch; ++n) {
      const float* xn = pr.x.data() + n * kChannels * S * S;
      const float* src = xn;
      if (k > 1) {
        float* d = col.data();
        for (Index c = 0; c < kChannels; ++c)
          for (Index i = 0; i < k; ++i)
            for (Index j = 0; j < k; ++j)
              for (Index a = 0; a < S; ++a)
                for (Index b = 0; b < S; ++b, ++d) {
                  const Index r = a + i - p, q = b + j - p;
                  *d = (r < 0 || r >= S || q < 0 || q >= S) ? 0.0f : xn[(c * S + r) * S + q];
                }
        src = col.data();
      }
      float* yn = y.data() + n * kChannels * S * S;
      for (Index o = 0; o < kChannels; ++o) {
        std::fill(yn + o * S * S, yn + (o + 1) * S * S, pr.b[o]);
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(kChannels),
                  static_cast<int>(S * S), static_cast<int>(patch), 1.0f, pr.w.data(),
                  static_cast<int>(patch), src, static_cast<int>(S * S), 1.0f, yn,
                  static_cast<int>(S * S));
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  openblas_set_num_threads(1);
  report(st, conv_flops(pr.batch, pr.k));
}

// Registers each shape's variants side by side, so that ratios come from
// neighbouring measurements on a noisy machine. One-thread runs are timed in
// CPU time, all-thread runs in wall time.
const bool kRegistered = [] {
  using Fn = void (*)(benchmark::State&);
  const std::pair<const char*, Fn> variants[] = {
      {"BM_Conv2d_Forward", &BM_Conv2d_Forward},
      {"BM_Conv2d_ForwardBackward", &BM_Conv2d_ForwardBackward},
      {"BM_Conv2d_Im2colOpenBLAS", &BM_Conv2d_Im2colOpenBLAS},
  };
  for (Index k : {3, 1}) {
    for (Index threads : {1, 0}) {
      for (auto [name, fn] : variants) {
        auto* bm = benchmark::RegisterBenchmark(name, fn)
                       ->ArgNames({"batch", "k", "threads"})
                       ->Args({32, k, threads})
                       ->Unit(benchmark::kMillisecond);
        if (threads != 1) bm->UseRealTime();
      }
    }
    benchmark::RegisterBenchmark("BM_Conv2d_Direct", &BM_Conv2d_Direct)
        ->ArgNames({"batch", "k", "threads"})
        ->Args({4, k, 1})
        ->Unit(benchmark::kMillisecond);
  }
  // The training shape itself: batch 256, all threads.
  for (auto [name, fn] : variants) {
    if (fn == &BM_Conv2d_Im2colOpenBLAS) continue;
    benchmark::RegisterBenchmark(name, fn)
        ->ArgNames({"batch", "k", "threads"})
        ->Args({256, 3, 0})
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  return true;
}();

}  // namespace
}  // namespace anode
