#include "ode/driver.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "autodiff/kernels.h"

namespace anode::ode::internal {

template <class T>
Driver<T>::Driver(Tape<T>& tape, RkSystem<T>& system, const Tableau& tab, const Control& control, Keep keep,
                  const char* what, Counters counters)
    : tape_(tape),
      step_(system, tab, what, counters.nfe),
      ctl_(control, step_, system),
      keep_(keep),
      counters_(counters),
      pieces_(system.pieces()) {}

template <class T>
void Driver<T>::bind(std::span<Var<T>> vars, T* const* buffers) {
  for (int p = 0; p < pieces_; ++p) vars[p] = tape_.constant(TensorView<const T>{buffers[p], shapes_[p]});
}

template <class T>
void Driver<T>::copy_into(std::span<const Var<T>> from, T* const* buffers) const {
  for (int p = 0; p < pieces_; ++p) std::memcpy(buffers[p], from[p].data(), sizeof(T) * from[p].size());
}

template <class T>
void Driver<T>::integrate(T t0, T t1, std::span<const Var<T>> y0, std::span<const T> outs, OnOutput on_output,
                          StepStore<T>* store, std::span<Var<T>> y1_out) {
  const int P = pieces_, S = step_.tableau().stages;
  const bool fsal = step_.tableau().fsal;
  const bool flat = keep_ == Keep::kFlat;
  const T dir = t1 > t0 ? T(1) : T(-1);
  for (int p = 0; p < P; ++p) {
    shapes_[p] = y0[p].shape();
    if (!kernels::all_finite(y0[p].data(), y0[p].size())) {
      step_.fail(t0, "the initial state contains NaN or Inf");
    }
  }
  ctl_.start(t0, t1);
  const bool fixed = ctl_.fixed();
  // In kFlat mode nothing is recorded, and the state, the carried first stage
  // (FSAL) and the next state live in buffers outside the per-step scopes.
  std::optional<typename Tape<T>::NoGradGuard> no_grad;
  if (flat) no_grad.emplace(tape_);
  T* cur[kMaxPieces];
  T* next[kMaxPieces];
  T* carry[kMaxPieces];
  if (flat) {
    for (int p = 0; p < P; ++p) {
      const Index n = shapes_[p].numel();
      cur[p] = tape_.scratch(n);
      next[p] = tape_.scratch(n);
      carry[p] = tape_.scratch(n);
      std::memcpy(cur[p], y0[p].data(), sizeof(T) * n);
    }
  }

  std::array<Var<T>, kMaxPieces> y;   // the state at t (kRecord)
  std::array<Var<T>, kMaxPieces> k1;  // f(t, y) when carried (kRecord)
  for (int p = 0; p < P; ++p) y[p] = y0[p];
  bool have_k1 = false;
  // The state at t and the carried first stage as Vars (kFlat: bound to the
  // buffers, inside the caller's scope).
  auto state = [&](std::array<Var<T>, kMaxPieces>& buf) {
    if (!flat) return std::span<const Var<T>>(y.data(), P);
    bind(std::span<Var<T>>(buf.data(), P), cur);
    return std::span<const Var<T>>(buf.data(), P);
  };

  T h;
  if (fixed) {
    h = ctl_.fixed_step();
  } else {
    // The first derivative: needed by the automatic first step, and the
    // first stage of the first step.
    std::optional<typename Tape<T>::Scope> scope;
    if (flat) scope.emplace(tape_);
    std::array<Var<T>, kMaxPieces> yb, kb;
    std::span<const Var<T>> yv = state(yb);
    std::span<Var<T>> kv(flat ? kb.data() : k1.data(), P);
    // No step size can help: f at the initial state itself is not finite.
    if (!step_.eval(t0, yv, kv)) step_.fail(t0, "f(t, y) at the initial state is NaN or Inf");
    have_k1 = true;
    h = ctl_.first_step(tape_, t0, t1, yv, kv);
    if (flat) copy_into(kv, carry);
  }
  const T eps = std::numeric_limits<T>::epsilon();
  const std::int64_t nsteps = ctl_.fixed_steps();

  T t = t0;
  std::size_t out_i = 0;
  std::int64_t taken = 0, accepted = 0;
  std::array<Var<T>, kMaxPieces * kMaxStages> k;
  std::array<Var<T>, kMaxPieces> y_new, f1, out;

  while (dir * (t1 - t) > 0) {
    bool last = false;
    if (fixed) {
      last = accepted + 1 == nsteps;
    } else {
      ctl_.check_attempt(t, h, taken);
      // Land exactly on t1; stretch a step that would leave a sliver.
      if (dir * (t + T(1.01) * h - t1) >= 0) {
        h = t1 - t;
        last = true;
      }
    }
    ++taken;
    const T h_step = h;
    T t_new;
    const T* start[kMaxPieces];  // the state at t, for store->kept
    for (int p = 0; p < P; ++p) start[p] = flat ? cur[p] : y[p].data();
    {
      typename Tape<T>::Scope scope(tape_);
      std::array<Var<T>, kMaxPieces> yb;
      std::span<const Var<T>> yv = state(yb);
      // Stage 1: carried (FSAL, or the first step; checked when computed),
      // else evaluated now.
      bool finite = true;
      if (have_k1) {
        if (flat) {
          bind(std::span<Var<T>>(k.data(), P), carry);
        } else {
          for (int p = 0; p < P; ++p) k[p] = k1[p];
        }
      } else {
        finite = step_.eval(t, yv, std::span<Var<T>>(k.data(), P));
      }
      finite = step_.trial(t, h, yv, std::span<Var<T>>(k.data(), S * P), std::span<Var<T>>(y_new.data(), P)) &&
               finite;
      const std::span<const Var<T>> ks(k.data(), S * P), yn(y_new.data(), P);
      double err = 0;
      if (fixed) {
        if (!finite) step_.fail(t, "a stage or the state became NaN or Inf (try a smaller step)");
      } else {
        err = ctl_.error(yv, yn, ks, h, finite);
        if (!ctl_.adapt(err, h)) {  // rejected: h is the retry; the scope rewinds the attempt
          ++*counters_.rejected;
          continue;
        }
      }

      // Accepted.
      ++*counters_.accepted;
      ++accepted;
      t_new = last ? t1 : (fixed ? t0 + static_cast<T>(accepted) * h : t + h_step);
      bool f1_ready = false;
      while (out_i < outs.size() && dir * (outs[out_i] - t_new) <= 0) {
        const T to = outs[out_i];
        if (std::abs(to - t_new) <= 8 * eps * std::max<T>(T(1), std::abs(t_new))) {
          on_output(static_cast<int>(out_i), yn);
        } else {
          const double theta = static_cast<double>((to - t) / h_step);
          step_.interpolate(t, h_step, theta, yv, ks, yn, std::span<Var<T>>(f1.data(), P), f1_ready,
                            std::span<Var<T>>(out.data(), P));
          on_output(static_cast<int>(out_i), std::span<const Var<T>>(out.data(), P));
        }
        ++out_i;
      }
      if (store != nullptr) store->keep(StepView<T>{accepted - 1, t, h_step, t_new, yv, ks, yn});
      if (flat) {
        copy_into(yn, next);
        if (fsal) copy_into(ks.subspan((S - 1) * P, P), carry);
      } else {
        scope.commit();
        for (int p = 0; p < P; ++p) {
          y[p] = y_new[p];
          if (fsal) k1[p] = k[(S - 1) * P + p];
        }
      }
      have_k1 = fsal;
    }  // the step's scratch is rewound here in kFlat mode
    if (store != nullptr) {
      store->kept(accepted - 1, t, h_step, t_new, std::span<const T* const>(start, P));
    }
    if (flat) {
      for (int p = 0; p < P; ++p) std::swap(cur[p], next[p]);
    }
    t = t_new;
  }
  if (out_i != outs.size()) step_.fail(t, "internal: output times beyond the end of integration");
  if (flat) {
    bind(y1_out, cur);
  } else {
    for (int p = 0; p < P; ++p) y1_out[p] = y[p];
  }
}

template class Driver<float>;
template class Driver<double>;

}  // namespace anode::ode::internal
