#ifndef ANODE_AUTODIFF_CONV_H_
#define ANODE_AUTODIFF_CONV_H_

// 2-D convolution on the tape (the dynamics of convolutional ANODEs): NCHW,
// square odd kernels, stride 1, zero padding. Lowered to the packed GEMM of
// gemm.h one image at a time (im2col in blocks; a 1x1 kernel without padding
// multiplies the image itself). The im2col buffers come from the tape's arena
// and are released when the op (or its backward rule) returns: a recorded
// conv keeps only its output.

#include "autodiff/tape.h"

namespace anode {

/// Cross-correlation (the deep-learning "convolution") of x with w, plus bias:
///   y[n, o, a, b] = bias[o] + sum_{c, i, j} w[o, c, i, j] x[n, c, a + i - p, b + j - p]
/// with x read as zero outside the image.
/// x [N, C, H, W], w [O, C, k, k] with k odd, bias [O] (or an invalid Var for
/// none); padding p >= 0, or -1 for "same" ((k - 1) / 2). Stride 1.
/// Result [N, O, H + 2p - k + 1, W + 2p - k + 1].
/// Derivatives, g = dL/dy:
///   d/dx    = the transposed convolution of g, i.e. the correlation of g
///             (padded by k - 1 - p) with w flipped in both spatial axes and
///             its O and C axes swapped:
///             dx[n, c, u, v] = sum_{o, i, j} w[o, c, i, j] g[n, o, u - i + p, v - j + p];
///   d/dw    = the correlation of x with g:
///             dw[o, c, i, j] = sum_{n, a, b} g[n, o, a, b] x[n, c, a + i - p, b + j - p];
///   d/dbias = the sum of g over N, H', W'.
/// (g and x read as zero outside their extent.) Results do not depend on the
/// thread count. Throws ShapeError (naming "conv2d" and the shapes) for ranks
/// other than 4, a channel mismatch, an even or non-square kernel, a wrong
/// bias, or an output size <= 0; ValueError for padding < -1 or Vars on no
/// tape or on different tapes.
template <class T>
Var<T> conv2d(Var<T> x, Var<T> w, Var<T> bias = Var<T>(), Index padding = -1);

}  // namespace anode

#endif  // ANODE_AUTODIFF_CONV_H_
