// conv2d: shape checks, forward and backward rule together. Every pass is a
// GEMM per image on its im2col matrix, built in blocks of output positions
// (none for 1x1 kernels without padding: the image is the matrix):
//   forward  y_n   = W [O, Ckk] col(x_n) [Ckk, H'W'] (+ bias rows)
//   d/dw     dW   += g_n [O, H'W'] col(x_n)^T
//   d/dx     dx_n += Wt [C, Okk] col'(g_n) [Okk, HW]: the transposed
//            convolution as a correlation (Wt: w flipped, O and C swapped;
//            col': padding k - 1 - p). No col2im scatter, and the GEMM has the
//            forward's shape (K = O k k) instead of K = O.
// Images are split over the thread pool; each GEMM runs on its caller's thread.
#include "autodiff/conv.h"

#include <algorithm>
#include <string>

#include "autodiff/gemm.h"
#include "autodiff/kernels.h"
#include "autodiff/op_kit.h"
#include "autodiff/ops.h"
#include "autodiff/thread_pool.h"

namespace anode {
namespace {

using op::TransientScratch;

// One call's sizes: input [n, c, h, w], weight [o, c, k, k], padding p,
// output [n, o, ho, wo].
struct Geometry {
  Index n, c, h, w, o, k, p, ho, wo;

  Index in_plane() const { return h * w; }
  Index out_plane() const { return ho * wo; }
  Index patch() const { return c * k * k; }  // rows of col(x)
  // col(x) would be x itself: a 1x1 convolution is a plain GEMM per image.
  bool pointwise() const { return k == 1 && p == 0; }

  static Geometry of(const Shape& x, const Shape& w, Index p) {
    return {x[0], x[1], x[2], x[3], w[0], w[2], p,
            x[2] + 2 * p - w[2] + 1, x[3] + 2 * p - w[2] + 1};
  }
};

// Columns [q0, q1) of the im2col matrix of an image x [C, H, W]: for the
// output position q = a Wo + b,
//   col[(c, i, j), q - q0] = x[c, a + i - p, b + j - p], zero outside the image;
// col is [C k k, q1 - q0]. p may be negative (the transposed convolution of a
// conv with p > k - 1 crops).
template <class T>
void im2col(const T* x, Index C, Index H, Index W, Index k, Index p, Index Ho, Index Wo, Index q0,
            Index q1, T* col) {
  const Index len = q1 - q0;
  for (Index c = 0; c < C; ++c) {
    const T* xc = x + c * H * W;
    for (Index i = 0; i < k; ++i) {
      // Output rows [a0, a1) read image rows a + i - p inside the image.
      const Index a0 = std::clamp<Index>(p - i, 0, Ho);
      const Index a1 = std::clamp<Index>(H + p - i, a0, Ho);
      for (Index j = 0; j < k; ++j, col += len) {
        // Output columns [b0, b1) read image columns b + s inside the image.
        const Index s = j - p;
        const Index b0 = std::clamp<Index>(-s, 0, Wo);
        const Index b1 = std::clamp<Index>(W - s, b0, Wo);
        if (a0 == a1 || b0 == b1) {
          std::fill(col, col + len, T(0));
          continue;
        }
        if (Wo == W) {
          // "Same" padding: output q reads image element q + off, so the valid
          // span is one contiguous copy; then zero the entries of each row
          // that came from the neighbouring row. Far fewer, longer copies than
          // row by row (a row is 28 floats on MNIST).
          const Index off = (i - p) * W + s;
          const Index lo = std::clamp(a0 * W + b0, q0, q1);
          const Index hi = std::clamp((a1 - 1) * W + b1, lo, q1);
          std::fill(col, col + (lo - q0), T(0));
          if (lo < hi) std::copy(xc + lo + off, xc + hi + off, col + (lo - q0));
          std::fill(col + (hi - q0), col + len, T(0));
          if (b0 == 0 && b1 == W) continue;
          for (Index a = lo / W; a * W < hi; ++a) {
            const Index r = a * W;
            for (Index q = std::max(r, lo); q < std::min(r + b0, hi); ++q) col[q - q0] = T(0);
            for (Index q = std::max(r + b1, lo); q < std::min(r + W, hi); ++q) col[q - q0] = T(0);
          }
          continue;
        }
        // Row by row over the output rows meeting [q0, q1).
        for (Index a = q0 / Wo; a * Wo < q1; ++a) {
          const Index r = a * Wo;
          // Columns [c0, c1) of row a lie in the block.
          const Index c0 = std::max(r, q0) - r, c1 = std::min(r + Wo, q1) - r;
          T* d = col + (r + c0 - q0);  // output column c0 of row a
          if (a < a0 || a >= a1) {
            std::fill(d, d + (c1 - c0), T(0));
            continue;
          }
          const Index v0 = std::clamp(b0, c0, c1), v1 = std::clamp(b1, v0, c1);
          const Index row = (a + i - p) * W + s;  // image index of output column b: row + b
          std::fill(d, d + (v0 - c0), T(0));
          std::copy(xc + row + v0, xc + row + v1, d + (v0 - c0));
          std::fill(d + (v1 - c0), d + (c1 - c0), T(0));
        }
      }
    }
  }
}

// Width of the im2col column blocks (a multiple of 32 positions): a block
// (rows x width) is packed by the GEMM soon after im2col writes it, while it
// is still in L2 (1 MiB here), and the scratch per thread stays bounded
// whatever the image size (a whole 3x3, 64-channel MNIST image lowered at
// once is 1.8 MB). Measured on MNIST shapes: 192 KiB blocks (64 columns) are
// too narrow for the GEMM, 384 KiB to whole images perform alike.
constexpr std::size_t kColBlockBytes = std::size_t(512) << 10;

template <class T>
Index col_block(Index rows, Index plane) {
  const Index w = static_cast<Index>(kColBlockBytes / sizeof(T)) / std::max<Index>(rows, 1);
  return std::min(plane, std::max<Index>(w / 32 * 32, 32));
}

// Runs fn(lane, group) for every group in [0, groups), spread over `lanes`
// threads: lane l takes groups l, l + lanes, ... in order, so a lane's scratch
// is never used by two threads at once. A single lane runs on the caller
// (whose GEMMs may then use the pool themselves).
template <class F>
void for_each_group(Index groups, Index lanes, const F& fn) {
  if (lanes <= 1) {
    for (Index g = 0; g < groups; ++g) fn(0, g);
    return;
  }
  parallel_for(lanes, 1, [&](Index lo, Index hi) {
    for (Index l = lo; l < hi; ++l) {
      for (Index g = l; g < groups; g += lanes) fn(l, g);
    }
  });
}

// The backward pass sums dw and dbias over images in this many fixed groups
// of consecutive images (partial sums added in group order), so the result
// does not depend on the thread count; up to this many threads share the work.
constexpr Index kMaxGroups = 16;

template <class T>
struct ConvWeightGrad;
template <class T>
Var<T> conv_input_grad(Var<T> g, Var<T> w, Index k, Index p);

template <class T>
struct Conv2d {
  struct Attrs {
    Index padding;  // resolved ("same" is stored as its value)
  };

  static Var<T> forward(Var<T> x, Var<T> w, Var<T> bias, Index padding) {
    Tape<T>& t = op::tape_of("conv2d", x, w);
    const Shape& sx = x.shape();
    const Shape& sw = w.shape();
    // Messages are built only when thrown: the op allocates nothing on the heap.
    auto shapes = [&] { return "input " + sx.str() + " and weight " + sw.str(); };
    if (sx.rank() != 4 || sw.rank() != 4) {
      throw ShapeError("conv2d: " + shapes() +
                       " must both be rank 4 (input [N, C, H, W], weight [O, C, k, k])");
    }
    if (sx[1] != sw[1]) {
      throw ShapeError("conv2d: " + shapes() + ": the input has " + std::to_string(sx[1]) +
                       " channels, the weight expects " + std::to_string(sw[1]));
    }
    if (sw[2] != sw[3]) {
      throw ShapeError("conv2d: " + shapes() + ": the kernel is not square (" +
                       std::to_string(sw[2]) + " x " + std::to_string(sw[3]) + ")");
    }
    if (sw[2] % 2 == 0) {
      throw ShapeError("conv2d: " + shapes() + ": the kernel size " + std::to_string(sw[2]) +
                       " is even (need an odd size: 1, 3, 5, ...)");
    }
    if (padding < -1) {
      throw ValueError("conv2d: padding must be >= 0, or -1 for \"same\", got " +
                       std::to_string(padding));
    }
    const Index p = padding == -1 ? (sw[2] - 1) / 2 : padding;
    const Geometry geo = Geometry::of(sx, sw, p);
    if (geo.ho <= 0 || geo.wo <= 0) {
      throw ShapeError("conv2d: " + shapes() + " with padding " + std::to_string(p) +
                       " give an empty output (" + std::to_string(geo.ho) + " x " +
                       std::to_string(geo.wo) + ")");
    }
    if (bias.valid()) {
      op::tape_of("conv2d", x, bias);
      if (bias.shape().rank() != 1 || bias.size() != geo.o) {
        throw ShapeError("conv2d: bias " + bias.shape().str() + " does not match weight " +
                         sw.str() + " (need [" + std::to_string(geo.o) + "])");
      }
    }

    auto [y, out] = t.make_output(Shape{geo.n, geo.o, geo.ho, geo.wo});
    {
      TransientScratch transient(t.arena());
      // No reduction here, so one group of consecutive images per thread.
      const Index lanes = std::min<Index>(geo.n, num_threads());
      const Index col_size =
          geo.pointwise() ? 0 : geo.patch() * col_block<T>(geo.patch(), geo.out_plane());
      T* cols = t.scratch(static_cast<std::size_t>(lanes * col_size));
      const T* xd = x.data();
      const T* wd = w.data();
      const T* bd = bias.valid() ? bias.data() : nullptr;
      T* yd = out;
      for_each_group(lanes, lanes, [&](Index lane, Index g) {
        for (Index n = g * geo.n / lanes; n < (g + 1) * geo.n / lanes; ++n) {
          forward_image(geo, xd + n * geo.c * geo.in_plane(), wd, bd, cols + lane * col_size,
                        yd + n * geo.o * geo.out_plane());
        }
      });
    }
    const Node<T> nd = op::make_node<T>("conv2d", &backward, op::rules_of<T, Conv2d>(), Attrs{p});
    if (bias.valid()) {
      t.record(y, {x, w, bias}, nd);
    } else {
      t.record(y, {x, w}, nd);
    }
    return y;
  }

  static void forward_image(const Geometry& geo, const T* x, const T* w, const T* bias, T* col,
                            T* y) {
    const Index m = geo.out_plane(), patch = geo.patch();
    T beta = 0;
    if (bias) {
      for (Index o = 0; o < geo.o; ++o) std::fill(y + o * m, y + (o + 1) * m, bias[o]);
      beta = 1;
    }
    if (geo.pointwise()) {
      gemm<T>(false, false, geo.o, m, patch, T(1), w, patch, x, m, beta, y, m);
      return;
    }
    const Index block = col_block<T>(patch, m);
    for (Index q0 = 0; q0 < m; q0 += block) {
      const Index q1 = std::min(m, q0 + block);
      im2col(x, geo.c, geo.h, geo.w, geo.k, geo.p, geo.ho, geo.wo, q0, q1, col);
      gemm<T>(false, false, geo.o, q1 - q0, patch, T(1), w, patch, col, q1 - q0, beta, y + q0, m);
    }
  }

  static void backward(Tape<T>& t, const Node<T>& nd) {
    const Geometry geo =
        Geometry::of(t.in_shape(nd, 0), t.in_shape(nd, 1), nd.template attrs<Attrs>().padding);
    // Every pass adds (per image, per group): zero-filled when fresh.
    T* gx = t.in_grad(nd, 0).zeroed();
    T* gw = t.in_grad(nd, 1).zeroed();
    T* gb = nd.in_count == 3 ? t.in_grad(nd, 2).zeroed() : nullptr;
    if (!gx && !gw && !gb) return;
    const T* x = t.in_value(nd, 0);
    const T* w = t.in_value(nd, 1);
    const T* g = t.out_adj(nd);

    TransientScratch transient(t.arena());
    const Index groups = std::min<Index>(geo.n, kMaxGroups);
    const Index lanes = std::min<Index>(groups, num_threads());
    const Index kk = geo.k * geo.k, om = geo.o * geo.out_plane(), dw_size = geo.o * geo.patch();
    // With one group, dw and dbias accumulate straight into the gradients.
    T* dw_parts = nullptr;
    T* db_parts = nullptr;
    if (groups > 1) {
      if (gw) dw_parts = t.scratch(static_cast<std::size_t>(groups * dw_size));
      if (gb) db_parts = t.scratch(static_cast<std::size_t>(groups * geo.o));
    }
    // Wt[c, (o, i, j)] = w[o, c, k-1-i, k-1-j]: the transposed convolution's weight.
    T* wt = nullptr;
    if (gx && !geo.pointwise()) {
      wt = t.scratch(static_cast<std::size_t>(dw_size));
      for (Index o = 0; o < geo.o; ++o) {
        for (Index c = 0; c < geo.c; ++c) {
          const T* src = w + (o * geo.c + c) * kk;
          T* dst = wt + (c * geo.o + o) * kk;
          for (Index r = 0; r < kk; ++r) dst[kk - 1 - r] = src[r];
        }
      }
    }
    // One buffer per lane serves col(x) for dw, then col'(g) for dx.
    Index col_size = 0;
    if (!geo.pointwise()) {
      if (gw) col_size = geo.patch() * col_block<T>(geo.patch(), geo.out_plane());
      if (gx) col_size = std::max(col_size, geo.o * kk * col_block<T>(geo.o * kk, geo.in_plane()));
    }
    T* cols = t.scratch(static_cast<std::size_t>(lanes * col_size));

    for_each_group(groups, lanes, [&](Index lane, Index grp) {
      T* col = cols + lane * col_size;
      T* dw = groups > 1 ? dw_parts + grp * dw_size : gw;
      T* db = groups > 1 ? db_parts + grp * geo.o : gb;
      const Index first = grp * geo.n / groups, last = (grp + 1) * geo.n / groups;
      for (Index n = first; n < last; ++n) {
        const T* xn = x + n * geo.c * geo.in_plane();
        const T* gn = g + n * om;
        // A group's partial sums start at its first image.
        const bool fresh = groups > 1 && n == first;
        if (gw) image_dw(geo, xn, gn, col, fresh, dw);
        if (gb) {
          for (Index o = 0; o < geo.o; ++o) {
            const T s = kernels::sum(gn + o * geo.out_plane(), geo.out_plane());
            db[o] = fresh ? s : db[o] + s;
          }
        }
        if (gx) image_dx(geo, w, wt, gn, col, gx + n * geo.c * geo.in_plane());
      }
    });
    if (groups > 1) {
      for (Index grp = 0; grp < groups; ++grp) {
        if (gw) kernels::add_to(dw_parts + grp * dw_size, gw, dw_size);
        if (gb) kernels::add_to(db_parts + grp * geo.o, gb, geo.o);
      }
    }
  }

  // Forward mode: conv2d is bilinear in (x, w), affine in the bias.
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    const Index p = nd.template attrs<Attrs>().padding;
    const Var<T> x = op::in_var(t, nd, 0), w = op::in_var(t, nd, 1);
    const Shape s = t.slot(nd.out).shape;
    Var<T> r = op::add_tangents(s, u[0].valid() ? conv2d(u[0], w, Var<T>(), p) : Var<T>(),
                                u[1].valid() ? conv2d(x, u[1], Var<T>(), p) : Var<T>());
    if (nd.in_count == 3 && u[2].valid()) {
      const Var<T> ub = reshape(u[2], Shape{1, s[1], 1, 1});
      r = r.valid() ? add(r, ub) : broadcast_to(ub, s);
    }
    return r;
  }
  // The recorded backward: dx as the transposed convolution (a conv2d of g
  // with the flipped, channel-swapped weight), dw by conv2d_weight_grad,
  // dbias as sums; all differentiable again.
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> g, GradSink<T>& sink) {
    const Index p = nd.template attrs<Attrs>().padding;
    const Var<T> x = op::in_var(t, nd, 0), w = op::in_var(t, nd, 1);
    const Index k = w.shape()[2];
    if (sink.wants(0)) sink.add(0, conv_input_grad(g, w, k, p));
    if (sink.wants(1)) sink.add(1, ConvWeightGrad<T>::forward(x, g, k, p));
    if (nd.in_count == 3 && sink.wants(2)) sink.add(2, sum(sum(sum(g, 3), 2), 0));
  }

  // dw (+)= g_n col(x_n)^T, over blocks of output positions.
  static void image_dw(const Geometry& geo, const T* x, const T* g, T* col, bool fresh, T* dw) {
    const Index m = geo.out_plane(), patch = geo.patch();
    if (geo.pointwise()) {
      gemm<T>(false, true, geo.o, patch, m, T(1), g, m, x, m, fresh ? T(0) : T(1), dw, patch);
      return;
    }
    const Index block = col_block<T>(patch, m);
    for (Index q0 = 0; q0 < m; q0 += block) {
      const Index q1 = std::min(m, q0 + block);
      im2col(x, geo.c, geo.h, geo.w, geo.k, geo.p, geo.ho, geo.wo, q0, q1, col);
      gemm<T>(false, true, geo.o, patch, q1 - q0, T(1), g + q0, m, col, q1 - q0,
              fresh && q0 == 0 ? T(0) : T(1), dw, patch);
    }
  }

  // dx_n += Wt col'(g_n) over blocks of input positions, or w^T g_n for a 1x1
  // kernel without padding.
  static void image_dx(const Geometry& geo, const T* w, const T* wt, const T* g, T* col, T* dx) {
    const Index hw = geo.in_plane();
    if (geo.pointwise()) {
      gemm<T>(true, false, geo.c, hw, geo.o, T(1), w, geo.c, g, hw, T(1), dx, hw);
      return;
    }
    const Index okk = geo.o * geo.k * geo.k;
    const Index block = col_block<T>(okk, hw);
    for (Index q0 = 0; q0 < hw; q0 += block) {
      const Index q1 = std::min(hw, q0 + block);
      im2col(g, geo.o, geo.ho, geo.wo, geo.k, geo.k - 1 - geo.p, geo.h, geo.w, q0, q1, col);
      gemm<T>(false, false, geo.c, q1 - q0, okk, T(1), wt, okk, col, q1 - q0, T(1), dx + q0, hw);
    }
  }
};

// Wt[c, o, i, j] = w[o, c, k-1-i, k-1-j]: the transposed convolution's weight
// as an op. Linear and its own adjoint (applied to [C, O, k, k] it maps back).
template <class T>
struct ConvFlip {
  static Var<T> forward(Var<T> w) {
    Tape<T>& t = op::tape_of("conv_flip", w);
    const Shape sw = w.shape();
    const Index o = sw[0], c = sw[1], kk = sw[2] * sw[3];
    auto [y, out] = t.make_output(Shape{c, o, sw[2], sw[3]});
    flip(w.data(), o, c, kk, out);
    t.record(y, {w}, op::make_node<T>("conv_flip", &backward, op::rules_of<T, ConvFlip>()));
    return y;
  }
  static void flip(const T* w, Index o, Index c, Index kk, T* out) {
    for (Index a = 0; a < o; ++a) {
      for (Index b = 0; b < c; ++b) {
        const T* src = w + (a * c + b) * kk;
        T* dst = out + (b * o + a) * kk;
        for (Index r = 0; r < kk; ++r) dst[kk - 1 - r] = src[r];
      }
    }
  }
  static void backward(Tape<T>& t, const Node<T>& nd) {
    T* gx = t.in_grad(nd, 0).zeroed();
    if (!gx) return;
    const Shape s = t.slot(nd.out).shape;  // [C, O, k, k]
    const Index n = s.numel();
    TransientScratch transient(t.arena());
    T* tmp = t.scratch(static_cast<std::size_t>(n));
    flip(t.out_adj(nd), s[0], s[1], s[2] * s[3], tmp);
    kernels::add_to(tmp, gx, n);
  }
  static Var<T> tangent(Tape<T>&, const Node<T>&, std::span<const Var<T>> u) { return forward(u[0]); }
  static void vjp(Tape<T>&, const Node<T>&, Var<T> gy, GradSink<T>& sink) {
    if (sink.wants(0)) sink.add(0, forward(gy));
  }
};

// d/dx of conv2d(x, w, p) for output adjoint g: the correlation of g padded
// by k - 1 - p with the flipped weight.
template <class T>
Var<T> conv_input_grad(Var<T> g, Var<T> w, Index k, Index p) {
  if (p > k - 1) {
    throw ValueError("conv2d: a recorded (higher-order) gradient needs padding <= k - 1, got " +
                     std::to_string(p) + " for a " + std::to_string(k) + "x" + std::to_string(k) +
                     " kernel");
  }
  return conv2d(g, ConvFlip<T>::forward(w), Var<T>(), k - 1 - p);
}

// dw[o, c, i, j] = sum_{n, a, b} g[n, o, a, b] x[n, c, a + i - p, b + j - p]:
// conv2d's weight gradient as an op (bilinear in x and g), so that it can be
// differentiated again.
template <class T>
struct ConvWeightGrad {
  struct Attrs {
    Index k, p;
  };
  static Var<T> forward(Var<T> x, Var<T> g, Index k, Index p) {
    Tape<T>& t = op::tape_of("conv2d_weight_grad", x, g);
    const Shape sx = x.shape(), sg = g.shape();
    const Geometry geo = Geometry::of(sx, Shape{sg[1], sx[1], k, k}, p);
    auto [y, out] = t.make_output(Shape{geo.o, geo.c, k, k});
    {
      TransientScratch transient(t.arena());
      T* col = geo.pointwise()
                   ? nullptr
                   : t.scratch(static_cast<std::size_t>(geo.patch() * col_block<T>(geo.patch(), geo.out_plane())));
      for (Index n = 0; n < geo.n; ++n) {
        Conv2d<T>::image_dw(geo, x.data() + n * geo.c * geo.in_plane(),
                            g.data() + n * geo.o * geo.out_plane(), col, n == 0, out);
      }
      if (geo.n == 0) std::fill(out, out + geo.o * geo.patch(), T(0));
    }
    t.record(y, {x, g},
             op::make_node<T>("conv2d_weight_grad", &backward, op::rules_of<T, ConvWeightGrad>(), Attrs{k, p}));
    return y;
  }
  // <dw(x, g), W> = <g, conv2d(x, W)> = <x, conv_input_grad(g, W)>.
  static void backward(Tape<T>& t, const Node<T>& nd) {
    // Rare (third order through a conv): done with ops on a scope.
    const auto [k, p] = nd.template attrs<Attrs>();
    const Shape sx = t.in_shape(nd, 0), sg = t.in_shape(nd, 1), sw = t.slot(nd.out).shape;
    op::Grad<T> gx = t.in_grad(nd, 0), gg = t.in_grad(nd, 1);
    Tensor<T> dx, dg;
    {
      typename Tape<T>::Scope scope(t);
      typename Tape<T>::NoGradGuard no_grad(t);
      const Var<T> x = t.constant(TensorView<const T>{t.in_value(nd, 0), sx});
      const Var<T> g = t.constant(TensorView<const T>{t.in_value(nd, 1), sg});
      const Var<T> wbar = t.constant(TensorView<const T>{t.out_adj(nd), sw});
      if (gx) dx = conv_input_grad(g, wbar, k, p).to_tensor();
      if (gg) dg = conv2d(x, wbar, Var<T>(), p).to_tensor();
    }
    if (gx) op::accumulate(gx, sx.numel(), dx.data(), sx.numel());
    if (gg) op::accumulate(gg, sg.numel(), dg.data(), sg.numel());
  }
  static Var<T> tangent(Tape<T>& t, const Node<T>& nd, std::span<const Var<T>> u) {
    const auto [k, p] = nd.template attrs<Attrs>();
    const Var<T> x = op::in_var(t, nd, 0), g = op::in_var(t, nd, 1);
    return op::add_tangents(t.slot(nd.out).shape, u[0].valid() ? forward(u[0], g, k, p) : Var<T>(),
                            u[1].valid() ? forward(x, u[1], k, p) : Var<T>());
  }
  static void vjp(Tape<T>& t, const Node<T>& nd, Var<T> wbar, GradSink<T>& sink) {
    const auto [k, p] = nd.template attrs<Attrs>();
    const Var<T> x = op::in_var(t, nd, 0), g = op::in_var(t, nd, 1);
    if (sink.wants(0)) sink.add(0, conv_input_grad(g, wbar, k, p));
    if (sink.wants(1)) sink.add(1, conv2d(x, wbar, Var<T>(), p));
  }
};

}  // namespace

template <class T>
Var<T> conv2d(Var<T> x, Var<T> w, Var<T> bias, Index padding) {
  return Conv2d<T>::forward(x, w, bias, padding);
}

template Var<float> conv2d(Var<float>, Var<float>, Var<float>, Index);
template Var<double> conv2d(Var<double>, Var<double>, Var<double>, Index);

}  // namespace anode
