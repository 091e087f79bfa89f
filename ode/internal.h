#ifndef ANODE_ODE_INTERNAL_H_
#define ANODE_ODE_INTERNAL_H_

// Pieces shared by the three gradient methods (internal to //ode).

#include <algorithm>
#include <new>
#include <span>
#include <string>

#include "ode/rk_engine.h"
#include "ode/solver.h"

namespace anode::ode::internal {

/// dh/dt = f(t, h) as a one-piece RkSystem, checking f's output shape.
template <class T>
class PrimalSystem : public RkSystem<T> {
 public:
  explicit PrimalSystem(Dynamics<T>& f) : f_(f) {}
  int pieces() const override { return 1; }
  void eval(T t, std::span<const Var<T>> y, std::span<Var<T>> dy) override {
    Var<T> r = f_(t, y[0]);
    if (!r.valid() || &r.tape() != &y[0].tape() || r.shape() != y[0].shape()) {
      throw ShapeError("odeint: the dynamics returned " +
                       (r.valid() ? r.shape().str() : std::string("an empty Var")) +
                       " for a state of shape " + y[0].shape().str() +
                       " (it must return dh/dt, shaped like h, on h's tape)");
    }
    dy[0] = r;
  }

 private:
  Dynamics<T>& f_;
};

/// Checks times and options; throws SolverError naming the solver and the fault.
template <class T>
void check_solve(const char* what, Var<T> h0, std::span<const T> times, const SolverOptions& o);

/// Shape of odeint's result: h0's, or [K, ...] for K > 1 outputs.
Shape output_shape(const Shape& state, std::size_t outputs);

/// An uninitialized-then-constructed array of n trivially destructible
/// objects in the tape's arena (lives until the tape is cleared or rewound).
template <class U, class T>
U* arena_array(Tape<T>& tape, std::size_t n) {
  U* p = tape.template scratch<U>(n);
  for (std::size_t i = 0; i < n; ++i) new (p + i) U();
  return p;
}

/// What the adjoint and checkpoint nodes keep about their solve (in the
/// tape's arena: trivially destructible).
template <class T>
struct SolveRecord {
  Dynamics<T>* f;
  SolverOptions options;
  SolveStats* stats;  // the caller's, or &own
  SolveStats own;
  const T* times;     // a copy, in the arena
  int ntimes;
  int nparams;
  Shape state;
};

/// Fills a record for a solve of f from h0 at `times` (copying the times into
/// the arena) and resets the counters.
template <class T>
void init_record(SolveRecord<T>& r, Tape<T>& tape, Dynamics<T>& f, Var<T> h0, std::span<const T> times,
                 const SolverOptions& o, SolveStats* stats) {
  r.f = &f;
  r.options = o;
  r.stats = stats ? stats : &r.own;
  r.stats->reset();
  T* saved = tape.scratch(times.size());
  std::copy(times.begin(), times.end(), saved);
  r.times = saved;
  r.ntimes = static_cast<int>(times.size());
  r.nparams = static_cast<int>(f.parameters().size());
  r.state = h0.shape();
}

/// The inputs of a solve node: h0, a leaf per parameter of f, and the end
/// time when given (an arena array of `count` Vars).
template <class T>
Var<T>* node_inputs(Tape<T>& tape, Dynamics<T>& f, Var<T> h0, Var<T> t1, std::size_t* count) {
  const std::vector<Parameter<T>*>& params = f.parameters();
  *count = 1 + params.size() + (t1.valid() ? 1 : 0);
  Var<T>* inputs = arena_array<Var<T>>(tape, *count);
  inputs[0] = h0;
  for (std::size_t i = 0; i < params.size(); ++i) inputs[1 + i] = tape.param(*params[i]);
  if (t1.valid()) inputs[*count - 1] = t1;
  return inputs;
}

/// Counters for one engine: into `stats` if given.
inline EngineCounters forward_counters(SolveStats& s) { return {&s.nfe_forward, &s.accepted, &s.rejected}; }
inline EngineCounters backward_counters(SolveStats& s) {
  return {&s.nfe_backward, &s.accepted_backward, &s.rejected_backward};
}

/// The index of p in f's parameter list (SolverError if f used a parameter
/// it does not list).
template <class T>
int param_index(const std::vector<Parameter<T>*>& params, const Parameter<T>* p, const char* what);

/// A per-thread parameter log for nested VJPs (reused: no allocation in
/// steady state). Callers push entries from a base index and truncate back.
template <class T>
ParamLog<T>& scratch_param_log();

template <class T>
Var<T> odeint_adjoint(Dynamics<T>& f, Var<T> h0, std::span<const T> times, Var<T> t1,
                      const SolverOptions& o, SolveStats* stats);
template <class T>
Var<T> odeint_checkpoint(Dynamics<T>& f, Var<T> h0, std::span<const T> times,
                         const SolverOptions& o, SolveStats* stats);

}  // namespace anode::ode::internal

#endif  // ANODE_ODE_INTERNAL_H_
