#include "autodiff/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace anode {
namespace {

thread_local bool t_inside_parallel = false;

// A spin-wait hint to the core (frees pipeline resources, saves power).
inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}

int default_threads() {
  if (const char* env = std::getenv("ANODE_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

// Workers sleep on a condition variable between jobs, after spinning briefly:
// kernels come in bursts (one GEMM after another) and a futex wake costs
// several microseconds. A job is published under the mutex with a new
// generation; chunks are claimed from one 64-bit counter holding
// (generation << 32 | next chunk), so a late worker can never take a chunk
// of a job it did not read.
class Pool {
 public:
  explicit Pool(int threads) { start(threads); }
  ~Pool() { stop(); }

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int threads) {
    stop();
    start(threads);
  }

  void run(Index n, Index grain, FunctionRef<void(Index, Index)> fn) {
    std::lock_guard<std::mutex> one_job(job_mutex_);
    Job job;
    job.fn = &fn;
    job.n = n;
    const Index want = std::min<Index>(threads(), (n + grain - 1) / grain);
    job.per = (n + want - 1) / want;
    // Recount after rounding the chunk length up, so that no chunk is empty
    // (n = 9 in 4 chunks of 3 would leave [9, 9)).
    job.chunks = (n + job.per - 1) / job.per;
    pending_.store(job.chunks, std::memory_order_relaxed);
    failed_.store(false, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> g(mutex_);
      job.generation = ++generation_;
      job_ = job;
      counter_.store(tag(job.generation) << 32, std::memory_order_release);
      published_.store(job.generation, std::memory_order_release);
    }
    cv_.notify_all();
    t_inside_parallel = true;
    work(job);
    t_inside_parallel = false;
    // Chunks claimed by workers may still be running: `fn` must outlive them.
    // Spin first: a worker usually finishes within microseconds, and a
    // sched_yield system call costs about as much.
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < 20000)
        cpu_relax();
      else
        std::this_thread::yield();
    }
    if (failed_.load(std::memory_order_acquire)) {
      std::exception_ptr e = std::move(error_);
      error_ = nullptr;
      std::rethrow_exception(e);
    }
  }

 private:
  struct Job {
    FunctionRef<void(Index, Index)>* fn = nullptr;
    Index n = 0, per = 0, chunks = 0;
    std::uint64_t generation = 0;
  };

  // The generation's low 32 bits tag the claim counter.
  static std::uint64_t tag(std::uint64_t generation) { return generation & 0xffffffffu; }

  void start(int threads) {
    quit_ = false;
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { loop(); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> g(mutex_);
      quit_ = true;
      published_.store(++generation_, std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  // Claims chunks of `job` until none are left or a newer job replaced it.
  void work(const Job& job) {
    std::uint64_t v = counter_.load(std::memory_order_acquire);
    for (;;) {
      if ((v >> 32) != tag(job.generation)) return;
      Index c = static_cast<Index>(v & 0xffffffffu);
      if (c >= job.chunks) return;
      if (!counter_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) continue;
      Index b = c * job.per, e = std::min(job.n, b + job.per);
      // After a chunk throws, the rest are skipped; the first exception is
      // rethrown by the caller once every claimed chunk has finished.
      if (!failed_.load(std::memory_order_relaxed)) {
        try {
          (*job.fn)(b, e);
        } catch (...) {
          std::lock_guard<std::mutex> g(error_mutex_);
          if (!failed_.load(std::memory_order_relaxed)) {
            error_ = std::current_exception();
            failed_.store(true, std::memory_order_release);
          }
        }
      }
      pending_.fetch_sub(1, std::memory_order_acq_rel);
      v = counter_.load(std::memory_order_acquire);
    }
  }

  void loop() {
    t_inside_parallel = true;
    std::uint64_t seen = 0;
    for (;;) {
      // Spin a little before sleeping: the next job usually follows soon.
      for (int i = 0; i < 4000 && published_.load(std::memory_order_acquire) == seen; ++i)
        cpu_relax();
      Job job;
      {
        std::unique_lock<std::mutex> g(mutex_);
        cv_.wait(g, [&] { return generation_ != seen; });
        seen = generation_;
        if (quit_) return;
        job = job_;
      }
      work(job);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex job_mutex_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::uint64_t generation_ = 0;  // guarded by mutex_
  Job job_;                       // guarded by mutex_
  bool quit_ = false;             // guarded by mutex_
  std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> counter_{0};
  std::atomic<Index> pending_{0};
  std::atomic<bool> failed_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;  // guarded by error_mutex_, read once pending_ is 0
};

Pool& pool() {
  static Pool p(default_threads());
  return p;
}

}  // namespace

void set_num_threads(int n) {
  if (n < 1) throw ValueError("set_num_threads: thread count must be >= 1, got " + std::to_string(n));
  if (n != pool().threads()) pool().resize(n);
}

int num_threads() { return pool().threads(); }

void parallel_for(Index n, Index grain, FunctionRef<void(Index, Index)> fn) {
  if (n <= 0) return;
  grain = std::max<Index>(grain, 1);
  if (n <= grain || t_inside_parallel || pool().threads() == 1) {
    fn(0, n);
    return;
  }
  pool().run(n, grain, fn);
}

}  // namespace anode
