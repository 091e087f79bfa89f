// The interpolating adjoint (SciMLSensitivity's InterpolatingAdjoint): the
// solve is one tape node, whose backward integrates only [a, a_theta]
//   da/dt = -a^T df/dh(t, h(t)),  da_theta/dt = -a^T df/dtheta(t, h(t))
// from the last output time to the first, reading h(t) from a dense
// solution instead of integrating h backward (which is unstable where the
// forward flow contracts). Two ways to have that solution:
//  - dense (Gradient::kInterpolating): the forward keeps each accepted
//    step's interpolant; memory grows with the forward steps.
//  - checkpointed (kInterpolatingCheckpoint): the forward keeps only its
//    outputs (the states at the output times, which the node returns
//    anyway); the backward re-solves each interval between two output times
//    forward, densely, with the backward tolerances, then integrates the
//    adjoint across it. Memory: one interval's steps at a time. This is
//    SciMLSensitivity's InterpolatingAdjoint(checkpointing = true) with the
//    save points as checkpoints.
#include <cstring>
#include <optional>
#include <type_traits>

#include "autodiff/kernels.h"
#include "ode/dense_output.h"
#include "ode/internal.h"

namespace anode::ode::internal {
namespace {

const char* interpolating_name(Method m, bool checkpointed) {
  switch (m) {
    case Method::kEuler: return checkpointed ? "euler interpolating_checkpoint" : "euler interpolating";
    case Method::kMidpoint: return checkpointed ? "midpoint interpolating_checkpoint" : "midpoint interpolating";
    case Method::kRk4: return checkpointed ? "rk4 interpolating_checkpoint" : "rk4 interpolating";
    case Method::kBosh3: return checkpointed ? "bosh3 interpolating_checkpoint" : "bosh3 interpolating";
    case Method::kDopri5: return checkpointed ? "dopri5 interpolating_checkpoint" : "dopri5 interpolating";
    case Method::kTsit5: return checkpointed ? "tsit5 interpolating_checkpoint" : "tsit5 interpolating";
  }
  return "interpolating";
}

template <class T>
struct InterpolatingContext : SolveRecord<T> {
  bool end_time_input;
  bool checkpointed;
  DenseTrajectory<T> traj;  // dense mode: the forward's steps
};
static_assert(std::is_trivially_destructible_v<InterpolatingContext<float>>);

// [a, a_theta_0, ..., a_theta_{P-1}, a_c_0, ..., a_c_{C-1}], h(t) from a
// dense trajectory.
template <class T>
class InterpolatedAdjointSystem : public RkSystem<T> {
 public:
  InterpolatedAdjointSystem(const SolveRecord<T>& r, DenseTrajectory<T>& traj, const Tableau& tab, bool seminorm,
                            const char* what)
      : r_(r), traj_(traj), tab_(tab), seminorm_(seminorm), what_(what) {}

  int pieces() const override { return 1 + r_.nparams + r_.ncaptured; }
  bool in_norm(int i) const override { return !(seminorm_ && i >= 1); }

  void eval(T t, std::span<const Var<T>> y, std::span<Var<T>> dy) override {
    Tape<T>& tape = y[0].tape();
    const int P = r_.nparams, C = r_.ncaptured;
    // Outputs first, so they outlive the scope below.
    auto [da, da_buf] = tape.make_output(y[0].shape());
    dy[0] = da;
    T* dtheta[kMaxPieces];
    for (int i = 0; i < P + C; ++i) {
      auto [v, buf] = tape.make_output(y[1 + i].shape());
      dy[1 + i] = v;
      dtheta[i] = buf;
    }
    typename Tape<T>::Scope scope(tape);
    T* h = tape.scratch(r_.state.numel());
    dense_value(traj_, tab_, r_.state.numel(), t, h);
    adjoint_rhs<T>(tape, r_, t, TensorView<const T>{h, r_.state}, y[0].data(), nullptr, da_buf, dtheta, what_);
  }

 private:
  const SolveRecord<T>& r_;
  DenseTrajectory<T>& traj_;
  const Tableau& tab_;
  bool seminorm_;
  const char* what_;
};

// Checkpointed mode: solves f from `from` at ta to tb densely into traj
// (unrecorded, counted as backward work).
template <class T>
void resolve_dense(Tape<T>& tape, const SolveRecord<T>& r, const Control& ctl, const Tableau& tab, const char* what,
                   const T* from, T ta, T tb, DenseTrajectory<T>& traj) {
  const Index n = r.state.numel();
  traj.clear();
  if (needs_f1_last(tab)) traj.f1_last = tape.scratch(n);
  PrimalSystem<T> sys(*r.f);
  DenseStore<T> store(tape, traj, tab, n);
  Driver<T> driver(tape, sys, tab, ctl, Keep::kFlat, what, backward_counters(*r.stats));
  Var<T> y0 = tape.constant(TensorView<const T>{from, r.state});
  Var<T> y1;
  driver.integrate(ta, tb, std::span<const Var<T>>(&y0, 1), {}, [](int, std::span<const Var<T>>) {}, &store,
                   std::span<Var<T>>(&y1, 1));
  fill_f1_last<T>(tape, *r.f, traj, tab, y1.value(), &r.stats->nfe_backward);
}

template <class T>
void interpolating_backward(Tape<T>& tape, const Node<T>& node) {
  auto& ctx = *static_cast<InterpolatingContext<T>*>(node.saved);
  const SolverOptions& o = ctx.options;
  const Tableau& tab = tableau(o.method);
  const int P = ctx.nparams, C = ctx.ncaptured, pieces = 1 + P + C;
  const int K = ctx.ntimes - 1;
  const Index n = ctx.state.numel();
  const T* cot = tape.out_adj(node);
  const T* hout = tape.slot(node.out).value;  // forward outputs, [K, ...] or the state's shape
  const T* h0 = tape.in_value(node, 0);
  // Input adjoints, fetched before any nested scope (inside one, older
  // slots read as constants).
  T* g_h0 = tape.in_adj(node, 0);
  T* g_t1 = ctx.end_time_input ? tape.in_adj(node, 1 + P + C) : nullptr;
  T* g_theta[kMaxPieces];
  for (int i = 0; i < P + C; ++i) g_theta[i] = tape.in_adj(node, 1 + i);

  const Control ctl = backward_control(o, std::abs(static_cast<double>(ctx.times[K] - ctx.times[0])));
  const char* what = interpolating_name(o.method, ctx.checkpointed);
  typename Tape<T>::Scope scope(tape);  // everything below is scratch
  typename Tape<T>::NoGradGuard no_grad(tape);

  // The adjoint state [a, a_theta..., a_c...], carried across intervals.
  Shape shapes[kMaxPieces];
  T* state[kMaxPieces];
  shapes[0] = ctx.state;
  for (int i = 0; i < P + C; ++i) shapes[1 + i] = i < P ? ctx.params[i]->shape() : tape.slot(ctx.captured[i - P]).shape;
  for (int i = 0; i < pieces; ++i) {
    state[i] = tape.scratch(shapes[i].numel());
    std::memset(state[i], 0, sizeof(T) * shapes[i].numel());
  }
  std::memcpy(state[0], cot + (K - 1) * n, sizeof(T) * n);
  if (g_t1 != nullptr) end_time_gradient<T>(tape, ctx, TensorView<const T>{hout + (K - 1) * n, ctx.state}, state[0], g_t1);
  if (!ctx.checkpointed) {
    if (ctx.traj.last == nullptr) {
      throw SolverError(std::string(what) + ": internal: the forward solve kept no dense output");
    }
    ctx.traj.cursor = ctx.traj.last;
    fill_f1_last<T>(tape, *ctx.f, ctx.traj, tab, TensorView<const T>{hout + (K - 1) * n, ctx.state},
                    &ctx.stats->nfe_backward);
  }

  for (int seg = K; seg >= 1; --seg) {
    typename Tape<T>::Scope interval(tape);  // this interval's re-solve and adjoint buffers
    DenseTrajectory<T> local;
    DenseTrajectory<T>* traj = &ctx.traj;
    if (ctx.checkpointed) {
      const T* from = seg == 1 ? h0 : hout + (seg - 2) * n;
      resolve_dense<T>(tape, ctx, ctl, tab, what, from, ctx.times[seg - 1], ctx.times[seg], local);
      local.cursor = local.last;
      traj = &local;
    }
    InterpolatedAdjointSystem<T> sys(ctx, *traj, tab, o.adjoint_seminorm, what);
    Driver<T> driver(tape, sys, tab, ctl, Keep::kFlat, what, backward_counters(*ctx.stats));
    Var<T> y[kMaxPieces], next[kMaxPieces];
    for (int i = 0; i < pieces; ++i) y[i] = tape.constant(TensorView<const T>{state[i], shapes[i]});
    driver.integrate(ctx.times[seg], ctx.times[seg - 1], std::span<const Var<T>>(y, pieces), {},
                     [](int, std::span<const Var<T>>) {}, nullptr, std::span<Var<T>>(next, pieces));
    for (int i = 0; i < pieces; ++i) std::memcpy(state[i], next[i].data(), sizeof(T) * shapes[i].numel());
    // Reached output time seg - 1: add that output's cotangent to a.
    if (seg >= 2) kernels::add_to(cot + (seg - 2) * n, state[0], n);
  }
  if (g_h0 != nullptr) kernels::add_to(state[0], g_h0, n);
  for (int i = 0; i < P + C; ++i) {
    if (g_theta[i]) kernels::add_to(state[1 + i], g_theta[i], shapes[1 + i].numel());
  }
}

}  // namespace

template <class T>
Var<T> odeint_interpolating(Dynamics<T>& f, Var<T> h0, std::span<const T> times, Var<T> t1,
                            const SolverOptions& o, SolveStats* stats) {
  Tape<T>& tape = h0.tape();
  const bool checkpointed = o.gradient == Gradient::kInterpolatingCheckpoint;
  const char* what = interpolating_name(o.method, checkpointed);
  auto* ctx = arena_array<InterpolatingContext<T>>(tape, 1);
  init_record(*ctx, tape, f, h0, times, o, stats);
  ctx->end_time_input = t1.valid();
  ctx->checkpointed = checkpointed;
  ctx->traj.clear();

  ReadsLease<T> reads;
  Var<T> y;
  if (checkpointed) {
    // Nothing kept per step: the outputs are the checkpoints.
    reads->reset(static_cast<std::int32_t>(tape.num_slots()), f.parameters());
    y = solve_flat<T>(tape, f, h0, times, o, *ctx->stats, &*reads, nullptr, false);
  } else {
    y = solve_dense<T>(tape, f, h0, times, o, *ctx->stats, *reads, ctx->traj);
  }
  const std::size_t pieces = 1 + reads->params.size() + reads->captured.size();
  if (pieces > static_cast<std::size_t>(kMaxPieces) && tape.recording()) {
    throw SolverError(std::string(what) + ": the dynamics reads " + std::to_string(reads->params.size()) +
                      " parameter tensors and " + std::to_string(reads->captured.size()) +
                      " captured values; at most " + std::to_string(kMaxPieces - 1) + " in all are supported");
  }
  finish_record(*ctx, tape, *reads, what);
  std::size_t nin = 0;
  Var<T>* inputs = node_inputs(tape, *ctx, h0, t1, &nin);
  Node<T> node{};
  node.name = checkpointed ? "odeint_interpolating_checkpoint" : "odeint_interpolating";
  node.backward = &interpolating_backward<T>;
  node.saved = ctx;
  tape.record(y, std::span<const Var<T>>(inputs, nin), node);
  return y;
}

template Var<float> odeint_interpolating<float>(Dynamics<float>&, Var<float>, std::span<const float>, Var<float>,
                                                const SolverOptions&, SolveStats*);
template Var<double> odeint_interpolating<double>(Dynamics<double>&, Var<double>, std::span<const double>,
                                                  Var<double>, const SolverOptions&, SolveStats*);

}  // namespace anode::ode::internal
