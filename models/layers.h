#ifndef ANODE_MODELS_LAYERS_H_
#define ANODE_MODELS_LAYERS_H_

// Building blocks: modules that own parameters, Linear and MLP layers.

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "autodiff/ops.h"
#include "autodiff/parameter.h"
#include "autodiff/tape.h"
#include "datasets/random.h"

namespace anode::models {

enum class Activation { kIdentity, kTanh, kRelu, kSoftplus, kSigmoid };

/// "identity", "tanh", "relu", "softplus", "sigmoid" (ValueError otherwise).
Activation parse_activation(std::string_view name);
const char* activation_name(Activation a);

/// Applies an activation on the tape.
template <class T>
Var<T> activate(Var<T> x, Activation a);

/// Weight initialization: Glorot-uniform weights and zero biases (Flux's
/// Dense default, which the report used), or PyTorch's nn.Linear default
/// (uniform in +-1/sqrt(fan_in) for weights and biases).
enum class Init { kGlorotUniform, kPytorch };

/// Owns parameters in stable storage (they never move) and lists them,
/// children's included, in creation order.
template <class T>
class Module {
 public:
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  /// Every parameter, in a fixed order (save/load and optimizers rely on it).
  const std::vector<Parameter<T>*>& parameters() const { return params_; }
  /// Total number of scalars in the parameters.
  Index num_scalars() const;

 protected:
  Parameter<T>& add_parameter(std::string name, Tensor<T> value);
  /// Lists a child's parameters after this module's own (call once per child,
  /// after the child is fully built).
  void adopt(const Module& child);

 private:
  std::deque<Parameter<T>> storage_;
  std::vector<Parameter<T>*> params_;
};

/// y = x W^T + b: x [n, in] -> [n, out].
template <class T>
class Linear : public Module<T> {
 public:
  Linear(Index in, Index out, datasets::Rng& rng, Init init = Init::kGlorotUniform,
         bool bias = true, std::string name = "linear");
  Var<T> operator()(Var<T> x);
  Index in() const { return in_; }
  Index out() const { return out_; }
  Parameter<T>& weight() { return *w_; }
  Parameter<T>* bias() { return b_; }

 private:
  Index in_, out_;
  Parameter<T>* w_;
  Parameter<T>* b_ = nullptr;
};

/// A chain of Linear layers with an activation after each: widths
/// {in, h1, ..., out}, activations one per layer (widths.size() - 1).
template <class T>
class Mlp : public Module<T> {
 public:
  Mlp(std::vector<Index> widths, std::vector<Activation> activations, datasets::Rng& rng,
      Init init = Init::kGlorotUniform, std::string name = "mlp");
  Var<T> operator()(Var<T> x);
  Index in() const { return widths_.front(); }
  Index out() const { return widths_.back(); }

 private:
  std::vector<Index> widths_;
  std::vector<Activation> activations_;
  std::deque<Linear<T>> layers_;
};

/// A [rows, cols] constant filled with `value`, in the tape's arena.
template <class T>
Var<T> full(Tape<T>& tape, const Shape& shape, T value);

}  // namespace anode::models

#endif  // ANODE_MODELS_LAYERS_H_
