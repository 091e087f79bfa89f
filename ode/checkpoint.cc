// The checkpoint method: the forward solve (not recorded) stores the state at
// the start of accepted steps; the backward pass walks the steps from last to
// first, re-runs each one on a nested scope with recording on, and
// backpropagates through it. That is exactly the gradient of the discrete
// solution (as with backprop through the steps), with memory O(states kept)
// instead of O(steps x stages x state) plus the tape's nodes.
//
// At most options.checkpoint_states states are kept: when a solve takes more
// steps, the forward pass keeps only the states of steps whose index is a
// multiple of a stride (doubled each time the budget overflows, the dropped
// buffers reused), and the backward pass recomputes each segment between two
// kept states once, unrecorded, before walking it backwards.
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "autodiff/kernels.h"
#include "autodiff/ops.h"
#include "ode/internal.h"

namespace anode::ode::internal {
namespace {

template <class T>
struct StepRecord {
  T t, h, t_end;        // as the forward engine took the step
  T* y;                 // state at t, or null where it was not kept
  std::int64_t index;   // of the step in the solve
  StepRecord* prev;
};

template <class T>
struct CheckpointContext : SolveRecord<T> {
  StepRecord<T>* last;
  std::int64_t stride;  // kept states: the steps whose index is a multiple of it
};
static_assert(std::is_trivially_destructible_v<CheckpointContext<float>>);
static_assert(std::is_trivially_destructible_v<StepRecord<float>>);

const char* checkpoint_name(Method m) {
  switch (m) {
    case Method::kEuler: return "euler checkpoint";
    case Method::kMidpoint: return "midpoint checkpoint";
    case Method::kRk4: return "rk4 checkpoint";
    case Method::kBosh3: return "bosh3 checkpoint";
    case Method::kDopri5: return "dopri5 checkpoint";
    case Method::kTsit5: return "tsit5 checkpoint";
  }
  return "checkpoint";
}

// The forward's storage: a record per accepted step, and the step-start
// state of the steps whose index is a multiple of the stride; when more than
// `budget` states are kept (0: no limit), the stride doubles and the dropped
// buffers go on a stack for reuse.
template <class T>
class StrideStore : public StepStore<T> {
 public:
  StrideStore(Tape<T>& tape, CheckpointContext<T>& ctx, int budget, Index n)
      : tape_(tape), ctx_(ctx), budget_(budget), n_(n),
        spare_(budget > 0 ? tape.template scratch<T*>(static_cast<std::size_t>(budget) + 1) : nullptr) {}

  void kept(std::int64_t index, T t, T h, T t_end, std::span<const T* const> y) override {
    auto* r = arena_array<StepRecord<T>>(tape_, 1);
    *r = StepRecord<T>{t, h, t_end, nullptr, index, ctx_.last};
    ctx_.last = r;
    if (r->index % ctx_.stride != 0) return;
    r->y = nspare_ > 0 ? spare_[--nspare_] : tape_.scratch(n_);
    std::memcpy(r->y, y[0], sizeof(T) * n_);
    if (budget_ == 0 || ++kept_ <= budget_) return;
    ctx_.stride *= 2;
    for (StepRecord<T>* q = r; q != nullptr; q = q->prev) {
      if (q->y != nullptr && q->index % ctx_.stride != 0) {
        spare_[nspare_++] = q->y;
        q->y = nullptr;
        --kept_;
      }
    }
  }

 private:
  Tape<T>& tape_;
  CheckpointContext<T>& ctx_;
  int budget_;
  Index n_;
  T** spare_;
  int nspare_ = 0, kept_ = 0;
};

template <class T>
void checkpoint_backward(Tape<T>& tape, const Node<T>& node) {
  auto& ctx = *static_cast<CheckpointContext<T>*>(node.saved);
  const Tableau& tab = tableau(ctx.options.method);
  const char* what = checkpoint_name(ctx.options.method);
  const int K = ctx.ntimes - 1;
  const Index n = ctx.state.numel();
  const T* cot = tape.out_adj(node);
  const T eps = std::numeric_limits<T>::epsilon();
  const T dir = ctx.times[K] > ctx.times[0] ? T(1) : T(-1);
  Dynamics<T>& f = *ctx.f;
  const int P = ctx.nparams, C = ctx.ncaptured;
  // Input adjoints, fetched before any nested scope (inside one, older
  // slots read as constants): h0's, the parameters', the captured values'.
  T* g_h0 = tape.in_adj(node, 0);
  T** g_theta = tape.template scratch<T*>(static_cast<std::size_t>(P + C) + 1);
  for (int i = 0; i < P + C; ++i) g_theta[i] = tape.in_adj(node, 1 + i);
  // Each step's d/dc of the captured values lands here (Tape::lift).
  T** g_step = tape.template scratch<T*>(static_cast<std::size_t>(C) + 1);
  for (int i = 0; i < C; ++i) g_step[i] = tape.scratch(tape.slot(ctx.captured[i]).shape.numel());
  PrimalSystem<T> sys(f);
  RkStep<T> stepper(sys, tab, what, &ctx.stats->nfe_backward);

  // The adjoint of the state at the end of the step being processed.
  T* a = tape.scratch(n);
  std::memset(a, 0, sizeof(T) * n);
  // Recomputed states of the segment being walked (stride - 1 at most), and
  // the segment's records, last first.
  const std::int64_t stride = ctx.stride;
  T* segment = stride > 1 ? tape.scratch(static_cast<std::size_t>((stride - 1) * n)) : nullptr;
  StepRecord<T>** chain = tape.template scratch<StepRecord<T>*>(static_cast<std::size_t>(stride));
  auto recompute_segment = [&](StepRecord<T>* rec) {
    int m = 0;
    StepRecord<T>* from = rec;
    for (; from->y == nullptr; from = from->prev) chain[m++] = from;
    typename Tape<T>::RecordingGuard off(tape, false);
    for (int j = m - 1; j >= 0; --j) {
      typename Tape<T>::Scope scope(tape);
      Var<T> y0 = tape.constant(TensorView<const T>{from->y, ctx.state});
      Var<T> k[kMaxStages];
      Var<T> y1;
      stepper.step(from->t, from->h, std::span<const Var<T>>(&y0, 1), std::span<Var<T>>(k, tab.stages),
                   std::span<Var<T>>(&y1, 1));
      T* dst = segment + j * n;
      std::memcpy(dst, y1.data(), sizeof(T) * n);
      chain[j]->y = dst;
      from = chain[j];
    }
  };
  int out_i = K - 1;  // outputs are handled from the last one down
  const int S = tab.stages;
  // Seeds of one step's reverse pass: the carried adjoint on the step's end
  // state, and the cotangent of every output inside (t, t_end].
  Var<T>* seeds = arena_array<Var<T>>(tape, K + 1);
  auto* cots = arena_array<TensorView<const T>>(tape, K + 1);

  for (StepRecord<T>* rec = ctx.last; rec != nullptr; rec = rec->prev) {
    if (rec->y == nullptr) recompute_segment(rec);
    typename Tape<T>::RecordingGuard record(tape, true);
    typename Tape<T>::Scope scope(tape);
    ReadsLease<T> reads;
    reads->reset(static_cast<std::int32_t>(tape.num_slots()), {});
    Watching<T> watching(tape, &reads->watch);
    LiftCaptured<T> lifted(tape, ctx, g_step);
    Var<T> y0 = tape.input(TensorView<const T>{rec->y, ctx.state});
    Var<T> k[kMaxStages];
    Var<T> y1, f1;
    bool f1_ready = false;
    int nseeds = 0;
    stepper.step(rec->t, rec->h, std::span<const Var<T>>(&y0, 1), std::span<Var<T>>(k, S),
                 std::span<Var<T>>(&y1, 1));
    if (rec != ctx.last) {
      seeds[nseeds] = y1;
      cots[nseeds++] = TensorView<const T>{a, ctx.state};
    }
    while (out_i >= 0 && dir * (ctx.times[out_i + 1] - rec->t) > 0) {
      const T to = ctx.times[out_i + 1];
      Var<T> v;
      if (std::abs(to - rec->t_end) <= 8 * eps * std::max<T>(T(1), std::abs(rec->t_end))) {
        v = y1;
      } else {
        const double theta = static_cast<double>((to - rec->t) / rec->h);
        stepper.interpolate(rec->t, rec->h, theta, std::span<const Var<T>>(&y0, 1),
                            std::span<const Var<T>>(k, S), std::span<const Var<T>>(&y1, 1),
                            std::span<Var<T>>(&f1, 1), f1_ready, std::span<Var<T>>(&v, 1));
      }
      seeds[nseeds] = v;
      cots[nseeds++] = TensorView<const T>{cot + out_i * n, ctx.state};
      --out_i;
    }
    watching.stop();
    check_captured<T>(ctx, tape, reads->captured, what);
    tape.backward(std::span<const Var<T>>(seeds, nseeds),
                  std::span<const TensorView<const T>>(cots, nseeds));
    std::memcpy(a, tape.grad(y0).data, sizeof(T) * n);
    for (const auto& entry : watching.entries()) {
      const T* adj = tape.slot(entry.slot).adj;
      if (adj == nullptr) continue;
      const int i = param_index(ctx, entry.param, what);
      if (g_theta[i]) kernels::add_to(adj, g_theta[i], entry.param->size());
    }
    for (int i = 0; i < C; ++i) {
      const Index size = tape.slot(ctx.captured[i]).shape.numel();
      if (g_theta[P + i]) kernels::add_to(g_step[i], g_theta[P + i], size);
    }
    // A recomputed state's buffer is reused by the next segment (and a
    // second backward pass recomputes it again).
    if (rec->index % stride != 0) rec->y = nullptr;
  }
  if (g_h0) kernels::add_to(a, g_h0, n);
}

}  // namespace

template <class T>
Var<T> odeint_checkpoint(Dynamics<T>& f, Var<T> h0, std::span<const T> times,
                         const SolverOptions& o, SolveStats* stats) {
  Tape<T>& tape = h0.tape();
  auto* ctx = arena_array<CheckpointContext<T>>(tape, 1);
  init_record(*ctx, tape, f, h0, times, o, stats);
  ReadsLease<T> reads;
  const std::int32_t below = static_cast<std::int32_t>(tape.num_slots());
  const int budget = o.checkpoint_states;
  const Index n = h0.size();

  // Step records are kept when a gradient may be asked for
  // (may_need_gradient); a solve that kept none and finds f reading
  // something differentiable after all is run again, keeping them.
  auto solve = [&](bool record) {
    ctx->stats->reset();
    ctx->last = nullptr;
    ctx->stride = 1;
    reads->reset(below, f.parameters());
    StrideStore<T> store(tape, *ctx, budget, n);
    // keep_scratch: the step records stay in the arena for the backward
    // pass; the driver rewinds each step's scratch itself.
    return solve_flat<T>(tape, f, h0, times, o, *ctx->stats, &*reads, record ? &store : nullptr, true);
  };
  const bool keep = tape.recording() && may_need_gradient(f, h0, times[0]);
  Var<T> y = solve(keep);
  if (tape.recording() && !keep && reads->any()) y = solve(true);
  finish_record(*ctx, tape, *reads, checkpoint_name(o.method));
  std::size_t nin = 0;
  Var<T>* inputs = node_inputs(tape, *ctx, h0, Var<T>(), &nin);
  Node<T> node{};
  node.name = "odeint_checkpoint";
  node.backward = &checkpoint_backward<T>;
  node.saved = ctx;
  tape.record(y, std::span<const Var<T>>(inputs, nin), node);
  return y;
}

template Var<float> odeint_checkpoint<float>(Dynamics<float>&, Var<float>, std::span<const float>,
                                             const SolverOptions&, SolveStats*);
template Var<double> odeint_checkpoint<double>(Dynamics<double>&, Var<double>,
                                               std::span<const double>, const SolverOptions&,
                                               SolveStats*);

}  // namespace anode::ode::internal
