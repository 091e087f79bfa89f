#ifndef ANODE_DATASETS_RANDOM_H_
#define ANODE_DATASETS_RANDOM_H_

// A seeded random source whose every output is the same on any platform and
// standard library. std::mt19937_64 is fully specified by the standard, but
// std::uniform_real_distribution, std::normal_distribution and std::shuffle are
// not (libstdc++ and libc++ give different numbers), so the conversions live
// here.

#include <cstdint>
#include <iterator>
#include <random>
#include <utility>

namespace anode::datasets {

/// Derives an independent seed for sub-stream `stream` of `seed` (SplitMix64
/// finalizer), e.g. one per epoch, so that epoch k's order does not depend on
/// how many epochs ran before.
std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t stream);

/// std::mt19937_64 with portable uniform, normal, bounded-integer and shuffle.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}

  /// The engine's next 64 random bits.
  std::uint64_t bits() { return engine_(); }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(bits() >> 11) * 0x1.0p-53; }
  /// Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Standard normal (Marsaglia's polar method; the second value is kept).
  double normal();
  /// Normal with the given mean and standard deviation.
  double normal(double mean, double stddev) { return mean + stddev * normal(); }
  /// Uniform integer in [0, n), unbiased (rejection below 2^64 mod n); n > 0.
  std::uint64_t below(std::uint64_t n);
  /// Fisher-Yates shuffle of a random-access range.
  template <class It>
  void shuffle(It first, It last) {
    auto n = static_cast<std::uint64_t>(std::distance(first, last));
    for (std::uint64_t i = n; i > 1; --i) {
      std::uint64_t j = below(i);
      using std::swap;
      swap(first[static_cast<std::ptrdiff_t>(i - 1)], first[static_cast<std::ptrdiff_t>(j)]);
    }
  }

 private:
  std::mt19937_64 engine_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace anode::datasets

#endif  // ANODE_DATASETS_RANDOM_H_
