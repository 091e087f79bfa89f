#ifndef ANODE_ODE_INTERNAL_H_
#define ANODE_ODE_INTERNAL_H_

// Pieces shared by the gradient methods (internal to //ode).

#include <algorithm>
#include <cstdint>
#include <new>
#include <span>
#include <string>
#include <vector>

#include "ode/driver.h"
#include "ode/solver.h"

namespace anode::ode::internal {

/// What a solve's dynamics reads that can carry a gradient, found while it
/// runs (so parameters() need not be trusted): every parameter it records
/// with tape.param() (f.parameters() first, then any it does not list), and
/// every differentiable value recorded before the solve that it reads (a Var
/// captured from outside, by slot). The adjoint and checkpoint methods make
/// all of them inputs of the solve node.
template <class T>
struct Reads {
  std::vector<Parameter<T>*> params;
  std::vector<std::int32_t> captured;
  ReadWatch watch{0, nullptr};
  bool any() const { return !params.empty() || !captured.empty(); }
  /// Starts over for a solve whose own slots begin at `below`, listing f's
  /// declared parameters first.
  void reset(std::int32_t below, const std::vector<Parameter<T>*>& declared) {
    params.assign(declared.begin(), declared.end());
    captured.clear();
    watch = ReadWatch{below, &captured};
  }
  void add_param(Parameter<T>* p) {
    if (std::find(params.begin(), params.end(), p) == params.end()) params.push_back(p);
  }
};

/// RAII: a per-thread Reads object for the duration of one solve (nested
/// solves get their own); reused across solves, so steady state allocates
/// nothing.
template <class T>
class ReadsLease {
 public:
  ReadsLease();
  ~ReadsLease();
  ReadsLease(const ReadsLease&) = delete;
  ReadsLease& operator=(const ReadsLease&) = delete;
  Reads<T>& operator*() { return *reads_; }
  Reads<T>* operator->() { return reads_; }

 private:
  Reads<T>* reads_;
};

/// RAII: while alive, param() leaves recorded on `tape` go to the per-thread
/// ParamLog (this guard's entries()) and reads of values below the watch's
/// mark to `watch` (if given). stop() (or the destructor) restores the
/// tape's previous log and watch; the destructor also drops the entries.
template <class T>
class Watching {
 public:
  Watching(Tape<T>& tape, ReadWatch* watch);
  ~Watching();
  Watching(const Watching&) = delete;
  Watching& operator=(const Watching&) = delete;
  void stop();
  std::span<const typename ParamLog<T>::Entry> entries() const;

 private:
  Tape<T>& tape_;
  ParamLog<T>& log_;
  std::size_t base_;
  ParamLog<T>* outer_log_;
  ReadWatch* outer_watch_;
  bool stopped_ = false;
};

/// dh/dt = f(t, h) as a one-piece RkSystem, checking f's output shape. With
/// `reads`, every evaluation adds what f reads to it.
template <class T>
class PrimalSystem : public RkSystem<T> {
 public:
  explicit PrimalSystem(Dynamics<T>& f, Reads<T>* reads = nullptr) : f_(f), reads_(reads) {}
  int pieces() const override { return 1; }
  void eval(T t, std::span<const Var<T>> y, std::span<Var<T>> dy) override {
    Var<T> r;
    if (reads_ == nullptr) {
      r = f_(t, y[0]);
    } else {
      Watching<T> watching(y[0].tape(), &reads_->watch);
      r = f_(t, y[0]);
      for (const auto& e : watching.entries()) reads_->add_param(e.param);
    }
    if (!r.valid() || &r.tape() != &y[0].tape() || r.shape() != y[0].shape()) {
      throw ShapeError("odeint: the dynamics returned " +
                       (r.valid() ? r.shape().str() : std::string("an empty Var")) +
                       " for a state of shape " + y[0].shape().str() +
                       " (it must return dh/dt, shaped like h, on h's tape)");
    }
    dy[0] = r;
  }

 private:
  Dynamics<T>& f_;
  Reads<T>* reads_;
};

/// Checks times and options; throws SolverError naming the solver and the fault.
template <class T>
void check_solve(const char* what, Var<T> h0, std::span<const T> times, const SolverOptions& o);

/// Shape of odeint's result: h0's, or [K, ...] for K > 1 outputs.
Shape output_shape(const Shape& state, std::size_t outputs);

/// An uninitialized-then-constructed array of n trivially destructible
/// objects in the tape's arena (lives until the tape is cleared or rewound).
template <class U, class T>
U* arena_array(Tape<T>& tape, std::size_t n) {
  U* p = tape.template scratch<U>(n);
  for (std::size_t i = 0; i < n; ++i) new (p + i) U();
  return p;
}

/// What the adjoint and checkpoint nodes keep about their solve (in the
/// tape's arena: trivially destructible).
template <class T>
struct SolveRecord {
  Dynamics<T>* f;
  SolverOptions options;
  SolveStats* stats;  // the caller's, or &own
  SolveStats own;
  const T* times;     // a copy, in the arena
  int ntimes;
  Shape state;
  // What f reads (Reads, copied into the arena once the forward solve ends):
  // the node's inputs after h0 are these parameters' leaves, then these
  // captured values.
  Parameter<T>** params;
  int nparams;
  const std::int32_t* captured;
  int ncaptured;
};

/// Fills a record for a solve of f from h0 at `times` (copying the times into
/// the arena) and resets the counters.
template <class T>
void init_record(SolveRecord<T>& r, Tape<T>& tape, Dynamics<T>& f, Var<T> h0, std::span<const T> times,
                 const SolverOptions& o, SolveStats* stats) {
  r.f = &f;
  r.options = o;
  r.stats = stats ? stats : &r.own;
  r.stats->reset();
  T* saved = tape.scratch(times.size());
  std::copy(times.begin(), times.end(), saved);
  r.times = saved;
  r.ntimes = static_cast<int>(times.size());
  r.state = h0.shape();
  r.params = nullptr;
  r.nparams = 0;
  r.captured = nullptr;
  r.ncaptured = 0;
}

/// Copies what the forward solve found f reading into the record.
template <class T>
void finish_record(SolveRecord<T>& r, Tape<T>& tape, const Reads<T>& reads, const char* what) {
  if (reads.captured.size() > static_cast<std::size_t>(kMaxPieces - 2)) {
    throw SolverError(std::string(what) + ": the dynamics reads " + std::to_string(reads.captured.size()) +
                      " differentiable values captured from outside the solve; at most " +
                      std::to_string(kMaxPieces - 2) + " are supported (stack them into one)");
  }
  r.nparams = static_cast<int>(reads.params.size());
  r.params = tape.template scratch<Parameter<T>*>(reads.params.size() + 1);
  std::copy(reads.params.begin(), reads.params.end(), r.params);
  r.ncaptured = static_cast<int>(reads.captured.size());
  std::int32_t* c = tape.template scratch<std::int32_t>(reads.captured.size() + 1);
  std::copy(reads.captured.begin(), reads.captured.end(), c);
  r.captured = c;
}

/// The index of p in the record's parameters; a SolverError naming p if the
/// backward pass saw f use a parameter the forward solve did not.
template <class T>
int param_index(const SolveRecord<T>& r, const Parameter<T>* p, const char* what);

/// A SolverError if f read, in a backward-pass evaluation, a differentiable
/// value captured from outside that the forward solve did not see it read
/// (`found`: the reads of that evaluation).
template <class T>
void check_captured(const SolveRecord<T>& r, Tape<T>& tape, std::span<const std::int32_t> found,
                    const char* what);

/// RAII: lifts the record's captured values (Tape::lift) into `buffers`
/// (one per value, each its size) for a nested evaluation; unlifts them on
/// destruction.
template <class T>
class LiftCaptured {
 public:
  LiftCaptured(Tape<T>& tape, const SolveRecord<T>& r, T* const* buffers) : tape_(tape), n_(r.ncaptured) {
    for (int i = 0; i < n_; ++i) lifted_[i] = tape.lift(r.captured[i], buffers[i]);
  }
  ~LiftCaptured() {
    for (int i = n_; i-- > 0;) tape_.unlift(lifted_[i]);
  }
  LiftCaptured(const LiftCaptured&) = delete;
  LiftCaptured& operator=(const LiftCaptured&) = delete;

 private:
  Tape<T>& tape_;
  int n_;
  typename Tape<T>::Lifted lifted_[kMaxPieces];
};

/// The inputs of a solve node: h0, a leaf per parameter f reads, each
/// captured value f reads, and the end time when given (an arena array of
/// `count` Vars).
template <class T>
Var<T>* node_inputs(Tape<T>& tape, const SolveRecord<T>& r, Var<T> h0, Var<T> t1, std::size_t* count) {
  const std::size_t P = static_cast<std::size_t>(r.nparams), C = static_cast<std::size_t>(r.ncaptured);
  *count = 1 + P + C + (t1.valid() ? 1 : 0);
  Var<T>* inputs = arena_array<Var<T>>(tape, *count);
  inputs[0] = h0;
  for (std::size_t i = 0; i < P; ++i) inputs[1 + i] = tape.param(*r.params[i]);
  for (std::size_t i = 0; i < C; ++i) inputs[1 + P + i] = Var<T>(&tape, r.captured[i]);
  if (t1.valid()) inputs[*count - 1] = t1;
  return inputs;
}

/// Whether a solve of f from h0 can need a gradient: h0 needs one, f lists
/// parameters, or (probed by one evaluation of f at (t0, h0), unrecorded and
/// not counted) f reads a parameter or a captured differentiable value. A
/// solve told "no" still watches what f reads and is redone if it reads
/// something later (f whose reads depend on t or h): the probe keeps the
/// common case to one solve.
template <class T>
bool may_need_gradient(Dynamics<T>& f, Var<T> h0, T t0);

/// The forward solve of a method that records nothing per step (kFlat):
/// integrates f from h0 over `times` and returns odeint's result in a new
/// slot (not recorded; the caller records the solve node). With `reads`,
/// finds what f reads. `store` (may be null) sees every accepted step. With
/// `keep_scratch`, the driver's buffers and whatever the store allocates
/// stay in the arena; otherwise they are rewound.
template <class T>
Var<T> solve_flat(Tape<T>& tape, Dynamics<T>& f, Var<T> h0, std::span<const T> times,
                  const SolverOptions& o, SolveStats& stats, Reads<T>* reads, StepStore<T>* store,
                  bool keep_scratch);

/// Counters for one driver: the forward or the backward fields of `s`.
inline Counters forward_counters(SolveStats& s) { return {&s.nfe_forward, &s.accepted, &s.rejected}; }
inline Counters backward_counters(SolveStats& s) {
  return {&s.nfe_backward, &s.accepted_backward, &s.rejected_backward};
}

/// One evaluation of the adjoint's right-hand side at (t, h) for adjoint a
/// (shaped like h), on a nested recorded scope of `tape`: fh = f(t, h),
/// da = -a^T df/dh and dtheta[i] = -a^T df/d(input i) for each parameter and
/// then each captured value of the record (each null: not wanted). Throws
/// what a backward pass must: f's shape changed, f used a parameter or a
/// captured value the forward solve did not see it use, or (fh null: the
/// caller does not integrate f's value, so cannot see it) f is NaN or Inf.
template <class T>
void adjoint_rhs(Tape<T>& tape, const SolveRecord<T>& r, T t, TensorView<const T> h, const T* a, T* fh,
                 T* da, T* const* dtheta, const char* what);

/// d(loss)/d(t1) += <a(t1), f(t1, h(t1))> (one evaluation of f, unrecorded,
/// counted as backward).
template <class T>
void end_time_gradient(Tape<T>& tape, const SolveRecord<T>& r, TensorView<const T> h1, const T* a1, T* g_t1);

template <class T>
Var<T> odeint_adjoint(Dynamics<T>& f, Var<T> h0, std::span<const T> times, Var<T> t1,
                      const SolverOptions& o, SolveStats* stats);
template <class T>
Var<T> odeint_interpolating(Dynamics<T>& f, Var<T> h0, std::span<const T> times, Var<T> t1,
                            const SolverOptions& o, SolveStats* stats);
template <class T>
Var<T> odeint_quadrature(Dynamics<T>& f, Var<T> h0, std::span<const T> times, Var<T> t1,
                         const SolverOptions& o, SolveStats* stats);
template <class T>
Var<T> odeint_checkpoint(Dynamics<T>& f, Var<T> h0, std::span<const T> times,
                         const SolverOptions& o, SolveStats* stats);
template <class T>
Var<T> odeint_binomial(Dynamics<T>& f, Var<T> h0, std::span<const T> times, Var<T> t1,
                       const SolverOptions& o, SolveStats* stats);
template <class T>
Var<T> odeint_symplectic(Dynamics<T>& f, Var<T> h0, std::span<const T> times, Var<T> t1,
                         const SolverOptions& o, SolveStats* stats);

}  // namespace anode::ode::internal

#endif  // ANODE_ODE_INTERNAL_H_
