#ifndef ANODE_ODE_DRIVER_H_
#define ANODE_ODE_DRIVER_H_

// The walk of one integration (internal to //ode): steps of RkStep under a
// StepController from t0 to t1, hitting the output times by dense output,
// in one of two bookkeeping modes:
//  - kRecord: every accepted step stays on the tape (discretize-then-optimize);
//    a rejected step is rewound and leaves nothing behind.
//  - kFlat: nothing is recorded; the state lives in persistent buffers and each
//    step's scratch is rewound, so memory does not grow with the step count.
// What a gradient method keeps of each accepted step is its StepStore; its
// backward pass replays what it kept. The arithmetic is identical in both
// modes, so the forward numbers do not depend on the gradient method.

#include <cstdint>
#include <span>

#include "autodiff/function_ref.h"
#include "autodiff/tape.h"
#include "ode/controller.h"
#include "ode/rk_step.h"
#include "ode/tableau.h"

namespace anode::ode::internal {

enum class Keep { kRecord, kFlat };

/// Counters a driver adds to.
struct Counters {
  std::int64_t* nfe;
  std::int64_t* accepted;
  std::int64_t* rejected;
};

/// One accepted step as the driver took it (valid during StepStore::keep).
template <class T>
struct StepView {
  std::int64_t index;          // 0, 1, ... within the integration
  T t, h, t_end;               // start, signed size, end (exactly t1 for the last)
  std::span<const Var<T>> y;   // the state at t, one Var per piece
  std::span<const Var<T>> k;   // the stages, stage-major: k[stage * pieces + piece]
  std::span<const Var<T>> y1;  // the state at t_end
};

/// What a gradient method keeps of each accepted step (the storage half of
/// its policy; its backward pass is the replay half).
template <class T>
class StepStore {
 public:
  virtual ~StepStore() = default;
  /// Inside the step's tape scope, with its stages: copy what is kept into
  /// buffers allocated before (kFlat rewinds what is allocated here).
  virtual void keep(const StepView<T>& /*step*/) {}
  /// After the step's scope ended (kFlat: rewound): may allocate in the
  /// arena. `y` is the state at the step's start, one buffer per piece.
  virtual void kept(std::int64_t /*index*/, T /*t*/, T /*h*/, T /*t_end*/, std::span<const T* const> /*y*/) {}
};

template <class T>
class Driver {
 public:
  /// `what` names the solve in errors ("dopri5", "dopri5 adjoint").
  Driver(Tape<T>& tape, RkSystem<T>& system, const Tableau& tab, const Control& control, Keep keep,
         const char* what, Counters counters);

  /// Called for each output time i (in the order given) with the state there.
  using OnOutput = FunctionRef<void(int i, std::span<const Var<T>> y)>;

  /// Integrates from t0 to t1 (either direction) starting at y0. `outs` are
  /// the output times, strictly monotone in the direction of integration,
  /// inside (t0, t1]; on_output reports them. `store` (may be null) sees
  /// every accepted step. The final state is written to y1 (kRecord:
  /// recorded Vars; kFlat: Vars over persistent buffers valid until the
  /// enclosing tape scope ends).
  void integrate(T t0, T t1, std::span<const Var<T>> y0, std::span<const T> outs, OnOutput on_output,
                 StepStore<T>* store, std::span<Var<T>> y1);

  /// The step arithmetic (for replaying single steps, and dense output).
  RkStep<T>& stepper() { return step_; }

 private:
  // kFlat: constant Vars viewing persistent buffers, and copies into them.
  void bind(std::span<Var<T>> vars, T* const* buffers);
  void copy_into(std::span<const Var<T>> from, T* const* buffers) const;

  Tape<T>& tape_;
  RkStep<T> step_;
  StepController<T> ctl_;
  Keep keep_;
  Counters counters_;
  int pieces_;
  Shape shapes_[kMaxPieces];
};

extern template class Driver<float>;
extern template class Driver<double>;

}  // namespace anode::ode::internal

#endif  // ANODE_ODE_DRIVER_H_
