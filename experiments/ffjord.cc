// FFJORD (Grathwohl et al. 2019) on 2-D densities: a continuous normalizing
// flow whose dynamics is an MLP with time input; the log-density follows the
// instantaneous change of variables d log p(z(t))/dt = -tr(df/dz), estimated
// in training by Hutchinson's e^T (df/dz) e (one vector-Jacobian product of f
// inside the dynamics, recorded so that training differentiates through it)
// and computed exactly (d = 2: two VJPs) in evaluation. Trained with the
// adjoint method by default. Writes the learned density on a grid, samples
// (the flow run backwards from the base Gaussian) beside the data, the
// training curve, and the test negative log-likelihood by both traces.
#include <cmath>
#include <cstdio>
#include <numbers>

#include "autodiff/optim.h"
#include "datasets/density2d.h"
#include "experiments/common.h"
#include "models/augmented_dynamics.h"
#include "models/dynamics.h"
#include "models/serialize.h"

namespace anode::experiments {
namespace {

struct Flags {
  CommonFlags common;
  std::string scale = "report";
  std::vector<std::string> densities = {"two_moons", "eight_gaussians", "checkerboard"};
  int iters = 1200;
  int batch = 256;
  int hidden = 64;
  int layers = 3;
  double lr = 3e-3;
  std::string noise = "rademacher";
  double t_end = 1.0;
  int test_size = 2000;
  int grid = 80;
  int samples = 2000;
  int log_every = 50;
};

// log N(z; 0, I) per row of z [n, 2].
Var<float> base_log_density(Var<float> z) {
  const float c = -std::log(2.0f * std::numbers::pi_v<float>);
  return add_scalar(scale(sum(square(z), 1), -0.5f), c);
}

struct Flow {
  datasets::Rng rng;
  models::MlpDynamics<float> f;
  models::CnfDynamics<float> cnf;
  Flow(const Flags& flags, std::uint64_t seed)
      : rng(seed),
        f(2, 2, std::vector<Index>(static_cast<std::size_t>(flags.layers), flags.hidden),
          models::Activation::kTanh, models::Activation::kIdentity, true, rng),
        cnf(f, 2) {}
};

// log p(x) per row [n], by the exact trace or Hutchinson's with noise e.
Var<float> log_px(Flow& flow, Tape<float>& tape, const Tensor<float>& x, const Tensor<float>* e,
                  const ode::SolverOptions& solver, double t_end, ode::SolveStats* stats) {
  if (e) {
    flow.cnf.use_hutchinson(e);
  } else {
    flow.cnf.use_exact_trace();
  }
  const Var<float> h0 = pad_last(tape.constant(x.view()), 1);  // [z, l = 0]
  const Var<float> h1 = ode::odeint(flow.cnf, h0, {0.0f, static_cast<float>(t_end)}, solver, stats);
  return add(base_log_density(slice_last(h1, 0, 2)), reshape(slice_last(h1, 2, 1), Shape{x.shape()[0]}));
}

// Mean negative log-likelihood of x, in chunks, without recording.
double nll(Flow& flow, const Tensor<float>& x, bool exact, models::Noise noise, datasets::Rng& rng,
           const ode::SolverOptions& solver, double t_end, std::vector<float>* per_point = nullptr) {
  Tape<float> tape;
  Tape<float>::NoGradGuard no_grad(tape);
  const Index n = x.shape()[0], chunk = 500;
  double total = 0;
  for (Index a = 0; a < n; a += chunk) {
    tape.clear();
    const Index m = std::min(chunk, n - a);
    Tensor<float> xs(Shape{m, 2});
    for (Index i = 0; i < m; ++i) {
      xs(i, 0) = x(a + i, 0);
      xs(i, 1) = x(a + i, 1);
    }
    Tensor<float> e(Shape{m, 2});
    if (!exact) models::sample_noise(noise, e, rng);
    const Var<float> lp = log_px(flow, tape, xs, exact ? nullptr : &e, solver, t_end, nullptr);
    for (Index i = 0; i < m; ++i) {
      total -= lp.data()[i];
      if (per_point) per_point->push_back(lp.data()[i]);
    }
  }
  return total / static_cast<double>(n);
}

Json run_density(const Flags& flags, datasets::Density2d density, const ode::SolverOptions& solver,
                 ResultDir& out, const Progress& progress) {
  const std::string name = datasets::density2d_name(density);
  const models::Noise noise = models::parse_noise(flags.noise);
  const std::uint64_t seed = flags.common.seed;
  Flow flow(flags, seed * 7919 + static_cast<std::uint64_t>(density));
  Adam<float> adam(flow.f.parameters(), {.lr = flags.lr});
  datasets::Rng noise_rng(seed + 17);
  Tape<float> tape;
  Tensor<float> e(Shape{flags.batch, 2});
  Csv curve({"iteration", "loss", "nfe_forward", "nfe_backward", "seconds"});
  ode::SolveStats total;
  Stopwatch clock;
  double last_loss = 0;
  for (int it = 1; it <= flags.iters; ++it) {
    const Tensor<float> x = datasets::sample_density2d<float>(
        density, flags.batch, seed * 1000003 + static_cast<std::uint64_t>(it));
    models::sample_noise(noise, e, noise_rng);
    adam.zero_grad();
    tape.clear();
    ode::SolveStats stats;
    const Var<float> loss = neg(mean(log_px(flow, tape, x, &e, solver, flags.t_end, &stats)));
    tape.backward(loss);
    if (!std::isfinite(loss.item())) throw std::runtime_error(name + ": the loss became non-finite");
    adam.step();
    total += stats;
    last_loss = loss.item();
    curve.row({static_cast<double>(it), last_loss, static_cast<double>(stats.nfe_forward),
               static_cast<double>(stats.nfe_backward), clock.seconds()});
    if (it % flags.log_every == 0 || it == flags.iters) {
      char buf[200];
      std::snprintf(buf, sizeof buf, "%s iter %d/%d: NLL %.4f, NFE %lld fwd / %lld bwd", name.c_str(), it,
                    flags.iters, last_loss, static_cast<long long>(stats.nfe_forward),
                    static_cast<long long>(stats.nfe_backward));
      progress.line(buf);
    }
  }
  const double train_seconds = clock.seconds();
  curve.save(out.file("loss_" + name + ".csv"));
  const Json description = {{"experiment", "ffjord"}, {"density", name}, {"dynamics", "MLP [z, t] -> 2, tanh"},
                            {"hidden", flags.hidden}, {"layers", flags.layers}};
  models::save_parameters(out.file("model_" + name + ".anode").string(), flow.f.parameters(), description.dump());

  // Test NLL: Hutchinson (the training estimator, one draw) and exact trace.
  const Tensor<float> test = datasets::sample_density2d<float>(density, flags.test_size, seed + 999331);
  datasets::Rng eval_rng(seed + 5);
  const double nll_hutch = nll(flow, test, false, noise, eval_rng, solver, flags.t_end);
  const double nll_exact = nll(flow, test, true, noise, eval_rng, solver, flags.t_end);
  Json truth = nullptr;
  if (density != datasets::Density2d::kTwoMoons) {
    const Tensor<float> lp = datasets::log_density2d(density, test);
    double s = 0;
    for (float v : lp) s -= v;
    truth = s / static_cast<double>(flags.test_size);
  }

  // The learned density on a grid over [-4.5, 4.5]^2 (exact trace).
  const Index g = flags.grid;
  Tensor<float> grid(Shape{g * g, 2});
  for (Index i = 0; i < g; ++i) {
    for (Index j = 0; j < g; ++j) {
      grid(i * g + j, 0) = -4.5f + 9.0f * (static_cast<float>(j) + 0.5f) / static_cast<float>(g);
      grid(i * g + j, 1) = -4.5f + 9.0f * (static_cast<float>(i) + 0.5f) / static_cast<float>(g);
    }
  }
  std::vector<float> grid_lp;
  nll(flow, grid, true, noise, eval_rng, solver, flags.t_end, &grid_lp);
  Csv density_csv({"x1", "x2", "log_density"});
  for (Index k = 0; k < g * g; ++k) density_csv.row({grid(k, 0), grid(k, 1), grid_lp[k]});
  density_csv.save(out.file("density_" + name + ".csv"));

  // Samples: z ~ N(0, I) carried from T back to 0 by f alone.
  Tensor<float> z(Shape{flags.samples, 2});
  {
    datasets::Rng zr(seed + 77);
    for (float& v : z) v = static_cast<float>(zr.normal());
  }
  Csv samples({"x1", "x2"});
  {
    Tape<float> st;
    Tape<float>::NoGradGuard no_grad(st);
    const Var<float> x0 = ode::odeint(flow.f, st.constant(z.view()), {static_cast<float>(flags.t_end), 0.0f}, solver);
    for (Index i = 0; i < flags.samples; ++i) samples.row({x0.data()[2 * i], x0.data()[2 * i + 1]});
  }
  samples.save(out.file("samples_" + name + ".csv"));
  Csv data({"x1", "x2"});
  const Tensor<float> shown = datasets::sample_density2d<float>(density, flags.samples, seed + 4242);
  for (Index i = 0; i < flags.samples; ++i) data.row({shown(i, 0), shown(i, 1)});
  data.save(out.file("data_" + name + ".csv"));

  char buf[300];
  std::snprintf(buf, sizeof buf, "%s: test NLL %.4f (Hutchinson) / %.4f (exact trace)%s", name.c_str(),
                nll_hutch, nll_exact, truth.is_null() ? "" : (", true density " + std::to_string(truth.get<double>())).c_str());
  progress.line(buf);
  return {{"density", name},
          {"final_train_loss", last_loss},
          {"test_nll_hutchinson", nll_hutch},
          {"test_nll_exact", nll_exact},
          {"test_nll_true_density", truth},
          {"mean_nfe_forward_per_iter", static_cast<double>(total.nfe_forward) / flags.iters},
          {"mean_nfe_backward_per_iter", static_cast<double>(total.nfe_backward) / flags.iters},
          {"train_seconds", train_seconds}};
}

void run_experiment(const Flags& flags, const char* argv0) {
  apply_threads(flags.common);
  Progress progress(flags.common.quiet);
  ode::SolverOptions solver;
  solver.method = ode::Method::kDopri5;
  solver.rtol = 1e-5;
  solver.atol = 1e-5;
  solver.gradient = ode::Gradient::kAdjoint;
  apply_solver_flags(flags.common, solver);
  ResultDir out(results_root(flags.common.out), "ffjord");
  Json summary;
  summary["experiment"] = "ffjord";
  summary["config"] = {{"scale", flags.scale},     {"iters", flags.iters},   {"batch", flags.batch},
                       {"hidden", flags.hidden},   {"layers", flags.layers}, {"lr", flags.lr},
                       {"noise", flags.noise},     {"t_end", flags.t_end},   {"test_size", flags.test_size},
                       {"seed", flags.common.seed}, {"solver", solver_json(solver)}};
  Json results = Json::array();
  for (const std::string& d : flags.densities) {
    results.push_back(run_density(flags, datasets::parse_density2d(d), solver, out, progress));
  }
  summary["results"] = results;
  finish(out, summary, argv0, "ffjord", flags.common, progress);
}

}  // namespace
}  // namespace anode::experiments

int main(int argc, char** argv) {
  using namespace anode::experiments;
  Flags flags;
  CLI::App app("FFJORD: a continuous normalizing flow on 2-D densities", "ffjord");
  add_common_flags(app, flags.common);
  app.add_option("--scale", flags.scale, "report (defaults below) or tiny (a smoke test)")
      ->check(CLI::IsMember({"report", "tiny"}));
  app.add_option("--densities", flags.densities, "two_moons, eight_gaussians, checkerboard (comma-separated)")
      ->delimiter(',')
      ->check(CLI::IsMember({"two_moons", "eight_gaussians", "checkerboard"}));
  app.add_option("--iters", flags.iters, "Training iterations per density")->transform(integer_in(1, 10000000));
  app.add_option("--batch", flags.batch, "Samples per iteration")->transform(integer_in(1, 1000000));
  app.add_option("--hidden", flags.hidden, "Hidden width of the dynamics MLP")->transform(integer_in(1, 4096));
  app.add_option("--layers", flags.layers, "Hidden layers of the dynamics MLP")->transform(integer_in(1, 64));
  app.add_option("--lr", flags.lr, "Adam learning rate")->transform(positive_finite(10));
  app.add_option("--noise", flags.noise, "Hutchinson noise: gaussian or rademacher")
      ->check(CLI::IsMember({"gaussian", "rademacher"}));
  app.add_option("--t-end", flags.t_end, "Integration time of the flow")->transform(positive_finite(1e3));
  app.add_option("--test-size", flags.test_size, "Test points for the NLL")->transform(integer_in(1, 10000000));
  app.add_option("--grid", flags.grid, "Density grid points per axis")->transform(integer_in(2, 2000));
  app.add_option("--samples", flags.samples, "Samples drawn from the flow (and the data) for the figure")
      ->transform(integer_in(1, 10000000));
  app.add_option("--log-every", flags.log_every, "Progress line every this many iterations")
      ->transform(integer_in(1, 10000000));
  return run_main(argc, argv, app, [&] {
    check_lists(app);
    if (flags.scale == "tiny") {
      if (!app.count("--iters")) flags.iters = 3;
      if (!app.count("--batch")) flags.batch = 16;
      if (!app.count("--hidden")) flags.hidden = 8;
      if (!app.count("--layers")) flags.layers = 1;
      if (!app.count("--test-size")) flags.test_size = 20;
      if (!app.count("--grid")) flags.grid = 6;
      if (!app.count("--samples")) flags.samples = 20;
      if (!app.count("--log-every")) flags.log_every = 1;
    }
    run_experiment(flags, argv[0]);
  });
}
