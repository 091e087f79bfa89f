#include "autodiff/optim.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "autodiff/ops.h"
#include "autodiff/tape.h"
#include "tests/support/expect_error.h"

namespace anode {
namespace {

using testing::expect_error;

template <class T>
Parameter<T> make_param(const char* name, std::initializer_list<T> values) {
  return Parameter<T>(name, Tensor<T>(Shape{static_cast<Index>(values.size())}, values));
}

template <class T>
void set_grad(Parameter<T>& p, std::initializer_list<double> g) {
  Index i = 0;
  for (double v : g) p.grad()[i++] = static_cast<T>(v);
}

// Tolerance for comparing an optimizer's T arithmetic with a long double
// reference of the same formula.
template <class T>
double tol(double scale) {
  return (std::is_same_v<T, float> ? 2e-6 : 1e-14) * std::max(1.0, std::abs(scale));
}

// ---- Test problems -------------------------------------------------------------

// f = 0.5 sum a_i (x_i - c_i)^2 with a = 1, 2, 4, ...: grads filled directly.
template <class T>
T quadratic(Parameter<T>& p, const std::vector<double>& c) {
  T f = 0;
  for (Index i = 0; i < p.size(); ++i) {
    const T a = static_cast<T>(1 << (i % 4));
    const T r = p.value()[i] - static_cast<T>(c[i]);
    f += T(0.5) * a * r * r;
    p.grad()[i] += a * r;
  }
  return f;
}

// Rosenbrock in n dimensions, minimum 0 at x = 1; accumulates its gradient
// into p.grad(). Chained (the "generalized" form, scipy.optimize.rosen):
// sum_{i < n-1} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2, where progress must
// travel down the chain. Extended: the same terms over disjoint pairs (0, 1),
// (2, 3), ..., n/2 independent 2-D problems.
double rosenbrock(Parameter<double>& p, bool chained = true) {
  const double* x = p.value().data();
  double* g = p.grad().data();
  double f = 0;
  for (Index i = 0; i + 1 < p.size(); i += chained ? 1 : 2) {
    const double u = x[i + 1] - x[i] * x[i], w = 1 - x[i];
    f += 100 * u * u + w * w;
    g[i] += -400 * x[i] * u - 2 * w;
    g[i + 1] += 200 * u;
  }
  return f;
}

// The classic start (-1.2, 1, -1.2, 1, ...).
Parameter<double> rosenbrock_start(Index n) {
  Tensor<double> x(Shape{n});
  for (Index i = 0; i < n; ++i) x[i] = i % 2 == 0 ? -1.2 : 1.0;
  return Parameter<double>("x", std::move(x));
}

double distance_to_ones(const Parameter<double>& p) {
  double d = 0;
  for (Index i = 0; i < p.size(); ++i) d = std::max(d, std::abs(p.value()[i] - 1));
  return d;
}

// 2-D Rosenbrock (1 - a)^2 + 100 (b - a^2)^2 recorded with tape ops, a and b
// two scalar parameters (so L-BFGS flattens two parameters).
struct TapeRosenbrock {
  Parameter<double> a{"a", Tensor<double>(Shape{}, {-1.2})};
  Parameter<double> b{"b", Tensor<double>(Shape{}, {1.0})};
  Tape<double> tape;

  double operator()() {
    tape.clear();
    Var<double> va = tape.param(a), vb = tape.param(b);
    Var<double> f = square(-va + 1.0) + 100.0 * square(vb - square(va));
    tape.backward(f);
    return f.item();
  }
};

template <class T>
class OptimTyped : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(OptimTyped, Scalars);

// ---- Options and parameter lists -------------------------------------------------

TEST(Optim, BadOptionsThrowValueErrorNamingOptionAndValue) {
  Parameter<double> p = make_param<double>("p", {1.0, 2.0});
  std::vector<Parameter<double>*> ps{&p};
  expect_error<ValueError>([&] { Sgd<double>(ps, {.lr = 0}); }, {"Sgd", "lr", "0"});
  expect_error<ValueError>([&] { Sgd<double>(ps, {.lr = -0.5}); }, {"lr", "-0.5"});
  expect_error<ValueError>([&] { Sgd<double>(ps, {.lr = std::nan("")}); }, {"lr", "nan"});
  expect_error<ValueError>([&] { Sgd<double>(ps, {.momentum = 1.0}); }, {"momentum", "1"});
  expect_error<ValueError>([&] { Sgd<double>(ps, {.dampening = 1.5}); }, {"dampening", "1.5"});
  expect_error<ValueError>([&] { Sgd<double>(ps, {.weight_decay = -1}); }, {"weight_decay", "-1"});
  expect_error<ValueError>([&] { Sgd<double>(ps, {.nesterov = true}); }, {"momentum", "nesterov"});
  expect_error<ValueError>(
      [&] { Sgd<double>(ps, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}); },
      {"dampening", "0.1", "nesterov"});

  expect_error<ValueError>([&] { Adam<double>(ps, {.lr = 0}); }, {"Adam", "lr", "0"});
  expect_error<ValueError>([&] { Adam<double>(ps, {.beta1 = 1.0}); }, {"beta1", "1", "[0, 1)"});
  expect_error<ValueError>([&] { Adam<double>(ps, {.beta1 = -0.1}); }, {"beta1", "-0.1"});
  expect_error<ValueError>([&] { Adam<double>(ps, {.beta2 = 1.5}); }, {"beta2", "1.5"});
  expect_error<ValueError>([&] { Adam<double>(ps, {.eps = 0}); }, {"eps", "0"});
  expect_error<ValueError>([&] { Adam<double>(ps, {.weight_decay = -2}); }, {"weight_decay", "-2"});

  expect_error<ValueError>([&] { AdamW<double>(ps, {.lr = -1}); }, {"AdamW", "lr", "-1"});
  expect_error<ValueError>([&] { AdamW<double>(ps, {.beta1 = 1.0}); }, {"AdamW", "beta1", "[0, 1)"});
  expect_error<ValueError>([&] { AdamW<double>(ps, {.beta2 = -0.5}); }, {"beta2", "-0.5"});
  expect_error<ValueError>([&] { AdamW<double>(ps, {.eps = 0}); }, {"AdamW", "eps", "0"});
  expect_error<ValueError>([&] { AdamW<double>(ps, {.weight_decay = std::nan("")}); },
                     {"AdamW", "weight_decay", "nan"});

  expect_error<ValueError>([&] { Rmsprop<double>(ps, {.lr = 0}); }, {"Rmsprop", "lr", "0"});
  expect_error<ValueError>([&] { Rmsprop<double>(ps, {.alpha = 1.0}); }, {"Rmsprop", "alpha", "[0, 1)"});
  expect_error<ValueError>([&] { Rmsprop<double>(ps, {.alpha = -0.1}); }, {"alpha", "-0.1"});
  expect_error<ValueError>([&] { Rmsprop<double>(ps, {.eps = -1e-8}); }, {"eps", "-1e-08"});
  expect_error<ValueError>([&] { Rmsprop<double>(ps, {.weight_decay = -1}); }, {"weight_decay", "-1"});
  expect_error<ValueError>([&] { Rmsprop<double>(ps, {.momentum = 1.0}); }, {"momentum", "1"});

  expect_error<ValueError>([&] { Lbfgs<double>(ps, {.history_size = 0}); },
                     {"Lbfgs", "history_size", "0"});
  expect_error<ValueError>([&] { Lbfgs<double>(ps, {.max_iterations = 0}); }, {"max_iterations"});
  expect_error<ValueError>([&] { Lbfgs<double>(ps, {.max_evaluations = -3}); },
                     {"max_evaluations", "-3"});
  expect_error<ValueError>([&] { Lbfgs<double>(ps, {.grad_tolerance = -1}); }, {"grad_tolerance"});
  expect_error<ValueError>([&] { Lbfgs<double>(ps, {.loss_tolerance = -1}); }, {"loss_tolerance"});
  expect_error<ValueError>([&] { Lbfgs<double>(ps, {.line_search = {.c1 = 0}}); },
                     {"line_search.c1", "0"});
  expect_error<ValueError>([&] { Lbfgs<double>(ps, {.line_search = {.c1 = 0.5, .c2 = 0.4}}); },
                     {"line_search.c2", "0.4"});
  expect_error<ValueError>([&] { Lbfgs<double>(ps, {.line_search = {.c2 = 1.0}}); }, {"line_search.c2"});
  expect_error<ValueError>([&] { Lbfgs<double>(ps, {.line_search = {.max_evaluations = 0}}); },
                     {"line_search.max_evaluations"});

  auto phi = [](double t) { return LinePoint{t * t - t, 2 * t - 1}; };
  expect_error<ValueError>([&] { strong_wolfe_line_search(phi, 0.0, -1.0, 0.0); }, {"t_init", "0"});
}

TEST(Optim, BadParameterListsThrow) {
  Parameter<float> p = make_param<float>("weight", {1.0f});
  expect_error<ValueError>([] { Sgd<float>({}, {}); }, {"Sgd", "empty"});
  expect_error<ValueError>([] { Adam<float>({}, {}); }, {"Adam", "empty"});
  expect_error<ValueError>([] { Lbfgs<float>({}, {}); }, {"Lbfgs", "empty"});
  expect_error<ValueError>([] { AdamW<float>({}, {}); }, {"AdamW", "empty"});
  expect_error<ValueError>([] { Rmsprop<float>({}, {}); }, {"Rmsprop", "empty"});
  expect_error<ValueError>([&] { Rmsprop<float>({&p, &p}, {}); }, {"'weight'", "more than once"});
  expect_error<ValueError>([&] { Adam<float>({&p, nullptr}, {}); }, {"parameter 1", "null"});
  expect_error<ValueError>([&] { Sgd<float>({&p, &p}, {}); }, {"'weight'", "more than once"});
  expect_error<ValueError>([&] { Lbfgs<float>({&p, &p}, {}); }, {"'weight'", "more than once"});
}

TEST(Optim, LearningRateIsReadableAndSettable) {
  Parameter<double> p = make_param<double>("p", {1.0});
  Adam<double> adam({&p}, {.lr = 0.01});
  Sgd<double> sgd({&p}, {.lr = 0.5});
  AdamW<double> adamw({&p}, {.lr = 0.01});
  Rmsprop<double> rmsprop({&p}, {.lr = 0.01});
  Optimizer<double>* opts[] = {&adam, &sgd, &adamw, &rmsprop};
  for (Optimizer<double>* o : opts) {
    o->set_lr(0.25);
    EXPECT_EQ(o->lr(), 0.25);
    o->set_lr(0);  // a schedule may anneal to zero
    EXPECT_EQ(o->lr(), 0);
    expect_error<ValueError>([&] { o->set_lr(-1); }, {"set_lr", "lr", "-1"});
    expect_error<ValueError>([&] { o->set_lr(std::numeric_limits<double>::infinity()); }, {"inf"});
  }
  EXPECT_EQ(adam.options().lr, 0);
  // lr = 0 leaves SGD parameters in place.
  p.grad()[0] = 3;
  sgd.step();
  EXPECT_EQ(p.value()[0], 1.0);
}

TEST(Optim, ZeroGradAndGradsFinite) {
  Parameter<float> a = make_param<float>("a", {1, 2}), b = make_param<float>("b", {3});
  Adam<float> adam({&a, &b});
  set_grad(a, {1, 2});
  set_grad(b, {std::nan("")});
  EXPECT_FALSE(adam.grads_finite());
  adam.zero_grad();
  EXPECT_TRUE(adam.grads_finite());
  EXPECT_EQ(a.grad()[1], 0.0f);
  EXPECT_EQ(b.grad()[0], 0.0f);
}

// ---- SGD -------------------------------------------------------------------------

TYPED_TEST(OptimTyped, SgdMatchesTheMomentumFormula) {
  using T = TypeParam;
  struct Case {
    SgdOptions o;
  };
  const Case cases[] = {
      {{.lr = 0.1}},
      {{.lr = 0.1, .weight_decay = 0.01}},
      {{.lr = 0.05, .momentum = 0.9}},
      {{.lr = 0.05, .momentum = 0.9, .dampening = 0.3, .weight_decay = 0.02}},
      {{.lr = 0.05, .momentum = 0.8, .weight_decay = 0.1, .nesterov = true}},
  };
  const double x0[] = {0.5, -1.25, 3.0};
  const double grads[3][3] = {{0.3, -2.0, 0.0}, {-0.7, 1.5, 0.25}, {0.1, 0.1, -4.0}};
  for (const Case& c : cases) {
    const SgdOptions& o = c.o;
    Parameter<T> p = make_param<T>("p", {T(x0[0]), T(x0[1]), T(x0[2])});
    Sgd<T> sgd({&p}, o);
    long double x[3], buf[3];
    for (int i = 0; i < 3; ++i) x[i] = x0[i];
    for (int k = 0; k < 3; ++k) {
      for (int i = 0; i < 3; ++i) {
        p.grad()[i] = T(grads[k][i]);
        long double g = grads[k][i] + o.weight_decay * x[i];
        if (o.momentum > 0) {
          buf[i] = k == 0 ? g : o.momentum * buf[i] + (1 - o.dampening) * g;
          g = o.nesterov ? g + o.momentum * buf[i] : buf[i];
        }
        x[i] -= o.lr * g;
      }
      sgd.step();
      for (int i = 0; i < 3; ++i) {
        EXPECT_NEAR(p.value()[i], double(x[i]), tol<T>(double(x[i])))
            << "step " << k << " element " << i << " momentum " << o.momentum;
      }
    }
    EXPECT_EQ(sgd.step_count(), 3);
  }
}

TYPED_TEST(OptimTyped, SgdConvergesOnAQuadratic) {
  using T = TypeParam;
  const std::vector<double> c = {1.0, -2.0, 0.5, 3.0, -1.0};
  const SgdOptions options[] = {
      {.lr = 0.1}, {.lr = 0.05, .momentum = 0.9}, {.lr = 0.05, .momentum = 0.9, .nesterov = true}};
  for (const SgdOptions& o : options) {
    Parameter<T> p("p", Tensor<T>(Shape{5}));
    Sgd<T> sgd({&p}, o);
    for (int k = 0; k < 300; ++k) {
      sgd.zero_grad();
      quadratic(p, c);
      sgd.step();
    }
    for (Index i = 0; i < 5; ++i)
      EXPECT_NEAR(p.value()[i], c[i], 1e-4) << "momentum " << o.momentum;
  }
}

// ---- Adam --------------------------------------------------------------------------

TYPED_TEST(OptimTyped, AdamFirstStepEqualsHandComputedUpdate) {
  using T = TypeParam;
  // Step 1: m / (1 - b1) = g and sqrt(v / (1 - b2)) = |g|, so PyTorch's update
  // is p -= lr g / (|g| + eps). The 1e-9 gradient separates PyTorch's eps
  // placement (update lr/11) from Kingma & Ba's eps-hat form (about lr/317).
  const double lr = 0.01, eps = 1e-8;
  const double x0[] = {0.5, -1.5, 2.0, 0.0};
  const double g[] = {0.1, -3.0, 1e-9, 0.0};
  Parameter<T> p = make_param<T>("p", {T(x0[0]), T(x0[1]), T(x0[2]), T(x0[3])});
  Adam<T> adam({&p}, {.lr = lr, .eps = eps});
  for (int i = 0; i < 4; ++i) p.grad()[i] = T(g[i]);
  adam.step();
  for (int i = 0; i < 4; ++i) {
    const double gi = double(T(g[i]));
    const double want = x0[i] - lr * gi / (std::abs(gi) + eps);
    EXPECT_NEAR(p.value()[i], want, tol<T>(want)) << "element " << i;
  }
  EXPECT_NEAR(double(p.value()[2]), 2.0 - lr / 11, (std::is_same_v<T, float> ? 1e-6 : 1e-12));
  EXPECT_EQ(p.value()[3], T(0));  // zero gradient, zero moments: no move (no NaN)
}

TYPED_TEST(OptimTyped, AdamMatchesPyTorchFormulaOverSeveralSteps) {
  using T = TypeParam;
  const AdamOptions options[] = {
      {.lr = 0.01},
      {.lr = 0.003, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1},
      {.lr = 0.003, .beta1 = 0.3, .weight_decay = 0.1, .decoupled_weight_decay = true},
  };
  const double x0[] = {0.5, -1.25, 3.0};
  const double grads[4][3] = {{0.3, -2.0, 0.0}, {-0.7, 1.5, 0.25}, {0.1, 0.1, -4.0}, {0, 1e-3, 2}};
  for (const AdamOptions& o : options) {
    Parameter<T> p = make_param<T>("p", {T(x0[0]), T(x0[1]), T(x0[2])});
    Adam<T> adam({&p}, o);
    long double x[3], m[3] = {}, v[3] = {};
    for (int i = 0; i < 3; ++i) x[i] = x0[i];
    for (int k = 0; k < 4; ++k) {
      const int t = k + 1;
      for (int i = 0; i < 3; ++i) {
        p.grad()[i] = T(grads[k][i]);
        long double g = grads[k][i];
        if (o.decoupled_weight_decay) {
          x[i] *= 1 - o.lr * o.weight_decay;
        } else {
          g += o.weight_decay * x[i];
        }
        m[i] = o.beta1 * m[i] + (1 - o.beta1) * g;
        v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g;
        const long double denom =
            std::sqrt(v[i]) / std::sqrt(1 - std::pow((long double)o.beta2, t)) + o.eps;
        x[i] -= o.lr / (1 - std::pow((long double)o.beta1, t)) * m[i] / denom;
      }
      adam.step();
      for (int i = 0; i < 3; ++i) {
        EXPECT_NEAR(p.value()[i], double(x[i]), tol<T>(double(x[i])))
            << "step " << t << " element " << i << " beta1 " << o.beta1;
      }
    }
  }
}

TYPED_TEST(OptimTyped, AdamConvergesOnAQuadraticWithTapeAndSchedule) {
  using T = TypeParam;
  Parameter<T> p("p", Tensor<T>(Shape{4}, {T(3), T(-2), T(0.5), T(4)}));
  const Tensor<T> target(Shape{4}, {T(1), T(2), T(-1), T(0)});
  Tape<T> tape;
  Adam<T> adam({&p}, {.lr = 0.1});
  for (int k = 0; k < 1000; ++k) {
    adam.set_lr(0.1 * std::pow(0.995, k));  // exponential decay
    adam.zero_grad();
    tape.clear();
    Var<T> loss = sum(square(tape.param(p) - tape.constant(target.view())));
    tape.backward(loss);
    adam.step();
  }
  for (Index i = 0; i < 4; ++i) EXPECT_NEAR(p.value()[i], target[i], 1e-3);
}

// ---- AdamW -------------------------------------------------------------------------

TYPED_TEST(OptimTyped, AdamWIsAdamWithDecoupledWeightDecay) {
  using T = TypeParam;
  EXPECT_EQ(AdamWOptions{}.weight_decay, 1e-2);  // PyTorch's default, unlike Adam's 0
  const AdamWOptions options[] = {
      {},
      {.lr = 0.003, .beta1 = 0.3, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1},
      {.lr = 0.01, .weight_decay = 0},
  };
  const double x0[] = {0.5, -1.25, 3.0};
  const double grads[4][3] = {{0.3, -2.0, 0.0}, {-0.7, 1.5, 0.25}, {0.1, 0.1, -4.0}, {0, 1e-3, 2}};
  for (const AdamWOptions& o : options) {
    Parameter<T> p = make_param<T>("p", {T(x0[0]), T(x0[1]), T(x0[2])});
    Parameter<T> q = make_param<T>("q", {T(x0[0]), T(x0[1]), T(x0[2])});
    AdamW<T> adamw({&p}, o);
    Adam<T> adam({&q}, {.lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .eps = o.eps,
                        .weight_decay = o.weight_decay, .decoupled_weight_decay = true});
    long double x[3], m[3] = {}, v[3] = {};
    for (int i = 0; i < 3; ++i) x[i] = x0[i];
    for (int k = 0; k < 4; ++k) {
      const int t = k + 1;
      for (int i = 0; i < 3; ++i) {
        p.grad()[i] = q.grad()[i] = T(grads[k][i]);
        const long double g = grads[k][i];
        x[i] *= 1 - o.lr * o.weight_decay;  // torch.optim.AdamW: param.mul_(1 - lr * wd)
        m[i] = o.beta1 * m[i] + (1 - o.beta1) * g;
        v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g;
        const long double denom =
            std::sqrt(v[i]) / std::sqrt(1 - std::pow((long double)o.beta2, t)) + o.eps;
        x[i] -= o.lr / (1 - std::pow((long double)o.beta1, t)) * m[i] / denom;
      }
      adamw.step();
      adam.step();
      for (int i = 0; i < 3; ++i) {
        EXPECT_NEAR(p.value()[i], double(x[i]), tol<T>(double(x[i])))
            << "step " << t << " element " << i << " wd " << o.weight_decay;
        EXPECT_EQ(p.value()[i], q.value()[i]);  // bit for bit the same update
      }
    }
    EXPECT_EQ(adamw.step_count(), 4);
  }
}

TEST(AdamW, DecayShrinksAParameterWithZeroGradient) {
  // Decoupled: with a zero gradient the moments stay 0 and only the decay
  // acts, p_t = (1 - lr wd)^t p_0; Adam's L2 form would move it by ~lr per step.
  Parameter<double> p = make_param<double>("p", {2.0});
  AdamW<double> adamw({&p}, {.lr = 0.1, .weight_decay = 0.5});
  for (int k = 0; k < 10; ++k) adamw.step();
  EXPECT_NEAR(p.value()[0], 2.0 * std::pow(0.95, 10), 1e-14);
}

// ---- RMSprop -----------------------------------------------------------------------

TYPED_TEST(OptimTyped, RmspropMatchesPyTorchFormulaOverSeveralSteps) {
  using T = TypeParam;
  const RmspropOptions options[] = {
      {},
      {.lr = 0.003, .alpha = 0.9, .eps = 1e-6, .weight_decay = 0.1},
      {.lr = 0.003, .alpha = 0.5, .momentum = 0.9},
      {.lr = 0.01, .alpha = 0.8, .weight_decay = 0.05, .momentum = 0.5, .centered = true},
  };
  const double x0[] = {0.5, -1.25, 3.0};
  const double grads[4][3] = {{0.3, -2.0, 0.0}, {-0.7, 1.5, 0.25}, {0.1, 0.1, -4.0}, {0, 1e-3, 2}};
  for (const RmspropOptions& o : options) {
    Parameter<T> p = make_param<T>("p", {T(x0[0]), T(x0[1]), T(x0[2])});
    Rmsprop<T> rmsprop({&p}, o);
    long double x[3], v[3] = {}, gm[3] = {}, b[3] = {};
    for (int i = 0; i < 3; ++i) x[i] = x0[i];
    for (int k = 0; k < 4; ++k) {
      for (int i = 0; i < 3; ++i) {
        p.grad()[i] = T(grads[k][i]);
        const long double g = grads[k][i] + o.weight_decay * x[i];
        v[i] = o.alpha * v[i] + (1 - o.alpha) * g * g;
        long double avg;
        if (o.centered) {
          gm[i] = o.alpha * gm[i] + (1 - o.alpha) * g;
          avg = std::sqrt(v[i] - gm[i] * gm[i]) + o.eps;
        } else {
          avg = std::sqrt(v[i]) + o.eps;
        }
        if (o.momentum > 0) {
          b[i] = o.momentum * b[i] + g / avg;
          x[i] -= o.lr * b[i];
        } else {
          x[i] -= o.lr * g / avg;
        }
      }
      rmsprop.step();
      for (int i = 0; i < 3; ++i) {
        EXPECT_NEAR(p.value()[i], double(x[i]), tol<T>(double(x[i])))
            << "step " << k << " element " << i << " alpha " << o.alpha << " centered "
            << o.centered;
      }
    }
  }
}

// ---- AdamW and RMSprop on the test problems -----------------------------------------

TYPED_TEST(OptimTyped, AdamWAndRmspropConvergeOnAQuadratic) {
  using T = TypeParam;
  const std::vector<double> c = {1.0, -2.0, 0.5, 3.0, -1.0};
  Parameter<T> pa("pa", Tensor<T>(Shape{5})), pr("pr", Tensor<T>(Shape{5})),
      pc("pc", Tensor<T>(Shape{5}));
  AdamW<T> adamw({&pa}, {.lr = 0.1, .weight_decay = 0});
  Rmsprop<T> rmsprop({&pr}, {.lr = 0.01});
  Rmsprop<T> centered({&pc}, {.lr = 0.01, .momentum = 0.5, .centered = true});
  Optimizer<T>* opts[] = {&adamw, &rmsprop, &centered};
  Parameter<T>* ps[] = {&pa, &pr, &pc};
  for (int j = 0; j < 3; ++j) {
    for (int k = 0; k < 2000; ++k) {
      opts[j]->set_lr((j == 0 ? 0.1 : 0.01) * std::pow(0.997, k));
      opts[j]->zero_grad();
      quadratic(*ps[j], c);
      opts[j]->step();
    }
    for (Index i = 0; i < 5; ++i) EXPECT_NEAR(ps[j]->value()[i], c[i], 1e-3) << "optimizer " << j;
  }
}

TEST(AdamWAndRmsprop, RosenbrockFromTheClassicStart) {
  // From (-1.2, 1) along the curved valley to (1, 1), the learning rate
  // decaying geometrically (neither method converges at a constant rate: their
  // steps have length ~lr whatever the gradient).
  Parameter<double> pa = rosenbrock_start(2), pr = rosenbrock_start(2);
  AdamW<double> adamw({&pa}, {.lr = 0.02, .weight_decay = 0});
  Rmsprop<double> rmsprop({&pr}, {.lr = 0.01, .momentum = 0.5});
  Optimizer<double>* opts[] = {&adamw, &rmsprop};
  Parameter<double>* ps[] = {&pa, &pr};
  const double lr0[] = {0.02, 0.01};
  for (int j = 0; j < 2; ++j) {
    double f = 0;
    for (int k = 0; k < 20000; ++k) {
      opts[j]->set_lr(lr0[j] * std::pow(0.9997, k));
      opts[j]->zero_grad();
      f = rosenbrock(*ps[j]);
      opts[j]->step();
    }
    EXPECT_LT(f, 1e-6) << "optimizer " << j;
    EXPECT_LT(distance_to_ones(*ps[j]), 2e-3) << "optimizer " << j;
  }
}

// ---- Line search -------------------------------------------------------------------

// The six test functions of More & Thuente (1994), "Line search algorithms with
// guaranteed sufficient decrease", Table 1-6, with their c1 (ftol) and c2 (gtol).
struct LineProblem {
  const char* name;
  double c1, c2;
  LinePoint (*phi)(double);
};

LinePoint mt1(double a) {  // -a / (a^2 + 2)
  const double b = 2, q = a * a + b;
  return {-a / q, (a * a - b) / (q * q)};
}
LinePoint mt2(double a) {  // (a + 0.004)^5 - 2 (a + 0.004)^4
  const double x = a + 0.004;
  return {std::pow(x, 5) - 2 * std::pow(x, 4), 5 * std::pow(x, 4) - 8 * std::pow(x, 3)};
}
LinePoint mt3(double a) {  // piecewise linear-quadratic plus a wiggle, l = 39, beta = 0.01
  const double b = 0.01, l = 39, pi = 3.14159265358979323846;
  double f, g;
  if (a <= 1 - b) {
    f = 1 - a, g = -1;
  } else if (a >= 1 + b) {
    f = a - 1, g = 1;
  } else {
    f = (a - 1) * (a - 1) / (2 * b) + b / 2, g = (a - 1) / b;
  }
  f += 2 * (1 - b) / (l * pi) * std::sin(l * pi * a / 2);
  g += (1 - b) * std::cos(l * pi * a / 2);
  return {f, g};
}
LinePoint yanai(double a, double b1, double b2) {
  auto gamma = [](double b) { return std::sqrt(1 + b * b) - b; };
  const double s1 = std::sqrt((1 - a) * (1 - a) + b2 * b2), s2 = std::sqrt(a * a + b1 * b1);
  return {gamma(b1) * s1 + gamma(b2) * s2, -gamma(b1) * (1 - a) / s1 + gamma(b2) * a / s2};
}
LinePoint mt4(double a) { return yanai(a, 0.001, 0.001); }
LinePoint mt5(double a) { return yanai(a, 0.01, 0.001); }
LinePoint mt6(double a) { return yanai(a, 0.001, 0.01); }

TEST(LineSearch, SatisfiesStrongWolfeOnMoreThuenteProblems) {
  const LineProblem problems[] = {
      {"mt1", 1e-3, 0.1, mt1},  {"mt2", 0.1, 0.1, mt2},   {"mt3", 0.1, 0.1, mt3},
      {"mt4", 1e-3, 1e-3, mt4}, {"mt5", 1e-3, 1e-3, mt5}, {"mt6", 1e-3, 1e-3, mt6},
  };
  int total = 0, worst = 0;
  for (const LineProblem& pr : problems) {
    const LinePoint p0 = pr.phi(0);
    for (double t0 : {1e-3, 1e-1, 1e1, 1e3}) {
      LineSearchOptions o{.c1 = pr.c1, .c2 = pr.c2, .max_evaluations = 40};
      const LineSearchResult r = strong_wolfe_line_search(pr.phi, p0.phi, p0.dphi, t0, o);
      ASSERT_EQ(r.status, LineSearchStatus::kConverged)
          << pr.name << " t0 " << t0 << ": " << to_string(r.status) << " after " << r.evaluations;
      const LinePoint p = pr.phi(r.t);
      EXPECT_EQ(p.phi, r.phi);
      EXPECT_LE(p.phi, p0.phi + pr.c1 * r.t * p0.dphi) << pr.name << " t0 " << t0;
      EXPECT_LE(std::abs(p.dphi), pr.c2 * std::abs(p0.dphi)) << pr.name << " t0 " << t0;
      total += r.evaluations;
      worst = std::max(worst, r.evaluations);
    }
  }
  // More & Thuente report 1-16 evaluations per case on these.
  EXPECT_LE(worst, 20);
  RecordProperty("total_evaluations", total);
  RecordProperty("worst_evaluations", worst);
}

TEST(LineSearch, BacksOffFromNonFiniteValues) {
  // phi = (t - 1)^2 on t < 2, NaN beyond: a too-long first trial is bisected.
  int nan_calls = 0;
  auto phi = [&](double t) -> LinePoint {
    if (t >= 2) {
      ++nan_calls;
      return {std::nan(""), std::nan("")};
    }
    return {(t - 1) * (t - 1), 2 * (t - 1)};
  };
  const LineSearchResult r = strong_wolfe_line_search(phi, 1.0, -2.0, 100.0);
  ASSERT_EQ(r.status, LineSearchStatus::kConverged);
  EXPECT_GT(nan_calls, 0);
  EXPECT_LT(r.t, 2.0);
  EXPECT_LE(std::abs(r.dphi), 0.9 * 2.0);

  // NaN everywhere but 0: no point found, reported as non-finite.
  auto nan_phi = [](double) { return LinePoint{std::nan(""), 0.0}; };
  const LineSearchResult bad = strong_wolfe_line_search(nan_phi, 1.0, -2.0, 1.0);
  EXPECT_EQ(bad.t, 0.0);
  EXPECT_EQ(bad.phi, 1.0);
  EXPECT_EQ(bad.status, LineSearchStatus::kNonFinite);
  EXPECT_EQ(bad.evaluations, LineSearchOptions{}.max_evaluations);
}

TEST(LineSearch, RejectsAnAscentDirectionWithoutEvaluating) {
  int calls = 0;
  auto phi = [&](double t) {
    ++calls;
    return LinePoint{t, 1.0};
  };
  const LineSearchResult r = strong_wolfe_line_search(phi, 0.0, 1.0, 1.0);
  EXPECT_EQ(r.status, LineSearchStatus::kNotDescent);
  EXPECT_EQ(r.t, 0.0);
  EXPECT_EQ(calls, 0);
}

// ---- L-BFGS ---------------------------------------------------------------------------

TEST(Lbfgs, Rosenbrock2dWithTapeOps) {
  TapeRosenbrock problem;
  Lbfgs<double> lbfgs({&problem.a, &problem.b}, {.grad_tolerance = 1e-10, .loss_tolerance = 0});
  const LbfgsResult r = lbfgs.minimize(problem);
  EXPECT_EQ(r.reason, LbfgsStop::kGradientTolerance) << to_string(r.reason);
  EXPECT_LT(std::abs(problem.a.value()[0] - 1), 1e-8);
  EXPECT_LT(std::abs(problem.b.value()[0] - 1), 1e-8);
  EXPECT_LT(r.loss, 1e-8);
  EXPECT_LE(r.grad_norm, 1e-10);
  EXPECT_LE(r.iterations, 45);
  EXPECT_LE(r.evaluations, 60);
  RecordProperty("iterations", r.iterations);
  RecordProperty("evaluations", r.evaluations);
  // The reported loss and the grads left in the parameters belong to the
  // returned point.
  const double a_grad = problem.a.grad()[0], b_grad = problem.b.grad()[0];
  problem.a.zero_grad();
  problem.b.zero_grad();
  EXPECT_EQ(problem(), r.loss);
  EXPECT_EQ(problem.a.grad()[0], a_grad);
  EXPECT_EQ(problem.b.grad()[0], b_grad);
}

struct RosenbrockCase {
  bool chained;
  Index n;
  int history;
  int max_iterations;  // bound on what the run may take (measured + ~25%)
};

class LbfgsRosenbrock : public ::testing::TestWithParam<RosenbrockCase> {};

TEST_P(LbfgsRosenbrock, ReachesTheMinimum) {
  const RosenbrockCase c = GetParam();
  Parameter<double> x = rosenbrock_start(c.n);
  Lbfgs<double> lbfgs({&x},
                      {.history_size = c.history, .grad_tolerance = 1e-10, .loss_tolerance = 0});
  const LbfgsResult r = lbfgs.minimize([&] { return rosenbrock(x, c.chained); });
  EXPECT_EQ(r.reason, LbfgsStop::kGradientTolerance) << to_string(r.reason);
  EXPECT_LT(distance_to_ones(x), 1e-8);
  EXPECT_LT(r.loss, 1e-8);
  EXPECT_LE(r.iterations, c.max_iterations);
  EXPECT_LE(r.evaluations, 2 * c.max_iterations);
  EXPECT_LE(lbfgs.history_count(), c.history);
  RecordProperty("iterations", r.iterations);
  RecordProperty("evaluations", r.evaluations);
}

// Measured (iterations): 2-D 38 (m = 10) and 49 (m = 1); chained n = 10: 87
// (m = 10), 139 (m = 3); chained n = 100: 540 (m = 10), 526 (m = 30), about
// 5n as expected of this chain; extended n = 1000: 35 (m = 10), 42 (m = 1),
// the 2-D count whatever n.
INSTANTIATE_TEST_SUITE_P(
    Problems, LbfgsRosenbrock,
    ::testing::Values(RosenbrockCase{true, 2, 10, 45}, RosenbrockCase{true, 2, 1, 60},
                      RosenbrockCase{true, 10, 10, 110}, RosenbrockCase{true, 10, 3, 175},
                      RosenbrockCase{true, 100, 10, 680}, RosenbrockCase{true, 100, 30, 660},
                      RosenbrockCase{false, 1000, 10, 45}, RosenbrockCase{false, 1000, 1, 55}),
    [](const auto& info) {
      std::string name = info.param.chained ? "chained_n" : "extended_n";
      name += std::to_string(info.param.n);
      name += "_m";
      name += std::to_string(info.param.history);
      return name;
    });

TEST(Lbfgs, FineTunesAfterAdam) {
  // The report's schedule: Adam first, then quasi-Newton polishing.
  TapeRosenbrock problem;
  Adam<double> adam({&problem.a, &problem.b}, {.lr = 0.02});
  for (int k = 0; k < 300; ++k) {
    adam.zero_grad();
    problem();
    adam.step();
  }
  const double after_adam = problem();
  Lbfgs<double> lbfgs({&problem.a, &problem.b}, {.grad_tolerance = 1e-10, .loss_tolerance = 0});
  const LbfgsResult r = lbfgs.minimize(problem);
  EXPECT_EQ(r.reason, LbfgsStop::kGradientTolerance);
  EXPECT_LT(r.loss, 1e-16);
  EXPECT_LT(r.loss, after_adam);
  EXPECT_LT(std::abs(problem.a.value()[0] - 1), 1e-8);
}

TEST(Lbfgs, FloatQuadraticConverges) {
  Parameter<float> p("p", Tensor<float>(Shape{8}));
  const std::vector<double> c = {1, -2, 0.5, 3, -1, 0.25, 2, -4};
  Lbfgs<float> lbfgs({&p}, {.history_size = 5, .grad_tolerance = 1e-5});
  const LbfgsResult r = lbfgs.minimize([&] { return quadratic(p, c); });
  EXPECT_NE(r.reason, LbfgsStop::kNonFinite);
  EXPECT_NE(r.reason, LbfgsStop::kMaxIterations);
  for (Index i = 0; i < 8; ++i) EXPECT_NEAR(p.value()[i], c[i], 1e-5);
  EXPECT_LE(r.iterations, 20);
}

TEST(Lbfgs, StoppingRules) {
  {  // already optimal: one evaluation, no iteration
    Parameter<double> x("x", Tensor<double>(Shape{4}, 1.0));
    Lbfgs<double> lbfgs({&x});
    const LbfgsResult r = lbfgs.minimize([&] { return rosenbrock(x); });
    EXPECT_EQ(r.reason, LbfgsStop::kGradientTolerance);
    EXPECT_EQ(r.iterations, 0);
    EXPECT_EQ(r.evaluations, 1);
    EXPECT_EQ(r.loss, 0.0);
  }
  {
    Parameter<double> x = rosenbrock_start(10);
    Lbfgs<double> lbfgs({&x}, {.max_iterations = 3});
    const LbfgsResult r = lbfgs.minimize([&] { return rosenbrock(x); });
    EXPECT_EQ(r.reason, LbfgsStop::kMaxIterations);
    EXPECT_EQ(r.iterations, 3);
  }
  {
    Parameter<double> x = rosenbrock_start(10);
    Lbfgs<double> lbfgs({&x}, {.max_evaluations = 7});
    const double start = rosenbrock(x);
    int calls = 0;
    const LbfgsResult r = lbfgs.minimize([&] {
      ++calls;
      return rosenbrock(x);
    });
    EXPECT_EQ(r.reason, LbfgsStop::kMaxEvaluations);
    EXPECT_EQ(r.evaluations, 7);
    EXPECT_EQ(calls, 7);
    EXPECT_LT(r.loss, start);
    // The parameters hold the reported point, not the last trial.
    x.zero_grad();
    EXPECT_EQ(rosenbrock(x), r.loss);
  }
  {
    Parameter<double> x = rosenbrock_start(10);
    Lbfgs<double> lbfgs({&x}, {.grad_tolerance = 0, .loss_tolerance = 1e-3});
    const LbfgsResult r = lbfgs.minimize([&] { return rosenbrock(x); });
    EXPECT_EQ(r.reason, LbfgsStop::kLossTolerance) << to_string(r.reason);
    EXPECT_GT(r.iterations, 1);
  }
  {  // no tolerance at all: ends at the rounding floor, never with NaN
    Parameter<double> x = rosenbrock_start(2);
    Lbfgs<double> lbfgs({&x}, {.grad_tolerance = 0, .loss_tolerance = 0});
    const LbfgsResult r = lbfgs.minimize([&] { return rosenbrock(x); });
    EXPECT_TRUE(r.reason == LbfgsStop::kLineSearchFailed ||
                r.reason == LbfgsStop::kGradientTolerance)
        << to_string(r.reason);
    EXPECT_LT(distance_to_ones(x), 1e-8);
    EXPECT_LT(r.iterations, 100);
  }
}

TEST(Lbfgs, StepLoopMatchesMinimizeAndReusesTheLastEvaluation) {
  Parameter<double> x1 = rosenbrock_start(6), x2 = rosenbrock_start(6);
  Lbfgs<double> a({&x1}, {.max_iterations = 12});
  const LbfgsResult ra = a.minimize([&] { return rosenbrock(x1); });
  ASSERT_EQ(ra.iterations, 12);
  Lbfgs<double> b({&x2});
  int evaluations = 0;
  for (int k = 0; k < 12; ++k) {
    const LbfgsResult rb = b.step([&] { return rosenbrock(x2); });
    EXPECT_EQ(rb.iterations, 1);
    EXPECT_EQ(rb.reason, LbfgsStop::kMaxIterations);
    evaluations += rb.evaluations;
  }
  EXPECT_EQ(evaluations, ra.evaluations);  // only the first step evaluated the start point
  for (Index i = 0; i < 6; ++i) EXPECT_EQ(x1.value()[i], x2.value()[i]);

  // Moving the parameters (or reset()) forces a fresh evaluation.
  int calls = 0;
  auto counted = [&] {
    ++calls;
    return rosenbrock(x2);
  };
  const LbfgsResult r1 = b.step(counted);
  EXPECT_EQ(r1.evaluations, calls);
  x2.value()[0] += 1e-3;
  calls = 0;
  const LbfgsResult r2 = b.step(counted);
  EXPECT_EQ(r2.evaluations, calls);
  EXPECT_GE(calls, 2);  // the start point plus the line search
  b.reset();
  EXPECT_EQ(b.history_count(), 0);
}

TEST(Lbfgs, NonFiniteStartStopsWithParametersUnchanged) {
  Parameter<double> x = make_param<double>("x", {0.5, 2.0});
  Lbfgs<double> lbfgs({&x});
  LbfgsResult r = lbfgs.minimize([] { return std::numeric_limits<double>::infinity(); });
  EXPECT_EQ(r.reason, LbfgsStop::kNonFinite) << to_string(r.reason);
  EXPECT_EQ(r.iterations, 0);
  EXPECT_EQ(x.value()[0], 0.5);
  EXPECT_EQ(x.value()[1], 2.0);

  r = lbfgs.minimize([&] {  // finite loss, NaN gradient
    x.grad()[1] = std::nan("");
    return 1.0;
  });
  EXPECT_EQ(r.reason, LbfgsStop::kNonFinite);
  EXPECT_TRUE(std::isnan(r.grad_norm));
  EXPECT_EQ(x.value()[1], 2.0);
  EXPECT_FALSE(std::string(to_string(r.reason)).empty());
}

TEST(Lbfgs, NonFiniteTrialPointsNeverReachTheParameters) {
  // sum (x_i - 1)^2 for x < 1.05, NaN beyond: the first trial step, x - g,
  // lands in the NaN region and the line search must back off.
  Parameter<double> x = make_param<double>("x", {0.9, 0.8, 0.95});
  int nan_calls = 0;
  auto f = [&] {
    double s = 0;
    for (Index i = 0; i < 3; ++i) {
      if (x.value()[i] >= 1.05) {
        ++nan_calls;
        return std::nan("");
      }
      s += (x.value()[i] - 1) * (x.value()[i] - 1);
      x.grad()[i] = 2 * (x.value()[i] - 1);
    }
    return s;
  };
  Lbfgs<double> lbfgs({&x});
  const LbfgsResult r = lbfgs.minimize(f);
  EXPECT_GT(nan_calls, 0);
  EXPECT_EQ(r.reason, LbfgsStop::kGradientTolerance) << to_string(r.reason);
  for (Index i = 0; i < 3; ++i) EXPECT_NEAR(x.value()[i], 1.0, 1e-8);

  // NaN everywhere except the start point: stops as non-finite at the start.
  Parameter<double> y = make_param<double>("y", {3.0, -1.0});
  auto g = [&] {
    if (y.value()[0] != 3.0 || y.value()[1] != -1.0) return std::nan("");
    y.grad()[0] = 1;
    y.grad()[1] = -2;
    return 7.0;
  };
  Lbfgs<double> stuck({&y});
  const LbfgsResult rs = stuck.minimize(g);
  EXPECT_EQ(rs.reason, LbfgsStop::kNonFinite) << to_string(rs.reason);
  EXPECT_EQ(rs.iterations, 0);
  EXPECT_EQ(rs.loss, 7.0);
  EXPECT_EQ(y.value()[0], 3.0);
  EXPECT_EQ(y.value()[1], -1.0);
  EXPECT_EQ(y.grad()[1], -2.0);
}

}  // namespace
}  // namespace anode
