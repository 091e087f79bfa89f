// The adjoint method (optimize-then-discretize, Chen et al. 2018): the whole
// solve is one tape node. Its forward solves without recording; its backward
// integrates the augmented system
//   dh/dt = f(t, h),  da/dt = -a^T df/dh,  da_theta/dt = -a^T df/dtheta
// from the last output time back to the first, adding each output time's
// cotangent to a on the way and resetting h to the forward solution there.
// Each evaluation of the augmented right-hand side is one VJP of f taken on
// a nested scope of the same tape. Memory does not grow with the step count.
#include <cstring>
#include <optional>
#include <type_traits>

#include "autodiff/kernels.h"
#include "autodiff/ops.h"
#include "ode/internal.h"

namespace anode::ode::internal {
namespace {

const char* adjoint_name(Method m) {
  switch (m) {
    case Method::kEuler: return "euler adjoint";
    case Method::kMidpoint: return "midpoint adjoint";
    case Method::kRk4: return "rk4 adjoint";
    case Method::kBosh3: return "bosh3 adjoint";
    case Method::kDopri5: return "dopri5 adjoint";
    case Method::kTsit5: return "tsit5 adjoint";
  }
  return "adjoint";
}

}  // namespace

template <class T>
void adjoint_rhs(Tape<T>& tape, const SolveRecord<T>& r, T t, TensorView<const T> h, const T* a, T* fh,
                 T* da, T* const* dtheta, const char* what) {
  const int P = r.nparams, C = r.ncaptured;
  if (dtheta != nullptr) {
    for (int i = 0; i < P + C; ++i) {
      const Index size = i < P ? r.params[i]->size() : tape.slot(r.captured[i - P]).shape.numel();
      std::memset(dtheta[i], 0, sizeof(T) * size);
    }
  }
  typename Tape<T>::RecordingGuard record(tape, true);
  typename Tape<T>::Scope scope(tape);
  ReadsLease<T> reads;
  reads->reset(static_cast<std::int32_t>(tape.num_slots()), {});
  Watching<T> watching(tape, &reads->watch);
  // a^T df/dc lands in the captured values' pieces (zero-filled, added to).
  std::optional<LiftCaptured<T>> lifted;
  if (dtheta != nullptr) lifted.emplace(tape, r, dtheta + P);
  Var<T> hv = tape.input(h);
  Var<T> fv = (*r.f)(t, hv);
  watching.stop();
  if (!fv.valid() || fv.shape() != hv.shape()) {
    throw ShapeError(std::string(what) + ": the dynamics returned " +
                     (fv.valid() ? fv.shape().str() : std::string("an empty Var")) + " for a state of shape " +
                     hv.shape().str());
  }
  check_captured<T>(r, tape, reads->captured, what);
  if (fh != nullptr) {
    std::memcpy(fh, fv.data(), sizeof(T) * fv.size());  // the caller's solve checks it
  } else if (!kernels::all_finite(fv.data(), fv.size())) {
    // Only the VJP is used, which can be finite where f is not: refuse it.
    solve_failed<T>(what, t, "f(t, h) is NaN or Inf in the backward pass (h from the forward's dense output)");
  }
  tape.backward(fv, TensorView<const T>{a, h.shape});  // a^T df/dh, a^T df/dtheta, a^T df/dc
  if (da != nullptr) kernels::scale(tape.grad(hv).data, T(-1), da, hv.size());
  for (const auto& entry : watching.entries()) {
    const T* adj = tape.slot(entry.slot).adj;
    if (adj == nullptr) continue;  // the parameter did not influence f here
    const int i = param_index(r, entry.param, what);
    if (dtheta != nullptr) kernels::axpy(T(-1), adj, dtheta[i], entry.param->size());
  }
  if (dtheta == nullptr) return;
  for (int i = P; i < P + C; ++i) {
    const Index size = tape.slot(r.captured[i - P]).shape.numel();
    kernels::scale(dtheta[i], T(-1), dtheta[i], size);
  }
}

template <class T>
void end_time_gradient(Tape<T>& tape, const SolveRecord<T>& r, TensorView<const T> h1, const T* a1, T* g_t1) {
  typename Tape<T>::Scope s(tape);
  typename Tape<T>::NoGradGuard no_grad(tape);
  ++r.stats->nfe_backward;
  Var<T> fh = (*r.f)(r.times[r.ntimes - 1], tape.constant(h1));
  g_t1[0] += kernels::dot(fh.data(), a1, h1.shape.numel());
}

namespace {

template <class T>
struct AdjointContext : SolveRecord<T> {
  bool end_time_input;
};
static_assert(std::is_trivially_destructible_v<AdjointContext<float>>);

// [h, a, a_theta_0, ..., a_theta_{P-1}, a_c_0, ..., a_c_{C-1}] with the VJP
// right-hand side: a_theta for each parameter f reads, a_c for each value it
// captured from outside the solve (both found by the forward solve).
template <class T>
class AugmentedSystem : public RkSystem<T> {
 public:
  AugmentedSystem(const AdjointContext<T>& ctx, const char* what)
      : ctx_(ctx), seminorm_(ctx.options.adjoint_seminorm), what_(what) {}

  int pieces() const override { return 2 + ctx_.nparams + ctx_.ncaptured; }
  bool in_norm(int i) const override { return !(seminorm_ && i >= 2); }

  void eval(T t, std::span<const Var<T>> y, std::span<Var<T>> dy) override {
    Tape<T>& tape = y[0].tape();
    const int P = ctx_.nparams, C = ctx_.ncaptured;
    // Outputs first, so they outlive adjoint_rhs's nested scope.
    auto [dh, dh_buf] = tape.make_output(y[0].shape());
    auto [da, da_buf] = tape.make_output(y[1].shape());
    dy[0] = dh;
    dy[1] = da;
    T* dtheta[kMaxPieces];
    for (int i = 0; i < P + C; ++i) {
      auto [v, buf] = tape.make_output(y[2 + i].shape());
      dy[2 + i] = v;
      dtheta[i] = buf;
    }
    adjoint_rhs<T>(tape, ctx_, t, y[0].value(), y[1].data(), dh_buf, da_buf, dtheta, what_);
  }

 private:
  const AdjointContext<T>& ctx_;
  bool seminorm_;
  const char* what_;
};

template <class T>
void adjoint_backward(Tape<T>& tape, const Node<T>& node) {
  auto& ctx = *static_cast<AdjointContext<T>*>(node.saved);
  const SolverOptions& o = ctx.options;
  const Tableau& tab = tableau(o.method);
  const int P = ctx.nparams, C = ctx.ncaptured;
  const int K = ctx.ntimes - 1;
  const Index n = ctx.state.numel();
  const T* cot = tape.out_adj(node);
  const T* hout = tape.slot(node.out).value;  // forward outputs, [K, ...] or the state's shape
  // Input adjoints, fetched before any nested scope (inside one, older
  // slots read as constants).
  T* g_h0 = tape.in_adj(node, 0);
  T* g_t1 = ctx.end_time_input ? tape.in_adj(node, 1 + P + C) : nullptr;
  // The parameters' and then the captured values' adjoints.
  T* g_theta[kMaxPieces];
  for (int i = 0; i < P + C; ++i) g_theta[i] = tape.in_adj(node, 1 + i);

  const Control ctl = backward_control(o, std::abs(static_cast<double>(ctx.times[K] - ctx.times[0])));
  const char* what = adjoint_name(o.method);
  AugmentedSystem<T> sys(ctx, what);
  Driver<T> driver(tape, sys, tab, ctl, Keep::kFlat, what, backward_counters(*ctx.stats));

  typename Tape<T>::Scope scope(tape);  // everything below is scratch
  typename Tape<T>::NoGradGuard no_grad(tape);
  const int pieces = 2 + P + C;
  Var<T> state[kMaxPieces];
  state[0] = tape.constant(TensorView<const T>{hout + (K - 1) * n, ctx.state});
  state[1] = tape.constant(TensorView<const T>{cot + (K - 1) * n, ctx.state});
  for (int i = 0; i < P + C; ++i) {
    const Shape s = i < P ? ctx.params[i]->shape() : tape.slot(ctx.captured[i - P]).shape;
    auto [zero, buf] = tape.make_output(s);
    std::memset(buf, 0, sizeof(T) * s.numel());
    state[2 + i] = zero;
  }

  if (g_t1 != nullptr) end_time_gradient<T>(tape, ctx, state[0].value(), state[1].data(), g_t1);

  for (int seg = K; seg >= 1; --seg) {
    Var<T> next[kMaxPieces];
    driver.integrate(ctx.times[seg], ctx.times[seg - 1], std::span<const Var<T>>(state, pieces), {},
                     [](int, std::span<const Var<T>>) {}, nullptr, std::span<Var<T>>(next, pieces));
    for (int i = 0; i < pieces; ++i) state[i] = next[i];
    if (seg >= 2) {
      // Reached output time seg - 1: restore h from the forward solution and
      // add that output's cotangent to a.
      state[0] = tape.constant(TensorView<const T>{hout + (seg - 2) * n, ctx.state});
      state[1] = add(state[1], tape.constant(TensorView<const T>{cot + (seg - 2) * n, ctx.state}));
    }
  }
  if (g_h0 != nullptr) kernels::add_to(state[1].data(), g_h0, n);
  for (int i = 0; i < P + C; ++i) {
    if (g_theta[i]) kernels::add_to(state[2 + i].data(), g_theta[i], state[2 + i].size());
  }
}

}  // namespace

template <class T>
Var<T> odeint_adjoint(Dynamics<T>& f, Var<T> h0, std::span<const T> times, Var<T> t1,
                      const SolverOptions& o, SolveStats* stats) {
  Tape<T>& tape = h0.tape();
  auto* ctx = arena_array<AdjointContext<T>>(tape, 1);
  init_record(*ctx, tape, f, h0, times, o, stats);
  ctx->end_time_input = t1.valid();

  ReadsLease<T> reads;
  reads->reset(static_cast<std::int32_t>(tape.num_slots()), f.parameters());
  Var<T> y = solve_flat<T>(tape, f, h0, times, o, *ctx->stats, &*reads, nullptr, false);
  const std::size_t pieces = 2 + reads->params.size() + reads->captured.size();
  if (pieces > static_cast<std::size_t>(kMaxPieces) && tape.recording()) {
    throw SolverError(std::string(adjoint_name(o.method)) + ": the dynamics reads " +
                      std::to_string(reads->params.size()) + " parameter tensors and " +
                      std::to_string(reads->captured.size()) + " captured values; at most " +
                      std::to_string(kMaxPieces - 2) + " in all are supported");
  }
  finish_record(*ctx, tape, *reads, adjoint_name(o.method));
  std::size_t nin = 0;
  Var<T>* inputs = node_inputs(tape, *ctx, h0, t1, &nin);
  Node<T> node{};
  node.name = "odeint_adjoint";
  node.backward = &adjoint_backward<T>;
  node.saved = ctx;
  tape.record(y, std::span<const Var<T>>(inputs, nin), node);
  return y;
}

#define ANODE_INSTANTIATE(T)                                                                              \
  template void adjoint_rhs<T>(Tape<T>&, const SolveRecord<T>&, T, TensorView<const T>, const T*, T*, T*,  \
                               T* const*, const char*);                                                   \
  template void end_time_gradient<T>(Tape<T>&, const SolveRecord<T>&, TensorView<const T>, const T*, T*);
ANODE_INSTANTIATE(float)
ANODE_INSTANTIATE(double)
#undef ANODE_INSTANTIATE

template Var<float> odeint_adjoint<float>(Dynamics<float>&, Var<float>, std::span<const float>,
                                          Var<float>, const SolverOptions&, SolveStats*);
template Var<double> odeint_adjoint<double>(Dynamics<double>&, Var<double>, std::span<const double>,
                                            Var<double>, const SolverOptions&, SolveStats*);

}  // namespace anode::ode::internal
