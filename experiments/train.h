#ifndef ANODE_EXPERIMENTS_TRAIN_H_
#define ANODE_EXPERIMENTS_TRAIN_H_

// The experiments' one training loop: a gradient of a batch's mean loss, the
// optimizer step, epochs over a Batcher, evaluation, progress lines and the
// solver's counters, and the trained model's parameter file. Every
// experiment trains through it, so that what happens to a batch (and, under
// mpirun, how it is split across processes) is written once.

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
  Trainer(std::vector<Parameter<float>*> params, std::function<ode::SolveStats()> stats, std::string who);

  /// Zeroes the gradients, records `loss` on this process's shard of a
  /// batch of `rows` rows and backpropagates. A non-finite loss is returned
  /// as it is (L-BFGS's line search backs off from it).
  StepResult gradient(Index rows, const ShardLoss& loss);
  /// gradient(), then one step of `opt`; throws std::runtime_error naming the
  /// run, before the step, if the loss is not finite.
  StepResult step(Optimizer<float>& opt, Index rows, const ShardLoss& loss);

  const std::vector<Parameter<float>*>& parameters() const { return params_; }
  const std::string& who() const { return who_; }

 private:
  std::vector<Parameter<float>*> params_;
  std::function<ode::SolveStats()> stats_;
  std::string who_;
  Tape<float> tape_;
};

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
/// cross-entropy, in batches of `batch` rows, nothing recorded.
template <class Model>
std::pair<double, double> evaluate_classifier(Model& model, const Tensor<float>& x, std::span<const int> labels,
                                              Index batch);

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
