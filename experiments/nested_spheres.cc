// Report Section 4.2 (Figures 7-10): nested spheres. Points of the ball of
// radius 1 are labelled +1, points of the annulus 2..3 are labelled -1; a
// NODE has to move the inner ball past the annulus to separate them, which a
// flow in the plane cannot do, while ANODE lifts it out through the extra
// dimensions. Regression on +-1 with MSE, Adam, NODE vs ANODE p = 2, 5, 10,
// each from several initializations (the curves and maps show the first).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "autodiff/optim.h"
#include "datasets/batcher.h"
#include "datasets/synthetic.h"
#include "experiments/common.h"
#include "experiments/configs.h"
#include "experiments/train.h"
#include "models/model.h"

namespace anode::experiments {
namespace {

struct Flags {
  CommonFlags common;
  std::string scale = "report";
  std::vector<int> augment = {0, 2, 5, 10};
  int points = 4000;
  int test_points = 1000;
  int epochs = 20;
  int batch = 128;
  double lr = 0.05;
  int hidden = 64;
  int grid = 81;
  int dim = 2;
  int seeds = 5;
};

// Initialization `run` (0, 1, ...) of the model with p augmented dimensions.
models::ModelConfig sphere_model(const Flags& flags, int p, int run = 0) {
  models::ModelConfig c =
      spheres_config(flags.dim, p, flags.hidden,
                     (flags.common.seed + static_cast<std::uint64_t>(run)) * 100 + static_cast<std::uint64_t>(p));
  apply_solver_flags(flags.common, c.block.solver);
  return c;
}

// Prediction and final state for every row of x, in batches, without recording.
void predict(models::AnodeModel<float>& m, const Tensor<float>& x, Tensor<float>* out, Tensor<float>* state) {
  const Index n = x.shape()[0], d = x.shape()[1], bs = 500;
  *out = Tensor<float>(Shape{n, 1});
  if (state) *state = Tensor<float>(Shape{n, m.config().block_dim()});
  Tape<float> tape;
  Tape<float>::NoGradGuard no_grad(tape);
  for (Index b = 0; b < n; b += bs) {
    const Index rows = std::min(bs, n - b);
    tape.clear();
    Var<float> y = m(tape.constant(TensorView<const float>{x.data() + b * d, Shape{rows, d}}), false);
    std::copy(y.data(), y.data() + rows, out->data() + b);
    if (state) {
      Var<float> h = m.last_state();
      std::copy(h.data(), h.data() + h.size(), state->data() + b * h.shape()[1]);
    }
  }
}

double accuracy(const Tensor<float>& pred, const std::vector<int>& labels) {
  Index ok = 0;
  for (Index i = 0; i < pred.size(); ++i) ok += (pred[i] > 0) == (labels[i] == 1);
  return static_cast<double>(ok) / static_cast<double>(pred.size());
}

struct Run {
  std::string label;
  double test_acc, train_acc, seconds, nfe_forward, nfe_backward;
  Index iterations, parameters;
};

// The test points' learned features h(T) (all coordinates), and the
// prediction over a grid of the plane (2-D data only).
void write_maps(const Flags& flags, models::AnodeModel<float>& model, const datasets::LabelledSet<float>& test,
                const Tensor<float>& state, const std::string& tag, ResultDir& out) {
  std::vector<std::string> cols = {"label"};
  for (Index j = 0; j < state.shape()[1]; ++j) cols.push_back("h" + std::to_string(j + 1));
  Csv features(cols);
  for (Index i = 0; i < state.shape()[0]; ++i) {
    std::vector<double> row = {static_cast<double>(test.labels[i])};
    for (Index j = 0; j < state.shape()[1]; ++j) row.push_back(state(i, j));
    features.row(row);
  }
  features.save(out.file("features_" + tag + ".csv"));
  if (flags.dim != 2) return;
  const Index g = flags.grid;
  Tensor<float> grid(Shape{g * g, 2});
  for (Index i = 0; i < g; ++i) {
    for (Index j = 0; j < g; ++j) {
      grid(i * g + j, 0) = -3.5f + 7.0f * static_cast<float>(j) / static_cast<float>(g - 1);
      grid(i * g + j, 1) = -3.5f + 7.0f * static_cast<float>(i) / static_cast<float>(g - 1);
    }
  }
  Tensor<float> gp;
  predict(model, grid, &gp, nullptr);
  Csv contour({"x1", "x2", "prediction"});
  for (Index k = 0; k < g * g; ++k) contour.row({grid(k, 0), grid(k, 1), gp[k]});
  contour.save(out.file("contour_" + tag + ".csv"));
}

// The model file of initialization `run` of the model with p augmented dimensions.
std::string model_file(int p, int run) { return "model_p" + std::to_string(p) + "_run" + std::to_string(run + 1) + ".anode"; }

// Trains initialization `run` of the model with p augmented dimensions and
// measures it, and saves its parameter file in `out`; with `figures`, also
// writes its loss curve, features and map.
Run train_and_evaluate(const Flags& flags, int p, int run, const datasets::LabelledSet<float>& train,
                       const datasets::LabelledSet<float>& test, const Progress& progress, ResultDir& out,
                       bool figures) {
  models::ModelConfig cfg = sphere_model(flags, p, run);
  models::AnodeModel<float> model(cfg);
  Adam<float> adam(model.parameters(), {.lr = flags.lr});
  datasets::Batcher<float> batches(train.features, train.targets,
                                   {.batch_size = flags.batch, .shuffle = true, .seed = cfg.seed});
  Csv loss_csv({"iteration", "epoch", "loss", "nfe_forward", "nfe_backward"});
  Run r;
  r.label = p == 0 ? "NODE" : "ANODE p=" + std::to_string(p);
  const std::string who = r.label + (flags.seeds > 1 ? " run " + std::to_string(run + 1) : "");
  FitOptions fo;
  fo.epochs = flags.epochs;
  fo.data_parallel = true;  // under mpirun: every batch split over the ranks
  fo.check_sync = flags.common.check_sync;
  fo.after_step = [&](const StepInfo& s) {
    loss_csv.row({static_cast<double>(s.step), static_cast<double>(s.epoch + 1), s.loss,
                  static_cast<double>(s.stats.nfe_forward), static_cast<double>(s.stats.nfe_backward)});
    return std::string();
  };
  const FitResult fr = fit(model, adam, batches, Objective::kMse, fo, progress, who);
  const ode::SolveStats& total = fr.total;
  const Index it = fr.steps;
  r.seconds = fr.seconds;
  r.iterations = it;
  r.parameters = model.num_scalars();
  r.nfe_forward = static_cast<double>(total.nfe_forward) / static_cast<double>(std::max<Index>(it, 1));
  r.nfe_backward = static_cast<double>(total.nfe_backward) / static_cast<double>(std::max<Index>(it, 1));

  Tensor<float> pred, state, train_pred;
  predict(model, test.features, &pred, &state);
  r.test_acc = accuracy(pred, test.labels);
  predict(model, train.features, &train_pred, nullptr);
  r.train_acc = accuracy(train_pred, train.labels);
  if (figures) {
    const std::string tag = "p" + std::to_string(p);
    loss_csv.save(out.file("loss_" + tag + ".csv"));
    write_maps(flags, model, test, state, tag, out);
  }
  save_trained(out.file(model_file(p, run)), model);
  char buf[200];
  std::snprintf(buf, sizeof(buf), "%-18s test accuracy %.3f (train %.3f), %.1fs", who.c_str(), r.test_acc,
                r.train_acc, r.seconds);
  progress.line(buf);
  return r;
}

void run_experiment(const Flags& flags, const char* argv0) {
  apply_threads(flags.common);
  for (int p : flags.augment) {
    if (p < 0) throw ValueError("--augment: p must be >= 0, got " + std::to_string(p));
  }
  Progress progress(flags.common.quiet);
  datasets::NestedSpheresOptions so;
  so.n = flags.points;
  so.dim = flags.dim;
  so.seed = flags.common.seed + 1;
  auto train = datasets::nested_spheres<float>(so);
  so.n = flags.test_points;
  so.seed = flags.common.seed + 2;
  auto test = datasets::nested_spheres<float>(so);

  // Every rank must train on the same points.
  std::uint64_t h = dist::kHashSeed;
  for (const auto* set : {&train, &test}) {
    h = dist::hash_bytes(set->features.data(), sizeof(float) * static_cast<std::size_t>(set->features.size()), h);
  }
  dist::World::get().check_same(h, "the nested-spheres data");
  ResultDir out(results_root(flags.common.out), "nested_spheres");
  Csv data({"x1", "x2", "label"});
  for (Index i = 0; i < train.size(); ++i) {
    data.row({train.features(i, 0), flags.dim > 1 ? train.features(i, 1) : 0.0, static_cast<double>(train.labels[i])});
  }
  data.save(out.file("data.csv"));

  Json results = Json::array();
  for (int p : flags.augment) {
    std::vector<Run> runs;
    for (int r = 0; r < flags.seeds; ++r) {
      runs.push_back(train_and_evaluate(flags, p, r, train, test, progress, out, r == 0));
    }
    auto all = [&](double Run::*field) {
      std::vector<double> v;
      for (const Run& x : runs) v.push_back(x.*field);
      return v;
    };
    const std::vector<double> acc = all(&Run::test_acc);
    char buf[200];
    std::snprintf(buf, sizeof(buf), "%-18s test accuracy %.3f +- %.3f over %d runs (min %.3f, max %.3f)",
                  runs[0].label.c_str(), mean(acc), stdev(acc), flags.seeds, *std::min_element(acc.begin(), acc.end()),
                  *std::max_element(acc.begin(), acc.end()));
    progress.line(buf);
    results.push_back({{"p", p}, {"label", runs[0].label}, {"runs", flags.seeds},
                       {"test_accuracy", mean(acc)}, {"test_accuracy_std", stdev(acc)}, {"test_accuracies", acc},
                       {"train_accuracy", mean(all(&Run::train_acc))},
                       {"iterations", runs[0].iterations}, {"seconds", mean(all(&Run::seconds))},
                       {"nfe_forward_per_step", mean(all(&Run::nfe_forward))},
                       {"nfe_backward_per_step", mean(all(&Run::nfe_backward))},
                       {"parameters", runs[0].parameters}});
  }
  Json summary;
  summary["experiment"] = "nested_spheres";
  summary["report_section"] = "4.2, Figures 7-10";
  summary["config"] = {{"scale", flags.scale}, {"points", flags.points}, {"test_points", flags.test_points},
                       {"dim", flags.dim}, {"radii", {1, 2, 3}}, {"epochs", flags.epochs},
                       {"batch", flags.batch}, {"lr", flags.lr}, {"hidden", {flags.hidden, flags.hidden}},
                       {"activation", "relu"}, {"solver", solver_json(sphere_model(flags, 0).block.solver)},
                       {"seed", flags.common.seed}, {"seeds", flags.seeds},
                       {"ranks", dist::World::get().size()}};
  summary["results"] = results;
  finish(out, summary, argv0, "nested_spheres", flags.common, progress);
}

}  // namespace
}  // namespace anode::experiments

int main(int argc, char** argv) {
  using namespace anode::experiments;
  Flags flags;
  CLI::App app("Report 4.2: NODE vs ANODE on nested spheres", "nested_spheres");
  add_common_flags(app, flags.common);
  add_check_sync_flag(app, flags.common);
  app.add_option("--scale", flags.scale, "report (the paper's setup) or tiny (a smoke test)")
      ->check(CLI::IsMember({"report", "tiny"}));
  app.add_option("--augment", flags.augment, "Augmented dimensions p to compare, comma-separated (0 = NODE)")
      ->delimiter(',')
      ->transform(integer_in(0, 1000));
  app.add_option("--points", flags.points, "Training points")->transform(integer_in(2, 10000000));
  app.add_option("--test-points", flags.test_points, "Test points")->transform(integer_in(2, 10000000));
  app.add_option("--epochs", flags.epochs, "Training epochs")->transform(integer_in(0, 1000000));
  app.add_option("--batch", flags.batch, "Batch size")->transform(integer_in(1, 10000000));
  app.add_option("--lr", flags.lr, "Adam learning rate")->transform(positive_finite(10));
  app.add_option("--hidden", flags.hidden, "Width of the two hidden layers")->transform(integer_in(1, 4096));
  app.add_option("--grid", flags.grid, "Contour grid resolution per axis")->transform(integer_in(2, 1000));
  app.add_option("--dim", flags.dim, "Dimension d of the space")->transform(integer_in(1, 1000));
  app.add_option("--seeds", flags.seeds, "Initializations per model (figures show the first)")
      ->transform(integer_in(1, 1000));
  return run_main(argc, argv, app, [&] {
    if (flags.scale == "tiny") {
      if (!app.count("--points")) flags.points = 256;
      if (!app.count("--test-points")) flags.test_points = 128;
      if (!app.count("--epochs")) flags.epochs = 2;
      if (!app.count("--augment")) flags.augment = {0, 3};
      if (!app.count("--grid")) flags.grid = 11;
      if (!app.count("--seeds")) flags.seeds = 1;
    }
    run_experiment(flags, argv[0]);
  });
}
