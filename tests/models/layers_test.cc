#include "models/layers.h"

#include <gtest/gtest.h>

#include <cmath>

#include "autodiff/grad_check.h"
#include "models/dynamics.h"

namespace anode::models {
namespace {

TEST(Linear, ShapesAndGlorotInit) {
  datasets::Rng rng(1);
  Linear<float> lin(30, 20, rng);
  EXPECT_EQ(lin.weight().shape(), (Shape{20, 30}));
  ASSERT_NE(lin.bias(), nullptr);
  const float limit = std::sqrt(6.0f / 50.0f);
  for (float w : lin.weight().value()) EXPECT_LE(std::abs(w), limit);
  for (float b : lin.bias()->value()) EXPECT_EQ(b, 0.0f);  // Flux's zero bias
  Tape<float> tape;
  Tensor<float> x(Shape{7, 30}, 1.0f);
  EXPECT_EQ(lin(tape.constant(x.view())).shape(), (Shape{7, 20}));
  EXPECT_EQ(lin.parameters().size(), 2u);
}

TEST(Linear, PytorchInitHasNonzeroBias) {
  datasets::Rng rng(1);
  Linear<double> lin(4, 3, rng, Init::kPytorch);
  double s = 0;
  for (double b : lin.bias()->value()) s += std::abs(b);
  EXPECT_GT(s, 0);
  for (double b : lin.bias()->value()) EXPECT_LE(std::abs(b), 0.5);
}

// Weights come from the project's portable generator (datasets::Rng), whose
// numbers are the same with every standard library: the seed alone decides
// them, value for value.
TEST(Linear, WeightsAreThePortableGeneratorsUniformStream) {
  for (Init init : {Init::kGlorotUniform, Init::kPytorch}) {
    datasets::Rng rng(17), reference(17);
    Linear<double> lin(5, 3, rng, init);
    const double limit = init == Init::kGlorotUniform ? std::sqrt(6.0 / 8.0) : 1.0 / std::sqrt(5.0);
    for (double w : lin.weight().value()) EXPECT_EQ(w, reference.uniform(-limit, limit));
    for (double b : lin.bias()->value()) EXPECT_EQ(b, init == Init::kPytorch ? reference.uniform(-limit, limit) : 0.0);
    EXPECT_EQ(rng.bits(), reference.bits());  // nothing else was drawn
  }
}

TEST(Linear, RejectsBadSizes) {
  datasets::Rng rng(1);
  EXPECT_THROW(Linear<float>(0, 3, rng), ValueError);
}

TEST(Mlp, ParametersInOrderAndActivations) {
  datasets::Rng rng(2);
  Mlp<double> mlp({3, 5, 2}, {Activation::kTanh, Activation::kIdentity}, rng);
  ASSERT_EQ(mlp.parameters().size(), 4u);
  EXPECT_EQ(mlp.parameters()[0]->name(), "mlp.0.weight");
  EXPECT_EQ(mlp.parameters()[3]->name(), "mlp.1.bias");
  EXPECT_EQ(mlp.num_scalars(), 3 * 5 + 5 + 5 * 2 + 2);
  EXPECT_THROW(Mlp<double>({3, 5}, {}, rng), ValueError);
}

TEST(Mlp, GradientWithRespectToInputMatchesFiniteDifferences) {
  datasets::Rng rng(3);
  Mlp<double> mlp({3, 6, 6, 2}, {Activation::kSoftplus, Activation::kTanh, Activation::kSigmoid}, rng);
  std::vector<Tensor<double>> x = {Tensor<double>(Shape{4, 3}, {0.1, -0.2, 0.3, 0.7, 0.5, -1.0, 0.0, 0.2, 2.0, -0.4, 0.9, 0.3})};
  auto r = grad_check([&](Tape<double>&, std::span<const Var<double>> v) { return mlp(v[0]); }, x);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(MlpDynamics, TimeColumnChangesTheOutput) {
  datasets::Rng rng(4);
  MlpDynamics<double> f(3, 3, {8}, Activation::kTanh, Activation::kIdentity, true, rng);
  Tape<double> tape;
  Tensor<double> h(Shape{2, 3}, 0.5);
  Var<double> a = f(0.0, tape.constant(h.view())), b = f(1.0, tape.constant(h.view()));
  EXPECT_EQ(a.shape(), (Shape{2, 3}));
  EXPECT_NE(a.data()[0], b.data()[0]);
  EXPECT_EQ(f.parameters()[0]->shape(), (Shape{8, 4}));  // 3 + time
}

TEST(Activations, NamesRoundTrip) {
  for (Activation a : {Activation::kIdentity, Activation::kTanh, Activation::kRelu, Activation::kSoftplus, Activation::kSigmoid}) {
    EXPECT_EQ(parse_activation(activation_name(a)), a);
  }
  EXPECT_THROW(parse_activation("gelu"), ValueError);
}

}  // namespace
}  // namespace anode::models
