#ifndef ANODE_EXPERIMENTS_COMMON_H_
#define ANODE_EXPERIMENTS_COMMON_H_

// What every experiment binary shares: where results go (written as a whole
// or not at all), CSV and JSON output, progress lines, figures, flags.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "models/model.h"
#include "ode/solver.h"

namespace anode::experiments {

using Json = nlohmann::ordered_json;

/// The results folder: --out if given; else results/ in the workspace under
/// `bazel run` ($BUILD_WORKSPACE_DIRECTORY); else ./results.
std::filesystem::path results_root(const std::string& out_flag);

/// A results folder that appears complete or not at all: files are written
/// into <root>/.<name>.partial-<pid> (locked while the run lives); commit()
/// exchanges it with <root>/<name> in one rename (renameat2 RENAME_EXCHANGE;
/// two renames only where the file system lacks it), so there is no instant
/// without results under the final name. Destroyed without commit() (an
/// error), it deletes itself; folders of runs that were killed are removed by
/// the next ResultDir of the same name.
///
/// Under mpirun only rank 0 writes results: on the other ranks the folder is
/// a private scratch folder (under $TMPDIR) that commit() deletes; files the
/// other ranks made that rank 0 needs travel with gather_files().
class ResultDir {
 public:
  ResultDir(const std::filesystem::path& root, const std::string& name);
  ~ResultDir();
  ResultDir(const ResultDir&) = delete;
  ResultDir& operator=(const ResultDir&) = delete;

  /// A path inside the folder being written.
  std::filesystem::path file(const std::string& name) const { return work_ / name; }
  const std::filesystem::path& work() const { return work_; }
  /// The final location.
  const std::filesystem::path& final_path() const { return final_; }
  void commit();

 private:
  std::filesystem::path work_, final_;
  int lock_fd_ = -1;
  bool committed_ = false;
  bool scratch_ = false;
};

/// Under mpirun: every file the other ranks wrote into their ResultDir is
/// sent to rank 0 and written into its folder (same names); one collective
/// call on every rank. Nothing happens in a single process.
void gather_files(ResultDir& out);

/// The regular files of `dir` (not its subfolders) as one string, and back
/// into `dir` (each file written atomically): how results travel between
/// ranks.
std::string pack_folder(const std::filesystem::path& dir);
void unpack_folder(const std::string& pack, const std::filesystem::path& dir);

/// Writes `text` to `path` atomically (temp file + rename).
void write_file(const std::filesystem::path& path, const std::string& text);

/// A CSV table built in memory, written in one go.
class Csv {
 public:
  explicit Csv(std::vector<std::string> columns);
  /// One row; values are formatted with enough digits to round-trip floats.
  Csv& row(const std::vector<double>& values);
  /// One row with a leading text column (the other values numbers).
  Csv& row(const std::string& label, const std::vector<double>& values);
  void save(const std::filesystem::path& path) const;
  std::size_t rows() const { return rows_; }

 private:
  std::size_t columns_;
  std::size_t rows_ = 0;
  std::string text_;
};

/// Mean of x (NaN when empty) and its sample standard deviation (0 for
/// fewer than two values): the spread over seeds that the tables report.
double mean(const std::vector<double>& x);
double stdev(const std::vector<double>& x);

/// Progress lines to stdout (one per update), silenced by --quiet; every line
/// starts with the elapsed time. Under mpirun only rank 0 prints.
class Progress {
 public:
  explicit Progress(bool quiet);
  void line(const std::string& text) const;
  double elapsed() const;
  bool quiet() const { return quiet_; }

 private:
  bool quiet_;
  std::chrono::steady_clock::time_point start_;
};

/// Seconds since construction.
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

/// Renders the figures of `experiment` from the CSV files in `dir` with the
/// matplotlib script (//experiments/plots:plot, found through the runfiles of
/// argv0). Throws std::runtime_error with the script's message on failure.
void render_figures(const char* argv0, const std::string& experiment,
                    const std::filesystem::path& dir, bool quiet);

struct CommonFlags;

/// Ends an experiment: writes summary.json, renders the figures (unless
/// --no-plots), moves the folder into place and says where it is.
void finish(ResultDir& out, const Json& summary, const char* argv0, const std::string& experiment,
            const CommonFlags& flags, const Progress& progress);

/// Strict flag values. Each returns "" when `text` is acceptable and then
/// rewrites it in canonical form (decimal integers; doubles to 17 digits), so
/// that CLI11's own conversion reads exactly the value checked; else a short
/// reason (CLI11 prefixes the flag's name). The whole text must parse; NaN and
/// infinities are refused; integers must be in range (no wrap-around: "-1" is
/// no unsigned number); bounds print in %g form.
std::string check_finite(std::string& text, double lo, double hi, bool lo_open);
std::string check_integer(std::string& text, std::int64_t lo, std::int64_t hi);
std::string check_uint64(std::string& text);

/// CLI11 validators built on them (apply with ->transform()).
CLI::Validator finite_in(double lo, double hi, bool lo_open = false);
CLI::Validator positive_finite(double hi = 1e300);
CLI::Validator integer_in(std::int64_t lo, std::int64_t hi);
CLI::Validator any_uint64();

/// After parsing: every list option (one with a delimiter) that was given
/// must hold at least one value and no value twice. Throws
/// CLI::ValidationError naming the flag.
void check_lists(const CLI::App& app);

/// Flags every experiment has.
struct CommonFlags {
  std::string out;
  bool quiet = false;
  bool no_plots = false;
  int threads = 1;
  std::uint64_t seed = 0;
  std::string solver = "";
  double rtol = 0, atol = 0;
  std::string gradient = "";
  bool check_sync = false;  // --check-sync: only where training is data parallel
};
void add_common_flags(CLI::App& app, CommonFlags& flags);
/// --check-sync, for the experiments that train data parallel under mpirun.
void add_check_sync_flag(CLI::App& app, CommonFlags& flags);

/// The solver flags given (--solver, --rtol, --atol, --gradient) as arguments
/// for another experiment binary: `report` passes them on to each experiment.
/// Numbers are written with 17 digits, so the child reads the same value.
std::vector<std::string> solver_flag_args(const CommonFlags& flags);

/// Applies the thread count (ValueError for < 1).
void apply_threads(const CommonFlags& flags);

/// Overrides a solver configuration with --solver/--rtol/--atol/--gradient
/// where given (ValueError naming the flag for an unknown name or a bad value).
void apply_solver_flags(const CommonFlags& flags, ode::SolverOptions& solver);

/// JSON of a solve's counters and a model configuration.
Json stats_json(const ode::SolveStats& s);
Json solver_json(const ode::SolverOptions& s);

/// Runs main_body, turning exceptions into a message on stderr and exit code
/// 1 (2 for bad flags), so a failure never leaves a stack trace or a partial
/// results folder. Under mpirun it first checks that every rank was given
/// the same flags (--threads may differ); an error on any rank prints that
/// rank's message and ends every rank (MPI_Abort) with a non-zero exit, and
/// no results folder is committed.
int run_main(int argc, char** argv, CLI::App& app, const std::function<void()>& main_body);

}  // namespace anode::experiments

#endif  // ANODE_EXPERIMENTS_COMMON_H_
