#ifndef ANODE_TESTS_ODE_TEST_DYNAMICS_H_
#define ANODE_TESTS_ODE_TEST_DYNAMICS_H_

#include <random>
#include <vector>

#include "autodiff/ops.h"
#include "ode/dynamics.h"

namespace anode::ode {

/// f(t, h) = tanh(h W1^T + b1 (+ t c)) W2^T + b2: smooth, small, seeded.
template <class T>
class MlpDynamics : public Dynamics<T> {
 public:
  MlpDynamics(Index d, Index hidden, unsigned seed, bool time_dependent = false)
      : w1_("w1", random({hidden, d}, seed, 0.8)),
        b1_("b1", random({hidden}, seed + 1, 0.3)),
        c_("c", random({hidden}, seed + 2, 0.5)),
        w2_("w2", random({d, hidden}, seed + 3, 0.8)),
        b2_("b2", random({d}, seed + 4, 0.3)),
        time_dependent_(time_dependent) {
    params_ = {&w1_, &b1_, &w2_, &b2_};
    if (time_dependent_) params_.push_back(&c_);
  }

  Var<T> operator()(T t, Var<T> h) override {
    Tape<T>& tape = h.tape();
    Var<T> pre = linear(h, tape.param(w1_), tape.param(b1_));
    if (time_dependent_) pre = add(pre, scale(tape.param(c_), t));
    return linear(tanh(pre), tape.param(w2_), tape.param(b2_));
  }
  const std::vector<Parameter<T>*>& parameters() const override { return params_; }

  static Tensor<T> random(Shape s, unsigned seed, double scale) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> n(0.0, scale);
    Tensor<T> t(s);
    for (T& v : t) v = static_cast<T>(n(rng));
    return t;
  }

 private:
  Parameter<T> w1_, b1_, c_, w2_, b2_;
  bool time_dependent_;
  std::vector<Parameter<T>*> params_;
};

/// dh/dt = A h for a fixed matrix A (h is [batch, d], A acts on rows).
template <class T>
class LinearDynamics : public Dynamics<T> {
 public:
  explicit LinearDynamics(Tensor<T> a) : a_(std::move(a)) {}
  Var<T> operator()(T, Var<T> h) override { return matmul(h, h.tape().constant(a_.view()), false, true); }
  const std::vector<Parameter<T>*>& parameters() const override { return none_; }

 private:
  Tensor<T> a_;
  std::vector<Parameter<T>*> none_;
};

}  // namespace anode::ode

#endif  // ANODE_TESTS_ODE_TEST_DYNAMICS_H_
