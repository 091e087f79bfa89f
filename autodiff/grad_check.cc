#include "autodiff/grad_check.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>

namespace anode {
namespace {

// <v, f(inputs)> evaluated without recording, on a reused scratch tape.
double project(TapeFn<double> f, std::span<const Tensor<double>> inputs, const Tensor<double>& v) {
  thread_local Tape<double> tape;
  tape.clear();
  Tape<double>::NoGradGuard no_grad(tape);
  std::vector<Var<double>> leaves;
  for (const Tensor<double>& x : inputs) leaves.push_back(tape.constant(x.view()));
  Var<double> y = f(tape, leaves);
  double s = 0;
  for (Index i = 0; i < y.size(); ++i) s += v[i] * y.data()[i];
  return s;
}

double step_for(double x) { return std::cbrt(std::numeric_limits<double>::epsilon()) * std::max(1.0, std::abs(x)); }

}  // namespace

GradCheckResult grad_check(TapeFn<double> f, std::span<const Tensor<double>> inputs,
                           const GradCheckOptions& options) {
  GradCheckResult result;
  std::mt19937_64 rng(options.seed);
  std::normal_distribution<double> normal(0.0, 1.0);

  // Analytic J^T v for a random cotangent v.
  Tensor<double> y0;
  {
    Tape<double> tape;
    std::vector<Var<double>> leaves;
    for (const Tensor<double>& x : inputs) leaves.push_back(tape.constant(x.view()));
    y0 = f(tape, leaves).to_tensor();
  }
  Tensor<double> v(y0.shape());
  for (double& e : v) e = normal(rng);
  VjpResult<double> an = vjp<double>(f, inputs, v.view());

  auto check = [&](double numeric, double analytic, const std::string& where) {
    double tol = std::max(options.rtol * std::max(std::abs(numeric), std::abs(analytic)), options.atol);
    double ratio = std::abs(numeric - analytic) / tol;
    result.worst_ratio = std::max(result.worst_ratio, ratio);
    if (!(ratio <= 1.0) && result.ok) {  // also catches NaN
      result.ok = false;
      std::ostringstream msg;
      msg.precision(12);
      msg << where << ": finite difference " << numeric << " vs reverse mode " << analytic
          << " (tolerance " << tol << ")";
      result.message = msg.str();
    }
  };

  std::vector<Tensor<double>> x(inputs.begin(), inputs.end());

  // 1. Elementwise J^T v, first: its failure names the input and element.
  Index total = 0;
  for (const Tensor<double>& t : x) total += t.size();
  if (total <= options.max_elementwise) {
    for (std::size_t i = 0; i < x.size(); ++i) {
      for (Index j = 0; j < x[i].size(); ++j) {
        const double saved = x[i][j];
        const double hj = step_for(saved);
        x[i][j] = saved + hj;
        double fp = project(f, x, v);
        x[i][j] = saved - hj;
        double fm = project(f, x, v);
        x[i][j] = saved;
        check((fp - fm) / (2 * hj), an.grads[i][j],
              "input " + std::to_string(i) + " element " + std::to_string(j));
      }
    }
  }

  // 2. Dot-product identity along random directions (one step size for all
  // inputs, from the largest magnitude).
  double scale = 0;
  for (const Tensor<double>& t : x)
    for (double e : t) scale = std::max(scale, std::abs(e));
  const double h = step_for(scale);
  for (int d = 0; d < options.directions; ++d) {
    std::vector<Tensor<double>> u;
    double analytic = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      u.emplace_back(x[i].shape());
      for (Index j = 0; j < x[i].size(); ++j) {
        u[i][j] = normal(rng);
        analytic += an.grads[i][j] * u[i][j];
      }
    }
    std::vector<Tensor<double>> plus = x, minus = x;
    for (std::size_t i = 0; i < x.size(); ++i)
      for (Index j = 0; j < x[i].size(); ++j) {
        plus[i][j] += h * u[i][j];
        minus[i][j] -= h * u[i][j];
      }
    double numeric = (project(f, plus, v) - project(f, minus, v)) / (2 * h);
    check(numeric, analytic, "direction " + std::to_string(d));
  }
  return result;
}

}  // namespace anode
