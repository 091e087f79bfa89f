#ifndef ANODE_ODE_RK_STEP_H_
#define ANODE_ODE_RK_STEP_H_

// One explicit Runge-Kutta step from a Butcher tableau, and its dense output
// (internal to //ode). The same arithmetic serves every solver and gradient
// method: the driver (driver.h) walks steps of it under the step-size
// controller (controller.h), a replaying method (checkpoint.cc) re-runs single
// steps of it. The state is a few tensors ("pieces": the primal h, or the
// adjoint's [h, a, a_theta...]) held as Vars on a tape; whether a step is
// recorded is the tape's recording flag.

#include <cstdint>
#include <span>
#include <string>

#include "autodiff/tape.h"
#include "ode/solver.h"
#include "ode/tableau.h"

namespace anode::ode::internal {

/// Largest number of pieces a system may have.
inline constexpr int kMaxPieces = 64;

/// An ODE system over `pieces()` tensors.
template <class T>
class RkSystem {
 public:
  virtual ~RkSystem() = default;
  virtual int pieces() const = 0;
  /// Writes dy/dt at (t, y) into dy (new Vars on y's tape).
  virtual void eval(T t, std::span<const Var<T>> y, std::span<Var<T>> dy) = 0;
  /// Whether piece i counts in the error norm (seminorms leave some out).
  virtual bool in_norm(int /*i*/) const { return true; }
};

/// Throws SolverError "<what>: solve failed at t = <t>: <cause>" (the one
/// format of a failed solve, also used by check_solve).
template <class T>
[[noreturn]] void solve_failed(const char* what, T t, const std::string& cause);

/// The step arithmetic of one tableau over one system.
template <class T>
class RkStep {
 public:
  /// `what` names the solve in errors ("dopri5", "dopri5 adjoint"); every
  /// evaluation of the system adds one to *nfe.
  RkStep(RkSystem<T>& system, const Tableau& tab, const char* what, std::int64_t* nfe);

  int pieces() const { return pieces_; }
  const Tableau& tableau() const { return tab_; }
  const char* what() const { return what_; }

  /// dy = f(t, y) (counted); whether every element of dy is finite.
  bool eval(T t, std::span<const Var<T>> y, std::span<Var<T>> dy);
  /// The stages after the first (k[0..pieces) holds f(t, y)) and the new
  /// state; whether those stages and the new state are all finite. Stages
  /// are stage-major: k[stage * pieces + piece].
  bool trial(T t, T h, std::span<const Var<T>> y, std::span<Var<T>> k, std::span<Var<T>> y1);
  /// One whole step of size h from (t, y): evaluates the first stage too,
  /// writes the stages to k and the new state to y1; throws if any is NaN or
  /// Inf. Same arithmetic as a step the driver takes.
  void step(T t, T h, std::span<const Var<T>> y, std::span<Var<T>> k, std::span<Var<T>> y1);
  /// The state at t + theta h inside a step computed by step() or trial().
  /// For Hermite output of a method without FSAL, f1 = f(t + h, y1) is
  /// needed: pass Vars to cache it in (f1_ready false on the first call of a
  /// step).
  void interpolate(T t, T h, double theta, std::span<const Var<T>> y, std::span<const Var<T>> k,
                   std::span<const Var<T>> y1, std::span<Var<T>> f1, bool& f1_ready,
                   std::span<Var<T>> out);
  /// out = y + h * sum_j coeff[j] * k_j (+ h * coeff_f1 * f1) over the stages
  /// with nonzero coefficients.
  void combine(std::span<const Var<T>> y, T h, const double* coeff, int nstages,
               std::span<const Var<T>> k, std::span<Var<T>> out, const Var<T>* f1 = nullptr,
               double coeff_f1 = 0);
  [[noreturn]] void fail(T t, const std::string& cause) const { solve_failed<T>(what_, t, cause); }

 private:
  RkSystem<T>& sys_;
  const Tableau& tab_;
  const char* what_;
  std::int64_t* nfe_;
  int pieces_;
};

extern template class RkStep<float>;
extern template class RkStep<double>;

}  // namespace anode::ode::internal

#endif  // ANODE_ODE_RK_STEP_H_
