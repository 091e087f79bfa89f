// xsimd kernels: vector body plus tail, large maps split over the thread pool.
#include "autodiff/kernels.h"

#include <algorithm>
#include <numeric>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "autodiff/simd.h"
#include "autodiff/thread_pool.h"

namespace anode::kernels {
namespace {

using simd::kW;
using simd::load;
using simd::load_n;
using simd::store;
using simd::store_n;
using simd::Vec;
template <class T>
using IVec = xsimd::batch<xsimd::as_integer_t<T>>;

template <class T>
Vec<T> splat(double v) {
  return Vec<T>(static_cast<T>(v));
}

// xsimd 8.1 spells fma on AVX-512 as x * y + z and leaves fusion to the
// compiler; the intrinsic makes every vector lane round exactly like the
// std::fma scalar tails below (so results never depend on where an element
// sits relative to a vector boundary or a thread's chunk).
template <class T>
Vec<T> fmadd(Vec<T> a, Vec<T> b, Vec<T> c) {
#if XSIMD_WITH_AVX512F
  if constexpr (simd::kAvx512<T>) {
    if constexpr (std::is_same_v<T, float>) {
      return _mm512_fmadd_ps(a, b, c);
    } else {
      return _mm512_fmadd_pd(a, b, c);
    }
  }
#endif
  return xsimd::fma(a, b, c);
}
// c - a * b, one rounding.
template <class T>
Vec<T> fnmadd(Vec<T> a, Vec<T> b, Vec<T> c) {
#if XSIMD_WITH_AVX512F
  if constexpr (simd::kAvx512<T>) {
    if constexpr (std::is_same_v<T, float>) {
      return _mm512_fnmadd_ps(a, b, c);
    } else {
      return _mm512_fnmadd_pd(a, b, c);
    }
  }
#endif
  return xsimd::fnma(a, b, c);
}

// ---- Transcendentals -------------------------------------------------------
//
// exp: Cody-Waite x = k ln2 + r, |r| <= ln2/2 (ln2 split hi + lo, k * hi
// exact), e^r by a polynomial, 2^k through the exponent bits. float: our
// degree-6 minimax (long-double Remez); double: Taylor to degree 13
// (truncation < 5e-18).
// log: x = 2^k m, m in [sqrt(1/2), sqrt(2)), f = m - 1 exact. float: Cephes
// logf's degree-9 polynomial; double: fdlibm's s = f / (2 + f) series.
// tanh: |x| < 0.625 by Cephes' odd polynomial (float) / rational (double),
// else 1 - 2 / (e^{2|x|} + 1) with |x| clamped where tanh rounds to 1.
// Both branches run on every lane and a select picks one; the float loop is
// bound by its ~16 multiply/FMA ops per vector, so the exp inside tanh is
// trimmed (one-constant reduction, no separate 2x).
// Measured maxima (tests/autodiff/kernels_test.cc, DenseSweepUlp) are below
// 2.5 ulp for all five functions in float and double.

// 2^k for integer k in the normal exponent range.
template <class T>
Vec<T> pow2(IVec<T> k) {
  constexpr int kMant = std::numeric_limits<T>::digits - 1;
  constexpr int kBias = std::numeric_limits<T>::max_exponent - 1;
  return xsimd::bitwise_cast<Vec<T>>((k + IVec<T>(kBias)) << kMant);
}

template <class T>
struct Consts;

template <>
struct Consts<float> {
  static constexpr int kMant = 23, kBias = 127;
  static constexpr double kLog2e = 1.44269504088896340736;
  static constexpr double kLn2Hi = 0.693359375, kLn2Lo = -2.12194440e-4;
  // exp(x) is 0 below kExpLo, overflows above kExpHi; both also keep k small
  // enough for the two-step 2^k scaling.
  static constexpr double kExpLo = -104, kExpHi = 89;
  // tanh(x) rounds to +-1 beyond kTanhClamp (2 e^{-2x} < 2^-25).
  static constexpr double kTanhClamp = 9.1;
  static constexpr double kMinNormal = 1.17549435082228750797e-38;  // FLT_MIN
  static constexpr double kSubnormalScale = 8388608.0;               // 2^23
  static constexpr int kSubnormalExp = 23;

  // e^r for |r| <= ln2 / 2: degree-6 minimax (relative error 1.9e-9;
  // c0 and c1 round to 1).
  static Vec<float> exp_poly(Vec<float> r) {
    Vec<float> p = fmadd(splat<float>(1.38368459893346448906e-03), r, splat<float>(8.37481580434396855779e-03));
    p = fmadd(p, r, splat<float>(4.16682255695569435660e-02));
    p = fmadd(p, r, splat<float>(1.66664201698501274594e-01));
    p = fmadd(p, r, splat<float>(4.99999920798165017438e-01));
    p = fmadd(p, r, Vec<float>(1.0f));
    return fmadd(p, r, Vec<float>(1.0f));
  }

  // e^{2t} + 1 for 0 <= t <= kTanhClamp: t = k ln2 / 2 + s, and e^{2s} by
  // the minimax above with coefficients scaled by 2^i (saves forming 2t).
  // One-constant reduction: k <= 27, so k |ln2/2 - float(ln2/2)| < 3e-8 in s,
  // which moves tanh by far less than an ulp where k is that large.
  static Vec<float> exp2x_plus1(Vec<float> t) {
    const Vec<float> kf = xsimd::nearbyint(t * splat<float>(2 * kLog2e));
    const Vec<float> s = fnmadd(kf, splat<float>(0.34657359027997265471), t);
    Vec<float> p = fmadd(splat<float>(8.85558143317417272998e-02), s, splat<float>(2.67994105739006993849e-01));
    p = fmadd(p, s, splat<float>(6.66691609112911097055e-01));
    p = fmadd(p, s, splat<float>(1.33331361358801019675e+00));
    p = fmadd(p, s, splat<float>(1.99999968319266006975e+00));
    p = fmadd(p, s, Vec<float>(2.0f));
    p = fmadd(p, s, Vec<float>(1.0f));
    return fmadd(p, pow2<float>(xsimd::to_int(kf)), Vec<float>(1.0f));
  }

  // tanh(a) for 0 <= a <= 0.625.
  static Vec<float> tanh_small(Vec<float> a) {
    const Vec<float> z = a * a;
    Vec<float> p = fmadd(splat<float>(-5.70498872745e-3), z, splat<float>(2.06390887954e-2));
    p = fmadd(p, z, splat<float>(-5.37397155531e-2));
    p = fmadd(p, z, splat<float>(1.33314422036e-1));
    p = fmadd(p, z, splat<float>(-3.33332819422e-1));
    return fmadd(p, a * z, a);
  }

  // log(2^k (1 + f)) + extra for f in [sqrt(1/2) - 1, sqrt(2) - 1] and a
  // tiny correction `extra`.
  static Vec<float> log_reduced(Vec<float> f, Vec<float> k, Vec<float> extra) {
    const Vec<float> z = f * f;
    Vec<float> p = fmadd(splat<float>(7.0376836292e-2), f, splat<float>(-1.1514610310e-1));
    p = fmadd(p, f, splat<float>(1.1676998740e-1));
    p = fmadd(p, f, splat<float>(-1.2420140846e-1));
    p = fmadd(p, f, splat<float>(1.4249322787e-1));
    p = fmadd(p, f, splat<float>(-1.6668057665e-1));
    p = fmadd(p, f, splat<float>(2.0000714765e-1));
    p = fmadd(p, f, splat<float>(-2.4999993993e-1));
    p = fmadd(p, f, splat<float>(3.3333331174e-1));
    Vec<float> y = fmadd(p * f, z, fmadd(k, splat<float>(kLn2Lo), extra));
    y = fnmadd(Vec<float>(0.5f), z, y);
    return fmadd(k, splat<float>(kLn2Hi), f + y);
  }
};

template <>
struct Consts<double> {
  static constexpr int kMant = 52, kBias = 1023;
  static constexpr double kLog2e = 1.44269504088896340736;
  static constexpr double kLn2Hi = 6.93147180369123816490e-01, kLn2Lo = 1.90821492927058770002e-10;
  static constexpr double kExpLo = -746, kExpHi = 710;
  static constexpr double kTanhClamp = 19.1;  // 2 e^{-2x} < 2^-54
  static constexpr double kMinNormal = 2.22507385850720138309e-308;  // DBL_MIN
  static constexpr double kSubnormalScale = 18014398509481984.0;     // 2^54
  static constexpr int kSubnormalExp = 54;

  static Vec<double> exp_poly(Vec<double> r) {
    // Taylor coefficients 1/13! ... 1/2!.
    Vec<double> p = fmadd(splat<double>(1.0 / 6227020800.0), r, splat<double>(1.0 / 479001600.0));
    p = fmadd(p, r, splat<double>(1.0 / 39916800.0));
    p = fmadd(p, r, splat<double>(1.0 / 3628800.0));
    p = fmadd(p, r, splat<double>(1.0 / 362880.0));
    p = fmadd(p, r, splat<double>(1.0 / 40320.0));
    p = fmadd(p, r, splat<double>(1.0 / 5040.0));
    p = fmadd(p, r, splat<double>(1.0 / 720.0));
    p = fmadd(p, r, splat<double>(1.0 / 120.0));
    p = fmadd(p, r, splat<double>(1.0 / 24.0));
    p = fmadd(p, r, splat<double>(1.0 / 6.0));
    p = fmadd(p, r, splat<double>(0.5));
    return fmadd(p, r * r, r) + Vec<double>(1.0);
  }

  // e^{2t} + 1 for 0 <= t <= kTanhClamp.
  static Vec<double> exp2x_plus1(Vec<double> t) {
    const Vec<double> y = t + t;
    const Vec<double> kf = xsimd::nearbyint(y * splat<double>(kLog2e));
    Vec<double> r = fnmadd(kf, splat<double>(kLn2Hi), y);
    r = fnmadd(kf, splat<double>(kLn2Lo), r);
    return fmadd(exp_poly(r), pow2<double>(xsimd::to_int(kf)), Vec<double>(1.0));
  }

  static Vec<double> tanh_small(Vec<double> a) {
    const Vec<double> z = a * a;
    Vec<double> p = fmadd(splat<double>(-9.64399179425052238628e-1), z,
                          splat<double>(-9.92877231001918586564e1));
    p = fmadd(p, z, splat<double>(-1.61468768441708447952e3));
    Vec<double> q = z + splat<double>(1.12811678491632931402e2);
    q = fmadd(q, z, splat<double>(2.23548839060100448583e3));
    q = fmadd(q, z, splat<double>(4.84406305325125486048e3));
    return fmadd(a * z, p / q, a);
  }

  static Vec<double> log_reduced(Vec<double> f, Vec<double> k, Vec<double> extra) {
    const Vec<double> s = f / (Vec<double>(2.0) + f);
    const Vec<double> z = s * s, w = z * z;
    Vec<double> t1 = fmadd(splat<double>(1.531383769920937332e-01), w, splat<double>(2.222219843214978396e-01));
    t1 = fmadd(t1, w, splat<double>(3.999999999940941908e-01));
    Vec<double> t2 = fmadd(splat<double>(1.479819860511658591e-01), w, splat<double>(1.818357216161805012e-01));
    t2 = fmadd(t2, w, splat<double>(2.857142874366239149e-01));
    t2 = fmadd(t2, w, splat<double>(6.666666666666735130e-01));
    const Vec<double> r = fmadd(t1, w, t2 * z);
    const Vec<double> hfsq = Vec<double>(0.5) * f * f;
    const Vec<double> lo = fmadd(s, hfsq + r, fmadd(k, splat<double>(kLn2Lo), extra));
    return fmadd(k, splat<double>(kLn2Hi), f - (hfsq - lo));
  }
};

// e^x for x in [kExpLo, kExpHi]. 2^k is applied in two steps, so k may
// exceed the normal exponent range (results overflow to inf or round to a
// subnormal or 0 correctly).
template <class T>
Vec<T> exp_kernel(Vec<T> x) {
  using C = Consts<T>;
  const Vec<T> kf = xsimd::nearbyint(x * splat<T>(C::kLog2e));
  Vec<T> r = fnmadd(kf, splat<T>(C::kLn2Hi), x);
  r = fnmadd(kf, splat<T>(C::kLn2Lo), r);
  const Vec<T> p = C::exp_poly(r);
  const IVec<T> k = xsimd::to_int(kf);
  const IVec<T> k1 = k >> 1;
  return p * pow2<T>(k1) * pow2<T>(k - k1);
}

// e^x over all inputs: 0 below the underflow point, +inf above overflow,
// NaN for NaN.
template <class T>
Vec<T> exp_v(Vec<T> x) {
  using C = Consts<T>;
  const Vec<T> xc = xsimd::min(xsimd::max(x, splat<T>(C::kExpLo)), splat<T>(C::kExpHi));
  return xsimd::select(xsimd::isnan(x), x, exp_kernel<T>(xc));
}

template <class T>
Vec<T> log_v(Vec<T> x) {
  using C = Consts<T>;
  using I = xsimd::as_integer_t<T>;
  // Subnormals: scale into the normal range first.
  const auto tiny = x < splat<T>(C::kMinNormal);
  const Vec<T> xs = xsimd::select(tiny, x * splat<T>(C::kSubnormalScale), x);
  const IVec<T> bits = xsimd::bitwise_cast<IVec<T>>(xs);
  constexpr I kMantMask = (I(1) << C::kMant) - 1;
  constexpr I kHalfBits = I(C::kBias - 1) << C::kMant;  // bits of 0.5
  // m in [0.5, 1), x = m 2^e.
  const Vec<T> m = xsimd::bitwise_cast<Vec<T>>((bits & IVec<T>(kMantMask)) | IVec<T>(kHalfBits));
  const IVec<T> e = ((bits >> C::kMant) & IVec<T>((I(1) << (sizeof(T) * 8 - 1 - C::kMant)) - 1)) -
                    IVec<T>(C::kBias - 1);
  Vec<T> ef = xsimd::to_float(e) - xsimd::select(tiny, splat<T>(C::kSubnormalExp), Vec<T>(0));
  const auto low = m < splat<T>(0.70710678118654752440);
  ef = ef - xsimd::select(low, Vec<T>(1), Vec<T>(0));
  const Vec<T> f = xsimd::select(low, m + m, m) - Vec<T>(1);
  Vec<T> r = C::log_reduced(f, ef, Vec<T>(0));
  const Vec<T> inf(std::numeric_limits<T>::infinity());
  r = xsimd::select(x == inf, inf, r);
  r = xsimd::select(x >= Vec<T>(0), r, Vec<T>(std::numeric_limits<T>::quiet_NaN()));  // x < 0 or NaN
  return xsimd::select(x == Vec<T>(0), -inf, r);
}

// log(1 + u) for u in [0, 1] (and NaN): w = 1 + u rounds; log1p(u) =
// log(w) + c / w with c = u - (w - 1) exact. For tiny u, c is as large as
// the result itself, so c / w needs a true division (a 14-bit reciprocal
// estimate cost 200 ulp).
template <class T>
Vec<T> log1p_unit(Vec<T> u) {
  const Vec<T> one(1);
  const Vec<T> w = one + u;
  const Vec<T> c = u - (w - one);
  const auto big = w > splat<T>(1.41421356237309504880);
  const Vec<T> f = xsimd::select(big, w * Vec<T>(0.5), w) - one;  // exact
  const Vec<T> k = xsimd::select(big, one, Vec<T>(0));
  return Consts<T>::log_reduced(f, k, c / w);
}

template <class T>
Vec<T> tanh_v(Vec<T> x) {
  using C = Consts<T>;
  const Vec<T> a = xsimd::abs(x);
  const Vec<T> small = C::tanh_small(a);
  const Vec<T> t = xsimd::min(a, splat<T>(C::kTanhClamp));
  const Vec<T> big = Vec<T>(1) - Vec<T>(2) / C::exp2x_plus1(t);
  // NaN compares false and takes the polynomial branch, which keeps it.
  const Vec<T> r = xsimd::select(a >= splat<T>(0.625), big, small);
  return r | xsimd::bitofsign(x);
}

// e^{-|x|} / (1 + e^{-|x|}) for x < 0, 1 / (1 + e^{-|x|}) otherwise: never
// overflows, and keeps relative accuracy deep into the left tail.
template <class T>
Vec<T> sigmoid_v(Vec<T> x) {
  const Vec<T> e = exp_v(-xsimd::abs(x));
  const Vec<T> one(1);
  return xsimd::select(x < Vec<T>(0), e, one) / (one + e);
}

template <class T>
Vec<T> softplus_v(Vec<T> x) {
  return xsimd::max(x, Vec<T>(0)) + log1p_unit(exp_v(-xsimd::abs(x)));
}

// ---- Threading ---------------------------------------------------------------

// Maps longer than these are split over the pool. A parallel_for round trip
// with spinning workers costs ~0.1-0.7 us here, while 16K floats of tanh take
// ~3.4 us and a 256K add_to ~25 us of one Zen 5 core (BM_Tanh_Grain,
// BM_AddTo_Grain). Memory-bound maps get the larger grain: below it their
// data sits in the caller's L2, which another core only reaches via L3.
constexpr Index kGrainMemory = Index(1) << 18;
constexpr Index kGrainCompute = Index(1) << 14;
// Chunk boundaries fall on multiples of this many elements (a multiple of
// every vector width), so every chunk but the last is vector-only.
constexpr Index kChunkAlign = 1024;

template <class F>
void split(Index n, Index grain, F&& body) {
  if (n <= grain) {
    body(Index(0), n);
    return;
  }
  const Index blocks = (n + kChunkAlign - 1) / kChunkAlign;
  parallel_for(blocks, grain / kChunkAlign, [&](Index b, Index e) {
    body(b * kChunkAlign, std::min(n, e * kChunkAlign));
  });
}

// ---- Elementwise drivers -------------------------------------------------------
//
// The last n % W elements go through a zero-padded one-vector buffer and the
// same vector code, so every element's result is bitwise independent of its
// position (and so of how parallel_for splits the range).

template <class T, class F>
void map1_range(const T* x, T* y, Index n, F f) {
  constexpr Index W = kW<T>;
  Index i = 0;
  for (; i + W <= n; i += W) store(y + i, f(load(x + i)));
  if (i < n) {
    alignas(64) T bx[W] = {};
    std::copy(x + i, x + n, bx);
    store(bx, f(load(bx)));
    std::copy(bx, bx + (n - i), y + i);
  }
}

template <class T, class F>
void map1(const T* x, T* y, Index n, Index grain, F f) {
  split(n, grain, [&](Index b, Index e) { map1_range(x + b, y + b, e - b, f); });
}

// z[i] = f(u[i], v[i], z[i]), or f(u[i], v[i], 0) without reading z when
// kOverwrite (an accumulating kernel's first write into a fresh buffer: the
// same bits as accumulating into zeros).
template <bool kOverwrite, class T, class F>
void map3_range(const T* u, const T* v, T* z, Index n, F f) {
  constexpr Index W = kW<T>;
  const Vec<T> zero(T(0));
  Index i = 0;
  for (; i + W <= n; i += W)
    store(z + i, f(load(u + i), load(v + i), kOverwrite ? zero : load(z + i)));
  if (i < n) {
    alignas(64) T bu[W] = {}, bv[W] = {}, bz[W] = {};
    const Index r = n - i;
    std::copy(u + i, u + n, bu);
    std::copy(v + i, v + n, bv);
    if (!kOverwrite) std::copy(z + i, z + n, bz);
    store(bz, f(load(bu), load(bv), load(bz)));
    std::copy(bz, bz + r, z + i);
  }
}

template <class T, class F>
void map3(const T* u, const T* v, T* z, Index n, Index grain, F f, bool overwrite = false) {
  split(n, grain, [&](Index b, Index e) {
    if (overwrite)
      map3_range<true>(u + b, v + b, z + b, e - b, f);
    else
      map3_range<false>(u + b, v + b, z + b, e - b, f);
  });
}

// One contiguous stretch of a periodic binary map; AV / BV: the operand is a
// vector (else the scalar *a / *b repeated). `op` works on Vec<T> and T alike
// and is a single IEEE operation, so tails match the vector body exactly.
template <bool AV, bool BV, class T, class Op>
void binary_seg(const T* a, const T* b, T* y, Index len, Op op) {
  constexpr Index W = kW<T>;
  const Vec<T> as(*a), bs(*b);
  Index i = 0;
  for (; i + W <= len; i += W) {
    store(y + i, op(AV ? load(a + i) : as, BV ? load(b + i) : bs));
  }
  for (; i < len; ++i) y[i] = op(AV ? a[i] : *a, BV ? b[i] : *b);
}

template <class T, class Op>
void binary_range(const T* a, Index na, const T* b, Index nb, T* y, Index begin, Index end, Op op) {
  Index ia = begin % na, ib = begin % nb;
  for (Index i = begin; i < end;) {
    Index len = end - i;
    if (na > 1) len = std::min(len, na - ia);
    if (nb > 1) len = std::min(len, nb - ib);
    if (na > 1 && nb > 1) {
      binary_seg<true, true>(a + ia, b + ib, y + i, len, op);
    } else if (na > 1) {
      binary_seg<true, false>(a + ia, b, y + i, len, op);
    } else if (nb > 1) {
      binary_seg<false, true>(a, b + ib, y + i, len, op);
    } else {
      binary_seg<false, false>(a, b, y + i, len, op);
    }
    i += len;
    if (na > 1 && (ia += len) == na) ia = 0;
    if (nb > 1 && (ib += len) == nb) ib = 0;
  }
}

template <class T, class Op>
void binary(const T* a, Index na, const T* b, Index nb, T* y, Index n, Op op) {
  if (n <= 0) return;
  split(n, kGrainMemory, [&](Index s, Index e) { binary_range(a, na, b, nb, y, s, e, op); });
}

// out[k] += a[k] * b[k] (BV) or a[k] * *b, k < len.
template <bool BV, class T>
void fma_acc_seg(const T* a, const T* b, T* out, Index len) {
  constexpr Index W = kW<T>;
  const Vec<T> bs(*b);
  Index i = 0;
  for (; i + W <= len; i += W) store(out + i, fmadd(load(a + i), BV ? load(b + i) : bs, load(out + i)));
  for (; i < len; ++i) out[i] = std::fma(a[i], BV ? b[i] : *b, out[i]);
}

// ---- Reductions ------------------------------------------------------------------
//
// Sums run over blocks of kBlockVecs vectors, each with kAcc independent
// accumulators (so a lane adds only kBlockVecs / kAcc terms in sequence),
// and blocks are combined in a pairwise tree: error grows like log(n)
// instead of n. The tree depends on n alone, so chunks of blocks may run on
// any number of threads with bit-identical results.

constexpr Index kBlockVecs = 128;
constexpr int kAcc = 8;
// Blocks per chunk (a leaf task), chunks per wave (their partials live on
// the stack), and the fewest chunks worth splitting across threads.
constexpr Index kChunkBlocks = 16;
constexpr Index kWave = 64;
constexpr Index kReduceGrainChunks = 4;

// Folds a sequence of values into a pairwise tree: a binary counter whose
// slot l holds the sum of 2^l consecutive leaves.
template <class T>
class PairwiseSum {
 public:
  void push(T v) {
    int l = 0;
    while (top_ > 0 && level_[top_ - 1] == l) {
      v = sum_[--top_] + v;
      ++l;
    }
    sum_[top_] = v;
    level_[top_++] = l;
  }
  T total() const {
    if (top_ == 0) return T(0);
    T s = sum_[top_ - 1];
    for (int i = top_ - 2; i >= 0; --i) s = sum_[i] + s;
    return s;
  }

 private:
  T sum_[64];
  int level_[64];
  int top_ = 0;
};

// acc <- acc + term(a, b): a sum, a sum of squares, a dot product or a
// squared distance.
enum class Red { kSum, kSquares, kDot, kDistance };

template <Red R, class T>
Vec<T> red_step(Vec<T> acc, Vec<T> a, Vec<T> b) {
  if constexpr (R == Red::kSum) {
    return acc + a;
  } else if constexpr (R == Red::kSquares) {
    return fmadd(a, a, acc);
  } else if constexpr (R == Red::kDot) {
    return fmadd(a, b, acc);
  } else {
    const Vec<T> d = a - b;
    return fmadd(d, d, acc);
  }
}

template <Red R, class T>
T reduce_block(const T* a, const T* b, Index n) {
  constexpr Index W = kW<T>;
  constexpr bool kTwo = R == Red::kDot || R == Red::kDistance;
  auto ld = [](const T* p) { return load(p); };
  Vec<T> acc[kAcc];
  for (auto& v : acc) v = Vec<T>(0);
  Index i = 0;
  for (; i + kAcc * W <= n; i += kAcc * W) {
    for (int j = 0; j < kAcc; ++j) {
      acc[j] = red_step<R>(acc[j], ld(a + i + j * W), kTwo ? ld(b + i + j * W) : acc[j]);
    }
  }
  for (int j = 0; i + W <= n; i += W, ++j) {
    acc[j] = red_step<R>(acc[j], ld(a + i), kTwo ? ld(b + i) : acc[j]);
  }
  if (i < n) {  // zero padding adds nothing to any of the four forms
    alignas(64) T ba[W] = {}, bb[W] = {};
    std::copy(a + i, a + n, ba);
    if constexpr (kTwo) std::copy(b + i, b + n, bb);
    acc[kAcc - 1] = red_step<R>(acc[kAcc - 1], ld(ba), ld(bb));
  }
  for (int w = 1; w < kAcc; w *= 2) {
    for (int j = 0; j + w < kAcc; j += 2 * w) acc[j] = acc[j] + acc[j + w];
  }
  return xsimd::hadd(acc[0]);
}

template <Red R, class T>
T reduce_chunk(const T* a, const T* b, Index n) {
  constexpr Index kBlock = kBlockVecs * kW<T>;
  if (n <= kBlock) return reduce_block<R>(a, b, n);
  PairwiseSum<T> s;
  for (Index i = 0; i < n; i += kBlock) s.push(reduce_block<R>(a + i, b + i, std::min(kBlock, n - i)));
  return s.total();
}

template <Red R, class T>
T reduce(const T* a, const T* b, Index n) {
  constexpr Index kChunk = kChunkBlocks * kBlockVecs * kW<T>;
  if (n <= kChunk) return reduce_chunk<R>(a, b, n);
  const Index chunks = (n + kChunk - 1) / kChunk;
  PairwiseSum<T> s;
  for (Index w0 = 0; w0 < chunks; w0 += kWave) {
    const Index count = std::min(kWave, chunks - w0);
    T part[kWave];
    parallel_for(count, kReduceGrainChunks, [&](Index cb, Index ce) {
      for (Index c = cb; c < ce; ++c) {
        const Index off = (w0 + c) * kChunk;
        part[c] = reduce_chunk<R>(a + off, b + off, std::min(kChunk, n - off));
      }
    });
    for (Index c = 0; c < count; ++c) s.push(part[c]);
  }
  return s.total();
}

}  // namespace

// ---- Unary maps ----------------------------------------------------------------

template <class T>
void tanh(const T* x, T* y, Index n) {
  map1(x, y, n, kGrainCompute, [](Vec<T> v) { return tanh_v(v); });
}
template <class T>
void sigmoid(const T* x, T* y, Index n) {
  map1(x, y, n, kGrainCompute, [](Vec<T> v) { return sigmoid_v(v); });
}
template <class T>
void relu(const T* x, T* y, Index n) {
  // NaN fails x <= 0 and passes through.
  map1(x, y, n, kGrainMemory, [](Vec<T> v) { return xsimd::select(v <= Vec<T>(0), Vec<T>(0), v); });
}
template <class T>
void softplus(const T* x, T* y, Index n) {
  map1(x, y, n, kGrainCompute, [](Vec<T> v) { return softplus_v(v); });
}
template <class T>
void exp(const T* x, T* y, Index n) {
  map1(x, y, n, kGrainCompute, [](Vec<T> v) { return exp_v(v); });
}
template <class T>
void log(const T* x, T* y, Index n) {
  map1(x, y, n, kGrainCompute, [](Vec<T> v) { return log_v(v); });
}
template <class T>
void sqrt(const T* x, T* y, Index n) {
  map1(x, y, n, kGrainMemory, [](Vec<T> v) { return xsimd::sqrt(v); });
}
template <class T>
void square(const T* x, T* y, Index n) {
  map1(x, y, n, kGrainMemory, [](Vec<T> v) { return v * v; });
}
template <class T>
void scale(const T* x, T c, T* y, Index n) {
  const Vec<T> cv(c);
  map1(x, y, n, kGrainMemory, [cv](Vec<T> v) { return cv * v; });
}

template <class T>
void sin(const T* x, T* y, Index n) {
  map1(x, y, n, kGrainCompute, [](Vec<T> v) { return xsimd::sin(v); });
}
template <class T>
void cos(const T* x, T* y, Index n) {
  map1(x, y, n, kGrainCompute, [](Vec<T> v) { return xsimd::cos(v); });
}
template <class T>
void abs(const T* x, T* y, Index n) {
  map1(x, y, n, kGrainMemory, [](Vec<T> v) { return xsimd::abs(v); });
}
template <class T>
void log1p(const T* x, T* y, Index n) {
  map1(x, y, n, kGrainCompute, [](Vec<T> v) { return xsimd::log1p(v); });
}

// ---- Unary backward ---------------------------------------------------------------

template <class T>
void sin_backward(const T* x, const T* gy, T* gx, Index n, bool overwrite) {
  map3(x, gy, gx, n, kGrainCompute,
       [](Vec<T> v, Vec<T> g, Vec<T> acc) { return fmadd(g, xsimd::cos(v), acc); }, overwrite);
}
template <class T>
void cos_backward(const T* x, const T* gy, T* gx, Index n, bool overwrite) {
  map3(x, gy, gx, n, kGrainCompute,
       [](Vec<T> v, Vec<T> g, Vec<T> acc) { return fnmadd(g, xsimd::sin(v), acc); }, overwrite);
}
template <class T>
void abs_backward(const T* x, const T* gy, T* gx, Index n, bool overwrite) {
  // sign(x) as a mask: gy where x > 0, -gy where x < 0, nothing at 0 (and NaN).
  map3(x, gy, gx, n, kGrainMemory, [](Vec<T> v, Vec<T> g, Vec<T> acc) {
    const Vec<T> zero(T(0));
    return xsimd::select(v > zero, acc + g, xsimd::select(v < zero, acc - g, acc));
  }, overwrite);
}
template <class T>
void log1p_backward(const T* x, const T* gy, T* gx, Index n, bool overwrite) {
  map3(x, gy, gx, n, kGrainMemory,
       [](Vec<T> v, Vec<T> g, Vec<T> acc) { return acc + g / (Vec<T>(1) + v); }, overwrite);
}

template <class T>
void tanh_backward(const T* y, const T* gy, T* gx, Index n, bool overwrite) {
  map3(y, gy, gx, n, kGrainMemory,
       [](Vec<T> v, Vec<T> g, Vec<T> acc) { return fmadd(g, fnmadd(v, v, Vec<T>(1)), acc); }, overwrite);
}
template <class T>
void sigmoid_backward(const T* y, const T* gy, T* gx, Index n, bool overwrite) {
  map3(y, gy, gx, n, kGrainMemory,
       [](Vec<T> v, Vec<T> g, Vec<T> acc) { return fmadd(g, v * (Vec<T>(1) - v), acc); }, overwrite);
}
template <class T>
void relu_backward(const T* x, const T* gy, T* gx, Index n, bool overwrite) {
  // A mask, not a product: gy is dropped (even inf/NaN) where x <= 0.
  map3(x, gy, gx, n, kGrainMemory,
       [](Vec<T> v, Vec<T> g, Vec<T> acc) { return xsimd::select(v > Vec<T>(0), acc + g, acc); }, overwrite);
}
template <class T>
void softplus_backward(const T* x, const T* gy, T* gx, Index n, bool overwrite) {
  map3(x, gy, gx, n, kGrainCompute,
       [](Vec<T> v, Vec<T> g, Vec<T> acc) { return fmadd(g, sigmoid_v(v), acc); }, overwrite);
}
template <class T>
void exp_backward(const T* y, const T* gy, T* gx, Index n, bool overwrite) {
  map3(
      y, gy, gx, n, kGrainMemory, [](Vec<T> v, Vec<T> g, Vec<T> acc) { return fmadd(g, v, acc); },
      overwrite);
}
template <class T>
void log_backward(const T* x, const T* gy, T* gx, Index n, bool overwrite) {
  map3(
      x, gy, gx, n, kGrainMemory, [](Vec<T> v, Vec<T> g, Vec<T> acc) { return acc + g / v; },
      overwrite);
}
template <class T>
void sqrt_backward(const T* y, const T* gy, T* gx, Index n, bool overwrite) {
  map3(y, gy, gx, n, kGrainMemory,
       [](Vec<T> v, Vec<T> g, Vec<T> acc) { return acc + (Vec<T>(0.5) * g) / v; }, overwrite);
}
template <class T>
void square_backward(const T* x, const T* gy, T* gx, Index n, bool overwrite) {
  map3(
      x, gy, gx, n, kGrainMemory,
      [](Vec<T> v, Vec<T> g, Vec<T> acc) { return fmadd(g, v + v, acc); }, overwrite);
}

// ---- Binary maps -------------------------------------------------------------------

template <class T>
void add(const T* a, Index na, const T* b, Index nb, T* y, Index n) {
  binary(a, na, b, nb, y, n, [](auto u, auto v) { return u + v; });
}
template <class T>
void sub(const T* a, Index na, const T* b, Index nb, T* y, Index n) {
  binary(a, na, b, nb, y, n, [](auto u, auto v) { return u - v; });
}
template <class T>
void mul(const T* a, Index na, const T* b, Index nb, T* y, Index n) {
  binary(a, na, b, nb, y, n, [](auto u, auto v) { return u * v; });
}
template <class T>
void div(const T* a, Index na, const T* b, Index nb, T* y, Index n) {
  binary(a, na, b, nb, y, n, [](auto u, auto v) { return u / v; });
}

// ---- BLAS-1 ------------------------------------------------------------------------

template <class T>
void add_to(const T* x, T* y, Index n) {
  binary(y, n, x, n, y, n, [](auto u, auto v) { return u + v; });
}

template <class T>
void axpy(T alpha, const T* x, T* y, Index n, bool overwrite) {
  const Vec<T> av(alpha);
  map3(
      x, x, y, n, kGrainMemory, [av](Vec<T> v, Vec<T>, Vec<T> acc) { return fmadd(av, v, acc); },
      overwrite);
}

// y[b, e) of lincomb with K terms (K > 0), or k terms for K == 0. A fixed K
// unrolls the terms: the coefficients and pointers stay in registers and
// consecutive vectors' FMA chains overlap (the runtime loop over terms ran
// one short chain at a time). Same rounding either way.
template <int K, class T>
void lincomb_range(const T* const* x, const T* c, Index k, T* y, Index b, Index e) {
  constexpr Index W = kW<T>;
  if constexpr (K > 0) k = K;
  Index i = b;
  for (; i + W <= e; i += W) {
    Vec<T> s = load(x[0] + i) * Vec<T>(c[0]);
#pragma GCC unroll 8
    for (Index j = 1; j < k; ++j) s = fmadd(load(x[j] + i), Vec<T>(c[j]), s);
    store(y + i, s);
  }
  for (; i < e; ++i) {
    T s = x[0][i] * c[0];
    for (Index j = 1; j < k; ++j) s = std::fma(x[j][i], c[j], s);
    y[i] = s;
  }
}

template <class T>
void lincomb(const T* const* x, const T* c, Index k, T* y, Index n) {
  split(n, kGrainMemory, [&](Index b, Index e) {
    switch (k) {  // the term counts of the Runge-Kutta tableaus
      case 1: return lincomb_range<1>(x, c, k, y, b, e);
      case 2: return lincomb_range<2>(x, c, k, y, b, e);
      case 3: return lincomb_range<3>(x, c, k, y, b, e);
      case 4: return lincomb_range<4>(x, c, k, y, b, e);
      case 5: return lincomb_range<5>(x, c, k, y, b, e);
      case 6: return lincomb_range<6>(x, c, k, y, b, e);
      case 7: return lincomb_range<7>(x, c, k, y, b, e);
      default: return lincomb_range<0>(x, c, k, y, b, e);
    }
  });
}

template <class T>
void reduce_rows_add(const T* x, Index n, T* g, Index m) {
  if (n <= 0) return;
  if (m == n) {
    add_to(x, g, n);
  } else if (m == 1) {
    g[0] += sum(x, n);
  } else {
    // Narrow rows (a bias gradient of width 10..64): the pattern of lanes
    // repeats every L = lcm(m, W) elements, so accumulate whole vectors in L/W
    // registers over the flat array and fold the lanes into g once at the end
    // instead of one short, tail-bound pass per row.
    constexpr Index W = kW<T>;
    const Index L = std::lcm(m, W);
    constexpr Index kMaxAcc = 16;
    if (L / W <= kMaxAcc && n >= 2 * L) {
      Vec<T> acc[kMaxAcc];
      const Index k = L / W;
      for (Index j = 0; j < k; ++j) acc[j] = Vec<T>(T(0));
      Index i = 0;
      for (; i + L <= n; i += L) {
        for (Index j = 0; j < k; ++j) acc[j] += load(x + i + j * W);
      }
      // Fold: the L / m rows of one period in `lanes`, then the rows left
      // over (fewer than L / m), summed row-wise in vectors (a scalar fold
      // chained every add through one g[j] in memory, and took longer than
      // the whole pass above).
      alignas(64) T lanes[kMaxAcc * 64 / sizeof(T)];
      for (Index j = 0; j < k; ++j) store(lanes + j * W, acc[j]);
      Vec<T> row[kMaxAcc];
      const Index mv = (m + W - 1) / W;
      for (Index v = 0; v < mv; ++v) row[v] = Vec<T>(T(0));
      auto add_row = [&](const T* r) {
        for (Index v = 0; v < mv; ++v) row[v] += load_n(r + v * W, std::min(W, m - v * W));
      };
      for (Index r = 0; r < L; r += m) add_row(lanes + r);
      for (; i < n; i += m) add_row(x + i);
      for (Index v = 0; v < mv; ++v) {
        const Index w = std::min(W, m - v * W);
        store_n(g + v * W, load_n(g + v * W, w) + row[v], w);
      }
    } else {
      for (Index r = 0; r < n; r += m) binary_range(g, m, x + r, m, g, Index(0), m, [](auto u, auto v) { return u + v; });
    }
  }
}

template <class T>
void broadcast_add(const T* gy, Index m, T* gx, Index n) {
  if (n <= 0) return;
  binary(gx, n, gy, m, gx, n, [](auto u, auto v) { return u + v; });
}

template <class T>
void mul_reduce_add(const T* a, const T* b, Index nb, Index n, T* out, Index m) {
  if (n <= 0) return;
  if (m == 1) {
    T s;
    if (nb == n) {
      s = dot(a, b, n);
    } else if (nb == 1) {
      s = b[0] * sum(a, n);
    } else {
      PairwiseSum<T> acc;
      for (Index r = 0; r < n; r += nb) acc.push(dot(a + r, b, nb));
      s = acc.total();
    }
    out[0] += s;
    return;
  }
  auto range = [&](Index begin, Index end) {
    Index io = begin % m, ib = begin % nb;
    for (Index i = begin; i < end;) {
      Index len = std::min(end - i, m - io);
      if (nb > 1) len = std::min(len, nb - ib);
      if (nb > 1) {
        fma_acc_seg<true>(a + i, b + ib, out + io, len);
      } else {
        fma_acc_seg<false>(a + i, b, out + io, len);
      }
      i += len;
      if ((io += len) == m) io = 0;
      if (nb > 1 && (ib += len) == nb) ib = 0;
    }
  };
  if (m == n) {
    split(n, kGrainMemory, range);  // disjoint outputs: safe to split
  } else {
    range(0, n);
  }
}

// ---- Reductions --------------------------------------------------------------------

template <class T>
T sum(const T* x, Index n) {
  return n <= 0 ? T(0) : reduce<Red::kSum>(x, x, n);
}
template <class T>
T sum_squares(const T* x, Index n) {
  return n <= 0 ? T(0) : reduce<Red::kSquares>(x, x, n);
}
template <class T>
T squared_distance(const T* a, const T* b, Index n) {
  return n <= 0 ? T(0) : reduce<Red::kDistance>(a, b, n);
}
template <class T>
T dot(const T* a, const T* b, Index n) {
  return n <= 0 ? T(0) : reduce<Red::kDot>(a, b, n);
}

template <class T>
T max_abs(const T* x, Index n) {
  constexpr Index W = kW<T>;
  Vec<T> m0(0), m1(0), m2(0), m3(0);
  // max() alone would drop NaN; flag it separately.
  auto nan = xsimd::isnan(m0);
  Index i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    const Vec<T> v0 = load(x + i), v1 = load(x + i + W), v2 = load(x + i + 2 * W), v3 = load(x + i + 3 * W);
    nan = nan | xsimd::isnan(v0) | xsimd::isnan(v1) | xsimd::isnan(v2) | xsimd::isnan(v3);
    m0 = xsimd::max(m0, xsimd::abs(v0));
    m1 = xsimd::max(m1, xsimd::abs(v1));
    m2 = xsimd::max(m2, xsimd::abs(v2));
    m3 = xsimd::max(m3, xsimd::abs(v3));
  }
  for (; i + W <= n; i += W) {
    const Vec<T> v = load(x + i);
    nan = nan | xsimd::isnan(v);
    m0 = xsimd::max(m0, xsimd::abs(v));
  }
  const Vec<T> mv = xsimd::max(xsimd::max(m0, m1), xsimd::max(m2, m3));
  if (xsimd::any(nan)) return std::numeric_limits<T>::quiet_NaN();
  alignas(64) T lanes[W];
  mv.store_aligned(lanes);
  T m = *std::max_element(lanes, lanes + W);
  for (; i < n; ++i) {
    if (std::isnan(x[i])) return x[i];
    m = std::max(m, std::abs(x[i]));
  }
  return m;
}

template <class T>
void sum_axis(const T* x, Index outer, Index len, Index inner, T* y) {
  if (inner == 1) {
    for (Index o = 0; o < outer; ++o) y[o] = sum(x + o * len, len);
    return;
  }
  for (Index o = 0; o < outer; ++o) {
    T* yo = y + o * inner;
    const T* xo = x + o * len * inner;
    if (len == 0) {
      std::fill(yo, yo + inner, T(0));
      continue;
    }
    std::copy(xo, xo + inner, yo);
    for (Index a = 1; a < len; ++a) {
      binary_range(yo, inner, xo + a * inner, inner, yo, Index(0), inner, [](auto u, auto v) { return u + v; });
    }
  }
}

template <class T>
void sum_axis_backward(const T* gy, Index outer, Index len, Index inner, T* gx) {
  for (Index o = 0; o < outer; ++o) broadcast_add(gy + o * inner, inner, gx + o * len * inner, len * inner);
}

template <class T>
bool all_finite(const T* x, Index n) {
  constexpr Index W = kW<T>;
  constexpr Index kStep = 4 * W;
  // v - v is 0 for finite v and NaN for inf and NaN; checked once per block.
  for (Index b = 0; b < n; b += 64 * W) {
    const Index e = std::min(n, b + 64 * W);
    Vec<T> acc(0), acc2(0);
    Index i = b;
    for (; i + kStep <= e; i += kStep) {
      const Vec<T> v0 = load(x + i), v1 = load(x + i + W), v2 = load(x + i + 2 * W), v3 = load(x + i + 3 * W);
      acc = acc + (v0 - v0) + (v1 - v1);
      acc2 = acc2 + (v2 - v2) + (v3 - v3);
    }
    for (; i + W <= e; i += W) {
      const Vec<T> v = load(x + i);
      acc = acc + (v - v);
    }
    acc = acc + acc2;
    if (xsimd::any(xsimd::isnan(acc))) return false;
    for (; i < e; ++i) {
      if (!std::isfinite(x[i])) return false;
    }
  }
  return true;
}

// ---- Softmax cross-entropy -----------------------------------------------------------

template <class T>
void softmax_xent(const T* logits, const int* labels, Index rows, Index cols, T* p, T* loss) {
  constexpr Index W = kW<T>;
  const T kNegInf = -std::numeric_limits<T>::infinity();
  auto row = [&](Index r) {
    const T* z = logits + r * cols;
    T* pr = p + r * cols;
    // Pass 1: max. Pass 2: p = exp(z - max) and their sum. Pass 3: p /= sum.
    // Tails are padded with -inf: neutral for max, exp(-inf) = 0 for the sum.
    Vec<T> mv(kNegInf);
    Index j = 0;
    for (; j + W <= cols; j += W) mv = xsimd::max(mv, load(z + j));
    alignas(64) T buf[W];
    const Index tail = cols - j;
    if (tail > 0) {
      std::fill(buf, buf + W, kNegInf);
      std::copy(z + j, z + cols, buf);
      mv = xsimd::max(mv, load(buf));
    }
    alignas(64) T lanes[W];
    mv.store_aligned(lanes);
    const T m = *std::max_element(lanes, lanes + W);
    const Vec<T> mb(m);
    Vec<T> s0(0), s1(0);
    j = 0;
    for (; j + 2 * W <= cols; j += 2 * W) {
      const Vec<T> e0 = exp_v(load(z + j) - mb), e1 = exp_v(load(z + j + W) - mb);
      store(pr + j, e0);
      store(pr + j + W, e1);
      s0 = s0 + e0;
      s1 = s1 + e1;
    }
    for (; j + W <= cols; j += W) {
      const Vec<T> e0 = exp_v(load(z + j) - mb);
      store(pr + j, e0);
      s0 = s0 + e0;
    }
    if (tail > 0) {
      const Vec<T> e0 = exp_v(load(buf) - mb);
      e0.store_aligned(buf);
      std::copy(buf, buf + tail, pr + j);
      s1 = s1 + e0;
    }
    const T s = xsimd::hadd(s0 + s1);
    const Vec<T> sb(s);
    map1_range(pr, pr, cols, [sb](Vec<T> v) { return v / sb; });
    loss[r] = std::log(s) + m - z[labels[r]];
  };
  const Index grain = std::max<Index>(1, kGrainCompute / std::max<Index>(cols, 1));
  parallel_for(rows, grain, [&](Index b, Index e) {
    for (Index r = b; r < e; ++r) row(r);
  });
}

template <class T>
void softmax_xent_backward(const T* p, const int* labels, Index rows, Index cols, T scale, T* gx) {
  axpy(scale, p, gx, rows * cols);
  for (Index r = 0; r < rows; ++r) gx[r * cols + labels[r]] -= scale;
}

// ---- General broadcasting ------------------------------------------------------

namespace {
// x of shape xs broadcast to ys, padded to rank 4: the dims of ys and x's
// element strides along them (0 on a broadcast axis).
struct Strides4 {
  Index d[4] = {1, 1, 1, 1};
  Index s[4] = {0, 0, 0, 0};
  Strides4(const Shape& xs, const Shape& ys) {
    for (int i = 0; i < ys.rank(); ++i) d[4 - ys.rank() + i] = ys[i];
    Index stride = 1;
    for (int i = xs.rank() - 1; i >= 0; --i) {
      s[4 - xs.rank() + i] = xs[i] == 1 ? 0 : stride;
      stride *= xs[i];
    }
  }
};
}  // namespace

template <class T>
void broadcast_to(const T* x, const Shape& xs, T* y, const Shape& ys) {
  const Strides4 st(xs, ys);
  const Index* d = st.d;
  const Index* s = st.s;
  for (Index a = 0; a < d[0]; ++a) {
    for (Index b = 0; b < d[1]; ++b) {
      for (Index c = 0; c < d[2]; ++c) {
        const T* src = x + a * s[0] + b * s[1] + c * s[2];
        T* dst = y + ((a * d[1] + b) * d[2] + c) * d[3];
        if (s[3] != 0) {
          std::copy(src, src + d[3], dst);
        } else {
          std::fill(dst, dst + d[3], src[0]);
        }
      }
    }
  }
}

template <class T>
void reduce_to_shape_add(const T* g, const Shape& gs, T* x, const Shape& xs) {
  const Strides4 st(xs, gs);
  const Index* d = st.d;
  const Index* s = st.s;
  for (Index a = 0; a < d[0]; ++a) {
    for (Index b = 0; b < d[1]; ++b) {
      for (Index c = 0; c < d[2]; ++c) {
        T* dst = x + a * s[0] + b * s[1] + c * s[2];
        const T* src = g + ((a * d[1] + b) * d[2] + c) * d[3];
        if (s[3] != 0) {
          add_to(src, dst, d[3]);
        } else {
          dst[0] += sum(src, d[3]);
        }
      }
    }
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
  template void sin<T>(const T*, T*, Index);                                                    \
  template void cos<T>(const T*, T*, Index);                                                    \
  template void abs<T>(const T*, T*, Index);                                                    \
  template void log1p<T>(const T*, T*, Index);                                                  \
  template void sin_backward<T>(const T*, const T*, T*, Index, bool);                           \
  template void cos_backward<T>(const T*, const T*, T*, Index, bool);                           \
  template void abs_backward<T>(const T*, const T*, T*, Index, bool);                           \
  template void log1p_backward<T>(const T*, const T*, T*, Index, bool);                         \
  template void broadcast_to<T>(const T*, const Shape&, T*, const Shape&);                      \
  template void reduce_to_shape_add<T>(const T*, const Shape&, T*, const Shape&);               \
  template void tanh_backward<T>(const T*, const T*, T*, Index, bool);                          \
  template void sigmoid_backward<T>(const T*, const T*, T*, Index, bool);                       \
  template void relu_backward<T>(const T*, const T*, T*, Index, bool);                          \
  template void softplus_backward<T>(const T*, const T*, T*, Index, bool);                      \
  template void exp_backward<T>(const T*, const T*, T*, Index, bool);                           \
  template void log_backward<T>(const T*, const T*, T*, Index, bool);                           \
  template void sqrt_backward<T>(const T*, const T*, T*, Index, bool);                          \
  template void square_backward<T>(const T*, const T*, T*, Index, bool);                        \
  template void add<T>(const T*, Index, const T*, Index, T*, Index);                            \
  template void sub<T>(const T*, Index, const T*, Index, T*, Index);                            \
  template void mul<T>(const T*, Index, const T*, Index, T*, Index);                            \
  template void div<T>(const T*, Index, const T*, Index, T*, Index);                            \
  template void add_to<T>(const T*, T*, Index);                                                 \
  template void axpy<T>(T, const T*, T*, Index, bool);                                          \
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
