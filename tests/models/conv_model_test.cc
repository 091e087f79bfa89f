#include "models/conv_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "autodiff/optim.h"

namespace anode::models {
namespace {

ConvModelConfig tiny(Index p) {
  ConvModelConfig c;
  c.channels = 1;
  c.height = 5;
  c.width = 4;
  c.augment_channels = p;
  c.filters = 3;
  c.classes = 3;
  c.solver.method = ode::Method::kRk4;
  c.solver.steps = 2;
  c.seed = 4;
  return c;
}

TEST(ConvModel, ShapesAndParameters) {
  ConvOdeClassifier<float> node(tiny(0)), anode(tiny(2));
  // conv1 (1+1 -> 3, 1x1), conv2 (3+1 -> 3, 3x3), conv3 (3+1 -> 1, 1x1), head 20 -> 3.
  EXPECT_EQ(node.num_scalars(), (2 * 3 + 3) + (4 * 3 * 9 + 3) + (4 * 1 + 1) + (20 * 3 + 3));
  EXPECT_EQ(anode.num_scalars(), (4 * 3 + 3) + (4 * 3 * 9 + 3) + (4 * 3 + 3) + (60 * 3 + 3));
  Tape<float> tape;
  Tensor<float> x(Shape{2, 20}, 0.3f);
  EXPECT_EQ(anode(tape.constant(x.view()), false).shape(), (Shape{2, 3}));
  Tensor<float> bad(Shape{2, 21});
  EXPECT_THROW(anode(tape.constant(bad.view()), false), ShapeError);
}

TEST(ConvModel, ParameterGradientsMatchFiniteDifferences) {
  for (ode::Gradient g : {ode::Gradient::kBackprop, ode::Gradient::kCheckpoint}) {
    ConvModelConfig c = tiny(1);
    c.solver.gradient = g;
    ConvOdeClassifier<double> m(c);
    std::mt19937_64 rng(3);
    std::normal_distribution<double> n(0, 1);
    Tensor<double> x(Shape{2, 20});
    for (double& v : x) v = n(rng);
    std::vector<int> labels = {2, 0};
    auto loss = [&] {
      Tape<double> t;
      return softmax_cross_entropy<double>(m(t.constant(x.view()), false), labels).item();
    };
    for (Parameter<double>* p : m.parameters()) p->zero_grad();
    Tape<double> tape;
    tape.backward(softmax_cross_entropy<double>(m(tape.constant(x.view()), false), labels));
    for (Parameter<double>* p : m.parameters()) {
      for (Index i = 0; i < p->size(); i += 5) {
        const double saved = p->value()[i], h = 1e-6;
        p->value()[i] = saved + h;
        const double up = loss();
        p->value()[i] = saved - h;
        const double down = loss();
        p->value()[i] = saved;
        // ReLU kinks are rare at random points; a loose tolerance covers them.
        EXPECT_NEAR(p->grad()[i], (up - down) / (2 * h), 1e-5) << ode::gradient_name(g) << " " << p->name() << "[" << i << "]";
      }
    }
  }
}

TEST(ConvModel, LossDecreasesWithTheAdjoint) {
  ConvModelConfig c = tiny(2);
  c.solver.gradient = ode::Gradient::kAdjoint;
  ConvOdeClassifier<float> m(c);
  Adam<float> adam(m.parameters(), {.lr = 0.01});
  std::mt19937_64 rng(5);
  std::normal_distribution<float> n(0, 1);
  Tensor<float> x(Shape{6, 20});
  for (float& v : x) v = n(rng);
  std::vector<int> labels = {0, 1, 2, 0, 1, 2};
  Tape<float> tape;
  float first = 0, last = 0;
  for (int it = 0; it < 60; ++it) {
    adam.zero_grad();
    tape.clear();
    Var<float> l = softmax_cross_entropy<float>(m(tape.constant(x.view()), true), labels);
    if (it == 0) first = l.item();
    last = l.item();
    tape.backward(l);
    adam.step();
  }
  EXPECT_LT(last, 0.5f * first);
  EXPECT_GT(m.stats().nfe_backward, 0);
}

}  // namespace
}  // namespace anode::models
