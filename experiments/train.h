#ifndef ANODE_EXPERIMENTS_TRAIN_H_
#define ANODE_EXPERIMENTS_TRAIN_H_

// The experiments' one training loop: a gradient of a batch's mean loss, the
// optimizer step, epochs over a Batcher, evaluation, progress lines and the
// solver's counters, and the trained model's parameter file. Every
// experiment trains through it, so that what happens to a batch (and, under
// mpirun, how it is split across processes) is written once.
//
// Data parallelism (a Trainer given a dist::World of K > 1 ranks, as
// `mpirun -np K`): rank 0's initial parameters are broadcast; each rank
// computes the rows [r B / K, (r + 1) B / K) of every batch of B rows; the
// gradients, weighted by each shard's share of the rows, the loss and the
// solver's counters are summed with one MPI_Allreduce over one fused float
// buffer, which gives every rank the gradient of the whole batch's mean; every
// rank then takes the same optimizer step. Fixed-step solvers give the
// single-process result to rounding; adaptive solvers choose their steps per
// shard (as PyTorch DDP with torchdiffeq does).

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "autodiff/optim.h"
#include "autodiff/parameter.h"
#include "autodiff/tape.h"
#include "datasets/batcher.h"
#include "dist/world.h"
#include "experiments/common.h"
#include "models/conv_model.h"
#include "models/model.h"
#include "ode/solver.h"

namespace anode::experiments {

/// The rows [begin, end) of a batch of `total` rows that this process
/// computes (all of them in a single process).
struct Shard {
  Index begin = 0, end = 0, total = 0;
  Index rows() const { return end - begin; }
};

/// The loss on this process's shard of a batch, recorded on `tape`: the mean
/// over the shard's rows (the loop weights shards by their rows, so that the
/// gradient is that of the whole batch's mean).
using ShardLoss = std::function<Var<float>(Tape<float>&, const Shard&)>;

/// What a gradient (or a step) gives back.
struct StepResult {
  double loss = 0;        // the mean over the whole batch
  ode::SolveStats stats;  // the solver's counters of this gradient
};

/// Takes gradients and optimizer steps for one model.
class Trainer {
 public:
  /// `params`: every parameter of the model (all get gradients; the
  /// optimizer may update a subset). `stats` reads the solver's counters of
  /// the last forward and backward pass (may be empty). `who` names the run
  /// in errors.
  /// With a `world` of several ranks the training is data parallel (see
  /// above; rank 0's parameters are broadcast here); null or one rank: this
  /// process alone. With `check_sync`, after every step the ranks compare a
  /// checksum of the parameters and stop with an error if they differ.
  Trainer(std::vector<Parameter<float>*> params, std::function<ode::SolveStats()> stats, std::string who,
          const dist::World* world = nullptr, bool check_sync = false);

  /// Zeroes the gradients, records `loss` on this process's shard of a
  /// batch of `rows` rows and backpropagates. A non-finite loss is returned
  /// as it is (L-BFGS's line search backs off from it).
  StepResult gradient(Index rows, const ShardLoss& loss);
  /// gradient(), then one step of `opt`; throws std::runtime_error naming the
  /// run, before the step, if the loss is not finite.
  StepResult step(Optimizer<float>& opt, Index rows, const ShardLoss& loss);

  const std::vector<Parameter<float>*>& parameters() const { return params_; }
  const std::string& who() const { return who_; }
  /// The rows of a batch of `rows` rows that this rank computes.
  Shard shard(Index rows) const;
  /// FNV-1a of every parameter's bytes: equal on every rank after every step.
  std::uint64_t checksum() const;
  /// Steps taken.
  Index steps() const { return steps_; }
  /// Wall seconds spent in the gradients' allreduce so far (0 alone), and
  /// the size of its fused buffer in floats.
  double allreduce_seconds() const { return allreduce_seconds_; }
  std::size_t fused_floats() const { return fused_.size(); }

 private:
  std::vector<Parameter<float>*> params_;
  std::function<ode::SolveStats()> stats_;
  std::string who_;
  const dist::World* world_;
  bool check_sync_;
  Tape<float> tape_;
  std::vector<float> fused_;  // gradients, loss, counters: one allreduce
  Index steps_ = 0;
  double allreduce_seconds_ = 0;
};

/// Global step control for data-parallel training: sets `solver` to sum
/// every error norm's per-piece sums and counts over the ranks of
/// dist::World::get() (SolverOptions::reduce_norm), so that a K-rank run of
/// an adaptive solver takes the single-process steps. Every rank must then
/// solve a non-empty shard of every batch (at least K rows per batch); with
/// one process it changes nothing.
void use_global_steps(ode::SolverOptions& solver);

/// What the model is trained to do.
enum class Objective {
  kCrossEntropy,  // logits against integer labels
  kMse,           // regression values against targets
};

/// After each optimizer step of fit().
struct StepInfo {
  int epoch = 0, epochs = 0;   // epoch from 0
  Index step = 0, steps = 0;   // steps taken (from 1) of all
  bool last_of_epoch = false;
  double loss = 0;             // this step's batch mean
  ode::SolveStats stats;       // this step's solver counters
};

struct FitOptions {
  int epochs = 1;
  /// Data parallel over dist::World::get() (under mpirun), and whether to
  /// compare the parameters' checksum across ranks after every step.
  bool data_parallel = false;
  bool check_sync = false;
  /// Stop after this many steps, mid-epoch if need be (0: no limit).
  Index max_steps = 0;
  /// A progress line every this many steps; 0: one at the end of each epoch.
  int progress_every = 0;
  /// Called after every step (evaluation, records); its text is appended to
  /// the progress line of that step, if one is printed.
  std::function<std::string(const StepInfo&)> after_step;
};

struct FitResult {
  Index steps = 0;
  ode::SolveStats total;    // summed over the steps
  double seconds = 0;
};

/// Trains `model` (x [batch, features] -> [batch, outputs]) for
/// options.epochs epochs over `batches` with `opt`. The model's call is
/// model(x, training) and its counters model.stats() (AnodeModel,
/// ConvOdeClassifier).
template <class Model>
FitResult fit(Model& model, Optimizer<float>& opt, datasets::Batcher<float>& batches, Objective objective,
              const FitOptions& options, const Progress& progress, const std::string& who);

/// The loss of `model` on rows of (x, targets) or (x, labels), for
/// Trainer::gradient: the rows of the shard, cross-entropy or MSE.
template <class Model>
ShardLoss batch_loss(Model& model, Objective objective, const Tensor<float>& x, const Tensor<float>* targets,
                     std::span<const int> labels);

/// Accuracy of a classifier on (x, labels) and the mean of its batches' mean
/// cross-entropy, in batches of `batch` rows, nothing recorded. With a
/// `world` of several ranks each rank evaluates its shard of every batch and
/// the counts and losses are summed (one allreduce).
template <class Model>
std::pair<double, double> evaluate_classifier(Model& model, const Tensor<float>& x, std::span<const int> labels,
                                              Index batch, const dist::World* world = nullptr);

/// Writes a trained model's parameter file (versioned, checksummed, atomic;
/// models/serialize.h) with its configuration as the description.
void save_trained(const std::filesystem::path& path, const models::AnodeModel<float>& model);
void save_trained(const std::filesystem::path& path, const models::ConvOdeClassifier<float>& model);

/// Reads a parameter file written by save_trained for a float model of
/// `trained` configuration (checksum and configuration checked) into
/// `model`, a double model of the same architecture (its solver may differ):
/// every value widened exactly.
void load_trained(const std::filesystem::path& path, const models::ModelConfig& trained,
                  models::AnodeModel<double>& model);

}  // namespace anode::experiments

#endif  // ANODE_EXPERIMENTS_TRAIN_H_
