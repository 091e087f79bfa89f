#ifndef ANODE_ODE_STEP_REPLAY_H_
#define ANODE_ODE_STEP_REPLAY_H_

// The replay half of the methods that re-run forward steps in their backward
// pass (internal to //ode): uniform checkpointing (checkpoint.cc), binomial
// checkpointing (binomial.cc) and the symplectic adjoint (symplectic.cc).
// It walks the solve's steps last first, carrying the adjoint of the state,
// adding each output time's cotangent in the step that produced it, and
// sending what each replayed evaluation gives f's parameters and captured
// values to the solve node's input gradients.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>

#include "autodiff/tape.h"
#include "ode/internal.h"
#include "ode/rk_step.h"

namespace anode::ode::internal {

template <class T>
class StepReplay {
 public:
  /// For the backward pass of `node`, whose record is `r`; `what` names the
  /// method in errors. Fetches the input gradients (before any nested scope)
  /// and zeroes the carried adjoint. With `end_time_input` (the node's last
  /// input is the end time t1), adds d(loss)/d(t1) = <a(t1), f(t1, h(t1))>
  /// to its gradient, as the adjoint method does.
  StepReplay(Tape<T>& tape, const Node<T>& node, const SolveRecord<T>& r, const char* what,
             bool end_time_input = false);
  StepReplay(const StepReplay&) = delete;
  StepReplay& operator=(const StepReplay&) = delete;

  /// The step arithmetic; its evaluations count as backward NFE.
  RkStep<T>& stepper() { return stepper_; }
  const char* what() const { return what_; }
  /// The adjoint of the state at the end of the step about to be reversed
  /// (after reverse(): at its start). n elements.
  T* adjoint() { return a_; }

  /// The state after the step (t, h) from y, unrecorded, into out (the
  /// recomputation of a state that was not kept).
  void advance(T t, T h, const T* y, T* out);

  /// Re-runs the step (t, h, t_end) from y with recording on and
  /// backpropagates through it: seeds are the carried adjoint on its end
  /// state (unless it is the solve's last step) and the cotangents of the
  /// output times inside (t, t_end]. The adjoint becomes that of y.
  void reverse(T t, T h, T t_end, const T* y, bool last_step);

  /// The outputs inside the step (t, t_end] that are still unhandled, last
  /// first: calls emit(i, v-cotangent, exact) for each, where exact means the
  /// output time is the step's end (else it is interpolated).
  template <class Emit>
  void outputs_in(T t, T t_end, Emit&& emit) {
    while (out_i_ >= 0 && dir_ * (r_.times[out_i_ + 1] - t) > 0) {
      const T to = r_.times[out_i_ + 1];
      const bool exact = std::abs(to - t_end) <= 8 * eps_ * std::max<T>(T(1), std::abs(t_end));
      emit(to, cot_ + out_i_ * n_, exact);
      --out_i_;
    }
  }

  /// Inside a nested recording scope: what f's evaluations there read gets
  /// its gradient. Construct (on the stack) before the evaluations, call
  /// collect() after the scope's tape.backward.
  class Evaluation {
   public:
    explicit Evaluation(StepReplay& replay);
    /// Stops watching; throws if f read a captured value the forward did not.
    void stop();
    /// Adds the parameters' and captured values' adjoints of this scope to
    /// the node's input gradients.
    void collect();

   private:
    StepReplay& rp_;
    ReadsLease<T> reads_;
    Watching<T> watching_;
    LiftCaptured<T> lifted_;
  };

  /// Adds the carried adjoint to h0's gradient (after the first step).
  void finish();

 private:
  Tape<T>& tape_;
  const SolveRecord<T>& r_;
  const char* what_;
  PrimalSystem<T> sys_;
  RkStep<T> stepper_;
  int K_;
  Index n_;
  const T* cot_;
  T eps_, dir_;
  T* g_h0_;
  T** g_theta_;  // the parameters', then the captured values'
  T** g_step_;   // one evaluation's d/dc of the captured values (Tape::lift)
  T* a_;
  int out_i_;
  Var<T>* seeds_;
  TensorView<const T>* cots_;
};

/// The forward half of a replay method: solve_flat keeping, through the
/// store that `start(record)` returns (after resetting the method's context;
/// null: keep nothing), what the method keeps of each step. It keeps when a
/// gradient may be asked for (may_need_gradient), and solves again keeping
/// when a solve that kept nothing finds f reading something differentiable;
/// then copies what f read into the record and records the solve node
/// (inputs by node_inputs, with t1 if valid).
template <class T, class Start>
Var<T> replay_forward(Tape<T>& tape, SolveRecord<T>& r, Dynamics<T>& f, Var<T> h0, std::span<const T> times,
                      Var<T> t1, const SolverOptions& o, const char* what, const char* node_name,
                      void (*backward)(Tape<T>&, const Node<T>&), Start&& start) {
  ReadsLease<T> reads;
  const std::int32_t below = static_cast<std::int32_t>(tape.num_slots());
  auto solve = [&](bool record) {
    r.stats->reset();
    reads->reset(below, f.parameters());
    StepStore<T>* store = start(record);
    // keep_scratch: what the store keeps stays in the arena for the backward
    // pass; the driver rewinds each step's scratch itself.
    return solve_flat<T>(tape, f, h0, times, o, *r.stats, &*reads, store, true);
  };
  const bool keep = tape.recording() && may_need_gradient(f, h0, times[0]);
  Var<T> y = solve(keep);
  if (tape.recording() && !keep && reads->any()) y = solve(true);
  finish_record(r, tape, *reads, what);
  std::size_t nin = 0;
  Var<T>* inputs = node_inputs(tape, r, h0, t1, &nin);
  Node<T> node{};
  node.name = node_name;
  node.backward = backward;
  node.saved = &r;
  tape.record(y, std::span<const Var<T>>(inputs, nin), node);
  return y;
}

/// A per-step log in the tape's arena, grown by doubling (outgrown blocks
/// stay until the tape is rewound: about two entries of arena per step).
template <class U>
struct ArenaLog {
  U* items;
  std::int64_t size, capacity;
  void clear() { items = nullptr, size = capacity = 0; }
  template <class T>
  void push(Tape<T>& tape, const U& u) {
    if (size == capacity) {
      const std::int64_t cap = capacity < 32 ? 64 : 2 * capacity;
      U* grown = tape.template scratch<U>(static_cast<std::size_t>(cap));
      for (std::int64_t i = 0; i < size; ++i) grown[i] = items[i];
      items = grown;
      capacity = cap;
    }
    items[size++] = u;
  }
};

extern template class StepReplay<float>;
extern template class StepReplay<double>;

}  // namespace anode::ode::internal

#endif  // ANODE_ODE_STEP_REPLAY_H_
