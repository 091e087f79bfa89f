#ifndef ANODE_AUTODIFF_THREAD_POOL_H_
#define ANODE_AUTODIFF_THREAD_POOL_H_

// A small fixed thread pool behind one function, parallel_for. GEMM and large
// elementwise kernels split their work with it; everything else stays serial.

#include "autodiff/function_ref.h"
#include "autodiff/tensor.h"

namespace anode {

/// Sets how many threads parallel_for uses (the caller counts as one).
/// 1 disables threading. Throws ValueError if n < 1. Not thread-safe: call it
/// at start-up, not while other threads run kernels. The initial value is
/// $ANODE_NUM_THREADS if set, else the number of hardware threads.
void set_num_threads(int n);

/// The current thread count (>= 1).
int num_threads();

/// Calls fn(begin, end) on disjoint chunks covering [0, n), each chunk at
/// least `grain` long (except possibly the last), spread over the pool.
/// Runs inline when n <= grain, when only one thread is configured, or when
/// called from inside another parallel_for. Returns when every chunk is done.
void parallel_for(Index n, Index grain, FunctionRef<void(Index, Index)> fn);

}  // namespace anode

#endif  // ANODE_AUTODIFF_THREAD_POOL_H_
