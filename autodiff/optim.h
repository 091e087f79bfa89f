#ifndef ANODE_AUTODIFF_OPTIM_H_
#define ANODE_AUTODIFF_OPTIM_H_

// Optimizers over Parameters: SGD (momentum, Nesterov, weight decay), Adam and
// AdamW, RMSprop (PyTorch's updates, term for term) and L-BFGS with a
// strong-Wolfe line search.
//
//   Adam<float> adam(model.params(), {.lr = 1e-3});
//   for (...) {
//     adam.zero_grad();
//     tape.clear();
//     tape.backward(loss(tape));          // fills Parameter::grad()
//     adam.step();
//   }
//   Lbfgs<float> lbfgs(model.params(), {.history_size = 20});
//   LbfgsResult r = lbfgs.minimize([&] {  // grads are zeroed before each call
//     tape.clear();
//     Var<float> l = loss(tape);
//     tape.backward(l);
//     return l.item();
//   });
//
// Every state buffer (momenta, moments, the L-BFGS history and work vectors)
// is allocated by the constructor: step(), zero_grad(), minimize() never touch
// the heap themselves (a closure's allocations are its own). Optimizers keep pointers to the parameters, which must
// outlive them and not move.
//
// Hyper-parameters are doubles for both scalar types; the per-step scalar
// coefficients are computed in double and rounded to T once, as PyTorch does
// with its Python-float hyper-parameters.

#include <cstdint>
#include <string_view>
#include <vector>

#include "autodiff/function_ref.h"
#include "autodiff/parameter.h"
#include "autodiff/tensor.h"

namespace anode {

// ---- First-order optimizers ---------------------------------------------------

/// Common interface of the gradient-step optimizers (Sgd, Adam, AdamW,
/// RMSprop), for training
/// loops and learning-rate schedules.
///
/// Non-finite values: step() does no finiteness checks. As in PyTorch, a NaN
/// or Inf gradient propagates into the parameters and into the optimizer state
/// (momentum, moments), which stay poisoned. Call grads_finite() (or check the
/// loss) before step() when a loss can blow up, and skip the step if it fails.
template <class T>
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// Updates every parameter from its Parameter::grad(). Does not zero grads.
  virtual void step() = 0;
  /// The current learning rate.
  virtual double lr() const = 0;
  /// Sets the learning rate for the following steps (schedules). ValueError
  /// unless lr is finite and >= 0 (a schedule may anneal to exactly 0).
  virtual void set_lr(double lr) = 0;

  /// Zeroes every parameter's gradient.
  void zero_grad();
  /// True if every gradient element of every parameter is finite.
  bool grads_finite() const;
  /// The parameters, in the order given to the constructor.
  const std::vector<Parameter<T>*>& params() const { return params_; }
  /// Number of step() calls so far.
  std::int64_t step_count() const { return step_count_; }

 protected:
  /// Validates the list (non-empty, no null, no duplicate); `who` names the
  /// optimizer in error messages.
  Optimizer(std::vector<Parameter<T>*> params, std::string_view who);

  std::vector<Parameter<T>*> params_;
  std::int64_t step_count_ = 0;
};

/// Options of Sgd. Defaults give plain gradient descent.
struct SgdOptions {
  /// Learning rate, > 0.
  double lr = 1e-2;
  /// Momentum factor mu, in [0, 1); 0 disables the momentum buffer.
  double momentum = 0;
  /// Dampening of the gradient added to the momentum buffer, in [0, 1].
  double dampening = 0;
  /// L2 penalty: wd * p is added to the gradient. >= 0.
  double weight_decay = 0;
  /// Nesterov momentum; needs momentum > 0 and dampening == 0.
  bool nesterov = false;
};

/// Stochastic gradient descent with PyTorch's torch.optim.SGD update:
///   g = grad + wd * p
///   b = g                              (first step)
///   b = mu * b + (1 - dampening) * g   (later steps)
///   g = g + mu * b  if nesterov,  else g = b      (only when mu > 0)
///   p = p - lr * g
/// The gradient buffers are read, never modified.
template <class T>
class Sgd final : public Optimizer<T> {
 public:
  /// ValueError naming the option and its value for bad options, and for an
  /// empty, null-containing or duplicated parameter list.
  Sgd(std::vector<Parameter<T>*> params, const SgdOptions& options = {});

  void step() override;
  double lr() const override { return options_.lr; }
  void set_lr(double lr) override;
  const SgdOptions& options() const { return options_; }

 private:
  SgdOptions options_;
  std::vector<Tensor<T>> momentum_;  // one per parameter; empty if mu == 0
};

/// Options of Adam; the defaults are PyTorch's.
struct AdamOptions {
  /// Learning rate, > 0.
  double lr = 1e-3;
  /// Decay of the first moment, in [0, 1).
  double beta1 = 0.9;
  /// Decay of the second moment, in [0, 1).
  double beta2 = 0.999;
  /// Added to the bias-corrected sqrt of the second moment, > 0 (0 would make
  /// a parameter whose gradient is always zero NaN).
  double eps = 1e-8;
  /// >= 0. An L2 penalty added to the gradient (torch.optim.Adam), or with
  /// decoupled_weight_decay a decay p *= 1 - lr * wd before the update
  /// (torch.optim.AdamW).
  double weight_decay = 0;
  bool decoupled_weight_decay = false;
};

/// Adam with exactly the update of PyTorch's torch.optim.Adam (single-tensor
/// CPU path, amsgrad off). With t = step_count() after the increment:
///   g  = grad + wd * p                          (coupled weight decay)
///   m  = lerp(m, g, 1 - beta1)                  (= beta1 m + (1 - beta1) g)
///   v  = beta2 v + (1 - beta2) g^2
///   p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// eps is added after the bias correction of sqrt(v), as PyTorch does (not
/// the "eps hat" of Kingma & Ba's efficient form). Scalars are computed in
/// double and rounded to T; elementwise work is in T, in PyTorch's order of
/// operations, so a float run tracks torch.optim.Adam to float rounding
/// (PyTorch's vectorized lerp may use an FMA). Every parameter is updated on
/// every step, even with a zero gradient (PyTorch skips only params whose
/// .grad is None, which a Parameter never is).
template <class T>
class Adam final : public Optimizer<T> {
 public:
  /// ValueError naming the option and its value for bad options, and for an
  /// empty, null-containing or duplicated parameter list.
  Adam(std::vector<Parameter<T>*> params, const AdamOptions& options = {});

  void step() override;
  double lr() const override { return options_.lr; }
  void set_lr(double lr) override;
  const AdamOptions& options() const { return options_; }

 private:
  AdamOptions options_;
  std::vector<Tensor<T>> m_;  // first moments, one per parameter
  std::vector<Tensor<T>> v_;  // second moments
};

/// Options of AdamW; the defaults are PyTorch's torch.optim.AdamW (note the
/// weight decay of 1e-2, where Adam's is 0).
struct AdamWOptions {
  /// Learning rate, > 0.
  double lr = 1e-3;
  /// Decay of the first moment, in [0, 1).
  double beta1 = 0.9;
  /// Decay of the second moment, in [0, 1).
  double beta2 = 0.999;
  /// Added to the bias-corrected sqrt of the second moment, > 0.
  double eps = 1e-8;
  /// Decoupled weight decay (Loshchilov & Hutter 2019), finite and >= 0.
  double weight_decay = 1e-2;
};

/// AdamW with exactly the update of PyTorch's torch.optim.AdamW (amsgrad off):
/// Adam without the L2 term in the gradient, the parameter instead shrunk by
/// lr * wd before the Adam step (the decay is "decoupled" from the moments,
/// so it is not rescaled by 1 / sqrt(v)). With t = step_count() after the
/// increment:
///   p *= 1 - lr * wd
///   m  = lerp(m, grad, 1 - beta1)
///   v  = beta2 v + (1 - beta2) grad^2
///   p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// The same as Adam with decoupled_weight_decay = true; set_lr() changes the
/// decay with the learning rate, as in PyTorch.
template <class T>
class AdamW final : public Optimizer<T> {
 public:
  /// ValueError naming the option and its value for bad options, and for an
  /// empty, null-containing or duplicated parameter list.
  AdamW(std::vector<Parameter<T>*> params, const AdamWOptions& options = {});

  void step() override;
  double lr() const override { return options_.lr; }
  void set_lr(double lr) override;
  const AdamWOptions& options() const { return options_; }

 private:
  AdamWOptions options_;
  std::vector<Tensor<T>> m_;  // first moments, one per parameter
  std::vector<Tensor<T>> v_;  // second moments
};

/// Options of RMSprop; the defaults are PyTorch's torch.optim.RMSprop.
struct RmspropOptions {
  /// Learning rate, > 0.
  double lr = 1e-2;
  /// Smoothing constant of the squared-gradient average, in [0, 1).
  double alpha = 0.99;
  /// Added to the root-mean-square, > 0 (0 would make a parameter whose
  /// gradient is always zero NaN).
  double eps = 1e-8;
  /// L2 penalty: wd * p is added to the gradient. Finite and >= 0.
  double weight_decay = 0;
  /// Momentum factor mu, in [0, 1); 0 disables the momentum buffer.
  double momentum = 0;
  /// Divide by an estimate of the gradient's variance (Graves 2013) instead of
  /// its raw second moment.
  bool centered = false;
};

/// RMSprop (Hinton's lecture 6e) with exactly the update of PyTorch's
/// torch.optim.RMSprop:
///   g   = grad + wd * p
///   v   = alpha v + (1 - alpha) g^2
///   avg = sqrt(v) + eps,  or if centered:  gm = alpha gm + (1 - alpha) g,
///         avg = sqrt(v - gm^2) + eps
///   b = mu b + g / avg,  p -= lr * b     (momentum > 0)
///   p -= lr * g / avg                     (otherwise)
/// v, gm and b start at 0; there is no bias correction, so early steps are
/// large (|step| up to lr / sqrt(1 - alpha) = 10 lr at the default alpha).
/// Where rounding makes v - gm^2 negative (it is >= 0 in exact arithmetic),
/// it is taken as 0 instead of PyTorch's NaN.
template <class T>
class Rmsprop final : public Optimizer<T> {
 public:
  /// ValueError naming the option and its value for bad options, and for an
  /// empty, null-containing or duplicated parameter list.
  Rmsprop(std::vector<Parameter<T>*> params, const RmspropOptions& options = {});

  void step() override;
  double lr() const override { return options_.lr; }
  void set_lr(double lr) override;
  const RmspropOptions& options() const { return options_; }

 private:
  RmspropOptions options_;
  std::vector<Tensor<T>> square_avg_;  // v, one per parameter
  std::vector<Tensor<T>> grad_avg_;    // gm; empty unless centered
  std::vector<Tensor<T>> momentum_;    // b; empty unless momentum > 0
};

// ---- Line search ----------------------------------------------------------------

/// Value and slope of phi(t) = f(x + t d): phi(t) and phi'(t) = grad f . d.
struct LinePoint {
  double phi;
  double dphi;
};

/// Options of strong_wolfe_line_search.
struct LineSearchOptions {
  /// Sufficient decrease: phi(t) <= phi(0) + c1 t phi'(0). 0 < c1 <= c2.
  double c1 = 1e-4;
  /// Curvature: |phi'(t)| <= c2 |phi'(0)|. c1 <= c2 < 1 (a point meeting both
  /// exists for any such pair when phi is bounded below along the ray).
  double c2 = 0.9;
  /// Evaluations of phi per search, >= 1.
  int max_evaluations = 25;
  /// The search gives up when the bracket [lo, hi] is narrower than this
  /// times max(lo, hi) (rounding noise dominates). >= 0.
  double interval_tolerance = 1e-12;
  /// Extrapolation never tries a step beyond this; > 0.
  double max_step = 1e10;
};

/// Why a line search returned.
enum class LineSearchStatus {
  kConverged,         ///< t satisfies the strong Wolfe conditions.
  kMaxEvaluations,    ///< Budget spent; t is the best sufficient-decrease point.
  kIntervalTooSmall,  ///< Bracket collapsed (rounding); t as above.
  kMaxStep,           ///< Extrapolation reached max_step still descending.
  kNonFinite,         ///< phi was NaN/Inf everywhere tried beyond t.
  kNotDescent,        ///< phi'(0) >= 0 (or non-finite): nothing was evaluated.
};

/// Result of a line search. t == 0 means no point with sufficient decrease
/// was found (phi and dphi are then phi(0), phi'(0)).
struct LineSearchResult {
  double t;
  double phi;
  double dphi;
  int evaluations;
  LineSearchStatus status;
};

/// A step t > 0 satisfying the strong Wolfe conditions for phi, starting the
/// trial at t_init (Nocedal & Wright, Algorithms 3.5 and 3.6: bracketing by
/// safeguarded cubic extrapolation, then a zoom by safeguarded cubic
/// interpolation that shrinks the bracket by at least 10% per evaluation).
/// phi0 and dphi0 are phi(0) and phi'(0). A NaN/Inf value or slope at a trial
/// point counts as a too-long step: the search backs off by bisection. A
/// trial meeting both conditions is returned at once, even if its phi ties an
/// earlier one to rounding (near a minimizer the slope still resolves what
/// phi cannot). When the conditions cannot be met, returns the lowest point
/// found that satisfies sufficient decrease (or t = 0) with the reason.
/// ValueError for bad options or t_init not finite and > 0.
LineSearchResult strong_wolfe_line_search(FunctionRef<LinePoint(double)> phi, double phi0,
                                          double dphi0, double t_init,
                                          const LineSearchOptions& options = {});

/// "converged", "max evaluations", ...
std::string_view to_string(LineSearchStatus status);

// ---- L-BFGS ------------------------------------------------------------------------

/// Options of Lbfgs.
struct LbfgsOptions {
  /// Number m of (s, y) pairs kept, >= 1.
  int history_size = 10;
  /// Iterations (accepted line searches) per minimize(), >= 1.
  int max_iterations = 1000;
  /// Closure calls per minimize(), >= 1. Never exceeded.
  int max_evaluations = 2500;
  /// Stop when max_i |g_i| <= grad_tolerance. >= 0.
  double grad_tolerance = 1e-7;
  /// Stop when an iteration changes the loss by at most
  /// loss_tolerance * max(|f_old|, |f_new|, 1) (SciPy's ftol). >= 0; 0 disables.
  double loss_tolerance = 1e-12;
  LineSearchOptions line_search = {};
};

/// Why Lbfgs::minimize stopped.
enum class LbfgsStop {
  kGradientTolerance,  ///< max |g_i| <= grad_tolerance.
  kLossTolerance,      ///< The last iteration changed the loss by <= loss_tolerance.
  kMaxIterations,      ///< max_iterations done (after a normal Lbfgs::step()).
  kMaxEvaluations,     ///< max_evaluations closure calls spent.
  kLineSearchFailed,   ///< No decrease along steepest descent either (rounding floor).
  kNonFinite,          ///< NaN/Inf loss or gradient at the start point, or
                       ///< everywhere the line search tried: parameters kept finite.
};

/// "gradient tolerance", "non-finite loss or gradient", ...
std::string_view to_string(LbfgsStop stop);

/// What Lbfgs::minimize did.
struct LbfgsResult {
  int iterations = 0;
  int evaluations = 0;
  /// Loss at the returned parameters.
  double loss = 0;
  /// max_i |g_i| at the returned parameters.
  double grad_norm = 0;
  LbfgsStop reason = LbfgsStop::kMaxIterations;
};

/// Limited-memory BFGS (Nocedal & Wright, Algorithm 7.4, two-loop recursion
/// with H0 = (s.y / y.y) I) over all parameters flattened into one vector,
/// with strong_wolfe_line_search. Pairs failing the curvature test
/// s.y > eps(T) y.y are skipped; if a direction is not a descent direction or
/// its line search finds no decrease, the history is dropped and steepest
/// descent is tried once before giving up.
///
/// The closure contract: the optimizer writes the trial parameters and ZEROES
/// every Parameter::grad() before each call; the closure computes the loss at
/// the current parameter values, fills the grads (e.g. tape.clear(); build the
/// loss; tape.backward(loss)) and returns the loss. It must be deterministic
/// (full batch): L-BFGS is not a stochastic method. Zeroing grads inside the
/// closure as well is harmless.
///
/// There is no learning rate: the first trial step has length min(1, |g|)
/// along -g, later ones are the quasi-Newton step t = 1.
///
/// On return, the parameters hold the last accepted iterate (the one whose
/// loss is reported, never a failed trial point) and Parameter::grad() holds
/// its gradient. NaN/Inf are never written to the parameters: a non-finite
/// trial is backed off by the line search, and a non-finite start point
/// stops at once (kNonFinite) with the parameters unchanged.
///
/// In float, a run usually ends at the rounding floor (kLossTolerance or
/// kLineSearchFailed) before a small grad_tolerance is met; that is normal.
template <class T>
class Lbfgs {
 public:
  /// ValueError naming the option and its value for bad options, and for an
  /// empty, null-containing or duplicated parameter list.
  Lbfgs(std::vector<Parameter<T>*> params, const LbfgsOptions& options = {});
  Lbfgs(const Lbfgs&) = delete;
  Lbfgs& operator=(const Lbfgs&) = delete;

  /// Evaluates the closure at the current parameters, then iterates until a
  /// stopping rule fires. The curvature history carries over from earlier
  /// calls (reset() drops it).
  LbfgsResult minimize(FunctionRef<T()> closure);

  /// One iteration (one line search). The closure is first evaluated at the
  /// current parameters, unless they are bit-for-bit those returned by the
  /// previous step() or minimize(): then that loss and gradient are reused,
  /// so a loop of step() calls costs no extra evaluation. That assumes the
  /// same closure; call reset() when the objective changes. result.iterations
  /// is 1 after a step (reason kMaxIterations) and 0 when none was possible
  /// (reason says why).
  LbfgsResult step(FunctionRef<T()> closure);

  /// Drops the curvature history and the cached evaluation.
  void reset();
  /// Zeroes every parameter's gradient.
  void zero_grad();

  const LbfgsOptions& options() const { return options_; }
  const std::vector<Parameter<T>*>& params() const { return params_; }
  /// Number of (s, y) pairs currently stored (<= history_size).
  int history_count() const { return count_; }

 private:
  LbfgsResult run(FunctionRef<T()> closure, int max_iterations, bool reuse);
  T evaluate(FunctionRef<T()> closure, T* grad_out);
  void write_params(const T* x);
  void write_trial(T t);
  void read_params(T* x) const;
  void write_grads(const T* g);
  bool params_equal(const T* x) const;
  void direction();

  std::vector<Parameter<T>*> params_;
  LbfgsOptions options_;
  Index n_ = 0;
  // Flat work vectors of n_ elements, allocated once.
  Tensor<T> x_, g_, d_, g_trial_, g_best_;
  // History: row k of s_ and y_ is pair k (a ring of history_size rows).
  Tensor<T> s_, y_, rho_, alpha_;
  int head_ = 0;         // next row to write
  int count_ = 0;        // pairs stored
  T loss_ = 0;           // loss at x_
  T gamma_ = 1;          // H0 scale s.y / y.y of the newest pair
  bool cached_ = false;  // x_, g_, loss_ describe the current parameters
};

extern template class Optimizer<float>;
extern template class Optimizer<double>;
extern template class Sgd<float>;
extern template class Sgd<double>;
extern template class Adam<float>;
extern template class Adam<double>;
extern template class AdamW<float>;
extern template class AdamW<double>;
extern template class Rmsprop<float>;
extern template class Rmsprop<double>;
extern template class Lbfgs<float>;
extern template class Lbfgs<double>;

}  // namespace anode

#endif  // ANODE_AUTODIFF_OPTIM_H_
