// Binomial checkpointing (Griewank's revolve; diffrax's
// RecursiveCheckpointAdjoint): the forward solve records each accepted
// step's (t, h); the backward pass reverses the steps under the optimal
// schedule of binomial_schedule.h with at most options.checkpoint_states
// stored states (state 0 among them), replaying the recorded step sizes
// (so adaptive solves are replayed exactly), recomputing states as the
// schedule says and backpropagating through one re-run step at a time. The
// exact discrete gradient, like backprop, with memory O(budget) states and
// the fewest recomputations any schedule with that budget can have.
//
// When the number of steps is known before the solve (fixed steps), the
// forward solve itself stores the states of the schedule's first sweep, so
// the backward pass starts at the first reversal; an adaptive solve learns
// N only at its end, so its backward pass runs the whole schedule from
// state 0 (N - 1 more recomputed steps).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

#include "ode/binomial_schedule.h"
#include "ode/internal.h"
#include "ode/step_replay.h"

namespace anode::ode::internal {
namespace {

template <class T>
struct StepSize {
  T t, h, t_end;
};

template <class T>
struct BinomialContext : SolveRecord<T> {
  ArenaLog<StepSize<T>> steps;  // N of them, in order
  int slots;                    // states the schedule may store (state 0 included)
  T* state0;                    // a copy of h0's value: slot 0
  T** slot;                     // the slots' buffers (null until allocated)
  T* current;                   // the schedule's current state
  bool prefilled;               // the forward stored the first sweep's states
  std::int64_t expected;        // fixed-step count known before the solve (0: adaptive)
  bool end_time_input;          // the node's last input is the end time
};
static_assert(std::is_trivially_destructible_v<BinomialContext<float>>);

const char* binomial_name(Method m) {
  switch (m) {
    case Method::kEuler: return "euler binomial";
    case Method::kMidpoint: return "midpoint binomial";
    case Method::kRk4: return "rk4 binomial";
    case Method::kBosh3: return "bosh3 binomial";
    case Method::kDopri5: return "dopri5 binomial";
    case Method::kTsit5: return "tsit5 binomial";
  }
  return "binomial";
}

// One schedule per thread, its capacity reused across solves.
std::vector<CheckpointAction>& schedule_buffer() {
  thread_local std::vector<CheckpointAction> actions;
  return actions;
}

template <class T>
void allocate_slots(Tape<T>& tape, BinomialContext<T>& ctx) {
  const Index n = ctx.state.numel();
  ctx.slot = tape.template scratch<T*>(static_cast<std::size_t>(ctx.slots));
  ctx.slot[0] = ctx.state0;
  for (int i = 1; i < ctx.slots; ++i) ctx.slot[i] = tape.scratch(n);
  ctx.current = tape.scratch(n);
}

// The forward's storage: every step's size; for a solve of known length,
// also the states the schedule's first sweep stores, and the state before
// the last step (where the first reversal starts).
template <class T>
class BinomialStore : public StepStore<T> {
 public:
  BinomialStore(Tape<T>& tape, BinomialContext<T>& ctx) : tape_(tape), ctx_(ctx) {
    if (ctx.expected > 0) {
      std::vector<CheckpointAction>& actions = schedule_buffer();
      binomial_schedule(ctx.expected, ctx.slots, actions);
      // The first sweep: stores at increasing states up to the first reversal.
      for (const CheckpointAction& a : actions) {
        if (a.kind == CheckpointAction::kReverse) break;
        if (a.kind == CheckpointAction::kStore) ++nstores_;
      }
      stores_ = tape.template scratch<CheckpointAction>(static_cast<std::size_t>(nstores_) + 1);
      int i = 0;
      for (const CheckpointAction& a : actions) {
        if (a.kind == CheckpointAction::kReverse) break;
        if (a.kind == CheckpointAction::kStore) stores_[i++] = a;
      }
    }
  }

  void kept(std::int64_t index, T t, T h, T t_end, std::span<const T* const> y) override {
    ctx_.steps.push(tape_, StepSize<T>{t, h, t_end});
    if (ctx_.expected == 0) return;
    const std::size_t bytes = sizeof(T) * ctx_.state.numel();
    while (next_ < nstores_ && stores_[next_].state == index) {
      std::memcpy(ctx_.slot[stores_[next_].slot], y[0], bytes);
      ++next_;
    }
    if (index == ctx_.expected - 1) std::memcpy(ctx_.current, y[0], bytes);
  }

  // Whether the forward stored all it had to.
  bool complete() const { return ctx_.expected > 0 && next_ == nstores_ && ctx_.steps.size == ctx_.expected; }

 private:
  Tape<T>& tape_;
  BinomialContext<T>& ctx_;
  CheckpointAction* stores_ = nullptr;
  int nstores_ = 0, next_ = 0;
};

template <class T>
void binomial_backward(Tape<T>& tape, const Node<T>& node) {
  auto& ctx = *static_cast<BinomialContext<T>*>(node.saved);
  if (ctx.steps.size == 0) return;  // nothing was kept: no gradient was possible
  const Index n = ctx.state.numel();
  const std::size_t bytes = sizeof(T) * n;
  StepReplay<T> replay(tape, node, ctx, binomial_name(ctx.options.method), ctx.end_time_input);
  if (ctx.slot == nullptr) {
    // Adaptive: the budget applies now that N is known (0: a slot per state).
    if (ctx.slots == 0 || ctx.slots > ctx.steps.size) ctx.slots = static_cast<int>(ctx.steps.size);
    allocate_slots(tape, ctx);
  }
  std::vector<CheckpointAction>& actions = schedule_buffer();
  binomial_schedule(ctx.steps.size, ctx.slots, actions);
  std::size_t first = 0;
  if (ctx.prefilled) {
    // The forward did the first sweep: start at the first reversal.
    while (actions[first].kind != CheckpointAction::kReverse) ++first;
  } else {
    std::memcpy(ctx.current, ctx.slot[0], bytes);
  }
  for (std::size_t i = first; i < actions.size(); ++i) {
    const CheckpointAction& a = actions[i];
    switch (a.kind) {
      case CheckpointAction::kStore:
        if (a.slot != 0) std::memcpy(ctx.slot[a.slot], ctx.current, bytes);  // slot 0 holds state 0
        break;
      case CheckpointAction::kRestore: std::memcpy(ctx.current, ctx.slot[a.slot], bytes); break;
      case CheckpointAction::kAdvance:
        for (std::int64_t s = a.state; s < a.to; ++s) {
          replay.advance(ctx.steps.items[s].t, ctx.steps.items[s].h, ctx.current, ctx.current);
        }
        break;
      case CheckpointAction::kReverse: {
        const StepSize<T>& s = ctx.steps.items[a.state];
        replay.reverse(s.t, s.h, s.t_end, ctx.current, a.state == ctx.steps.size - 1);
        break;
      }
    }
  }
  replay.finish();
  // The reversal overwrote the first sweep's slots: a second backward pass
  // runs the whole schedule from state 0.
  ctx.prefilled = false;
}

// The step count of a fixed-step solve, as the driver forms it (0: adaptive).
std::int64_t fixed_step_count(const SolverOptions& o, double span) {
  const Tableau& tab = tableau(o.method);
  if (o.steps > 0) return o.steps;
  if (o.step_size > 0) return static_cast<std::int64_t>(std::max(1.0, std::ceil(span / o.step_size - 1e-9)));
  return tab.adaptive() ? 0 : -1;
}

}  // namespace

template <class T>
Var<T> odeint_binomial(Dynamics<T>& f, Var<T> h0, std::span<const T> times, Var<T> t1, const SolverOptions& o,
                       SolveStats* stats) {
  Tape<T>& tape = h0.tape();
  auto* ctx = arena_array<BinomialContext<T>>(tape, 1);
  init_record(*ctx, tape, f, h0, times, o, stats);
  ctx->end_time_input = t1.valid();
  const double span = std::abs(static_cast<double>(times.back()) - static_cast<double>(times[0]));
  const std::int64_t fixed = fixed_step_count(o, span);
  const Index n = h0.size();
  std::optional<BinomialStore<T>> store;  // (a forward-only solve allocates nothing per step)
  Var<T> y = replay_forward<T>(
      tape, *ctx, f, h0, times, t1, o, binomial_name(o.method), "odeint_binomial", &binomial_backward<T>,
      [&](bool record) -> StepStore<T>* {
        ctx->steps.clear();
        ctx->slot = nullptr;
        ctx->current = nullptr;
        ctx->state0 = nullptr;
        ctx->prefilled = false;
        store.reset();
        // Budget 0: a slot for every state (no recomputation).
        ctx->expected = fixed > 0 && fixed <= o.max_steps ? fixed : 0;
        ctx->slots = o.checkpoint_states;
        if (!record) return nullptr;
        ctx->state0 = tape.scratch(n);
        std::memcpy(ctx->state0, h0.data(), sizeof(T) * n);
        if (ctx->expected > 0) {
          if (ctx->slots == 0 || ctx->slots > ctx->expected) ctx->slots = static_cast<int>(ctx->expected);
          allocate_slots(tape, *ctx);
        }
        store.emplace(tape, *ctx);
        return &*store;
      });
  ctx->prefilled = store && store->complete();
  return y;
}

template Var<float> odeint_binomial<float>(Dynamics<float>&, Var<float>, std::span<const float>, Var<float>,
                                           const SolverOptions&, SolveStats*);
template Var<double> odeint_binomial<double>(Dynamics<double>&, Var<double>, std::span<const double>,
                                             Var<double>, const SolverOptions&, SolveStats*);

}  // namespace anode::ode::internal
