#include "experiments/common.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <memory>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "autodiff/thread_pool.h"
#include "dist/world.h"
#include "tools/cpp/runfiles/runfiles.h"

namespace anode::experiments {

namespace fs = std::filesystem;

fs::path results_root(const std::string& out_flag) {
  if (!out_flag.empty()) return fs::path(out_flag);
  if (const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY"); ws && *ws) return fs::path(ws) / "results";
  return fs::current_path() / "results";
}

namespace {

constexpr const char* kLockFile = ".lock";

// Whether the folder of a run is abandoned: its owner holds an flock on its
// lock file for as long as it runs (the lock dies with the process, however
// it ends). A folder without a lock file falls back to whether `pid` lives.
bool abandoned(const fs::path& dir, pid_t pid) {
  const int fd = ::open((dir / kLockFile).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ::kill(pid, 0) != 0 && errno == ESRCH;
  const bool free = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
  ::close(fd);
  return free;
}

// The pid in "<prefix><pid>", or -1.
pid_t pid_suffix(const std::string& file, const std::string& prefix) {
  if (file.size() <= prefix.size() || file.compare(0, prefix.size(), prefix) != 0) return -1;
  const std::string digits = file.substr(prefix.size());
  if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return static_cast<pid_t>(std::stol(digits));
}

}  // namespace

ResultDir::ResultDir(const fs::path& root, const std::string& name) {
  std::error_code ec;
  if (!dist::World::get().root()) {
    // Another rank of an MPI run: a private scratch folder, never committed.
    scratch_ = true;
    final_ = root / name;
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/anode-rank" +
                          std::to_string(dist::World::get().rank()) + "-" + name + ".XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("cannot create a scratch folder '" + pattern + "': " + std::strerror(errno));
    }
    work_ = pattern;
    return;
  }
  fs::create_directories(root, ec);
  if (ec) throw std::runtime_error("cannot create results folder '" + root.string() + "': " + ec.message());
  final_ = root / name;
  const std::string partial = "." + name + ".partial-", old = "." + name + ".old-";
  work_ = root / (partial + std::to_string(::getpid()));
  // Folders left by runs that were killed (or by the fallback below) go now.
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    const std::string file = e.path().filename().string();
    pid_t pid = pid_suffix(file, partial);
    if (pid < 0) pid = pid_suffix(file, old);
    if (pid > 0 && e.path() != work_ && abandoned(e.path(), pid)) fs::remove_all(e.path(), ec);
  }
  fs::remove_all(work_, ec);
  fs::create_directories(work_, ec);
  if (ec) throw std::runtime_error("cannot create '" + work_.string() + "': " + ec.message());
  lock_fd_ = ::open((work_ / kLockFile).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    throw std::runtime_error("cannot lock '" + work_.string() + "': " + std::strerror(errno));
  }
}

ResultDir::~ResultDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(work_, ec);
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void ResultDir::commit() {
  if (scratch_) {
    std::error_code ec;
    fs::remove_all(work_, ec);
    committed_ = true;
    return;
  }
  // The lock file is the only thing in the folder that is not a result.
  std::error_code ec;
  fs::remove(work_ / kLockFile, ec);
  // One atomic exchange: at every instant either the old or the new results
  // are under the final name. The old ones are then under the partial name,
  // hidden, and removed.
  if (::renameat2(AT_FDCWD, work_.c_str(), AT_FDCWD, final_.c_str(), RENAME_EXCHANGE) == 0) {
    committed_ = true;
    fs::remove_all(work_, ec);
    return;
  }
  const int err = errno;
  if (err == ENOENT && ::rename(work_.c_str(), final_.c_str()) == 0) {  // no old results
    committed_ = true;
    return;
  }
  if (err != EINVAL && err != ENOSYS && err != ENOENT) {
    throw std::runtime_error("cannot move results to '" + final_.string() + "': " + std::strerror(err));
  }
  // A file system without RENAME_EXCHANGE: two renames, the old results
  // moved to a hidden name that the next run removes if this one dies here.
  const fs::path old = final_.parent_path() / ("." + final_.filename().string() + ".old-" + std::to_string(::getpid()));
  fs::remove_all(old, ec);
  if (::rename(final_.c_str(), old.c_str()) != 0 && errno != ENOENT) {
    throw std::runtime_error("cannot replace '" + final_.string() + "': " + std::strerror(errno));
  }
  if (::rename(work_.c_str(), final_.c_str()) != 0) {
    throw std::runtime_error("cannot move results to '" + final_.string() + "': " + std::strerror(errno));
  }
  committed_ = true;
  fs::remove_all(old, ec);
}

void write_file(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write '" + tmp.string() + "'");
    out << text;
    out.flush();
    if (!out) throw std::runtime_error("write failed for '" + tmp.string() + "'");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw std::runtime_error("cannot rename to '" + path.string() + "': " + ec.message());
}

Csv::Csv(std::vector<std::string> columns) : columns_(columns.size()) {
  for (std::size_t i = 0; i < columns.size(); ++i) text_ += (i ? "," : "") + columns[i];
  text_ += "\n";
}

namespace {
std::string number(double v) {
  std::ostringstream s;
  s << std::setprecision(9) << v;
  return s.str();
}
}  // namespace

Csv& Csv::row(const std::vector<double>& values) {
  if (values.size() != columns_) throw std::logic_error("Csv::row: wrong number of values");
  for (std::size_t i = 0; i < values.size(); ++i) text_ += (i ? "," : "") + number(values[i]);
  text_ += "\n";
  ++rows_;
  return *this;
}

Csv& Csv::row(const std::string& label, const std::vector<double>& values) {
  if (values.size() + 1 != columns_) throw std::logic_error("Csv::row: wrong number of values");
  text_ += label;
  for (double v : values) text_ += "," + number(v);
  text_ += "\n";
  ++rows_;
  return *this;
}

void Csv::save(const fs::path& path) const { write_file(path, text_); }

Progress::Progress(bool quiet)
    : quiet_(quiet || !dist::World::get().root()), start_(std::chrono::steady_clock::now()) {}

void Progress::line(const std::string& text) const {
  if (quiet_) return;
  std::printf("[%7.1fs] %s\n", elapsed(), text.c_str());
  std::fflush(stdout);
}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void render_figures(const char* argv0, const std::string& experiment, const fs::path& dir, bool quiet) {
  using bazel::tools::cpp::runfiles::Runfiles;
  std::string error;
  std::unique_ptr<Runfiles> runfiles(Runfiles::Create(argv0, &error));
  if (!runfiles) throw std::runtime_error("cannot find the plotting script's runfiles: " + error);
  const std::string script = runfiles->Rlocation("anode/experiments/plots/plot");
  if (script.empty() || !fs::exists(script)) {
    throw std::runtime_error("plotting script //experiments/plots:plot not found in the runfiles");
  }
  // The py_binary's launcher needs its own runfiles environment.
  std::string env;
  for (const auto& [k, v] : runfiles->EnvVars()) env += k + "='" + v + "' ";
  const std::string cmd = env + "'" + script + "' " + experiment + " '" + dir.string() + "'" +
                          (quiet ? " --quiet" : "") + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run the plotting script");
  std::string output;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), pipe)) output += buf;
  const int status = ::pclose(pipe);
  if (status != 0) {
    throw std::runtime_error("plotting " + experiment + " failed (is python3-matplotlib installed? "
                             "./bazelw installs it):\n" + output);
  }
  if (!quiet && !output.empty()) std::cout << output << std::flush;
}

void finish(ResultDir& out, const Json& summary, const char* argv0, const std::string& experiment,
            const CommonFlags& flags, const Progress& progress) {
  const dist::World& world = dist::World::get();
  if (world.root()) {
    write_file(out.file("summary.json"), summary.dump(2) + "\n");
    if (!flags.no_plots) render_figures(argv0, experiment, out.work(), flags.quiet);
  }
  // Rank 0 commits only once every rank got here without an error.
  world.barrier();
  out.commit();
  progress.line("results in " + out.final_path().string());
}

namespace {

void put_field(std::string& out, const std::string& v) { out += std::to_string(v.size()) + ":" + v; }

std::string take_field(const std::string& in, std::size_t& at) {
  const std::size_t colon = in.find(':', at);
  if (colon == std::string::npos) throw std::runtime_error("a packed folder is truncated");
  const std::size_t n = std::stoull(in.substr(at, colon - at));
  if (n > in.size() - colon - 1) throw std::runtime_error("a packed folder is truncated");
  std::string v = in.substr(colon + 1, n);
  at = colon + 1 + n;
  return v;
}

}  // namespace

std::string pack_folder(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().filename() != kLockFile) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::string pack;
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    if (!in && !in.eof()) throw std::runtime_error("cannot read '" + f.string() + "'");
    put_field(pack, f.filename().string());
    put_field(pack, bytes.str());
  }
  return pack;
}

void unpack_folder(const std::string& pack, const fs::path& dir) {
  std::size_t at = 0;
  while (at < pack.size()) {
    const std::string name = take_field(pack, at);
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
      throw std::runtime_error("a packed folder holds a bad file name '" + name + "'");
    }
    write_file(dir / name, take_field(pack, at));
  }
}

void gather_files(ResultDir& out) {
  const dist::World& world = dist::World::get();
  if (world.size() == 1) return;
  const std::vector<std::string> packs = world.gather(world.root() ? std::string() : pack_folder(out.work()));
  for (std::size_t r = 1; r < packs.size(); ++r) unpack_folder(packs[r], out.work());
}

namespace {

std::string g_format(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string in_quotes(const std::string& text) { return "'" + text + "'"; }

}  // namespace

std::string check_finite(std::string& text, double lo, double hi, bool lo_open) {
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(begin, &end);
  if (text.empty() || end != begin + text.size() || std::isspace(static_cast<unsigned char>(text[0]))) {
    return in_quotes(text) + " is not a number";
  }
  if (!std::isfinite(v)) return in_quotes(text) + " is not a finite number";
  if ((lo_open ? !(v > lo) : !(v >= lo)) || !(v <= hi)) {
    return in_quotes(text) + " is outside " + (lo_open ? "(" : "[") + g_format(lo) + ", " + g_format(hi) + "]";
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  text = buf;
  return "";
}

namespace {

// Decimal digits only, optionally signed. kOverflow: the magnitude does not
// fit 64 bits.
enum class Decimal { kBad, kOk, kOverflow };
Decimal parse_decimal(const std::string& text, bool& negative, std::uint64_t& magnitude) {
  std::size_t i = 0;
  negative = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) negative = text[i++] == '-';
  if (i == text.size()) return Decimal::kBad;
  magnitude = 0;
  bool overflow = false;
  for (; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return Decimal::kBad;
    const auto digit = static_cast<std::uint64_t>(text[i] - '0');
    if (magnitude > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) overflow = true;
    magnitude = magnitude * 10 + digit;
  }
  return overflow ? Decimal::kOverflow : Decimal::kOk;
}

}  // namespace

std::string check_integer(std::string& text, std::int64_t lo, std::int64_t hi) {
  bool negative;
  std::uint64_t mag;
  const Decimal d = parse_decimal(text, negative, mag);
  if (d == Decimal::kBad) return in_quotes(text) + " is not an integer";
  const std::string range = in_quotes(text) + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (d == Decimal::kOverflow) return range;
  const auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (mag > max + (negative ? 1 : 0)) return range;
  const std::int64_t v = negative ? (mag == 0 ? 0 : -static_cast<std::int64_t>(mag - 1) - 1) : static_cast<std::int64_t>(mag);
  if (v < lo || v > hi) return range;
  text = std::to_string(v);
  return "";
}

std::string check_uint64(std::string& text) {
  bool negative;
  std::uint64_t mag;
  const Decimal d = parse_decimal(text, negative, mag);
  if (d == Decimal::kBad) return in_quotes(text) + " is not an integer";
  if (d == Decimal::kOverflow || (negative && mag != 0)) {
    return in_quotes(text) + " is outside [0, " + std::to_string(std::numeric_limits<std::uint64_t>::max()) + "]";
  }
  text = std::to_string(mag);
  return "";
}

CLI::Validator finite_in(double lo, double hi, bool lo_open) {
  return CLI::Validator([=](std::string& t) { return check_finite(t, lo, hi, lo_open); },
                        std::string("FLOAT in ") + (lo_open ? "(" : "[") + g_format(lo) + ", " + g_format(hi) + "]");
}

CLI::Validator positive_finite(double hi) { return finite_in(0, hi, true); }

CLI::Validator integer_in(std::int64_t lo, std::int64_t hi) {
  return CLI::Validator([=](std::string& t) { return check_integer(t, lo, hi); },
                        "INT in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

CLI::Validator any_uint64() {
  return CLI::Validator([](std::string& t) { return check_uint64(t); }, "UINT64");
}

void check_lists(const CLI::App& app) {
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_delimiter() == '\0' || opt->count() == 0) continue;
    const std::vector<std::string>& values = opt->results();
    if (values.empty() || (values.size() == 1 && values[0].empty())) {
      throw CLI::ValidationError(opt->get_name(), "the list is empty");
    }
    for (std::size_t i = 0; i < values.size(); ++i) {
      for (std::size_t j = 0; j < i; ++j) {
        if (values[i] == values[j]) {
          throw CLI::ValidationError(opt->get_name(), in_quotes(values[i]) + " is given twice");
        }
      }
    }
  }
}

void add_common_flags(CLI::App& app, CommonFlags& f) {
  app.add_option("--out", f.out, "Results folder (default: results/ in the workspace)");
  app.add_flag("--quiet", f.quiet, "No progress lines");
  app.add_flag("--no-plots", f.no_plots, "Skip the PNG figures (CSV and JSON only)");
  app.add_option("--threads", f.threads, "Threads for large GEMMs and kernels")->transform(integer_in(1, 256));
  app.add_option("--seed", f.seed, "Base random seed")->transform(any_uint64());
  app.add_option("--solver", f.solver, "ODE solver: euler, midpoint, rk4, bosh3, dopri5, tsit5")
      ->check(CLI::IsMember({"euler", "midpoint", "rk4", "bosh3", "dopri5", "tsit5"}));
  app.add_option("--rtol", f.rtol, "Relative tolerance of adaptive solvers")->transform(finite_in(0, 1, true));
  app.add_option("--atol", f.atol, "Absolute tolerance of adaptive solvers")->transform(finite_in(0, 1, true));
  // Every ode::Gradient, by parse_gradient: a method added there is a flag value here.
  app.add_option("--gradient", f.gradient,
                 "Gradient method: backprop, adjoint, checkpoint, interpolating, interpolating_checkpoint, "
                 "quadrature, binomial, symplectic")
      ->check(CLI::Validator(
          [](std::string& name) -> std::string {
            try {
              ode::parse_gradient(name);
              return "";
            } catch (const std::invalid_argument& e) {
              return e.what();
            }
          },
          "METHOD"));
  app.add_flag("--check-sync", f.check_sync,
               "Under mpirun: compare a checksum of the parameters across ranks after every step");
}

void apply_threads(const CommonFlags& f) { set_num_threads(f.threads); }

std::vector<std::string> solver_flag_args(const CommonFlags& f) {
  std::vector<std::string> args;
  auto number = [](double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return std::string(buf);
  };
  if (!f.solver.empty()) args.insert(args.end(), {"--solver", f.solver});
  if (f.rtol > 0) args.insert(args.end(), {"--rtol", number(f.rtol)});
  if (f.atol > 0) args.insert(args.end(), {"--atol", number(f.atol)});
  if (!f.gradient.empty()) args.insert(args.end(), {"--gradient", f.gradient});
  return args;
}

void apply_solver_flags(const CommonFlags& f, ode::SolverOptions& s) {
  if (!f.solver.empty()) {
    s.method = ode::parse_method(f.solver);
    if (!ode::tableau(s.method).adaptive() && s.steps == 0 && s.step_size == 0) s.steps = 10;
  }
  if (f.rtol > 0) s.rtol = f.rtol;
  if (f.atol > 0) s.atol = f.atol;
  if (!f.gradient.empty()) s.gradient = ode::parse_gradient(f.gradient);
}

Json stats_json(const ode::SolveStats& s) {
  return Json{{"nfe_forward", s.nfe_forward},   {"nfe_backward", s.nfe_backward},
              {"accepted", s.accepted},         {"rejected", s.rejected},
              {"accepted_backward", s.accepted_backward}, {"rejected_backward", s.rejected_backward}};
}

Json solver_json(const ode::SolverOptions& s) {
  return Json{{"method", ode::method_name(s.method)}, {"rtol", s.rtol}, {"atol", s.atol},
              {"steps", s.steps}, {"gradient", ode::gradient_name(s.gradient)}};
}

double mean(const std::vector<double>& x) {
  if (x.empty()) return std::numeric_limits<double>::quiet_NaN();
  return std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(x.size());
}

double stdev(const std::vector<double>& x) {
  if (x.size() < 2) return 0;
  const double m = mean(x);
  double s = 0;
  for (double v : x) s += (v - m) * (v - m);
  return std::sqrt(s / static_cast<double>(x.size() - 1));
}

int run_main(int argc, char** argv, CLI::App& app, const std::function<void()>& body) {
  const dist::World* world = nullptr;
  try {
    world = &dist::World::get();
  } catch (const std::exception& e) {
    std::cerr << app.get_name() << ": error: " << e.what() << "\n";
    return 1;
  }
  const std::string who = app.get_name() + (world->size() > 1 ? " (rank " + std::to_string(world->rank()) + ")" : "");
  try {
    app.parse(argc, argv);
    check_lists(app);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e) == 0 ? 0 : 2;
    if (code != 0 && world->size() > 1) world->abort(code);
    return code;
  }
  try {
    // Every rank must run the same experiment: the flags (but the thread
    // count, which may suit each node) hash alike.
    std::uint64_t h = dist::kHashSeed;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--threads") {
        ++i;
        continue;
      }
      if (a.rfind("--threads=", 0) == 0) continue;
      h = dist::hash_text(a + '\0', h);
    }
    world->check_same(h, "the flags");
    body();
  } catch (const std::exception& e) {
    std::cerr << who << ": error: " << e.what() << "\n";
    if (world->size() > 1) world->abort(1);
    return 1;
  }
  return 0;
}

}  // namespace anode::experiments
