#ifndef ANODE_AUTODIFF_KERNELS_H_
#define ANODE_AUTODIFF_KERNELS_H_

// Tape-free numeric kernels on contiguous arrays: the vectorized bodies of the
// ops in ops.h. Each has an xsimd vector body and a tail; pointers need no
// particular alignment. Outputs may alias inputs of the same length unless
// noted. "Backward" kernels ACCUMULATE into their gradient output
// (gx += ...), unless given overwrite = true: then they store what adding
// into zeros would give (the same bits) without reading gx, for the first
// write into a fresh adjoint buffer (Tape::in_grad).
//
// Periodic broadcasting: a binary kernel's operand of length m (m divides n)
// repeats with period m over the n outputs: m == n is elementwise, m == 1 a
// scalar, m == the last axis a row vector repeated over the batch.
//
// Rounding: products accumulated into an output (axpy, lincomb, the backward
// kernels, mul_reduce_add) are fused multiply-adds, one rounding each.
// The transcendentals (tanh, sigmoid, softplus, exp, log) are our own
// polynomial/rational approximations, within 2.5 ulp of the exact result
// in float and double (measured maxima in tests/autodiff/kernels_test.cc),
// with IEEE limits: exp overflows to +inf and underflows through the
// subnormals to 0, log(0) = -inf, log(x < 0) = NaN, tanh(+-inf) = +-1,
// softplus(x) = x for large x and e^x for very negative x; NaN in, NaN out.
//
// Threads: maps over more than ~16K (transcendental) or ~256K (otherwise)
// elements split across anode::parallel_for; results are bitwise identical
// for any thread count. Reductions use a fixed pairwise tree that depends
// on n only, so they too give the same bits with 1 or N threads. Kernels
// may be called from inside a parallel_for (they then run inline).

#include "autodiff/tensor.h"

namespace anode::kernels {

// ---- Unary maps: y[i] = f(x[i]) -------------------------------------------
template <class T> void tanh(const T* x, T* y, Index n);
template <class T> void sigmoid(const T* x, T* y, Index n);
/// max(x, 0); NaN propagates.
template <class T> void relu(const T* x, T* y, Index n);
/// log(1 + exp(x)), stable for large |x|.
template <class T> void softplus(const T* x, T* y, Index n);
template <class T> void exp(const T* x, T* y, Index n);
template <class T> void log(const T* x, T* y, Index n);
template <class T> void sqrt(const T* x, T* y, Index n);
template <class T> void square(const T* x, T* y, Index n);
/// y = c * x
template <class T> void scale(const T* x, T c, T* y, Index n);
/// sin, cos, |x|, log(1 + x) (xsimd's implementations).
template <class T> void sin(const T* x, T* y, Index n);
template <class T> void cos(const T* x, T* y, Index n);
template <class T> void abs(const T* x, T* y, Index n);
template <class T> void log1p(const T* x, T* y, Index n);

// ---- Unary backward: gx[i] += gy[i] * f'(.) (overwrite: see top) ----------
/// gx += gy * (1 - y^2), y = tanh(x)
template <class T>
void tanh_backward(const T* y, const T* gy, T* gx, Index n, bool overwrite = false);
/// gx += gy * y * (1 - y), y = sigmoid(x)
template <class T>
void sigmoid_backward(const T* y, const T* gy, T* gx, Index n, bool overwrite = false);
/// gx += gy where x > 0 (a mask: gy is dropped, even if inf/NaN, where x <= 0)
template <class T>
void relu_backward(const T* x, const T* gy, T* gx, Index n, bool overwrite = false);
/// gx += gy * sigmoid(x)
template <class T>
void softplus_backward(const T* x, const T* gy, T* gx, Index n, bool overwrite = false);
/// gx += gy * y, y = exp(x)
template <class T>
void exp_backward(const T* y, const T* gy, T* gx, Index n, bool overwrite = false);
/// gx += gy / x
template <class T>
void log_backward(const T* x, const T* gy, T* gx, Index n, bool overwrite = false);
/// gx += gy * 0.5 / y, y = sqrt(x)
template <class T>
void sqrt_backward(const T* y, const T* gy, T* gx, Index n, bool overwrite = false);
/// gx += gy * 2 x
template <class T>
void square_backward(const T* x, const T* gy, T* gx, Index n, bool overwrite = false);

/// gx += gy * cos(x)
template <class T>
void sin_backward(const T* x, const T* gy, T* gx, Index n, bool overwrite = false);
/// gx -= gy * sin(x)
template <class T>
void cos_backward(const T* x, const T* gy, T* gx, Index n, bool overwrite = false);
/// gx += gy * sign(x), sign(0) = 0 (a mask: gy is dropped where x == 0 or NaN)
template <class T>
void abs_backward(const T* x, const T* gy, T* gx, Index n, bool overwrite = false);
/// gx += gy / (1 + x)
template <class T>
void log1p_backward(const T* x, const T* gy, T* gx, Index n, bool overwrite = false);

// ---- General broadcasting (NumPy rules; shapes already checked) -----------
/// y (shape ys) = x (shape xs) broadcast: x's axes aligned to ys's trailing
/// ones, each of size ys's or 1.
template <class T> void broadcast_to(const T* x, const Shape& xs, T* y, const Shape& ys);
/// x (shape xs) += g (shape gs, x broadcast to it) summed over the
/// broadcast axes: the adjoint of broadcast_to.
template <class T> void reduce_to_shape_add(const T* g, const Shape& gs, T* x, const Shape& xs);

// ---- Binary maps with periodic broadcasting (see top) ---------------------
/// y[i] = a[i % na] + b[i % nb], i < n; na and nb each divide n.
template <class T> void add(const T* a, Index na, const T* b, Index nb, T* y, Index n);
template <class T> void sub(const T* a, Index na, const T* b, Index nb, T* y, Index n);
template <class T> void mul(const T* a, Index na, const T* b, Index nb, T* y, Index n);
template <class T> void div(const T* a, Index na, const T* b, Index nb, T* y, Index n);

// ---- BLAS-1 style ---------------------------------------------------------
/// y += x
template <class T> void add_to(const T* x, T* y, Index n);
/// y += alpha * x (overwrite: y = alpha * x + 0, y not read)
template <class T> void axpy(T alpha, const T* x, T* y, Index n, bool overwrite = false);
/// y = x[0] * c[0] + ... + x[k-1] * c[k-1] (k >= 1); y may alias none of x.
template <class T> void lincomb(const T* const* x, const T* c, Index k, T* y, Index n);
/// g[i % m] += x[i] for i < n (sum of the n/m rows of period m into g).
template <class T> void reduce_rows_add(const T* x, Index n, T* g, Index m);
/// gx[i] += gy[i % m] (broadcast a period-m gradient over n outputs).
template <class T> void broadcast_add(const T* gy, Index m, T* gx, Index n);
/// out[i % m] += a[i] * b[i % nb]: the gradient of a periodic operand of a
/// product. nb == n or divides n.
template <class T> void mul_reduce_add(const T* a, const T* b, Index nb, Index n, T* out, Index m);

// ---- Reductions -------------------------------------------------------------
/// Sum of x[0..n) in T: blocks of 128 vectors (2048 floats with AVX-512) over 8
/// vector accumulators, blocks combined pairwise (error grows like log n).
template <class T> T sum(const T* x, Index n);
/// Sum of x[i]^2.
template <class T> T sum_squares(const T* x, Index n);
/// Sum of (a[i] - b[i])^2.
template <class T> T squared_distance(const T* a, const T* b, Index n);
/// Max |x[i]| (0 for n == 0); NaN if any x[i] is NaN.
template <class T> T max_abs(const T* x, Index n);
/// Dot product.
template <class T> T dot(const T* a, const T* b, Index n);
/// Tensor viewed as [outer, len, inner]; y[o, i] = sum_a x[o, a, i].
template <class T> void sum_axis(const T* x, Index outer, Index len, Index inner, T* y);
/// Backward of sum_axis: gx[o, a, i] += gy[o, i].
template <class T> void sum_axis_backward(const T* gy, Index outer, Index len, Index inner, T* gx);
/// True if every element is finite.
template <class T> bool all_finite(const T* x, Index n);

// ---- Softmax cross-entropy --------------------------------------------------
/// For each row r of logits[rows, cols]: p[r] = softmax(logits[r]) and
/// loss[r] = -log p[r, labels[r]], computed stably (max subtracted, log-sum-exp).
/// Labels are already validated to lie in [0, cols).
template <class T>
void softmax_xent(const T* logits, const int* labels, Index rows, Index cols, T* p, T* loss);
/// gx[r, j] += scale * (p[r, j] - [j == labels[r]]).
template <class T>
void softmax_xent_backward(const T* p, const int* labels, Index rows, Index cols, T scale, T* gx);

}  // namespace anode::kernels

#endif  // ANODE_AUTODIFF_KERNELS_H_
