#ifndef ANODE_DATASETS_BATCHER_H_
#define ANODE_DATASETS_BATCHER_H_

// Mini-batches over a data set: rows of the features (and of the targets, or
// the labels) selected per epoch, in a seeded shuffled or a fixed order, and
// copied into buffers the Batcher owns and reuses.

#include <cstdint>
#include <span>
#include <vector>

#include "autodiff/tensor.h"

namespace anode::datasets {

/// Options for Batcher.
struct BatcherOptions {
  Index batch_size = 100;
  /// Shuffle the rows each epoch; false keeps the stored order every epoch
  /// (what the report's MNIST code does).
  bool shuffle = true;
  /// Drop the last batch of an epoch when it has fewer than batch_size rows;
  /// by default it is kept, smaller.
  bool drop_last = false;
  /// The order of epoch e depends on (seed, e) only, so a resumed run sees the
  /// same batches.
  std::uint64_t seed = 0;
};

/// Iterates over mini-batches of (features, targets) or (features, labels):
///
///   Batcher<float> batches(x, y, {.batch_size = 100, .seed = 7});
///   for (Index epoch = 0; epoch < epochs; ++epoch) {
///     batches.start_epoch(epoch);
///     while (batches.next()) step(batches.features(), batches.targets());
///   }
///
/// Row i of a tensor is its slice [i, ...] along the first axis; a batch has
/// the same shape with the first axis cut to the batch's size. Buffers are
/// allocated once, for a full batch, in the constructor: next() copies only the
/// batch's rows and never allocates. The Batcher keeps references to the data,
/// which must outlive it and not change size.
template <class T>
class Batcher {
 public:
  /// Features with targets of the same number of rows. Throws ShapeError if the
  /// row counts differ or a tensor has rank 0, ValueError for batch_size <= 0.
  Batcher(const Tensor<T>& features, const Tensor<T>& targets, const BatcherOptions& options);
  /// Features with one integer label per row (same errors).
  Batcher(const Tensor<T>& features, const std::vector<int>& labels, const BatcherOptions& options);
  /// Features alone (same errors).
  Batcher(const Tensor<T>& features, const BatcherOptions& options);

  // The data must outlive the Batcher: temporaries are refused.
  Batcher(Tensor<T>&&, const Tensor<T>&, const BatcherOptions&) = delete;
  Batcher(const Tensor<T>&, Tensor<T>&&, const BatcherOptions&) = delete;
  Batcher(Tensor<T>&&, Tensor<T>&&, const BatcherOptions&) = delete;
  Batcher(Tensor<T>&&, const std::vector<int>&, const BatcherOptions&) = delete;
  Batcher(const Tensor<T>&, std::vector<int>&&, const BatcherOptions&) = delete;
  Batcher(Tensor<T>&&, std::vector<int>&&, const BatcherOptions&) = delete;
  Batcher(Tensor<T>&&, const BatcherOptions&) = delete;

  /// Rows in the data set.
  Index size() const { return n_; }
  /// Batches per epoch: ceil(size / batch_size), or floor with drop_last.
  Index num_batches() const;
  const BatcherOptions& options() const { return options_; }

  /// Starts epoch `epoch` (the constructor starts epoch 0): with shuffle, a
  /// fresh permutation seeded by (seed, epoch), else the stored order.
  void start_epoch(Index epoch);
  /// Fills the buffers with the next batch; false once the epoch is done.
  bool next();

  /// The current epoch, and the current batch's number within it (from 0).
  Index epoch() const { return epoch_; }
  Index batch_index() const { return batch_ - 1; }
  /// The current batch's rows of the features, [b, ...].
  const Tensor<T>& features() const { return features_; }
  /// The current batch's rows of the targets, [b, ...] (empty without targets).
  const Tensor<T>& targets() const { return targets_; }
  /// The current batch's labels (empty without labels).
  std::span<const int> labels() const { return labels_; }
  /// Which rows of the data set form the current batch.
  std::span<const Index> indices() const;

 private:
  Batcher(const Tensor<T>& features, const Tensor<T>* targets, const std::vector<int>* labels,
          const BatcherOptions& options);

  const Tensor<T>* src_features_;
  const Tensor<T>* src_targets_;
  const std::vector<int>* src_labels_;
  BatcherOptions options_;
  Index n_ = 0;
  Index feature_row_ = 0;  // elements per row
  Index target_row_ = 0;
  std::vector<Index> order_;
  Index epoch_ = 0;
  Index batch_ = 0;  // batches handed out this epoch
  Tensor<T> features_;
  Tensor<T> targets_;
  std::vector<int> labels_;
};

extern template class Batcher<float>;
extern template class Batcher<double>;

}  // namespace anode::datasets

#endif  // ANODE_DATASETS_BATCHER_H_
