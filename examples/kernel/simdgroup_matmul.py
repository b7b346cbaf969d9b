"""GEMM on SIMD-group matrices: each threadgroup stages 32x8 tiles of A and 8x32 tiles of B in shared
memory; its 16 SIMD groups each own one 8x8 block of the 32x32 output tile and accumulate it with
al.simd_mma (simdgroup_multiply_accumulate on Metal, tensor cores on CUDA for 16-bit inputs)."""
import sys

import numpy as np

import alloy as al

TILE = 32


@al.kernel
def simdgroup_matmul(A, B, C: al.output, M, N, K):
    t = al.thread_id()
    row0 = al.program_id(0) * TILE
    col0 = al.program_id(1) * TILE
    sa = al.shared(TILE * 8)
    sb = al.shared(8 * TILE)
    sc = al.shared(TILE * TILE)
    g = al.simd_group()
    bm = g // 4
    bn = g % 4
    acc = al.simd_matrix()
    for k0 in range(0, K, 8):
        for e in range(t, TILE * 8, al.num_threads()):
            r = row0 + e // 8
            c = k0 + e % 8
            sa[e] = al.load(A + r * K + c, mask=(r < M) & (c < K), other=0.0)
            r2 = k0 + e // TILE
            c2 = col0 + e % TILE
            sb[e] = al.load(B + r2 * N + c2, mask=(r2 < K) & (c2 < N), other=0.0)
        al.barrier()
        acc = al.simd_mma(acc, al.simd_load(sa, bm * 64, 8), al.simd_load(sb, bn * 8, TILE))
        al.barrier()
    al.simd_store(acc, sc, bm * 8 * TILE + bn * 8, TILE)
    al.barrier()
    for e in range(t, TILE * TILE, al.num_threads()):
        r = row0 + e // TILE
        c = col0 + e % TILE
        al.store(C + r * N + c, sc[e], mask=(r < M) & (c < N))


def main():
    m, n, k = 100, 70, 50
    a = np.random.rand(m, k).astype(np.float32)
    b = np.random.rand(k, n).astype(np.float32)
    c = np.zeros((m, n), np.float32)
    simdgroup_matmul[al.cdiv(m, TILE), al.cdiv(n, TILE)](a, b, m, n, k, C=c, threads=512)
    ok = np.allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    print("simdgroup_matmul:", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
