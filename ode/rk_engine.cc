#include "ode/rk_engine.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <sstream>

#include "autodiff/kernels.h"
#include "autodiff/ops.h"

namespace anode::ode::internal {

Control forward_control(const SolverOptions& o) {
  return Control{o.rtol,     o.atol,       o.steps,      o.step_size,  o.first_step,
                 o.min_step, o.max_steps,  o.safety,     o.min_factor, o.max_factor,
                 o.pi_beta};
}

template <class T>
RkEngine<T>::RkEngine(Tape<T>& tape, RkSystem<T>& system, const Tableau& tab,
                      const Control& control, Keep keep, const char* what,
                      EngineCounters counters)
    : tape_(tape),
      sys_(system),
      tab_(tab),
      ctl_(control),
      keep_(keep),
      what_(what),
      counters_(counters),
      pieces_(system.pieces()) {
  if (pieces_ < 1 || pieces_ > kMaxPieces) {
    throw SolverError(std::string(what) + ": a system of " + std::to_string(pieces_) +
                      " tensors is not supported (1 to " + std::to_string(kMaxPieces) + ")");
  }
}

template <class T>
void RkEngine<T>::fail(T t, const std::string& cause) const {
  std::ostringstream msg;
  msg.precision(6);
  msg << what_ << ": solve failed at t = " << t << ": " << cause;
  throw SolverError(msg.str());
}

template <class T>
bool RkEngine<T>::eval(T t, std::span<const Var<T>> y, std::span<Var<T>> dy) {
  ++*counters_.nfe;
  sys_.eval(t, y, dy);
  // Checked where computed: a NaN in a stage with a zero weight (or one used
  // only for dense output) would otherwise never reach the state.
  bool finite = true;
  for (int p = 0; p < pieces_; ++p) finite = finite && kernels::all_finite(dy[p].data(), dy[p].size());
  return finite;
}

template <class T>
void RkEngine<T>::combine(std::span<const Var<T>> y, T h, const double* coeff, int nstages,
                          std::span<const Var<T>> k, std::span<Var<T>> out, const Var<T>* f1,
                          double coeff_f1) {
  const int P = pieces_;
  for (int p = 0; p < P; ++p) {
    std::array<Var<T>, kMaxStages + 2> terms;
    std::array<T, kMaxStages + 2> c;
    int n = 0;
    terms[n] = y[p];
    c[n++] = T(1);
    for (int j = 0; j < nstages; ++j) {
      if (coeff[j] == 0.0) continue;  // sparse tableau rows
      terms[n] = k[j * P + p];
      c[n++] = static_cast<T>(h * static_cast<T>(coeff[j]));
    }
    if (f1 != nullptr && coeff_f1 != 0.0) {
      terms[n] = f1[p];
      c[n++] = static_cast<T>(h * static_cast<T>(coeff_f1));
    }
    out[p] = lincomb<T>(std::span<const Var<T>>(terms.data(), n), std::span<const T>(c.data(), n));
  }
}

template <class T>
bool RkEngine<T>::trial(T t, T h, std::span<const Var<T>> y, std::span<Var<T>> k,
                        std::span<Var<T>> y1) {
  const int P = pieces_, S = tab_.stages;
  std::array<Var<T>, kMaxPieces> ys;
  bool finite = true;
  for (int s = 1; s < S; ++s) {
    combine(y, h, tab_.a[s], s, k, std::span<Var<T>>(ys.data(), P));
    if (tab_.fsal && s == S - 1) {
      // The last stage's input is the new state (a[S-1] == b).
      for (int p = 0; p < P; ++p) y1[p] = ys[p];
    }
    finite = eval(t + static_cast<T>(tab_.c[s]) * h, std::span<const Var<T>>(ys.data(), P),
                  k.subspan(s * P, P)) && finite;
  }
  if (!tab_.fsal) combine(y, h, tab_.b, S, k, y1);
  for (int p = 0; p < P; ++p) finite = finite && kernels::all_finite(y1[p].data(), y1[p].size());
  return finite;
}

template <class T>
void RkEngine<T>::step(T t, T h, std::span<const Var<T>> y, std::span<Var<T>> k,
                       std::span<Var<T>> y1) {
  const bool finite = eval(t, y, k.subspan(0, pieces_));
  if (!trial(t, h, y, k, y1) || !finite) fail(t, "a stage or the new state is NaN or Inf");
}

template <class T>
void RkEngine<T>::interpolate(T t, T h, double theta, std::span<const Var<T>> y,
                              std::span<const Var<T>> k, std::span<const Var<T>> y1,
                              std::span<Var<T>> f1, bool& f1_ready, std::span<Var<T>> out) {
  DenseWeights w = dense_weights(tab_, theta);
  if (w.w_f1 != 0.0 && !f1_ready) {
    if (!eval(t + h, y1, f1)) {
      fail(t + h, "f(t, y) at the end of the step, needed for the dense output, is NaN or Inf");
    }
    f1_ready = true;
  }
  combine(y, h, w.w, tab_.stages, k, out, w.w_f1 != 0.0 ? f1.data() : nullptr, w.w_f1);
  for (int p = 0; p < pieces_; ++p) {
    if (!kernels::all_finite(out[p].data(), out[p].size())) {
      fail(t, "the dense output inside the step is NaN or Inf");
    }
  }
}

// The mixed norm of torchdiffeq: the largest of the pieces' RMS norms, so a
// small tensor (h) is controlled as tightly as a large one (a_theta), and a
// seminorm (pieces left out) can only take fewer steps.
template <class T>
double RkEngine<T>::error_norm(std::span<const Var<T>> y0, std::span<const Var<T>> y1,
                               std::span<const Var<T>> k, T h) const {
  const int P = pieces_, S = tab_.stages;
  double worst = 0;
  for (int p = 0; p < P; ++p) {
    if (!sys_.in_norm(p)) continue;
    const Index n = y0[p].size();
    if (n == 0) continue;
    const T* a = y0[p].data();
    const T* b = y1[p].data();
    const T* ks[kMaxStages];
    double e[kMaxStages];
    int m = 0;
    for (int s = 0; s < S; ++s) {
      if (tab_.e[s] == 0.0) continue;
      ks[m] = k[s * P + p].data();
      e[m++] = tab_.e[s];
    }
    double sum = 0;
    for (Index i = 0; i < n; ++i) {
      double err = 0;
      for (int j = 0; j < m; ++j) err += e[j] * static_cast<double>(ks[j][i]);
      err *= static_cast<double>(h);
      const double sc = ctl_.atol + ctl_.rtol * std::max(std::abs(static_cast<double>(a[i])),
                                                         std::abs(static_cast<double>(b[i])));
      sum += (err / sc) * (err / sc);
    }
    const double rms = std::sqrt(sum / static_cast<double>(n));
    // NaN in any piece is the result (a comparison would let a later finite
    // piece replace it).
    if (std::isnan(rms)) return rms;
    worst = std::max(worst, rms);
  }
  return worst;
}

template <class T>
double RkEngine<T>::scaled_norm(std::span<const Var<T>> x, std::span<const Var<T>> y0) const {
  double worst = 0;
  for (int p = 0; p < pieces_; ++p) {
    if (!sys_.in_norm(p) || x[p].size() == 0) continue;
    const T* v = x[p].data();
    const T* a = y0[p].data();
    double sum = 0;
    for (Index i = 0; i < x[p].size(); ++i) {
      const double sc = ctl_.atol + ctl_.rtol * std::abs(static_cast<double>(a[i]));
      sum += (static_cast<double>(v[i]) / sc) * (static_cast<double>(v[i]) / sc);
    }
    const double rms = std::sqrt(sum / static_cast<double>(x[p].size()));
    if (std::isnan(rms)) return rms;  // as in error_norm
    worst = std::max(worst, rms);
  }
  return worst;
}

// Hairer, Norsett & Wanner, Solving ODEs I, Section II.4: a first step from
// the sizes of y0, f0 and a difference estimate of f's derivative.
template <class T>
T RkEngine<T>::initial_step(T t0, T t1, std::span<const Var<T>> y0, std::span<const Var<T>> f0) {
  const int P = pieces_;
  const double span = std::abs(static_cast<double>(t1 - t0));
  const double dir = t1 > t0 ? 1.0 : -1.0;
  const double d0 = scaled_norm(y0, y0), d1 = scaled_norm(f0, y0);
  double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
  h0 = std::min(h0, span);
  double d2 = 0;
  bool probe_finite;
  {
    typename Tape<T>::Scope scope(tape_);
    typename Tape<T>::NoGradGuard no_grad(tape_);
    std::array<Var<T>, kMaxPieces> y1, f1, diff;
    const double unit[1] = {1.0};
    combine(y0, static_cast<T>(dir * h0), unit, 1, f0, std::span<Var<T>>(y1.data(), P));
    probe_finite = eval(t0 + static_cast<T>(dir * h0), std::span<const Var<T>>(y1.data(), P),
                        std::span<Var<T>>(f1.data(), P));
    if (probe_finite) {
      for (int p = 0; p < P; ++p) diff[p] = sub(f1[p], f0[p]);
      d2 = scaled_norm(std::span<const Var<T>>(diff.data(), P), y0) / h0;
    }
  }
  double h;
  if (!probe_finite) {
    h = 0.1 * h0;  // f is NaN or Inf a step h0 ahead: start well below it
  } else {
    const double dm = std::max(d1, d2);
    double h1 = dm <= 1e-15 ? std::max(1e-6, h0 * 1e-3) : std::pow(0.01 / dm, 1.0 / (tab_.order + 1));
    h = std::min({100 * h0, h1, span});
  }
  if (!std::isfinite(h) || h <= 0) h = span * 1e-3;
  // The absolute floors above assume double and unit time scales: keep the
  // first step well above the underflow limit (which is relative to t).
  h = std::min(span, std::max(h, 100.0 * static_cast<double>(min_step_)));
  return static_cast<T>(dir * h);
}

template <class T>
void RkEngine<T>::bind(std::span<Var<T>> vars, T* const* buffers) {
  for (int p = 0; p < pieces_; ++p) vars[p] = tape_.constant(TensorView<const T>{buffers[p], shapes_[p]});
}

template <class T>
void RkEngine<T>::copy_into(std::span<const Var<T>> from, T* const* buffers) const {
  for (int p = 0; p < pieces_; ++p) std::memcpy(buffers[p], from[p].data(), sizeof(T) * from[p].size());
}

template <class T>
void RkEngine<T>::integrate(T t0, T t1, std::span<const Var<T>> y0, std::span<const T> outs,
                            OnOutput on_output, OnAccept on_accept, std::span<Var<T>> y1_out) {
  const int P = pieces_, S = tab_.stages;
  const bool flat = keep_ == Keep::kFlat;
  const T dir = t1 > t0 ? T(1) : T(-1);
  const T span = std::abs(t1 - t0);
  for (int p = 0; p < P; ++p) {
    shapes_[p] = y0[p].shape();
    if (!kernels::all_finite(y0[p].data(), y0[p].size())) {
      fail(t0, "the initial state contains NaN or Inf");
    }
  }
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

  std::array<Var<T>, kMaxPieces> y;      // the state at t (kRecord)
  std::array<Var<T>, kMaxPieces> k1;     // f(t, y) when carried
  for (int p = 0; p < P; ++p) y[p] = y0[p];
  bool have_k1 = false;
  auto ys = [&] { return std::span<const Var<T>>(y.data(), P); };

  // First derivative: needed by the automatic first step, and the first
  // stage of the first step.
  auto first_derivative = [&](T t) {
    bool finite;
    if (flat) {
      typename Tape<T>::Scope scope(tape_);
      std::array<Var<T>, kMaxPieces> yv, kv;
      bind(std::span<Var<T>>(yv.data(), P), cur);
      finite = eval(t, std::span<const Var<T>>(yv.data(), P), std::span<Var<T>>(kv.data(), P));
      copy_into(std::span<const Var<T>>(kv.data(), P), carry);
    } else {
      finite = eval(t, ys(), std::span<Var<T>>(k1.data(), P));
    }
    // No step size can help: f at the initial state itself is not finite.
    if (!finite) fail(t, "f(t, y) at the initial state is NaN or Inf");
    have_k1 = true;
  };

  min_step_ = std::max<T>(static_cast<T>(ctl_.min_step),
                         4 * std::numeric_limits<T>::epsilon() * std::max({std::abs(t0), std::abs(t1), span}));
  const bool fixed = ctl_.fixed() || !tab_.adaptive();
  if (!fixed && !(ctl_.rtol > 0 && ctl_.atol > 0)) {
    std::ostringstream m;
    m << "rtol and atol must be > 0 (got rtol = " << ctl_.rtol << ", atol = " << ctl_.atol << ")";
    fail(t0, m.str());
  }
  if (!tab_.adaptive() && !ctl_.fixed()) {
    fail(t0, "a fixed-step method needs steps > 0 or step_size > 0");
  }
  if (ctl_.max_steps < 1) fail(t0, "max_steps must be >= 1, got " + std::to_string(ctl_.max_steps));
  Index nsteps = 0;
  T h;
  if (fixed) {
    // The count is formed in double and checked against max_steps before any
    // cast (a tiny step_size would overflow Index), so a fixed-step solve is
    // capped like an adaptive one.
    const double count = ctl_.steps > 0
                             ? static_cast<double>(ctl_.steps)
                             : std::max(1.0, std::ceil(static_cast<double>(span) / ctl_.step_size - 1e-9));
    if (!(count <= static_cast<double>(ctl_.max_steps))) {
      std::ostringstream m;
      m.precision(6);
      m << "the fixed steps (";
      if (ctl_.steps > 0) {
        m << ctl_.steps;
      } else {
        m << count << ", from step_size " << ctl_.step_size << " over " << span;
      }
      m << ") exceed max_steps (" << ctl_.max_steps << ")";
      fail(t0, m.str());
    }
    nsteps = static_cast<Index>(count);
    h = (t1 - t0) / static_cast<T>(nsteps);
    if (!(std::abs(h) >= 4 * std::numeric_limits<T>::epsilon() * std::max(std::abs(t0), std::abs(t1)))) {
      std::ostringstream m;
      m << "a fixed step of " << std::abs(h) << " is below the resolution of t";
      fail(t0, m.str());
    }
  } else {
    first_derivative(t0);
    if (ctl_.first_step > 0) {
      h = dir * std::min<T>(static_cast<T>(ctl_.first_step), span);
    } else if (flat) {
      typename Tape<T>::Scope scope(tape_);
      std::array<Var<T>, kMaxPieces> yv, kv;
      bind(std::span<Var<T>>(yv.data(), P), cur);
      bind(std::span<Var<T>>(kv.data(), P), carry);
      h = initial_step(t0, t1, std::span<const Var<T>>(yv.data(), P), std::span<const Var<T>>(kv.data(), P));
    } else {
      h = initial_step(t0, t1, ys(), std::span<const Var<T>>(k1.data(), P));
    }
  }
  const T eps = std::numeric_limits<T>::epsilon();
  const T min_step = min_step_;
  const double expo = 1.0 / (std::min(tab_.order, std::max(tab_.error_order, 1)) + 1) - 0.75 * ctl_.pi_beta;

  T t = t0;
  std::size_t out_i = 0;
  Index taken = 0, accepted = 0;
  double err_prev = 1e-4;
  bool last_rejected = false, nonfinite = false;
  std::array<Var<T>, kMaxPieces * kMaxStages> k;
  std::array<Var<T>, kMaxPieces> y_new, f1, out;

  while (dir * (t1 - t) > 0) {
    bool last = false;
    if (fixed) {
      last = accepted + 1 == nsteps;
    } else {
      if (taken >= ctl_.max_steps) {
        fail(t, "max_steps (" + std::to_string(ctl_.max_steps) + ") exceeded before reaching t = " +
                    std::to_string(static_cast<double>(t1)));
      }
      if (std::abs(h) < min_step) {
        std::ostringstream m;
        m << "step size " << std::abs(h) << " fell below the minimum " << min_step
          << (nonfinite ? " (the state became NaN or Inf on the rejected attempts)"
                        : " (stiff or singular dynamics?)");
        fail(t, m.str());
      }
      // Land exactly on t1; stretch a step that would leave a sliver.
      if (dir * (t + T(1.01) * h - t1) >= 0) {
        h = t1 - t;
        last = true;
      }
    }
    ++taken;
    const T h_step = h;
    T t_new;
    {
      typename Tape<T>::Scope scope(tape_);
      std::span<const Var<T>> yv = ys();
      std::array<Var<T>, kMaxPieces> yb;
      if (flat) {
        bind(std::span<Var<T>>(yb.data(), P), cur);
        yv = std::span<const Var<T>>(yb.data(), P);
      }
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
        finite = eval(t, yv, std::span<Var<T>>(k.data(), P));
      }
      finite = trial(t, h, yv, std::span<Var<T>>(k.data(), S * P), std::span<Var<T>>(y_new.data(), P)) &&
               finite;

      double err = 0;
      if (fixed) {
        if (!finite) fail(t, "a stage or the state became NaN or Inf (try a smaller step)");
      } else {
        // A non-finite stage rejects the step even when its error weight is 0.
        err = finite ? error_norm(yv, std::span<const Var<T>>(y_new.data(), P),
                                  std::span<const Var<T>>(k.data(), S * P), h)
                     : std::numeric_limits<double>::quiet_NaN();
        if (!(err <= 1.0)) {  // rejected (also when err is NaN); the scope rewinds it
          ++*counters_.rejected;
          nonfinite = !std::isfinite(err);
          double fac = nonfinite ? ctl_.min_factor
                                 : std::max(ctl_.min_factor, ctl_.safety * std::pow(err, -expo));
          h *= static_cast<T>(std::min(fac, 1.0));
          last_rejected = true;
          continue;
        }
        nonfinite = false;
      }

      // Accepted.
      ++*counters_.accepted;
      ++accepted;
      t_new = last ? t1 : (fixed ? t0 + static_cast<T>(accepted) * h : t + h);
      bool f1_ready = false;
      while (out_i < outs.size() && dir * (outs[out_i] - t_new) <= 0) {
        const T to = outs[out_i];
        if (std::abs(to - t_new) <= 8 * eps * std::max<T>(T(1), std::abs(t_new))) {
          on_output(static_cast<int>(out_i), std::span<const Var<T>>(y_new.data(), P));
        } else {
          const double theta = static_cast<double>((to - t) / h);
          interpolate(t, h, theta, yv, std::span<const Var<T>>(k.data(), S * P),
                      std::span<const Var<T>>(y_new.data(), P), std::span<Var<T>>(f1.data(), P),
                      f1_ready, std::span<Var<T>>(out.data(), P));
          on_output(static_cast<int>(out_i), std::span<const Var<T>>(out.data(), P));
        }
        ++out_i;
      }
      if (flat) {
        copy_into(std::span<const Var<T>>(y_new.data(), P), next);
        if (tab_.fsal) copy_into(std::span<const Var<T>>(k.data() + (S - 1) * P, P), carry);
      } else {
        scope.commit();
        for (int p = 0; p < P; ++p) {
          y[p] = y_new[p];
          if (tab_.fsal) k1[p] = k[(S - 1) * P + p];
        }
      }
      have_k1 = tab_.fsal;

      if (!fixed) {
        double fac = std::pow(std::max(err, 1e-10), expo) / std::pow(err_prev, ctl_.pi_beta);
        fac = std::clamp(fac / ctl_.safety, 1.0 / ctl_.max_factor, 1.0 / ctl_.min_factor);
        T h_next = h / static_cast<T>(fac);
        if (last_rejected && std::abs(h_next) > std::abs(h)) h_next = h;  // no growth after a rejection
        err_prev = std::max(err, 1e-4);
        last_rejected = false;
        h = h_next;
      }
    }  // the step's scratch is rewound here in kFlat mode
    if (flat) {
      const T* start[kMaxPieces];
      for (int p = 0; p < P; ++p) start[p] = cur[p];
      on_accept(t, h_step, t_new, std::span<const T* const>(start, P));
      for (int p = 0; p < P; ++p) std::swap(cur[p], next[p]);
    }
    t = t_new;
  }
  if (out_i != outs.size()) {
    fail(t, "internal: output times beyond the end of integration");
  }
  if (flat) {
    bind(y1_out, cur);
  } else {
    for (int p = 0; p < P; ++p) y1_out[p] = y[p];
  }
}

template class RkEngine<float>;
template class RkEngine<double>;

}  // namespace anode::ode::internal
