#ifndef ANODE_AUTODIFF_OPS_H_
#define ANODE_AUTODIFF_OPS_H_

// Differentiable ops on Vars. Each op's forward, backward rule and shape
// checks live together in ops.cc, written with the public op kit
// (autodiff/op_kit.h), which is also how to add an op of your own. A misuse
// throws ShapeError or ValueError naming the op and the shapes or values.
//
// Broadcasting (add, sub, mul, div, pow, minimum, maximum, where) follows
// NumPy and PyTorch: shapes are aligned at their trailing axes, an axis of
// size 1 stretches to the other operand's size, and missing leading axes
// count as size 1; any other mismatch is a ShapeError naming the op and both
// shapes. So [] * [2, 3] -> [2, 3], [3] + [1, 3] -> [1, 3], [n, 1] - [n, d]
// -> [n, d], [n, 1] * [1, d] -> [n, d]; the result never depends on the
// operand order. Each operand's gradient is the output's summed over the
// axes it was stretched along, back to its own shape.
// Speed: equal shapes, a scalar and a row vector repeated over rows run in
// one fused pass; other patterns first expand the operand (transient scratch).
//
// Non-smooth points take one documented side (abs, minimum/maximum, clamp,
// relu): see each op.

#include <initializer_list>
#include <span>
#include <type_traits>

#include "autodiff/tape.h"

namespace anode {

// ---- Arithmetic ---------------------------------------------------------------
/// a + b (broadcasting). d/da = 1, d/db = 1 (summed over broadcast rows).
template <class T> Var<T> add(Var<T> a, Var<T> b);
/// a - b (broadcasting). d/da = 1, d/db = -1.
template <class T> Var<T> sub(Var<T> a, Var<T> b);
/// a * b elementwise (broadcasting). d/da = b, d/db = a.
template <class T> Var<T> mul(Var<T> a, Var<T> b);
/// a / b elementwise (broadcasting). d/da = 1/b, d/db = -a/b^2.
template <class T> Var<T> div(Var<T> a, Var<T> b);
/// -a. d/da = -1.
template <class T> Var<T> neg(Var<T> a);
/// c * a for a constant c. d/da = c.
template <class T> Var<T> scale(Var<T> a, std::type_identity_t<T> c);
/// a + c for a constant c. d/da = 1.
template <class T> Var<T> add_scalar(Var<T> a, std::type_identity_t<T> c);
/// 1 / a elementwise. d/da = -1/a^2.
template <class T> Var<T> reciprocal(Var<T> a);
/// sum_i c[i] * xs[i], all xs of one shape, c constants (the fused update of
/// a Runge-Kutta stage). d/dxs[i] = c[i].
template <class T> Var<T> lincomb(std::span<const Var<T>> xs, std::span<const T> c);

// ---- Linear algebra --------------------------------------------------------------
/// op(a) * op(b) for rank-2 a, b; op transposes when the flag is set.
/// d/da = g op(b)^T (transposed back if trans_a), d/db = op(a)^T g (likewise).
template <class T> Var<T> matmul(Var<T> a, Var<T> b, bool trans_a = false, bool trans_b = false);
/// x W^T + bias, fused: x [n, in], w [out, in], bias [out] (or an invalid
/// Var for none). d/dx = g W, d/dW = g^T x, d/dbias = sum over rows of g.
template <class T> Var<T> linear(Var<T> x, Var<T> w, Var<T> bias = Var<T>());

// ---- Reductions ------------------------------------------------------------------
/// Sum of all elements (rank 0). d/dx = 1.
template <class T> Var<T> sum(Var<T> x);
/// Mean of all elements (rank 0); x must not be empty. d/dx = 1/n.
template <class T> Var<T> mean(Var<T> x);
/// Sum along `axis` (negative counts from the back); the axis is removed.
template <class T> Var<T> sum(Var<T> x, int axis);
/// Mean along `axis`; the axis must not be empty.
template <class T> Var<T> mean(Var<T> x, int axis);
/// log(sum(exp(x))) along `axis` (negative counts from the back; the axis
/// is removed), computed stably as m + log(sum(exp(x - m))), m the axis max:
/// no overflow for huge x. All -inf gives -inf. ShapeError for an axis out of
/// range, ValueError for an empty axis. d/dx = softmax(x) along the axis
/// (0 where every term was -inf).
template <class T> Var<T> logsumexp(Var<T> x, int axis);

// ---- Shape -------------------------------------------------------------------------
/// The same values with a new shape of the same size. No copy.
template <class T> Var<T> reshape(Var<T> x, const Shape& shape);
/// Columns [begin, begin + len) of the last axis.
template <class T> Var<T> slice_last(Var<T> x, Index begin, Index len);
/// Concatenation along the last axis; all other dimensions must agree.
template <class T> Var<T> concat_last(std::span<const Var<T>> xs);
/// The same with the parts written in place: concat_last({x, v}).
template <class T> Var<T> concat_last(std::initializer_list<Var<T>> xs) {
  return concat_last<T>(std::span<const Var<T>>(xs.begin(), xs.size()));
}
/// Concatenation along `axis` (negative counts from the back), e.g. the
/// channels of NCHW images (axis 1). d/dxs[i] = the matching slice of g.
template <class T> Var<T> concat(std::span<const Var<T>> xs, int axis);
/// The same with the parts written in place: concat({a, b}, 1).
template <class T> Var<T> concat(std::initializer_list<Var<T>> xs, int axis) {
  return concat<T>(std::span<const Var<T>>(xs.begin(), xs.size()), axis);
}
/// Appends p zeros to the last axis (ANODE's augmentation). d/dx drops them.
template <class T> Var<T> pad_last(Var<T> x, Index p);
/// Stacks equally shaped tensors (rank <= 3) along a new first axis:
/// [n, ...shape]. d/dxs[i] = g[i].
template <class T> Var<T> stack(std::span<const Var<T>> xs);
/// The same with the parts written in place: stack({a, b}).
template <class T> Var<T> stack(std::initializer_list<Var<T>> xs) {
  return stack<T>(std::span<const Var<T>>(xs.begin(), xs.size()));
}
/// x[i] along the first axis (the rank drops by one). No copy.
/// d/dx = g placed at index i, zeros elsewhere.
template <class T> Var<T> select(Var<T> x, Index i);
/// x broadcast (NumPy rules) to `shape`, which x's shape must broadcast to
/// (ShapeError otherwise); x itself if the shapes are equal.
/// d/dx = g summed over the broadcast axes (sum_to).
template <class T> Var<T> broadcast_to(Var<T> x, const Shape& shape);
/// x summed over axes so that the result has `shape`, which must broadcast
/// to x's shape (ShapeError otherwise); x itself if equal. The adjoint of
/// broadcast_to: d/dx = g broadcast back to x's shape.
template <class T> Var<T> sum_to(Var<T> x, const Shape& shape);
/// The value without its gradient: a constant that aliases x's data.
template <class T> Var<T> detach(Var<T> x);

// ---- Elementwise functions -------------------------------------------------------------
/// tanh(x). d/dx = 1 - tanh(x)^2.
template <class T> Var<T> tanh(Var<T> x);
/// max(x, 0). d/dx = [x > 0].
template <class T> Var<T> relu(Var<T> x);
/// log(1 + exp(x)). d/dx = sigmoid(x).
template <class T> Var<T> softplus(Var<T> x);
/// 1 / (1 + exp(-x)). d/dx = s (1 - s).
template <class T> Var<T> sigmoid(Var<T> x);
/// exp(x). d/dx = exp(x).
template <class T> Var<T> exp(Var<T> x);
/// log(x). d/dx = 1/x.
template <class T> Var<T> log(Var<T> x);
/// x^2. d/dx = 2x.
template <class T> Var<T> square(Var<T> x);
/// sqrt(x). d/dx = 1 / (2 sqrt(x)).
template <class T> Var<T> sqrt(Var<T> x);
/// sin(x). d/dx = cos(x).
template <class T> Var<T> sin(Var<T> x);
/// cos(x). d/dx = -sin(x).
template <class T> Var<T> cos(Var<T> x);
/// |x|. d/dx = sign(x), taken as 0 at x = 0 (the subgradient PyTorch uses).
template <class T> Var<T> abs(Var<T> x);
/// log(1 + x), accurate for small |x|. d/dx = 1 / (1 + x).
template <class T> Var<T> log1p(Var<T> x);
/// x^p for a constant p (std::pow; NaN for x < 0 and non-integer p).
/// d/dx = p x^(p-1), taken as 0 when p = 0.
template <class T> Var<T> pow(Var<T> x, std::type_identity_t<T> p);
/// a^b elementwise (broadcasting). d/da = b a^(b-1) (0 where b = 0),
/// d/db = a^b log(a) (0 where a^b = 0; NaN for a < 0: differentiable in b
/// only for a > 0).
template <class T> Var<T> pow(Var<T> a, Var<T> b);
/// The elementwise smaller of a and b (broadcasting); NaN propagates.
/// d/da = [a < b], d/db = [b < a]; at a tie each gets half the gradient
/// (so minimum(x, x) has derivative 1 and the result is order-independent).
template <class T> Var<T> minimum(Var<T> a, Var<T> b);
/// The elementwise larger of a and b (broadcasting); NaN propagates.
/// d/da = [a > b], d/db = [b > a]; at a tie each gets half the gradient.
template <class T> Var<T> maximum(Var<T> a, Var<T> b);
/// min(max(x, lo), hi) for constants lo <= hi (ValueError naming both
/// otherwise, NaN bounds included); NaN in x passes through.
/// d/dx = [lo <= x <= hi]: at a bound the gradient passes (as in PyTorch).
template <class T>
Var<T> clamp(Var<T> x, std::type_identity_t<T> lo, std::type_identity_t<T> hi);
/// Elementwise select: a where cond != 0 (NaN counts as true), else b.
/// The condition is a Var used as a mask (e.g. a constant of 0s and 1s; it
/// gets no gradient); cond, a and b broadcast together (NumPy rules).
/// d/da = [cond != 0], d/db = [cond == 0], each summed to its shape.
template <class T> Var<T> where(Var<T> cond, Var<T> a, Var<T> b);

// ---- Losses ----------------------------------------------------------------------------------
/// mean((pred - target)^2) over all elements; same shapes, not empty.
/// d/dpred = 2 (pred - target) / n, d/dtarget = -d/dpred.
template <class T> Var<T> mse(Var<T> pred, Var<T> target);
/// Mean over rows of -log softmax(logits[r])[labels[r]], fused and stable.
/// logits [n, classes]; labels has n entries in [0, classes) (ValueError
/// naming the row and the label otherwise). d/dlogits = (softmax - onehot) / n.
template <class T> Var<T> softmax_cross_entropy(Var<T> logits, std::span<const int> labels);

// ---- Operators ------------------------------------------------------------------------
// Var op Var broadcasts (see the top); a plain number on either side is a
// constant of the Var's type (double literals work with Var<float>).
template <class T> Var<T> operator+(Var<T> a, Var<T> b) { return add(a, b); }
template <class T> Var<T> operator-(Var<T> a, Var<T> b) { return sub(a, b); }
template <class T> Var<T> operator*(Var<T> a, Var<T> b) { return mul(a, b); }
template <class T> Var<T> operator/(Var<T> a, Var<T> b) { return div(a, b); }
template <class T> Var<T> operator-(Var<T> a) { return neg(a); }
template <class T> Var<T> operator*(Var<T> a, std::type_identity_t<T> c) { return scale(a, c); }
template <class T> Var<T> operator*(std::type_identity_t<T> c, Var<T> a) { return scale(a, c); }
template <class T> Var<T> operator+(Var<T> a, std::type_identity_t<T> c) { return add_scalar(a, c); }
template <class T> Var<T> operator-(Var<T> a, std::type_identity_t<T> c) { return add_scalar(a, -c); }
template <class T> Var<T> operator+(std::type_identity_t<T> c, Var<T> a) { return add_scalar(a, c); }
/// c - a, as add_scalar(neg(a), c).
template <class T> Var<T> operator-(std::type_identity_t<T> c, Var<T> a) { return add_scalar(neg(a), c); }
/// a / c, as scale(a, 1 / c): exact when c is a power of two, else within
/// one rounding of the quotient.
template <class T> Var<T> operator/(Var<T> a, std::type_identity_t<T> c) { return scale(a, T(1) / c); }
/// c / a, as scale(reciprocal(a), c) (just reciprocal(a) for c = 1).
template <class T> Var<T> operator/(std::type_identity_t<T> c, Var<T> a) {
  return c == T(1) ? reciprocal(a) : scale(reciprocal(a), c);
}

}  // namespace anode

#endif  // ANODE_AUTODIFF_OPS_H_
