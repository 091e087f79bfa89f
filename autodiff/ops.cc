// Every op: shape checks, forward, and backward rule in one place.
#include "autodiff/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "autodiff/gemm.h"
#include "autodiff/kernels.h"
#include "autodiff/op_kit.h"

namespace anode {
namespace {

using op::Grad;
using op::in_var;
using op::is_periodic;
using op::make_node;
using op::out_var;
using op::rules_of;
using op::shapes;
using op::tape_of;

// ---- Higher-order rules ---------------------------------------------------------
//
// Beside its forward and numeric backward, every op has two rules written
// with ops (OpRules, tape.h): `tangent` (forward mode, J u) and `vjp` (the
// backward recorded as ops, for gradients of gradients). The numeric
// backward stays the first-order path, untouched; these run only under
// Tape::ForwardMode or Tape::gradients. Elementwise ops state their
// derivative once as an expression (`derivative`), used by both.

// u * d, the tangent or adjoint through an elementwise derivative d.
template <class T>
Var<T> times(Var<T> g, Var<T> d) {
  return mul(g, d);
}

// ---- Broadcasting binary ops -------------------------------------------------
//
// The kernels take each operand with a period (equal shapes, a scalar, a row
// vector repeated over rows: op::is_periodic). Any other broadcast (a column
// [n, 1] against [n, d], [1, d] against [n, 1], ...) expands that operand
// to the result's shape in transient scratch first, and its gradient is
// summed back over the broadcast axes (op::accumulate).

// An operand as the periodic kernels take it: its values and their period.
template <class T>
struct Operand {
  const T* data;
  Index period;
};

template <class T>
Operand<T> periodic_operand(Tape<T>& t, const T* x, const Shape& xs, const Shape& out) {
  if (is_periodic(xs, out)) return {x, xs.numel()};
  return {op::expand(t, x, xs, out), out.numel()};
}

enum class BinaryKind { kAdd, kSub, kMul, kDiv };

template <class T, BinaryKind K>
struct Binary {
  static constexpr const char* name() {
    switch (K) {
      case BinaryKind::kAdd: return "add";
      case BinaryKind::kSub: return "sub";
      case BinaryKind::kMul: return "mul";
      case BinaryKind::kDiv: return "div";
    }
    return "";
  }

  static Var<T> forward(Var<T> a, Var<T> b) {
    Tape<T>& t = tape_of(name(), a, b);
    const Shape sa = a.shape(), sb = b.shape();
    const Shape s = op::broadcast_shapes(name(), sa, sb);
    auto [y, out] = t.make_output(s);
    const Index n = s.numel();
    if (n > 0) {
      op::TransientScratch transient(t.arena());
      const Operand<T> pa = periodic_operand(t, a.data(), sa, s);
      const Operand<T> pb = periodic_operand(t, b.data(), sb, s);
      switch (K) {
        case BinaryKind::kAdd: kernels::add(pa.data, pa.period, pb.data, pb.period, out, n); break;
        case BinaryKind::kSub: kernels::sub(pa.data, pa.period, pb.data, pb.period, out, n); break;
        case BinaryKind::kMul: kernels::mul(pa.data, pa.period, pb.data, pb.period, out, n); break;
        case BinaryKind::kDiv: kernels::div(pa.data, pa.period, pb.data, pb.period, out, n); break;
      }
    }
    t.record(y, {a, b}, make_node<T>(name(), &backward, rules_of<T, Binary>()));
    return y;
  }

  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    const Shape s = t.slot(nd.out).shape;
    const Var<T> a = in_var(t, nd, 0), b = in_var(t, nd, 1), y = out_var(t, nd);
    const Var<T> ua = u[0], ub = u[1];
    switch (K) {
      case BinaryKind::kAdd: return op::add_tangents(s, ua, ub);
      case BinaryKind::kSub: return op::add_tangents(s, ua, ub.valid() ? neg(ub) : ub);
      case BinaryKind::kMul:
        return op::add_tangents(s, ua.valid() ? mul(ua, b) : ua, ub.valid() ? mul(a, ub) : ub);
      case BinaryKind::kDiv:  // d/db = -y / b
        return op::add_tangents(s, ua.valid() ? div(ua, b) : ua,
                                ub.valid() ? neg(div(mul(ub, y), b)) : ub);
    }
    return Var<T>();
  }

  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    const Shape sa = t.in_shape(nd, 0), sb = t.in_shape(nd, 1);
    const Var<T> a = in_var(t, nd, 0), b = in_var(t, nd, 1), y = out_var(t, nd);
    switch (K) {
      case BinaryKind::kAdd:
        if (sink.wants(0)) sink.add(0, sum_to(gy, sa));
        if (sink.wants(1)) sink.add(1, sum_to(gy, sb));
        break;
      case BinaryKind::kSub:
        if (sink.wants(0)) sink.add(0, sum_to(gy, sa));
        if (sink.wants(1)) sink.add(1, sum_to(neg(gy), sb));
        break;
      case BinaryKind::kMul:
        if (sink.wants(0)) sink.add(0, sum_to(mul(gy, b), sa));
        if (sink.wants(1)) sink.add(1, sum_to(mul(gy, a), sb));
        break;
      case BinaryKind::kDiv: {
        const Var<T> q = div(gy, b);
        if (sink.wants(0)) sink.add(0, sum_to(q, sa));
        if (sink.wants(1)) sink.add(1, sum_to(neg(mul(q, y)), sb));
        break;
      }
    }
  }

  static void backward(Tape<T>& t, const Node<T>& nd) {
    const T* gy = t.out_adj(nd);
    const Shape& s = t.slot(nd.out).shape;
    const Shape& sa = t.in_shape(nd, 0);
    const Shape& sb = t.in_shape(nd, 1);
    const Index n = s.numel();
    if (n == 0) return;
    op::TransientScratch transient(t.arena());
    switch (K) {
      case BinaryKind::kAdd:
        if (auto ga = t.in_grad(nd, 0)) op::accumulate(ga, sa, gy, s);
        if (auto gb = t.in_grad(nd, 1)) op::accumulate(gb, sb, gy, s);
        break;
      case BinaryKind::kSub:
        if (auto ga = t.in_grad(nd, 0)) op::accumulate(ga, sa, gy, s);
        if (auto gb = t.in_grad(nd, 1)) {
          if (gb.fresh && sb == s) {
            kernels::scale(gy, T(-1), gb.data, n);
          } else {
            T* tmp = t.scratch(n);
            kernels::scale(gy, T(-1), tmp, n);
            op::accumulate(gb, sb, tmp, s);
          }
        }
        break;
      case BinaryKind::kMul: {
        // d/da = g b summed to a's shape: one fused pass when a is periodic.
        if (auto ga = t.in_grad(nd, 0)) mul_grad(t, ga, sa, gy, t.in_value(nd, 1), sb, s);
        if (auto gb = t.in_grad(nd, 1)) mul_grad(t, gb, sb, gy, t.in_value(nd, 0), sa, s);
        break;
      }
      case BinaryKind::kDiv: {
        auto ga = t.in_grad(nd, 0);
        auto gb = t.in_grad(nd, 1);
        // d/da = g / b; d/db = -(g / b) * y.
        const Operand<T> pb = periodic_operand(t, t.in_value(nd, 1), sb, s);
        T* tmp = t.scratch(n);
        kernels::div(gy, n, pb.data, pb.period, tmp, n);
        if (ga) op::accumulate(ga, sa, tmp, s);
        if (gb) {
          kernels::scale(tmp, T(-1), tmp, n);
          mul_grad(t, gb, sb, tmp, t.slot(nd.out).value, s, s);
        }
        break;
      }
    }
  }

  // gx (shape sx) += g * other (other of shape so, both broadcast to s).
  static void mul_grad(Tape<T>& t, Grad<T>& gx, const Shape& sx, const T* g, const T* other,
                       const Shape& so, const Shape& s) {
    const Index n = s.numel();
    const Operand<T> po = periodic_operand(t, other, so, s);
    if (is_periodic(sx, s)) {
      kernels::mul_reduce_add(g, po.data, po.period, n, gx.zeroed(), sx.numel());
    } else {
      T* tmp = t.scratch(n);
      kernels::mul(g, n, po.data, po.period, tmp, n);
      op::accumulate(gx, sx, tmp, s);
    }
  }
};

// ---- Unary elementwise ops ---------------------------------------------------------

// One struct per function: its forward kernel, its backward kernel fed
// either the input x or the saved output y (whichever the derivative uses),
// and its derivative as an expression of the Vars x and y (for the tangent
// and the recorded backward; differentiable again).
#define ANODE_UNARY_OP(op, uses_output, deriv)                                             \
  template <class T>                                                                       \
  struct Unary_##op {                                                                      \
    static Var<T> forward(Var<T> x) {                                                      \
      Tape<T>& t = tape_of(#op, x);                                                        \
      auto [y, out] = t.make_output(x.shape());                                            \
      kernels::op(x.data(), out, x.size());                                                \
      t.record(y, {x}, make_node<T>(#op, &backward, rules_of<T, Unary_##op>()));           \
      return y;                                                                            \
    }                                                                                      \
    static Var<T> derivative([[maybe_unused]] Tape<T>& t, [[maybe_unused]] Var<T> x,       \
                             [[maybe_unused]] Var<T> y) {                                  \
      return deriv;                                                                        \
    }                                                                                      \
    static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {      \
      return times(u[0], derivative(t, in_var(t, nd, 0), out_var(t, nd)));                 \
    }                                                                                      \
    static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {         \
      if (sink.wants(0)) sink.add(0, times(gy, derivative(t, in_var(t, nd, 0), out_var(t, nd)))); \
    }                                                                                      \
    static void backward(Tape<T>& t, const Node<T>& nd) {                                  \
      auto gx = t.in_grad(nd, 0);                                                          \
      if (!gx) return;                                                                     \
      const T* u = (uses_output) ? t.slot(nd.out).value : t.in_value(nd, 0);               \
      kernels::op##_backward(u, t.out_adj(nd), gx.data, t.slot(nd.out).shape.numel(),      \
                             gx.fresh);                                                    \
    }                                                                                      \
  };
// relu and abs: piecewise linear, so their derivative is a constant mask
// (zero second derivative), taken on the same side as the numeric rule.
ANODE_UNARY_OP(tanh, true, T(1) - square(y))
ANODE_UNARY_OP(sigmoid, true, mul(y, T(1) - y))
ANODE_UNARY_OP(exp, true, y)
ANODE_UNARY_OP(sqrt, true, scale(reciprocal(y), T(0.5)))
ANODE_UNARY_OP(relu, false, op::constant_from(t, x.shape(), [p = x.data()](Index i) {
                 return p[i] > T(0) ? T(1) : T(0);
               }))
ANODE_UNARY_OP(softplus, false, sigmoid(x))
ANODE_UNARY_OP(log, false, reciprocal(x))
ANODE_UNARY_OP(square, false, scale(x, T(2)))
ANODE_UNARY_OP(sin, false, cos(x))
ANODE_UNARY_OP(cos, false, neg(sin(x)))
ANODE_UNARY_OP(abs, false, op::constant_from(t, x.shape(), [p = x.data()](Index i) {
                 return p[i] > T(0) ? T(1) : (p[i] < T(0) ? T(-1) : T(0));
               }))
ANODE_UNARY_OP(log1p, false, reciprocal(add_scalar(x, T(1))))
#undef ANODE_UNARY_OP

// ---- Scale, add_scalar, neg -----------------------------------------------------

template <class T>
struct Scale {
  struct Attrs {
    T c;
  };
  static Var<T> forward(Var<T> x, T c, const char* name) {
    Tape<T>& t = tape_of(name, x);
    auto [y, out] = t.make_output(x.shape());
    kernels::scale(x.data(), c, out, x.size());
    t.record(y, {x}, make_node<T>(name, &backward, rules_of<T, Scale>(), Attrs{c}));
    return y;
  }
  static Var<T> tangent(Tape<T>&, const Node<T>& nd, std::span<const Var<T>> u) {
    return scale(u[0], nd.template attrs<Attrs>().c);
  }
  static void vjp(Tape<T>&, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    if (sink.wants(0)) sink.add(0, scale(gy, nd.template attrs<Attrs>().c));
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    if (auto gx = t.in_grad(nd, 0)) {
      kernels::axpy(nd.template attrs<Attrs>().c, t.out_adj(nd), gx.data,
                    t.slot(nd.out).shape.numel(), gx.fresh);
    }
  }
};

template <class T>
struct AddScalar {
  static Var<T> forward(Var<T> x, T c) {
    Tape<T>& t = tape_of("add_scalar", x);
    auto [y, out] = t.make_output(x.shape());
    kernels::add(x.data(), x.size(), &c, Index(1), out, x.size());
    t.record(y, {x}, make_node<T>("add_scalar", &backward, rules_of<T, AddScalar>()));
    return y;
  }
  static Var<T> tangent(Tape<T>&, const Node<T>&, std::span<const Var<T>> u) { return u[0]; }
  static void vjp(Tape<T>&, const Node<T>&, Var<T> gy, GradSink<T>& sink) {
    if (sink.wants(0)) sink.add(0, gy);
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    const Index n = t.slot(nd.out).shape.numel();
    if (auto gx = t.in_grad(nd, 0)) op::accumulate(gx, n, t.out_adj(nd), n);
  }
};

// ---- lincomb ----------------------------------------------------------------------

template <class T>
struct Lincomb {
  static Var<T> forward(std::span<const Var<T>> xs, std::span<const T> c) {
    if (xs.empty()) throw ValueError("lincomb: no terms given");
    if (xs.size() != c.size()) {
      throw ValueError("lincomb: " + std::to_string(xs.size()) + " terms but " +
                       std::to_string(c.size()) + " coefficients");
    }
    Tape<T>& t = tape_of("lincomb", xs[0]);
    const Shape& s = xs[0].shape();
    const Index k = static_cast<Index>(xs.size());
    const T** ptrs = t.template scratch<const T*>(xs.size());
    for (Index i = 0; i < k; ++i) {
      tape_of("lincomb", xs[0], xs[i]);
      if (xs[i].shape() != s) {
        throw ShapeError("lincomb: term " + std::to_string(i) + " has shape " +
                         xs[i].shape().str() + ", term 0 has " + s.str());
      }
      ptrs[i] = xs[i].data();
    }
    auto [y, out] = t.make_output(s);
    kernels::lincomb(ptrs, c.data(), k, out, s.numel());
    if (t.will_record(xs)) {
      T* saved = t.scratch(xs.size());
      std::copy(c.begin(), c.end(), saved);
      Node<T> n = make_node<T>("lincomb", &backward, rules_of<T, Lincomb>());
      n.saved = saved;
      t.record(y, xs, n);
    }
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    const T* c = static_cast<const T*>(nd.saved);
    const Index n = t.slot(nd.out).shape.numel();
    for (int i = 0; i < nd.in_count; ++i) {
      if (auto gx = t.in_grad(nd, i)) kernels::axpy(c[i], t.out_adj(nd), gx.data, n, gx.fresh);
    }
  }
  static Var<T> tangent(Tape<T>&, const Node<T>& nd, std::span<const Var<T>> u) {
    const T* c = static_cast<const T*>(nd.saved);
    std::vector<Var<T>> xs;
    std::vector<T> cs;
    for (int i = 0; i < nd.in_count; ++i) {
      if (u[i].valid()) {
        xs.push_back(u[i]);
        cs.push_back(c[i]);
      }
    }
    return lincomb(std::span<const Var<T>>(xs), std::span<const T>(cs));
  }
  static void vjp(Tape<T>&, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    const T* c = static_cast<const T*>(nd.saved);
    for (int i = 0; i < nd.in_count; ++i) {
      if (sink.wants(i)) sink.add(i, scale(gy, c[i]));
    }
  }
};

// ---- matmul, linear ----------------------------------------------------------------

template <class T>
struct Matmul {
  struct Attrs {
    bool ta, tb;
  };
  static Var<T> forward(Var<T> a, Var<T> b, bool ta, bool tb) {
    Tape<T>& t = tape_of("matmul", a, b);
    const Shape& sa = a.shape();
    const Shape& sb = b.shape();
    if (sa.rank() != 2 || sb.rank() != 2) {
      throw ShapeError("matmul: operands must be rank 2, got " + shapes(sa, sb));
    }
    Index m = ta ? sa[1] : sa[0], k = ta ? sa[0] : sa[1];
    Index kb = tb ? sb[1] : sb[0], n = tb ? sb[0] : sb[1];
    if (k != kb) {
      throw ShapeError("matmul: inner dimensions differ: " + shapes(sa, sb) +
                       (ta ? " (a transposed)" : "") + (tb ? " (b transposed)" : ""));
    }
    auto [y, out] = t.make_output(Shape{m, n});
    gemm<T>(ta, tb, m, n, k, T(1), a.data(), sa[1], b.data(), sb[1], T(0), out, n);
    t.record(y, {a, b}, make_node<T>("matmul", &backward, rules_of<T, Matmul>(), Attrs{ta, tb}));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    const auto [ta, tb] = nd.template attrs<Attrs>();
    const Shape& sa = t.in_shape(nd, 0);
    const Shape& sb = t.in_shape(nd, 1);
    const Index m = ta ? sa[1] : sa[0], k = ta ? sa[0] : sa[1], n = tb ? sb[0] : sb[1];
    const T* a = t.in_value(nd, 0);
    const T* b = t.in_value(nd, 1);
    const T* g = t.out_adj(nd);
    const Index lda = sa[1], ldb = sb[1];
    // beta = 0 into a fresh adjoint: assigned, never read.
    if (auto ga = t.in_grad(nd, 0)) {
      const T beta = ga.fresh ? T(0) : T(1);
      if (!ta) {
        gemm<T>(false, !tb, m, k, n, T(1), g, n, b, ldb, beta, ga.data, k);  // g op(b)^T
      } else {
        gemm<T>(tb, true, k, m, n, T(1), b, ldb, g, n, beta, ga.data, m);  // op(b) g^T
      }
    }
    if (auto gb = t.in_grad(nd, 1)) {
      const T beta = gb.fresh ? T(0) : T(1);
      if (!tb) {
        gemm<T>(!ta, false, k, n, m, T(1), a, lda, g, n, beta, gb.data, n);  // op(a)^T g
      } else {
        gemm<T>(true, ta, n, k, m, T(1), g, n, a, lda, beta, gb.data, k);  // g^T op(a)
      }
    }
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    const auto [ta, tb] = nd.template attrs<Attrs>();
    const Var<T> a = in_var(t, nd, 0), b = in_var(t, nd, 1);
    const Shape s = t.slot(nd.out).shape;
    return op::add_tangents(s, u[0].valid() ? matmul(u[0], b, ta, tb) : Var<T>(),
                            u[1].valid() ? matmul(a, u[1], ta, tb) : Var<T>());
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> g, GradSink<T>& sink) {
    const auto [ta, tb] = nd.template attrs<Attrs>();
    const Var<T> a = in_var(t, nd, 0), b = in_var(t, nd, 1);
    // The numeric rule's four products, as ops.
    if (sink.wants(0)) sink.add(0, !ta ? matmul(g, b, false, !tb) : matmul(b, g, tb, true));
    if (sink.wants(1)) sink.add(1, !tb ? matmul(a, g, !ta, false) : matmul(g, a, true, ta));
  }
};

template <class T>
struct Linear {
  static Var<T> forward(Var<T> x, Var<T> w, Var<T> bias) {
    Tape<T>& t = tape_of("linear", x, w);
    const Shape& sx = x.shape();
    const Shape& sw = w.shape();
    if (sx.rank() != 2 || sw.rank() != 2 || sx[1] != sw[1]) {
      throw ShapeError("linear: input " + sx.str() + " and weight " + sw.str() +
                       " do not match (need input [n, in] and weight [out, in])");
    }
    const Index rows = sx[0], in = sx[1], outs = sw[0];
    if (bias.valid()) {
      tape_of("linear", x, bias);
      if (bias.size() != outs || bias.shape().rank() > 2) {
        throw ShapeError("linear: bias " + bias.shape().str() + " does not match weight " +
                         sw.str() + " (need [" + std::to_string(outs) + "])");
      }
    }
    auto [y, out] = t.make_output(Shape{rows, outs});
    if (bias.valid()) {
      // The bias enters in the GEMM's epilogue (y = x W^T + b rounded once per
      // element), not as rows copied into y first: for the narrow layers of
      // an ODE's dynamics the copies cost as much as the product.
      gemm_bias<T>(false, true, rows, outs, in, T(1), x.data(), in, w.data(), in, bias.data(), out,
                   outs);
      t.record(y, {x, w, bias}, make_node<T>("linear", &backward, rules_of<T, Linear>()));
    } else {
      gemm<T>(false, true, rows, outs, in, T(1), x.data(), in, w.data(), in, T(0), out, outs);
      t.record(y, {x, w}, make_node<T>("linear", &backward, rules_of<T, Linear>()));
    }
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    const Shape& sx = t.in_shape(nd, 0);
    const Index rows = sx[0], in = sx[1], outs = t.in_shape(nd, 1)[0];
    const T* g = t.out_adj(nd);
    // beta = 0 into a fresh adjoint: assigned, never read.
    if (auto gx = t.in_grad(nd, 0)) {
      gemm<T>(false, false, rows, in, outs, T(1), g, outs, t.in_value(nd, 1), in,
              gx.fresh ? T(0) : T(1), gx.data, in);
    }
    if (auto gw = t.in_grad(nd, 1)) {
      gemm<T>(true, false, outs, in, rows, T(1), g, outs, t.in_value(nd, 0), in,
              gw.fresh ? T(0) : T(1), gw.data, in);
    }
    if (nd.in_count == 3) {
      if (T* gb = t.in_grad(nd, 2).zeroed()) kernels::reduce_rows_add(g, rows * outs, gb, outs);
    }
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    const Var<T> x = in_var(t, nd, 0), w = in_var(t, nd, 1);
    const Shape s = t.slot(nd.out).shape;
    Var<T> r = op::add_tangents(s, u[0].valid() ? linear(u[0], w) : Var<T>(),
                                u[1].valid() ? linear(x, u[1]) : Var<T>());
    if (nd.in_count == 3 && u[2].valid()) {
      const Var<T> ub = reshape(u[2], Shape{s[1]});
      r = r.valid() ? add(r, ub) : broadcast_to(ub, s);
    }
    return r;
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> g, GradSink<T>& sink) {
    if (sink.wants(0)) sink.add(0, matmul(g, in_var(t, nd, 1)));
    if (sink.wants(1)) sink.add(1, matmul(g, in_var(t, nd, 0), true, false));
    if (nd.in_count == 3 && sink.wants(2)) sink.add(2, reshape(sum(g, 0), t.in_shape(nd, 2)));
  }
};

// ---- Reductions ------------------------------------------------------------------------

template <class T>
struct SumAll {
  struct Attrs {
    T scale;  // 1 for sum, 1/n for mean
  };
  static Var<T> forward(Var<T> x, bool mean) {
    const char* name = mean ? "mean" : "sum";
    Tape<T>& t = tape_of(name, x);
    if (mean && x.size() == 0) throw ValueError("mean: the input " + x.shape().str() + " is empty");
    T s = mean ? T(1) / static_cast<T>(x.size()) : T(1);
    auto [y, out] = t.make_output(Shape{});
    out[0] = kernels::sum(x.data(), x.size()) * s;
    t.record(y, {x}, make_node<T>(name, &backward, rules_of<T, SumAll>(), Attrs{s}));
    return y;
  }
  static Var<T> tangent(Tape<T>&, const Node<T>& nd, std::span<const Var<T>> u) {
    const T s = nd.template attrs<Attrs>().scale;
    return s == T(1) ? sum(u[0]) : scale(sum(u[0]), s);
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    const T s = nd.template attrs<Attrs>().scale;
    if (sink.wants(0)) sink.add(0, broadcast_to(s == T(1) ? gy : scale(gy, s), t.in_shape(nd, 0)));
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    if (T* gx = t.in_grad(nd, 0).zeroed()) {
      T g = t.out_adj(nd)[0] * nd.template attrs<Attrs>().scale;
      kernels::broadcast_add(&g, Index(1), gx, t.in_shape(nd, 0).numel());
    }
  }
};

template <class T>
struct SumAxis {
  struct Attrs {
    Index outer, len, inner;
    T scale;  // 1 for sum, 1/len for mean
  };
  static Var<T> forward(Var<T> x, int axis, bool mean) {
    const char* name = mean ? "mean(axis)" : "sum(axis)";
    Tape<T>& t = tape_of(name, x);
    const Shape s = x.shape();
    const int r = s.rank();
    axis = op::normalize_axis(name, axis, s);
    if (mean && s[axis] == 0) {
      throw ValueError(std::string(name) + ": axis " + std::to_string(axis) + " of " + s.str() +
                       " is empty");
    }
    Index outer = 1, inner = 1;
    Index dims[kMaxRank];
    int k = 0;
    for (int i = 0; i < r; ++i) {
      if (i < axis) outer *= s[i];
      if (i > axis) inner *= s[i];
      if (i != axis) dims[k++] = s[i];
    }
    Index len = s[axis];
    auto [y, out] = t.make_output(Shape(std::span<const Index>(dims, k)));
    kernels::sum_axis(x.data(), outer, len, inner, out);
    T sc = mean ? T(1) / static_cast<T>(len) : T(1);
    if (mean) kernels::scale(out, sc, out, outer * inner);
    t.record(y, {x}, make_node<T>(name, &backward, rules_of<T, SumAxis>(), Attrs{outer, len, inner, sc}));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    T* gx = t.in_grad(nd, 0).zeroed();
    if (!gx) return;
    const auto [outer, len, inner, sc] = nd.template attrs<Attrs>();
    const T* g = t.out_adj(nd);
    if (sc != T(1)) {
      T* tmp = t.scratch(outer * inner);
      kernels::scale(g, sc, tmp, outer * inner);
      g = tmp;
    }
    kernels::sum_axis_backward(g, outer, len, inner, gx);
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    const auto [outer, len, inner, sc] = nd.template attrs<Attrs>();
    const Var<T> r = reshape(sum(reshape(u[0], Shape{outer, len, inner}), 1), t.slot(nd.out).shape);
    return sc == T(1) ? r : scale(r, sc);
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    if (!sink.wants(0)) return;
    const auto [outer, len, inner, sc] = nd.template attrs<Attrs>();
    const Var<T> g = broadcast_to(reshape(gy, Shape{outer, 1, inner}), Shape{outer, len, inner});
    const Var<T> r = reshape(g, t.in_shape(nd, 0));
    sink.add(0, sc == T(1) ? r : scale(r, sc));
  }
};

// ---- Shape ops ---------------------------------------------------------------------------

template <class T>
struct Reshape {
  static Var<T> forward(Var<T> x, const Shape& shape) {
    Tape<T>& t = tape_of("reshape", x);
    if (shape.numel() != x.size()) {
      throw ShapeError("reshape: cannot reshape " + x.shape().str() + " to " + shape.str());
    }
    Var<T> y = t.make_view(x.data(), shape);
    t.record(y, {x}, make_node<T>("reshape", &backward, rules_of<T, Reshape>()));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    const Index n = t.slot(nd.out).shape.numel();
    if (auto gx = t.in_grad(nd, 0)) op::accumulate(gx, n, t.out_adj(nd), n);
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    return reshape(u[0], t.slot(nd.out).shape);
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    if (sink.wants(0)) sink.add(0, reshape(gy, t.in_shape(nd, 0)));
  }
};

// Copies rows of width `w` at column `off` of a row-major [rows, stride]
// array into (or adds them out of) a packed [rows, w] array.
template <class T>
void gather_columns(const T* src, Index rows, Index stride, Index off, Index w, T* dst) {
  for (Index r = 0; r < rows; ++r) std::memcpy(dst + r * w, src + r * stride + off, sizeof(T) * w);
}
template <class T>
void scatter_add_columns(const T* src, Index rows, Index w, T* dst, Index stride, Index off) {
  for (Index r = 0; r < rows; ++r) kernels::add_to(src + r * w, dst + r * stride + off, w);
}

// The reverse of scatter_add_columns: packed dst [rows, w] += columns
// [off, off + w) of src [rows, stride].
template <class T>
void gather_add_columns(const T* src, Index rows, Index stride, Index off, Index w, T* dst) {
  for (Index r = 0; r < rows; ++r) kernels::add_to(src + r * stride + off, dst + r * w, w);
}

template <class T>
struct SliceLast {
  struct Attrs {
    Index begin;
  };
  static Var<T> forward(Var<T> x, Index begin, Index len) {
    Tape<T>& t = tape_of("slice_last", x);
    const Shape& s = x.shape();
    if (s.rank() == 0 || begin < 0 || len < 0 || begin + len > s.last()) {
      throw ShapeError("slice_last: columns [" + std::to_string(begin) + ", " +
                       std::to_string(begin + len) + ") out of range for shape " + s.str());
    }
    auto [y, out] = t.make_output(s.with_last(len));
    gather_columns(x.data(), s.rows(), s.last(), begin, len, out);
    t.record(y, {x}, make_node<T>("slice_last", &backward, rules_of<T, SliceLast>(), Attrs{begin}));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    if (T* gx = t.in_grad(nd, 0).zeroed()) {
      const Shape& s = t.in_shape(nd, 0);
      scatter_add_columns(t.out_adj(nd), s.rows(), t.slot(nd.out).shape.last(), gx, s.last(),
                          nd.template attrs<Attrs>().begin);
    }
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    return slice_last(u[0], nd.template attrs<Attrs>().begin, t.slot(nd.out).shape.last());
  }
  // The adjoint: gy between columns of zeros.
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    if (!sink.wants(0)) return;
    const Shape s = t.in_shape(nd, 0);
    const Index begin = nd.template attrs<Attrs>().begin, len = gy.shape().last();
    Var<T> parts[3];
    int k = 0;
    if (begin > 0) parts[k++] = t.zeros(s.with_last(begin));
    parts[k++] = gy;
    if (s.last() - begin - len > 0) parts[k++] = t.zeros(s.with_last(s.last() - begin - len));
    sink.add(0, k == 1 ? gy : concat_last(std::span<const Var<T>>(parts, k)));
  }
};

// Concatenation along `axis`: each input viewed as [outer, len_i, inner].
template <class T>
struct Concat {
  struct Attrs {
    Index outer, inner;
    int axis;
  };
  static Var<T> forward(std::span<const Var<T>> xs, int axis, const char* name) {
    if (xs.empty()) throw ValueError(std::string(name) + ": no inputs");
    Tape<T>& t = tape_of(name, xs[0]);
    const Shape& s0 = xs[0].shape();
    const int r = s0.rank();
    if (r == 0) throw ShapeError(std::string(name) + ": inputs must have rank >= 1, got []");
    axis = op::normalize_axis(name, axis, s0);
    Index total = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
      tape_of(name, xs[0], xs[i]);
      const Shape& s = xs[i].shape();
      bool ok = s.rank() == r;
      for (int d = 0; ok && d < r; ++d) ok = d == axis || s[d] == s0[d];
      if (!ok) {
        throw ShapeError(std::string(name) + ": input " + std::to_string(i) + " has shape " + s.str() +
                         ", input 0 has " + s0.str() + " (all but axis " + std::to_string(axis) +
                         " must agree)");
      }
      total += s[axis];
    }
    Index outer = 1, inner = 1;
    Index dims[kMaxRank];
    for (int d = 0; d < r; ++d) {
      if (d < axis) outer *= s0[d];
      if (d > axis) inner *= s0[d];
      dims[d] = d == axis ? total : s0[d];
    }
    auto [y, out] = t.make_output(Shape(std::span<const Index>(dims, r)));
    Index off = 0;
    for (const Var<T>& x : xs) {
      const Index w = x.shape()[axis] * inner;
      for (Index o = 0; o < outer; ++o) {
        std::memcpy(out + o * total * inner + off, x.data() + o * w, sizeof(T) * w);
      }
      off += w;
    }
    t.record(y, xs, make_node<T>(name, &backward, rules_of<T, Concat>(), Attrs{outer, inner, axis}));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    const auto [outer, inner, axis] = nd.template attrs<Attrs>();
    const Index total = t.slot(nd.out).shape[axis] * inner;
    Index off = 0;
    for (int i = 0; i < nd.in_count; ++i) {
      const Index w = t.in_shape(nd, i)[axis] * inner;
      if (auto gx = t.in_grad(nd, i)) {
        if (gx.fresh) {
          gather_columns(t.out_adj(nd), outer, total, off, w, gx.data);
        } else {
          gather_add_columns(t.out_adj(nd), outer, total, off, w, gx.data);
        }
      }
      off += w;
    }
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    std::vector<Var<T>> parts;
    for (int i = 0; i < nd.in_count; ++i) parts.push_back(u[i].valid() ? u[i] : t.zeros(t.in_shape(nd, i)));
    return concat(std::span<const Var<T>>(parts), nd.template attrs<Attrs>().axis);
  }
  // Input i's adjoint: its columns of gy viewed as [outer, total * inner].
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    const auto [outer, inner, axis] = nd.template attrs<Attrs>();
    const Index total = t.slot(nd.out).shape[axis] * inner;
    const Var<T> g = reshape(gy, Shape{outer, total});
    Index off = 0;
    for (int i = 0; i < nd.in_count; ++i) {
      const Shape si = t.in_shape(nd, i);
      const Index w = si[axis] * inner;
      if (sink.wants(i)) sink.add(i, reshape(slice_last(g, off, w), si));
      off += w;
    }
  }
};

template <class T>
struct PadLast {
  static Var<T> forward(Var<T> x, Index p) {
    Tape<T>& t = tape_of("pad_last", x);
    const Shape& s = x.shape();
    if (s.rank() == 0) throw ShapeError("pad_last: input must have rank >= 1, got []");
    if (p < 0) throw ValueError("pad_last: padding must be >= 0, got " + std::to_string(p));
    const Index d = s.last(), rows = s.rows();
    auto [y, out] = t.make_output(s.with_last(d + p));
    for (Index r = 0; r < rows; ++r) {
      std::memcpy(out + r * (d + p), x.data() + r * d, sizeof(T) * d);
      std::memset(out + r * (d + p) + d, 0, sizeof(T) * p);
    }
    t.record(y, {x}, make_node<T>("pad_last", &backward, rules_of<T, PadLast>()));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    if (auto gx = t.in_grad(nd, 0)) {
      const Shape& s = t.in_shape(nd, 0);
      const Index stride = t.slot(nd.out).shape.last();
      if (gx.fresh) {
        gather_columns(t.out_adj(nd), s.rows(), stride, 0, s.last(), gx.data);
      } else {
        gather_add_columns(t.out_adj(nd), s.rows(), stride, 0, s.last(), gx.data);
      }
    }
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    return pad_last(u[0], t.slot(nd.out).shape.last() - t.in_shape(nd, 0).last());
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    if (sink.wants(0)) sink.add(0, slice_last(gy, 0, t.in_shape(nd, 0).last()));
  }
};

template <class T>
struct Stack {
  static Var<T> forward(std::span<const Var<T>> xs) {
    if (xs.empty()) throw ValueError("stack: no inputs");
    Tape<T>& t = tape_of("stack", xs[0]);
    const Shape& s0 = xs[0].shape();
    if (s0.rank() >= kMaxRank) {
      throw ShapeError("stack: inputs of rank " + std::to_string(s0.rank()) + " " + s0.str() +
                       " would exceed rank 4");
    }
    for (std::size_t i = 0; i < xs.size(); ++i) {
      tape_of("stack", xs[0], xs[i]);
      if (xs[i].shape() != s0) {
        throw ShapeError("stack: input " + std::to_string(i) + " has shape " + xs[i].shape().str() +
                         ", input 0 has " + s0.str());
      }
    }
    Index dims[kMaxRank] = {static_cast<Index>(xs.size())};
    for (int i = 0; i < s0.rank(); ++i) dims[i + 1] = s0[i];
    auto [y, out] = t.make_output(Shape(std::span<const Index>(dims, s0.rank() + 1)));
    const Index n = s0.numel();
    for (std::size_t i = 0; i < xs.size(); ++i) std::memcpy(out + i * n, xs[i].data(), sizeof(T) * n);
    t.record(y, xs, make_node<T>("stack", &backward, rules_of<T, Stack>()));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    const Index n = t.in_shape(nd, 0).numel();
    for (int i = 0; i < nd.in_count; ++i) {
      if (auto gx = t.in_grad(nd, i)) op::accumulate(gx, n, t.out_adj(nd) + i * n, n);
    }
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    std::vector<Var<T>> parts;
    for (int i = 0; i < nd.in_count; ++i) parts.push_back(u[i].valid() ? u[i] : t.zeros(t.in_shape(nd, i)));
    return stack(std::span<const Var<T>>(parts));
  }
  static void vjp(Tape<T>&, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    for (int i = 0; i < nd.in_count; ++i) {
      if (sink.wants(i)) sink.add(i, select(gy, i));
    }
  }
};

template <class T>
struct Select {
  struct Attrs {
    Index i;
  };
  static Var<T> forward(Var<T> x, Index i) {
    Tape<T>& t = tape_of("select", x);
    const Shape& s = x.shape();
    if (s.rank() == 0 || i < 0 || i >= s[0]) {
      throw ShapeError("select: index " + std::to_string(i) + " out of range for shape " + s.str());
    }
    Shape rest(std::span<const Index>(s.dims().data() + 1, s.rank() - 1));
    Var<T> y = t.make_view(x.data() + i * rest.numel(), rest);
    t.record(y, {x}, make_node<T>("select", &backward, rules_of<T, Select>(), Attrs{i}));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    if (T* gx = t.in_grad(nd, 0).zeroed()) {
      const Index n = t.slot(nd.out).shape.numel();
      kernels::add_to(t.out_adj(nd), gx + nd.template attrs<Attrs>().i * n, n);
    }
  }
  static Var<T> tangent(Tape<T>&, const Node<T>& nd, std::span<const Var<T>> u) {
    return select(u[0], nd.template attrs<Attrs>().i);
  }
  // The adjoint: gy as row i of zeros, viewed as [n, rest].
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    if (!sink.wants(0)) return;
    const Shape s = t.in_shape(nd, 0);
    const Index i = nd.template attrs<Attrs>().i, m = gy.size();
    Var<T> parts[3];
    int k = 0;
    if (i > 0) parts[k++] = t.zeros(Shape{i, m});
    parts[k++] = reshape(gy, Shape{1, m});
    if (s[0] - i - 1 > 0) parts[k++] = t.zeros(Shape{s[0] - i - 1, m});
    sink.add(0, reshape(concat(std::span<const Var<T>>(parts, k), 0), s));
  }
};

// ---- Losses --------------------------------------------------------------------------------

template <class T>
struct Mse {
  static Var<T> forward(Var<T> pred, Var<T> target) {
    Tape<T>& t = tape_of("mse", pred, target);
    if (pred.shape() != target.shape()) {
      throw ShapeError("mse: prediction " + pred.shape().str() + " and target " +
                       target.shape().str() + " differ");
    }
    if (pred.size() == 0) throw ValueError("mse: inputs are empty " + pred.shape().str());
    auto [y, out] = t.make_output(Shape{});
    out[0] = kernels::squared_distance(pred.data(), target.data(), pred.size()) /
             static_cast<T>(pred.size());
    t.record(y, {pred, target}, make_node<T>("mse", &backward, rules_of<T, Mse>()));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    const Index n = t.in_shape(nd, 0).numel();
    T* tmp = t.scratch(n);
    kernels::sub(t.in_value(nd, 0), n, t.in_value(nd, 1), n, tmp, n);
    const T c = T(2) * t.out_adj(nd)[0] / static_cast<T>(n);
    if (auto gp = t.in_grad(nd, 0)) kernels::axpy(c, tmp, gp.data, n, gp.fresh);
    if (auto gt = t.in_grad(nd, 1)) kernels::axpy(-c, tmp, gt.data, n, gt.fresh);
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    const Var<T> d = sub(in_var(t, nd, 0), in_var(t, nd, 1));
    const Var<T> du = op::add_tangents(d.shape(), u[0], u[1].valid() ? neg(u[1]) : u[1]);
    return scale(sum(mul(d, du)), T(2) / static_cast<T>(d.size()));
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    const Var<T> d = sub(in_var(t, nd, 0), in_var(t, nd, 1));
    const Var<T> g = mul(gy, scale(d, T(2) / static_cast<T>(d.size())));
    if (sink.wants(0)) sink.add(0, g);
    if (sink.wants(1)) sink.add(1, neg(g));
  }
};

template <class T>
struct SoftmaxCrossEntropy {
  // saved: the probabilities [rows, classes].
  struct Attrs {
    const int* labels;  // a copy in tape scratch
  };
  static Var<T> forward(Var<T> logits, std::span<const int> labels) {
    Tape<T>& t = tape_of("softmax_cross_entropy", logits);
    const Shape& s = logits.shape();
    if (s.rank() != 2) {
      throw ShapeError("softmax_cross_entropy: logits must be [n, classes], got " + s.str());
    }
    const Index rows = s[0], cols = s[1];
    if (rows == 0 || cols == 0) {
      throw ValueError("softmax_cross_entropy: logits " + s.str() + " are empty");
    }
    if (static_cast<Index>(labels.size()) != rows) {
      throw ShapeError("softmax_cross_entropy: " + std::to_string(labels.size()) +
                       " labels for logits " + s.str());
    }
    for (Index r = 0; r < rows; ++r) {
      if (labels[r] < 0 || labels[r] >= cols) {
        throw ValueError("softmax_cross_entropy: label " + std::to_string(labels[r]) + " in row " +
                         std::to_string(r) + " is out of range [0, " + std::to_string(cols) + ")");
      }
    }
    T* p = t.scratch(rows * cols);
    int* saved_labels = t.template scratch<int>(rows);
    std::copy(labels.begin(), labels.end(), saved_labels);
    T* losses = t.scratch(rows);
    kernels::softmax_xent(logits.data(), saved_labels, rows, cols, p, losses);
    auto [y, out] = t.make_output(Shape{});
    out[0] = kernels::sum(losses, rows) / static_cast<T>(rows);
    Node<T> n = make_node<T>("softmax_cross_entropy", &backward, rules_of<T, SoftmaxCrossEntropy>(),
                             Attrs{saved_labels});
    n.saved = p;
    t.record(y, {logits}, n);
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    T* gx = t.in_grad(nd, 0).zeroed();
    if (!gx) return;
    const Shape& s = t.in_shape(nd, 0);
    const int* labels = nd.template attrs<Attrs>().labels;
    kernels::softmax_xent_backward(static_cast<const T*>(nd.saved), labels, s[0], s[1],
                                   t.out_adj(nd)[0] / static_cast<T>(s[0]), gx);
  }
  // (softmax(z) - onehot) / rows, as ops (differentiable in z).
  static Var<T> dloss(Tape<T>& t, const Node<T>& nd) {
    const Var<T> z = in_var(t, nd, 0);
    const Shape s = z.shape();
    const int* labels = nd.template attrs<Attrs>().labels;
    const Var<T> p = exp(sub(z, reshape(logsumexp(z, 1), Shape{s[0], 1})));
    const Var<T> onehot = op::constant_from(t, s, [labels, c = s[1]](Index i) {
      return labels[i / c] == static_cast<int>(i % c) ? T(1) : T(0);
    });
    return scale(sub(p, onehot), T(1) / static_cast<T>(s[0]));
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    return sum(mul(dloss(t, nd), u[0]));
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    if (sink.wants(0)) sink.add(0, mul(gy, dloss(t, nd)));
  }
};

// ---- reciprocal, pow(x, p), clamp ------------------------------------------------------

template <class T>
struct Reciprocal {
  static Var<T> forward(Var<T> x) {
    Tape<T>& t = tape_of("reciprocal", x);
    auto [y, out] = t.make_output(x.shape());
    const T one = 1;
    if (x.size() > 0) kernels::div(&one, Index(1), x.data(), x.size(), out, x.size());
    t.record(y, {x}, make_node<T>("reciprocal", &backward, rules_of<T, Reciprocal>()));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    Grad<T> gx = t.in_grad(nd, 0);
    if (!gx) return;
    const T* y = t.slot(nd.out).value;
    const T* gy = t.out_adj(nd);
    for (Index i = 0; i < gx.size; ++i) gx.put(i, -gy[i] * y[i] * y[i]);
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    return times(u[0], neg(square(out_var(t, nd))));
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    if (sink.wants(0)) sink.add(0, times(gy, neg(square(out_var(t, nd)))));
  }
};

// std::pow, not xsimd 8.1's pow: that one is exp(p log|x|), which loses
// about |p log x| ulps for large results and gives 0 for 0^(negative p).
template <class T>
struct PowScalar {
  struct Attrs {
    T p;
  };
  static Var<T> forward(Var<T> x, T p) {
    Tape<T>& t = tape_of("pow", x);
    auto [y, out] = t.make_output(x.shape());
    const T* xd = x.data();
    for (Index i = 0; i < x.size(); ++i) out[i] = std::pow(xd[i], p);
    t.record(y, {x}, make_node<T>("pow", &backward, rules_of<T, PowScalar>(), Attrs{p}));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    Grad<T> gx = t.in_grad(nd, 0);
    if (!gx) return;
    const T p = nd.template attrs<Attrs>().p;
    const T* x = t.in_value(nd, 0);
    const T* gy = t.out_adj(nd);
    for (Index i = 0; i < gx.size; ++i) {
      gx.put(i, p == T(0) ? T(0) : gy[i] * p * std::pow(x[i], p - T(1)));
    }
  }
  static Var<T> derivative(Tape<T>& t, const Node<T>& nd) {
    const T p = nd.template attrs<Attrs>().p;
    const Var<T> x = in_var(t, nd, 0);
    return p == T(0) ? t.zeros(x.shape()) : scale(pow(x, p - T(1)), p);
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    return times(u[0], derivative(t, nd));
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    if (sink.wants(0)) sink.add(0, times(gy, derivative(t, nd)));
  }
};

template <class T>
struct Clamp {
  struct Attrs {
    T lo, hi;
  };
  static Var<T> forward(Var<T> x, T lo, T hi) {
    Tape<T>& t = tape_of("clamp", x);
    if (!(lo <= hi)) {
      throw ValueError("clamp: lo " + std::to_string(lo) + " must be <= hi " + std::to_string(hi) +
                       " (input " + x.shape().str() + ")");
    }
    auto [y, out] = t.make_output(x.shape());
    const T* xd = x.data();
    // NaN passes through (neither comparison holds).
    for (Index i = 0; i < x.size(); ++i) out[i] = xd[i] < lo ? lo : (xd[i] > hi ? hi : xd[i]);
    t.record(y, {x}, make_node<T>("clamp", &backward, rules_of<T, Clamp>(), Attrs{lo, hi}));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    Grad<T> gx = t.in_grad(nd, 0);
    if (!gx) return;
    const auto [lo, hi] = nd.template attrs<Attrs>();
    const T* x = t.in_value(nd, 0);
    const T* gy = t.out_adj(nd);
    for (Index i = 0; i < gx.size; ++i) gx.put(i, x[i] >= lo && x[i] <= hi ? gy[i] : T(0));
  }
  // Piecewise linear: the derivative is a constant mask.
  static Var<T> derivative(Tape<T>& t, const Node<T>& nd) {
    const auto [lo, hi] = nd.template attrs<Attrs>();
    const Var<T> x = in_var(t, nd, 0);
    return op::constant_from(t, x.shape(), [p = x.data(), lo = lo, hi = hi](Index i) {
      return p[i] >= lo && p[i] <= hi ? T(1) : T(0);
    });
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    return times(u[0], derivative(t, nd));
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    if (sink.wants(0)) sink.add(0, times(gy, derivative(t, nd)));
  }
};

// ---- Broadcasting binary ops without a periodic kernel ----------------------------------
//
// Both operands expanded to the result's shape (no copy where they already
// have it), one scalar loop, and each gradient summed back to its operand's
// shape. F: kName, f(a, b), and the partials da(a, b, y), db(a, b, y).

template <class T, class F>
struct Elementwise2 {
  static Var<T> forward(Var<T> a, Var<T> b) {
    Tape<T>& t = tape_of(F::kName, a, b);
    const Shape sa = a.shape(), sb = b.shape();
    const Shape s = op::broadcast_shapes(F::kName, sa, sb);
    auto [y, out] = t.make_output(s);
    {
      op::TransientScratch transient(t.arena());
      const T* pa = op::expand(t, a.data(), sa, s);
      const T* pb = op::expand(t, b.data(), sb, s);
      for (Index i = 0; i < s.numel(); ++i) out[i] = F::f(pa[i], pb[i]);
    }
    t.record(y, {a, b}, make_node<T>(F::kName, &backward, rules_of<T, Elementwise2>()));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    const Shape& s = t.slot(nd.out).shape;
    const Index n = s.numel();
    const T* y = t.slot(nd.out).value;
    const T* gy = t.out_adj(nd);
    op::TransientScratch transient(t.arena());
    const T* pa = op::expand(t, t.in_value(nd, 0), t.in_shape(nd, 0), s);
    const T* pb = op::expand(t, t.in_value(nd, 1), t.in_shape(nd, 1), s);
    T* tmp = t.scratch(n);
    if (auto ga = t.in_grad(nd, 0)) {
      for (Index i = 0; i < n; ++i) tmp[i] = gy[i] * F::da(pa[i], pb[i], y[i]);
      op::accumulate(ga, t.in_shape(nd, 0), tmp, s);
    }
    if (auto gb = t.in_grad(nd, 1)) {
      for (Index i = 0; i < n; ++i) tmp[i] = gy[i] * F::db(pa[i], pb[i], y[i]);
      op::accumulate(gb, t.in_shape(nd, 1), tmp, s);
    }
  }
  // The partials as Vars of the result's shape (F::da_var, F::db_var).
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    const Shape s = t.slot(nd.out).shape;
    const Var<T> a = in_var(t, nd, 0), b = in_var(t, nd, 1), y = out_var(t, nd);
    return op::add_tangents(s, u[0].valid() ? mul(u[0], F::da_var(t, a, b, y)) : Var<T>(),
                            u[1].valid() ? mul(u[1], F::db_var(t, a, b, y)) : Var<T>());
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    const Shape sa = t.in_shape(nd, 0), sb = t.in_shape(nd, 1);
    const Var<T> a = in_var(t, nd, 0), b = in_var(t, nd, 1), y = out_var(t, nd);
    if (sink.wants(0)) sink.add(0, sum_to(mul(gy, F::da_var(t, a, b, y)), sa));
    if (sink.wants(1)) sink.add(1, sum_to(mul(gy, F::db_var(t, a, b, y)), sb));
  }
};

// A constant of y's shape from f(a_i, b_i, y_i), a and b broadcast to it:
// the masks of the piecewise partials.
template <class T, class Fn>
Var<T> partial_mask(Tape<T>& t, Var<T> a, Var<T> b, Var<T> y, Fn f) {
  const Shape s = y.shape();
  const T* pa = op::expand(t, a.data(), a.shape(), s);
  const T* pb = op::expand(t, b.data(), b.shape(), s);
  return op::constant_from(t, s, [pa, pb, py = y.data(), f](Index i) { return f(pa[i], pb[i], py[i]); });
}

template <class T>
struct MinimumF {
  static constexpr const char* kName = "minimum";
  // NaN propagates from either side.
  static T f(T a, T b) { return (a < b || std::isnan(a)) ? a : b; }
  static T da(T a, T b, T) { return a < b ? T(1) : (a == b ? T(0.5) : T(0)); }
  static T db(T a, T b, T) { return b < a ? T(1) : (a == b ? T(0.5) : T(0)); }
  static Var<T> da_var(Tape<T>& t, Var<T> a, Var<T> b, Var<T> y) { return partial_mask(t, a, b, y, da); }
  static Var<T> db_var(Tape<T>& t, Var<T> a, Var<T> b, Var<T> y) { return partial_mask(t, a, b, y, db); }
};

template <class T>
struct MaximumF {
  static constexpr const char* kName = "maximum";
  static T f(T a, T b) { return (a > b || std::isnan(a)) ? a : b; }
  static T da(T a, T b, T) { return a > b ? T(1) : (a == b ? T(0.5) : T(0)); }
  static T db(T a, T b, T) { return b > a ? T(1) : (a == b ? T(0.5) : T(0)); }
  static Var<T> da_var(Tape<T>& t, Var<T> a, Var<T> b, Var<T> y) { return partial_mask(t, a, b, y, da); }
  static Var<T> db_var(Tape<T>& t, Var<T> a, Var<T> b, Var<T> y) { return partial_mask(t, a, b, y, db); }
};

template <class T>
struct PowF {
  static constexpr const char* kName = "pow";
  static T f(T a, T b) { return std::pow(a, b); }
  static T da(T a, T b, T) { return b == T(0) ? T(0) : b * std::pow(a, b - T(1)); }
  static T db(T a, T, T y) { return y == T(0) ? T(0) : y * std::log(a); }
  // b a^(b-1) and y log(a), with the numeric rule's zeros (b = 0, y = 0)
  // chosen by where() so that no 0 * inf enters.
  static Var<T> da_var(Tape<T>& t, Var<T> a, Var<T> b, Var<T> y) {
    const Var<T> keep = partial_mask(t, a, b, y, [](T, T bb, T) { return bb != T(0) ? T(1) : T(0); });
    const Var<T> safe_b = where(keep, b, t.scalar(T(1)));
    return where(keep, mul(b, pow(a, add_scalar(safe_b, T(-1)))), t.scalar(T(0)));
  }
  static Var<T> db_var(Tape<T>& t, Var<T> a, Var<T> b, Var<T> y) {
    const Var<T> keep = partial_mask(t, a, b, y, [](T, T, T yy) { return yy != T(0) ? T(1) : T(0); });
    const Var<T> safe_a = where(keep, a, t.scalar(T(1)));
    return where(keep, mul(y, log(safe_a)), t.scalar(T(0)));
  }
};

// ---- where ------------------------------------------------------------------------------

template <class T>
struct Where {
  static Var<T> forward(Var<T> cond, Var<T> a, Var<T> b) {
    Tape<T>& t = tape_of("where", cond, a, b);
    const Shape sc = cond.shape(), sa = a.shape(), sb = b.shape();
    Shape s;
    try {
      s = op::broadcast_shapes("where", op::broadcast_shapes("where", sa, sb), sc);
    } catch (const ShapeError&) {
      throw ShapeError("where: condition " + sc.str() + ", a " + sa.str() + " and b " + sb.str() +
                       " do not broadcast to one shape");
    }
    auto [y, out] = t.make_output(s);
    {
      op::TransientScratch transient(t.arena());
      const T* pc = op::expand(t, cond.data(), sc, s);
      const T* pa = op::expand(t, a.data(), sa, s);
      const T* pb = op::expand(t, b.data(), sb, s);
      for (Index i = 0; i < s.numel(); ++i) out[i] = pc[i] != T(0) ? pa[i] : pb[i];
    }
    t.record(y, {cond, a, b}, make_node<T>("where", &backward, rules_of<T, Where>()));
    return y;
  }
  // The condition (input 0) gets no gradient: its adjoint reads as zero.
  static void backward(Tape<T>& t, const Node<T>& nd) {
    const Shape& s = t.slot(nd.out).shape;
    const Index n = s.numel();
    const T* gy = t.out_adj(nd);
    op::TransientScratch transient(t.arena());
    const T* pc = op::expand(t, t.in_value(nd, 0), t.in_shape(nd, 0), s);
    T* tmp = t.scratch(n);
    for (int k = 1; k <= 2; ++k) {
      auto g = t.in_grad(nd, k);
      if (!g) continue;
      const bool take = k == 1;
      for (Index i = 0; i < n; ++i) tmp[i] = (pc[i] != T(0)) == take ? gy[i] : T(0);
      op::accumulate(g, t.in_shape(nd, k), tmp, s);
    }
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    if (!u[1].valid() && !u[2].valid()) return t.zeros(t.slot(nd.out).shape);  // only cond's
    const Var<T> zero = t.scalar(T(0));
    const Var<T> r = where(in_var(t, nd, 0), u[1].valid() ? u[1] : zero, u[2].valid() ? u[2] : zero);
    return broadcast_to(r, t.slot(nd.out).shape);
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    const Var<T> cond = in_var(t, nd, 0), zero = t.scalar(T(0));
    if (sink.wants(1)) sink.add(1, sum_to(where(cond, gy, zero), t.in_shape(nd, 1)));
    if (sink.wants(2)) sink.add(2, sum_to(where(cond, zero, gy), t.in_shape(nd, 2)));
  }
};

// ---- logsumexp ----------------------------------------------------------------------------

template <class T>
struct LogSumExp {
  struct Attrs {
    Index outer, len, inner;
  };
  static Var<T> forward(Var<T> x, int axis) {
    Tape<T>& t = tape_of("logsumexp", x);
    const Shape s = x.shape();
    axis = op::normalize_axis("logsumexp", axis, s);
    if (s[axis] == 0) {
      throw ValueError("logsumexp: axis " + std::to_string(axis) + " of " + s.str() + " is empty");
    }
    Index outer = 1, inner = 1;
    Index dims[kMaxRank];
    int k = 0;
    for (int i = 0; i < s.rank(); ++i) {
      if (i < axis) outer *= s[i];
      if (i > axis) inner *= s[i];
      if (i != axis) dims[k++] = s[i];
    }
    const Index len = s[axis];
    auto [y, out] = t.make_output(Shape(std::span<const Index>(dims, k)));
    const T* xd = x.data();
    for (Index o = 0; o < outer; ++o) {
      for (Index i = 0; i < inner; ++i) {
        const T* row = xd + o * len * inner + i;
        // Stable: the largest term is factored out, so exp never overflows.
        T m = row[0];
        for (Index a = 1; a < len; ++a) m = std::max(m, row[a * inner]);
        T r;
        if (std::isinf(m)) {
          r = m;  // all -inf: -inf; any +inf: +inf
        } else {
          T acc = 0;
          for (Index a = 0; a < len; ++a) acc += std::exp(row[a * inner] - m);
          r = m + std::log(acc);
        }
        out[o * inner + i] = r;
      }
    }
    t.record(y, {x}, make_node<T>("logsumexp", &backward, rules_of<T, LogSumExp>(), Attrs{outer, len, inner}));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    Grad<T> gx = t.in_grad(nd, 0);
    if (!gx) return;
    const auto [outer, len, inner] = nd.template attrs<Attrs>();
    const T* x = t.in_value(nd, 0);
    const T* y = t.slot(nd.out).value;
    const T* gy = t.out_adj(nd);
    for (Index o = 0; o < outer; ++o) {
      for (Index a = 0; a < len; ++a) {
        for (Index i = 0; i < inner; ++i) {
          const Index j = (o * len + a) * inner + i;
          const T yo = y[o * inner + i];
          // softmax weight exp(x - y); 0 where every term was -inf.
          const T w = yo == -std::numeric_limits<T>::infinity() ? T(0) : std::exp(x[j] - yo);
          gx.put(j, gy[o * inner + i] * w);
        }
      }
    }
  }
  // The softmax weights exp(x - y) as [outer, len, inner].
  static Var<T> weights(Tape<T>& t, const Node<T>& nd) {
    const auto [outer, len, inner] = nd.template attrs<Attrs>();
    return exp(sub(reshape(in_var(t, nd, 0), Shape{outer, len, inner}),
                   reshape(out_var(t, nd), Shape{outer, 1, inner})));
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    const auto [outer, len, inner] = nd.template attrs<Attrs>();
    const Var<T> wu = mul(weights(t, nd), reshape(u[0], Shape{outer, len, inner}));
    return reshape(sum(wu, 1), t.slot(nd.out).shape);
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    if (!sink.wants(0)) return;
    const auto [outer, len, inner] = nd.template attrs<Attrs>();
    const Var<T> g = mul(weights(t, nd), reshape(gy, Shape{outer, 1, inner}));
    sink.add(0, reshape(g, t.in_shape(nd, 0)));
  }
};

// ---- broadcast_to, sum_to: a pair of mutually adjoint linear ops ---------------------

template <class T>
struct BroadcastTo {
  static Var<T> forward(Var<T> x, const Shape& s) {
    Tape<T>& t = tape_of("broadcast_to", x);
    const Shape sx = x.shape();
    if (op::broadcast_shapes("broadcast_to", sx, s) != s) {
      throw ShapeError("broadcast_to: " + shapes(sx, s) + ": the first does not broadcast to the second");
    }
    if (sx == s) return x;
    auto [y, out] = t.make_output(s);
    kernels::broadcast_to(x.data(), sx, out, s);
    t.record(y, {x}, make_node<T>("broadcast_to", &backward, rules_of<T, BroadcastTo>()));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    if (auto gx = t.in_grad(nd, 0)) op::accumulate(gx, t.in_shape(nd, 0), t.out_adj(nd), t.slot(nd.out).shape);
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    return broadcast_to(u[0], t.slot(nd.out).shape);
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    if (sink.wants(0)) sink.add(0, sum_to(gy, t.in_shape(nd, 0)));
  }
};

template <class T>
struct SumTo {
  static Var<T> forward(Var<T> x, const Shape& s) {
    Tape<T>& t = tape_of("sum_to", x);
    const Shape sx = x.shape();
    if (op::broadcast_shapes("sum_to", s, sx) != sx) {
      throw ShapeError("sum_to: " + shapes(sx, s) + ": the second does not broadcast to the first");
    }
    if (sx == s) return x;
    auto [y, out] = t.make_output(s);
    Grad<T> g{out, true, s.numel()};
    op::accumulate(g, s, x.data(), sx);
    if (g.fresh) std::memset(out, 0, sizeof(T) * static_cast<std::size_t>(s.numel()));  // empty x
    t.record(y, {x}, make_node<T>("sum_to", &backward, rules_of<T, SumTo>()));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    Grad<T> gx = t.in_grad(nd, 0);
    if (!gx) return;
    const Shape& sx = t.in_shape(nd, 0);
    op::TransientScratch transient(t.arena());
    const T* g = op::expand(t, t.out_adj(nd), t.slot(nd.out).shape, sx);
    op::accumulate(gx, sx.numel(), g, sx.numel());
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    return sum_to(u[0], t.slot(nd.out).shape);
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> gy, GradSink<T>& sink) {
    if (sink.wants(0)) sink.add(0, broadcast_to(gy, t.in_shape(nd, 0)));
  }
};

}  // namespace

template <class T> Var<T> add(Var<T> a, Var<T> b) { return Binary<T, BinaryKind::kAdd>::forward(a, b); }
template <class T> Var<T> sub(Var<T> a, Var<T> b) { return Binary<T, BinaryKind::kSub>::forward(a, b); }
template <class T> Var<T> mul(Var<T> a, Var<T> b) { return Binary<T, BinaryKind::kMul>::forward(a, b); }
template <class T> Var<T> div(Var<T> a, Var<T> b) { return Binary<T, BinaryKind::kDiv>::forward(a, b); }
template <class T> Var<T> neg(Var<T> a) { return Scale<T>::forward(a, T(-1), "neg"); }
template <class T> Var<T> scale(Var<T> a, std::type_identity_t<T> c) { return Scale<T>::forward(a, c, "scale"); }
template <class T> Var<T> add_scalar(Var<T> a, std::type_identity_t<T> c) { return AddScalar<T>::forward(a, c); }
template <class T> Var<T> lincomb(std::span<const Var<T>> xs, std::span<const T> c) { return Lincomb<T>::forward(xs, c); }
template <class T> Var<T> matmul(Var<T> a, Var<T> b, bool ta, bool tb) { return Matmul<T>::forward(a, b, ta, tb); }
template <class T> Var<T> linear(Var<T> x, Var<T> w, Var<T> bias) { return Linear<T>::forward(x, w, bias); }
template <class T> Var<T> sum(Var<T> x) { return SumAll<T>::forward(x, false); }
template <class T> Var<T> mean(Var<T> x) { return SumAll<T>::forward(x, true); }
template <class T> Var<T> sum(Var<T> x, int axis) { return SumAxis<T>::forward(x, axis, false); }
template <class T> Var<T> mean(Var<T> x, int axis) { return SumAxis<T>::forward(x, axis, true); }
template <class T> Var<T> reshape(Var<T> x, const Shape& s) { return Reshape<T>::forward(x, s); }
template <class T> Var<T> slice_last(Var<T> x, Index b, Index n) { return SliceLast<T>::forward(x, b, n); }
template <class T> Var<T> concat_last(std::span<const Var<T>> xs) { return Concat<T>::forward(xs, -1, "concat_last"); }
template <class T> Var<T> concat(std::span<const Var<T>> xs, int axis) { return Concat<T>::forward(xs, axis, "concat"); }
template <class T> Var<T> pad_last(Var<T> x, Index p) { return PadLast<T>::forward(x, p); }
template <class T> Var<T> tanh(Var<T> x) { return Unary_tanh<T>::forward(x); }
template <class T> Var<T> relu(Var<T> x) { return Unary_relu<T>::forward(x); }
template <class T> Var<T> softplus(Var<T> x) { return Unary_softplus<T>::forward(x); }
template <class T> Var<T> sigmoid(Var<T> x) { return Unary_sigmoid<T>::forward(x); }
template <class T> Var<T> exp(Var<T> x) { return Unary_exp<T>::forward(x); }
template <class T> Var<T> log(Var<T> x) { return Unary_log<T>::forward(x); }
template <class T> Var<T> square(Var<T> x) { return Unary_square<T>::forward(x); }
template <class T> Var<T> sqrt(Var<T> x) { return Unary_sqrt<T>::forward(x); }
template <class T> Var<T> mse(Var<T> p, Var<T> t) { return Mse<T>::forward(p, t); }
template <class T> Var<T> softmax_cross_entropy(Var<T> z, std::span<const int> l) { return SoftmaxCrossEntropy<T>::forward(z, l); }

template <class T> Var<T> sin(Var<T> x) { return Unary_sin<T>::forward(x); }
template <class T> Var<T> cos(Var<T> x) { return Unary_cos<T>::forward(x); }
template <class T> Var<T> abs(Var<T> x) { return Unary_abs<T>::forward(x); }
template <class T> Var<T> log1p(Var<T> x) { return Unary_log1p<T>::forward(x); }
template <class T> Var<T> reciprocal(Var<T> x) { return Reciprocal<T>::forward(x); }
template <class T> Var<T> pow(Var<T> x, std::type_identity_t<T> p) { return PowScalar<T>::forward(x, p); }
template <class T> Var<T> pow(Var<T> a, Var<T> b) { return Elementwise2<T, PowF<T>>::forward(a, b); }
template <class T> Var<T> minimum(Var<T> a, Var<T> b) { return Elementwise2<T, MinimumF<T>>::forward(a, b); }
template <class T> Var<T> maximum(Var<T> a, Var<T> b) { return Elementwise2<T, MaximumF<T>>::forward(a, b); }
template <class T> Var<T> clamp(Var<T> x, std::type_identity_t<T> lo, std::type_identity_t<T> hi) { return Clamp<T>::forward(x, lo, hi); }
template <class T> Var<T> where(Var<T> c, Var<T> a, Var<T> b) { return Where<T>::forward(c, a, b); }
template <class T> Var<T> logsumexp(Var<T> x, int axis) { return LogSumExp<T>::forward(x, axis); }

template <class T> Var<T> stack(std::span<const Var<T>> xs) { return Stack<T>::forward(xs); }
template <class T> Var<T> select(Var<T> x, Index i) { return Select<T>::forward(x, i); }

template <class T> Var<T> broadcast_to(Var<T> x, const Shape& s) { return BroadcastTo<T>::forward(x, s); }
template <class T> Var<T> sum_to(Var<T> x, const Shape& s) { return SumTo<T>::forward(x, s); }

namespace op {
template <class T>
Var<T> add_tangents(const Shape& s, Var<T> x, Var<T> y) {
  Var<T> r = x.valid() && y.valid() ? add(x, y) : (x.valid() ? x : y);
  return r.valid() ? broadcast_to(r, s) : r;
}
template Var<float> add_tangents(const Shape&, Var<float>, Var<float>);
template Var<double> add_tangents(const Shape&, Var<double>, Var<double>);
}  // namespace op

template <class T>
Var<T> detach(Var<T> x) {
  return tape_of("detach", x).make_view(x.data(), x.shape());
}

#define ANODE_INSTANTIATE(T)                                                         \
  template Var<T> add(Var<T>, Var<T>);                                               \
  template Var<T> sub(Var<T>, Var<T>);                                               \
  template Var<T> mul(Var<T>, Var<T>);                                               \
  template Var<T> div(Var<T>, Var<T>);                                               \
  template Var<T> neg(Var<T>);                                                       \
  template Var<T> scale(Var<T>, T);                                                  \
  template Var<T> add_scalar(Var<T>, T);                                             \
  template Var<T> lincomb(std::span<const Var<T>>, std::span<const T>);              \
  template Var<T> matmul(Var<T>, Var<T>, bool, bool);                                \
  template Var<T> linear(Var<T>, Var<T>, Var<T>);                                    \
  template Var<T> sum(Var<T>);                                                       \
  template Var<T> mean(Var<T>);                                                      \
  template Var<T> sum(Var<T>, int);                                                  \
  template Var<T> mean(Var<T>, int);                                                 \
  template Var<T> reshape(Var<T>, const Shape&);                                     \
  template Var<T> slice_last(Var<T>, Index, Index);                                  \
  template Var<T> concat_last(std::span<const Var<T>>);                              \
  template Var<T> concat(std::span<const Var<T>>, int);                              \
  template Var<T> pad_last(Var<T>, Index);                                           \
  template Var<T> detach(Var<T>);                                                    \
  template Var<T> broadcast_to(Var<T>, const Shape&);                                \
  template Var<T> sum_to(Var<T>, const Shape&);                                      \
  template Var<T> stack(std::span<const Var<T>>);                                    \
  template Var<T> select(Var<T>, Index);                                             \
  template Var<T> tanh(Var<T>);                                                      \
  template Var<T> relu(Var<T>);                                                      \
  template Var<T> softplus(Var<T>);                                                  \
  template Var<T> sigmoid(Var<T>);                                                   \
  template Var<T> exp(Var<T>);                                                       \
  template Var<T> log(Var<T>);                                                       \
  template Var<T> square(Var<T>);                                                    \
  template Var<T> sqrt(Var<T>);                                                      \
  template Var<T> mse(Var<T>, Var<T>);                                               \
  template Var<T> softmax_cross_entropy(Var<T>, std::span<const int>);              \
  template Var<T> sin(Var<T>);                                                       \
  template Var<T> cos(Var<T>);                                                       \
  template Var<T> abs(Var<T>);                                                       \
  template Var<T> log1p(Var<T>);                                                     \
  template Var<T> reciprocal(Var<T>);                                                \
  template Var<T> pow(Var<T>, T);                                                    \
  template Var<T> pow(Var<T>, Var<T>);                                               \
  template Var<T> minimum(Var<T>, Var<T>);                                           \
  template Var<T> maximum(Var<T>, Var<T>);                                           \
  template Var<T> clamp(Var<T>, T, T);                                               \
  template Var<T> where(Var<T>, Var<T>, Var<T>);                                     \
  template Var<T> logsumexp(Var<T>, int);
ANODE_INSTANTIATE(float)
ANODE_INSTANTIATE(double)
#undef ANODE_INSTANTIATE

}  // namespace anode
