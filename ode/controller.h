#ifndef ANODE_ODE_CONTROLLER_H_
#define ANODE_ODE_CONTROLLER_H_

// Step-size control of one integration (internal to //ode): the error norm,
// the automatic first step, the PI controller's accept/reject decision, the
// step limits, and the fixed-step schedule. Every norm it takes goes through
// StepController::norm(), the one place a reduction across processes (MPI
// global step control) is inserted.

#include <cstdint>
#include <span>

#include "autodiff/tape.h"
#include "ode/rk_step.h"
#include "ode/solver.h"
#include "ode/tableau.h"

namespace anode::ode::internal {

/// Tolerances and controller settings of one integration (already validated
/// by check_solve).
struct Control {
  double rtol, atol;
  int steps;         // > 0: fixed number of steps over the whole interval
  double step_size;  // > 0: fixed steps of at most this size
  double first_step, min_step;
  int max_steps;
  double safety, min_factor, max_factor, pi_beta;
  void (*reduce_norm)(void*, double*, double*, int);  // SolverOptions' global step control
  void* reduce_context;
  bool fixed() const { return steps > 0 || step_size > 0; }
};

/// The forward solve's settings.
Control forward_control(const SolverOptions& o);
/// A backward (adjoint-family) solve's: adjoint_rtol / adjoint_atol where
/// set, and a fixed step count over the forward span `span` turned into the
/// same step size (a backward pass integrates one segment at a time).
Control backward_control(const SolverOptions& o, double span);

template <class T>
class StepController {
 public:
  /// `system` says which pieces count in the norms; `step` is the
  /// arithmetic used by the first-step probe.
  StepController(const Control& control, RkStep<T>& step, const RkSystem<T>& system);

  /// Starts an integration from t0 to t1: resets the PI state, sets the
  /// minimum step and, for fixed steps, their count (checked against
  /// max_steps) and size. Throws SolverError naming the fault.
  void start(T t0, T t1);
  /// Fixed steps (a fixed-step method, or steps / step_size set).
  bool fixed() const { return fixed_; }
  std::int64_t fixed_steps() const { return nsteps_; }
  T fixed_step() const { return h_fixed_; }

  /// The first step (signed) from (t0, y0) toward t1, f0 = f(t0, y0): the
  /// given first_step, else Hairer, Norsett & Wanner's automatic choice
  /// (one probe evaluation of f, counted).
  T first_step(Tape<T>& tape, T t0, T t1, std::span<const Var<T>> y0, std::span<const Var<T>> f0);
  /// Before attempt number `taken` (0-based) of a step of h from t: throws
  /// once max_steps attempts are used up or h fell below the minimum step.
  void check_attempt(T t, T h, std::int64_t taken) const;
  /// The error estimate of a trial step from y0 to y1 with stages k
  /// (NaN if any of them is not finite: pass finite = false).
  double error(std::span<const Var<T>> y0, std::span<const Var<T>> y1, std::span<const Var<T>> k, T h,
               bool finite) const;
  /// The PI decision on a trial step of size h with error err: whether it
  /// is accepted; h becomes the next step to try (the retry on rejection).
  bool adapt(double err, T& h);

  /// The mixed norm of torchdiffeq over per-piece sums of squares of scaled
  /// errors and their element counts: the largest of the pieces' RMS values
  /// (a piece with count 0 is left out), NaN if any is NaN. A small tensor
  /// (h) is so controlled as tightly as a large one (a_theta), and a seminorm
  /// (pieces left out) can only take fewer steps. Every norm of the
  /// controller ends here, with every piece's sums filled in (also on a
  /// NaN), so a reduction of sums and counts across processes can go first.
  double norm(std::span<double> sums, std::span<double> counts) const;

 private:
  // Per-piece sums of (x / (atol + rtol |y0|))^2, x = a - b (b may be null).
  double scaled_norm(std::span<const Var<T>> a, std::span<const Var<T>> b, std::span<const Var<T>> y0) const;

  Control ctl_;
  RkStep<T>& step_;
  const RkSystem<T>& sys_;
  const Tableau& tab_;
  int pieces_;
  double expo_;  // PI exponent on the current error
  bool fixed_;
  std::int64_t nsteps_ = 0;
  T h_fixed_ = 0;
  T min_step_ = 0;
  T t_end_ = 0;
  double err_prev_ = 1e-4;
  bool last_rejected_ = false;
  bool nonfinite_ = false;  // the last rejection was for NaN or Inf
};

extern template class StepController<float>;
extern template class StepController<double>;

}  // namespace anode::ode::internal

#endif  // ANODE_ODE_CONTROLLER_H_
