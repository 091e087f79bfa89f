#ifndef ANODE_EXPERIMENTS_CONFIGS_H_
#define ANODE_EXPERIMENTS_CONFIGS_H_

// The model configurations the experiments share, each written once: the
// report's MNIST MLP (used by `mnist`, `gradient_methods` and the W1
// benchmark), the nested-spheres model (`nested_spheres`,
// `gradient_methods`) and Dupont et al.'s conv ANODE (`mnist --conv`, the
// scaling benchmark).

#include <cstdint>

#include "models/conv_model.h"
#include "models/model.h"

namespace anode::experiments {

/// The report's MNIST model: Dense 784 -> 20 tanh, MLP dynamics 20 (+p) ->
/// 10 -> 10 -> 20 (+p), tanh throughout, Tsit5 at rtol = atol = 1e-3 on
/// [0, 1], adjoint gradients (DiffEqFlux's NeuralODE default), a linear head
/// on the first 20 features to 10 classes. `augmentation` and `p` choose
/// NODE (none, 0), ANODE (zero, p) or IL-ANODE (input, p).
models::ModelConfig mnist_mlp_config(models::Augmentation augmentation = models::Augmentation::kNone,
                                     Index p = 0);

/// The nested-spheres model (report 4.2): the input in R^dim padded with p
/// zeros, MLP dynamics with two hidden layers of `hidden` (ReLU), dopri5 at
/// rtol = atol = 1e-3, a linear head to one value (regression on +-1).
models::ModelConfig spheres_config(Index dim, Index p, Index hidden, std::uint64_t seed);

/// Dupont et al.'s (2019) convolutional NODE / ANODE for MNIST: conv
/// dynamics 1x1-3x3-1x1 with `filters` filters and a time channel,
/// `augment_channels` zero channels (0: NODE), dopri5 at rtol = atol = 1e-3,
/// adjoint gradients.
models::ConvModelConfig conv_mnist_config(Index filters, Index augment_channels);

}  // namespace anode::experiments

#endif  // ANODE_EXPERIMENTS_CONFIGS_H_
