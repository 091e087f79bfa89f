#ifndef ANODE_TESTS_AUTODIFF_ALLOCATION_COUNTER_H_
#define ANODE_TESTS_AUTODIFF_ALLOCATION_COUNTER_H_

// Heap allocations of the test binary that links allocation_counter.cc: it
// replaces the global operator new (plain and aligned) with counting ones.

namespace anode::testing {

/// Number of operator new calls so far (all threads).
long allocations();

}  // namespace anode::testing

#endif  // ANODE_TESTS_AUTODIFF_ALLOCATION_COUNTER_H_
