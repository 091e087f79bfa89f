#ifndef ANODE_AUTODIFF_GEMM_H_
#define ANODE_AUTODIFF_GEMM_H_

// General matrix multiply, row-major, BLAS semantics: a packed, cache-blocked
// GEMM (BLIS/GotoBLAS loop nest) with an xsimd micro-kernel; see gemm.cc.

#include "autodiff/tensor.h"

namespace anode {

/// C = alpha * op(A) * op(B) + beta * C, all row-major.
/// op(A) is m x k (A is m x k, or k x m when trans_a); op(B) is k x n (B is
/// k x n, or n x k when trans_b). lda, ldb, ldc are row strides in elements.
/// beta == 0 overwrites C without reading it (NaN in C does not propagate).
/// Large products are split over the thread pool (thread_pool.h) by rows or
/// columns of C; results are bitwise independent of the thread count (K is
/// never split across threads). alpha == 0 or k == 0 only scales C by beta.
/// Steady-state calls do not allocate: packing buffers are per-thread and
/// only grow. Not for aliasing C with A or B.
template <class T>
void gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, T alpha, const T* a, Index lda,
          const T* b, Index ldb, T beta, T* c, Index ldc);

/// C = alpha * op(A) * op(B) + bias, the n values of bias added to every row
/// of C (C is only written). Each element is rounded as gemm() with beta = 1
/// rounds it after C's rows were set to the bias, without the copy (a
/// fused layer bias). Otherwise as gemm().
template <class T>
void gemm_bias(bool trans_a, bool trans_b, Index m, Index n, Index k, T alpha, const T* a,
               Index lda, const T* b, Index ldb, const T* bias, T* c, Index ldc);

}  // namespace anode

#endif  // ANODE_AUTODIFF_GEMM_H_
