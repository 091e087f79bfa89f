#ifndef ANODE_ODE_DYNAMICS_H_
#define ANODE_ODE_DYNAMICS_H_

#include <functional>
#include <utility>
#include <vector>

#include "autodiff/ops.h"
#include "autodiff/tape.h"

namespace anode::ode {

/// The right-hand side f(t, h) of dh/dt = f(t, h), written with autodiff ops.
/// The state h is a batch tensor ([batch, d], or [batch, C, H, W] for
/// convolutional dynamics). Implementations record on h's tape and take their
/// parameters with h.tape().param(p); parameters() lists them (optimizers
/// and models use the list). Every gradient method gives the same gradient
/// whatever the list says: the adjoint and checkpoint methods find the
/// parameters f records, and the differentiable Vars from outside the solve
/// that f reads (captured values), while the forward solve runs, and
/// differentiate with respect to all of them. f must read the same
/// parameters and captured values in the backward pass as in the forward
/// solve (a SolverError names the one it did not).
/// A Dynamics object must outlive any tape that holds a solve using it (the
/// adjoint and checkpoint methods call it again in the backward pass).
template <class T>
class Dynamics {
 public:
  virtual ~Dynamics() = default;
  /// dh/dt at time t; the result has h's shape.
  virtual Var<T> operator()(T t, Var<T> h) = 0;
  /// Every parameter operator() uses (stable: the same list on every call).
  virtual const std::vector<Parameter<T>*>& parameters() const = 0;
};

/// Dynamics from a callable, for tests and small problems.
template <class T>
class FunctionDynamics : public Dynamics<T> {
 public:
  using Fn = std::function<Var<T>(T, Var<T>)>;
  explicit FunctionDynamics(Fn f, std::vector<Parameter<T>*> params = {})
      : f_(std::move(f)), params_(std::move(params)) {}
  Var<T> operator()(T t, Var<T> h) override { return f_(t, h); }
  const std::vector<Parameter<T>*>& parameters() const override { return params_; }

 private:
  Fn f_;
  std::vector<Parameter<T>*> params_;
};

/// An n-th order ODE d^n x/dt^n = g(t, x, x', ..., x^(n-1)) as a first-order
/// system on the state h = [x, x', ..., x^(n-1)] (concatenated along the last
/// axis, each block `block` wide; report Section 3.3):
///   d/dt h_i = h_{i+1} (i < n),  d/dt h_n = g(t, ...).
/// With `position_only`, g sees only x (the report's second-order variant,
/// d^2x/dt^2 = g(t, x)); otherwise g sees the whole state. g's output is one
/// block wide. Blocks of rank-2 states [batch, n * block] only.
template <class T>
class HigherOrderDynamics : public Dynamics<T> {
 public:
  HigherOrderDynamics(Dynamics<T>& g, int order, Index block, bool position_only)
      : g_(g), order_(order), block_(block), position_only_(position_only) {
    if (order < 1) throw ValueError("HigherOrderDynamics: order must be >= 1, got " + std::to_string(order));
    if (block < 1) throw ValueError("HigherOrderDynamics: block must be >= 1, got " + std::to_string(block));
  }

  Var<T> operator()(T t, Var<T> h) override {
    if (h.shape().rank() != 2 || h.shape()[1] != order_ * block_) {
      throw ShapeError("HigherOrderDynamics: state " + h.shape().str() + " is not [batch, " +
                       std::to_string(order_ * block_) + "] (order " + std::to_string(order_) +
                       " x block " + std::to_string(block_) + ")");
    }
    Var<T> accel = g_(t, position_only_ ? slice_last(h, 0, block_) : h);
    if (accel.shape() != h.shape().with_last(block_)) {
      throw ShapeError("HigherOrderDynamics: g returned " + accel.shape().str() + ", expected " +
                       h.shape().with_last(block_).str());
    }
    if (order_ == 1) return accel;
    Var<T> parts[2] = {slice_last(h, block_, (order_ - 1) * block_), accel};
    return concat_last<T>(parts);
  }

  const std::vector<Parameter<T>*>& parameters() const override { return g_.parameters(); }

 private:
  Dynamics<T>& g_;
  int order_;
  Index block_;
  bool position_only_;
};

}  // namespace anode::ode

#endif  // ANODE_ODE_DYNAMICS_H_
