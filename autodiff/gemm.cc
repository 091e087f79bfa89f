// Packed, cache-blocked GEMM in the BLIS/GotoBLAS style with an xsimd
// micro-kernel. Row-major throughout; vectors run along n (along C's rows).
//
//   for each K block (kc <= KC, a function of k only):
//     pack A's rows into MR-row slivers (or read A in place)
//     for each block of NB columns:
//       pack B into NR-column slivers (or read B in place)
//       for each A sliver (stays in L1):
//         for each B sliver (streams from L2): MR x NR micro-kernel
//
// Every C element is computed the same way whatever the tiling, the packing
// or the thread split: one fused multiply-add per k in increasing order into
// a register, then c = alpha * acc (first K block, beta == 0),
// c = fma(alpha, acc, bias[j]) (first K block of gemm_bias) or
// c = fma(alpha, acc, beta * c). Threads split M or N, never K, so results
// are bitwise independent of the thread count.
//
// Small operands are read in place: B of at most 32 KiB per block is not
// packed, its ragged last vector loaded under a mask (AVX-512). Narrow
// products (n <= NR, k <= KC) skip the blocking loops (gemm_narrow).
#include "autodiff/gemm.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

// GCC 12 flags the intrinsics' own `__m512 __Y = __Y` (_mm512_undefined_ps)
// as (maybe-)uninitialized once the transposes below inline them; the state
// that matters is the one in force where the intrinsics header is read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <xsimd/xsimd.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "autodiff/thread_pool.h"

namespace anode {
namespace {

template <class T>
using Vec = xsimd::batch<T>;

template <class T>
struct Tile {
  static constexpr int kW = static_cast<int>(Vec<T>::size);
  // Two vectors of C columns per micro-tile; MR rows so that the MR x 2
  // accumulators and 2 B vectors nearly fill the register file (26 of 32
  // with AVX-512, 14 of 16 otherwise) without spilling.
  static constexpr int kNV = 2;
  static constexpr int kNR = kNV * kW;
  static constexpr int kMR = sizeof(Vec<T>) >= 64 ? 12 : 6;
  // K block: an MR x KC A sliver (18 KiB) stays in L1 while B streams past.
  static constexpr Index kKC = 384 * 4 / static_cast<Index>(sizeof(T));
  // N block: a KC x NB packed B block (768 KiB) stays in L2.
  static constexpr Index kNB = 512;
  // M block: bounds the packed A block (MC x KC, 1.5 MiB, from L3).
  static constexpr Index kMC = 84 * kMR;
};

// ---- Partial vectors and transposes ---------------------------------------
//
// xsimd 8.1 has neither masked loads/stores nor cross-register shuffles, so
// the two places that need them (ragged tile edges and transposing packs)
// use AVX-512 intrinsics when the batch is a 512-bit register and fall back
// to scalar loops otherwise.

#if XSIMD_WITH_AVX512F
template <class T>
constexpr bool kAvx512 = sizeof(Vec<T>) == 64;
#else
template <class T>
constexpr bool kAvx512 = false;
#endif

// The first n (0 <= n <= W) lanes of p; the other lanes are zero and their
// memory is not touched.
template <class T>
Vec<T> load_n(const T* p, Index n) {
#if XSIMD_WITH_AVX512F
  if constexpr (kAvx512<T>) {
    const auto mask = static_cast<unsigned>((std::uint64_t(1) << n) - 1);
    if constexpr (std::is_same_v<T, float>)
      return _mm512_maskz_loadu_ps(static_cast<__mmask16>(mask), p);
    else
      return _mm512_maskz_loadu_pd(static_cast<__mmask8>(mask), p);
  }
#endif
  alignas(64) T tmp[Vec<T>::size] = {};
  for (Index j = 0; j < n; ++j) tmp[j] = p[j];
  return Vec<T>::load_aligned(tmp);
}

// Stores the first n (0 <= n <= W) lanes of v to p.
template <class T>
void store_n(T* p, const Vec<T>& v, Index n) {
#if XSIMD_WITH_AVX512F
  if constexpr (kAvx512<T>) {
    const auto mask = static_cast<unsigned>((std::uint64_t(1) << n) - 1);
    if constexpr (std::is_same_v<T, float>)
      _mm512_mask_storeu_ps(p, static_cast<__mmask16>(mask), v);
    else
      _mm512_mask_storeu_pd(p, static_cast<__mmask8>(mask), v);
    return;
  }
#endif
  alignas(64) T tmp[Vec<T>::size];
  v.store_aligned(tmp);
  for (Index j = 0; j < n; ++j) p[j] = tmp[j];
}

// The first n (1 <= n <= W) lanes of p, a plain load when n == W.
template <class T>
Vec<T> load_part(const T* p, Index n) {
  return n == Vec<T>::size ? Vec<T>::load_unaligned(p) : load_n(p, n);
}

// A mask of the first n (0 <= n <= W) lanes for load_masked.
template <class T>
unsigned lane_mask(Index n) {
  return static_cast<unsigned>((std::uint64_t(1) << n) - 1);
}

// The lanes of p under mask (zero elsewhere; masked-off memory is not
// touched) with AVX-512, where a masked load costs what a plain one does;
// otherwise a plain load (callers then never need a partial mask).
template <class T>
Vec<T> load_masked(const T* p, [[maybe_unused]] unsigned mask) {
#if XSIMD_WITH_AVX512F
  if constexpr (kAvx512<T>) {
    if constexpr (std::is_same_v<T, float>)
      return _mm512_maskz_loadu_ps(static_cast<__mmask16>(mask), p);
    else
      return _mm512_maskz_loadu_pd(static_cast<__mmask8>(mask), p);
  }
#endif
  return Vec<T>::load_unaligned(p);
}

#if XSIMD_WITH_AVX512F
// In-register W x W transpose: r[i] lane j becomes r[j] lane i.
inline void transpose(__m512 (&r)[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4g + q]: rows 4g..4g+3, column q (mod 4) of every 128-bit lane.
  for (int g = 0; g < 4; ++g) {
    const __m512d lo = _mm512_castps_pd(t[4 * g]), hi = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d lo2 = _mm512_castps_pd(t[4 * g + 2]), hi2 = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, lo2));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, lo2));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi, hi2));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi, hi2));
  }
  for (int q = 0; q < 4; ++q) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x88);
    const __m512 v1 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xdd);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x88);
    const __m512 v3 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xdd);
    r[q] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    r[q + 8] = _mm512_shuffle_f32x4(v0, v2, 0xdd);
    r[q + 4] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    r[q + 12] = _mm512_shuffle_f32x4(v1, v3, 0xdd);
  }
}

inline void transpose(__m512d (&r)[8]) {
  __m512d t[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
  }
  for (int q = 0; q < 2; ++q) {
    const __m512d u0 = _mm512_shuffle_f64x2(t[q], t[2 + q], 0x88);
    const __m512d u1 = _mm512_shuffle_f64x2(t[q], t[2 + q], 0xdd);
    const __m512d u2 = _mm512_shuffle_f64x2(t[4 + q], t[6 + q], 0x88);
    const __m512d u3 = _mm512_shuffle_f64x2(t[4 + q], t[6 + q], 0xdd);
    r[q] = _mm512_shuffle_f64x2(u0, u2, 0x88);
    r[q + 4] = _mm512_shuffle_f64x2(u0, u2, 0xdd);
    r[q + 2] = _mm512_shuffle_f64x2(u1, u3, 0x88);
    r[q + 6] = _mm512_shuffle_f64x2(u1, u3, 0xdd);
  }
}
#endif

// ---- Micro-kernel ----------------------------------------------------------
//
// C[0:R, 0:cols] = alpha * A[0:R, 0:kc] B[0:kc, 0:cols] (+ beta * C, or + bias).
// A(i, p) is a[i * sa + p] when kRowA (A read in place, not transposed),
// else a[p * sa + i] (packed sliver, sa = MR, or transposed A in place).
// B(p, j) is b[p * sb + j]. (NV - 1) * W < cols <= NV * W. Unless
// masked_b, NV * W columns must be readable (packed slivers are
// zero-padded); with masked_b (AVX-512 only) the last vector of each B row
// is loaded under a mask, so B can be read in place whatever its width.
// bias, if not null, replaces beta * C: c = fma(alpha, acc, bias[j]).

template <class T>
struct Epilogue {
  T alpha, beta;
  const T* bias;  // cols values, or null
};

template <class T, int R, int NV, bool kRowA>
void micro_kernel(Index kc, const T* a, Index sa, const T* b, Index sb, bool masked_b, T* c,
                  Index ldc, Index cols, Epilogue<T> ep) {
  using V = Vec<T>;
  constexpr int W = Tile<T>::kW;
  const Index last = cols - (NV - 1) * W;  // lanes of the last vector, 1..W
  [[maybe_unused]] const auto mask = lane_mask<T>(masked_b ? last : W);
  V acc[R][NV];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = V(T(0));

  // Why: one B row (NV vectors) is reused by R broadcast A values; the
  // R x NV independent FMA chains hide the FMA latency (4 cycles x 2 pipes).
  for (Index p = 0; p < kc; ++p) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v) bv[v] = V::load_unaligned(b + p * sb + v * W);
    bv[NV - 1] = load_masked(b + p * sb + (NV - 1) * W, mask);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      V av(kRowA ? a[i * sa + p] : a[p * sa + i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = xsimd::fma(av, bv[v], acc[i][v]);
    }
  }

  // c = alpha * acc, fma(alpha, acc, beta * c) or fma(alpha, acc, bias): the
  // same rounding in every path (full, partial, any tile) keeps results
  // tiling-independent, and the bias form equals copying the bias into C
  // and accumulating with beta = 1.
  const V va(ep.alpha);
  if (ep.bias != nullptr) {
    V bias[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v) bias[v] = V::load_unaligned(ep.bias + v * W);
    bias[NV - 1] = load_part(ep.bias + (NV - 1) * W, last);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = xsimd::fma(va, acc[i][v], bias[v]);
  } else if (ep.beta == T(0)) {
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = va * acc[i][v];
  } else {
    // Every row of C is read before any is written: a row that starts
    // inside the 64 bytes just stored under a mask (ldc < W) cannot be
    // forwarded from the store and would wait for it to retire (~20 cycles
    // per row, most of the time of a 100 x 10 product).
    const V vb(ep.beta);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const T* ci = c + i * ldc;
#pragma GCC unroll 4
      for (int v = 0; v < NV - 1; ++v)
        acc[i][v] = xsimd::fma(va, acc[i][v], vb * V::load_unaligned(ci + v * W));
      acc[i][NV - 1] = xsimd::fma(va, acc[i][NV - 1], vb * load_part(ci + (NV - 1) * W, last));
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    T* ci = c + i * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v) acc[i][v].store_unaligned(ci + v * W);
    if (last == W)
      acc[i][NV - 1].store_unaligned(ci + (NV - 1) * W);
    else
      store_n(ci + (NV - 1) * W, acc[i][NV - 1], last);
  }
}

template <class T>
using KernelFn = void (*)(Index, const T*, Index, const T*, Index, bool, T*, Index, Index,
                          Epilogue<T>);

template <class T, bool kRowA, int NV, int... Rs>
constexpr std::array<KernelFn<T>, sizeof...(Rs)> kernel_row(std::integer_sequence<int, Rs...>) {
  return {&micro_kernel<T, Rs + 1, NV, kRowA>...};
}

template <class T, bool kRowA, int... NVs>
constexpr auto kernel_table(std::integer_sequence<int, NVs...>) {
  using Row = std::array<KernelFn<T>, Tile<T>::kMR>;
  return std::array<Row, sizeof...(NVs)>{
      kernel_row<T, kRowA, NVs + 1>(std::make_integer_sequence<int, Tile<T>::kMR>{})...};
}

// kernels<T, kRowA>[nv - 1][rows - 1]
template <class T, bool kRowA>
constexpr auto kKernels = kernel_table<T, kRowA>(std::make_integer_sequence<int, Tile<T>::kNV>{});

// ---- Packing ---------------------------------------------------------------
//
// A panel of `width` (<= WP) lines by kc: dst[p * WP + x] = src(p, x), zero for
// width <= x < WP.

// src(p, x) = src[p * ld + x]: a row copy per p.
template <class T, int WP>
void pack_rows(const T* src, Index ld, Index width, Index kc, T* dst) {
  using V = Vec<T>;
  constexpr int W = Tile<T>::kW;
  for (Index p = 0; p < kc; ++p) {
    const T* s = src + p * ld;
    T* d = dst + p * WP;
    Index x = 0;
    for (; x + W <= width; x += W) V::load_unaligned(s + x).store_unaligned(d + x);
    // The ragged end, zero-padded up to WP.
    for (; x < WP; x += W) {
      const Index n = std::clamp<Index>(width - x, 0, W);
      store_n(d + x, load_n(s + x, n), std::min<Index>(W, WP - x));
    }
  }
}

// src(p, x) = src[x * ld + p]: a transpose, in W x W register blocks when
// AVX-512 is available, else in blocks of 8 values of k per line so that
// reads stay within a cache line while writes fill whole dst lines.
template <class T, int WP>
void pack_cols(const T* src, Index ld, Index width, Index kc, T* dst) {
#if XSIMD_WITH_AVX512F
  if constexpr (kAvx512<T>) {
    constexpr int W = Tile<T>::kW;
    using Reg = typename Vec<T>::register_type;
    for (Index p = 0; p < kc; p += W) {
      const Index np = std::min<Index>(W, kc - p);
      for (Index x0 = 0; x0 < WP; x0 += W) {
        Reg r[W];
        for (Index x = 0; x < W; ++x)
          r[x] = x0 + x < width ? Reg(load_n(src + (x0 + x) * ld + p, np)) : Reg(Vec<T>(T(0)));
        transpose(r);
        const Index nx = std::min<Index>(W, WP - x0);
        for (Index q = 0; q < np; ++q) store_n(dst + (p + q) * WP + x0, Vec<T>(r[q]), nx);
      }
    }
    return;
  }
#endif
  constexpr Index kStep = 8;
  for (Index p = 0; p < kc; p += kStep) {
    const Index np = std::min(kStep, kc - p);
    for (Index x = 0; x < WP; ++x)
      for (Index q = 0; q < np; ++q)
        dst[(p + q) * WP + x] = x < width ? src[x * ld + p + q] : T(0);
  }
}

// ---- Scratch ---------------------------------------------------------------

// A per-thread, 64-byte aligned buffer that only grows: steady-state calls
// never touch the heap. Every GEMM call gets both of its thread's buffers
// (size 0 if unused), and the first get() allocates at least 64 KiB, more
// than any narrow product (gemm_narrow) packs: which pool thread runs which
// of the products of a parallel region (conv2d's per-image GEMMs) changes
// from call to call, so a thread's buffers should exist, large enough,
// once it has run any product at all, not only once it has met the largest.
template <class T>
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { aligned_free(data_); }

  T* get(Index n) {
    if (n > capacity_ || data_ == nullptr) {
      constexpr Index kMinElems = Index(64 * 1024) / Index(sizeof(T));
      aligned_free(data_);
      data_ = nullptr;  // stays consistent if the allocation throws
      capacity_ = 0;
      const Index cap = std::max(n, kMinElems);
      data_ = static_cast<T*>(aligned_allocate(sizeof(T) * static_cast<std::size_t>(cap)));
      capacity_ = cap;
    }
    return data_;
  }

 private:
  T* data_ = nullptr;
  Index capacity_ = 0;
};

template <class T>
struct Buffers {
  Scratch<T> a, b;
};

template <class T>
Buffers<T>& buffers() {
  thread_local Buffers<T> bufs;
  return bufs;
}

// ---- Driver ----------------------------------------------------------------

template <class T>
struct Problem {
  bool trans_a, trans_b;
  Index m, n, k;
  T alpha;
  const T* a;
  Index lda;
  const T* b;
  Index ldb;
  T beta;
  const T* bias;  // n values added to every row of C instead of beta * C, or null
  T* c;
  Index ldc;
};

// K blocks depend on k only (never on the thread split).
inline Index k_block(Index k, Index kc_max) {
  Index blocks = (k + kc_max - 1) / kc_max;
  return (k + blocks - 1) / blocks;
}

// Packing heuristics. They only move data; arithmetic is unaffected.
// Reuse of an A sliver is the number of B slivers it meets and vice versa;
// packing costs about one pass over the operand, so it pays once reused a few times.
constexpr Index kPackAMinReuse = 4;
constexpr Index kPackBMinReuse = 3;
constexpr Index kDirectBMaxBytes = 32 * 1024;

// C[i0:i1, j0:j1] of the problem, serially; at most Tile::kMC rows.
template <class T>
void gemm_panel(const Problem<T>& pr, Index i0, Index i1, Index j0, Index j1) {
  using TL = Tile<T>;
  constexpr int MR = TL::kMR, NR = TL::kNR, W = TL::kW;
  const Index rows = i1 - i0, cols = j1 - j0;
  const Index kc_max = k_block(pr.k, TL::kKC);
  const Index nb_max = std::min<Index>(cols, TL::kNB);
  // Rows are dealt evenly over the A slivers (64 rows: 11,11,11,11,10,10
  // rather than 12 x 5 + 4): a thin sliver has too few FMA chains to cover
  // the FMA latency.
  const Index a_slivers = (rows + MR - 1) / MR;
  const Index short_h = a_slivers == 0 ? 0 : rows / a_slivers, tall = rows - short_h * a_slivers;
  auto sliver = [&](Index s) {  // (first row, height) of sliver s
    return std::pair<Index, Index>{i0 + s * short_h + std::min(s, tall), short_h + (s < tall)};
  };

  const bool pack_a = (nb_max + NR - 1) / NR >= kPackAMinReuse;
  // A B block that fits in L1 is read in place however often it is reused,
  // unless its row stride is a multiple of 1 KiB (rows would pile up in a
  // few L1 sets).
  const bool b_fits_l1 = kc_max * nb_max * Index(sizeof(T)) <= kDirectBMaxBytes &&
                         pr.ldb * Index(sizeof(T)) % 1024 != 0;
  const bool pack_b = pr.trans_b || (a_slivers >= kPackBMinReuse && !b_fits_l1);
  Buffers<T>& bufs = buffers<T>();
  T* abuf = bufs.a.get(pack_a ? a_slivers * MR * kc_max : 0);
  const Index b_slivers_max = (nb_max + NR - 1) / NR;
  // Without AVX-512 (no masked loads), in-place B still packs a ragged last
  // sliver (its last vector would read past the row).
  T* bbuf = bufs.b.get(pack_b || !kAvx512<T> ? (pack_b ? b_slivers_max : 1) * NR * kc_max : 0);

  for (Index p0 = 0; p0 < pr.k; p0 += kc_max) {
    const Index kc = std::min(kc_max, pr.k - p0);
    // Later K blocks accumulate onto what the first one stored.
    const T beta = p0 == 0 ? pr.beta : T(1);
    const T* bias = p0 == 0 ? pr.bias : nullptr;

    if (pack_a) {
      for (Index s = 0; s < a_slivers; ++s) {
        const auto [i, h] = sliver(s);
        T* d = abuf + s * MR * kc;
        if (pr.trans_a)
          pack_rows<T, MR>(pr.a + p0 * pr.lda + i, pr.lda, h, kc, d);
        else
          pack_cols<T, MR>(pr.a + i * pr.lda + p0, pr.lda, h, kc, d);
      }
    }

    for (Index jb = j0; jb < j1; jb += nb_max) {
      const Index nb = std::min(nb_max, j1 - jb);
      const Index b_slivers = (nb + NR - 1) / NR;
      if (pack_b) {
        for (Index t = 0; t < b_slivers; ++t) {
          const Index j = jb + t * NR, w = std::min<Index>(NR, jb + nb - j);
          T* d = bbuf + t * NR * kc;
          if (pr.trans_b)
            pack_cols<T, NR>(pr.b + j * pr.ldb + p0, pr.ldb, w, kc, d);
          else
            pack_rows<T, NR>(pr.b + p0 * pr.ldb + j, pr.ldb, w, kc, d);
        }
      } else if (!kAvx512<T> && nb % W != 0) {
        const Index j = jb + (b_slivers - 1) * NR;
        pack_rows<T, NR>(pr.b + p0 * pr.ldb + j, pr.ldb, jb + nb - j, kc, bbuf);
      }

      for (Index s = 0; s < a_slivers; ++s) {
        const auto [i, h] = sliver(s);
        for (Index t = 0; t < b_slivers; ++t) {
          const Index j = jb + t * NR, w = std::min<Index>(NR, jb + nb - j);
          const int nv = static_cast<int>((w + W - 1) / W);
          const T* bp;
          Index sb;
          bool masked_b = false;
          if (pack_b) {
            bp = bbuf + t * NR * kc;
            sb = NR;
          } else if (!kAvx512<T> && w % W != 0) {
            bp = bbuf;
            sb = NR;
          } else {
            // In place; a ragged last vector is read under a mask.
            bp = pr.b + p0 * pr.ldb + j;
            sb = pr.ldb;
            masked_b = w % W != 0;
          }
          T* cp = pr.c + i * pr.ldc + j;
          const Epilogue<T> ep{pr.alpha, beta, bias != nullptr ? bias + j : nullptr};
          if (pack_a) {
            kKernels<T, false>[nv - 1][h - 1](kc, abuf + s * MR * kc, MR, bp, sb, masked_b, cp,
                                               pr.ldc, w, ep);
          } else if (pr.trans_a) {
            kKernels<T, false>[nv - 1][h - 1](kc, pr.a + p0 * pr.lda + i, pr.lda, bp, sb,
                                               masked_b, cp, pr.ldc, w, ep);
          } else {
            kKernels<T, true>[nv - 1][h - 1](kc, pr.a + i * pr.lda + p0, pr.lda, bp, sb,
                                              masked_b, cp, pr.ldc, w, ep);
          }
        }
      }
    }
  }
}

// C[i0:i1, :] of a narrow problem (n <= NR, k <= KC: one B sliver, one K
// block), serially: gemm_panel's work without its blocking, for the layers
// of an ODE's dynamics (100 x 10 x 30), where that bookkeeping cost 10-20%
// of each product. A is read in place (it meets one B sliver);
// the same kernels and epilogue, so the same bits as gemm_panel.
template <class T>
void gemm_narrow(const Problem<T>& pr, Index i0, Index i1) {
  using TL = Tile<T>;
  constexpr int MR = TL::kMR, NR = TL::kNR, W = TL::kW;
  const Index n = pr.n, k = pr.k, rows = i1 - i0;
  const Index slivers = (rows + MR - 1) / MR;
  const bool b_fits_l1 =
      k * n * Index(sizeof(T)) <= kDirectBMaxBytes && pr.ldb * Index(sizeof(T)) % 1024 != 0;
  const bool pack_b = pr.trans_b || (slivers >= kPackBMinReuse && !b_fits_l1) ||
                      (!kAvx512<T> && n % W != 0);
  Buffers<T>& bufs = buffers<T>();
  bufs.a.get(0);
  T* buf = bufs.b.get(pack_b ? NR * k : 0);
  const T* b = pr.b;
  Index sb = pr.ldb;
  if (pack_b) {
    if (pr.trans_b)
      pack_cols<T, NR>(pr.b, pr.ldb, n, k, buf);
    else
      pack_rows<T, NR>(pr.b, pr.ldb, n, k, buf);
    b = buf;
    sb = NR;
  }
  const bool masked_b = !pack_b && n % W != 0;
  const Epilogue<T> ep{pr.alpha, pr.beta, pr.bias};
  const int nv = static_cast<int>((n + W - 1) / W);
  const auto& kernels = pr.trans_a ? kKernels<T, false>[nv - 1] : kKernels<T, true>[nv - 1];
  // Rows dealt evenly over the slivers, as in gemm_panel.
  const Index short_h = rows / slivers, tall = rows - short_h * slivers;
  for (Index s = 0, i = i0; s < slivers; ++s) {
    const Index h = short_h + (s < tall);
    const T* a = pr.trans_a ? pr.a + i : pr.a + i * pr.lda;
    kernels[h - 1](k, a, pr.lda, b, sb, masked_b, pr.c + i * pr.ldc, pr.ldc, n, ep);
    i += h;
  }
}

// C[i0:i1, j0:j1] of the problem, serially, in even blocks of at most kMC
// rows (bounding the packed-A buffer).
template <class T>
void gemm_block(const Problem<T>& pr, Index i0, Index i1, Index j0, Index j1) {
  if (i1 <= i0 || j1 <= j0) return;
  if (j0 == 0 && j1 == pr.n && pr.n <= Tile<T>::kNR && pr.k <= Tile<T>::kKC) {
    gemm_narrow(pr, i0, i1);
    return;
  }
  const Index blocks = (i1 - i0 + Tile<T>::kMC - 1) / Tile<T>::kMC;
  const Index per = (i1 - i0 + blocks - 1) / blocks;
  for (Index i = i0; i < i1; i += per) gemm_panel(pr, i, std::min(i + per, i1), j0, j1);
}

// C = beta * C (alpha == 0 or k == 0); beta == 0 writes zeros without reading.
template <class T>
void scale_c(Index m, Index n, T beta, T* c, Index ldc) {
  for (Index i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    if (beta == T(0))
      std::fill(ci, ci + n, T(0));
    else
      for (Index j = 0; j < n; ++j) ci[j] *= beta;
  }
}

// Below this many multiply-adds (~5 us on one core) a product runs on one
// thread: handing a chunk to a worker and joining costs ~1 us here (a cache
// line takes ~250 ns between cores), so 128x64x64 gained nothing measurable.
constexpr Index kParallelMinWork = Index(1) << 20;

// Runs a problem with k > 0 and alpha != 0, splitting it over the pool
// when large enough.
template <class T>
void run(const Problem<T>& pr) {
  const Index m = pr.m, n = pr.n;
  const int threads = num_threads();
  if (threads == 1 || m * n * pr.k < kParallelMinWork) {
    gemm_block(pr, 0, m, 0, n);
    return;
  }
  // Split the larger of M and N (in rows, or in vectors of columns) so that
  // every thread gets an even share; K is never split.
  constexpr Index W = Tile<T>::kW;
  if (m >= n) {
    parallel_for(m, (m + threads - 1) / threads,
                 [&](Index lo, Index hi) { gemm_block(pr, lo, hi, 0, n); });
  } else {
    const Index units = (n + W - 1) / W;
    parallel_for(units, (units + threads - 1) / threads, [&](Index lo, Index hi) {
      gemm_block(pr, 0, m, lo * W, std::min(n, hi * W));
    });
  }
}

}  // namespace

template <class T>
void gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, T alpha, const T* a, Index lda,
          const T* b, Index ldb, T beta, T* c, Index ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == T(0)) {
    scale_c(m, n, beta, c, ldc);
    return;
  }
  run(Problem<T>{trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, nullptr, c, ldc});
}

template <class T>
void gemm_bias(bool trans_a, bool trans_b, Index m, Index n, Index k, T alpha, const T* a,
               Index lda, const T* b, Index ldb, const T* bias, T* c, Index ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == T(0)) {
    for (Index i = 0; i < m; ++i) std::copy(bias, bias + n, c + i * ldc);
    return;
  }
  run(Problem<T>{trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, T(1), bias, c, ldc});
}

template void gemm<float>(bool, bool, Index, Index, Index, float, const float*, Index, const float*,
                          Index, float, float*, Index);
template void gemm<double>(bool, bool, Index, Index, Index, double, const double*, Index,
                           const double*, Index, double, double*, Index);
template void gemm_bias<float>(bool, bool, Index, Index, Index, float, const float*, Index,
                               const float*, Index, const float*, float*, Index);
template void gemm_bias<double>(bool, bool, Index, Index, Index, double, const double*, Index,
                                const double*, Index, const double*, double*, Index);

}  // namespace anode
