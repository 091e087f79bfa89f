// A training step in steady state makes no heap allocation: the tape's arena
// and node lists keep their capacity, optimizers allocate their state once,
// the solvers keep their scratch in the arena. Counted by allocation_counter,
// which replaces the global operator new in this test binary.
#include <gtest/gtest.h>

#include <random>

#include "autodiff/ops.h"
#include "autodiff/optim.h"
#include "models/model.h"
#include "tests/autodiff/allocation_counter.h"

namespace anode {
namespace {

// Runs `step` a few times to warm up, then counts allocations over more steps.
template <class F>
long allocations_in_steady_state(F step) {
  for (int i = 0; i < 5; ++i) step();
  const long before = testing::allocations();
  for (int i = 0; i < 20; ++i) step();
  return testing::allocations() - before;
}

TEST(Allocation, CounterWorks) {
  // A new-expression may be elided, and so may std::allocator's (clang elides
  // __builtin_operator_new for a buffer that never escapes): let it escape.
  static double* volatile sink;
  const long before = testing::allocations();
  std::vector<double> v;
  v.reserve(100);
  sink = v.data();
  EXPECT_NE(sink, nullptr);
  Tensor<float> t(Shape{10});
  EXPECT_EQ(testing::allocations() - before, 2);  // the vector and the tensor
  const long mid = testing::allocations();
  Tape<float> tape;
  EXPECT_GT(testing::allocations() - mid, 0);  // a new tape reserves its lists
}

TEST(Allocation, MlpTrainingStepWithAdam) {
  std::mt19937 rng(1);
  std::normal_distribution<float> n(0, 0.3f);
  auto rand = [&](Shape s) {
    Tensor<float> t(s);
    for (float& v : t) v = n(rng);
    return t;
  };
  Parameter<float> w1("w1", rand({64, 16})), b1("b1", rand({64})), w2("w2", rand({4, 64})), b2("b2", rand({4}));
  Adam<float> adam({&w1, &b1, &w2, &b2}, {.lr = 1e-3});
  Tensor<float> x = rand({128, 16}), y = rand({128, 4});
  Tape<float> tape;
  auto step = [&] {
    adam.zero_grad();
    tape.clear();
    Var<float> h = tanh(linear(tape.constant(x.view()), tape.param(w1), tape.param(b1)));
    Var<float> loss = mse(linear(h, tape.param(w2), tape.param(b2)), tape.constant(y.view()));
    tape.backward(loss);
    adam.step();
  };
  EXPECT_EQ(allocations_in_steady_state(step), 0);
}

TEST(Allocation, AdamWAndRmspropSteps) {
  Parameter<float> w("w", Tensor<float>(Shape{64, 16}, 0.5f)), b("b", Tensor<float>(Shape{64}));
  AdamW<float> adamw({&w, &b});
  Rmsprop<float> rmsprop({&w, &b}, {.momentum = 0.9, .centered = true});
  for (float& g : w.grad()) g = 0.25f;
  EXPECT_EQ(allocations_in_steady_state([&] { adamw.step(); }), 0);
  EXPECT_EQ(allocations_in_steady_state([&] { rmsprop.step(); }), 0);
}

TEST(Allocation, ClassifierStepWithSoftmaxCrossEntropy) {
  Parameter<float> w("w", Tensor<float>(Shape{10, 32}, 0.01f));
  Sgd<float> sgd({&w}, {.lr = 0.1, .momentum = 0.9});
  Tensor<float> x(Shape{100, 32}, 0.5f);
  std::vector<int> labels(100);
  for (int i = 0; i < 100; ++i) labels[i] = i % 10;
  Tape<float> tape;
  auto step = [&] {
    sgd.zero_grad();
    tape.clear();
    tape.backward(softmax_cross_entropy<float>(linear(tape.constant(x.view()), tape.param(w)), labels));
    sgd.step();
  };
  EXPECT_EQ(allocations_in_steady_state(step), 0);
}

TEST(Allocation, GeneralBroadcastAndNewOpsStep) {
  // A column [n, 1] against [n, d] and an outer [n, 1] x [1, d] take the
  // general broadcasting path (expansion in transient arena scratch).
  Parameter<float> w("w", Tensor<float>(Shape{1, 8}, 0.3f)), c("c", Tensor<float>(Shape{16, 1}, 0.2f));
  Sgd<float> sgd({&w, &c}, {.lr = 0.01});
  Tensor<float> x(Shape{16, 8}, 0.5f), mask(Shape{16, 1}, 1.0f);
  Tape<float> tape;
  auto step = [&] {
    sgd.zero_grad();
    tape.clear();
    Var<float> vx = tape.constant(x.view()), vw = tape.param(w), vc = tape.param(c);
    Var<float> h = sin(mul(vc, vw)) + cos(vx - vc) + pow(abs(vx / vc), 1.5);
    h = where(tape.constant(mask.view()), maximum(h, vc), minimum(vw, clamp(h, -1.0, 1.0)));
    tape.backward(sum(logsumexp(h, 1)) + sum(log1p(1.0 / (2.0 + square(vc)))));
    sgd.step();
  };
  EXPECT_EQ(allocations_in_steady_state(step), 0);
}

class OdeStepAllocation : public ::testing::TestWithParam<ode::Gradient> {};

TEST_P(OdeStepAllocation, AnodeTrainingStep) {
  // The W1 model of the benchmarks, smaller: input layer, zero padding, an
  // RK4 (or adaptive Tsit5) solve, a classifier head, Adam.
  for (ode::Method method : {ode::Method::kRk4, ode::Method::kTsit5}) {
    models::ModelConfig c;
    c.input_dim = 64;
    c.input_layer = true;
    c.feature_dim = 8;
    c.augmentation = models::Augmentation::kZeroPad;
    c.augment_dim = 4;
    c.hidden = {10};
    c.hidden_activation = models::Activation::kTanh;
    c.readout_dim = 8;
    c.output_dim = 10;
    c.head = models::Head::kClassification;
    c.block.solver.method = method;
    c.block.solver.steps = method == ode::Method::kRk4 ? 10 : 0;
    c.block.solver.gradient = GetParam();
    models::AnodeModel<float> m(c);
    Adam<float> adam(m.parameters(), {.lr = 0.01});
    Tensor<float> x(Shape{32, 64}, 0.1f);
    std::vector<int> labels(32, 3);
    Tape<float> tape;
    auto step = [&] {
      adam.zero_grad();
      tape.clear();
      tape.backward(softmax_cross_entropy<float>(m(tape.constant(x.view()), true), labels));
      adam.step();
    };
    EXPECT_EQ(allocations_in_steady_state(step), 0) << ode::method_name(method) << " "
                                                     << ode::gradient_name(GetParam());
  }
}

INSTANTIATE_TEST_SUITE_P(Methods, OdeStepAllocation,
                         ::testing::Values(ode::Gradient::kBackprop, ode::Gradient::kAdjoint,
                                           ode::Gradient::kCheckpoint, ode::Gradient::kBinomial,
                                           ode::Gradient::kSymplectic),
                         [](const auto& info) { return std::string(ode::gradient_name(info.param)); });

}  // namespace
}  // namespace anode
