#ifndef ANODE_AUTODIFF_OPS_H_
#define ANODE_AUTODIFF_OPS_H_

// Differentiable ops on Vars. Each op's forward, backward rule and shape
// checks live together in ops.cc. A misuse throws ShapeError or ValueError
// naming the op and the shapes or values involved.
//
// Broadcasting (add, sub, mul, div): the operands have the same shape, or
// one of them has a single element (a scalar), or one's shape equals the
// trailing dimensions of the other's (a row vector repeated over a batch:
// [d] or [1, d] against [n, d]). The result has the larger shape.

#include <span>

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
template <class T> Var<T> scale(Var<T> a, T c);
/// a + c for a constant c. d/da = 1.
template <class T> Var<T> add_scalar(Var<T> a, T c);
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

// ---- Shape -------------------------------------------------------------------------
/// The same values with a new shape of the same size. No copy.
template <class T> Var<T> reshape(Var<T> x, const Shape& shape);
/// Columns [begin, begin + len) of the last axis.
template <class T> Var<T> slice_last(Var<T> x, Index begin, Index len);
/// Concatenation along the last axis; all other dimensions must agree.
template <class T> Var<T> concat_last(std::span<const Var<T>> xs);
/// Concatenation along `axis` (negative counts from the back), e.g. the
/// channels of NCHW images (axis 1). d/dxs[i] = the matching slice of g.
template <class T> Var<T> concat(std::span<const Var<T>> xs, int axis);
/// Appends p zeros to the last axis (ANODE's augmentation). d/dx drops them.
template <class T> Var<T> pad_last(Var<T> x, Index p);
/// Stacks equally shaped tensors (rank <= 3) along a new first axis:
/// [n, ...shape]. d/dxs[i] = g[i].
template <class T> Var<T> stack(std::span<const Var<T>> xs);
/// x[i] along the first axis (the rank drops by one). No copy.
/// d/dx = g placed at index i, zeros elsewhere.
template <class T> Var<T> select(Var<T> x, Index i);
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

// ---- Losses ----------------------------------------------------------------------------------
/// mean((pred - target)^2) over all elements; same shapes, not empty.
/// d/dpred = 2 (pred - target) / n, d/dtarget = -d/dpred.
template <class T> Var<T> mse(Var<T> pred, Var<T> target);
/// Mean over rows of -log softmax(logits[r])[labels[r]], fused and stable.
/// logits [n, classes]; labels has n entries in [0, classes) (ValueError
/// naming the row and the label otherwise). d/dlogits = (softmax - onehot) / n.
template <class T> Var<T> softmax_cross_entropy(Var<T> logits, std::span<const int> labels);

// ---- Operators ------------------------------------------------------------------------
template <class T> Var<T> operator+(Var<T> a, Var<T> b) { return add(a, b); }
template <class T> Var<T> operator-(Var<T> a, Var<T> b) { return sub(a, b); }
template <class T> Var<T> operator*(Var<T> a, Var<T> b) { return mul(a, b); }
template <class T> Var<T> operator/(Var<T> a, Var<T> b) { return div(a, b); }
template <class T> Var<T> operator-(Var<T> a) { return neg(a); }
template <class T> Var<T> operator*(Var<T> a, std::type_identity_t<T> c) { return scale(a, c); }
template <class T> Var<T> operator*(std::type_identity_t<T> c, Var<T> a) { return scale(a, c); }
template <class T> Var<T> operator+(Var<T> a, std::type_identity_t<T> c) { return add_scalar(a, c); }
template <class T> Var<T> operator-(Var<T> a, std::type_identity_t<T> c) { return add_scalar(a, -c); }

}  // namespace anode

#endif  // ANODE_AUTODIFF_OPS_H_
