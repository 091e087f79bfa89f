// Every configuration of the ANODE family: structure, shapes, gradients
// (finite differences on the whole model, double), and a few training steps.
#include "models/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "autodiff/optim.h"

namespace anode::models {
namespace {

ModelConfig toy(Augmentation aug, Index p) {
  ModelConfig c;
  c.input_dim = 2;
  c.augmentation = aug;
  c.augment_dim = p;
  c.hidden = {8};
  c.hidden_activation = Activation::kTanh;
  c.block.solver.method = ode::Method::kRk4;
  c.block.solver.steps = 4;
  c.seed = 3;
  return c;
}

ModelConfig mnist_like(Augmentation aug, Index p) {
  ModelConfig c;
  c.input_dim = 12;
  c.input_layer = true;
  c.feature_dim = 4;
  c.augmentation = aug;
  c.augment_dim = p;
  c.hidden = {3, 3};
  c.hidden_activation = Activation::kTanh;
  c.final_activation = Activation::kTanh;
  c.readout_dim = 4;
  c.output_dim = 5;
  c.head = Head::kClassification;
  c.block.solver.method = ode::Method::kTsit5;
  c.block.solver.rtol = c.block.solver.atol = 1e-3;
  c.seed = 5;
  return c;
}

TEST(Model, NodeAnodeIlAnodeStructure) {
  AnodeModel<float> node(toy(Augmentation::kNone, 0));
  AnodeModel<float> anode(toy(Augmentation::kZeroPad, 3));
  // NODE: dynamics 2 -> 8 -> 2, head 2 -> 1.
  EXPECT_EQ(node.num_scalars(), (2 * 8 + 8) + (8 * 2 + 2) + (2 + 1));
  // ANODE p = 3: state 5.
  EXPECT_EQ(anode.num_scalars(), (5 * 8 + 8) + (8 * 5 + 5) + (5 + 1));
  AnodeModel<float> il(mnist_like(Augmentation::kInputLayer, 2));
  // Input layer 12 -> 6 (d + p), dynamics 6 -> 3 -> 3 -> 6, head reads 4.
  EXPECT_EQ(il.parameters()[0]->shape(), (Shape{6, 12}));
  Tape<float> tape;
  Tensor<float> x(Shape{3, 12}, 0.1f);
  Var<float> out = il(tape.constant(x.view()), false);
  EXPECT_EQ(out.shape(), (Shape{3, 5}));
  EXPECT_EQ(il.last_state().shape(), (Shape{3, 6}));
}

TEST(Model, ZeroPaddingStartsAugmentedDimensionsAtZero) {
  // With t_end tiny the final state is close to the padded input.
  ModelConfig c = toy(Augmentation::kZeroPad, 2);
  c.block.t_end = 1e-6;
  AnodeModel<double> m(c);
  Tape<double> tape;
  Tensor<double> x(Shape{1, 2}, {0.5, -0.25});
  m(tape.constant(x.view()), false);
  Tensor<double> h = m.last_state().to_tensor();
  EXPECT_NEAR(h[0], 0.5, 1e-5);
  EXPECT_NEAR(h[1], -0.25, 1e-5);
  EXPECT_NEAR(h[2], 0.0, 1e-5);
  EXPECT_NEAR(h[3], 0.0, 1e-5);
}

TEST(Model, TimeRegularizationIsSeededAndOffAtEvaluation) {
  ModelConfig c = toy(Augmentation::kZeroPad, 2);
  c.block.time_noise = 0.3;
  AnodeModel<float> a(c), b(c);
  Tape<float> tape;
  Tensor<float> x(Shape{2, 2}, 0.3f);
  std::vector<double> ta, tb;
  for (int i = 0; i < 5; ++i) {
    a(tape.constant(x.view()), true);
    b(tape.constant(x.view()), true);
    ta.push_back(a.block().last_end_time());
    tb.push_back(b.block().last_end_time());
    EXPECT_GT(ta.back(), 0.7);
    EXPECT_LT(ta.back(), 1.3);
  }
  EXPECT_EQ(ta, tb);  // same seed, same draws
  EXPECT_NE(ta[0], ta[1]);
  a(tape.constant(x.view()), false);
  EXPECT_EQ(a.block().last_end_time(), 1.0);
  c.block.noise_at_eval = true;  // the report's code drew T at test time too
  AnodeModel<float> r(c);
  r(tape.constant(x.view()), false);
  EXPECT_NE(r.block().last_end_time(), 1.0);
}

TEST(Model, SecondOrderStateAndReadout) {
  ModelConfig c = mnist_like(Augmentation::kZeroPad, 2);
  c.block.order = 2;  // input layer -> 2 x 4, each block padded to 6
  AnodeModel<double> m(c);
  EXPECT_EQ(m.parameters()[0]->shape(), (Shape{8, 12}));
  // Dynamics sees the position block only: 6 -> 3 -> 3 -> 6.
  EXPECT_EQ(m.parameters()[2]->shape(), (Shape{3, 6}));
  Tape<double> tape;
  Tensor<double> x(Shape{2, 12}, 0.2);
  EXPECT_EQ(m(tape.constant(x.view()), false).shape(), (Shape{2, 5}));
  EXPECT_EQ(m.last_state().shape(), (Shape{2, 12}));
  c.learned_velocity = false;
  AnodeModel<double> zero_v(c);
  EXPECT_EQ(zero_v.parameters()[0]->shape(), (Shape{4, 12}));
  c.block.position_only = false;
  AnodeModel<double> full(c);
  EXPECT_EQ(full.parameters()[2]->shape(), (Shape{3, 12}));
}

TEST(Model, BadConfigurationsNameTheField) {
  auto msg = [](ModelConfig c) {
    try {
      AnodeModel<float> m(c);
    } catch (const ValueError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  ModelConfig c = toy(Augmentation::kZeroPad, -1);
  EXPECT_NE(msg(c).find("augment_dim"), std::string::npos);
  c = toy(Augmentation::kInputLayer, 2);
  EXPECT_NE(msg(c).find("input layer"), std::string::npos);
  c = toy(Augmentation::kNone, 3);
  EXPECT_NE(msg(c).find("augment_dim"), std::string::npos);
  c = toy(Augmentation::kNone, 0);
  c.block.order = 2;
  EXPECT_NE(msg(c).find("velocities"), std::string::npos);
  c = toy(Augmentation::kNone, 0);
  c.block.time_noise = 1.5;
  EXPECT_NE(msg(c).find("time_noise"), std::string::npos);
  // The block's zero padding is derived from augmentation and augment_dim:
  // a value set by hand would be silently replaced, so it is refused.
  c = toy(Augmentation::kZeroPad, 2);
  c.block.augment = 2;
  EXPECT_NE(msg(c).find("block.augment"), std::string::npos);
  c.block.augment = 0;
  EXPECT_EQ(c.block_config().augment, 2);
  EXPECT_EQ(toy(Augmentation::kInputLayer, 2).block_config().augment, 0);
}

// The time-regularized end time is drawn by the portable generator: the same
// numbers for a seed with every standard library.
TEST(OdeBlockTimeNoise, EndTimesAreThePortableGeneratorsUniformStream) {
  datasets::Rng rng(3);
  MlpDynamics<double> f(2, 2, {4}, Activation::kTanh, Activation::kIdentity, false, rng);
  OdeBlockConfig bc;
  bc.solver.method = ode::Method::kRk4;
  bc.solver.steps = 2;
  bc.t_end = 1.0;
  bc.time_noise = 0.3;
  OdeBlock<double> block(f, bc, 99);
  datasets::Rng reference(99);
  Tape<double> tape;
  Tensor<double> x(Shape{1, 2}, 0.5);
  for (int i = 0; i < 3; ++i) {
    tape.clear();
    block(tape.constant(x.view()), /*training=*/true);
    EXPECT_EQ(block.last_end_time(), reference.uniform(0.7, 1.3));
  }
  block(tape.constant(x.view()), /*training=*/false);
  EXPECT_EQ(block.last_end_time(), 1.0);
}

// The whole model's parameter gradient against central differences, for
// every configuration and gradient method.
void check_model_gradient(ModelConfig c, ode::Gradient g) {
  c.block.solver.gradient = g;
  c.block.solver.method = ode::Method::kRk4;  // fixed steps: the discrete map is smooth
  c.block.solver.steps = 3;
  c.hidden_activation = Activation::kTanh;
  AnodeModel<double> m(c);
  std::mt19937_64 rng(9);
  std::normal_distribution<double> n(0, 1);
  Tensor<double> x(Shape{3, c.input_dim});
  for (double& v : x) v = n(rng);
  std::vector<int> labels = {0, 2, 1};
  Tensor<double> y(Shape{3, c.output_dim});
  for (double& v : y) v = n(rng);
  auto loss = [&](Tape<double>& tape) {
    Var<double> out = m(tape.constant(x.view()), false);
    return c.head == Head::kRegression ? mse(out, tape.constant(y.view()))
                                       : softmax_cross_entropy<double>(out, labels);
  };
  for (Parameter<double>* p : m.parameters()) p->zero_grad();
  Tape<double> tape;
  tape.backward(loss(tape));
  int checked = 0;
  for (Parameter<double>* p : m.parameters()) {
    for (Index i = 0; i < p->size(); i += 3) {  // a sample of entries
      const double saved = p->value()[i];
      const double h = 1e-6;
      p->value()[i] = saved + h;
      Tape<double> t1;
      const double up = loss(t1).item();
      p->value()[i] = saved - h;
      Tape<double> t2;
      const double down = loss(t2).item();
      p->value()[i] = saved;
      const double fd = (up - down) / (2 * h);
      EXPECT_NEAR(p->grad()[i], fd, 1e-6 * std::max(1.0, std::abs(fd)))
          << c.label() << " " << ode::gradient_name(g) << " " << p->name() << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
}

TEST(ModelGradients, EveryConfigurationAndMethod) {
  std::vector<ModelConfig> configs = {toy(Augmentation::kNone, 0), toy(Augmentation::kZeroPad, 2),
                                      mnist_like(Augmentation::kZeroPad, 2),
                                      mnist_like(Augmentation::kInputLayer, 2)};
  ModelConfig so = mnist_like(Augmentation::kZeroPad, 1);
  so.block.order = 2;
  configs.push_back(so);
  so.block.position_only = false;
  so.readout_block = 1;
  configs.push_back(so);
  ModelConfig timed = toy(Augmentation::kZeroPad, 1);
  timed.time_dependent = true;
  configs.push_back(timed);
  for (const ModelConfig& c : configs) {
    for (ode::Gradient g : {ode::Gradient::kBackprop, ode::Gradient::kCheckpoint}) check_model_gradient(c, g);
  }
}

TEST(ModelTraining, AnodeFitsTheOneDimensionalCrossingMap) {
  // g(1) = -1, g(-1) = 1 (report Figure 2), asked of the flow itself (the
  // first coordinate of h(T), no head): impossible for a 1-D NODE, whose
  // trajectories cannot cross; easy once one dimension is added.
  auto train = [](Augmentation aug, Index p) {
    ModelConfig c;
    c.input_dim = 1;
    c.augmentation = aug;
    c.augment_dim = p;
    c.hidden = {16};
    c.hidden_activation = Activation::kTanh;
    c.block.solver.method = ode::Method::kRk4;
    c.block.solver.steps = 10;
    c.seed = 1;
    AnodeModel<float> m(c);
    Adam<float> adam(m.parameters(), {.lr = 0.05});
    Tensor<float> x(Shape{2, 1}, {1.0f, -1.0f}), y(Shape{2, 1}, {-1.0f, 1.0f});
    Tape<float> tape;
    float last = 0;
    for (int it = 0; it < 150; ++it) {
      adam.zero_grad();
      tape.clear();
      m(tape.constant(x.view()), true);
      Var<float> loss = mse(slice_last(m.last_state(), 0, 1), tape.constant(y.view()));
      last = loss.item();
      tape.backward(loss);
      adam.step();
    }
    return last;
  };
  const float node = train(Augmentation::kNone, 0), anode = train(Augmentation::kZeroPad, 1);
  EXPECT_GT(node, 0.5f);   // the flow cannot cross: the best map collapses both to ~0
  EXPECT_LT(anode, 0.05f);
}

TEST(ModelTraining, ClassifierLossDecreasesWithEveryGradientMethod) {
  std::mt19937_64 rng(4);
  std::normal_distribution<float> n(0, 1);
  Tensor<float> x(Shape{16, 12});
  std::vector<int> labels(16);
  for (Index r = 0; r < 16; ++r) {
    labels[r] = static_cast<int>(r % 5);
    for (Index j = 0; j < 12; ++j) x(r, j) = n(rng) * 0.3f + (j == labels[r] ? 2.0f : 0.0f);
  }
  for (ode::Gradient g : {ode::Gradient::kBackprop, ode::Gradient::kAdjoint, ode::Gradient::kCheckpoint}) {
    ModelConfig c = mnist_like(Augmentation::kZeroPad, 2);
    c.block.solver.gradient = g;
    AnodeModel<float> m(c);
    Adam<float> adam(m.parameters(), {.lr = 0.05});
    Tape<float> tape;
    float first = 0, last = 0;
    for (int it = 0; it < 30; ++it) {
      adam.zero_grad();
      tape.clear();
      Var<float> loss = softmax_cross_entropy<float>(m(tape.constant(x.view()), true), labels);
      if (it == 0) first = loss.item();
      last = loss.item();
      tape.backward(loss);
      adam.step();
    }
    EXPECT_LT(last, 0.5f * first) << ode::gradient_name(g);
    EXPECT_GT(m.stats().nfe_forward, 0);
    if (g != ode::Gradient::kBackprop) {
      EXPECT_GT(m.stats().nfe_backward, 0);
    }
  }
}

TEST(Metrics, CountCorrect) {
  Tensor<float> z(Shape{3, 3}, {0.1f, 0.9f, 0.0f, 2.0f, 1.0f, 0.0f, 0.0f, 0.0f, 5.0f});
  std::vector<int> labels = {1, 1, 2};
  EXPECT_EQ(count_correct<float>(z.view(), labels), 2);
}

}  // namespace
}  // namespace anode::models
