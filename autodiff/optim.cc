#include "autodiff/optim.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>

#include "autodiff/errors.h"
#include "autodiff/kernels.h"

namespace anode {
namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

// Throws "Adam: option beta1 = 1.5 must be in [0, 1)" unless ok. NaN fails
// every rule because the rules are written as positive comparisons.
void require(bool ok, std::string_view who, std::string_view option, double value,
             std::string_view rule) {
  if (!ok) {
    throw ValueError(std::string(who) + ": option " + std::string(option) + " = " + num(value) +
                     " must be " + std::string(rule));
  }
}

void check_lr(std::string_view who, double lr, bool allow_zero) {
  bool ok = std::isfinite(lr) && (allow_zero ? lr >= 0 : lr > 0);
  require(ok, who, "lr", lr, allow_zero ? "finite and >= 0" : "finite and > 0");
}

template <class T>
void check_params(const std::vector<Parameter<T>*>& params, std::string_view who) {
  if (params.empty()) throw ValueError(std::string(who) + ": the parameter list is empty");
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (params[i] == nullptr) {
      throw ValueError(std::string(who) + ": parameter " + std::to_string(i) + " is null");
    }
  }
  std::vector<Parameter<T>*> sorted = params;
  std::sort(sorted.begin(), sorted.end());
  auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  if (dup != sorted.end()) {
    throw ValueError(std::string(who) + ": parameter '" + (*dup)->name() +
                     "' is listed more than once");
  }
}

void check_line_search(const LineSearchOptions& o, std::string_view who, std::string_view prefix) {
  auto fail = [&](const char* field, double value, const std::string& rule) {
    require(false, who, std::string(prefix) + field, value, rule);
  };
  if (!(o.c1 > 0 && o.c1 < 1)) fail("c1", o.c1, "in (0, 1)");
  if (!(o.c2 >= o.c1 && o.c2 < 1)) fail("c2", o.c2, "in [c1, 1) with c1 = " + num(o.c1));
  if (!(o.max_evaluations >= 1)) fail("max_evaluations", o.max_evaluations, ">= 1");
  if (!(o.interval_tolerance >= 0)) fail("interval_tolerance", o.interval_tolerance, ">= 0");
  if (!(o.max_step > 0)) fail("max_step", o.max_step, "> 0");
}

// Minimizer of the cubic through (a, fa, ga) and (b, fb, gb) (Nocedal & Wright
// eq. 3.59), clamped to [lo, hi]; `fallback` if the cubic has no minimizer
// or the arithmetic overflows.
double cubic_min(double a, double fa, double ga, double b, double fb, double gb, double lo,
                 double hi, double fallback) {
  const double d1 = ga + gb - 3 * (fa - fb) / (a - b);
  const double disc = d1 * d1 - ga * gb;
  if (!(disc >= 0) || !std::isfinite(disc)) return fallback;
  const double d2 = b >= a ? std::sqrt(disc) : -std::sqrt(disc);
  const double t = b - (b - a) * (gb + d2 - d1) / (gb - ga + 2 * d2);
  if (!std::isfinite(t)) return fallback;
  return std::clamp(t, lo, hi);
}

}  // namespace

// ---- Optimizer ------------------------------------------------------------------

template <class T>
Optimizer<T>::Optimizer(std::vector<Parameter<T>*> params, std::string_view who)
    : params_(std::move(params)) {
  check_params(params_, who);
}

template <class T>
void Optimizer<T>::zero_grad() {
  for (Parameter<T>* p : params_) p->zero_grad();
}

template <class T>
bool Optimizer<T>::grads_finite() const {
  for (const Parameter<T>* p : params_) {
    if (!kernels::all_finite(p->grad().data(), p->size())) return false;
  }
  return true;
}

// ---- Sgd ----------------------------------------------------------------------------

template <class T>
Sgd<T>::Sgd(std::vector<Parameter<T>*> params, const SgdOptions& options)
    : Optimizer<T>(std::move(params), "Sgd"), options_(options) {
  const SgdOptions& o = options_;
  check_lr("Sgd", o.lr, false);
  require(o.momentum >= 0 && o.momentum < 1, "Sgd", "momentum", o.momentum, "in [0, 1)");
  require(o.dampening >= 0 && o.dampening <= 1, "Sgd", "dampening", o.dampening, "in [0, 1]");
  require(o.weight_decay >= 0 && std::isfinite(o.weight_decay), "Sgd", "weight_decay",
          o.weight_decay, "finite and >= 0");
  if (o.nesterov) {
    require(o.momentum > 0, "Sgd", "momentum", o.momentum, "> 0 with nesterov");
    require(o.dampening == 0, "Sgd", "dampening", o.dampening, "0 with nesterov");
  }
  if (o.momentum > 0) {
    momentum_.reserve(this->params_.size());
    for (Parameter<T>* p : this->params_) momentum_.emplace_back(p->shape());
  }
}

template <class T>
void Sgd<T>::set_lr(double lr) {
  check_lr("Sgd::set_lr", lr, true);
  options_.lr = lr;
}

template <class T>
void Sgd<T>::step() {
  const bool first = this->step_count_ == 0;
  ++this->step_count_;
  // PyTorch's Python-float scalars, rounded to T once.
  const T neg_lr = static_cast<T>(-options_.lr);
  const T wd = static_cast<T>(options_.weight_decay);
  const T mu = static_cast<T>(options_.momentum);
  const T keep = static_cast<T>(1 - options_.dampening);
  const bool decay = options_.weight_decay != 0;
  const bool nesterov = options_.nesterov;
  for (std::size_t k = 0; k < this->params_.size(); ++k) {
    Parameter<T>& p = *this->params_[k];
    T* x = p.value().data();
    const T* g = p.grad().data();
    const Index n = p.size();
    if (momentum_.empty()) {
      if (!decay) {
        kernels::axpy(neg_lr, g, x, n);
        continue;
      }
      for (Index i = 0; i < n; ++i) x[i] = x[i] + neg_lr * (g[i] + wd * x[i]);
      continue;
    }
    // One fused pass (the flags are loop-invariant; -O3 unswitches them).
    T* b = momentum_[k].data();
    for (Index i = 0; i < n; ++i) {
      T gi = decay ? g[i] + wd * x[i] : g[i];
      b[i] = first ? gi : b[i] * mu + keep * gi;
      T u = nesterov ? gi + mu * b[i] : b[i];
      x[i] = x[i] + neg_lr * u;
    }
  }
}

// ---- Adam ---------------------------------------------------------------------------

template <class T>
Adam<T>::Adam(std::vector<Parameter<T>*> params, const AdamOptions& options)
    : Optimizer<T>(std::move(params), "Adam"), options_(options) {
  const AdamOptions& o = options_;
  check_lr("Adam", o.lr, false);
  require(o.beta1 >= 0 && o.beta1 < 1, "Adam", "beta1", o.beta1, "in [0, 1)");
  require(o.beta2 >= 0 && o.beta2 < 1, "Adam", "beta2", o.beta2, "in [0, 1)");
  require(o.eps > 0 && std::isfinite(o.eps), "Adam", "eps", o.eps, "finite and > 0");
  require(o.weight_decay >= 0 && std::isfinite(o.weight_decay), "Adam", "weight_decay",
          o.weight_decay, "finite and >= 0");
  m_.reserve(this->params_.size());
  v_.reserve(this->params_.size());
  for (Parameter<T>* p : this->params_) {
    m_.emplace_back(p->shape());
    v_.emplace_back(p->shape());
  }
}

template <class T>
void Adam<T>::set_lr(double lr) {
  check_lr("Adam::set_lr", lr, true);
  options_.lr = lr;
}

namespace {

// One Adam / AdamW step over every parameter (torch/optim/adam.py and
// adamw.py, single-tensor path); t is the step number after the increment.
template <class T>
void adam_update(const std::vector<Parameter<T>*>& params, std::vector<Tensor<T>>& m_state,
                 std::vector<Tensor<T>>& v_state, double t, double lr, double beta1,
                 double beta2, double eps_d, double weight_decay, bool decoupled_decay) {
  // Scalars exactly as torch/optim/adam.py computes them in Python floats.
  const double bias1 = 1 - std::pow(beta1, t);
  const double bias2 = 1 - std::pow(beta2, t);
  const T neg_step = static_cast<T>(-(lr / bias1));
  const T bias2_sqrt = static_cast<T>(std::sqrt(bias2));
  const T w1 = static_cast<T>(1 - beta1);  // lerp weight
  const T b2 = static_cast<T>(beta2);
  const T c2 = static_cast<T>(1 - beta2);
  const T eps = static_cast<T>(eps_d);
  const T wd = static_cast<T>(weight_decay);
  const bool coupled = weight_decay != 0 && !decoupled_decay;
  const bool decoupled = weight_decay != 0 && decoupled_decay;
  const T decay = static_cast<T>(1 - lr * weight_decay);
  // at::lerp switches formula at weight 0.5 for accuracy; follow it.
  const bool small_w = w1 < T(0.5);
  const T one_minus_w1 = T(1) - w1;
  for (std::size_t k = 0; k < params.size(); ++k) {
    Parameter<T>& p = *params[k];
    T* x = p.value().data();
    const T* g = p.grad().data();
    T* m = m_state[k].data();
    T* v = v_state[k].data();
    const Index n = p.size();
    // One fused pass over the parameter in PyTorch's order of operations:
    // grad.add(param, wd); exp_avg.lerp_; exp_avg_sq.mul_(b2).addcmul_;
    // denom = sqrt(v) / bias2_sqrt + eps; param.addcdiv_(m, denom, -step).
    for (Index i = 0; i < n; ++i) {
      if (decoupled) x[i] = x[i] * decay;
      const T gi = coupled ? g[i] + wd * x[i] : g[i];
      m[i] = small_w ? m[i] + w1 * (gi - m[i]) : gi - (gi - m[i]) * one_minus_w1;
      v[i] = v[i] * b2;
      v[i] = v[i] + c2 * gi * gi;
      const T denom = std::sqrt(v[i]) / bias2_sqrt + eps;
      x[i] = x[i] + neg_step * m[i] / denom;
    }
  }
}

template <class T>
void allocate_like(const std::vector<Parameter<T>*>& params, std::vector<Tensor<T>>& state) {
  state.reserve(params.size());
  for (Parameter<T>* p : params) state.emplace_back(p->shape());
}

}  // namespace

template <class T>
void Adam<T>::step() {
  const AdamOptions& o = options_;
  const double t = static_cast<double>(++this->step_count_);
  adam_update(this->params_, m_, v_, t, o.lr, o.beta1, o.beta2, o.eps, o.weight_decay,
              o.decoupled_weight_decay);
}

// ---- AdamW --------------------------------------------------------------------------

template <class T>
AdamW<T>::AdamW(std::vector<Parameter<T>*> params, const AdamWOptions& options)
    : Optimizer<T>(std::move(params), "AdamW"), options_(options) {
  const AdamWOptions& o = options_;
  check_lr("AdamW", o.lr, false);
  require(o.beta1 >= 0 && o.beta1 < 1, "AdamW", "beta1", o.beta1, "in [0, 1)");
  require(o.beta2 >= 0 && o.beta2 < 1, "AdamW", "beta2", o.beta2, "in [0, 1)");
  require(o.eps > 0 && std::isfinite(o.eps), "AdamW", "eps", o.eps, "finite and > 0");
  require(o.weight_decay >= 0 && std::isfinite(o.weight_decay), "AdamW", "weight_decay",
          o.weight_decay, "finite and >= 0");
  allocate_like(this->params_, m_);
  allocate_like(this->params_, v_);
}

template <class T>
void AdamW<T>::set_lr(double lr) {
  check_lr("AdamW::set_lr", lr, true);
  options_.lr = lr;
}

template <class T>
void AdamW<T>::step() {
  const AdamWOptions& o = options_;
  const double t = static_cast<double>(++this->step_count_);
  adam_update(this->params_, m_, v_, t, o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, true);
}

// ---- RMSprop ------------------------------------------------------------------------

template <class T>
Rmsprop<T>::Rmsprop(std::vector<Parameter<T>*> params, const RmspropOptions& options)
    : Optimizer<T>(std::move(params), "Rmsprop"), options_(options) {
  const RmspropOptions& o = options_;
  check_lr("Rmsprop", o.lr, false);
  require(o.alpha >= 0 && o.alpha < 1, "Rmsprop", "alpha", o.alpha, "in [0, 1)");
  require(o.eps > 0 && std::isfinite(o.eps), "Rmsprop", "eps", o.eps, "finite and > 0");
  require(o.weight_decay >= 0 && std::isfinite(o.weight_decay), "Rmsprop", "weight_decay",
          o.weight_decay, "finite and >= 0");
  require(o.momentum >= 0 && o.momentum < 1, "Rmsprop", "momentum", o.momentum, "in [0, 1)");
  allocate_like(this->params_, square_avg_);
  if (o.centered) allocate_like(this->params_, grad_avg_);
  if (o.momentum > 0) allocate_like(this->params_, momentum_);
}

template <class T>
void Rmsprop<T>::set_lr(double lr) {
  check_lr("Rmsprop::set_lr", lr, true);
  options_.lr = lr;
}

template <class T>
void Rmsprop<T>::step() {
  const RmspropOptions& o = options_;
  ++this->step_count_;
  const T neg_lr = static_cast<T>(-o.lr);
  const T alpha = static_cast<T>(o.alpha);
  const T c = static_cast<T>(1 - o.alpha);
  const T eps = static_cast<T>(o.eps);
  const T wd = static_cast<T>(o.weight_decay);
  const T mu = static_cast<T>(o.momentum);
  const bool decay = o.weight_decay != 0;
  const bool centered = o.centered;
  const bool momentum = o.momentum > 0;
  for (std::size_t k = 0; k < this->params_.size(); ++k) {
    Parameter<T>& p = *this->params_[k];
    T* x = p.value().data();
    const T* g = p.grad().data();
    T* v = square_avg_[k].data();
    T* gm = centered ? grad_avg_[k].data() : nullptr;
    T* b = momentum ? momentum_[k].data() : nullptr;
    const Index n = p.size();
    // One fused pass in torch/optim/rmsprop.py's order of operations
    // (square_avg.mul_(alpha).addcmul_; grad_avg.lerp_; avg.add_(eps);
    // buf.mul_(mu).addcdiv_; param.add_ / addcdiv_). The flags are
    // loop-invariant; -O3 unswitches them.
    for (Index i = 0; i < n; ++i) {
      const T gi = decay ? g[i] + wd * x[i] : g[i];
      v[i] = v[i] * alpha;
      v[i] = v[i] + c * gi * gi;
      T avg;
      if (centered) {
        gm[i] = gm[i] + c * (gi - gm[i]);
        avg = std::sqrt(std::max(v[i] - gm[i] * gm[i], T(0))) + eps;
      } else {
        avg = std::sqrt(v[i]) + eps;
      }
      if (momentum) {
        b[i] = b[i] * mu + gi / avg;
        x[i] = x[i] + neg_lr * b[i];
      } else {
        x[i] = x[i] + neg_lr * gi / avg;
      }
    }
  }
}

// ---- Line search -------------------------------------------------------------------

std::string_view to_string(LineSearchStatus status) {
  switch (status) {
    case LineSearchStatus::kConverged: return "converged";
    case LineSearchStatus::kMaxEvaluations: return "max evaluations";
    case LineSearchStatus::kIntervalTooSmall: return "interval too small";
    case LineSearchStatus::kMaxStep: return "max step";
    case LineSearchStatus::kNonFinite: return "non-finite value";
    case LineSearchStatus::kNotDescent: return "not a descent direction";
  }
  return "unknown";
}

LineSearchResult strong_wolfe_line_search(FunctionRef<LinePoint(double)> phi, double phi0,
                                          double dphi0, double t_init,
                                          const LineSearchOptions& options) {
  const LineSearchOptions& o = options;
  check_line_search(o, "strong_wolfe_line_search", "");
  require(std::isfinite(t_init) && t_init > 0, "strong_wolfe_line_search", "t_init", t_init,
          "finite and > 0");
  LineSearchResult r{0, phi0, dphi0, 0, LineSearchStatus::kNotDescent};
  if (!(dphi0 < 0) || !std::isfinite(dphi0) || !std::isfinite(phi0)) return r;

  const double inf = std::numeric_limits<double>::infinity();
  auto eval = [&](double t) {
    ++r.evaluations;
    LinePoint p = phi(t);
    // A NaN/Inf value or slope is a step too long: +inf fails sufficient
    // decrease, so the point becomes the upper end of the bracket.
    if (!std::isfinite(p.phi) || !std::isfinite(p.dphi)) p = {inf, inf};
    return p;
  };
  auto armijo = [&](double t, double f) { return f <= phi0 + o.c1 * t * dphi0; };
  auto curvature = [&](double g) { return std::abs(g) <= -o.c2 * dphi0; };
  auto done = [&](double t, double f, double g, LineSearchStatus s) {
    r.t = t;
    r.phi = f;
    r.dphi = g;
    r.status = s;
    return r;
  };

  // Bracketing (Algorithm 3.5): extrapolate while phi decreases and slopes down.
  double prev = 0, f_prev = phi0, g_prev = dphi0;
  double t = std::min(t_init, o.max_step);
  double lo, f_lo, g_lo, hi, f_hi, g_hi;
  while (true) {
    if (r.evaluations >= o.max_evaluations) {
      return done(prev, f_prev, g_prev, LineSearchStatus::kMaxEvaluations);
    }
    const LinePoint p = eval(t);
    // A point meeting both conditions is accepted before the bracket logic,
    // even if phi ties a previous point: near the minimizer phi differences
    // drown in rounding while the slope still resolves.
    const bool decrease = armijo(t, p.phi);
    if (decrease && curvature(p.dphi)) return done(t, p.phi, p.dphi, LineSearchStatus::kConverged);
    if (!decrease || (prev > 0 && p.phi >= f_prev)) {
      lo = prev, f_lo = f_prev, g_lo = g_prev;
      hi = t, f_hi = p.phi, g_hi = p.dphi;
      break;
    }
    if (p.dphi >= 0) {
      lo = t, f_lo = p.phi, g_lo = p.dphi;
      hi = prev, f_hi = f_prev, g_hi = g_prev;
      break;
    }
    if (t >= o.max_step) return done(t, p.phi, p.dphi, LineSearchStatus::kMaxStep);
    // Both slopes negative: the cubic's minimizer lies beyond t. Keep the
    // step growing geometrically (More & Thuente's [1.1, 4] extrapolation).
    const double step_lo = std::min(t + 1.1 * (t - prev), o.max_step);
    const double step_hi = std::min(t + 4.0 * (t - prev), o.max_step);
    const double next =
        cubic_min(prev, f_prev, g_prev, t, p.phi, p.dphi, step_lo, step_hi, step_hi);
    prev = t, f_prev = p.phi, g_prev = p.dphi;
    t = next;
  }

  // Zoom (Algorithm 3.6). Invariants: lo satisfies sufficient decrease and has
  // the lowest phi of such points; phi'(lo) (hi - lo) < 0.
  while (true) {
    const bool hi_finite = std::isfinite(f_hi);
    auto fail = [&](LineSearchStatus s) {
      return done(lo, f_lo, g_lo, hi_finite ? s : LineSearchStatus::kNonFinite);
    };
    if (r.evaluations >= o.max_evaluations) return fail(LineSearchStatus::kMaxEvaluations);
    const double a = std::min(lo, hi), b = std::max(lo, hi), w = b - a;
    if (w <= o.interval_tolerance * b) return fail(LineSearchStatus::kIntervalTooSmall);
    // Safeguard: stay 10% inside the bracket so it shrinks by >= 10% per
    // evaluation; bisect toward a non-finite end (no slope to interpolate).
    const double mid = 0.5 * (a + b);
    t = hi_finite ? cubic_min(lo, f_lo, g_lo, hi, f_hi, g_hi, a + 0.1 * w, b - 0.1 * w, mid) : mid;
    const LinePoint p = eval(t);
    const bool decrease = armijo(t, p.phi);
    if (decrease && curvature(p.dphi)) return done(t, p.phi, p.dphi, LineSearchStatus::kConverged);
    if (!decrease || p.phi >= f_lo) {
      hi = t, f_hi = p.phi, g_hi = p.dphi;
      continue;
    }
    if (p.dphi * (hi - lo) >= 0) hi = lo, f_hi = f_lo, g_hi = g_lo;
    lo = t, f_lo = p.phi, g_lo = p.dphi;
  }
}

// ---- L-BFGS -----------------------------------------------------------------------

std::string_view to_string(LbfgsStop stop) {
  switch (stop) {
    case LbfgsStop::kGradientTolerance: return "gradient tolerance";
    case LbfgsStop::kLossTolerance: return "loss change tolerance";
    case LbfgsStop::kMaxIterations: return "max iterations";
    case LbfgsStop::kMaxEvaluations: return "max function evaluations";
    case LbfgsStop::kLineSearchFailed: return "line search failed";
    case LbfgsStop::kNonFinite: return "non-finite loss or gradient";
  }
  return "unknown";
}

template <class T>
Lbfgs<T>::Lbfgs(std::vector<Parameter<T>*> params, const LbfgsOptions& options)
    : params_(std::move(params)), options_(options) {
  const char* who = "Lbfgs";
  check_params(params_, who);
  const LbfgsOptions& o = options_;
  require(o.history_size >= 1, who, "history_size", o.history_size, ">= 1");
  require(o.max_iterations >= 1, who, "max_iterations", o.max_iterations, ">= 1");
  require(o.max_evaluations >= 1, who, "max_evaluations", o.max_evaluations, ">= 1");
  require(o.grad_tolerance >= 0, who, "grad_tolerance", o.grad_tolerance, ">= 0");
  require(o.loss_tolerance >= 0, who, "loss_tolerance", o.loss_tolerance, ">= 0");
  check_line_search(o.line_search, who, "line_search.");
  for (Parameter<T>* p : params_) n_ += p->size();
  const Shape vec{n_}, hist{o.history_size, n_}, ring{o.history_size};
  x_ = Tensor<T>(vec);
  g_ = Tensor<T>(vec);
  d_ = Tensor<T>(vec);
  g_trial_ = Tensor<T>(vec);
  g_best_ = Tensor<T>(vec);
  s_ = Tensor<T>(hist);
  y_ = Tensor<T>(hist);
  rho_ = Tensor<T>(ring);
  alpha_ = Tensor<T>(ring);
}

template <class T>
void Lbfgs<T>::reset() {
  head_ = 0;
  count_ = 0;
  gamma_ = 1;
  cached_ = false;
}

template <class T>
void Lbfgs<T>::zero_grad() {
  for (Parameter<T>* p : params_) p->zero_grad();
}

template <class T>
T Lbfgs<T>::evaluate(FunctionRef<T()> closure, T* grad_out) {
  zero_grad();
  const T f = closure();
  for (const Parameter<T>* p : params_) {
    std::memcpy(grad_out, p->grad().data(), sizeof(T) * p->size());
    grad_out += p->size();
  }
  return f;
}

template <class T>
void Lbfgs<T>::write_params(const T* x) {
  for (Parameter<T>* p : params_) {
    std::memcpy(p->value().data(), x, sizeof(T) * p->size());
    x += p->size();
  }
}

template <class T>
void Lbfgs<T>::write_trial(T t) {
  const T* x = x_.data();
  const T* d = d_.data();
  for (Parameter<T>* p : params_) {
    T* v = p->value().data();
    for (Index i = 0; i < p->size(); ++i) v[i] = x[i] + t * d[i];
    x += p->size();
    d += p->size();
  }
}

template <class T>
void Lbfgs<T>::read_params(T* x) const {
  for (const Parameter<T>* p : params_) {
    std::memcpy(x, p->value().data(), sizeof(T) * p->size());
    x += p->size();
  }
}

template <class T>
void Lbfgs<T>::write_grads(const T* g) {
  for (Parameter<T>* p : params_) {
    std::memcpy(p->grad().data(), g, sizeof(T) * p->size());
    g += p->size();
  }
}

template <class T>
bool Lbfgs<T>::params_equal(const T* x) const {
  for (const Parameter<T>* p : params_) {
    if (std::memcmp(x, p->value().data(), sizeof(T) * p->size()) != 0) return false;
    x += p->size();
  }
  return true;
}

// d = -H g by the two-loop recursion over the stored pairs, newest first.
template <class T>
void Lbfgs<T>::direction() {
  const int m = options_.history_size;
  const Index n = n_;
  T* d = d_.data();
  kernels::scale(g_.data(), T(-1), d, n);
  for (int j = 0; j < count_; ++j) {
    const int k = (head_ - 1 - j + m) % m;
    const T a = rho_[k] * kernels::dot(s_.data() + k * n, d, n);
    alpha_[k] = a;
    kernels::axpy(-a, y_.data() + k * n, d, n);
  }
  if (count_ > 0) kernels::scale(d, gamma_, d, n);
  for (int j = count_ - 1; j >= 0; --j) {
    const int k = (head_ - 1 - j + m) % m;
    const T b = rho_[k] * kernels::dot(y_.data() + k * n, d, n);
    kernels::axpy(alpha_[k] - b, s_.data() + k * n, d, n);
  }
}

template <class T>
LbfgsResult Lbfgs<T>::minimize(FunctionRef<T()> closure) {
  return run(closure, options_.max_iterations, false);
}

template <class T>
LbfgsResult Lbfgs<T>::step(FunctionRef<T()> closure) {
  return run(closure, 1, true);
}

template <class T>
LbfgsResult Lbfgs<T>::run(FunctionRef<T()> closure, int max_iterations, bool reuse) {
  const LbfgsOptions& o = options_;
  const Index n = n_;
  const int m = o.history_size;
  LbfgsResult r;
  if (!(reuse && cached_ && params_equal(x_.data()))) {
    cached_ = false;
    read_params(x_.data());
    loss_ = evaluate(closure, g_.data());
    ++r.evaluations;
    if (!std::isfinite(loss_) || !kernels::all_finite(g_.data(), n)) {
      // Parameters untouched; the grads are what the closure produced.
      r.loss = loss_;
      r.grad_norm = kernels::all_finite(g_.data(), n) ? kernels::max_abs(g_.data(), n)
                                                      : std::numeric_limits<double>::quiet_NaN();
      r.reason = LbfgsStop::kNonFinite;
      return r;
    }
    cached_ = true;
  }

  T* trial = g_trial_.data();
  T* best = g_best_.data();
  bool loss_converged = false;
  while (true) {
    if (kernels::max_abs(g_.data(), n) <= o.grad_tolerance) {
      r.reason = LbfgsStop::kGradientTolerance;
      break;
    }
    if (loss_converged) {
      r.reason = LbfgsStop::kLossTolerance;
      break;
    }
    if (r.iterations >= max_iterations) {
      r.reason = LbfgsStop::kMaxIterations;
      break;
    }
    if (r.evaluations >= o.max_evaluations) {
      r.reason = LbfgsStop::kMaxEvaluations;
      break;
    }

    direction();
    double gtd = kernels::dot(g_.data(), d_.data(), n);
    if (!(gtd < 0) || !std::isfinite(gtd)) {
      // Rounding made -Hg uphill: forget the history, use steepest descent.
      head_ = count_ = 0;
      direction();
      gtd = kernels::dot(g_.data(), d_.data(), n);
    }
    const double gnorm2 = std::sqrt(static_cast<double>(kernels::sum_squares(g_.data(), n)));
    // First step (or after a reset): a step of length <= 1 along -g (scaled
    // by max |g_i| instead if |g|^2 overflowed).
    double t_init = count_ == 0 ? std::min(1.0, 1.0 / gnorm2) : 1.0;
    if (!(t_init > 0)) t_init = 1.0 / static_cast<double>(kernels::max_abs(g_.data(), n));

    // phi(t) = loss(x + t d). The trial gradient goes to `trial`; the lowest
    // finite point so far is kept in `best` (pointer swap, no copy).
    T best_f = loss_;
    double best_t = 0, last_t = 0;
    auto phi = [&](double t) -> LinePoint {
      write_trial(static_cast<T>(t));
      last_t = t;
      const T f = evaluate(closure, trial);
      ++r.evaluations;
      const double slope = kernels::dot(trial, d_.data(), n);
      if (std::isfinite(f) && std::isfinite(slope) && f < best_f) {
        std::swap(trial, best);
        best_f = f;
        best_t = t;
      }
      return {static_cast<double>(f), slope};
    };
    LineSearchOptions ls = o.line_search;
    ls.max_evaluations = std::min(ls.max_evaluations, o.max_evaluations - r.evaluations);
    const LineSearchResult s =
        strong_wolfe_line_search(phi, static_cast<double>(loss_), gtd, t_init, ls);

    // The new iterate: the search's Wolfe point when it converged (the last
    // trial: its gradient is in `trial`, or in `best` if it was also the
    // lowest); otherwise the lowest point seen, if it decreased the loss.
    double t_acc = best_t;
    const T* g_acc = best;
    T f_acc = best_f;
    if (s.status == LineSearchStatus::kConverged && s.t != best_t) {
      t_acc = s.t;
      g_acc = trial;
      f_acc = static_cast<T>(s.phi);
    }
    if (t_acc == 0) {  // no decrease along d
      if (last_t != 0) write_params(x_.data());
      if (count_ > 0 && r.evaluations < o.max_evaluations) {
        head_ = count_ = 0;  // retry once along steepest descent
        continue;
      }
      r.reason = r.evaluations >= o.max_evaluations         ? LbfgsStop::kMaxEvaluations
                 : s.status == LineSearchStatus::kNonFinite ? LbfgsStop::kNonFinite
                                                            : LbfgsStop::kLineSearchFailed;
      break;
    }
    if (last_t != t_acc) write_trial(static_cast<T>(t_acc));

    // s = x_new - x, y = g_new - g from the values actually stored.
    const int k = head_;
    T* sk = s_.data() + k * n;
    T* yk = y_.data() + k * n;
    T* x = x_.data();
    for (const Parameter<T>* p : params_) {
      const T* v = p->value().data();
      for (Index i = 0; i < p->size(); ++i) {
        sk[i] = v[i] - x[i];
        x[i] = v[i];
      }
      sk += p->size();
      x += p->size();
    }
    sk = s_.data() + k * n;
    kernels::sub(g_acc, n, g_.data(), n, yk, n);
    std::memcpy(g_.data(), g_acc, sizeof(T) * n);
    const T ys = kernels::dot(sk, yk, n);
    const T yy = kernels::dot(yk, yk, n);
    if (std::isfinite(ys) && std::isfinite(yy) && ys > std::numeric_limits<T>::epsilon() * yy) {
      rho_[k] = T(1) / ys;
      gamma_ = ys / yy;
      head_ = (head_ + 1) % m;
      count_ = std::min(count_ + 1, m);
    }

    const double f_old = loss_, f_new = f_acc;
    loss_ = f_acc;
    ++r.iterations;
    loss_converged = o.loss_tolerance > 0 &&
                     std::abs(f_old - f_new) <=
                         o.loss_tolerance * std::max({std::abs(f_old), std::abs(f_new), 1.0});
  }

  write_grads(g_.data());
  r.loss = loss_;
  r.grad_norm = kernels::max_abs(g_.data(), n);
  return r;
}

template class Optimizer<float>;
template class Optimizer<double>;
template class Sgd<float>;
template class Sgd<double>;
template class Adam<float>;
template class Adam<double>;
template class AdamW<float>;
template class AdamW<double>;
template class Rmsprop<float>;
template class Rmsprop<double>;
template class Lbfgs<float>;
template class Lbfgs<double>;

}  // namespace anode
