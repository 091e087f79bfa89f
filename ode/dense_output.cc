#include "ode/dense_output.h"

#include <algorithm>
#include <cstring>

#include "autodiff/kernels.h"

namespace anode::ode::internal {

template <class T>
DenseStore<T>::DenseStore(Tape<T>& tape, DenseTrajectory<T>& traj, const Tableau& tab, Index n)
    : tape_(tape), traj_(traj), stages_(tab.stages), n_(n),
      pending_(tape.scratch(static_cast<std::size_t>((tab.stages + 1) * n))) {}

template <class T>
void DenseStore<T>::keep(const StepView<T>& step) {
  std::memcpy(pending_, step.y[0].data(), sizeof(T) * n_);
  for (int s = 0; s < stages_; ++s) std::memcpy(pending_ + (s + 1) * n_, step.k[s].data(), sizeof(T) * n_);
}

template <class T>
void DenseStore<T>::kept(std::int64_t, T t, T h, T t_end, std::span<const T* const>) {
  auto* d = tape_.template scratch<DenseStep<T>>(1);
  *d = DenseStep<T>{t, h, t_end, pending_, pending_ + n_, traj_.last, nullptr};
  if (traj_.last != nullptr) {
    traj_.last->next = d;
  } else {
    traj_.first = traj_.cursor = d;
  }
  traj_.last = d;
  ++traj_.steps;
  pending_ = tape_.scratch(static_cast<std::size_t>((stages_ + 1) * n_));
}

bool needs_f1_last(const Tableau& tab) { return tab.dense == DenseOutput::kHermite && !tab.fsal; }

template <class T>
void dense_value(DenseTrajectory<T>& traj, const Tableau& tab, Index n, T tau, T* out) {
  DenseStep<T>* d = traj.cursor;
  const T dir = d->h > 0 ? T(1) : T(-1);
  while (d->next != nullptr && dir * (tau - d->t_end) > 0) d = d->next;
  while (d->prev != nullptr && dir * (tau - d->t) < 0) d = d->prev;
  traj.cursor = d;
  const double theta = std::clamp(static_cast<double>((tau - d->t) / d->h), 0.0, 1.0);
  const DenseWeights w = dense_weights(tab, theta);
  // out = y + h * (sum_s w_s k_s + w_f1 f1), coefficients rounded as the
  // driver's dense output rounds them.
  const T* x[kMaxStages + 2];
  T c[kMaxStages + 2];
  int m = 0;
  x[m] = d->y;
  c[m++] = T(1);
  for (int s = 0; s < tab.stages; ++s) {
    if (w.w[s] == 0.0) continue;
    x[m] = d->k + s * n;
    c[m++] = static_cast<T>(d->h * static_cast<T>(w.w[s]));
  }
  if (w.w_f1 != 0.0) {
    x[m] = d->next != nullptr ? d->next->k : traj.f1_last;
    c[m++] = static_cast<T>(d->h * static_cast<T>(w.w_f1));
  }
  kernels::lincomb(x, c, m, out, n);
}

template <class T>
Var<T> solve_dense(Tape<T>& tape, Dynamics<T>& f, Var<T> h0, std::span<const T> times, const SolverOptions& o,
                   SolveStats& stats, Reads<T>& reads, DenseTrajectory<T>& traj) {
  const Tableau& tab = tableau(o.method);
  const std::int32_t below = static_cast<std::int32_t>(tape.num_slots());
  auto solve = [&](bool keep) {
    stats.reset();
    traj.clear();
    reads.reset(below, f.parameters());
    if (!keep) return solve_flat<T>(tape, f, h0, times, o, stats, &reads, nullptr, false);
    if (needs_f1_last(tab)) traj.f1_last = tape.scratch(h0.size());
    DenseStore<T> store(tape, traj, tab, h0.size());
    // keep_scratch: the steps stay in the arena for the backward pass.
    return solve_flat<T>(tape, f, h0, times, o, stats, &reads, &store, true);
  };
  const bool keep = tape.recording() && may_need_gradient(f, h0, times[0]);
  Var<T> y = solve(keep);
  if (tape.recording() && !keep && reads.any()) y = solve(true);
  return y;
}

template <class T>
void fill_f1_last(Tape<T>& tape, Dynamics<T>& f, DenseTrajectory<T>& traj, const Tableau& tab,
                  TensorView<const T> y_end, std::int64_t* nfe) {
  if (!needs_f1_last(tab) || traj.last == nullptr) return;
  typename Tape<T>::Scope scope(tape);
  typename Tape<T>::NoGradGuard no_grad(tape);
  ++*nfe;
  Var<T> f1 = f(traj.last->t_end, tape.constant(y_end));
  if (!f1.valid() || f1.shape() != y_end.shape || !kernels::all_finite(f1.data(), f1.size())) {
    throw SolverError("odeint: f at the end of the solve, needed for the dense output, is not a finite tensor "
                      "shaped like the state");
  }
  std::memcpy(traj.f1_last, f1.data(), sizeof(T) * f1.size());
}

template class DenseStore<float>;
template class DenseStore<double>;
template void dense_value<float>(DenseTrajectory<float>&, const Tableau&, Index, float, float*);
template void dense_value<double>(DenseTrajectory<double>&, const Tableau&, Index, double, double*);
template Var<float> solve_dense<float>(Tape<float>&, Dynamics<float>&, Var<float>, std::span<const float>,
                                       const SolverOptions&, SolveStats&, Reads<float>&, DenseTrajectory<float>&);
template Var<double> solve_dense<double>(Tape<double>&, Dynamics<double>&, Var<double>, std::span<const double>,
                                         const SolverOptions&, SolveStats&, Reads<double>&,
                                         DenseTrajectory<double>&);
template void fill_f1_last<float>(Tape<float>&, Dynamics<float>&, DenseTrajectory<float>&, const Tableau&,
                                  TensorView<const float>, std::int64_t*);
template void fill_f1_last<double>(Tape<double>&, Dynamics<double>&, DenseTrajectory<double>&, const Tableau&,
                                   TensorView<const double>, std::int64_t*);

}  // namespace anode::ode::internal
