"""Thread-level kernels: a row sum written per thread, with SIMD-group reductions, shared memory and a
barrier; and a butterfly all-reduce with al.simd_shuffle_xor."""
import sys

import numpy as np

import alloy as al


@al.kernel
def row_sum(x, out: al.output, N):
    """One threadgroup per row: each thread adds a strided slice, SIMD groups reduce their lanes, the
    SIMD groups' partial sums meet in shared memory."""
    row = al.program_id(0)
    t = al.thread_id()
    partial = al.shared(32)
    s = 0.0
    for i in range(t, N, al.num_threads()):
        s += al.load(x + row * N + i)
    s = al.simd_reduce(s)
    if al.simd_lane() == 0:
        partial[al.simd_group()] = s
    al.barrier()
    if t == 0:
        total = 0.0
        for g in range(al.num_threads() // al.simd_size()):
            total += partial[g]
        al.store(out + row, total)


@al.kernel
def butterfly_max(x, out: al.output):
    """Every lane ends with its SIMD group's maximum: five xor-shuffle steps."""
    i = al.program_id(0) * al.num_threads() + al.thread_id()
    v = al.load(x + i)
    for step in al.static_range(5):
        v = al.maximum(v, al.simd_shuffle_xor(v, 16 >> step))
    al.store(out + i, v)


def main():
    rows, n = 64, 3000
    x = np.random.rand(rows, n).astype(np.float32)
    sums = np.asarray(row_sum[rows](x, n, threads=256))
    ok = np.allclose(sums, x.sum(axis=1, dtype=np.float64), rtol=1e-5)
    y = np.random.rand(4 * 128).astype(np.float32)
    maxes = np.asarray(butterfly_max[4](y, threads=128))
    ok &= np.array_equal(maxes, np.repeat(y.reshape(-1, 32).max(axis=1), 32))
    print("block_reduce:", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
