// The quadrature adjoint (SciMLSensitivity's QuadratureAdjoint / GaussAdjoint):
// the solve is one tape node; the forward keeps its dense output; the
// backward integrates the adjoint state alone,
//   da/dt = -a^T df/dh(t, h(t)),   h(t) from the forward's interpolant,
// from the last output time to the first, and forms
//   d(loss)/d(theta) = integral of a(t)^T df/dtheta(t, h(t)) dt
// by Gauss-Legendre quadrature on each accepted backward step, a(t) at the
// nodes from that step's dense output. The backward system and its error
// control involve only a (the parameters' adjoints are not integrated), so
// its steps do not grow with the parameter count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "autodiff/kernels.h"
#include "ode/dense_output.h"
#include "ode/internal.h"

namespace anode::ode::internal {
namespace {

const char* quadrature_name(Method m) {
  switch (m) {
    case Method::kEuler: return "euler quadrature";
    case Method::kMidpoint: return "midpoint quadrature";
    case Method::kRk4: return "rk4 quadrature";
    case Method::kBosh3: return "bosh3 quadrature";
    case Method::kDopri5: return "dopri5 quadrature";
    case Method::kTsit5: return "tsit5 quadrature";
  }
  return "quadrature";
}

// Gauss-Legendre nodes and weights on [0, 1]: n points integrate degree
// 2n - 1 exactly; a method of order p gets ceil(p / 2) of them, so the
// quadrature's local error O(h^(2n+1)) is no larger than the step's.
struct GaussRule {
  int n;
  double x[3], w[3];
};

GaussRule gauss_rule(const Tableau& tab) {
  const int n = std::clamp((tab.order + 1) / 2, 1, 3);
  if (n == 1) return {1, {0.5, 0, 0}, {1.0, 0, 0}};
  if (n == 2) {
    const double d = 0.5 / std::sqrt(3.0);
    return {2, {0.5 - d, 0.5 + d, 0}, {0.5, 0.5, 0}};
  }
  const double d = 0.5 * std::sqrt(0.6);
  return {3, {0.5 - d, 0.5, 0.5 + d}, {5.0 / 18, 8.0 / 18, 5.0 / 18}};
}

template <class T>
struct QuadratureContext : SolveRecord<T> {
  bool end_time_input;
  DenseTrajectory<T> traj;  // the forward's steps
};
static_assert(std::is_trivially_destructible_v<QuadratureContext<float>>);

// da/dt = -a^T df/dh at h(t) from the trajectory.
template <class T>
class QuadratureAdjointSystem : public RkSystem<T> {
 public:
  QuadratureAdjointSystem(const SolveRecord<T>& r, DenseTrajectory<T>& traj, const Tableau& tab, const char* what)
      : r_(r), traj_(traj), tab_(tab), what_(what) {}

  int pieces() const override { return 1; }

  void eval(T t, std::span<const Var<T>> y, std::span<Var<T>> dy) override {
    Tape<T>& tape = y[0].tape();
    auto [da, da_buf] = tape.make_output(y[0].shape());
    dy[0] = da;
    typename Tape<T>::Scope scope(tape);
    T* h = tape.scratch(r_.state.numel());
    dense_value(traj_, tab_, r_.state.numel(), t, h);
    adjoint_rhs<T>(tape, r_, t, TensorView<const T>{h, r_.state}, y[0].data(), nullptr, da_buf, nullptr, what_);
  }

 private:
  const SolveRecord<T>& r_;
  DenseTrajectory<T>& traj_;
  const Tableau& tab_;
  const char* what_;
};

// On each accepted backward step: acc_i += h * sum_j w_j * (-a^T df/dtheta_i)
// at the step's Gauss nodes (h < 0 going backward, so this adds the
// integral over the step).
template <class T>
class QuadratureStore : public StepStore<T> {
 public:
  QuadratureStore(Tape<T>& tape, const SolveRecord<T>& r, DenseTrajectory<T>& traj, const Tableau& tab,
                  RkStep<T>& stepper, const Shape* shapes, T* const* acc, const char* what)
      : tape_(tape), r_(r), traj_(traj), tab_(tab), rule_(gauss_rule(tab)), stepper_(stepper), shapes_(shapes),
        acc_(acc), what_(what) {}

  void keep(const StepView<T>& s) override {
    const int m = r_.nparams + r_.ncaptured;
    if (m == 0) return;
    const Index n = r_.state.numel();
    typename Tape<T>::Scope scope(tape_);
    T* dtheta[kMaxPieces];
    for (int i = 0; i < m; ++i) dtheta[i] = tape_.scratch(shapes_[i].numel());
    T* h = tape_.scratch(n);
    Var<T> f1, a;
    bool f1_ready = false;
    for (int j = 0; j < rule_.n; ++j) {
      stepper_.interpolate(s.t, s.h, rule_.x[j], s.y, s.k, s.y1, std::span<Var<T>>(&f1, 1), f1_ready,
                           std::span<Var<T>>(&a, 1));
      const T tau = s.t + static_cast<T>(rule_.x[j]) * s.h;
      dense_value(traj_, tab_, n, tau, h);
      ++r_.stats->nfe_backward;
      adjoint_rhs<T>(tape_, r_, tau, TensorView<const T>{h, r_.state}, a.data(), nullptr, nullptr, dtheta, what_);
      const T c = static_cast<T>(static_cast<double>(s.h) * rule_.w[j]);
      for (int i = 0; i < m; ++i) kernels::axpy(c, dtheta[i], acc_[i], shapes_[i].numel());
    }
  }

 private:
  Tape<T>& tape_;
  const SolveRecord<T>& r_;
  DenseTrajectory<T>& traj_;
  const Tableau& tab_;
  GaussRule rule_;
  RkStep<T>& stepper_;
  const Shape* shapes_;
  T* const* acc_;
  const char* what_;
};

template <class T>
void quadrature_backward(Tape<T>& tape, const Node<T>& node) {
  auto& ctx = *static_cast<QuadratureContext<T>*>(node.saved);
  const SolverOptions& o = ctx.options;
  const Tableau& tab = tableau(o.method);
  const char* what = quadrature_name(o.method);
  const int P = ctx.nparams, C = ctx.ncaptured;
  const int K = ctx.ntimes - 1;
  const Index n = ctx.state.numel();
  const T* cot = tape.out_adj(node);
  const T* hout = tape.slot(node.out).value;
  T* g_h0 = tape.in_adj(node, 0);
  T* g_t1 = ctx.end_time_input ? tape.in_adj(node, 1 + P + C) : nullptr;
  T* g_theta[kMaxPieces];
  for (int i = 0; i < P + C; ++i) g_theta[i] = tape.in_adj(node, 1 + i);
  if (ctx.traj.last == nullptr) throw SolverError(std::string(what) + ": internal: the forward solve kept no dense output");

  const Control ctl = backward_control(o, std::abs(static_cast<double>(ctx.times[K] - ctx.times[0])));
  typename Tape<T>::Scope scope(tape);  // everything below is scratch
  typename Tape<T>::NoGradGuard no_grad(tape);
  Shape shapes[kMaxPieces];
  T* acc[kMaxPieces];
  for (int i = 0; i < P + C; ++i) {
    shapes[i] = i < P ? ctx.params[i]->shape() : tape.slot(ctx.captured[i - P]).shape;
    acc[i] = tape.scratch(shapes[i].numel());
    std::memset(acc[i], 0, sizeof(T) * shapes[i].numel());
  }
  T* a = tape.scratch(n);
  std::memcpy(a, cot + (K - 1) * n, sizeof(T) * n);
  const TensorView<const T> h_end{hout + (K - 1) * n, ctx.state};
  if (g_t1 != nullptr) end_time_gradient<T>(tape, ctx, h_end, a, g_t1);
  ctx.traj.cursor = ctx.traj.last;
  fill_f1_last<T>(tape, *ctx.f, ctx.traj, tab, h_end, &ctx.stats->nfe_backward);

  QuadratureAdjointSystem<T> sys(ctx, ctx.traj, tab, what);
  Driver<T> driver(tape, sys, tab, ctl, Keep::kFlat, what, backward_counters(*ctx.stats));
  QuadratureStore<T> store(tape, ctx, ctx.traj, tab, driver.stepper(), shapes, acc, what);
  for (int seg = K; seg >= 1; --seg) {
    typename Tape<T>::Scope interval(tape);
    Var<T> y = tape.constant(TensorView<const T>{a, ctx.state}), next;
    driver.integrate(ctx.times[seg], ctx.times[seg - 1], std::span<const Var<T>>(&y, 1), {},
                     [](int, std::span<const Var<T>>) {}, &store, std::span<Var<T>>(&next, 1));
    std::memcpy(a, next.data(), sizeof(T) * n);
    if (seg >= 2) kernels::add_to(cot + (seg - 2) * n, a, n);
  }
  if (g_h0 != nullptr) kernels::add_to(a, g_h0, n);
  for (int i = 0; i < P + C; ++i) {
    if (g_theta[i]) kernels::add_to(acc[i], g_theta[i], shapes[i].numel());
  }
}

}  // namespace

template <class T>
Var<T> odeint_quadrature(Dynamics<T>& f, Var<T> h0, std::span<const T> times, Var<T> t1, const SolverOptions& o,
                         SolveStats* stats) {
  Tape<T>& tape = h0.tape();
  const char* what = quadrature_name(o.method);
  auto* ctx = arena_array<QuadratureContext<T>>(tape, 1);
  init_record(*ctx, tape, f, h0, times, o, stats);
  ctx->end_time_input = t1.valid();
  ctx->traj.clear();
  ReadsLease<T> reads;
  Var<T> y = solve_dense<T>(tape, f, h0, times, o, *ctx->stats, *reads, ctx->traj);
  const std::size_t inputs_read = reads->params.size() + reads->captured.size();
  if (inputs_read > static_cast<std::size_t>(kMaxPieces) && tape.recording()) {
    throw SolverError(std::string(what) + ": the dynamics reads " + std::to_string(reads->params.size()) +
                      " parameter tensors and " + std::to_string(reads->captured.size()) +
                      " captured values; at most " + std::to_string(kMaxPieces) + " in all are supported");
  }
  finish_record(*ctx, tape, *reads, what);
  std::size_t nin = 0;
  Var<T>* inputs = node_inputs(tape, *ctx, h0, t1, &nin);
  Node<T> node{};
  node.name = "odeint_quadrature";
  node.backward = &quadrature_backward<T>;
  node.saved = ctx;
  tape.record(y, std::span<const Var<T>>(inputs, nin), node);
  return y;
}

template Var<float> odeint_quadrature<float>(Dynamics<float>&, Var<float>, std::span<const float>, Var<float>,
                                             const SolverOptions&, SolveStats*);
template Var<double> odeint_quadrature<double>(Dynamics<double>&, Var<double>, std::span<const double>,
                                               Var<double>, const SolverOptions&, SolveStats*);

}  // namespace anode::ode::internal
