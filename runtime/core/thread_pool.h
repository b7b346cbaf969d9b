// Persistent worker pool for the CPU launch path.
//
// One job runs at a time: the caller publishes it, works on it too, and
// returns once every participating worker is done. Workers spin briefly
// after a job (back-to-back launches stay cheap), then sleep on a condition
// variable. No exceptions cross the pool: jobs are plain C callbacks.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace alloy {

// A range body: runs items [begin, end) of the job; `ctx` is the caller's.
using RangeFn = void (*)(void *ctx, int64_t begin, int64_t end);

class ThreadPool {
public:
  // `num_threads` counts the caller: a pool of N starts N - 1 workers.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs body over [0, total) split into contiguous chunks, on up to
  // `num_threads` threads (0 = all; the caller is one of them). Blocks until
  // every chunk is done. Not reentrant: callers serialize their calls.
  void parallel_for(int64_t total, int num_threads, RangeFn body, void *ctx);

private:
  struct Job {
    RangeFn body = nullptr;
    void *ctx = nullptr;
    int64_t total = 0;
    int64_t chunk = 1;
    std::atomic<int64_t> next{0};
    std::atomic<int> pending{0};
  };

  void worker_loop(int index);
  void run_chunks();
  void wait_workers();

  std::vector<std::thread> workers_;
  Job job_;
  // (generation << 16) | participating workers; a change means "new job".
  std::atomic<uint64_t> word_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> sleepers_{0};
  std::mutex sleep_mutex_;
  std::condition_variable wake_cv_;
  std::atomic<bool> caller_sleeping_{false};
  std::condition_variable done_cv_;
};

}  // namespace alloy
