// A user-defined op written with nothing but the public op kit
// (autodiff/op_kit.h), checked like a built-in one; and the kit's helpers.
#include "autodiff/op_kit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "autodiff/grad_check.h"
#include "autodiff/ops.h"

// ---- The custom op: exactly the code shown in README.md ------------------------
namespace mylib {
using namespace anode;

// d/dx sinh(x) = cosh(x).
template <class T>
void sinh_backward(Tape<T>& t, const Node<T>& nd) {
  op::Grad<T> gx = t.in_grad(nd, 0);  // null if x needs no gradient
  if (!gx) return;
  const T* x = t.in_value(nd, 0);
  const T* gy = t.out_adj(nd);  // d loss / d y
  for (Index i = 0; i < gx.size; ++i) gx.put(i, gy[i] * std::cosh(x[i]));
}

template <class T>
Var<T> sinh(Var<T> x) {
  Tape<T>& t = op::tape_of("sinh", x);
  auto [y, out] = t.make_output(x.shape());
  for (Index i = 0; i < x.size(); ++i) out[i] = std::sinh(x.data()[i]);
  t.record(y, {x}, op::make_node<T>("sinh", &sinh_backward<T>));
  return y;
}
}  // namespace mylib

// A second one with a typed attribute: y = c * x^3, d/dx = 3 c x^2.
namespace mylib {
struct CubeAttrs {
  double c;
};

template <class T>
void scaled_cube_backward(Tape<T>& t, const Node<T>& nd) {
  op::Grad<T> gx = t.in_grad(nd, 0);
  if (!gx) return;
  const T c = static_cast<T>(nd.template attrs<CubeAttrs>().c);
  const T* x = t.in_value(nd, 0);
  const T* gy = t.out_adj(nd);
  for (Index i = 0; i < gx.size; ++i) gx.put(i, gy[i] * 3 * c * x[i] * x[i]);
}

template <class T>
Var<T> scaled_cube(Var<T> x, double c) {
  Tape<T>& t = op::tape_of("scaled_cube", x);
  auto [y, out] = t.make_output(x.shape());
  for (Index i = 0; i < x.size(); ++i) out[i] = static_cast<T>(c) * x.data()[i] * x.data()[i] * x.data()[i];
  t.record(y, {x}, op::make_node<T>("scaled_cube", &scaled_cube_backward<T>, CubeAttrs{c}));
  return y;
}
}  // namespace mylib

namespace anode {
namespace {

Tensor<double> random_tensor(const Shape& s, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-2.0, 2.0);
  Tensor<double> t(s);
  for (double& x : t) x = u(rng);
  return t;
}

TEST(CustomOp, SinhMatchesFiniteDifferences) {
  for (const Shape& s : {Shape{}, Shape{7}, Shape{3, 5}}) {
    const std::vector<Tensor<double>> inputs = {random_tensor(s, 3)};
    GradCheckResult r = grad_check(
        [](Tape<double>&, std::span<const Var<double>> x) { return mylib::sinh(x[0]); }, inputs);
    EXPECT_TRUE(r.ok) << s.str() << ": " << r.message;
  }
}

TEST(CustomOp, SinhComposesWithBuiltInOpsAndUsesTheInputTwice) {
  // sinh(x) * x, broadcast against a row: the fresh and the accumulating
  // paths of Grad::put both run.
  const std::vector<Tensor<double>> inputs = {random_tensor(Shape{2, 3}, 4), random_tensor(Shape{3}, 5)};
  GradCheckResult r = grad_check(
      [](Tape<double>&, std::span<const Var<double>> x) {
        return mul(mylib::sinh(add(x[0], x[1])), x[0]);
      },
      inputs);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(CustomOp, SinhForwardMatchesStdInFloat) {
  Tape<float> t;
  Tensor<float> x(Shape{4}, {-1.5f, 0.0f, 0.25f, 3.0f});
  Var<float> y = mylib::sinh(t.constant(x.view()));
  for (Index i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(y.data()[i], std::sinh(x[i]));
}

TEST(CustomOp, TypedAttributesReachTheBackwardRule) {
  const std::vector<Tensor<double>> inputs = {random_tensor(Shape{2, 2}, 6)};
  GradCheckResult r = grad_check(
      [](Tape<double>&, std::span<const Var<double>> x) { return mylib::scaled_cube(x[0], -0.7); },
      inputs);
  EXPECT_TRUE(r.ok) << r.message;
  Tape<double> t;
  Tensor<double> x(Shape{1}, {2.0});
  Var<double> v = t.input(x.view());
  t.backward(mylib::scaled_cube(v, 0.5));
  EXPECT_DOUBLE_EQ(t.grad(v)[0], 3 * 0.5 * 4);
}

TEST(CustomOp, NoNodeWithoutGradientOrUnderNoGrad) {
  Tape<double> t;
  Tensor<double> x(Shape{3}, {1, 2, 3});
  mylib::sinh(t.constant(x.view()));
  EXPECT_EQ(t.num_nodes(), 0u);
  {
    Tape<double>::NoGradGuard no_grad(t);
    mylib::sinh(t.input(x.view()));
  }
  EXPECT_EQ(t.num_nodes(), 0u);
  mylib::sinh(t.input(x.view()));
  EXPECT_EQ(t.num_nodes(), 1u);
}

// ---- The kit's helpers --------------------------------------------------------------

TEST(OpKit, TapeOfNamesTheOp) {
  Tape<double> t1, t2;
  Tensor<double> x(Shape{2});
  try {
    op::tape_of("my_op", t1.constant(x.view()), t2.constant(x.view()));
    ADD_FAILURE() << "no exception";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("my_op: arguments live on different tapes"), std::string::npos);
  }
  try {
    op::tape_of("my_op", t1.constant(x.view()), Var<double>());
    ADD_FAILURE() << "no exception";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("my_op: argument is an empty Var"), std::string::npos);
  }
}

TEST(OpKit, BroadcastShapesFollowsNumPy) {
  EXPECT_EQ(op::broadcast_shapes("f", Shape{}, Shape{1, 1}), (Shape{1, 1}));
  EXPECT_EQ(op::broadcast_shapes("f", Shape{3}, Shape{1, 3}), (Shape{1, 3}));
  EXPECT_EQ(op::broadcast_shapes("f", Shape{1, 3}, Shape{3}), (Shape{1, 3}));
  EXPECT_EQ(op::broadcast_shapes("f", Shape{5, 1}, Shape{5, 4}), (Shape{5, 4}));
  EXPECT_EQ(op::broadcast_shapes("f", Shape{2, 1, 3}, Shape{4, 1}), (Shape{2, 4, 3}));
  EXPECT_EQ(op::broadcast_shapes("f", Shape{0}, Shape{1}), (Shape{0}));
  EXPECT_THROW(op::broadcast_shapes("f", Shape{2, 3}, Shape{3, 2}), ShapeError);
  EXPECT_TRUE(op::is_periodic(Shape{1, 3}, Shape{4, 3}));
  EXPECT_TRUE(op::is_periodic(Shape{}, Shape{4, 3}));
  EXPECT_TRUE(op::is_periodic(Shape{2, 3}, Shape{4, 2, 3}));
  EXPECT_FALSE(op::is_periodic(Shape{4, 1}, Shape{4, 3}));
  EXPECT_FALSE(op::is_periodic(Shape{2, 1, 3}, Shape{2, 4, 3}));
  EXPECT_EQ(op::normalize_axis("f", -1, Shape{2, 3}), 1);
  EXPECT_THROW(op::normalize_axis("f", 2, Shape{2, 3}), ShapeError);
}

TEST(OpKit, AccumulateSumsOverBroadcastAxesAndAssignsWhenFresh) {
  // g [2, 3] summed into a [2, 1] and a [3] adjoint.
  const double g[] = {1, 2, 3, 4, 5, 6};
  double col[2] = {-100, -100}, row[3] = {10, 20, 30};
  op::Grad<double> fresh_col{col, true, 2};
  op::accumulate(fresh_col, Shape{2, 1}, g, Shape{2, 3});
  EXPECT_EQ(col[0], 6);
  EXPECT_EQ(col[1], 15);
  EXPECT_FALSE(fresh_col.fresh);
  op::Grad<double> used_row{row, false, 3};
  op::accumulate(used_row, Shape{3}, g, Shape{2, 3});
  EXPECT_EQ(row[0], 15);
  EXPECT_EQ(row[2], 39);
  op::Grad<double> none{nullptr, false, 0};
  op::accumulate(none, Shape{3}, g, Shape{2, 3});  // nothing to do, no crash
  EXPECT_EQ(none.zeroed(), nullptr);
}

TEST(OpKit, ExpandCopiesOnlyWhenShapesDiffer) {
  Tape<double> t;
  const double x[] = {1, 2};
  EXPECT_EQ(op::expand(t, x, Shape{2}, Shape{2}), x);
  const double* y = op::expand(t, x, Shape{2, 1}, Shape{2, 3});
  const double want[] = {1, 1, 1, 2, 2, 2};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], want[i]);
}

}  // namespace
}  // namespace anode
