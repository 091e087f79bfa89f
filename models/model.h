#ifndef ANODE_MODELS_MODEL_H_
#define ANODE_MODELS_MODEL_H_

// The ANODE family as configurations of one model:
//   input -> [input layer] -> [zero padding] -> ODE block -> readout -> head
// NODE, ANODE (zero padding), IL-ANODE (learned input layer to d + p),
// time-regularized ANODE (random end time in training) and second- or
// higher-order NODEs (state [x, x', ...], dynamics from the position).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/dynamics.h"
#include "models/layers.h"
#include "models/ode_block.h"

namespace anode::models {

enum class Augmentation { kNone, kZeroPad, kInputLayer };
enum class Head { kRegression, kClassification };

const char* augmentation_name(Augmentation a);  // "none", "zero", "input"
Augmentation parse_augmentation(std::string_view name);

struct ModelConfig {
  /// Flattened input features (2 for the spheres, 784 for MNIST).
  Index input_dim = 2;
  /// Optional learned input layer: Dense(input_dim -> feature_dim per block,
  /// input_activation). Without it the ODE starts from the input itself.
  bool input_layer = false;
  Index feature_dim = 0;  // d with an input layer (0: input_dim)
  Activation input_activation = Activation::kTanh;

  /// kZeroPad appends `augment_dim` zeros per block (ANODE); kInputLayer makes
  /// the input layer produce d + augment_dim values per block (IL-ANODE).
  Augmentation augmentation = Augmentation::kNone;
  Index augment_dim = 0;

  /// The ODE block: solver options, the interval [0, t_end], time
  /// regularization (time_noise, noise_at_eval), the order n and, for n >= 2,
  /// whether the dynamics sees only the position block. Its zero padding
  /// (`block.augment`) is not set here: the model derives it from
  /// `augmentation` and `augment_dim` (validate() refuses a non-zero value).
  OdeBlockConfig block;
  /// For order n >= 2: whether the input layer also produces the initial
  /// velocities (else they start at zero).
  bool learned_velocity = true;

  /// Dynamics: an MLP block -> (hidden...) -> block; hidden layers use
  /// hidden_activation, the last layer final_activation.
  std::vector<Index> hidden = {64, 64};
  Activation hidden_activation = Activation::kRelu;
  Activation final_activation = Activation::kIdentity;
  bool time_dependent = false;

  /// Readout: the head reads the first `readout_dim` features of block
  /// `readout_block` of h(T) (-1: the whole block; for order 1, block 0 is
  /// the whole state).
  Index readout_dim = -1;
  int readout_block = 0;
  /// Head: Linear(readout -> output_dim).
  Index output_dim = 1;
  Head head = Head::kRegression;

  Init init = Init::kGlorotUniform;
  std::uint64_t seed = 0;

  /// Throws ValueError naming the first inconsistent field.
  void validate() const;
  /// Width of one block of the state (d + p).
  Index block_dim() const;
  /// Width the head reads.
  Index readout_width() const;
  /// A short label ("anode p=10", "sonode p=0", ...).
  std::string label() const;
  /// The ODE block's configuration with its zero padding filled in.
  OdeBlockConfig block_config() const;
};

template <class T>
class AnodeModel : public Module<T> {
 public:
  explicit AnodeModel(const ModelConfig& config);

  /// x [batch, input_dim] -> [batch, output_dim] (regression values or logits).
  Var<T> operator()(Var<T> x, bool training);
  /// The final ODE state h(T) of the last call (all blocks): the learned features.
  Var<T> last_state() const { return last_state_; }

  const ModelConfig& config() const { return config_; }
  OdeBlock<T>& block() { return *block_; }
  const ode::SolveStats& stats() const { return block_->stats(); }
  /// The RNODE term of the last training call (an invalid Var when off).
  Var<T> regularization() const { return block_->regularization(); }

 private:
  ModelConfig config_;
  datasets::Rng rng_;
  std::optional<Linear<T>> input_;
  std::unique_ptr<MlpDynamics<T>> dynamics_;
  std::unique_ptr<OdeBlock<T>> block_;
  std::optional<Linear<T>> head_;
  Var<T> last_state_;
};

/// Loss of a regression head's output: MSE against targets [batch, out].
/// (Classification heads use softmax_cross_entropy(logits, labels).)
template <class T>
Var<T> regression_loss(Var<T> out, Var<T> targets) {
  return mse(out, targets);
}

/// Number of rows whose largest logit is at the label.
template <class T>
Index count_correct(TensorView<const T> logits, std::span<const int> labels);

}  // namespace anode::models

#endif  // ANODE_MODELS_MODEL_H_
