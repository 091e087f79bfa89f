#ifndef ANODE_ODE_BINOMIAL_SCHEDULE_H_
#define ANODE_ODE_BINOMIAL_SCHEDULE_H_

// Binomial checkpointing (Griewank 1992; Griewank & Walther, "Algorithm 799:
// revolve", 2000): how to reverse a chain of N steps keeping at most c states
// at a time, with the fewest recomputed steps. It is a pure algorithm over
// step indices; the binomial checkpoint gradient method (binomial.cc) runs
// the schedule on an ODE solve.
//
// State i is the state before step i (state 0 the initial one, state N the
// final one). Reversing step i needs state i; a schedule holds state 0 in
// slot 0 throughout and uses slots 1 .. c-1 for the others.
//
// With r the smallest integer such that N <= C(c + r, r), the optimal
// schedule advances (recomputes, counting the first sweep to state N - 1)
//   r N - C(c + r, r - 1)
// steps in all, and no step more than r times.

#include <cstdint>
#include <vector>

namespace anode::ode {

struct CheckpointAction {
  enum Kind : std::uint8_t {
    kStore,    // copy the current state (index `state`) into `slot`
    kRestore,  // the current state becomes the copy in `slot` (index `state`)
    kAdvance,  // run steps state .. to-1 unrecorded: the current state becomes `to`
    kReverse,  // the current state is `state`: re-run step `state` recorded and
               // backpropagate through it
  };
  Kind kind;
  int slot;
  std::int64_t state;
  std::int64_t to;
};

/// C(s + r, r), saturated at 2^62 (the schedule only compares it with N).
std::int64_t binomial_capacity(std::int64_t s, std::int64_t r);

/// r: the most times the optimal schedule advances any one step, the
/// smallest r >= 0 with N <= C(c + r, r) (N >= 1, c >= 1).
int binomial_repetitions(std::int64_t steps, int slots);

/// The steps the optimal schedule advances in all (the closed form above).
std::int64_t binomial_advances(std::int64_t steps, int slots);

/// The optimal schedule for reversing `steps` steps with `slots` state
/// slots (slot 0 holding state 0): it starts with kStore of state 0 in slot
/// 0, then a run of kAdvance / kStore (the first sweep, which a forward solve
/// of known length can do itself), then the first kReverse (of step N - 1),
/// and reverses every step exactly once, last first. Its kAdvance actions add
/// up to binomial_advances(steps, slots). Written into `out` (cleared;
/// its capacity is reused). Throws std::invalid_argument for steps < 1 or
/// slots < 1.
void binomial_schedule(std::int64_t steps, int slots, std::vector<CheckpointAction>& out);

}  // namespace anode::ode

#endif  // ANODE_ODE_BINOMIAL_SCHEDULE_H_
