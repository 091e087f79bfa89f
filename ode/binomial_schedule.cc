#include "ode/binomial_schedule.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace anode::ode {
namespace {

constexpr std::int64_t kCap = std::int64_t{1} << 62;

// A range of steps [from, to) to reverse, its start state in `held`, and
// `slots` slots (counting `held`; the free ones are held + 1 ...).
struct Range {
  std::int64_t from, to;
  int slots;
  int held;
};

}  // namespace

std::int64_t binomial_capacity(std::int64_t s, std::int64_t r) {
  if (r < 0 || s < 0) return 0;
  // C(s + r, r) = prod_{k=1..r} (s + k) / k, exact at every step.
  std::int64_t b = 1;
  for (std::int64_t k = 1; k <= r; ++k) {
    if (b > kCap / (s + k)) return kCap;
    b = b * (s + k) / k;
  }
  return b;
}

int binomial_repetitions(std::int64_t steps, int slots) {
  if (steps < 1 || slots < 1) {
    throw std::invalid_argument("binomial_repetitions: need steps >= 1 and slots >= 1, got steps = " +
                                std::to_string(steps) + ", slots = " + std::to_string(slots));
  }
  // C(c + r, r) = C(c + r - 1, r - 1) (c + r) / r, exact, saturating.
  std::int64_t r = 0, b = 1;
  while (b < steps) {
    ++r;
    b = b > kCap / (slots + r) ? kCap : b * (slots + r) / r;
  }
  return static_cast<int>(r);
}

std::int64_t binomial_advances(std::int64_t steps, int slots) {
  const int r = binomial_repetitions(steps, slots);
  return r * steps - binomial_capacity(slots + 1, r - 1);
}

void binomial_schedule(std::int64_t steps, int slots, std::vector<CheckpointAction>& out) {
  if (steps < 1 || slots < 1) {
    throw std::invalid_argument("binomial_schedule: need steps >= 1 and slots >= 1, got steps = " +
                                std::to_string(steps) + ", slots = " + std::to_string(slots));
  }
  out.clear();
  out.push_back({CheckpointAction::kStore, 0, 0, 0});
  std::int64_t current = 0;  // index of the current state (-1: consumed by a reverse)
  // An explicit stack (no recursion): the right part of a split is reversed
  // first, from the state stored at the split, then the left part.
  // (Reused: a training step in steady state allocates nothing.)
  thread_local std::vector<Range> stack;
  stack.assign(1, Range{0, steps, static_cast<int>(std::min<std::int64_t>(slots, steps)), 0});
  auto reach = [&](const Range& g, std::int64_t state) {
    if (current != g.from) out.push_back({CheckpointAction::kRestore, g.held, g.from, 0});
    if (state > g.from) out.push_back({CheckpointAction::kAdvance, 0, g.from, state});
    current = state;
  };
  while (!stack.empty()) {
    const Range g = stack.back();
    stack.pop_back();
    const std::int64_t l = g.to - g.from;
    if (l == 1 || g.slots == 1) {
      // No free slot: every step from the held state, last first.
      for (std::int64_t e = g.to - 1; e >= g.from; --e) {
        reach(g, e);
        out.push_back({CheckpointAction::kReverse, 0, e, 0});
        current = -1;
      }
      continue;
    }
    // The split that Griewank's recurrence T(l, c) = min_m m + T(l - m, c - 1)
    // + T(m, c) minimizes: with r the repetitions of this range, any m with
    //   max(C(c + r - 2, r - 2), l - C(c - 1 + r, r)) <= m
    //     <= min(C(c + r - 1, r - 1), l - C(c + r - 2, r - 1))
    // is optimal (checked against the recurrence in binomial_schedule_test).
    const int c = g.slots;
    const int r = binomial_repetitions(l, c);
    std::int64_t m = std::max(binomial_capacity(c, r - 2), l - binomial_capacity(c - 1, r));
    m = std::clamp<std::int64_t>(m, 1, l - 1);
    reach(g, g.from + m);
    const int slot = g.held + 1;
    out.push_back({CheckpointAction::kStore, slot, g.from + m, 0});
    stack.push_back({g.from, g.from + m, c, g.held});
    stack.push_back({g.from + m, g.to, c - 1, slot});
  }
}

}  // namespace anode::ode
