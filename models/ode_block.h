#ifndef ANODE_MODELS_ODE_BLOCK_H_
#define ANODE_MODELS_ODE_BLOCK_H_

// The ODE block shared by every model of the ANODE family: augmentation,
// the solve (solver, tolerances, gradient method, interval, random end time)
// and higher-order reduction.

#include <cstdint>
#include <optional>

#include "datasets/random.h"
#include "models/augmented_dynamics.h"
#include "ode/dynamics.h"
#include "ode/solver.h"

namespace anode::models {

struct OdeBlockConfig {
  ode::SolverOptions solver;
  /// Integrate over [0, t_end].
  double t_end = 1.0;
  /// Time regularization (Ghosh et al. 2020): the end time is drawn uniformly
  /// from (t_end - b, t_end + b) on every training forward; exactly t_end at
  /// evaluation unless noise_at_eval (what the report's code did).
  double time_noise = 0.0;
  bool noise_at_eval = false;
  /// Zero dimensions appended to each block of the state (ANODE's p); for
  /// image states [N, C, H, W], zero channels.
  Index augment = 0;
  /// Order n of the ODE: the state is n blocks [x, x', ..., x^(n-1)].
  int order = 1;
  /// For order >= 2: the dynamics sees only the position block.
  bool position_only = true;
  /// RNODE (Finlay et al. 2020), training calls only: weights of the kinetic
  /// energy integral of |f|^2 and of the Jacobian's squared Frobenius norm
  /// (a Hutchinson estimate with `noise`, one draw per call), each averaged
  /// over the batch; both integrals are two more states of the solve (see
  /// RegularizedDynamics). 0: off (no extra state, no VJP).
  double kinetic = 0;
  double jacobian = 0;
  Noise noise = Noise::kGaussian;
};

/// Pads, solves and returns the final state h(T) (all blocks, padded).
template <class T>
class OdeBlock {
 public:
  /// `f` maps a (padded) block-state to the derivative of the last block
  /// (the whole state for order 1). It must outlive the block and any tape
  /// holding a solve (adjoint and checkpoint call it in the backward pass).
  OdeBlock(ode::Dynamics<T>& f, const OdeBlockConfig& config, std::uint64_t seed);

  /// x: [batch, order * d] (the blocks before padding) or [N, C, H, W] for
  /// order 1. Returns [batch, order * (d + p)] or [N, C + p, H, W].
  Var<T> operator()(Var<T> x, bool training);

  const OdeBlockConfig& config() const { return config_; }
  /// Counters of the last solve (backward fields fill in after backward()).
  const ode::SolveStats& stats() const { return stats_; }
  /// The end time used by the last call.
  double last_end_time() const { return last_t_end_; }
  /// kinetic * mean k(T) + jacobian * mean j(T) of the last training call
  /// with RNODE on (for the loss), else an invalid Var.
  Var<T> regularization() const { return regularization_; }
  /// The unweighted integrals of the last such call (batch means).
  double last_kinetic() const { return last_kinetic_; }
  double last_jacobian() const { return last_jacobian_; }
  /// Reseeds the end-time sampler.
  void seed(std::uint64_t s) { rng_ = datasets::Rng(s); }

 private:
  ode::Dynamics<T>& f_;
  OdeBlockConfig config_;
  std::optional<ode::HigherOrderDynamics<T>> higher_;
  std::optional<RegularizedDynamics<T>> regularized_;
  Tensor<T> noise_;
  Var<T> regularization_;
  double last_kinetic_ = 0, last_jacobian_ = 0;
  Index block_ = 0;
  datasets::Rng rng_;
  ode::SolveStats stats_;
  double last_t_end_ = 0;
};

}  // namespace anode::models

#endif  // ANODE_MODELS_ODE_BLOCK_H_
