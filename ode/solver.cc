// odeint: validation, dispatch, and the backprop (discretize-then-optimize)
// method. The other gradient methods live in a file each (adjoint.cc,
// checkpoint.cc, ...); all share the driver (driver.h) and its controller.
#include "ode/solver.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>

#include "autodiff/ops.h"
#include "ode/internal.h"

namespace anode::ode {

Gradient parse_gradient(std::string_view name) {
  if (name == "backprop") return Gradient::kBackprop;
  if (name == "adjoint") return Gradient::kAdjoint;
  if (name == "checkpoint") return Gradient::kCheckpoint;
  if (name == "interpolating") return Gradient::kInterpolating;
  if (name == "interpolating_checkpoint") return Gradient::kInterpolatingCheckpoint;
  if (name == "quadrature") return Gradient::kQuadrature;
  if (name == "binomial") return Gradient::kBinomial;
  if (name == "symplectic") return Gradient::kSymplectic;
  throw std::invalid_argument("unknown gradient method '" + std::string(name) +
                              "' (known: backprop, adjoint, checkpoint, interpolating, "
                              "interpolating_checkpoint, quadrature, binomial, symplectic)");
}

bool is_adjoint_family(Gradient g) {
  return g == Gradient::kAdjoint || g == Gradient::kInterpolating || g == Gradient::kInterpolatingCheckpoint ||
         g == Gradient::kQuadrature;
}

const char* gradient_name(Gradient g) {
  switch (g) {
    case Gradient::kBackprop: return "backprop";
    case Gradient::kAdjoint: return "adjoint";
    case Gradient::kCheckpoint: return "checkpoint";
    case Gradient::kInterpolating: return "interpolating";
    case Gradient::kInterpolatingCheckpoint: return "interpolating_checkpoint";
    case Gradient::kQuadrature: return "quadrature";
    case Gradient::kBinomial: return "binomial";
    case Gradient::kSymplectic: return "symplectic";
  }
  return "?";
}

SolveStats& SolveStats::operator+=(const SolveStats& o) {
  nfe_forward += o.nfe_forward;
  nfe_backward += o.nfe_backward;
  accepted += o.accepted;
  rejected += o.rejected;
  accepted_backward += o.accepted_backward;
  rejected_backward += o.rejected_backward;
  recomputed += o.recomputed;
  return *this;
}

namespace internal {

Shape output_shape(const Shape& state, std::size_t outputs) {
  if (outputs == 1) return state;
  Index dims[kMaxRank] = {static_cast<Index>(outputs)};
  for (int i = 0; i < state.rank(); ++i) dims[i + 1] = state[i];
  return Shape(std::span<const Index>(dims, state.rank() + 1));
}

template <class T>
void check_solve(const char* what, Var<T> h0, std::span<const T> times, const SolverOptions& o) {
  auto fail = [&](T t, const std::string& cause) { solve_failed<T>(what, t, cause); };
  const T t0 = times.empty() ? T(0) : times[0];
  if (!h0.valid()) fail(t0, "the initial state is an empty Var");
  if (h0.size() == 0) fail(t0, "the initial state " + h0.shape().str() + " is empty");
  if (times.size() < 2) {
    fail(t0, "need at least two times (start and end), got " + std::to_string(times.size()));
  }
  for (std::size_t i = 0; i < times.size(); ++i) {
    if (!std::isfinite(times[i])) fail(t0, "times[" + std::to_string(i) + "] is not finite");
  }
  const bool up = times[1] > times[0];
  for (std::size_t i = 1; i < times.size(); ++i) {
    if (up ? !(times[i] > times[i - 1]) : !(times[i] < times[i - 1])) {
      std::ostringstream m;
      m << "times must be strictly " << (up ? "increasing" : "decreasing") << ", but times[" << i
        << "] = " << times[i] << " follows times[" << i - 1 << "] = " << times[i - 1];
      fail(times[i - 1], m.str());
    }
  }
  if (times.size() > 2 && h0.shape().rank() >= kMaxRank) {
    fail(t0, "several output times need a state of rank <= 3, got " + h0.shape().str());
  }
  const Tableau& tab = tableau(o.method);
  const bool fixed = o.steps > 0 || o.step_size > 0 || !tab.adaptive();
  // NaN is never a meaningful setting, used or not: every comparison below is
  // written so that NaN fails it, and infinities are refused where a finite
  // number is meant.
  auto out_of_range = [&](const char* name, double v, const char* need) {
    std::ostringstream m;
    m.precision(6);
    m << name << " must be " << need << ", got " << v;
    fail(t0, m.str());
  };
  auto finite_at_least = [&](const char* name, double v, double lo, bool strict, const char* need) {
    if (!std::isfinite(v) || (strict ? !(v > lo) : !(v >= lo))) out_of_range(name, v, need);
  };
  if (o.steps < 0) fail(t0, "steps must be >= 0, got " + std::to_string(o.steps));
  finite_at_least("step_size", o.step_size, 0, false, "finite and >= 0");
  if (!tab.adaptive() && o.steps == 0 && o.step_size == 0) {
    fail(t0, "a fixed-step method needs steps > 0 or step_size > 0");
  }
  // Fixed-step solves are capped too (steps, or span / step_size).
  if (o.max_steps < 1) fail(t0, "max_steps must be >= 1, got " + std::to_string(o.max_steps));
  if (times.size() - 1 > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    fail(t0, "too many output times (" + std::to_string(times.size() - 1) + ")");
  }
  if (!fixed || std::isnan(o.rtol) || std::isnan(o.atol)) {
    if (!(o.rtol > 0) || !(o.atol > 0) || !std::isfinite(o.rtol) || !std::isfinite(o.atol)) {
      std::ostringstream m;
      m << "rtol and atol must be finite and > 0 (got rtol = " << o.rtol << ", atol = " << o.atol << ")";
      fail(t0, m.str());
    }
  }
  finite_at_least("first_step", o.first_step, 0, false, "finite and >= 0 (0: automatic)");
  finite_at_least("min_step", o.min_step, 0, false, "finite and >= 0");
  if (!(o.safety > 0 && o.safety <= 1)) out_of_range("safety", o.safety, "in (0, 1]");
  if (!(o.min_factor > 0 && o.min_factor < 1)) out_of_range("min_factor", o.min_factor, "in (0, 1)");
  finite_at_least("max_factor", o.max_factor, 1, true, "finite and > 1");
  // The PI controller needs a positive exponent on the current error
  // (a = 1/k - 0.75 beta, k as in the engine), else errors grow the step.
  const double k = std::min(tab.order, std::max(tab.error_order, 1)) + 1;
  const double beta_max = 1.0 / (0.75 * k);
  if (!(o.pi_beta >= 0 && o.pi_beta < beta_max)) {
    std::ostringstream need;
    need.precision(4);
    need << "in [0, " << beta_max << ") for " << tab.name;
    out_of_range("pi_beta", o.pi_beta, need.str().c_str());
  }
  if (is_adjoint_family(o.gradient) || std::isnan(o.adjoint_rtol) || std::isnan(o.adjoint_atol)) {
    finite_at_least("adjoint_rtol", o.adjoint_rtol, 0, false, "finite and >= 0 (0: use rtol and atol)");
    finite_at_least("adjoint_atol", o.adjoint_atol, 0, false, "finite and >= 0 (0: use rtol and atol)");
  }
  if (o.gradient == Gradient::kCheckpoint && (o.checkpoint_states < 0 || o.checkpoint_states == 1)) {
    fail(t0, "checkpoint_states must be 0 (keep all) or >= 2, got " + std::to_string(o.checkpoint_states));
  }
  if (o.gradient == Gradient::kBinomial && o.checkpoint_states < 0) {
    fail(t0, "checkpoint_states (the binomial budget) must be >= 0 (0: a state per step), got " +
                 std::to_string(o.checkpoint_states));
  }
}

template <class T>
int param_index(const SolveRecord<T>& r, const Parameter<T>* p, const char* what) {
  for (int i = 0; i < r.nparams; ++i) {
    if (r.params[i] == p) return i;
  }
  throw SolverError(std::string(what) + ": in the backward pass the dynamics used parameter '" +
                    p->name() + "', which it did not use in the forward solve (dynamics whose "
                    "parameters depend on more than t and h cannot use this gradient method)");
}

template <class T>
void check_captured(const SolveRecord<T>& r, Tape<T>& tape, std::span<const std::int32_t> found,
                    const char* what) {
  for (std::int32_t id : found) {
    if (std::find(r.captured, r.captured + r.ncaptured, id) != r.captured + r.ncaptured) continue;
    throw SolverError(std::string(what) + ": in the backward pass the dynamics read a differentiable "
                      "value of shape " + tape.slot(id).shape.str() + " recorded outside it, which it "
                      "did not read in the forward solve; pass it as a Parameter, detach() it, or use "
                      "gradient = backprop");
  }
}

namespace {

template <class T>
ParamLog<T>& scratch_param_log() {
  thread_local ParamLog<T> log;
  return log;
}

// One Reads per nesting depth of solves on this thread.
template <class T>
struct ReadsPool {
  std::vector<std::unique_ptr<Reads<T>>> items;
  std::size_t depth = 0;
};

template <class T>
ReadsPool<T>& reads_pool() {
  thread_local ReadsPool<T> pool;
  return pool;
}

}  // namespace

template <class T>
ReadsLease<T>::ReadsLease() {
  ReadsPool<T>& pool = reads_pool<T>();
  if (pool.depth == pool.items.size()) pool.items.push_back(std::make_unique<Reads<T>>());
  reads_ = pool.items[pool.depth++].get();
}

template <class T>
ReadsLease<T>::~ReadsLease() {
  --reads_pool<T>().depth;
}

template <class T>
Watching<T>::Watching(Tape<T>& tape, ReadWatch* watch)
    : tape_(tape), log_(scratch_param_log<T>()), base_(log_.entries.size()),
      outer_log_(tape.param_log()), outer_watch_(tape.set_read_watch(nullptr)) {
  tape.set_param_log(&log_);
  tape.set_read_watch(watch != nullptr ? watch : outer_watch_);
}

template <class T>
void Watching<T>::stop() {
  if (stopped_) return;
  tape_.set_param_log(outer_log_);
  tape_.set_read_watch(outer_watch_);
  stopped_ = true;
}

template <class T>
Watching<T>::~Watching() {
  stop();
  log_.entries.resize(base_);
}

template <class T>
std::span<const typename ParamLog<T>::Entry> Watching<T>::entries() const {
  return std::span<const typename ParamLog<T>::Entry>(log_.entries).subspan(base_);
}

template <class T>
Var<T> solve_flat(Tape<T>& tape, Dynamics<T>& f, Var<T> h0, std::span<const T> times,
                  const SolverOptions& o, SolveStats& stats, Reads<T>* reads, StepStore<T>* store,
                  bool keep_scratch) {
  const Tableau& tab = tableau(o.method);
  const std::size_t K = times.size() - 1;
  const Index n = h0.size();
  auto [y, out] = tape.make_output(output_shape(h0.shape(), K));
  std::optional<typename Tape<T>::Scope> scope;
  if (!keep_scratch) scope.emplace(tape);
  PrimalSystem<T> sys(f, reads);
  Driver<T> driver(tape, sys, tab, forward_control(o), Keep::kFlat, tab.name, forward_counters(stats));
  Var<T> last;
  T* const dst = out;  // (clang 14 cannot capture a structured binding)
  driver.integrate(
      times[0], times[K], std::span<const Var<T>>(&h0, 1), times.subspan(1),
      [&](int i, std::span<const Var<T>> v) { std::memcpy(dst + i * n, v[0].data(), sizeof(T) * n); },
      store, std::span<Var<T>>(&last, 1));
  return y;
}

template <class T>
bool may_need_gradient(Dynamics<T>& f, Var<T> h0, T t0) {
  if (h0.requires_grad() || !f.parameters().empty()) return true;
  Tape<T>& tape = h0.tape();
  ReadsLease<T> reads;
  typename Tape<T>::Scope scope(tape);
  typename Tape<T>::NoGradGuard no_grad(tape);
  reads->reset(static_cast<std::int32_t>(tape.num_slots()), {});
  Watching<T> watching(tape, &reads->watch);
  f(t0, h0);
  return !watching.entries().empty() || !reads->captured.empty();
}

#define ANODE_INSTANTIATE(T)                                                                        \
  template void check_solve<T>(const char*, Var<T>, std::span<const T>, const SolverOptions&);      \
  template int param_index<T>(const SolveRecord<T>&, const Parameter<T>*, const char*);             \
  template void check_captured<T>(const SolveRecord<T>&, Tape<T>&, std::span<const std::int32_t>,   \
                                  const char*);                                                     \
  template class ReadsLease<T>;                                                                     \
  template bool may_need_gradient<T>(Dynamics<T>&, Var<T>, T);                                      \
  template class Watching<T>;                                                                       \
  template Var<T> solve_flat<T>(Tape<T>&, Dynamics<T>&, Var<T>, std::span<const T>,                 \
                                const SolverOptions&, SolveStats&, Reads<T>*, StepStore<T>*, bool);
ANODE_INSTANTIATE(float)
ANODE_INSTANTIATE(double)
#undef ANODE_INSTANTIATE

namespace {

// Backprop records every step, unless nothing in the solve can need a
// gradient: under NoGradGuard, or when h0 is data and f reads no parameter
// and no captured differentiable value (may_need_gradient). Then the solve
// runs as the other methods' forward does, keeping nothing per step, and
// still watching: if f reads something after all, it is run again, recorded.
template <class T>
Var<T> odeint_backprop(Dynamics<T>& f, Var<T> h0, std::span<const T> times, const SolverOptions& o,
                       SolveStats* stats) {
  Tape<T>& tape = h0.tape();
  const Tableau& tab = tableau(o.method);
  SolveStats local;
  SolveStats& st = stats ? *stats : local;
  st.reset();
  if (!tape.recording()) return solve_flat<T>(tape, f, h0, times, o, st, nullptr, nullptr, false);
  if (!may_need_gradient(f, h0, times[0])) {
    ReadsLease<T> reads;
    reads->reset(static_cast<std::int32_t>(tape.num_slots()), f.parameters());
    Var<T> y = solve_flat<T>(tape, f, h0, times, o, st, &*reads, nullptr, false);
    if (!reads->any()) return y;
    st.reset();
  }
  PrimalSystem<T> sys(f);
  Driver<T> driver(tape, sys, tab, forward_control(o), Keep::kRecord, tab.name, forward_counters(st));
  const std::size_t K = times.size() - 1;
  Var<T>* outs = arena_array<Var<T>>(tape, K);
  Var<T> last;
  driver.integrate(
      times[0], times[K], std::span<const Var<T>>(&h0, 1), times.subspan(1),
      [&](int i, std::span<const Var<T>> y) { outs[i] = y[0]; }, nullptr, std::span<Var<T>>(&last, 1));
  if (K == 1) return outs[0];
  return stack<T>(std::span<const Var<T>>(outs, K));
}

}  // namespace
}  // namespace internal

template <class T>
Var<T> odeint(Dynamics<T>& f, Var<T> h0, std::span<const T> times, const SolverOptions& options,
              SolveStats* stats) {
  const char* what = tableau(options.method).name;
  internal::check_solve(what, h0, times, options);
  switch (options.gradient) {
    case Gradient::kBackprop: return internal::odeint_backprop(f, h0, times, options, stats);
    case Gradient::kAdjoint: return internal::odeint_adjoint(f, h0, times, Var<T>(), options, stats);
    case Gradient::kCheckpoint: return internal::odeint_checkpoint(f, h0, times, options, stats);
    case Gradient::kInterpolating:
    case Gradient::kInterpolatingCheckpoint:
      return internal::odeint_interpolating(f, h0, times, Var<T>(), options, stats);
    case Gradient::kQuadrature: return internal::odeint_quadrature(f, h0, times, Var<T>(), options, stats);
    case Gradient::kBinomial: return internal::odeint_binomial(f, h0, times, Var<T>(), options, stats);
    case Gradient::kSymplectic: return internal::odeint_symplectic(f, h0, times, Var<T>(), options, stats);
  }
  throw SolverError("odeint: unknown gradient method");
}

template <class T>
Var<T> odeint(Dynamics<T>& f, Var<T> h0, T t0, Var<T> t1, const SolverOptions& options,
              SolveStats* stats) {
  const char* what = tableau(options.method).name;
  if (!t1.valid() || t1.size() != 1) {
    throw SolverError(std::string(what) + ": the end time must be a one-element Var");
  }
  const T times[2] = {t0, t1.data()[0]};
  internal::check_solve(what, h0, std::span<const T>(times, 2), options);
  const std::span<const T> ts(times, 2);
  switch (options.gradient) {
    case Gradient::kAdjoint: return internal::odeint_adjoint(f, h0, ts, t1, options, stats);
    case Gradient::kInterpolating:
    case Gradient::kInterpolatingCheckpoint: return internal::odeint_interpolating(f, h0, ts, t1, options, stats);
    case Gradient::kQuadrature: return internal::odeint_quadrature(f, h0, ts, t1, options, stats);
    case Gradient::kBinomial: return internal::odeint_binomial(f, h0, ts, t1, options, stats);
    case Gradient::kSymplectic: return internal::odeint_symplectic(f, h0, ts, t1, options, stats);
    default:
      throw SolverError(std::string(what) + ": gradients with respect to the end time need an adjoint-family "
                        "gradient (adjoint, interpolating, interpolating_checkpoint, quadrature), binomial or "
                        "symplectic (got " + gradient_name(options.gradient) + ")");
  }
}

template Var<float> odeint<float>(Dynamics<float>&, Var<float>, std::span<const float>,
                                  const SolverOptions&, SolveStats*);
template Var<double> odeint<double>(Dynamics<double>&, Var<double>, std::span<const double>,
                                    const SolverOptions&, SolveStats*);
template Var<float> odeint<float>(Dynamics<float>&, Var<float>, float, Var<float>,
                                  const SolverOptions&, SolveStats*);
template Var<double> odeint<double>(Dynamics<double>&, Var<double>, double, Var<double>,
                                    const SolverOptions&, SolveStats*);

}  // namespace anode::ode
