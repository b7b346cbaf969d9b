"""GEMM two ways: a naive one-output-per-program kernel and the tiled `tile_dot` kernel from the README."""
import sys

import numpy as np

import alloy as al


@al.kernel
def matmul_naive(A, B, C: al.output):
    M, K = A.shape
    N = B.shape[1]
    i = al.program_id(0)
    j = al.program_id(1)
    acc = 0.0
    for k in range(K):
        acc += al.load(A + i * K + k) * al.load(B + k * N + j)
    al.store(C + i * N + j, acc)


@al.kernel
def matmul(A, B_T, C: al.output,
           BLOCK_M: al.constexpr = 64, BLOCK_N: al.constexpr = 64, BLOCK_K: al.constexpr = 16):
    M, K = A.shape
    N = B_T.shape[0]
    pm = al.program_id(0)
    pn = al.program_id(1)
    rm = pm * BLOCK_M + al.arange(0, BLOCK_M)
    rn = pn * BLOCK_N + al.arange(0, BLOCK_N)
    rk = al.arange(0, BLOCK_K)
    a_ptrs = A + rm[:, None] * K + rk[None, :]
    b_ptrs = B_T + rn[:, None] * K + rk[None, :]
    acc = al.zeros((BLOCK_M, BLOCK_N), dtype=al.float32)
    for k in range(0, K, BLOCK_K):
        a = al.load(a_ptrs, mask=(rm[:, None] < M) & (rk[None, :] < K))
        b = al.load(b_ptrs, mask=(rn[:, None] < N) & (rk[None, :] < K))
        acc += al.tile_dot(a, b, transpose_rhs=True)
        a_ptrs += BLOCK_K
        b_ptrs += BLOCK_K
    al.store(C + rm[:, None] * N + rn[None, :], acc, mask=(rm[:, None] < M) & (rn[None, :] < N))


def main():
    M, K, N = 200, 96, 130  # ragged: not multiples of the block sizes
    A = np.random.randn(M, K).astype(np.float32)
    B = np.random.randn(K, N).astype(np.float32)
    ref = A @ B
    c1 = np.asarray(matmul_naive[M, N](A, B))
    c2 = np.asarray(matmul[al.cdiv(M, 64), al.cdiv(N, 64)](A, np.ascontiguousarray(B.T)))
    ok = c1.shape == (M, N) and c2.shape == (M, N) and np.allclose(c1, ref, atol=1e-4) \
        and np.allclose(c2, ref, atol=1e-4)
    print("matmul:", "ok" if ok else "MISMATCH", f"(naive and tiled, {M}x{K} @ {K}x{N})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
