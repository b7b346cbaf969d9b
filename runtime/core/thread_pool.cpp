#include "thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ALLOY_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define ALLOY_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define ALLOY_CPU_RELAX() ((void)0)
#endif

namespace alloy {
namespace {

// How long a thread spins on a shared flag before it sleeps. Long enough to
// bridge the Python glue between back-to-back launches, short enough not to
// keep cores busy when nothing runs.
constexpr auto kSpinFor = std::chrono::microseconds(200);
constexpr uint64_t kCountBits = 16;
constexpr uint64_t kCountMask = (uint64_t{1} << kCountBits) - 1;

// Spins until pred() holds or the spin budget runs out; returns pred().
template <class Pred> bool spin_until(Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + kSpinFor;
  for (int i = 0;; ++i) {
    if (pred()) return true;
    ALLOY_CPU_RELAX();
    if ((i & 63) == 63) {
      if (std::chrono::steady_clock::now() > deadline) return pred();
      std::this_thread::yield();
    }
  }
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  int workers = std::clamp(num_threads, 1, int(kCountMask)) - 1;
  workers_.reserve(workers);
  for (int i = 0; i < workers; ++i)
    workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(sleep_mutex_);
    stop_.store(true);
  }
  wake_cv_.notify_all();
  for (auto &t : workers_) t.join();
}

void ThreadPool::run_chunks() {
  const int64_t total = job_.total, chunk = job_.chunk;
  for (;;) {
    int64_t begin = job_.next.fetch_add(1, std::memory_order_relaxed) * chunk;
    if (begin >= total) return;
    job_.body(job_.ctx, begin, std::min(begin + chunk, total));
  }
}

void ThreadPool::parallel_for(int64_t total, int num_threads, RangeFn body,
                              void *ctx) {
  if (total <= 0) return;
  int64_t threads = num_threads <= 0 ? this->num_threads()
                                     : std::min(num_threads, this->num_threads());
  threads = std::min<int64_t>(threads, total);
  if (threads <= 1) {
    body(ctx, 0, total);
    return;
  }
  // A few chunks per thread balance uneven program instances.
  int64_t chunks = std::min<int64_t>(total, threads * 4);
  job_.body = body;
  job_.ctx = ctx;
  job_.total = total;
  job_.chunk = (total + chunks - 1) / chunks;
  job_.next.store(0, std::memory_order_relaxed);
  job_.pending.store(int(threads - 1), std::memory_order_relaxed);
  uint64_t gen = (word_.load(std::memory_order_relaxed) >> kCountBits) + 1;
  word_.store((gen << kCountBits) | uint64_t(threads - 1));
  if (sleepers_.load() > 0) {
    // Taking the lock orders this wake-up after a sleeper's predicate check.
    { std::lock_guard<std::mutex> lk(sleep_mutex_); }
    wake_cv_.notify_all();
  }
  run_chunks();
  wait_workers();
}

void ThreadPool::wait_workers() {
  auto done = [this] { return job_.pending.load() == 0; };
  if (spin_until(done)) return;
  std::unique_lock<std::mutex> lk(sleep_mutex_);
  caller_sleeping_.store(true);
  done_cv_.wait(lk, done);
  caller_sleeping_.store(false);
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t w = seen;
    auto changed = [&] {
      w = word_.load();
      return w != seen || stop_.load(std::memory_order_relaxed);
    };
    if (!spin_until(changed)) {
      std::unique_lock<std::mutex> lk(sleep_mutex_);
      sleepers_.fetch_add(1);
      wake_cv_.wait(lk, changed);
      sleepers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    seen = w;
    if (uint64_t(index) >= (w & kCountMask)) continue;  // not needed this time
    run_chunks();
    if (job_.pending.fetch_sub(1) == 1 && caller_sleeping_.load()) {
      { std::lock_guard<std::mutex> lk(sleep_mutex_); }
      done_cv_.notify_one();
    }
  }
}

}  // namespace alloy
