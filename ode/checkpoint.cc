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
#include <optional>
#include <type_traits>

#include "ode/internal.h"
#include "ode/step_replay.h"

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
  const Index n = ctx.state.numel();
  StepReplay<T> replay(tape, node, ctx, checkpoint_name(ctx.options.method));
  // Recomputed states of the segment being walked (stride - 1 at most), and
  // the segment's records, last first.
  const std::int64_t stride = ctx.stride;
  T* segment = stride > 1 ? tape.scratch(static_cast<std::size_t>((stride - 1) * n)) : nullptr;
  StepRecord<T>** chain = tape.template scratch<StepRecord<T>*>(static_cast<std::size_t>(stride));
  auto recompute_segment = [&](StepRecord<T>* rec) {
    int m = 0;
    StepRecord<T>* from = rec;
    for (; from->y == nullptr; from = from->prev) chain[m++] = from;
    for (int j = m - 1; j >= 0; --j) {
      T* dst = segment + j * n;
      replay.advance(from->t, from->h, from->y, dst);
      chain[j]->y = dst;
      from = chain[j];
    }
  };
  for (StepRecord<T>* rec = ctx.last; rec != nullptr; rec = rec->prev) {
    if (rec->y == nullptr) recompute_segment(rec);
    replay.reverse(rec->t, rec->h, rec->t_end, rec->y, rec == ctx.last);
    // A recomputed state's buffer is reused by the next segment (and a
    // second backward pass recomputes it again).
    if (rec->index % stride != 0) rec->y = nullptr;
  }
  replay.finish();
}

}  // namespace

template <class T>
Var<T> odeint_checkpoint(Dynamics<T>& f, Var<T> h0, std::span<const T> times,
                         const SolverOptions& o, SolveStats* stats) {
  Tape<T>& tape = h0.tape();
  auto* ctx = arena_array<CheckpointContext<T>>(tape, 1);
  init_record(*ctx, tape, f, h0, times, o, stats);
  std::optional<StrideStore<T>> store;
  return replay_forward<T>(tape, *ctx, f, h0, times, Var<T>(), o, checkpoint_name(o.method), "odeint_checkpoint",
                           &checkpoint_backward<T>, [&](bool record) -> StepStore<T>* {
                             ctx->last = nullptr;
                             ctx->stride = 1;
                             store.reset();
                             if (!record) return nullptr;
                             store.emplace(tape, *ctx, o.checkpoint_states, h0.size());
                             return &*store;
                           });
}

template Var<float> odeint_checkpoint<float>(Dynamics<float>&, Var<float>, std::span<const float>,
                                             const SolverOptions&, SolveStats*);
template Var<double> odeint_checkpoint<double>(Dynamics<double>&, Var<double>,
                                               std::span<const double>, const SolverOptions&,
                                               SolveStats*);

}  // namespace anode::ode::internal
