#ifndef ANODE_AUTODIFF_SIMD_H_
#define ANODE_AUTODIFF_SIMD_H_

// Internal (not installed): xsimd with the compiler workaround it needs, and
// the vector load/store helpers shared by kernels.cc and gemm.cc, one
// AVX-512 guard for both. xsimd 8.1 has no masked loads or stores, so
// load_n/store_n use AVX-512 intrinsics when the batch is a 512-bit register
// and a small stack buffer otherwise.

#include <algorithm>
#include <cstdint>
#include <type_traits>

// GCC 12 flags the intrinsics' own `__m512 __Y = __Y` (_mm512_undefined_ps,
// used by rounding, conversions and transposes) as (maybe-)uninitialized
// once inlined (GCC bug 105593, fixed in GCC 13). The state that counts is
// the one in force where the intrinsics headers are read, so the pragmas
// wrap the includes. Clang has neither the bug nor -Wmaybe-uninitialized.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#define ANODE_SIMD_GCC_WORKAROUND 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <xsimd/xsimd.hpp>
#if XSIMD_WITH_AVX512F
#include <immintrin.h>
#endif
#if defined(ANODE_SIMD_GCC_WORKAROUND)
#pragma GCC diagnostic pop
#undef ANODE_SIMD_GCC_WORKAROUND
#endif

#include "autodiff/tensor.h"

namespace anode::simd {

/// The native vector of T (16 floats / 8 doubles with AVX-512).
template <class T>
using Vec = xsimd::batch<T>;
/// Its lane count.
template <class T>
inline constexpr Index kW = static_cast<Index>(Vec<T>::size);

/// True if Vec<T> is a 512-bit AVX-512 register (masked loads and stores
/// cost what plain ones do).
#if XSIMD_WITH_AVX512F
template <class T>
inline constexpr bool kAvx512 = sizeof(Vec<T>) == 64;
#else
template <class T>
inline constexpr bool kAvx512 = false;
#endif

/// W lanes from p (no alignment needed).
template <class T>
inline Vec<T> load(const T* p) {
  return Vec<T>::load_unaligned(p);
}
/// W lanes to p (no alignment needed).
template <class T>
inline void store(T* p, const Vec<T>& v) {
  v.store_unaligned(p);
}

/// The first n (0 <= n <= W) lanes of p, zero elsewhere; memory past them is
/// not read.
template <class T>
inline Vec<T> load_n(const T* p, Index n) {
#if XSIMD_WITH_AVX512F
  if constexpr (kAvx512<T>) {
    const auto mask = static_cast<unsigned>((std::uint64_t(1) << n) - 1);
    if constexpr (std::is_same_v<T, float>) {
      return _mm512_maskz_loadu_ps(static_cast<__mmask16>(mask), p);
    } else {
      return _mm512_maskz_loadu_pd(static_cast<__mmask8>(mask), p);
    }
  }
#endif
  alignas(64) T tmp[kW<T>] = {};
  std::copy(p, p + n, tmp);
  return Vec<T>::load_aligned(tmp);
}

/// Stores the first n (0 <= n <= W) lanes of v to p; memory past them is
/// not touched.
template <class T>
inline void store_n(T* p, const Vec<T>& v, Index n) {
#if XSIMD_WITH_AVX512F
  if constexpr (kAvx512<T>) {
    const auto mask = static_cast<unsigned>((std::uint64_t(1) << n) - 1);
    if constexpr (std::is_same_v<T, float>) {
      _mm512_mask_storeu_ps(p, static_cast<__mmask16>(mask), v);
    } else {
      _mm512_mask_storeu_pd(p, static_cast<__mmask8>(mask), v);
    }
    return;
  }
#endif
  alignas(64) T tmp[kW<T>];
  v.store_aligned(tmp);
  std::copy(tmp, tmp + n, p);
}

}  // namespace anode::simd

#endif  // ANODE_AUTODIFF_SIMD_H_
