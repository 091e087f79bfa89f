// Data-parallel training over MPI (experiments/train.h, //dist): what a
// training step costs with the work split over ranks, and how much of it is
// the gradients' allreduce. Run it alone (one process: set the threads with
// ANODE_NUM_THREADS) and under mpirun (one thread per rank by default):
//
//   ANODE_NUM_THREADS=2 bazel-bin/benchmarks/dist_benchmark          # 1 rank x 2 threads
//   mpirun --oversubscribe -np 2 bazel-bin/benchmarks/dist_benchmark # 2 ranks x 1 thread
//
// Every benchmark has a fixed iteration count, so that every rank runs the
// same number of collective steps; only rank 0 reports. Times are wall time.
//
// BM_Allreduce/<floats>: one dist::World::sum of a float buffer (the fused
//   gradient buffer's collective), on this machine's shared memory.
// BM_Step_MnistAnode: one training step (gradient, allreduce, Adam) of the
//   MNIST ANODE p = 10 (configs.h) on a batch of 100, RK4 x 10 steps and
//   backprop (fixed steps: every configuration does the same work).
//   Counters: allreduce_share (of the step's wall time), grad_floats.
// BM_Epoch_MnistAnode: an epoch of that model: 10 such steps (1000 images).
// BM_Step_ConvAnode: one step of Dupont et al.'s conv ANODE (64 filters,
//   p = 5 channels, 85,462 parameters; configs.h) on a batch of 64
//   28 x 28 images (a quarter of their 256: the step's compute is linear in
//   the batch), with RK4 x 6 steps (about the 22 forward evaluations dopri5
//   takes there) and backprop.

#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "autodiff/optim.h"
#include "benchmarks/bench_util.h"
#include "datasets/random.h"
#include "dist/world.h"
#include "experiments/configs.h"
#include "experiments/train.h"

namespace anode {
namespace {

using experiments::Objective;
using experiments::Trainer;

const dist::World& world() { return dist::World::get(); }

void BM_Allreduce(benchmark::State& state) {
  std::vector<float> buf(static_cast<std::size_t>(state.range(0)), 1.0f);
  for (auto _ : state) {
    world().sum(buf);
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetBytesProcessed(state.iterations() * state.range(0) * static_cast<std::int64_t>(sizeof(float)));
  state.counters["ranks"] = world().size();
}
BENCHMARK(BM_Allreduce)->RangeMultiplier(8)->Range(1 << 10, 1 << 20)->Iterations(200)->UseRealTime();

// Random images in [0, 1) and labels 0..9.
struct Images {
  Tensor<float> x;
  std::vector<int> labels;
  Images(Index n, Index pixels) : x(Shape{n, pixels}), labels(static_cast<std::size_t>(n)) {
    datasets::Rng rng(11);
    for (float& v : x) v = static_cast<float>(rng.uniform());
    for (int& l : labels) l = static_cast<int>(rng.below(10));
  }
};

// Steps of `model` on batches of `batch` rows of `data`, data parallel over
// the world; `steps` per benchmark iteration.
template <class Model>
void run_steps(benchmark::State& state, Model& model, const Images& data, Index batch, int steps) {
  Adam<float> adam(model.parameters(), {.lr = 1e-3});
  Trainer trainer(model.parameters(), [&] { return model.stats(); }, "bench", &world());
  const Index n = data.x.shape()[0];
  auto step = [&](int k) {
    const Index begin = (k * batch) % n;
    Tensor<float> x = Tensor<float>::from_view({data.x.data() + begin * data.x.shape()[1], Shape{batch, data.x.shape()[1]}});
    std::span<const int> labels(data.labels.data() + begin, static_cast<std::size_t>(batch));
    trainer.step(adam, batch, experiments::batch_loss(model, Objective::kCrossEntropy, x, nullptr, labels));
  };
  step(0);  // warm-up: arena and pages
  const double before = trainer.allreduce_seconds();
  experiments::Stopwatch clock;
  int k = 1;
  for (auto _ : state) {
    for (int s = 0; s < steps; ++s) step(k++);
  }
  const double total = clock.seconds();
  state.counters["allreduce_share"] = (trainer.allreduce_seconds() - before) / total;
  state.counters["grad_floats"] = static_cast<double>(trainer.fused_floats());
  state.counters["ranks"] = world().size();
}

void BM_Step_MnistAnode(benchmark::State& state) {
  models::ModelConfig c = experiments::mnist_mlp_config(models::Augmentation::kZeroPad, 10);
  c.block.solver = ode::SolverOptions{};
  c.block.solver.method = ode::Method::kRk4;
  c.block.solver.steps = 10;
  models::AnodeModel<float> model(c);
  const Images data(1000, 784);
  run_steps(state, model, data, 100, 1);
}
BENCHMARK(BM_Step_MnistAnode)->Iterations(100)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Epoch_MnistAnode(benchmark::State& state) {
  models::ModelConfig c = experiments::mnist_mlp_config(models::Augmentation::kZeroPad, 10);
  c.block.solver = ode::SolverOptions{};
  c.block.solver.method = ode::Method::kRk4;
  c.block.solver.steps = 10;
  models::AnodeModel<float> model(c);
  const Images data(1000, 784);
  run_steps(state, model, data, 100, 10);
}
BENCHMARK(BM_Epoch_MnistAnode)->Iterations(10)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Step_ConvAnode(benchmark::State& state) {
  models::ConvModelConfig c = experiments::conv_mnist_config(64, 5);
  c.solver = ode::SolverOptions{};
  c.solver.method = ode::Method::kRk4;
  c.solver.steps = 6;
  models::ConvOdeClassifier<float> model(c);
  const Images data(64, 784);
  run_steps(state, model, data, 64, 1);
}
BENCHMARK(BM_Step_ConvAnode)->Iterations(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// Reports nothing: the ranks other than 0 run the same benchmarks silently.
class Silent : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace
}  // namespace anode

int main(int argc, char** argv) {
  const anode::dist::World& world = anode::dist::World::get();
  anode::bench::use_threads();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (world.root()) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    anode::Silent silent;
    benchmark::RunSpecifiedBenchmarks(&silent);
  }
  return 0;
}
