#include "ode/step_replay.h"

#include <cstring>
#include <limits>

#include "autodiff/kernels.h"

namespace anode::ode::internal {

template <class T>
StepReplay<T>::StepReplay(Tape<T>& tape, const Node<T>& node, const SolveRecord<T>& r, const char* what,
                          bool end_time_input)
    : tape_(tape),
      r_(r),
      what_(what),
      sys_(*r.f),
      stepper_(sys_, tableau(r.options.method), what, &r.stats->nfe_backward),
      K_(r.ntimes - 1),
      n_(r.state.numel()),
      cot_(tape.out_adj(node)),
      eps_(std::numeric_limits<T>::epsilon()),
      dir_(r.times[K_] > r.times[0] ? T(1) : T(-1)),
      out_i_(K_ - 1) {
  const int P = r.nparams, C = r.ncaptured;
  // Input adjoints, fetched before any nested scope (inside one, older
  // slots read as constants): h0's, the parameters', the captured values'.
  g_h0_ = tape.in_adj(node, 0);
  g_theta_ = tape.template scratch<T*>(static_cast<std::size_t>(P + C) + 1);
  for (int i = 0; i < P + C; ++i) g_theta_[i] = tape.in_adj(node, 1 + i);
  g_step_ = tape.template scratch<T*>(static_cast<std::size_t>(C) + 1);
  for (int i = 0; i < C; ++i) g_step_[i] = tape.scratch(tape.slot(r.captured[i]).shape.numel());
  a_ = tape.scratch(n_);
  std::memset(a_, 0, sizeof(T) * n_);
  seeds_ = arena_array<Var<T>>(tape, K_ + 1);
  cots_ = arena_array<TensorView<const T>>(tape, K_ + 1);
  T* g_t1 = end_time_input ? tape.in_adj(node, 1 + P + C) : nullptr;
  if (g_t1 != nullptr) {
    const T* hout = tape.slot(node.out).value;  // the forward outputs, [K, ...] or the state's shape
    end_time_gradient<T>(tape, r, TensorView<const T>{hout + (K_ - 1) * n_, r.state}, cot_ + (K_ - 1) * n_,
                         g_t1);
  }
}

template <class T>
void StepReplay<T>::advance(T t, T h, const T* y, T* out) {
  typename Tape<T>::RecordingGuard off(tape_, false);
  typename Tape<T>::Scope scope(tape_);
  Var<T> y0 = tape_.constant(TensorView<const T>{y, r_.state});
  Var<T> k[kMaxStages];
  Var<T> y1;
  stepper_.step(t, h, std::span<const Var<T>>(&y0, 1), std::span<Var<T>>(k, stepper_.tableau().stages),
                std::span<Var<T>>(&y1, 1));
  std::memcpy(out, y1.data(), sizeof(T) * n_);
  ++r_.stats->recomputed;
}

template <class T>
void StepReplay<T>::reverse(T t, T h, T t_end, const T* y, bool last_step) {
  const int S = stepper_.tableau().stages;
  typename Tape<T>::RecordingGuard record(tape_, true);
  typename Tape<T>::Scope scope(tape_);
  Evaluation eval(*this);
  Var<T> y0 = tape_.input(TensorView<const T>{y, r_.state});
  Var<T> k[kMaxStages];
  Var<T> y1, f1;
  bool f1_ready = false;
  int nseeds = 0;
  stepper_.step(t, h, std::span<const Var<T>>(&y0, 1), std::span<Var<T>>(k, S), std::span<Var<T>>(&y1, 1));
  if (!last_step) {
    seeds_[nseeds] = y1;
    cots_[nseeds++] = TensorView<const T>{a_, r_.state};
  }
  outputs_in(t, t_end, [&](T to, const T* g, bool exact) {
    Var<T> v = y1;
    if (!exact) {
      const double theta = static_cast<double>((to - t) / h);
      stepper_.interpolate(t, h, theta, std::span<const Var<T>>(&y0, 1), std::span<const Var<T>>(k, S),
                           std::span<const Var<T>>(&y1, 1), std::span<Var<T>>(&f1, 1), f1_ready,
                           std::span<Var<T>>(&v, 1));
    }
    seeds_[nseeds] = v;
    cots_[nseeds++] = TensorView<const T>{g, r_.state};
  });
  eval.stop();
  tape_.backward(std::span<const Var<T>>(seeds_, nseeds), std::span<const TensorView<const T>>(cots_, nseeds));
  std::memcpy(a_, tape_.grad(y0).data, sizeof(T) * n_);
  eval.collect();
  ++r_.stats->accepted_backward;
}

template <class T>
StepReplay<T>::Evaluation::Evaluation(StepReplay& replay)
    : rp_(replay), watching_(replay.tape_, &reads_->watch), lifted_(replay.tape_, replay.r_, replay.g_step_) {
  reads_->reset(static_cast<std::int32_t>(replay.tape_.num_slots()), {});
}

template <class T>
void StepReplay<T>::Evaluation::stop() {
  watching_.stop();
  check_captured<T>(rp_.r_, rp_.tape_, reads_->captured, rp_.what_);
}

template <class T>
void StepReplay<T>::Evaluation::collect() {
  for (const auto& entry : watching_.entries()) {
    const T* adj = rp_.tape_.slot(entry.slot).adj;
    if (adj == nullptr) continue;
    const int i = param_index(rp_.r_, entry.param, rp_.what_);
    if (rp_.g_theta_[i]) kernels::add_to(adj, rp_.g_theta_[i], entry.param->size());
  }
  const int P = rp_.r_.nparams;
  for (int i = 0; i < rp_.r_.ncaptured; ++i) {
    const Index size = rp_.tape_.slot(rp_.r_.captured[i]).shape.numel();
    if (rp_.g_theta_[P + i]) kernels::add_to(rp_.g_step_[i], rp_.g_theta_[P + i], size);
  }
}

template <class T>
void StepReplay<T>::finish() {
  if (g_h0_) kernels::add_to(a_, g_h0_, n_);
}

template class StepReplay<float>;
template class StepReplay<double>;

}  // namespace anode::ode::internal
