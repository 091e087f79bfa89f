#ifndef ANODE_MODELS_AUGMENTED_DYNAMICS_H_
#define ANODE_MODELS_AUGMENTED_DYNAMICS_H_

// Dynamics whose state carries integrals beside h, computed with a
// vector-Jacobian product of f inside the right-hand side (recorded with
// Tape::gradients, so training differentiates through it):
//  - CnfDynamics: a continuous normalizing flow (FFJORD, Grathwohl et al.
//    2019) on [z, l] with dl/dt = tr(df/dz), exact or by Hutchinson's
//    estimator e^T (df/dz) e;
//  - RegularizedDynamics: RNODE's regularizers (Finlay et al. 2020) on
//    [h, k, j] with dk/dt = |f|^2 and dj/dt = |e^T df/dh|^2 (a Hutchinson
//    estimate of the Jacobian's squared Frobenius norm), per sample.
// Both work with every gradient method: their extra states are just more
// state (the adjoint evaluates f, and the VJP inside it, again on its nested
// scope). When the caller records nothing (a flat forward solve), the VJP is
// still recorded inside (as torchdiffeq's FFJORD does with enable_grad) and
// the result is returned detached.

#include <cstdint>
#include <random>
#include <vector>

#include "datasets/random.h"
#include "ode/dynamics.h"

namespace anode::models {

/// Noise for Hutchinson's estimator E[e^T A e] = tr(A): Gaussian N(0, 1) or
/// Rademacher (+-1 with equal probability; lower variance).
enum class Noise { kGaussian, kRademacher };
Noise parse_noise(const std::string& name);  // "gaussian", "rademacher"
const char* noise_name(Noise n);

/// Fills e with the noise (one draw per element).
template <class T>
void sample_noise(Noise kind, Tensor<T>& e, datasets::Rng& rng);

/// The flow's state [z, l]: z [batch, d], l [batch, 1]; dz/dt = f(t, z),
/// dl/dt = tr(df/dz) (so log p(x) = log p_base(z(T)) + l(T) for the solve
/// from x at 0 to T with l(0) = 0).
template <class T>
class CnfDynamics : public ode::Dynamics<T> {
 public:
  /// f maps [batch, d] to [batch, d]; it must outlive this object.
  CnfDynamics(ode::Dynamics<T>& f, Index d) : f_(f), d_(d) {}

  /// Exact trace: d vector-Jacobian products per evaluation (d = 2 here).
  void use_exact_trace() { exact_ = true; }
  /// Hutchinson's estimator with the noise e [batch, d], held fixed for a
  /// whole solve and its backward pass (the caller keeps it alive).
  void use_hutchinson(const Tensor<T>* e) {
    exact_ = false;
    noise_ = e;
  }

  Var<T> operator()(T t, Var<T> h) override;
  const std::vector<Parameter<T>*>& parameters() const override { return f_.parameters(); }

 private:
  ode::Dynamics<T>& f_;
  Index d_;
  bool exact_ = true;
  const Tensor<T>* noise_ = nullptr;
};

/// RNODE: the state [h, k, j] as [batch, n + 2] with h flattened to n
/// columns (`shape` gives h's own per-batch shape: {d} or {C, H, W});
/// dh/dt = f(t, h), dk/dt = |f(t, h)|^2 and dj/dt = |e^T df/dh|^2 per sample.
/// k(T) and j(T) are the kinetic-energy and Jacobian-Frobenius integrals
/// that the loss adds with weights (--kinetic, --jacobian).
template <class T>
class RegularizedDynamics : public ode::Dynamics<T> {
 public:
  /// `shape`: h's shape without the batch axis. `jacobian`: compute the
  /// Jacobian term (else dj/dt = 0 and no VJP is taken).
  RegularizedDynamics(ode::Dynamics<T>& f, std::vector<Index> shape, bool jacobian)
      : f_(f), shape_(std::move(shape)), jacobian_(jacobian) {}
  /// The noise e, shaped like h ([batch, shape...]), fixed over a solve.
  void set_noise(const Tensor<T>* e) { noise_ = e; }

  Var<T> operator()(T t, Var<T> h) override;
  const std::vector<Parameter<T>*>& parameters() const override { return f_.parameters(); }

  /// [batch, shape...] -> [batch, n + 2] with k = j = 0, and back.
  static Var<T> augment(Var<T> h);
  Var<T> state(Var<T> hkj) const;
  /// Columns n and n + 1: k(T), j(T) per sample ([batch, 1] each).
  static Var<T> kinetic(Var<T> hkj);
  static Var<T> jacobian(Var<T> hkj);

 private:
  ode::Dynamics<T>& f_;
  std::vector<Index> shape_;
  bool jacobian_;
  const Tensor<T>* noise_ = nullptr;
};

}  // namespace anode::models

#endif  // ANODE_MODELS_AUGMENTED_DYNAMICS_H_
