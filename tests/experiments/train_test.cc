// The experiments' one training loop: its gradient is the hand-written
// one's, a fit takes the steps it should, a non-finite loss stops it before
// the step, evaluation counts what count_correct counts, and a trained
// model's file loads into a double model exactly.
#include "experiments/train.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "datasets/random.h"
#include "experiments/configs.h"
#include "models/serialize.h"

namespace anode::experiments {
namespace {

namespace fs = std::filesystem;

models::ModelConfig small_classifier() {
  models::ModelConfig c;
  c.input_dim = 6;
  c.input_layer = true;
  c.feature_dim = 4;
  c.augmentation = models::Augmentation::kZeroPad;
  c.augment_dim = 2;
  c.hidden = {8};
  c.hidden_activation = models::Activation::kTanh;
  c.readout_dim = 4;
  c.output_dim = 3;
  c.head = models::Head::kClassification;
  c.block.solver.method = ode::Method::kRk4;
  c.block.solver.steps = 3;
  c.seed = 5;
  return c;
}

struct Data {
  Tensor<float> x{Shape{10, 6}};
  std::vector<int> labels = std::vector<int>(10);
  Data() {
    datasets::Rng rng(1);
    for (Index r = 0; r < 10; ++r) {
      labels[r] = static_cast<int>(r % 3);
      for (Index j = 0; j < 6; ++j) x(r, j) = static_cast<float>(rng.normal() * 0.3 + (j == labels[r] ? 1.5 : 0.0));
    }
  }
};

TEST(Trainer, GradientIsTheHandWrittenOne) {
  Data d;
  models::AnodeModel<float> a(small_classifier()), b(small_classifier());
  Trainer trainer(a.parameters(), [&a] { return a.stats(); }, "test");
  const StepResult r = trainer.gradient(10, batch_loss(a, Objective::kCrossEntropy, d.x, nullptr, d.labels));
  Tape<float> tape;
  Var<float> loss = softmax_cross_entropy<float>(b(tape.constant(d.x.view()), true), d.labels);
  tape.backward(loss);
  EXPECT_EQ(r.loss, loss.item());
  EXPECT_EQ(r.stats.nfe_forward, 12);  // RK4, 3 steps
  for (std::size_t i = 0; i < a.parameters().size(); ++i) {
    const Tensor<float>& ga = a.parameters()[i]->grad();
    const Tensor<float>& gb = b.parameters()[i]->grad();
    for (Index j = 0; j < ga.size(); ++j) ASSERT_EQ(ga[j], gb[j]) << a.parameters()[i]->name() << " " << j;
  }
}

TEST(Fit, TakesTheStepsAndLowersTheLoss) {
  Data d;
  models::AnodeModel<float> m(small_classifier());
  Adam<float> adam(m.parameters(), {.lr = 0.05});
  datasets::Batcher<float> batches(d.x, d.labels, {.batch_size = 4, .shuffle = true, .seed = 2});
  const auto [acc0, loss0] = evaluate_classifier(m, d.x, d.labels, 4);
  FitOptions fo;
  fo.epochs = 20;
  fo.max_steps = 50;  // 3 batches per epoch: stops in epoch 17
  std::vector<Index> steps;
  int last_of_epoch = 0;
  fo.after_step = [&](const StepInfo& s) {
    steps.push_back(s.step);
    EXPECT_EQ(s.steps, 50);
    last_of_epoch += s.last_of_epoch;
    return std::string();
  };
  const FitResult r = fit(m, adam, batches, Objective::kCrossEntropy, fo, Progress(true), "test");
  EXPECT_EQ(r.steps, 50);
  ASSERT_EQ(steps.size(), 50u);
  EXPECT_EQ(steps.front(), 1);
  EXPECT_EQ(steps.back(), 50);
  EXPECT_EQ(last_of_epoch, 17);  // 16 whole epochs, then the step limit
  EXPECT_EQ(r.total.nfe_forward, 50 * 12);
  EXPECT_EQ(adam.step_count(), 50);
  const auto [acc1, loss1] = evaluate_classifier(m, d.x, d.labels, 4);
  EXPECT_LT(loss1, loss0);
  EXPECT_GE(acc1, acc0);
}

TEST(Fit, NonFiniteLossStopsBeforeTheStep) {
  Data d;
  models::ModelConfig c = small_classifier();
  c.output_dim = 1;
  c.head = models::Head::kRegression;
  models::AnodeModel<float> m(c);
  Tensor<float> targets(Shape{10, 1}, 0.0f);
  targets(3, 0) = std::numeric_limits<float>::infinity();
  const float before = m.parameters()[0]->value()[0];
  Adam<float> adam(m.parameters(), {.lr = 0.05});
  datasets::Batcher<float> batches(d.x, targets, {.batch_size = 10, .shuffle = false});
  FitOptions fo;
  try {
    fit(m, adam, batches, Objective::kMse, fo, Progress(true), "the inf run");
    FAIL() << "an infinite loss was stepped on";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("the inf run: the loss became"), std::string::npos) << e.what();
  }
  EXPECT_EQ(adam.step_count(), 0);
  EXPECT_EQ(m.parameters()[0]->value()[0], before);
}

TEST(Evaluate, CountsWhatCountCorrectCounts) {
  Data d;
  models::AnodeModel<float> m(small_classifier());
  Tape<float> tape;
  Var<float> logits = m(tape.constant(d.x.view()), false);
  const Index correct = models::count_correct<float>(logits.value(), d.labels);
  const auto [acc, loss] = evaluate_classifier(m, d.x, d.labels, 3);  // batches of 3, 3, 3, 1
  EXPECT_DOUBLE_EQ(acc, static_cast<double>(correct) / 10.0);
  EXPECT_TRUE(std::isfinite(loss));
}

TEST(ModelFiles, ATrainedFloatModelLoadsIntoADoubleModelExactly) {
  const fs::path dir = fs::path(::testing::TempDir()) / "train_test";
  fs::create_directories(dir);
  models::AnodeModel<float> trained(small_classifier());
  const fs::path path = dir / "model.anode";
  save_trained(path, trained);
  models::ModelConfig cfg = small_classifier();
  cfg.block.solver.method = ode::Method::kDopri5;  // another solver: the same parameters
  models::AnodeModel<double> m(cfg);
  load_trained(path, small_classifier(), m);
  for (std::size_t i = 0; i < m.parameters().size(); ++i) {
    const Tensor<float>& a = trained.parameters()[i]->value();
    const Tensor<double>& b = m.parameters()[i]->value();
    for (Index j = 0; j < a.size(); ++j) ASSERT_EQ(static_cast<double>(a[j]), b[j]);
  }
  // A file of another model is refused, naming the file.
  models::ModelConfig other = small_classifier();
  other.seed = 6;
  try {
    load_trained(path, other, m);
    FAIL() << "a file of another configuration was loaded";
  } catch (const models::ModelFileError& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
}

TEST(Configs, TheMnistModelIsTheReports) {
  const models::ModelConfig c = mnist_mlp_config(models::Augmentation::kZeroPad, 10);
  EXPECT_EQ(c.input_dim, 784);
  EXPECT_EQ(c.block_dim(), 30);
  EXPECT_EQ(c.block.solver.method, ode::Method::kTsit5);
  EXPECT_EQ(models::AnodeModel<float>(c).num_scalars(), 784 * 20 + 20 + 30 * 10 + 10 + 10 * 10 + 10 + 10 * 30 + 30 + 20 * 10 + 10);
}

}  // namespace
}  // namespace anode::experiments
