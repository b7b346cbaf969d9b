// CPU kernel launch: runs a compiled entry point over a grid on the pool.
// The entry point's C ABI is described in docs/cpu-abi.md.
#pragma once

#include <cstdint>

namespace alloy::cpu {

using EntryFn = void (*)(const int64_t *args, int64_t begin, int64_t end,
                         int64_t g0, int64_t g1, int64_t g2);

// Calls fn over linear ids [0, g0*g1*g2) on up to num_threads threads
// (0 = the pool's size); returns when every program instance is done.
// Thread-safe: concurrent launches run one after the other.
void launch(EntryFn fn, const int64_t *args, int64_t g0, int64_t g1,
            int64_t g2, int num_threads);

// Pool size used by later launches (counts the calling thread; >= 1).
void set_num_threads(int n);
int get_num_threads();

}  // namespace alloy::cpu
