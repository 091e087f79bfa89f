#ifndef ANODE_ODE_RK_ENGINE_H_
#define ANODE_ODE_RK_ENGINE_H_

// The one generic explicit Runge-Kutta integrator behind every solver and
// gradient method (internal to //ode). It integrates a system whose state is
// a few tensors ("pieces": the primal h, or the adjoint's [h, a, a_theta...])
// held as Vars on a tape, in one of two bookkeeping modes:
//  - kRecord: every accepted step stays on the tape (discretize-then-optimize);
//    a rejected step is rewound and leaves nothing behind.
//  - kFlat: nothing is recorded; the state lives in persistent buffers and each
//    step's scratch is rewound, so memory does not grow with the step count.
// The arithmetic is identical in both modes, so the forward numbers do not
// depend on the gradient method.

#include <cstdint>
#include <span>

#include "autodiff/function_ref.h"
#include "autodiff/tape.h"
#include "ode/solver.h"
#include "ode/tableau.h"

namespace anode::ode::internal {

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

enum class Keep { kRecord, kFlat };

/// Counters the engine adds to.
struct EngineCounters {
  std::int64_t* nfe;
  std::int64_t* accepted;
  std::int64_t* rejected;
};

/// Tolerances and controller settings of one integration.
struct Control {
  double rtol, atol;
  int steps;         // > 0: fixed number of steps over the whole interval
  double step_size;  // > 0: fixed steps of at most this size
  double first_step, min_step;
  int max_steps;
  double safety, min_factor, max_factor, pi_beta;
  bool fixed() const { return steps > 0 || step_size > 0; }
};

Control forward_control(const SolverOptions& o);

template <class T>
class RkEngine {
 public:
  /// `what` names the solve in errors ("dopri5", "dopri5 adjoint").
  RkEngine(Tape<T>& tape, RkSystem<T>& system, const Tableau& tab, const Control& control,
           Keep keep, const char* what, EngineCounters counters);

  /// Called for each output time i (in the order given) with the state there.
  using OnOutput = FunctionRef<void(int i, std::span<const Var<T>> y)>;
  /// kFlat only: called after each accepted step with its start time, its
  /// (signed) size, its end time (t + h, or exactly t1 for the last step) and
  /// the state at its start (one buffer per piece, valid during the call).
  using OnAccept = FunctionRef<void(T t, T h, T t_end, std::span<const T* const> y)>;

  /// Integrates from t0 to t1 (either direction) starting at y0. `outs` are
  /// the output times, strictly monotone in the direction of integration,
  /// inside (t0, t1]; on_output reports them. The final state is written to
  /// y1 (kRecord: recorded Vars; kFlat: Vars over persistent buffers valid
  /// until the enclosing tape scope ends).
  void integrate(T t0, T t1, std::span<const Var<T>> y0, std::span<const T> outs,
                 OnOutput on_output, OnAccept on_accept, std::span<Var<T>> y1);

  /// One step of size h from (t, y), on the tape as the recording flag says
  /// (the checkpoint method's recomputation): evaluates the first stage,
  /// writes the stages to k (stage-major: k[stage * pieces + piece]) and the
  /// new state to y1. Same arithmetic as integrate().
  void step(T t, T h, std::span<const Var<T>> y, std::span<Var<T>> k, std::span<Var<T>> y1);

  /// The state at t + theta h inside a step computed by step() or integrate().
  /// For Hermite output of a method without FSAL, f1 = f(t + h, y1) is needed:
  /// pass Vars to cache it in (f1_ready false on the first call of a step).
  void interpolate(T t, T h, double theta, std::span<const Var<T>> y, std::span<const Var<T>> k,
                   std::span<const Var<T>> y1, std::span<Var<T>> f1, bool& f1_ready,
                   std::span<Var<T>> out);

  /// Largest number of pieces a system may have.
  static constexpr int kMaxPieces = 64;

 private:
  // dy = f(t, y); whether every element of dy is finite.
  bool eval(T t, std::span<const Var<T>> y, std::span<Var<T>> dy);
  // The stages after the first (k[0..pieces) holds f(t, y)) and the new state;
  // whether those stages and the new state are all finite.
  bool trial(T t, T h, std::span<const Var<T>> y, std::span<Var<T>> k, std::span<Var<T>> y1);
  // y + h * sum_j coeff[j] * k_j over the stages with nonzero coefficients.
  void combine(std::span<const Var<T>> y, T h, const double* coeff, int nstages,
               std::span<const Var<T>> k, std::span<Var<T>> out, const Var<T>* f1 = nullptr,
               double coeff_f1 = 0);
  double error_norm(std::span<const Var<T>> y0, std::span<const Var<T>> y1,
                    std::span<const Var<T>> k, T h) const;
  double scaled_norm(std::span<const Var<T>> x, std::span<const Var<T>> scale_from) const;
  T initial_step(T t0, T t1, std::span<const Var<T>> y0, std::span<const Var<T>> f0);
  [[noreturn]] void fail(T t, const std::string& cause) const;
  // kFlat: constant Vars viewing persistent buffers, and copies into them.
  void bind(std::span<Var<T>> vars, T* const* buffers);
  void copy_into(std::span<const Var<T>> from, T* const* buffers) const;

  Tape<T>& tape_;
  RkSystem<T>& sys_;
  const Tableau& tab_;
  Control ctl_;
  Keep keep_;
  const char* what_;
  EngineCounters counters_;
  int pieces_;
  T min_step_ = 0;  // of the current integrate()
  Shape shapes_[kMaxPieces];
};

extern template class RkEngine<float>;
extern template class RkEngine<double>;

}  // namespace anode::ode::internal

#endif  // ANODE_ODE_RK_ENGINE_H_
