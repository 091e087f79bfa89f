#ifndef ANODE_ODE_DENSE_OUTPUT_H_
#define ANODE_ODE_DENSE_OUTPUT_H_

// A solve's dense output kept for a backward pass (internal to //ode): each
// accepted step's start state and stages, so h(t) can be read anywhere on the
// solved interval by the tableau's interpolant. The interpolating and the
// quadrature adjoints read h from it instead of re-integrating h backward.

#include <cstdint>
#include <span>
#include <type_traits>

#include "autodiff/tape.h"
#include "ode/driver.h"
#include "ode/internal.h"
#include "ode/tableau.h"

namespace anode::ode::internal {

/// One accepted step's interpolant data (in the tape's arena).
template <class T>
struct DenseStep {
  T t, h, t_end;
  T* y;  // the state at t (n values)
  T* k;  // the stages, stage after stage (stages * n values)
  DenseStep* prev;
  DenseStep* next;
};

/// The steps of one integration, in order, with a cursor for lookups that
/// move a little at a time (a backward solve's stage times). Trivially
/// destructible, to live in the arena.
template <class T>
struct DenseTrajectory {
  DenseStep<T>* first;
  DenseStep<T>* last;
  DenseStep<T>* cursor;
  T* f1_last;         // f(t_end, y(t_end)) of the last step, where the interpolant needs it
  bool f1_last_ready;
  std::int64_t steps;

  void clear() {
    first = last = cursor = nullptr;
    f1_last = nullptr;
    f1_last_ready = false;
    steps = 0;
  }
  /// Memory the kept steps hold, in values of T.
  std::int64_t values(int stages, Index n) const { return steps * (stages + 1) * n; }
};
static_assert(std::is_trivially_destructible_v<DenseTrajectory<float>>);

/// The StepStore that fills a DenseTrajectory (kFlat, one-piece system of n
/// values): each accepted step's start state and stages are copied into a
/// buffer taken before the step, linked once the step's scope has ended.
template <class T>
class DenseStore : public StepStore<T> {
 public:
  DenseStore(Tape<T>& tape, DenseTrajectory<T>& traj, const Tableau& tab, Index n);
  void keep(const StepView<T>& step) override;
  void kept(std::int64_t index, T t, T h, T t_end, std::span<const T* const> y) override;

 private:
  Tape<T>& tape_;
  DenseTrajectory<T>& traj_;
  int stages_;
  Index n_;
  T* pending_;  // (stages + 1) * n values for the step being taken
};

/// Writes h(tau) from the trajectory into out (n values), tau inside the
/// solved interval (clamped to it). Needs f(t_end, y(t_end)) for Hermite
/// output without FSAL: the next step's first stage, or for the last step
/// `f1_last`, which must be ready (see needs_f1_last).
template <class T>
void dense_value(DenseTrajectory<T>& traj, const Tableau& tab, Index n, T tau, T* out);

/// Whether the tableau's interpolant needs f at the end of the last step.
bool needs_f1_last(const Tableau& tab);

/// The forward solve of a method that reads h from the dense output: as
/// solve_flat (finding what f reads), keeping every accepted step in `traj`
/// when a gradient may be asked for (may_need_gradient; a solve that kept
/// nothing and finds f reading something differentiable after all is run
/// again, keeping them), and a buffer for f1_last where the interpolant
/// needs it (filled by the backward pass: fill_f1_last).
template <class T>
Var<T> solve_dense(Tape<T>& tape, Dynamics<T>& f, Var<T> h0, std::span<const T> times, const SolverOptions& o,
                   SolveStats& stats, Reads<T>& reads, DenseTrajectory<T>& traj);

/// Fills traj.f1_last (if the interpolant needs it) with f(t_end, y_end),
/// y_end the state at the end of the last step: one evaluation of f,
/// unrecorded, counted in *nfe.
template <class T>
void fill_f1_last(Tape<T>& tape, Dynamics<T>& f, DenseTrajectory<T>& traj, const Tableau& tab,
                  TensorView<const T> y_end, std::int64_t* nfe);

extern template class DenseStore<float>;
extern template class DenseStore<double>;

}  // namespace anode::ode::internal

#endif  // ANODE_ODE_DENSE_OUTPUT_H_
