#include "autodiff/grad_check.h"

#include <gtest/gtest.h>

#include "autodiff/ops.h"

namespace anode {
namespace {

// A deliberately wrong op: forward x^2, backward claims 3x. grad_check must
// catch it (so a passing check means something).
struct WrongSquare {
  static void backward(Tape<double>& t, const Node<double>& n) {
    double* gx = t.in_adj(n, 0);
    if (!gx) return;
    const double* x = t.in_value(n, 0);
    for (Index i = 0; i < t.in_shape(n, 0).numel(); ++i) gx[i] += t.out_adj(n)[i] * 3 * x[i];
  }
  static Var<double> forward(Var<double> x) {
    Tape<double>& t = x.tape();
    auto [y, out] = t.make_output(x.shape());
    for (Index i = 0; i < x.size(); ++i) out[i] = x.data()[i] * x.data()[i];
    Node<double> n{};
    n.name = "wrong_square";
    n.backward = &backward;
    t.record(y, {x}, n);
    return y;
  }
};

TEST(GradCheck, AcceptsCorrectGradient) {
  std::vector<Tensor<double>> x = {Tensor<double>(Shape{3}, {0.5, -1.0, 2.0})};
  auto r = grad_check([](Tape<double>&, std::span<const Var<double>> v) { return square(v[0]); }, x);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_LT(r.worst_ratio, 1.0);
}

TEST(GradCheck, RejectsWrongGradient) {
  std::vector<Tensor<double>> x = {Tensor<double>(Shape{3}, {0.5, -1.0, 2.0})};
  auto r = grad_check([](Tape<double>&, std::span<const Var<double>> v) { return WrongSquare::forward(v[0]); }, x);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("finite difference"), std::string::npos);
  // The first wrong element is named (x[0] = 0.5: 3x = 1.5 against 2x = 1).
  EXPECT_NE(r.message.find("input 0 element 0"), std::string::npos) << r.message;
}

TEST(GradCheck, DotProductIdentityAloneCatchesErrors) {
  std::vector<Tensor<double>> x = {Tensor<double>(Shape{3}, {0.5, -1.0, 2.0})};
  GradCheckOptions o;
  o.max_elementwise = 0;  // directions only
  auto r = grad_check([](Tape<double>&, std::span<const Var<double>> v) { return WrongSquare::forward(v[0]); }, x, o);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("direction"), std::string::npos);
}

}  // namespace
}  // namespace anode
