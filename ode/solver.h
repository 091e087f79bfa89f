#ifndef ANODE_ODE_SOLVER_H_
#define ANODE_ODE_SOLVER_H_

// odeint: solve dh/dt = f(t, h) on a tape, with a choice of gradient method.
//
//   ode::SolverOptions opt;                 // dopri5, rtol 1e-3, atol 1e-6
//   opt.gradient = ode::Gradient::kAdjoint;
//   Var<float> h1 = ode::odeint(dynamics, h0, {0.0, 1.0}, opt, &stats);
//   std::vector<float> ts = {0, 0.5, 1};   // or an array, std::array, std::span
//   Var<float> hs = ode::odeint(dynamics, h0, ts, opt);   // [2, ...]

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "autodiff/tape.h"
#include "ode/dynamics.h"
#include "ode/tableau.h"

namespace anode::ode {

/// A solve that cannot proceed: bad options or times, non-finite state, step
/// size underflow, too many steps. The message names the solver, the time
/// reached and the cause.
class SolverError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// How gradients flow through a solve (the forward numbers are the same).
enum class Gradient {
  /// Discretize-then-optimize: every accepted step is recorded on the tape;
  /// the gradient is exact for the discrete solution. Memory grows with steps.
  kBackprop,
  /// Optimize-then-discretize (Chen et al. 2018): the solve is one tape node;
  /// its backward integrates [h, a, a_theta] from the last output time to the
  /// first. Memory does not grow with steps; the gradient is accurate to the
  /// adjoint solve's tolerance.
  kAdjoint,
  /// The forward stores the state at accepted steps (at most
  /// `checkpoint_states` of them); the backward re-runs each step on a scratch
  /// scope and backpropagates through it: the exact discrete gradient with
  /// memory O(states kept), not O(steps x stages).
  kCheckpoint,
  /// Optimize-then-discretize, SciMLSensitivity's InterpolatingAdjoint: the
  /// solve is one tape node whose backward integrates only [a, a_theta] from
  /// the last output time to the first, reading h(t) from the forward's
  /// dense output (each accepted step's interpolant, kept by the forward)
  /// instead of integrating h backward: no instability where the flow
  /// contracts. Memory grows with the forward steps (one state per stage per
  /// step); accurate to both solves' tolerances.
  kInterpolating,
  /// As kInterpolating, but the forward keeps only the states at the output
  /// times (the checkpoints); the backward re-solves each interval between
  /// two of them forward, densely, with the adjoint tolerances, then
  /// integrates [a, a_theta] across it. Memory: one interval's steps. The
  /// study's configuration (InterpolatingAdjoint(checkpointing = true)); its
  /// re-solve steps and evaluations count as backward in SolveStats.
  kInterpolatingCheckpoint,
  /// Optimize-then-discretize, SciMLSensitivity's QuadratureAdjoint: the
  /// forward keeps its dense output; the backward integrates a alone (h from
  /// the interpolant) and forms d(loss)/d(theta) = integral of a^T df/dtheta
  /// by Gauss-Legendre quadrature on each backward step (ceil(order / 2)
  /// nodes, one VJP each). Its error control sees only a, so it is cheaper
  /// when parameters outnumber states. Memory as kInterpolating.
  kQuadrature,
  /// Binomial checkpointing (Griewank's revolve): the forward records each
  /// accepted step's size; the backward reverses the steps with at most
  /// `checkpoint_states` stored states (state 0 among them; 0: one per
  /// step) under the schedule with the fewest recomputed steps (each step
  /// recomputed at most r times for N <= C(c + r, r)), replaying the
  /// recorded sizes. The exact discrete gradient; memory O(budget) states.
  /// SolveStats::recomputed counts the recomputed steps.
  kBinomial,
  /// Symplectic adjoint (Matsubara, Miyatake & Yaguchi 2021): the forward
  /// stores every accepted step's start state; the backward integrates the
  /// adjoint over each step with the symplectic partner of the tableau,
  /// recomputing the step's stage values and evaluating f on the tape one
  /// stage at a time. The exact discrete gradient; memory O(N + s) states
  /// plus one evaluation of f (checkpoint holds a whole step's s).
  kSymplectic,
};

/// "backprop", "adjoint", "checkpoint", "interpolating",
/// "interpolating_checkpoint", "quadrature", "binomial", "symplectic".
Gradient parse_gradient(std::string_view name);
const char* gradient_name(Gradient g);
/// Whether g integrates an adjoint system backward (adjoint, interpolating,
/// interpolating_checkpoint, quadrature): its backward tolerances are
/// adjoint_rtol / adjoint_atol, and it gives the end-time gradient.
bool is_adjoint_family(Gradient g);

struct SolverOptions {
  Method method = Method::kDopri5;
  /// Adaptive methods: per-element error scaled by atol + rtol * max(|y0|, |y1|).
  double rtol = 1e-3;
  double atol = 1e-6;
  /// Fixed-step integration: `steps` equal steps over [t_0, t_K], or steps of
  /// at most `step_size`. Required for euler, midpoint and rk4; when set for an
  /// adaptive method it switches that method to fixed steps.
  int steps = 0;
  double step_size = 0;
  /// Adaptive: first step (0: Hairer-Norsett-Wanner automatic choice).
  double first_step = 0;
  /// Adaptive: smallest allowed |step| (0: 1e-12 * |t_K - t_0|). Going below it
  /// is a SolverError.
  double min_step = 0;
  /// Most steps per solve: accepted + rejected for adaptive methods, the
  /// step count (steps, or the span over step_size) for fixed steps; a solve
  /// that needs more is a SolverError, never a hang.
  int max_steps = 100000;
  /// PI step-size controller: h_new = h * clamp(safety * err^-a * err_prev^b)
  /// with a = 1/k - 0.75 b, k = error order + 1; factors clamped to
  /// [min_factor, max_factor] (no growth right after a rejection).
  double safety = 0.9;
  double min_factor = 0.2;
  double max_factor = 10.0;
  double pi_beta = 0.04;

  Gradient gradient = Gradient::kBackprop;
  /// Adjoint solve tolerances (0: use rtol / atol): the backward solve of
  /// every adjoint-family method, and the interpolating_checkpoint re-solve.
  double adjoint_rtol = 0;
  double adjoint_atol = 0;
  /// Adjoint and interpolating: leave a_theta out of the error norm (Kidger
  /// et al. 2021's seminorm): fewer backward steps, same accuracy in h and a.
  bool adjoint_seminorm = false;
  /// Checkpoint: most step-start states kept from the forward solve for the
  /// backward pass (0: every step's). A longer solve keeps every 2nd, 4th, ...
  /// state, and the backward pass recomputes the others from the nearest kept
  /// one (one more forward evaluation of those steps): memory O(budget + steps
  /// / budget) states, the same gradient.
  /// Binomial: the budget of its schedule, with the same meaning (state 0
  /// counts; 1 keeps only state 0 and recomputes every step from it).
  int checkpoint_states = 64;
  /// Global step control (e.g. data-parallel training over MPI, where each
  /// process solves its shard of one batch): when set, every error norm's
  /// per-piece sums of squared scaled errors and element counts (`pieces`
  /// of each) are passed to reduce_norm(reduce_context, sums, counts, pieces)
  /// to be summed in place across the processes before the norm is taken,
  /// so that every process takes the steps that one process would take on
  /// the whole batch. Called alike on every process (for each trial step,
  /// the automatic first step's norms, and the backward solves' steps); a
  /// process whose stage is not finite passes NaN sums. The context must
  /// outlive the tape's backward pass. A plain pointer pair keeps the
  /// options trivially copyable (solves store them in the tape's arena).
  void (*reduce_norm)(void* context, double* sums, double* counts, int pieces) = nullptr;
  void* reduce_context = nullptr;
};

/// Counters of one solve; the backward fields are filled when the tape's
/// backward pass reaches the solve (keep this object alive until then).
struct SolveStats {
  std::int64_t nfe_forward = 0;   // evaluations of f in the forward solve
  std::int64_t nfe_backward = 0;  // evaluations of f (or its VJP) in the backward pass
  std::int64_t accepted = 0;      // forward steps
  std::int64_t rejected = 0;
  std::int64_t accepted_backward = 0;  // adjoint solve (and re-solve) steps; steps replayed (checkpoint methods, symplectic)
  std::int64_t rejected_backward = 0;
  std::int64_t recomputed = 0;  // checkpoint methods: steps re-run unrecorded to recompute a state
  void reset() { *this = SolveStats{}; }
  SolveStats& operator+=(const SolveStats& o);
};

/// Solves dh/dt = f(t, h) with h(times[0]) = h0 and returns h at times[1..K]:
/// shaped like h0 when K == 1, else stacked along a new first axis [K, ...]
/// (rank-2 or rank-3 states). Times must be finite and strictly monotone
/// (decreasing times solve backward). Intermediate outputs come from each
/// method's dense output; the last time is hit exactly. Gradients flow to h0
/// and to f's parameters by options.gradient. `stats` may be null; if given
/// it is overwritten by the forward solve and added to by the backward pass.
template <class T>
Var<T> odeint(Dynamics<T>& f, Var<T> h0, std::span<const T> times, const SolverOptions& options,
              SolveStats* stats = nullptr);

/// As above, with the times in any contiguous container of T (std::vector,
/// std::array, a C array), T deduced from f and h0: `odeint(f, h0, ts, opt)`.
/// The times are copied; the container need not outlive the call.
template <class T, class Times>
  requires std::convertible_to<const Times&, std::span<const T>> &&
           (!std::same_as<std::remove_cvref_t<Times>, std::span<const T>>)
Var<T> odeint(Dynamics<T>& f, Var<T> h0, const Times& times, const SolverOptions& options,
              SolveStats* stats = nullptr) {
  return odeint<T>(f, h0, std::span<const T>(times), options, stats);
}

/// As above, with the times in a contiguous container of another arithmetic
/// type (a std::vector<double> for a float solve): each is converted to T
/// (into the tape's arena: no heap allocation).
template <class T, class Times>
  requires std::ranges::contiguous_range<const Times&> &&
           std::is_arithmetic_v<std::ranges::range_value_t<Times>> &&
           (!std::convertible_to<const Times&, std::span<const T>>)
Var<T> odeint(Dynamics<T>& f, Var<T> h0, const Times& times, const SolverOptions& options,
              SolveStats* stats = nullptr) {
  const std::size_t n = std::ranges::size(times);
  T* converted = h0.valid() ? h0.tape().template scratch<T>(n) : nullptr;
  if (converted == nullptr) return odeint<T>(f, h0, std::span<const T>(), options, stats);
  std::size_t i = 0;
  for (const auto& t : times) converted[i++] = static_cast<T>(t);
  return odeint<T>(f, h0, std::span<const T>(converted, n), options, stats);
}

/// As above, with the times written in place: `odeint(f, h0, {0.0, 1.0}, opt)`
/// (double literals are fine for a float solve).
template <class T>
Var<T> odeint(Dynamics<T>& f, Var<T> h0, std::initializer_list<std::type_identity_t<T>> times,
              const SolverOptions& options, SolveStats* stats = nullptr) {
  return odeint<T>(f, h0, std::span<const T>(times.begin(), times.size()), options, stats);
}

/// As above for one interval [t0, t1], with the end time a Var: d(loss)/dt1
/// = <a(t1), f(t1, h(t1))> flows to it. Requires an adjoint-family method
/// (is_adjoint_family), binomial or symplectic (backprop and checkpoint
/// would need the derivative of the step sequence). The formula is the
/// continuous one for every method: the derivative of the exact solution,
/// which the discrete one approaches as the steps shrink.
template <class T>
Var<T> odeint(Dynamics<T>& f, Var<T> h0, T t0, Var<T> t1, const SolverOptions& options,
              SolveStats* stats = nullptr);

}  // namespace anode::ode

#endif  // ANODE_ODE_SOLVER_H_
