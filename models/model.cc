#include "models/model.h"

#include <sstream>

namespace anode::models {

const char* augmentation_name(Augmentation a) {
  switch (a) {
    case Augmentation::kNone: return "none";
    case Augmentation::kZeroPad: return "zero";
    case Augmentation::kInputLayer: return "input";
  }
  return "?";
}

Augmentation parse_augmentation(std::string_view name) {
  for (Augmentation a : {Augmentation::kNone, Augmentation::kZeroPad, Augmentation::kInputLayer}) {
    if (name == augmentation_name(a)) return a;
  }
  throw ValueError("unknown augmentation '" + std::string(name) + "' (known: none, zero, input)");
}

namespace {
Index input_block_dim(const ModelConfig& c) {
  const Index d = c.input_layer ? c.feature_dim : c.input_dim;
  return d + (c.augmentation == Augmentation::kInputLayer ? c.augment_dim : 0);
}
}  // namespace

Index ModelConfig::block_dim() const {
  return (input_layer ? feature_dim : input_dim) +
         (augmentation == Augmentation::kNone ? 0 : augment_dim);
}

Index ModelConfig::readout_width() const {
  return readout_dim > 0 ? readout_dim : block_dim();
}

void ModelConfig::validate() const {
  auto fail = [](const std::string& m) { throw ValueError("ModelConfig: " + m); };
  if (input_dim < 1) fail("input_dim must be >= 1, got " + std::to_string(input_dim));
  if (input_layer && feature_dim < 1) fail("feature_dim must be >= 1 with an input layer");
  if (augment_dim < 0) fail("augment_dim (p) must be >= 0, got " + std::to_string(augment_dim));
  if (augmentation == Augmentation::kNone && augment_dim != 0) {
    fail("augment_dim = " + std::to_string(augment_dim) + " needs augmentation 'zero' or 'input'");
  }
  if (augmentation == Augmentation::kInputLayer && !input_layer) {
    fail("input-layer augmentation needs an input layer (input_layer = true)");
  }
  if (block.order < 1 || block.order > 16) fail("block.order must be in [1, 16], got " + std::to_string(block.order));
  if (block.order > 1 && learned_velocity && !input_layer) {
    fail("learned initial velocities need an input layer (or set learned_velocity = false)");
  }
  if (readout_block < 0 || readout_block >= block.order) {
    fail("readout_block must be in [0, block.order), got " + std::to_string(readout_block));
  }
  if (readout_dim == 0 || readout_dim > block_dim()) {
    fail("readout_dim must be -1 or in [1, " + std::to_string(block_dim()) + "], got " +
         std::to_string(readout_dim));
  }
  if (output_dim < 1) fail("output_dim must be >= 1, got " + std::to_string(output_dim));
  for (Index h : hidden) {
    if (h < 1) fail("hidden widths must be >= 1");
  }
  if (block.augment != 0) {
    fail("block.augment = " + std::to_string(block.augment) +
         " is derived from augmentation and augment_dim: leave it 0");
  }
  if (!(block.t_end > 0)) fail("block.t_end must be > 0");
  if (!(block.time_noise >= 0 && block.time_noise < block.t_end)) fail("block.time_noise b must be in [0, block.t_end)");
}

OdeBlockConfig ModelConfig::block_config() const {
  OdeBlockConfig b = block;
  b.augment = augmentation == Augmentation::kZeroPad ? augment_dim : 0;
  return b;
}

std::string ModelConfig::label() const {
  std::ostringstream s;
  if (block.order > 1) {
    s << (block.order == 2 ? "sonode" : "node" + std::to_string(block.order));
  } else if (augmentation == Augmentation::kNone) {
    s << "node";
  } else if (augmentation == Augmentation::kInputLayer) {
    s << "il-anode";
  } else {
    s << "anode";
  }
  if (block.time_noise > 0) s << " b=" << block.time_noise;
  if (augment_dim > 0) s << " p=" << augment_dim;
  return s.str();
}

template <class T>
AnodeModel<T>::AnodeModel(const ModelConfig& config) : config_(config), rng_(config.seed) {
  config_.validate();
  const ModelConfig& c = config_;
  const int n = c.block.order;
  const Index in_block = input_block_dim(c);  // per block, before zero padding
  const Index block = c.block_dim();
  if (c.input_layer) {
    const Index blocks_out = (n > 1 && c.learned_velocity) ? n : 1;
    input_.emplace(c.input_dim, blocks_out * in_block, rng_, c.init, true, "input");
    this->adopt(*input_);
  }
  const Index f_in = (n > 1 && !c.block.position_only) ? n * block : block;
  dynamics_ = std::make_unique<MlpDynamics<T>>(f_in, block, c.hidden, c.hidden_activation,
                                               c.final_activation, c.time_dependent, rng_, c.init);
  this->adopt(*dynamics_);
  block_ = std::make_unique<OdeBlock<T>>(*dynamics_, c.block_config(), c.seed ^ 0x9e3779b97f4a7c15ULL);
  head_.emplace(c.readout_width(), c.output_dim, rng_, c.init, true, "head");
  this->adopt(*head_);
}

template <class T>
Var<T> AnodeModel<T>::operator()(Var<T> x, bool training) {
  const ModelConfig& c = config_;
  if (x.shape().rank() != 2 || x.shape()[1] != c.input_dim) {
    throw ShapeError("AnodeModel: input " + x.shape().str() + " is not [batch, " +
                     std::to_string(c.input_dim) + "]");
  }
  Tape<T>& tape = x.tape();
  const int n = c.block.order;
  Var<T> z = x;
  if (input_) z = activate((*input_)(x), c.input_activation);
  if (n > 1 && !c.learned_velocity) {
    // Zero initial velocities (and higher derivatives).
    Var<T> parts[2] = {z, full(tape, z.shape().with_last((n - 1) * z.shape()[1]), T(0))};
    z = concat_last<T>(parts);
  }
  last_state_ = (*block_)(z, training);
  const Index block = c.block_dim();
  Var<T> r = last_state_;
  if (n > 1 || c.readout_dim > 0) {
    r = slice_last(last_state_, c.readout_block * block, c.readout_width());
  }
  return (*head_)(r);
}

template <class T>
Index count_correct(TensorView<const T> logits, std::span<const int> labels) {
  const Index rows = logits.shape[0], cols = logits.shape[1];
  Index correct = 0;
  for (Index r = 0; r < rows; ++r) {
    const T* z = logits.data + r * cols;
    Index best = 0;
    for (Index j = 1; j < cols; ++j) {
      if (z[j] > z[best]) best = j;
    }
    correct += best == labels[r];
  }
  return correct;
}

template class AnodeModel<float>;
template class AnodeModel<double>;
template Index count_correct<float>(TensorView<const float>, std::span<const int>);
template Index count_correct<double>(TensorView<const double>, std::span<const int>);

}  // namespace anode::models
