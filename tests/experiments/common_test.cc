// The helpers every experiment binary shares: strict flag parsing (NaN and
// infinities refused, integers without wrap-around, lists non-empty and
// without duplicates, bounds named briefly), the solver flags that report
// passes on, and results folders that are replaced atomically and never
// left behind half-written.
#include "experiments/common.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <thread>

namespace anode::experiments {
namespace {

namespace fs = std::filesystem;

std::string finite(std::string text, double lo, double hi, bool lo_open = false) {
  return check_finite(text, lo, hi, lo_open);
}

TEST(FlagParsing, FiniteNumbersRefuseNanInfinityAndJunk) {
  for (const char* bad : {"nan", "NaN", "-nan", "inf", "-inf", "infinity", "1e400", "", " 1", "1x", "0x", "--1"}) {
    EXPECT_NE(finite(bad, 0, 1e300, true), "") << bad;
  }
  std::string ok = "1e-3";
  EXPECT_EQ(check_finite(ok, 0, 1, true), "");
  EXPECT_EQ(std::stod(ok), 1e-3);
  EXPECT_NE(finite("0", 0, 1, true), "");  // open lower bound
  EXPECT_EQ(finite("0", 0, 1, false), "");
  EXPECT_NE(finite("1.5", 0, 1), "");
}

TEST(FlagParsing, RangeMessagesAreShort) {
  // CLI11's PositiveNumber printed DBL_MAX in 310 digits.
  const std::string msg = finite("-1", 0, 1.7976931348623157e308, true);
  EXPECT_NE(msg.find("outside (0, 1.79769e+308]"), std::string::npos) << msg;
  EXPECT_LT(msg.size(), 60u) << msg;
}

TEST(FlagParsing, IntegersAreInRangeWithoutWrapAround) {
  auto integer = [](std::string t, std::int64_t lo, std::int64_t hi) { return check_integer(t, lo, hi); };
  EXPECT_NE(integer("2147483648", 1, 2147483647), "");
  EXPECT_NE(integer("-1", 0, 100), "");
  EXPECT_NE(integer("1.5", 0, 100), "");
  EXPECT_NE(integer("1e3", 0, 10000), "");
  EXPECT_NE(integer("99999999999999999999", 0, 100), "");
  EXPECT_NE(integer("-9223372036854775809", std::numeric_limits<std::int64_t>::min(), 0), "");
  EXPECT_EQ(integer("-9223372036854775808", std::numeric_limits<std::int64_t>::min(), 0), "");
  EXPECT_NE(integer("4097", 1, 4096).find("outside [1, 4096]"), std::string::npos);
  std::string octal_looking = "010";
  EXPECT_EQ(check_integer(octal_looking, 0, 100), "");
  EXPECT_EQ(octal_looking, "10");  // decimal, as CLI11 then reads it
}

TEST(FlagParsing, SeedsAreUnsignedWithoutWrapAround) {
  for (const char* bad : {"-1", "18446744073709551616", "99999999999999999999999", "1.0", "", "0x10"}) {
    std::string t = bad;
    EXPECT_NE(check_uint64(t), "") << bad;
  }
  std::string max = "18446744073709551615";
  EXPECT_EQ(check_uint64(max), "");
  std::string zero = "-0";
  EXPECT_EQ(check_uint64(zero), "");
  EXPECT_EQ(zero, "0");
}

// Parses argv with the common flags and one list flag, as run_main does.
struct Cli {
  CLI::App app{"test", "test"};
  CommonFlags common;
  std::vector<int> augment;
  int hidden = 1;
  Cli() {
    add_common_flags(app, common);
    app.add_option("--augment", augment, "")->delimiter(',')->transform(integer_in(0, 1000));
    app.add_option("--hidden", hidden, "")->transform(integer_in(1, 4096));
  }
  // The error message ("" if the arguments are accepted).
  std::string parse(std::vector<std::string> args) {
    std::vector<char*> argv = {const_cast<char*>("test")};
    for (std::string& a : args) argv.push_back(a.data());
    try {
      app.parse(static_cast<int>(argv.size()), argv.data());
      check_lists(app);
    } catch (const CLI::ParseError& e) {
      return e.what();
    }
    return "";
  }
};

TEST(FlagParsing, CommonFlagsRefuseNanTolerancesAndWrappedSeeds) {
  for (auto [flag, value] : {std::pair{"--rtol", "nan"}, {"--atol", "nan"}, {"--rtol", "inf"}, {"--atol", "-1"},
                             {"--seed", "-1"}, {"--seed", "18446744073709551616"}, {"--threads", "0"},
                             {"--threads", "4294967297"}}) {
    Cli cli;
    const std::string msg = cli.parse({flag, value});
    EXPECT_NE(msg.find(flag), std::string::npos) << flag << " " << value << ": '" << msg << "'";
  }
  Cli cli;
  EXPECT_EQ(cli.parse({"--rtol", "1e-4", "--seed", "18446744073709551615", "--atol", "0.5"}), "");
  EXPECT_EQ(cli.common.rtol, 1e-4);
  EXPECT_EQ(cli.common.atol, 0.5);
  EXPECT_EQ(cli.common.seed, 18446744073709551615u);
}

TEST(FlagParsing, ListsAreNonEmptyWithoutDuplicates) {
  {
    Cli cli;
    const std::string msg = cli.parse({"--augment", ""});
    EXPECT_NE(msg.find("--augment"), std::string::npos) << msg;
  }
  {
    Cli cli;
    const std::string msg = cli.parse({"--augment", "3,3"});
    EXPECT_NE(msg.find("--augment: '3' is given twice"), std::string::npos) << msg;
  }
  {
    Cli cli;  // the same number written twice differently
    EXPECT_NE(cli.parse({"--augment", "3,03"}).find("given twice"), std::string::npos);
  }
  {
    Cli cli;
    EXPECT_EQ(cli.parse({"--augment", "0,2,5"}), "");
    EXPECT_EQ(cli.augment, (std::vector<int>{0, 2, 5}));
  }
}

TEST(FlagParsing, SizesAreBoundedWithAMessageNamingTheFlag) {
  Cli cli;
  const std::string msg = cli.parse({"--hidden", "2147483647"});
  EXPECT_NE(msg.find("--hidden"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[1, 4096]"), std::string::npos) << msg;
  Cli cli2;
  EXPECT_NE(cli2.parse({"--augment", "100000"}).find("--augment"), std::string::npos);
}

TEST(SolverFlags, GivenSolverFlagsArePassedOnExactly) {
  CommonFlags f;
  EXPECT_TRUE(solver_flag_args(f).empty());
  f.solver = "rk4";
  f.rtol = 0.1;
  f.atol = 1e-7;
  f.gradient = "adjoint";
  const std::vector<std::string> args = solver_flag_args(f);
  ASSERT_EQ(args.size(), 8u);
  EXPECT_EQ(args[0], "--solver");
  EXPECT_EQ(args[1], "rk4");
  EXPECT_EQ(std::stod(args[3]), 0.1);  // round-trips exactly
  EXPECT_EQ(std::stod(args[5]), 1e-7);
  EXPECT_EQ(args[7], "adjoint");
  // And they parse back through the common flags.
  Cli cli;
  std::vector<std::string> argv(args.begin(), args.end());
  EXPECT_EQ(cli.parse(argv), "");
  EXPECT_EQ(cli.common.rtol, 0.1);
}

fs::path fresh(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  fs::path p = fs::path(base ? base : "/tmp") / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }
std::string read(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(ResultFolder, CommitReplacesTheOldResultsWithNoInstantWithoutThem) {
  const fs::path root = fresh("swap");
  {
    ResultDir first(root, "exp");
    write(first.file("summary.json"), "0");
    first.commit();
  }
  // A watcher sees the results folder at every instant while it is
  // replaced, again and again (two renames left a gap between them).
  std::atomic<bool> stop{false};
  std::atomic<int> missing{0};
  std::thread watcher([&] {
    while (!stop) {
      if (!fs::exists(root / "exp" / "summary.json")) ++missing;
    }
  });
  for (int i = 1; i <= 300; ++i) {
    ResultDir d(root, "exp");
    write(d.file("summary.json"), std::to_string(i));
    d.commit();
  }
  stop = true;
  watcher.join();
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(read(root / "exp" / "summary.json"), "300");
  EXPECT_EQ(listing(root), (std::vector<std::string>{"exp"}));  // no old or partial folders
  EXPECT_EQ(listing(root / "exp"), (std::vector<std::string>{"summary.json"}));  // no lock file
}

TEST(ResultFolder, AnUncommittedFolderLeavesNothing) {
  const fs::path root = fresh("abandon");
  {
    ResultDir d(root, "exp");
    write(d.file("summary.json"), "x");
  }
  EXPECT_TRUE(listing(root).empty());
}

pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

TEST(ResultFolder, StalePartialFoldersOfDeadRunsAreRemovedOnTheNextRun) {
  const fs::path root = fresh("stale");
  // A run killed after writing everything but the commit: locked by a
  // process that no longer exists.
  const fs::path killed = root / (".exp.partial-" + std::to_string(dead_pid()));
  fs::create_directories(killed);
  write(killed / "summary.json", "looks complete");
  write(killed / ".lock", "");
  // One killed in the fallback's gap, one without a lock file.
  const fs::path old = root / (".exp.old-" + std::to_string(dead_pid()));
  fs::create_directories(old);
  const fs::path unlocked = root / (".exp.partial-" + std::to_string(dead_pid()));
  fs::create_directories(unlocked);
  // A live run of the same experiment (this test's parent holds no lock, so
  // take one here, as a running ResultDir does) and another experiment's.
  const fs::path live = root / (".exp.partial-" + std::to_string(::getppid()));
  fs::create_directories(live);
  write(live / ".lock", "");
  const int fd = ::open((live / ".lock").c_str(), O_RDONLY);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  const fs::path other = root / (".other.partial-" + std::to_string(dead_pid()));
  fs::create_directories(other);
  {
    ResultDir d(root, "exp");
    EXPECT_FALSE(fs::exists(killed));
    EXPECT_FALSE(fs::exists(old));
    EXPECT_FALSE(fs::exists(unlocked));
    EXPECT_TRUE(fs::exists(live));   // its owner still runs
    EXPECT_TRUE(fs::exists(other));  // another experiment's business
  }
  ::close(fd);
}

}  // namespace
}  // namespace anode::experiments
