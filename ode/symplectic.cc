// The symplectic adjoint (Matsubara, Miyatake & Yaguchi, NeurIPS 2021): the
// forward solve (not recorded) stores the state at the start of every
// accepted step; the backward pass walks the steps last first and integrates
// the adjoint over each with the symplectic partner of the forward tableau
// (symplectic_partner.h). Each step's stages are recomputed unrecorded
// (their values only), then the partner runs from the last stage to the
// first, each stage one recorded evaluation of f at the stored stage value,
// backpropagated with the stage's adjoint and rewound before the next. The
// pair conserves <a, delta y>, so the result is the exact gradient of the
// Runge-Kutta solution (as backprop's, to rounding); memory is the N step
// states, O(s) stage buffers and one evaluation of f on the tape, where the
// checkpoint method holds a whole step's s evaluations.
#include <algorithm>
#include <cstring>
#include <optional>
#include <type_traits>

#include "autodiff/kernels.h"
#include "autodiff/ops.h"
#include "ode/internal.h"
#include "ode/step_replay.h"
#include "ode/symplectic_partner.h"

namespace anode::ode::internal {
namespace {

template <class T>
struct KeptStep {
  T t, h, t_end;
  T* y;  // the state at t
};

template <class T>
struct SymplecticContext : SolveRecord<T> {
  ArenaLog<KeptStep<T>> steps;
  bool end_time_input;  // the node's last input is the end time
};
static_assert(std::is_trivially_destructible_v<SymplecticContext<float>>);

const char* symplectic_name(Method m) {
  switch (m) {
    case Method::kEuler: return "euler symplectic adjoint";
    case Method::kMidpoint: return "midpoint symplectic adjoint";
    case Method::kRk4: return "rk4 symplectic adjoint";
    case Method::kBosh3: return "bosh3 symplectic adjoint";
    case Method::kDopri5: return "dopri5 symplectic adjoint";
    case Method::kTsit5: return "tsit5 symplectic adjoint";
  }
  return "symplectic adjoint";
}

// Every accepted step's size and start state.
template <class T>
class KeepAll : public StepStore<T> {
 public:
  KeepAll(Tape<T>& tape, SymplecticContext<T>& ctx) : tape_(tape), ctx_(ctx) {}
  void kept(std::int64_t, T t, T h, T t_end, std::span<const T* const> y) override {
    const Index n = ctx_.state.numel();
    T* copy = tape_.scratch(n);
    std::memcpy(copy, y[0], sizeof(T) * n);
    ctx_.steps.push(tape_, KeptStep<T>{t, h, t_end, copy});
  }

 private:
  Tape<T>& tape_;
  SymplecticContext<T>& ctx_;
};

template <class T>
bool all_zero(const T* x, Index n) {
  for (Index i = 0; i < n; ++i) {
    if (x[i] != T(0)) return false;
  }
  return true;
}

// out += c * x
template <class T>
void axpy(T c, const T* x, T* out, Index n) {
  for (Index i = 0; i < n; ++i) out[i] += c * x[i];
}

template <class T>
void symplectic_backward(Tape<T>& tape, const Node<T>& node) {
  auto& ctx = *static_cast<SymplecticContext<T>*>(node.saved);
  if (ctx.steps.size == 0) return;  // nothing was kept: no gradient was possible
  StepReplay<T> replay(tape, node, ctx, symplectic_name(ctx.options.method), ctx.end_time_input);
  RkStep<T>& st = replay.stepper();
  const Tableau& tab = st.tableau();
  const SymplecticPartner p = symplectic_partner(tab);
  const int S = tab.stages;
  const Index n = ctx.state.numel();
  const std::size_t bytes = sizeof(T) * n;
  T* lam = replay.adjoint();  // the adjoint at the end of the step being reversed
  // The partner's stage adjoints L_i and the stages k_i of the step being
  // reversed; the next step's adjoint, the cotangent of f(t_end, y1) in
  // Hermite dense output, one stage value, one stage's cotangent.
  T* L[kMaxStages];
  T* K[kMaxStages];
  for (int i = 0; i < S; ++i) L[i] = tape.scratch(n), K[i] = tape.scratch(n);
  T* a0 = tape.scratch(n);
  T* c_f1 = tape.scratch(n);
  T* yi = tape.scratch(n);
  T* u = tape.scratch(n);
  T* y1 = tape.scratch(n);

  // One recorded evaluation of f at (t, y) backpropagated with cotangent
  // `cot`: adds the adjoint of y to `adj_y` and the parameters' to the node's.
  auto vjp = [&](T t, const T* y_value, const T* cot, T* adj_y) {
    typename Tape<T>::RecordingGuard record(tape, true);
    typename Tape<T>::Scope scope(tape);
    typename StepReplay<T>::Evaluation eval(replay);
    Var<T> y = tape.input(TensorView<const T>{y_value, ctx.state});
    Var<T> dy;
    if (!st.eval(t, std::span<const Var<T>>(&y, 1), std::span<Var<T>>(&dy, 1))) {
      st.fail(t, "f(t, y) at a recomputed stage is NaN or Inf");
    }
    eval.stop();
    tape.backward(dy, TensorView<const T>{cot, ctx.state});
    kernels::add_to(tape.grad(y).data, adj_y, n);
    eval.collect();
  };

  for (std::int64_t idx = ctx.steps.size - 1; idx >= 0; --idx) {
    const KeptStep<T>& rec = ctx.steps.items[idx];
    const T t = rec.t, h = rec.h;
    typename Tape<T>::Scope scope(tape);
    Var<T> y0 = tape.constant(TensorView<const T>{rec.y, ctx.state});
    Var<T> k[kMaxStages];
    for (int i = 0; i < S; ++i) k[i] = tape.constant(TensorView<const T>{K[i], ctx.state});
    // Y_i = y0 + h sum_{j < i} a_ij k_j, unrecorded, into yi: the same
    // arithmetic as the forward step's, so the same values.
    auto stage_value = [&](int i) {
      typename Tape<T>::RecordingGuard off(tape, false);
      typename Tape<T>::Scope inner(tape);
      Var<T> v = y0;
      if (i > 0) {
        st.combine(std::span<const Var<T>>(&y0, 1), h, tab.a[i], i, std::span<const Var<T>>(k, S),
                   std::span<Var<T>>(&v, 1));
      }
      std::memcpy(yi, v.data(), bytes);
    };
    // The stages, one at a time (each evaluation's intermediates rewound).
    for (int i = 0; i < S; ++i) {
      stage_value(i);
      typename Tape<T>::RecordingGuard off(tape, false);
      typename Tape<T>::Scope inner(tape);
      Var<T> yv = tape.constant(TensorView<const T>{yi, ctx.state});
      Var<T> ki;
      if (!st.eval(t + static_cast<T>(tab.c[i]) * h, std::span<const Var<T>>(&yv, 1), std::span<Var<T>>(&ki, 1))) {
        st.fail(t, "a recomputed stage is NaN or Inf");
      }
      std::memcpy(K[i], ki.data(), bytes);
    }
    for (int i = 0; i < S; ++i) std::memset(L[i], 0, bytes);
    std::memset(c_f1, 0, bytes);
    bool need_f1 = false;
    std::memcpy(a0, lam, bytes);
    // Outputs inside the step: at its end, they add to the adjoint of y1;
    // inside, v = y0 + h sum_i w_i k_i (+ h w_f1 f(t_end, y1)) sends g to
    // y0 and h w_i g to stage i (L_i gains w_i / B_i g).
    replay.outputs_in(t, rec.t_end, [&](T to, const T* g, bool exact) {
      if (exact) {
        kernels::add_to(g, lam, n);
        kernels::add_to(g, a0, n);
        return;
      }
      const DenseWeights w = dense_weights(tab, static_cast<double>((to - t) / h));
      kernels::add_to(g, a0, n);
      for (int i = 0; i < S; ++i) {
        if (w.w[i] != 0.0) axpy(static_cast<T>(w.w[i] / p.b[i]), g, L[i], n);
      }
      if (w.w_f1 != 0.0) {
        axpy(h * static_cast<T>(w.w_f1), g, c_f1, n);
        need_f1 = true;
      }
    });
    if (need_f1) {
      // The adjoint of y1 gains the VJP of f at the step's end (Hermite
      // output of a method without FSAL: y1 = y0 + h sum_i b_i k_i).
      {
        typename Tape<T>::RecordingGuard off(tape, false);
        typename Tape<T>::Scope inner(tape);
        Var<T> v;
        st.combine(std::span<const Var<T>>(&y0, 1), h, tab.b, S, std::span<const Var<T>>(k, S),
                   std::span<Var<T>>(&v, 1));
        std::memcpy(y1, v.data(), bytes);
      }
      std::memset(u, 0, bytes);
      vjp(rec.t_end, y1, c_f1, u);
      kernels::add_to(u, lam, n);
      kernels::add_to(u, a0, n);
    }
    // The partner, last stage first: L_i = carry_i lam + sum_{j > i} ...,
    // stage i's VJP taken with cotangent h B_i L_i (giving l_i, the adjoint
    // of the stage value Y_i), which then feeds L_j for j < i.
    for (int i = S - 1; i >= 0; --i) {
      if (p.carry[i] != 0.0) axpy(static_cast<T>(p.carry[i]), lam, L[i], n);
      if (all_zero(L[i], n)) continue;  // e.g. an FSAL stage no output reads
      stage_value(i);
      const T hb = h * static_cast<T>(p.b[i]);
      for (Index e = 0; e < n; ++e) u[e] = hb * L[i][e];
      T* li = L[i];  // reused: L_i is not needed once its cotangent is formed
      std::memset(li, 0, bytes);
      vjp(t + static_cast<T>(tab.c[i]) * h, yi, u, li);
      kernels::add_to(li, a0, n);
      for (int j = 0; j < i; ++j) {
        const double coeff = (p.b[i] - p.a[j][i]) / p.b[i];
        if (coeff != 0.0) axpy(static_cast<T>(coeff), li, L[j], n);
      }
    }
    std::memcpy(lam, a0, bytes);
    ++ctx.stats->accepted_backward;
  }
  replay.finish();
}

}  // namespace

template <class T>
Var<T> odeint_symplectic(Dynamics<T>& f, Var<T> h0, std::span<const T> times, Var<T> t1, const SolverOptions& o,
                         SolveStats* stats) {
  Tape<T>& tape = h0.tape();
  auto* ctx = arena_array<SymplecticContext<T>>(tape, 1);
  init_record(*ctx, tape, f, h0, times, o, stats);
  ctx->end_time_input = t1.valid();
  std::optional<KeepAll<T>> store;
  return replay_forward<T>(tape, *ctx, f, h0, times, t1, o, symplectic_name(o.method), "odeint_symplectic",
                           &symplectic_backward<T>, [&](bool record) -> StepStore<T>* {
                             ctx->steps.clear();
                             if (!record) return nullptr;
                             store.emplace(tape, *ctx);
                             return &*store;
                           });
}

template Var<float> odeint_symplectic<float>(Dynamics<float>&, Var<float>, std::span<const float>,
                                             Var<float>, const SolverOptions&, SolveStats*);
template Var<double> odeint_symplectic<double>(Dynamics<double>&, Var<double>, std::span<const double>,
                                               Var<double>, const SolverOptions&, SolveStats*);

}  // namespace anode::ode::internal
