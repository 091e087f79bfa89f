// Scalar reference implementation (to be replaced by xsimd kernels).
#include "autodiff/kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace anode::kernels {

#define ANODE_UNARY(name, expr)                           \
  template <class T>                                      \
  void name(const T* x, T* y, Index n) {                  \
    for (Index i = 0; i < n; ++i) {                       \
      T v = x[i];                                         \
      y[i] = (expr);                                      \
    }                                                     \
  }
ANODE_UNARY(tanh, std::tanh(v))
ANODE_UNARY(sigmoid, T(1) / (T(1) + std::exp(-v)))
ANODE_UNARY(relu, v > T(0) ? v : T(0))
ANODE_UNARY(softplus, std::max(v, T(0)) + std::log1p(std::exp(-std::abs(v))))
ANODE_UNARY(exp, std::exp(v))
ANODE_UNARY(log, std::log(v))
ANODE_UNARY(sqrt, std::sqrt(v))
ANODE_UNARY(square, v * v)
#undef ANODE_UNARY

template <class T>
void scale(const T* x, T c, T* y, Index n) {
  for (Index i = 0; i < n; ++i) y[i] = c * x[i];
}

#define ANODE_UNARY_BACKWARD(name, expr)                        \
  template <class T>                                            \
  void name(const T* u, const T* gy, T* gx, Index n) {          \
    for (Index i = 0; i < n; ++i) {                             \
      T v = u[i];                                               \
      gx[i] += gy[i] * (expr);                                  \
    }                                                           \
  }
ANODE_UNARY_BACKWARD(tanh_backward, T(1) - v * v)
ANODE_UNARY_BACKWARD(sigmoid_backward, v * (T(1) - v))
ANODE_UNARY_BACKWARD(relu_backward, v > T(0) ? T(1) : T(0))
ANODE_UNARY_BACKWARD(softplus_backward, T(1) / (T(1) + std::exp(-v)))
ANODE_UNARY_BACKWARD(exp_backward, v)
ANODE_UNARY_BACKWARD(log_backward, T(1) / v)
ANODE_UNARY_BACKWARD(sqrt_backward, T(0.5) / v)
ANODE_UNARY_BACKWARD(square_backward, T(2) * v)
#undef ANODE_UNARY_BACKWARD

#define ANODE_BINARY(name, op)                                                   \
  template <class T>                                                             \
  void name(const T* a, Index na, const T* b, Index nb, T* y, Index n) {         \
    for (Index i = 0; i < n; ++i) y[i] = a[i % na] op b[i % nb];                 \
  }
ANODE_BINARY(add, +)
ANODE_BINARY(sub, -)
ANODE_BINARY(mul, *)
ANODE_BINARY(div, /)
#undef ANODE_BINARY

template <class T>
void add_to(const T* x, T* y, Index n) {
  for (Index i = 0; i < n; ++i) y[i] += x[i];
}

template <class T>
void axpy(T alpha, const T* x, T* y, Index n) {
  for (Index i = 0; i < n; ++i) y[i] += alpha * x[i];
}

template <class T>
void lincomb(const T* const* x, const T* c, Index k, T* y, Index n) {
  for (Index i = 0; i < n; ++i) {
    T s = x[0][i] * c[0];
    for (Index j = 1; j < k; ++j) s += x[j][i] * c[j];
    y[i] = s;
  }
}

template <class T>
void reduce_rows_add(const T* x, Index n, T* g, Index m) {
  for (Index i = 0; i < n; ++i) g[i % m] += x[i];
}

template <class T>
void broadcast_add(const T* gy, Index m, T* gx, Index n) {
  for (Index i = 0; i < n; ++i) gx[i] += gy[i % m];
}

template <class T>
void mul_reduce_add(const T* a, const T* b, Index nb, Index n, T* out, Index m) {
  for (Index i = 0; i < n; ++i) out[i % m] += a[i] * b[i % nb];
}

template <class T>
T sum(const T* x, Index n) {
  T s = 0;
  for (Index i = 0; i < n; ++i) s += x[i];
  return s;
}

template <class T>
T sum_squares(const T* x, Index n) {
  T s = 0;
  for (Index i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}

template <class T>
T squared_distance(const T* a, const T* b, Index n) {
  T s = 0;
  for (Index i = 0; i < n; ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

template <class T>
T max_abs(const T* x, Index n) {
  T m = 0;
  for (Index i = 0; i < n; ++i) m = std::max(m, std::abs(x[i]));
  return m;
}

template <class T>
T dot(const T* a, const T* b, Index n) {
  T s = 0;
  for (Index i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

template <class T>
void sum_axis(const T* x, Index outer, Index len, Index inner, T* y) {
  for (Index o = 0; o < outer; ++o)
    for (Index i = 0; i < inner; ++i) {
      T s = 0;
      for (Index a = 0; a < len; ++a) s += x[(o * len + a) * inner + i];
      y[o * inner + i] = s;
    }
}

template <class T>
void sum_axis_backward(const T* gy, Index outer, Index len, Index inner, T* gx) {
  for (Index o = 0; o < outer; ++o)
    for (Index a = 0; a < len; ++a)
      for (Index i = 0; i < inner; ++i) gx[(o * len + a) * inner + i] += gy[o * inner + i];
}

template <class T>
bool all_finite(const T* x, Index n) {
  for (Index i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

template <class T>
void softmax_xent(const T* logits, const int* labels, Index rows, Index cols, T* p, T* loss) {
  for (Index r = 0; r < rows; ++r) {
    const T* z = logits + r * cols;
    T* pr = p + r * cols;
    T m = *std::max_element(z, z + cols);
    T s = 0;
    for (Index j = 0; j < cols; ++j) s += (pr[j] = std::exp(z[j] - m));
    for (Index j = 0; j < cols; ++j) pr[j] /= s;
    loss[r] = std::log(s) + m - z[labels[r]];
  }
}

template <class T>
void softmax_xent_backward(const T* p, const int* labels, Index rows, Index cols, T scale, T* gx) {
  for (Index r = 0; r < rows; ++r) {
    for (Index j = 0; j < cols; ++j) gx[r * cols + j] += scale * p[r * cols + j];
    gx[r * cols + labels[r]] -= scale;
  }
}

#define ANODE_INSTANTIATE(T)                                                                    \
  template void tanh<T>(const T*, T*, Index);                                                   \
  template void sigmoid<T>(const T*, T*, Index);                                                \
  template void relu<T>(const T*, T*, Index);                                                   \
  template void softplus<T>(const T*, T*, Index);                                               \
  template void exp<T>(const T*, T*, Index);                                                    \
  template void log<T>(const T*, T*, Index);                                                    \
  template void sqrt<T>(const T*, T*, Index);                                                   \
  template void square<T>(const T*, T*, Index);                                                 \
  template void scale<T>(const T*, T, T*, Index);                                               \
  template void tanh_backward<T>(const T*, const T*, T*, Index);                                \
  template void sigmoid_backward<T>(const T*, const T*, T*, Index);                             \
  template void relu_backward<T>(const T*, const T*, T*, Index);                                \
  template void softplus_backward<T>(const T*, const T*, T*, Index);                            \
  template void exp_backward<T>(const T*, const T*, T*, Index);                                 \
  template void log_backward<T>(const T*, const T*, T*, Index);                                 \
  template void sqrt_backward<T>(const T*, const T*, T*, Index);                                \
  template void square_backward<T>(const T*, const T*, T*, Index);                              \
  template void add<T>(const T*, Index, const T*, Index, T*, Index);                            \
  template void sub<T>(const T*, Index, const T*, Index, T*, Index);                            \
  template void mul<T>(const T*, Index, const T*, Index, T*, Index);                            \
  template void div<T>(const T*, Index, const T*, Index, T*, Index);                            \
  template void add_to<T>(const T*, T*, Index);                                                 \
  template void axpy<T>(T, const T*, T*, Index);                                                \
  template void lincomb<T>(const T* const*, const T*, Index, T*, Index);                        \
  template void reduce_rows_add<T>(const T*, Index, T*, Index);                                 \
  template void broadcast_add<T>(const T*, Index, T*, Index);                                   \
  template void mul_reduce_add<T>(const T*, const T*, Index, Index, T*, Index);                 \
  template T sum<T>(const T*, Index);                                                           \
  template T sum_squares<T>(const T*, Index);                                                   \
  template T squared_distance<T>(const T*, const T*, Index);                                    \
  template T max_abs<T>(const T*, Index);                                                       \
  template T dot<T>(const T*, const T*, Index);                                                 \
  template void sum_axis<T>(const T*, Index, Index, Index, T*);                                 \
  template void sum_axis_backward<T>(const T*, Index, Index, Index, T*);                        \
  template bool all_finite<T>(const T*, Index);                                                 \
  template void softmax_xent<T>(const T*, const int*, Index, Index, T*, T*);                    \
  template void softmax_xent_backward<T>(const T*, const int*, Index, Index, T, T*);
ANODE_INSTANTIATE(float)
ANODE_INSTANTIATE(double)
#undef ANODE_INSTANTIATE

}  // namespace anode::kernels
