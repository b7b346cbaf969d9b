#include "launch.h"

#include <memory>
#include <mutex>
#include <thread>

#include <pthread.h>

#include "../core/thread_pool.h"

namespace alloy::cpu {
namespace {

struct Grid {
  EntryFn fn;
  const int64_t *args;
  int64_t g0, g1, g2;
};

void run_range(void *ctx, int64_t begin, int64_t end) {
  auto *g = static_cast<const Grid *>(ctx);
  g->fn(g->args, begin, end, g->g0, g->g1, g->g2);
}

int default_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : int(n);
}

// The pool is created on the first launch that needs it and rebuilt when
// the size changes. After fork() the child has no workers: it builds anew.
std::mutex g_mutex;
std::unique_ptr<ThreadPool> g_pool;
int g_num_threads = default_threads();
bool g_forked = false;
std::once_flag g_atfork_once;

ThreadPool &pool_locked() {
  if (g_forked) {
    (void)g_pool.release();  // its threads do not exist here: never join them
    g_forked = false;
  }
  if (!g_pool || g_pool->num_threads() != g_num_threads)
    g_pool = std::make_unique<ThreadPool>(g_num_threads);
  return *g_pool;
}

}  // namespace

void launch(EntryFn fn, const int64_t *args, int64_t g0, int64_t g1,
            int64_t g2, int num_threads) {
  const int64_t total = g0 * g1 * g2;
  if (total <= 0) return;
  Grid grid{fn, args, g0, g1, g2};
  if (total == 1 || num_threads == 1) {
    fn(args, 0, total, g0, g1, g2);
    return;
  }
  std::call_once(g_atfork_once, [] {
    pthread_atfork(nullptr, nullptr, [] { g_forked = true; });
  });
  std::lock_guard<std::mutex> lk(g_mutex);
  pool_locked().parallel_for(total, num_threads, run_range, &grid);
}

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lk(g_mutex);
  g_num_threads = n < 1 ? 1 : n;
}

int get_num_threads() {
  std::lock_guard<std::mutex> lk(g_mutex);
  return g_num_threads;
}

}  // namespace alloy::cpu
