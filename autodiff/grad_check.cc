#include "autodiff/grad_check.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>

namespace anode {
namespace {

// <v, f(inputs)> evaluated without recording, on a reused scratch tape.
double project(TapeFn<double> f, std::span<const Tensor<double>> inputs, const Tensor<double>& v,
               bool nested) {
  thread_local Tape<double> tape;
  tape.clear();
  Tape<double>::RecordingGuard recording(tape, nested);
  std::vector<Var<double>> leaves;
  for (const Tensor<double>& x : inputs) {
    leaves.push_back(nested ? tape.input(x.view()) : tape.constant(x.view()));
  }
  Var<double> y = f(tape, leaves);
  double s = 0;
  for (Index i = 0; i < y.size(); ++i) s += v[i] * y.data()[i];
  return s;
}

// f(inputs) evaluated without recording, as a tensor.
Tensor<double> evaluate(TapeFn<double> f, std::span<const Tensor<double>> inputs) {
  Tape<double> tape;
  Tape<double>::NoGradGuard no_grad(tape);
  std::vector<Var<double>> leaves;
  for (const Tensor<double>& x : inputs) leaves.push_back(tape.constant(x.view()));
  return f(tape, leaves).to_tensor();
}

Tensor<double> normal_like(const Shape& s, std::mt19937_64& rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  Tensor<double> t(s);
  for (double& e : t) e = normal(rng);
  return t;
}

// x + h u, input by input.
std::vector<Tensor<double>> along(std::span<const Tensor<double>> x,
                                  std::span<const Tensor<double>> u, double h) {
  std::vector<Tensor<double>> r(x.begin(), x.end());
  for (std::size_t i = 0; i < r.size(); ++i)
    for (Index j = 0; j < r[i].size(); ++j) r[i][j] += h * u[i][j];
  return r;
}

double max_abs(std::span<const Tensor<double>> xs) {
  double m = 0;
  for (const Tensor<double>& x : xs)
    for (double e : x) m = std::max(m, std::abs(e));
  return m;
}

// Records the first failure and the worst error / tolerance ratio.
struct Checker {
  GradCheckResult& result;
  void operator()(double expected, double got, double rtol, double atol, const std::string& where,
                  const char* what) {
    const double tol = std::max(rtol * std::max(std::abs(expected), std::abs(got)), atol);
    const double ratio = std::abs(expected - got) / tol;
    result.worst_ratio = std::max(result.worst_ratio, ratio);
    if (!(ratio <= 1.0) && result.ok) {  // also catches NaN
      result.ok = false;
      std::ostringstream msg;
      msg.precision(12);
      msg << where << ": " << what << " " << expected << " vs " << got << " (tolerance " << tol << ")";
      result.message = msg.str();
    }
  }
};

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
        double fp = project(f, x, v, options.nested);
        x[i][j] = saved - hj;
        double fm = project(f, x, v, options.nested);
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
    double numeric = (project(f, plus, v, options.nested) - project(f, minus, v, options.nested)) / (2 * h);
    check(numeric, analytic, "direction " + std::to_string(d));
  }
  return result;
}

GradCheckResult jvp_check(TapeFn<double> f, std::span<const Tensor<double>> inputs,
                          const GradCheckOptions& options) {
  GradCheckResult result;
  Checker check{result};
  std::mt19937_64 rng(options.seed);
  for (int d = 0; d < std::max(options.directions, 1); ++d) {
    std::vector<Tensor<double>> u;
    for (const Tensor<double>& x : inputs) u.push_back(normal_like(x.shape(), rng));
    const JvpResult<double> j = jvp<double>(f, inputs, u);
    const double h = step_for(max_abs(inputs));
    const Tensor<double> fp = evaluate(f, along(inputs, u, h)), fm = evaluate(f, along(inputs, u, -h));
    for (Index k = 0; k < j.tangent.size(); ++k) {
      check((fp[k] - fm[k]) / (2 * h), j.tangent[k], options.rtol, options.atol,
            "direction " + std::to_string(d) + " element " + std::to_string(k),
            "finite difference vs forward mode");
    }
    const Tensor<double> v = normal_like(j.value.shape(), rng);
    const VjpResult<double> r = vjp<double>(f, inputs, v.view());
    double vju = 0, jtvu = 0, scale = 0;
    for (Index k = 0; k < v.size(); ++k) {
      vju += v[k] * j.tangent[k];
      scale += std::abs(v[k] * j.tangent[k]);
    }
    for (std::size_t i = 0; i < u.size(); ++i) {
      for (Index k = 0; k < u[i].size(); ++k) {
        jtvu += r.grads[i][k] * u[i][k];
        scale += std::abs(r.grads[i][k] * u[i][k]);
      }
    }
    check(vju, jtvu, 0, 1e-10 * std::max(scale, 1e-300), "direction " + std::to_string(d),
          "<v, J u> (forward) vs <J^T v, u> (reverse)");
  }
  return result;
}

GradCheckResult hvp_check(TapeFn<double> f, std::span<const Tensor<double>> inputs,
                          const GradCheckOptions& options) {
  GradCheckResult result;
  Checker check{result};
  std::mt19937_64 rng(options.seed);
  const Tensor<double> w = normal_like(evaluate(f, inputs).shape(), rng);
  auto loss = [&](Tape<double>& t, std::span<const Var<double>> x) {
    const Var<double> y = f(t, x);
    return add(sum(mul(y, t.constant(w.view()))), scale(sum(square(y)), 0.5));
  };
  const std::vector<Tensor<double>> g = grad<double>(loss, inputs);
  const double h = step_for(max_abs(inputs));
  for (int d = 0; d < std::max(options.directions, 1); ++d) {
    std::vector<Tensor<double>> u;
    for (const Tensor<double>& x : inputs) u.push_back(normal_like(x.shape(), rng));
    const HvpResult<double> r = hvp<double>(loss, inputs, u);
    const std::vector<Tensor<double>> gp = grad<double>(loss, along(inputs, u, h));
    const std::vector<Tensor<double>> gm = grad<double>(loss, along(inputs, u, -h));
    // Forward-over-reverse: the tangent of the recorded gradient.
    Tape<double> tape;
    Tape<double>::ForwardMode forward(tape);
    std::vector<Var<double>> leaves;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      leaves.push_back(tape.input(inputs[i].view()));
      tape.set_tangent(leaves.back(), tape.constant(u[i].view()));
    }
    const std::vector<Var<double>> gv = tape.gradients(loss(tape, leaves), leaves);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const Var<double> hu = tape.tangent(gv[i]);
      for (Index k = 0; k < g[i].size(); ++k) {
        const std::string where = "direction " + std::to_string(d) + " input " +
                                  std::to_string(i) + " element " + std::to_string(k);
        if (d == 0) check(g[i][k], r.grads[i][k], 1e-12, 1e-14, where, "reverse mode vs recorded gradient");
        check((gp[i][k] - gm[i][k]) / (2 * h), r.hvps[i][k], options.rtol, options.atol, where,
              "finite difference of gradients vs hvp");
        check(r.hvps[i][k], hu.valid() ? hu.data()[k] : 0.0, 1e-9, 1e-11, where,
              "reverse-over-reverse vs forward-over-reverse");
      }
    }
  }
  return result;
}

}  // namespace anode
