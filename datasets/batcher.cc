#include "datasets/batcher.h"

#include <algorithm>
#include <array>
#include <string>

#include "autodiff/errors.h"
#include "datasets/random.h"

namespace anode::datasets {
namespace {

// Elements per row (product of the axes after the first); rank 0 has no rows.
Index row_size(const Shape& s, const char* what) {
  if (s.rank() < 1) {
    throw ShapeError(std::string("Batcher: ") + what + " must have rank >= 1, got " + s.str());
  }
  Index r = 1;
  for (int a = 1; a < s.rank(); ++a) r *= s[a];
  return r;
}

// s with its first axis set to `rows`; on the stack, as next() must not allocate.
Shape with_rows(const Shape& s, Index rows) {
  std::array<Index, kMaxRank> dims{};
  for (int a = 0; a < s.rank(); ++a) dims[a] = s[a];
  dims[0] = rows;
  return Shape(std::span<const Index>(dims.data(), static_cast<std::size_t>(s.rank())));
}

}  // namespace

template <class T>
Batcher<T>::Batcher(const Tensor<T>& features, const Tensor<T>& targets,
                    const BatcherOptions& options)
    : Batcher(features, &targets, nullptr, options) {}

template <class T>
Batcher<T>::Batcher(const Tensor<T>& features, const std::vector<int>& labels,
                    const BatcherOptions& options)
    : Batcher(features, nullptr, &labels, options) {}

template <class T>
Batcher<T>::Batcher(const Tensor<T>& features, const BatcherOptions& options)
    : Batcher(features, nullptr, nullptr, options) {}

template <class T>
Batcher<T>::Batcher(const Tensor<T>& features, const Tensor<T>* targets,
                    const std::vector<int>* labels, const BatcherOptions& options)
    : src_features_(&features), src_targets_(targets), src_labels_(labels), options_(options) {
  if (options.batch_size <= 0) {
    throw ValueError("Batcher: batch_size must be positive, got " +
                     std::to_string(options.batch_size));
  }
  feature_row_ = row_size(features.shape(), "features");
  n_ = features.shape()[0];
  if (targets != nullptr) {
    target_row_ = row_size(targets->shape(), "targets");
    if (targets->shape()[0] != n_) {
      throw ShapeError("Batcher: features " + features.shape().str() + " and targets " +
                       targets->shape().str() + " have different numbers of rows");
    }
  }
  if (labels != nullptr && static_cast<Index>(labels->size()) != n_) {
    throw ShapeError("Batcher: features " + features.shape().str() + " but " +
                     std::to_string(labels->size()) + " labels");
  }
  const Index b = std::min(options.batch_size, n_);
  order_.resize(static_cast<std::size_t>(n_));
  features_ = Tensor<T>(with_rows(features.shape(), b));
  if (targets != nullptr) targets_ = Tensor<T>(with_rows(targets->shape(), b));
  if (labels != nullptr) labels_.reserve(static_cast<std::size_t>(b));
  start_epoch(0);
}

template <class T>
Index Batcher<T>::num_batches() const {
  const Index b = options_.batch_size;
  return options_.drop_last ? n_ / b : (n_ + b - 1) / b;
}

template <class T>
void Batcher<T>::start_epoch(Index epoch) {
  epoch_ = epoch;
  batch_ = 0;
  for (Index i = 0; i < n_; ++i) order_[i] = i;
  if (options_.shuffle) {
    Rng rng(mix_seed(options_.seed, static_cast<std::uint64_t>(epoch)));
    rng.shuffle(order_.begin(), order_.end());
  }
}

template <class T>
bool Batcher<T>::next() {
  if (batch_ >= num_batches()) return false;
  const Index begin = batch_ * options_.batch_size;
  const Index b = std::min(options_.batch_size, n_ - begin);
  ++batch_;
  // resize keeps the capacity allocated for a full batch: no allocation here.
  features_.resize(with_rows(src_features_->shape(), b));
  const T* fsrc = src_features_->data();
  T* fdst = features_.data();
  for (Index i = 0; i < b; ++i) {
    const Index row = order_[begin + i];
    std::copy_n(fsrc + row * feature_row_, feature_row_, fdst + i * feature_row_);
  }
  if (src_targets_ != nullptr) {
    targets_.resize(with_rows(src_targets_->shape(), b));
    const T* tsrc = src_targets_->data();
    T* tdst = targets_.data();
    for (Index i = 0; i < b; ++i) {
      const Index row = order_[begin + i];
      std::copy_n(tsrc + row * target_row_, target_row_, tdst + i * target_row_);
    }
  }
  if (src_labels_ != nullptr) {
    labels_.resize(static_cast<std::size_t>(b));
    for (Index i = 0; i < b; ++i) labels_[i] = (*src_labels_)[order_[begin + i]];
  }
  return true;
}

template <class T>
std::span<const Index> Batcher<T>::indices() const {
  if (batch_ == 0) return {};
  const Index begin = (batch_ - 1) * options_.batch_size;
  const Index b = std::min(options_.batch_size, n_ - begin);
  return {order_.data() + begin, static_cast<std::size_t>(b)};
}

template class Batcher<float>;
template class Batcher<double>;

}  // namespace anode::datasets
