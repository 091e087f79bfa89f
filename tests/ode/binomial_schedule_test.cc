// The binomial checkpoint schedule: a valid reversal (every step once, last
// first, from the right state, within the slots), with the fewest advances:
// equal to Griewank's closed form, and to a brute-force minimum over all
// split points for small N and c; no step advanced more than r times.
#include "ode/binomial_schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <stdexcept>
#include <vector>

namespace anode::ode {
namespace {

// Runs a schedule on state indices; returns the advances and fails the test
// on any invalid action.
struct Replay {
  std::int64_t advances = 0;
  int max_repeats = 0;
  bool prefix_ok = true;  // only stores and advances before the first reverse
};

Replay replay(std::int64_t n, int c, const std::vector<CheckpointAction>& actions) {
  Replay rep;
  std::vector<std::int64_t> slot(c, -1);
  std::vector<int> advanced(n, 0);
  std::int64_t current = 0, next_reverse = n - 1;  // the solve starts at state 0
  bool reversed_any = false;
  for (const CheckpointAction& a : actions) {
    switch (a.kind) {
      case CheckpointAction::kStore:
        EXPECT_TRUE(a.slot >= 0 && a.slot < c) << "slot " << a.slot;
        if (a.slot == 0) {
          EXPECT_EQ(a.state, 0);
        }
        EXPECT_EQ(current, a.state) << "store of a state that is not current";
        slot[a.slot] = a.state;
        break;
      case CheckpointAction::kRestore:
        EXPECT_TRUE(a.slot >= 0 && a.slot < c);
        EXPECT_EQ(slot[a.slot], a.state) << "restore of slot " << a.slot;
        current = a.state;
        if (!reversed_any) rep.prefix_ok = false;
        break;
      case CheckpointAction::kAdvance:
        EXPECT_EQ(current, a.state);
        EXPECT_GT(a.to, a.state);
        EXPECT_LE(a.to, n - 1);
        for (std::int64_t i = a.state; i < a.to; ++i) ++advanced[i];
        rep.advances += a.to - a.state;
        current = a.to;
        break;
      case CheckpointAction::kReverse:
        EXPECT_EQ(a.state, next_reverse) << "steps must be reversed last first, once each";
        EXPECT_EQ(current, a.state) << "reverse of step " << a.state << " from state " << current;
        --next_reverse;
        current = -1;
        reversed_any = true;
        break;
    }
  }
  EXPECT_EQ(next_reverse, -1) << "not every step was reversed";
  rep.max_repeats = advanced.empty() ? 0 : *std::max_element(advanced.begin(), advanced.end());
  return rep;
}

// Griewank's recurrence, minimized over every split by brute force:
// T(l, 1) = l (l - 1) / 2, T(1, c) = 0, T(l, c) = min_m m + T(l - m, c - 1) + T(m, c).
std::int64_t brute_force(std::int64_t l, int c, std::map<std::pair<std::int64_t, int>, std::int64_t>& memo) {
  if (l == 1) return 0;
  if (c == 1) return l * (l - 1) / 2;
  auto it = memo.find({l, c});
  if (it != memo.end()) return it->second;
  std::int64_t best = -1;
  for (std::int64_t m = 1; m < l; ++m) {
    const std::int64_t t = m + brute_force(l - m, c - 1, memo) + brute_force(m, c, memo);
    if (best < 0 || t < best) best = t;
  }
  memo[{l, c}] = best;
  return best;
}

TEST(BinomialSchedule, ClosedFormIsTheBruteForceMinimum) {
  std::map<std::pair<std::int64_t, int>, std::int64_t> memo;
  for (int c = 1; c <= 6; ++c) {
    for (std::int64_t n = 1; n <= 60; ++n) {
      EXPECT_EQ(binomial_advances(n, c), brute_force(n, c, memo)) << "N = " << n << ", c = " << c;
    }
  }
}

TEST(BinomialSchedule, ScheduleIsValidOptimalAndBoundsRepetitions) {
  std::vector<CheckpointAction> actions;
  std::map<std::pair<std::int64_t, int>, std::int64_t> memo;
  for (int c = 1; c <= 9; ++c) {
    for (std::int64_t n = 1; n <= 300; n += (n < 80 ? 1 : 7)) {
      binomial_schedule(n, c, actions);
      ASSERT_FALSE(actions.empty());
      EXPECT_EQ(actions.front().kind, CheckpointAction::kStore);
      Replay rep = replay(n, c, actions);
      EXPECT_EQ(rep.advances, binomial_advances(n, c)) << "N = " << n << ", c = " << c;
      if (n <= 60 && c <= 6) {
        EXPECT_EQ(rep.advances, brute_force(n, c, memo));
      }
      const int r = binomial_repetitions(n, c);
      EXPECT_LE(rep.max_repeats, r) << "N = " << n << ", c = " << c;
      EXPECT_TRUE(rep.prefix_ok) << "N = " << n << ", c = " << c;
    }
  }
}

TEST(BinomialSchedule, RepetitionsFollowTheBinomialCapacity) {
  // N <= C(c + r, r) exactly when r repetitions suffice.
  EXPECT_EQ(binomial_repetitions(1, 1), 0);
  EXPECT_EQ(binomial_repetitions(10, 10), 1);  // C(11, 1) = 11
  EXPECT_EQ(binomial_repetitions(11, 10), 1);
  EXPECT_EQ(binomial_repetitions(12, 10), 2);
  EXPECT_EQ(binomial_repetitions(66, 10), 2);  // C(12, 2) = 66
  EXPECT_EQ(binomial_repetitions(67, 10), 3);
  EXPECT_EQ(binomial_repetitions(1000, 64), 2);  // C(66, 2) = 2145
  EXPECT_EQ(binomial_capacity(64, 2), 2145);
  // One slot (state 0 only): every step from the start, N (N - 1) / 2 advances.
  EXPECT_EQ(binomial_advances(100, 1), 4950);
  // Slots for every state: one sweep, no step twice.
  EXPECT_EQ(binomial_advances(100, 100), 99);
  // Large N does not overflow.
  EXPECT_EQ(binomial_repetitions(std::int64_t{1} << 40, 2), 1482909);
  EXPECT_EQ(binomial_capacity(1000000, 1000000), std::int64_t{1} << 62);
}

TEST(BinomialSchedule, LongChainWithFewSlots) {
  std::vector<CheckpointAction> actions;
  binomial_schedule(5000, 12, actions);
  Replay rep = replay(5000, 12, actions);
  EXPECT_EQ(rep.advances, binomial_advances(5000, 12));
  EXPECT_LE(rep.max_repeats, binomial_repetitions(5000, 12));
}

TEST(BinomialSchedule, BadArguments) {
  std::vector<CheckpointAction> actions;
  EXPECT_THROW(binomial_schedule(0, 4, actions), std::invalid_argument);
  EXPECT_THROW(binomial_schedule(10, 0, actions), std::invalid_argument);
  EXPECT_THROW(binomial_repetitions(10, 0), std::invalid_argument);
}

}  // namespace
}  // namespace anode::ode
