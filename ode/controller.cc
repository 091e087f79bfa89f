#include "ode/controller.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <sstream>

namespace anode::ode::internal {

Control forward_control(const SolverOptions& o) {
  return Control{o.rtol,     o.atol,       o.steps,      o.step_size,  o.first_step,
                 o.min_step, o.max_steps,  o.safety,     o.min_factor, o.max_factor,
                 o.pi_beta,  o.reduce_norm, o.reduce_context};
}

Control backward_control(const SolverOptions& o, double span) {
  Control ctl = forward_control(o);
  if (o.adjoint_rtol > 0) ctl.rtol = o.adjoint_rtol;
  if (o.adjoint_atol > 0) ctl.atol = o.adjoint_atol;
  if (ctl.steps > 0) {
    ctl.step_size = span / ctl.steps;
    ctl.steps = 0;
  }
  return ctl;
}

template <class T>
StepController<T>::StepController(const Control& control, RkStep<T>& step, const RkSystem<T>& system)
    : ctl_(control), step_(step), sys_(system), tab_(step.tableau()), pieces_(step.pieces()),
      expo_(1.0 / (std::min(tab_.order, std::max(tab_.error_order, 1)) + 1) - 0.75 * control.pi_beta),
      fixed_(control.fixed() || !tab_.adaptive()) {}

template <class T>
void StepController<T>::start(T t0, T t1) {
  const T span = std::abs(t1 - t0);
  t_end_ = t1;
  err_prev_ = 1e-4;
  last_rejected_ = false;
  nonfinite_ = false;
  min_step_ = std::max<T>(static_cast<T>(ctl_.min_step),
                          4 * std::numeric_limits<T>::epsilon() * std::max({std::abs(t0), std::abs(t1), span}));
  if (!fixed_) return;
  // The count is formed in double and checked against max_steps before any
  // cast (a tiny step_size would overflow the integer), so a fixed-step solve
  // is capped like an adaptive one.
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
    step_.fail(t0, m.str());
  }
  nsteps_ = static_cast<std::int64_t>(count);
  h_fixed_ = (t1 - t0) / static_cast<T>(nsteps_);
  if (!(std::abs(h_fixed_) >= 4 * std::numeric_limits<T>::epsilon() * std::max(std::abs(t0), std::abs(t1)))) {
    std::ostringstream m;
    m << "a fixed step of " << std::abs(h_fixed_) << " is below the resolution of t";
    step_.fail(t0, m.str());
  }
}

template <class T>
double StepController<T>::norm(std::span<double> sums, std::span<double> counts) const {
  if (ctl_.reduce_norm != nullptr) {
    ctl_.reduce_norm(ctl_.reduce_context, sums.data(), counts.data(), static_cast<int>(sums.size()));
  }
  double worst = 0;
  for (std::size_t p = 0; p < sums.size(); ++p) {
    if (counts[p] == 0) continue;
    const double rms = std::sqrt(sums[p] / counts[p]);
    // NaN in any piece is the result (a comparison would let a later finite
    // piece replace it).
    if (std::isnan(rms)) return rms;
    worst = std::max(worst, rms);
  }
  return worst;
}

template <class T>
double StepController<T>::error(std::span<const Var<T>> y0, std::span<const Var<T>> y1,
                                std::span<const Var<T>> k, T h, bool finite) const {
  const int P = pieces_, S = tab_.stages;
  std::array<double, kMaxPieces> sums{}, counts{};
  // A non-finite stage rejects the step even when its error weight is 0 (on
  // every process of a global step control: it sends NaN to the reduction).
  if (!finite) {
    if (ctl_.reduce_norm == nullptr) return std::numeric_limits<double>::quiet_NaN();
    for (int p = 0; p < P; ++p) {
      sums[p] = std::numeric_limits<double>::quiet_NaN();
      counts[p] = 1;
    }
    return norm(std::span<double>(sums.data(), P), std::span<double>(counts.data(), P));
  }
  for (int p = 0; p < P; ++p) {
    if (!sys_.in_norm(p)) continue;
    const Index n = y0[p].size();
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
    sums[p] = sum;
    counts[p] = static_cast<double>(n);
  }
  return norm(std::span<double>(sums.data(), P), std::span<double>(counts.data(), P));
}

template <class T>
double StepController<T>::scaled_norm(std::span<const Var<T>> a, std::span<const Var<T>> b,
                                      std::span<const Var<T>> y0) const {
  const int P = pieces_;
  std::array<double, kMaxPieces> sums{}, counts{};
  for (int p = 0; p < P; ++p) {
    if (!sys_.in_norm(p)) continue;
    const Index n = a[p].size();
    const T* v = a[p].data();
    const T* w = b.empty() ? nullptr : b[p].data();
    const T* y = y0[p].data();
    double sum = 0;
    for (Index i = 0; i < n; ++i) {
      const T x = w != nullptr ? T(v[i] - w[i]) : v[i];
      const double sc = ctl_.atol + ctl_.rtol * std::abs(static_cast<double>(y[i]));
      sum += (static_cast<double>(x) / sc) * (static_cast<double>(x) / sc);
    }
    sums[p] = sum;
    counts[p] = static_cast<double>(n);
  }
  return norm(std::span<double>(sums.data(), P), std::span<double>(counts.data(), P));
}

// Hairer, Norsett & Wanner, Solving ODEs I, Section II.4: a first step from
// the sizes of y0, f0 and a difference estimate of f's derivative.
template <class T>
T StepController<T>::first_step(Tape<T>& tape, T t0, T t1, std::span<const Var<T>> y0,
                                std::span<const Var<T>> f0) {
  const T span = std::abs(t1 - t0);
  const double dir = t1 > t0 ? 1.0 : -1.0;
  if (ctl_.first_step > 0) return static_cast<T>(dir) * std::min<T>(static_cast<T>(ctl_.first_step), span);
  const int P = pieces_;
  const double d0 = scaled_norm(y0, {}, y0), d1 = scaled_norm(f0, {}, y0);
  double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
  h0 = std::min(h0, static_cast<double>(span));
  double d2 = 0;
  bool probe_finite;
  {
    typename Tape<T>::Scope scope(tape);
    typename Tape<T>::NoGradGuard no_grad(tape);
    std::array<Var<T>, kMaxPieces> y1, f1;
    const double unit[1] = {1.0};
    step_.combine(y0, static_cast<T>(dir * h0), unit, 1, f0, std::span<Var<T>>(y1.data(), P));
    probe_finite = step_.eval(t0 + static_cast<T>(dir * h0), std::span<const Var<T>>(y1.data(), P),
                              std::span<Var<T>>(f1.data(), P));
    // Taken also when the probe is not finite (and then unused), so every
    // process reaches norm() alike.
    d2 = scaled_norm(std::span<const Var<T>>(f1.data(), P), f0, y0) / h0;
  }
  double h;
  if (!probe_finite) {
    h = 0.1 * h0;  // f is NaN or Inf a step h0 ahead: start well below it
  } else {
    const double dm = std::max(d1, d2);
    double h1 = dm <= 1e-15 ? std::max(1e-6, h0 * 1e-3) : std::pow(0.01 / dm, 1.0 / (tab_.order + 1));
    h = std::min({100 * h0, h1, static_cast<double>(span)});
  }
  if (!std::isfinite(h) || h <= 0) h = static_cast<double>(span) * 1e-3;
  // The absolute floors above assume double and unit time scales: keep the
  // first step well above the underflow limit (which is relative to t).
  h = std::min(static_cast<double>(span), std::max(h, 100.0 * static_cast<double>(min_step_)));
  return static_cast<T>(dir * h);
}

template <class T>
void StepController<T>::check_attempt(T t, T h, std::int64_t taken) const {
  if (taken >= ctl_.max_steps) {
    step_.fail(t, "max_steps (" + std::to_string(ctl_.max_steps) + ") exceeded before reaching t = " +
                      std::to_string(static_cast<double>(t_end_)));
  }
  if (std::abs(h) < min_step_) {
    std::ostringstream m;
    m << "step size " << std::abs(h) << " fell below the minimum " << min_step_
      << (nonfinite_ ? " (the state became NaN or Inf on the rejected attempts)"
                     : " (stiff or singular dynamics?)");
    step_.fail(t, m.str());
  }
}

template <class T>
bool StepController<T>::adapt(double err, T& h) {
  if (!(err <= 1.0)) {  // rejected (also when err is NaN)
    nonfinite_ = !std::isfinite(err);
    const double fac = nonfinite_ ? ctl_.min_factor : std::max(ctl_.min_factor, ctl_.safety * std::pow(err, -expo_));
    h *= static_cast<T>(std::min(fac, 1.0));
    last_rejected_ = true;
    return false;
  }
  nonfinite_ = false;
  double fac = std::pow(std::max(err, 1e-10), expo_) / std::pow(err_prev_, ctl_.pi_beta);
  fac = std::clamp(fac / ctl_.safety, 1.0 / ctl_.max_factor, 1.0 / ctl_.min_factor);
  T h_next = h / static_cast<T>(fac);
  if (last_rejected_ && std::abs(h_next) > std::abs(h)) h_next = h;  // no growth after a rejection
  err_prev_ = std::max(err, 1e-4);
  last_rejected_ = false;
  h = h_next;
  return true;
}

template class StepController<float>;
template class StepController<double>;

}  // namespace anode::ode::internal
