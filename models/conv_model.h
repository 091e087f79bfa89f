#ifndef ANODE_MODELS_CONV_MODEL_H_
#define ANODE_MODELS_CONV_MODEL_H_

// Convolutional ODE models for images (Dupont et al. 2019, Section 5):
//   image -> [zero channels: ANODE] -> ODE block with conv dynamics
//   (1x1, 3x3, 1x1 convolutions, ReLU, a time channel at every layer)
//   -> flatten -> Linear -> logits.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "models/layers.h"
#include "models/ode_block.h"
#include "ode/dynamics.h"

namespace anode::models {

/// A 2-D convolution layer, stride 1, "same" padding: [N, C, H, W] -> [N, O, H, W].
template <class T>
class Conv2d : public Module<T> {
 public:
  Conv2d(Index in_channels, Index out_channels, Index kernel, datasets::Rng& rng,
         Init init = Init::kPytorch, std::string name = "conv");
  Var<T> operator()(Var<T> x);

 private:
  Parameter<T>* w_;
  Parameter<T>* b_;
};

/// f(t, h) for image states: conv1x1(C+1 -> F), ReLU, conv3x3(F+1 -> F), ReLU,
/// conv1x1(F+1 -> C); with time_dependent, a constant channel t is appended
/// before each convolution (Dupont et al.'s ConvODEFunc).
template <class T>
class ConvDynamics : public ode::Dynamics<T>, public Module<T> {
 public:
  ConvDynamics(Index channels, Index filters, bool time_dependent, datasets::Rng& rng);
  Var<T> operator()(T t, Var<T> h) override;
  const std::vector<Parameter<T>*>& parameters() const override { return Module<T>::parameters(); }

 private:
  Var<T> with_time(Var<T> x, T t);
  bool time_dependent_;
  std::optional<Conv2d<T>> c1_, c2_, c3_;
};

struct ConvModelConfig {
  Index channels = 1, height = 28, width = 28;
  /// Zero channels appended to the image (ANODE's p; 0 = NODE).
  Index augment_channels = 0;
  /// Filters of the dynamics' convolutions.
  Index filters = 64;
  bool time_dependent = true;
  Index classes = 10;
  ode::SolverOptions solver;
  double t_end = 1.0;
  std::uint64_t seed = 0;
  std::string label() const;
};

/// Classifier: x [batch, C * H * W] (flattened images) -> logits [batch, classes].
template <class T>
class ConvOdeClassifier : public Module<T> {
 public:
  explicit ConvOdeClassifier(const ConvModelConfig& config);
  Var<T> operator()(Var<T> x, bool training);
  const ConvModelConfig& config() const { return config_; }
  const ode::SolveStats& stats() const { return block_->stats(); }
  /// The RNODE term of the last training call (an invalid Var when off).
  Var<T> regularization() const { return block_->regularization(); }
  OdeBlock<T>& block() { return *block_; }

 private:
  ConvModelConfig config_;
  datasets::Rng rng_;
  std::unique_ptr<ConvDynamics<T>> dynamics_;
  std::unique_ptr<OdeBlock<T>> block_;
  std::optional<Linear<T>> head_;
};

}  // namespace anode::models

#endif  // ANODE_MODELS_CONV_MODEL_H_
