#include "autodiff/tape.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "autodiff/functional.h"
#include "autodiff/ops.h"

namespace anode {
namespace {

TEST(Tape, ParameterGradientsAccumulateAcrossBackwardPasses) {
  Parameter<double> w("w", Tensor<double>(Shape{2}, {3.0, -1.0}));
  Tensor<double> x(Shape{2}, {2.0, 5.0});
  for (int pass = 1; pass <= 2; ++pass) {
    Tape<double> tape;
    Var<double> y = sum(mul(tape.param(w), tape.constant(x.view())));  // y = w . x
    EXPECT_DOUBLE_EQ(y.item(), 1.0);
    tape.backward(y);
    EXPECT_DOUBLE_EQ(w.grad()[0], 2.0 * pass);
    EXPECT_DOUBLE_EQ(w.grad()[1], 5.0 * pass);
  }
  w.zero_grad();
  EXPECT_EQ(w.grad()[0], 0.0);
}

TEST(Tape, SecondBackwardOverTheSameNodesStartsAfresh) {
  // y = tanh(w x) z: a second pass (another seed, or the same again) gives
  // its own adjoints, not a sum with the first pass's intermediate ones;
  // the parameter adds both passes.
  Parameter<double> w("w", Tensor<double>(Shape{2}, {0.3, -0.7}));
  Tensor<double> x0(Shape{2}, {2.0, 5.0});
  Tape<double> tape;
  Var<double> x = tape.input(x0.view());
  Var<double> h = tanh(mul(tape.param(w), x));
  Var<double> y = sum(h);
  Var<double> z = sum(square(h));
  tape.backward(y);
  const Tensor<double> gx_y = Tensor<double>::from_view(tape.grad(x));
  const Tensor<double> gw_y = w.grad();
  tape.backward(z);
  for (Index i = 0; i < 2; ++i) {
    const double hi = std::tanh(w.value()[i] * x0[i]);
    const double d = 1 - hi * hi;
    EXPECT_NEAR(gx_y[i], d * w.value()[i], 1e-15);
    EXPECT_NEAR(tape.grad(x)[i], 2 * hi * d * w.value()[i], 1e-15);  // z's alone
    EXPECT_NEAR(w.grad()[i], gw_y[i] + 2 * hi * d * x0[i], 1e-15);  // both passes
  }
  tape.backward(z);  // the same seed again: the same adjoints
  for (Index i = 0; i < 2; ++i) {
    const double hi = std::tanh(w.value()[i] * x0[i]);
    EXPECT_NEAR(tape.grad(x)[i], 2 * hi * (1 - hi * hi) * w.value()[i], 1e-15);
  }
}

TEST(Tape, ConstantsRecordNoNodes) {
  Tape<float> tape;
  Tensor<float> x(Shape{3}, 1.0f);
  Var<float> y = tanh(add(tape.constant(x.view()), tape.constant(x.view())));
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(tape.num_nodes(), 0u);
  EXPECT_NEAR(y.data()[0], std::tanh(2.0f), 1e-6);
}

TEST(Tape, InputGradientAndReuseOfAVar) {
  Tape<double> tape;
  Tensor<double> x(Shape{}, {1.5});
  Var<double> v = tape.input(x.view());
  Var<double> y = add(mul(v, v), v);  // y = v^2 + v, dy/dv = 2v + 1
  tape.backward(y);
  EXPECT_DOUBLE_EQ(tape.grad(v)[0], 4.0);
}

TEST(Tape, UnreachedLeafHasZeroGradient) {
  Tape<double> tape;
  Tensor<double> x(Shape{2}, {1, 2});
  Var<double> a = tape.input(x.view());
  Var<double> b = tape.input(x.view());
  tape.backward(sum(a));
  EXPECT_EQ(tape.grad(b)[0], 0.0);
  EXPECT_EQ(tape.grad(a)[1], 1.0);
}

TEST(Tape, NoGradGuardComputesValuesWithoutNodes) {
  Tape<double> tape;
  Parameter<double> w("w", Tensor<double>(Shape{1}, {2.0}));
  {
    Tape<double>::NoGradGuard guard(tape);
    Var<double> y = square(tape.param(w));
    EXPECT_DOUBLE_EQ(y.data()[0], 4.0);
    EXPECT_FALSE(y.requires_grad());
  }
  EXPECT_EQ(tape.num_nodes(), 0u);
  EXPECT_TRUE(tape.recording());
}

TEST(Tape, ScopeRewindsSlotsNodesAndArena) {
  Tape<double> tape;
  Tensor<double> x(Shape{100}, 1.0);
  Var<double> a = tape.input(x.view());
  Var<double> b = tanh(a);
  std::size_t slots = tape.num_slots(), nodes = tape.num_nodes();
  std::size_t bytes = tape.arena().bytes_used();
  {
    Tape<double>::Scope scope(tape);
    for (int i = 0; i < 50; ++i) b = tanh(b);
    EXPECT_GT(tape.num_nodes(), nodes);
  }
  EXPECT_EQ(tape.num_slots(), slots);
  EXPECT_EQ(tape.num_nodes(), nodes);
  EXPECT_EQ(tape.arena().bytes_used(), bytes);
}

TEST(Tape, BackwardInsideScopeTreatsOuterValuesAsConstants) {
  Tape<double> tape;
  Tensor<double> x(Shape{}, {0.5});
  Var<double> outer = tape.input(x.view());
  Var<double> y = square(outer);  // recorded outside the scope
  {
    Tape<double>::Scope scope(tape);
    Var<double> inner = tape.input(y.value());
    Var<double> z = add(mul(inner, y), inner);  // z = inner*y + inner; y is outer
    tape.backward(z);
    EXPECT_DOUBLE_EQ(tape.grad(inner)[0], 0.25 + 1.0);
  }
  // The outer value got no gradient from the nested pass.
  tape.backward(y);
  EXPECT_DOUBLE_EQ(tape.grad(outer)[0], 1.0);
}

TEST(Tape, ParamLogCollectsParameterGradientsSeparately) {
  Parameter<double> w("w", Tensor<double>(Shape{1}, {3.0}));
  Tape<double> tape;
  ParamLog<double> log;
  tape.set_param_log(&log);
  Var<double> y = square(tape.param(w));
  tape.set_param_log(nullptr);
  tape.backward(y);
  ASSERT_EQ(log.entries.size(), 1u);
  EXPECT_EQ(log.entries[0].param, &w);
  EXPECT_DOUBLE_EQ(tape.slot(log.entries[0].slot).adj[0], 6.0);
  EXPECT_EQ(w.grad()[0], 0.0);  // not accumulated into the parameter
}

// A custom op y = x1 (x0 and x1 are inputs) whose backward never touches
// input 0: its adjoint stays fresh (allocated, never written).
Var<double> second_of(Var<double> x0, Var<double> x1) {
  Tape<double>& t = x1.tape();
  Var<double> y = t.make_view(x1.data(), x1.shape());
  Node<double> n{};
  n.name = "second_of";
  n.backward = [](Tape<double>& tape, const Node<double>& nd) {
    if (double* g = tape.in_adj(nd, 1)) {
      for (Index i = 0; i < tape.in_shape(nd, 1).numel(); ++i) g[i] += tape.out_adj(nd)[i];
    }
  };
  t.record(y, {x0, x1}, n);
  return y;
}

TEST(Tape, AdjointsNoRuleWroteReadAsZero) {
  // u's adjoint is allocated for second_of but never written: tanh(x)'s
  // rule is skipped (it would add zeros), and grad() / slot().adj read zeros.
  Tape<double> tape;
  Tensor<double> x(Shape{3}, {0.5, -1.0, 2.0});
  {  // leave nonzero values and adjoints all over the arena it reuses
    Tensor<double> ones(Shape{256}, 1.0);
    Var<double> p = tape.input(ones.view());
    tape.backward(sum(scale(tanh(scale(p, 0.5)), 5.0)));
    tape.clear();
  }
  Var<double> v = tape.input(x.view());
  Var<double> u = tanh(v);
  Var<double> y = sum(second_of(u, square(v)));  // dy/dv = 2v, nothing through u
  tape.backward(y);
  for (Index i = 0; i < 3; ++i) {
    EXPECT_EQ(tape.grad(u)[i], 0.0);
    EXPECT_EQ(tape.slot(u.id()).adj[i], 0.0);
    EXPECT_DOUBLE_EQ(tape.grad(v)[i], 2.0 * x[i]);
  }
  // A parameter logged in a ParamLog, reached only through the skipped
  // input: tanh's rule is skipped (its output adjoint is zero), so no
  // gradient reaches the parameter and its logged adjoint stays null.
  Parameter<double> w("w", Tensor<double>(Shape{3}, 1.0));
  ParamLog<double> log;
  tape.set_param_log(&log);
  Var<double> wv = tape.param(w);
  tape.set_param_log(nullptr);
  Var<double> t = tanh(wv);
  tape.backward(sum(second_of(t, v)));
  ASSERT_EQ(log.entries.size(), 1u);
  EXPECT_EQ(tape.slot(log.entries[0].slot).adj, nullptr);
  for (Index i = 0; i < 3; ++i) EXPECT_EQ(tape.grad(t)[i], 0.0);
}

TEST(Tape, FirstWritesAssignLaterOnesAdd) {
  // v feeds several consumers of every kind of rule (assigning on a fresh
  // adjoint, or adding), twice into one node, and through broadcasting.
  Tape<double> tape;
  Tensor<double> x(Shape{2, 3}, {0.5, -1.0, 2.0, 0.25, 1.5, -0.75});
  Tensor<double> b(Shape{3}, {0.1, 0.2, 0.3});
  Var<double> v = tape.input(x.view());
  Var<double> bv = tape.input(b.view());
  Var<double> terms[] = {tanh(v), add(v, v), sub(v, bv), mul(v, v), scale(v, 3.0)};
  const double c[] = {1.0, 2.0, -1.0, 0.5, 1.0};
  Var<double> y = sum(lincomb<double>(terms, c));
  tape.backward(y);
  for (Index i = 0; i < 6; ++i) {
    const double t = std::tanh(x[i]);
    const double want = (1 - t * t) + 2.0 * 2.0 - 1.0 + 0.5 * 2.0 * x[i] + 3.0;
    EXPECT_NEAR(tape.grad(v)[i], want, 1e-12) << i;
  }
  for (Index j = 0; j < 3; ++j) EXPECT_DOUBLE_EQ(tape.grad(bv)[j], 2.0);  // -(-1) over 2 rows
}

TEST(Tape, LongChainNeedsNoRecursion) {
  // 200,000 nodes: a recursive reverse pass would overflow the stack.
  Tape<double> tape;
  Tensor<double> x(Shape{}, {0.1});
  Var<double> v = tape.input(x.view());
  Var<double> y = v;
  for (int i = 0; i < 200000; ++i) y = scale(y, 1.0);
  tape.backward(y);
  EXPECT_DOUBLE_EQ(tape.grad(v)[0], 1.0);
}

TEST(Tape, ClearKeepsCapacityAndForgetsEverything) {
  Tape<float> tape;
  Tensor<float> x(Shape{1000}, 1.0f);
  for (int round = 0; round < 3; ++round) {
    Var<float> v = tape.input(x.view());
    for (int i = 0; i < 20; ++i) v = tanh(v);
    tape.backward(sum(v));
    tape.clear();
    EXPECT_EQ(tape.num_slots(), 0u);
    EXPECT_EQ(tape.num_nodes(), 0u);
    EXPECT_EQ(tape.arena().bytes_used(), 0u);
  }
}

TEST(Tape, BackwardNeedsScalarOrMatchingCotangent) {
  Tape<float> tape;
  Tensor<float> x(Shape{3}, 1.0f);
  Var<float> v = tanh(tape.input(x.view()));
  EXPECT_THROW(tape.backward(v), ShapeError);
  Tensor<float> cot(Shape{2}, 1.0f);
  EXPECT_THROW(tape.backward(v, cot.view()), ShapeError);
}

TEST(Tape, TwoThreadsTwoTapes) {
  auto work = [](double scale, double* out) {
    Tape<double> tape;
    Parameter<double> w("w", Tensor<double>(Shape{4}, scale));
    for (int i = 0; i < 2000; ++i) {
      Var<double> y = sum(square(tanh(tape.param(w))));
      tape.backward(y);
      tape.clear();
    }
    *out = w.grad()[0];
  };
  double g1 = 0, g2 = 0;
  std::thread a(work, 0.5, &g1), b(work, -0.25, &g2);
  a.join();
  b.join();
  auto expected = [](double w) { return 2000 * 2 * std::tanh(w) * (1 - std::tanh(w) * std::tanh(w)); };
  EXPECT_NEAR(g1, expected(0.5), 1e-9);
  EXPECT_NEAR(g2, expected(-0.25), 1e-9);
}

TEST(Functional, VjpAndGrad) {
  Tensor<double> a(Shape{2}, {1.0, 2.0}), b(Shape{2}, {3.0, 4.0});
  std::vector<Tensor<double>> inputs = {a, b};
  auto f = [](Tape<double>&, std::span<const Var<double>> x) { return mul(x[0], x[1]); };
  Tensor<double> cot(Shape{2}, {1.0, 10.0});
  VjpResult<double> r = vjp<double>(f, inputs, cot.view());
  EXPECT_EQ(r.value[1], 8.0);
  EXPECT_EQ(r.grads[0][1], 40.0);  // 10 * b[1]
  EXPECT_EQ(r.grads[1][0], 1.0);   // 1 * a[0]
  auto g = grad<double>([](Tape<double>&, std::span<const Var<double>> x) { return sum(square(x[0])); },
                        std::span<const Tensor<double>>(inputs.data(), 1));
  EXPECT_EQ(g[0][1], 4.0);
}

}  // namespace
}  // namespace anode
