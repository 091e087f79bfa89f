#ifndef ANODE_ODE_TABLEAU_H_
#define ANODE_ODE_TABLEAU_H_

// Explicit Runge-Kutta methods as data: one Butcher tableau per method, one
// generic step (rk_step.h) for all of them.

#include <string>
#include <string_view>

namespace anode::ode {

enum class Method { kEuler, kMidpoint, kRk4, kBosh3, kDopri5, kTsit5 };

/// How a method interpolates inside a step (dense output).
enum class DenseOutput {
  kHermite,  // cubic Hermite from y0, y1, f(t0, y0), f(t1, y1)
  kDopri5,   // Shampine's 4th-order continuous extension of Dormand-Prince
  kTsit5,    // Tsitouras' 4th-order interpolant
};

inline constexpr int kMaxStages = 7;

struct Tableau {
  Method method;
  const char* name;
  int stages;
  int order;        // order of the propagated solution
  int error_order;  // order of the embedded estimate (0: fixed step only)
  bool fsal;        // last stage is f(t1, y1): reused as the next step's first
  DenseOutput dense;
  double c[kMaxStages];
  double a[kMaxStages][kMaxStages];  // a[i][j], j < i
  double b[kMaxStages];
  double e[kMaxStages];  // error weights: b - b_hat (zero for fixed-step methods)

  bool adaptive() const { return error_order > 0; }
};

/// The tableau of a method (static storage).
const Tableau& tableau(Method method);

/// "euler", "midpoint", "rk4", "bosh3", "dopri5", "tsit5" (throws
/// std::invalid_argument listing the known names otherwise).
Method parse_method(std::string_view name);
const char* method_name(Method method);

/// Dense-output weights at theta in [0, 1] of a step of size h from y0:
///   y(t0 + theta h) = y0 + h * (sum_i w[i] k_i + w_f1 * f(t1, y1)).
/// w_f1 is nonzero only for Hermite output of methods without FSAL (which
/// then need f at the step's end); for FSAL methods it is folded into the
/// last stage.
struct DenseWeights {
  double w[kMaxStages];
  double w_f1;
};
DenseWeights dense_weights(const Tableau& tab, double theta);

}  // namespace anode::ode

#endif  // ANODE_ODE_TABLEAU_H_
