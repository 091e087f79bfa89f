#include "datasets/image_set.h"

#include <algorithm>
#include <string>

#include "autodiff/errors.h"
#include "datasets/random.h"

namespace anode::datasets {

ImageSet gather(const ImageSet& set, std::span<const Index> indices) {
  const Index n = set.size();
  const Index k = static_cast<Index>(indices.size());
  const Shape& shape = set.images.shape();
  if (shape.rank() < 1 || shape[0] != n) {
    throw ShapeError("gather: images " + shape.str() + " do not match " + std::to_string(n) +
                     " labels");
  }
  std::vector<Index> dims(shape.dims().begin(), shape.dims().end());
  dims[0] = k;
  Index row = 1;
  for (int a = 1; a < shape.rank(); ++a) row *= shape[a];
  ImageSet out{Tensor<float>(Shape(std::span<const Index>(dims))),
               std::vector<int>(static_cast<std::size_t>(k)), set.rows, set.cols};
  for (Index i = 0; i < k; ++i) {
    const Index src = indices[i];
    if (src < 0 || src >= n) {
      throw ValueError("gather: index " + std::to_string(src) + " out of range for " +
                       std::to_string(n) + " images");
    }
    std::copy(set.images.data() + src * row, set.images.data() + (src + 1) * row,
              out.images.data() + i * row);
    out.labels[i] = set.labels[src];
  }
  return out;
}

ImageSet take_first(const ImageSet& set, Index n) {
  if (n < 0 || n > set.size()) {
    throw ValueError("take_first: asked for " + std::to_string(n) + " of " +
                     std::to_string(set.size()) + " images");
  }
  std::vector<Index> idx(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) idx[i] = i;
  return gather(set, idx);
}

TrainTest take_first(const TrainTest& split, Index n_train, Index n_test) {
  return {take_first(split.train, n_train), take_first(split.test, n_test)};
}

std::vector<Index> label_counts(std::span<const int> labels, int num_classes) {
  if (num_classes < 1) {
    throw ValueError("label_counts: num_classes must be >= 1, got " + std::to_string(num_classes));
  }
  std::vector<Index> counts(static_cast<std::size_t>(num_classes), 0);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes) {
      throw ValueError("label_counts: label " + std::to_string(labels[i]) + " at index " +
                       std::to_string(i) + " is outside [0, " + std::to_string(num_classes) + ")");
    }
    ++counts[labels[i]];
  }
  return counts;
}

TrainTest stratified_split(const ImageSet& set, Index test_size, std::uint64_t seed,
                           int num_classes) {
  const Index n = set.size();
  if (test_size < 0 || test_size > n) {
    throw ValueError("stratified_split: test_size " + std::to_string(test_size) +
                     " is outside [0, " + std::to_string(n) + "]");
  }
  const std::vector<Index> counts = label_counts(set.labels, num_classes);

  // Test quota per class: floor of its exact share, then the leftover images go
  // to the classes with the largest remainders (ties: the smaller label).
  std::vector<Index> quota(counts.size());
  std::vector<Index> remainder(counts.size());  // numerators over n
  Index assigned = 0;
  for (std::size_t c = 0; c < counts.size(); ++c) {
    quota[c] = n > 0 ? counts[c] * test_size / n : 0;
    remainder[c] = n > 0 ? counts[c] * test_size % n : 0;
    assigned += quota[c];
  }
  std::vector<std::size_t> order(counts.size());
  for (std::size_t c = 0; c < order.size(); ++c) order[c] = c;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return remainder[a] > remainder[b]; });
  for (std::size_t k = 0; assigned < test_size; ++k, ++assigned) ++quota[order[k]];

  std::vector<std::vector<Index>> by_class(counts.size());
  for (std::size_t c = 0; c < counts.size(); ++c) by_class[c].reserve(counts[c]);
  for (Index i = 0; i < n; ++i) by_class[set.labels[i]].push_back(i);

  Rng rng(seed);
  std::vector<Index> train, test;
  train.reserve(static_cast<std::size_t>(n - test_size));
  test.reserve(static_cast<std::size_t>(test_size));
  for (std::size_t c = 0; c < counts.size(); ++c) {
    std::vector<Index>& members = by_class[c];
    rng.shuffle(members.begin(), members.end());
    test.insert(test.end(), members.begin(), members.begin() + quota[c]);
    train.insert(train.end(), members.begin() + quota[c], members.end());
  }
  rng.shuffle(train.begin(), train.end());
  rng.shuffle(test.begin(), test.end());
  return {gather(set, train), gather(set, test)};
}

}  // namespace anode::datasets
