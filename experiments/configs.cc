#include "experiments/configs.h"

namespace anode::experiments {

models::ModelConfig mnist_mlp_config(models::Augmentation augmentation, Index p) {
  models::ModelConfig c;
  c.input_dim = 784;
  c.input_layer = true;
  c.feature_dim = 20;
  c.input_activation = models::Activation::kTanh;
  c.augmentation = augmentation;
  c.augment_dim = p;
  c.hidden = {10, 10};
  c.hidden_activation = models::Activation::kTanh;
  c.final_activation = models::Activation::kTanh;
  c.readout_dim = 20;
  c.output_dim = 10;
  c.head = models::Head::kClassification;
  c.block.solver.method = ode::Method::kTsit5;
  c.block.solver.rtol = 1e-3;
  c.block.solver.atol = 1e-3;
  c.block.solver.max_steps = 10000;
  c.block.solver.gradient = ode::Gradient::kAdjoint;
  return c;
}

models::ModelConfig spheres_config(Index dim, Index p, Index hidden, std::uint64_t seed) {
  models::ModelConfig c;
  c.input_dim = dim;
  c.augmentation = p > 0 ? models::Augmentation::kZeroPad : models::Augmentation::kNone;
  c.augment_dim = p;
  c.hidden = {hidden, hidden};
  c.hidden_activation = models::Activation::kRelu;
  c.output_dim = 1;
  c.head = models::Head::kRegression;
  c.block.solver.method = ode::Method::kDopri5;
  c.block.solver.rtol = 1e-3;
  c.block.solver.atol = 1e-3;
  c.block.solver.max_steps = 5000;
  c.seed = seed;
  return c;
}

models::ConvModelConfig conv_mnist_config(Index filters, Index augment_channels) {
  models::ConvModelConfig c;
  c.filters = filters;
  c.augment_channels = augment_channels;
  c.solver.method = ode::Method::kDopri5;
  c.solver.rtol = c.solver.atol = 1e-3;
  c.solver.gradient = ode::Gradient::kAdjoint;
  c.solver.max_steps = 10000;
  return c;
}

}  // namespace anode::experiments
