// Every op: shape checks, forward, and backward rule in one place.
#include "autodiff/ops.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "autodiff/gemm.h"
#include "autodiff/kernels.h"

namespace anode {
namespace {

template <class T>
Node<T> node(const char* name, typename Node<T>::Backward backward) {
  Node<T> n{};
  n.name = name;
  n.backward = backward;
  return n;
}

template <class T>
Tape<T>& tape_of(const char* op, Var<T> a) {
  if (!a.valid()) throw ValueError(std::string(op) + ": argument is an empty Var (not on any tape)");
  return a.tape();
}

template <class T>
Tape<T>& tape_of(const char* op, Var<T> a, Var<T> b) {
  Tape<T>& t = tape_of(op, a);
  if (!b.valid()) throw ValueError(std::string(op) + ": argument is an empty Var (not on any tape)");
  if (&b.tape() != &t) throw ValueError(std::string(op) + ": arguments live on different tapes");
  return t;
}

std::string shapes(const Shape& a, const Shape& b) { return a.str() + " and " + b.str(); }

// g (n elements) added into dst of period m (m == n: elementwise).
template <class T>
void accumulate(const T* g, Index n, T* dst, Index m) {
  if (m == n) {
    kernels::add_to(g, dst, n);
  } else {
    kernels::reduce_rows_add(g, n, dst, m);
  }
}

// The same into an input adjoint from Tape::in_grad: a fresh one is
// assigned (copied, or zeroed and then reduced into).
template <class T>
void accumulate(const T* g, Index n, typename Tape<T>::Grad dst, Index m) {
  if (dst.fresh) {
    if (m == n) {
      std::memcpy(dst.data, g, sizeof(T) * n);
      return;
    }
    std::memset(dst.data, 0, sizeof(T) * m);
  }
  accumulate(g, n, dst.data, m);
}

// ---- Broadcasting binary ops -------------------------------------------------

// True if `small` broadcasts against `big`: a single element, or equal to
// big's trailing dimensions after dropping small's leading ones.
bool broadcasts(const Shape& small, const Shape& big) {
  if (small.numel() == 1) return true;
  int lead = 0;
  while (lead < small.rank() && small[lead] == 1) ++lead;
  int r = small.rank() - lead;
  if (r > big.rank()) return false;
  for (int i = 0; i < r; ++i) {
    if (small[small.rank() - 1 - i] != big[big.rank() - 1 - i]) return false;
  }
  return true;
}

template <class T>
Shape broadcast_shape(const char* op, Var<T> a, Var<T> b) {
  const Shape& sa = a.shape();
  const Shape& sb = b.shape();
  if (sa == sb) return sa;
  if (sa.numel() >= sb.numel() && broadcasts(sb, sa)) return sa;
  if (sb.numel() > sa.numel() && broadcasts(sa, sb)) return sb;
  throw ShapeError(std::string(op) + ": shapes " + shapes(sa, sb) +
                   " do not broadcast (one must be a scalar or match the other's trailing "
                   "dimensions)");
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
    Shape s = broadcast_shape(name(), a, b);
    auto [y, out] = t.make_output(s);
    Index n = s.numel(), na = a.size(), nb = b.size();
    switch (K) {
      case BinaryKind::kAdd: kernels::add(a.data(), na, b.data(), nb, out, n); break;
      case BinaryKind::kSub: kernels::sub(a.data(), na, b.data(), nb, out, n); break;
      case BinaryKind::kMul: kernels::mul(a.data(), na, b.data(), nb, out, n); break;
      case BinaryKind::kDiv: kernels::div(a.data(), na, b.data(), nb, out, n); break;
    }
    t.record(y, {a, b}, node<T>(name(), &backward));
    return y;
  }

  static void backward(Tape<T>& t, const Node<T>& nd) {
    const T* gy = t.out_adj(nd);
    const Index n = t.slot(nd.out).shape.numel();
    const T* a = t.in_value(nd, 0);
    const T* b = t.in_value(nd, 1);
    const Index na = t.in_shape(nd, 0).numel(), nb = t.in_shape(nd, 1).numel();
    switch (K) {
      case BinaryKind::kAdd:
        if (auto ga = t.in_grad(nd, 0)) accumulate(gy, n, ga, na);
        if (auto gb = t.in_grad(nd, 1)) accumulate(gy, n, gb, nb);
        break;
      case BinaryKind::kSub:
        if (auto ga = t.in_grad(nd, 0)) accumulate(gy, n, ga, na);
        if (auto gb = t.in_grad(nd, 1)) {
          if (gb.fresh && nb == n) {
            kernels::scale(gy, T(-1), gb.data, n);
          } else {
            T* tmp = t.scratch(n);
            kernels::scale(gy, T(-1), tmp, n);
            accumulate(tmp, n, gb, nb);
          }
        }
        break;
      case BinaryKind::kMul: {
        T* ga = t.in_adj(nd, 0);
        T* gb = t.in_adj(nd, 1);
        if (ga) kernels::mul_reduce_add(gy, b, nb, n, ga, na);
        if (gb) kernels::mul_reduce_add(gy, a, na, n, gb, nb);
        break;
      }
      case BinaryKind::kDiv: {
        T* ga = t.in_adj(nd, 0);
        T* gb = t.in_adj(nd, 1);
        // d/da = g / b; d/db = -(g / b) * y.
        T* tmp = t.scratch(n);
        kernels::div(gy, n, b, nb, tmp, n);
        if (ga) accumulate(tmp, n, ga, na);
        if (gb) {
          kernels::scale(tmp, T(-1), tmp, n);
          kernels::mul_reduce_add(tmp, t.slot(nd.out).value, n, n, gb, nb);
        }
        break;
      }
    }
  }
};

// ---- Unary elementwise ops ---------------------------------------------------------

// One struct per function: its forward kernel, and its backward kernel fed
// either the input x or the saved output y (whichever the derivative uses).
#define ANODE_UNARY_OP(op, uses_output)                                                    \
  template <class T>                                                                       \
  struct Unary_##op {                                                                      \
    static Var<T> forward(Var<T> x) {                                                      \
      Tape<T>& t = tape_of(#op, x);                                                        \
      auto [y, out] = t.make_output(x.shape());                                            \
      kernels::op(x.data(), out, x.size());                                                \
      t.record(y, {x}, node<T>(#op, &backward));                                           \
      return y;                                                                            \
    }                                                                                      \
    static void backward(Tape<T>& t, const Node<T>& nd) {                                  \
      auto gx = t.in_grad(nd, 0);                                                          \
      if (!gx) return;                                                                     \
      const T* u = (uses_output) ? t.slot(nd.out).value : t.in_value(nd, 0);               \
      kernels::op##_backward(u, t.out_adj(nd), gx.data, t.slot(nd.out).shape.numel(),      \
                             gx.fresh);                                                    \
    }                                                                                      \
  };
ANODE_UNARY_OP(tanh, true)
ANODE_UNARY_OP(sigmoid, true)
ANODE_UNARY_OP(exp, true)
ANODE_UNARY_OP(sqrt, true)
ANODE_UNARY_OP(relu, false)
ANODE_UNARY_OP(softplus, false)
ANODE_UNARY_OP(log, false)
ANODE_UNARY_OP(square, false)
#undef ANODE_UNARY_OP

// ---- Scale, add_scalar, neg -----------------------------------------------------

template <class T>
struct Scale {
  static Var<T> forward(Var<T> x, T c, const char* name) {
    Tape<T>& t = tape_of(name, x);
    auto [y, out] = t.make_output(x.shape());
    kernels::scale(x.data(), c, out, x.size());
    Node<T> n = node<T>(name, &backward);
    n.attr[0] = static_cast<double>(c);
    t.record(y, {x}, n);
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    if (auto gx = t.in_grad(nd, 0)) {
      kernels::axpy(static_cast<T>(nd.attr[0]), t.out_adj(nd), gx.data,
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
    t.record(y, {x}, node<T>("add_scalar", &backward));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    const Index n = t.slot(nd.out).shape.numel();
    if (auto gx = t.in_grad(nd, 0)) accumulate(t.out_adj(nd), n, gx, n);
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
      Node<T> n = node<T>("lincomb", &backward);
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
};

// ---- matmul, linear ----------------------------------------------------------------

template <class T>
struct Matmul {
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
    Node<T> nd = node<T>("matmul", &backward);
    nd.iattr[0] = ta;
    nd.iattr[1] = tb;
    t.record(y, {a, b}, nd);
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    const bool ta = nd.iattr[0], tb = nd.iattr[1];
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
      t.record(y, {x, w, bias}, node<T>("linear", &backward));
    } else {
      gemm<T>(false, true, rows, outs, in, T(1), x.data(), in, w.data(), in, T(0), out, outs);
      t.record(y, {x, w}, node<T>("linear", &backward));
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
      if (T* gb = t.in_adj(nd, 2)) kernels::reduce_rows_add(g, rows * outs, gb, outs);
    }
  }
};

// ---- Reductions ------------------------------------------------------------------------

template <class T>
struct SumAll {
  // attr[0]: the scale (1 for sum, 1/n for mean).
  static Var<T> forward(Var<T> x, bool mean) {
    const char* name = mean ? "mean" : "sum";
    Tape<T>& t = tape_of(name, x);
    if (mean && x.size() == 0) throw ValueError("mean: the input " + x.shape().str() + " is empty");
    T s = mean ? T(1) / static_cast<T>(x.size()) : T(1);
    auto [y, out] = t.make_output(Shape{});
    out[0] = kernels::sum(x.data(), x.size()) * s;
    Node<T> n = node<T>(name, &backward);
    n.attr[0] = static_cast<double>(s);
    t.record(y, {x}, n);
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    if (T* gx = t.in_adj(nd, 0)) {
      T g = t.out_adj(nd)[0] * static_cast<T>(nd.attr[0]);
      kernels::broadcast_add(&g, Index(1), gx, t.in_shape(nd, 0).numel());
    }
  }
};

template <class T>
struct SumAxis {
  // iattr: outer, len, inner; attr[0]: scale.
  static Var<T> forward(Var<T> x, int axis, bool mean) {
    const char* name = mean ? "mean(axis)" : "sum(axis)";
    Tape<T>& t = tape_of(name, x);
    const Shape& s = x.shape();
    int r = s.rank();
    if (axis < -r || axis >= r) {
      throw ShapeError(std::string(name) + ": axis " + std::to_string(axis) +
                       " out of range for shape " + s.str());
    }
    if (axis < 0) axis += r;
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
    Node<T> n = node<T>(name, &backward);
    n.iattr[0] = outer;
    n.iattr[1] = len;
    n.iattr[2] = inner;
    n.attr[0] = static_cast<double>(sc);
    t.record(y, {x}, n);
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    T* gx = t.in_adj(nd, 0);
    if (!gx) return;
    const Index outer = nd.iattr[0], len = nd.iattr[1], inner = nd.iattr[2];
    const T* g = t.out_adj(nd);
    if (nd.attr[0] != 1.0) {
      T* tmp = t.scratch(outer * inner);
      kernels::scale(g, static_cast<T>(nd.attr[0]), tmp, outer * inner);
      g = tmp;
    }
    kernels::sum_axis_backward(g, outer, len, inner, gx);
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
    t.record(y, {x}, node<T>("reshape", &backward));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    const Index n = t.slot(nd.out).shape.numel();
    if (auto gx = t.in_grad(nd, 0)) accumulate(t.out_adj(nd), n, gx, n);
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
  // iattr[0]: begin.
  static Var<T> forward(Var<T> x, Index begin, Index len) {
    Tape<T>& t = tape_of("slice_last", x);
    const Shape& s = x.shape();
    if (s.rank() == 0 || begin < 0 || len < 0 || begin + len > s.last()) {
      throw ShapeError("slice_last: columns [" + std::to_string(begin) + ", " +
                       std::to_string(begin + len) + ") out of range for shape " + s.str());
    }
    auto [y, out] = t.make_output(s.with_last(len));
    gather_columns(x.data(), s.rows(), s.last(), begin, len, out);
    Node<T> n = node<T>("slice_last", &backward);
    n.iattr[0] = begin;
    t.record(y, {x}, n);
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    if (T* gx = t.in_adj(nd, 0)) {
      const Shape& s = t.in_shape(nd, 0);
      scatter_add_columns(t.out_adj(nd), s.rows(), t.slot(nd.out).shape.last(), gx, s.last(),
                          nd.iattr[0]);
    }
  }
};

// Concatenation along `axis`: each input viewed as [outer, len_i, inner].
template <class T>
struct Concat {
  // iattr[0]: outer; iattr[1]: inner.
  static Var<T> forward(std::span<const Var<T>> xs, int axis, const char* name) {
    if (xs.empty()) throw ValueError(std::string(name) + ": no inputs");
    Tape<T>& t = tape_of(name, xs[0]);
    const Shape& s0 = xs[0].shape();
    const int r = s0.rank();
    if (r == 0) throw ShapeError(std::string(name) + ": inputs must have rank >= 1, got []");
    if (axis < -r || axis >= r) {
      throw ShapeError(std::string(name) + ": axis " + std::to_string(axis) + " out of range for shape " + s0.str());
    }
    if (axis < 0) axis += r;
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
    Node<T> n = node<T>(name, &backward);
    n.iattr[0] = outer;
    n.iattr[1] = inner;
    n.iattr[2] = axis;
    t.record(y, xs, n);
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    const Index outer = nd.iattr[0], inner = nd.iattr[1];
    const int axis = static_cast<int>(nd.iattr[2]);
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
    t.record(y, {x}, node<T>("pad_last", &backward));
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
    t.record(y, xs, node<T>("stack", &backward));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    const Index n = t.in_shape(nd, 0).numel();
    for (int i = 0; i < nd.in_count; ++i) {
      if (auto gx = t.in_grad(nd, i)) accumulate(t.out_adj(nd) + i * n, n, gx, n);
    }
  }
};

template <class T>
struct Select {
  // iattr[0]: the index.
  static Var<T> forward(Var<T> x, Index i) {
    Tape<T>& t = tape_of("select", x);
    const Shape& s = x.shape();
    if (s.rank() == 0 || i < 0 || i >= s[0]) {
      throw ShapeError("select: index " + std::to_string(i) + " out of range for shape " + s.str());
    }
    Shape rest(std::span<const Index>(s.dims().data() + 1, s.rank() - 1));
    Var<T> y = t.make_view(x.data() + i * rest.numel(), rest);
    Node<T> n = node<T>("select", &backward);
    n.iattr[0] = i;
    t.record(y, {x}, n);
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    if (T* gx = t.in_adj(nd, 0)) {
      const Index n = t.slot(nd.out).shape.numel();
      kernels::add_to(t.out_adj(nd), gx + nd.iattr[0] * n, n);
    }
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
    t.record(y, {pred, target}, node<T>("mse", &backward));
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    const Index n = t.in_shape(nd, 0).numel();
    T* tmp = t.scratch(n);
    kernels::sub(t.in_value(nd, 0), n, t.in_value(nd, 1), n, tmp, n);
    const T c = T(2) * t.out_adj(nd)[0] / static_cast<T>(n);
    if (T* gp = t.in_adj(nd, 0)) kernels::axpy(c, tmp, gp, n);
    if (T* gt = t.in_adj(nd, 1)) kernels::axpy(-c, tmp, gt, n);
  }
};

template <class T>
struct SoftmaxCrossEntropy {
  // saved: the probabilities [rows, classes]; aux: a copy of the labels.
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
    Node<T> n = node<T>("softmax_cross_entropy", &backward);
    n.saved = p;
    n.aux = saved_labels;
    t.record(y, {logits}, n);
    return y;
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    T* gx = t.in_adj(nd, 0);
    if (!gx) return;
    const Shape& s = t.in_shape(nd, 0);
    const int* labels = static_cast<const int*>(nd.aux);
    kernels::softmax_xent_backward(static_cast<const T*>(nd.saved), labels, s[0], s[1],
                                   t.out_adj(nd)[0] / static_cast<T>(s[0]), gx);
  }
};

}  // namespace

template <class T> Var<T> add(Var<T> a, Var<T> b) { return Binary<T, BinaryKind::kAdd>::forward(a, b); }
template <class T> Var<T> sub(Var<T> a, Var<T> b) { return Binary<T, BinaryKind::kSub>::forward(a, b); }
template <class T> Var<T> mul(Var<T> a, Var<T> b) { return Binary<T, BinaryKind::kMul>::forward(a, b); }
template <class T> Var<T> div(Var<T> a, Var<T> b) { return Binary<T, BinaryKind::kDiv>::forward(a, b); }
template <class T> Var<T> neg(Var<T> a) { return Scale<T>::forward(a, T(-1), "neg"); }
template <class T> Var<T> scale(Var<T> a, T c) { return Scale<T>::forward(a, c, "scale"); }
template <class T> Var<T> add_scalar(Var<T> a, T c) { return AddScalar<T>::forward(a, c); }
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

template <class T> Var<T> stack(std::span<const Var<T>> xs) { return Stack<T>::forward(xs); }
template <class T> Var<T> select(Var<T> x, Index i) { return Select<T>::forward(x, i); }

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
  template Var<T> softmax_cross_entropy(Var<T>, std::span<const int>);
ANODE_INSTANTIATE(float)
ANODE_INSTANTIATE(double)
#undef ANODE_INSTANTIATE

}  // namespace anode
