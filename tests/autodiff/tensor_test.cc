#include "autodiff/tensor.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace anode {
namespace {

TEST(Shape, RankNumelAndString) {
  Shape s{2, 3, 4};
  EXPECT_EQ(s.rank(), 3);
  EXPECT_EQ(s.numel(), 24);
  EXPECT_EQ(s.last(), 4);
  EXPECT_EQ(s.rows(), 6);
  EXPECT_EQ(s[-1], 4);
  EXPECT_EQ(s.str(), "[2, 3, 4]");
  EXPECT_EQ(Shape{}.numel(), 1);
  EXPECT_EQ(Shape{}.str(), "[]");
  EXPECT_EQ(s.with_last(7), (Shape{2, 3, 7}));
}

TEST(Shape, RejectsBadDimensions) {
  EXPECT_THROW((Shape{1, 2, 3, 4, 5}), ShapeError);
  EXPECT_THROW((Shape{2, -1}), ShapeError);
}

TEST(Tensor, AlignedZeroedAndCopyable) {
  Tensor<float> t(Shape{3, 5});
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data()) % kAlignment, 0u);
  for (float v : t) EXPECT_EQ(v, 0.0f);
  t(1, 2) = 7;
  Tensor<float> u = t;
  EXPECT_EQ(u[7], 7);
  u[7] = 1;
  EXPECT_EQ(t[7], 7);
  Tensor<float> moved = std::move(u);
  EXPECT_EQ(moved[7], 1);
  EXPECT_TRUE(u.empty());
}

TEST(Tensor, ValuesMustMatchShape) {
  EXPECT_THROW((Tensor<double>(Shape{2, 2}, {1.0, 2.0, 3.0})), ShapeError);
  Tensor<double> t(Shape{2, 2}, {1.0, 2.0, 3.0, 4.0});
  EXPECT_EQ(t(1, 0), 3.0);
}

TEST(Tensor, ReshapeResizeAssignCast) {
  Tensor<double> t(Shape{2, 3}, 1.5);
  t.reshape(Shape{3, 2});
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  EXPECT_THROW(t.reshape(Shape{4}), ShapeError);
  Tensor<double> src(Shape{6}, 2.0);
  t.assign(src.view());
  EXPECT_EQ(t[5], 2.0);
  EXPECT_THROW(t.assign(Tensor<double>(Shape{5}).view()), ShapeError);
  t.resize(Shape{10});
  EXPECT_EQ(t.size(), 10);
  Tensor<float> f = cast<float>(src);
  EXPECT_EQ(f[0], 2.0f);
}

}  // namespace
}  // namespace anode
