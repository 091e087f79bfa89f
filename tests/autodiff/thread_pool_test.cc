#include "autodiff/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace anode {
namespace {

// Restores the thread count when a test ends.
class ThreadCount {
 public:
  ThreadCount() : saved_(num_threads()) {}
  ~ThreadCount() { set_num_threads(saved_); }

 private:
  int saved_;
};

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  ThreadCount restore;
  for (int threads : {1, 2, 3, 4}) {
    set_num_threads(threads);
    ASSERT_EQ(num_threads(), threads);
    for (Index n : {0, 1, 2, 3, 7, 9, 64, 1000, 4097}) {
      for (Index grain : {0, 1, 2, 3, 16, 1000, 5000}) {
        SCOPED_TRACE("threads=" + std::to_string(threads) + " n=" + std::to_string(n) +
                     " grain=" + std::to_string(grain));
        std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
        std::mutex m;
        std::vector<std::pair<Index, Index>> chunks;
        parallel_for(n, grain, [&](Index b, Index e) {
          {
            std::lock_guard<std::mutex> g(m);
            chunks.emplace_back(b, e);
          }
          for (Index i = b; i < e; ++i) hits[i].fetch_add(1);
        });
        for (Index i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "index " << i;
        if (n == 0) {
          EXPECT_TRUE(chunks.empty());
          continue;
        }
        EXPECT_LE(chunks.size(), static_cast<std::size_t>(threads));
        for (auto [b, e] : chunks) {
          EXPECT_LT(b, e) << "empty chunk";
          if (e != n) {
            EXPECT_GE(e - b, std::max<Index>(grain, 1)) << "chunk below grain";
          }
        }
      }
    }
  }
}

TEST(ThreadPool, UsesSeveralThreadsForLargeJobs) {
  ThreadCount restore;
  set_num_threads(2);
  // A worker may be late and leave every chunk to the caller; retry a few times.
  bool saw_other_thread = false;
  for (int attempt = 0; attempt < 50 && !saw_other_thread; ++attempt) {
    std::mutex m;
    std::vector<std::thread::id> ids;
    parallel_for(2, 1, [&](Index, Index) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      std::lock_guard<std::mutex> g(m);
      ids.push_back(std::this_thread::get_id());
    });
    ASSERT_EQ(ids.size(), 2u);
    saw_other_thread = ids[0] != ids[1];
  }
  EXPECT_TRUE(saw_other_thread);
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadCount restore;
  set_num_threads(3);
  std::atomic<int> inner_total{0}, inner_calls{0}, foreign{0};
  parallel_for(3, 1, [&](Index, Index) {
    const auto outer_id = std::this_thread::get_id();
    parallel_for(100, 1, [&](Index b, Index e) {
      inner_calls.fetch_add(1);
      inner_total.fetch_add(static_cast<int>(e - b));
      if (std::this_thread::get_id() != outer_id) foreign.fetch_add(1);
    });
  });
  EXPECT_EQ(inner_total.load(), 300);
  EXPECT_EQ(inner_calls.load(), 3);  // one inline call per outer chunk
  EXPECT_EQ(foreign.load(), 0);
}

TEST(ThreadPool, SingleThreadRunsInline) {
  ThreadCount restore;
  set_num_threads(1);
  const auto id = std::this_thread::get_id();
  int calls = 0;
  parallel_for(1000, 1, [&](Index b, Index e) {
    ++calls;
    EXPECT_EQ(b, 0);
    EXPECT_EQ(e, 1000);
    EXPECT_EQ(std::this_thread::get_id(), id);
  });
  EXPECT_EQ(calls, 1);
}

TEST(ThreadPool, RejectsThreadCountBelowOne) {
  ThreadCount restore;
  set_num_threads(2);
  EXPECT_THROW(set_num_threads(0), ValueError);
  EXPECT_THROW(set_num_threads(-3), ValueError);
  EXPECT_EQ(num_threads(), 2);
}

TEST(ThreadPool, RepeatedJobsDoNotDeadlock) {
  ThreadCount restore;
  for (int threads : {2, 3}) {
    set_num_threads(threads);
    std::atomic<Index> sum{0};
    for (int job = 0; job < 20000; ++job)
      parallel_for(8, 1, [&](Index b, Index e) { sum.fetch_add(e - b); });
    EXPECT_EQ(sum.load(), 8 * 20000);
  }
  // Resizing between jobs, and jobs right after a resize.
  for (int round = 0; round < 50; ++round) {
    set_num_threads(1 + round % 3);
    std::atomic<Index> sum{0};
    parallel_for(100, 1, [&](Index b, Index e) { sum.fetch_add(e - b); });
    EXPECT_EQ(sum.load(), 100);
  }
}

TEST(ThreadPool, ConcurrentCallersTakeTurns) {
  ThreadCount restore;
  set_num_threads(2);
  std::atomic<Index> sum{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 3; ++t)
    callers.emplace_back([&] {
      for (int job = 0; job < 2000; ++job)
        parallel_for(10, 1, [&](Index b, Index e) { sum.fetch_add(e - b); });
    });
  for (auto& c : callers) c.join();
  EXPECT_EQ(sum.load(), 3 * 2000 * 10);
}

TEST(ThreadPool, ExceptionsReachTheCaller) {
  ThreadCount restore;
  set_num_threads(2);
  for (int round = 0; round < 20; ++round) {
    EXPECT_THROW(parallel_for(2, 1,
                              [&](Index b, Index) {
                                if (b == round % 2) throw std::runtime_error("chunk failed");
                              }),
                 std::runtime_error);
  }
  // The pool still works, and the caller is no longer marked as nested.
  std::atomic<Index> sum{0};
  std::atomic<int> calls{0};
  parallel_for(1000, 1, [&](Index b, Index e) {
    calls.fetch_add(1);
    sum.fetch_add(e - b);
  });
  EXPECT_EQ(sum.load(), 1000);
  EXPECT_EQ(calls.load(), 2);
}

}  // namespace
}  // namespace anode
