#ifndef ANODE_DATASETS_IMAGE_SET_H_
#define ANODE_DATASETS_IMAGE_SET_H_

// Labelled images (MNIST-like), with subset selection and a stratified split.

#include <cstdint>
#include <span>
#include <vector>

#include "autodiff/tensor.h"

namespace anode::datasets {

/// Images as float rows, [n, rows * cols] (or [n, 1, rows, cols]), with one
/// integer class label per image.
struct ImageSet {
  Tensor<float> images;
  std::vector<int> labels;
  Index rows = 0;  ///< image height in pixels
  Index cols = 0;  ///< image width in pixels

  Index size() const { return static_cast<Index>(labels.size()); }
};

/// A training set and a test set.
struct TrainTest {
  ImageSet train;
  ImageSet test;
};

/// The images and labels at `indices`, in that order. Throws ValueError for an
/// index out of range.
ImageSet gather(const ImageSet& set, std::span<const Index> indices);

/// The first n images and labels. Throws ValueError unless 0 <= n <= size().
ImageSet take_first(const ImageSet& set, Index n);

/// The first n_train training and first n_test test images, e.g. the report's
/// MNIST setup (Section 4.3: the first 1000 of each).
TrainTest take_first(const TrainTest& split, Index n_train, Index n_test);

/// How many labels equal 0, 1, ..., num_classes - 1. Throws ValueError for a
/// label outside that range.
std::vector<Index> label_counts(std::span<const int> labels, int num_classes);

/// Splits `set` into train and test with test_size images, stratified: each
/// class gives the same share to the test set (largest-remainder rounding, so
/// the counts add up to test_size exactly). Which images of a class go to the
/// test set, and the order of each part, are a seeded shuffle: any prefix of
/// either part is a random sample, close to stratified. Deterministic for a
/// seed. Throws ValueError unless 0 <= test_size <= size() and every label is
/// in [0, num_classes).
TrainTest stratified_split(const ImageSet& set, Index test_size, std::uint64_t seed,
                           int num_classes = 10);

}  // namespace anode::datasets

#endif  // ANODE_DATASETS_IMAGE_SET_H_
