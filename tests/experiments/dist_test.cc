// dist::World and the data-parallel Trainer. Run alone it checks the world of
// one process; under `mpirun -np 2` (tests/experiments/mpi_test.sh, in CI)
// it checks the collectives, that a 2-rank gradient is the single-process
// gradient to rounding, that the parameters stay bitwise equal on every rank
// (their checksum compared after every step), and that a rank whose
// parameters drifted is caught, and that global step control makes every
// rank take the single-process steps of an adaptive solver.
#include <gtest/gtest.h>

#include <cmath>

#include "datasets/random.h"
#include "dist/world.h"
#include "experiments/train.h"
#include "ode/solver.h"

namespace anode::experiments {
namespace {

const dist::World& world() { return dist::World::get(); }

TEST(World, CollectivesOverTheRanks) {
  const int k = world().size(), r = world().rank();
  std::vector<double> d = {1.0, static_cast<double>(r)};
  world().sum(d);
  EXPECT_EQ(d[0], k);
  EXPECT_EQ(d[1], k * (k - 1) / 2);
  std::vector<std::int64_t> n = {r + 1};
  world().sum(n);
  EXPECT_EQ(n[0], k * (k + 1) / 2);
  std::vector<float> b = {static_cast<float>(r), 7.0f};
  world().broadcast(b);
  EXPECT_EQ(b[0], 0.0f);  // rank 0's
  std::string text = r == 0 ? "from rank 0" : "";
  world().broadcast(text);
  EXPECT_EQ(text, "from rank 0");
  const std::vector<std::string> all = world().gather("rank " + std::to_string(r));
  if (world().root()) {
    ASSERT_EQ(all.size(), static_cast<std::size_t>(k));
    for (int i = 0; i < k; ++i) EXPECT_EQ(all[i], "rank " + std::to_string(i));
  } else {
    EXPECT_TRUE(all.empty());
  }
}

TEST(World, CheckSameNamesWhatDiffers) {
  EXPECT_NO_THROW(world().check_same(42, "the answer"));
  if (world().size() == 1) return;
  try {
    world().check_same(world().rank() == 1 ? 43 : 42, "the answer");
    FAIL() << "rank 1's different hash was not seen";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("the ranks disagree on the answer: rank 1 differs from rank 0"),
              std::string::npos)
        << e.what();
  }
}

TEST(World, OneProcessNeverStartsMpi) {
  EXPECT_EQ(world().mpi(), dist::launched_by_mpi());
  if (!dist::launched_by_mpi()) {
    EXPECT_EQ(world().size(), 1);
  }
}

models::ModelConfig config() {
  models::ModelConfig c;
  c.input_dim = 5;
  c.augmentation = models::Augmentation::kZeroPad;
  c.augment_dim = 2;
  c.hidden = {8};
  c.hidden_activation = models::Activation::kTanh;
  c.output_dim = 1;
  c.block.solver.method = ode::Method::kRk4;  // fixed steps: exact to rounding
  c.block.solver.steps = 4;
  c.seed = 3;
  return c;
}

struct Batch {
  Tensor<float> x{Shape{13, 5}}, y{Shape{13, 1}};  // 13 rows: shards of 6 and 7
  Batch() {
    datasets::Rng rng(8);
    for (float& v : x) v = static_cast<float>(rng.normal());
    for (float& v : y) v = static_cast<float>(rng.normal());
  }
};

TEST(DataParallel, GradientIsTheWholeBatchsToRounding) {
  Batch b;
  models::AnodeModel<float> local(config()), shared(config());
  // Rank 0's parameters are broadcast: another seed elsewhere is replaced.
  if (!world().root()) {
    for (Parameter<float>* p : shared.parameters()) p->value().fill(0.5f);
  }
  Trainer alone(local.parameters(), [&] { return local.stats(); }, "alone");
  Trainer together(shared.parameters(), [&] { return shared.stats(); }, "together", &world());
  const StepResult a = alone.gradient(13, batch_loss(local, Objective::kMse, b.x, &b.y, {}));
  const StepResult t = together.gradient(13, batch_loss(shared, Objective::kMse, b.x, &b.y, {}));
  EXPECT_NEAR(t.loss, a.loss, 1e-6 * std::abs(a.loss));
  EXPECT_EQ(t.stats.nfe_forward, world().size() * a.stats.nfe_forward);  // summed over the ranks
  for (std::size_t i = 0; i < local.parameters().size(); ++i) {
    const Tensor<float>& ga = local.parameters()[i]->grad();
    const Tensor<float>& gt = shared.parameters()[i]->grad();
    for (Index j = 0; j < ga.size(); ++j) {
      ASSERT_NEAR(gt[j], ga[j], 1e-5f * (1 + std::abs(ga[j]))) << local.parameters()[i]->name() << " " << j;
    }
  }
}

TEST(DataParallel, ParametersStayBitwiseEqualOnEveryRank) {
  Batch b;
  models::AnodeModel<float> m(config());
  Adam<float> adam(m.parameters(), {.lr = 0.05});
  Trainer t(m.parameters(), [&] { return m.stats(); }, "sync", &world(), /*check_sync=*/true);
  for (int step = 0; step < 5; ++step) {
    ASSERT_NO_THROW(t.step(adam, 13, batch_loss(m, Objective::kMse, b.x, &b.y, {})));
  }
  EXPECT_NO_THROW(world().check_same(t.checksum(), "the parameters"));
  if (world().size() == 1) return;
  // A rank whose parameters drift is caught at the next step.
  if (world().rank() == 1) m.parameters()[0]->value()[0] += 1e-3f;
  try {
    t.step(adam, 13, batch_loss(m, Objective::kMse, b.x, &b.y, {}));
    FAIL() << "a drifted rank was not caught";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("the parameters after step 6"), std::string::npos) << e.what();
  }
}

// dh/dt = -k h row by row: row 0 decays slowly (easy), row 1 fast (hard).
class Decay : public ode::Dynamics<double> {
 public:
  explicit Decay(Tensor<double> k) : k_(std::move(k)) {}
  Var<double> operator()(double, Var<double> h) override {
    Tape<double>& t = h.tape();
    Tensor<double> rows = Tensor<double>::from_view({k_.data() + row0_, Shape{h.shape()[0], 1}});
    return neg(mul(h, t.constant_copy(rows.view())));
  }
  const std::vector<Parameter<double>*>& parameters() const override { return none_; }
  Index row0_ = 0;  // the first row of k this shard's state starts at

 private:
  Tensor<double> k_;
  std::vector<Parameter<double>*> none_;
};

// A dopri5 solve of `rows` rows of the 2-row problem from row `first`.
ode::SolveStats solve(Index first, Index rows, bool global) {
  Decay f(Tensor<double>(Shape{2, 1}, {0.1, 40.0}));
  f.row0_ = first;
  Tensor<double> h0(Shape{rows, 3}, 1.0);
  ode::SolverOptions o;
  o.method = ode::Method::kDopri5;
  o.rtol = o.atol = 1e-8;
  if (global) use_global_steps(o);
  Tape<double> tape;
  ode::SolveStats st;
  const double times[2] = {0.0, 1.0};
  ode::odeint<double>(f, tape.constant(h0.view()), times, o, &st);
  return st;
}

// Global step control: a rank solving its shard takes exactly the steps of
// one process solving the whole batch (without it, the rank with the easy
// row takes far fewer).
TEST(GlobalSteps, EveryRankTakesTheWholeBatchsSteps) {
  const ode::SolveStats whole = solve(0, 2, false);
  const ode::SolveStats easy = solve(0, 1, false);
  EXPECT_LT(easy.accepted, whole.accepted);  // the test problem does differ by shard
  if (world().size() != 2) {
    // One process: the hook changes nothing.
    const ode::SolveStats global = solve(0, 2, true);
    EXPECT_EQ(global.accepted, whole.accepted);
    EXPECT_EQ(global.rejected, whole.rejected);
    return;
  }
  const ode::SolveStats mine = solve(world().rank(), 1, true);
  EXPECT_EQ(mine.accepted, whole.accepted);
  EXPECT_EQ(mine.rejected, whole.rejected);
  EXPECT_EQ(mine.nfe_forward, whole.nfe_forward);
}

}  // namespace
}  // namespace anode::experiments
