"""Attention with an online softmax: one program per block of queries, streaming keys/values."""
import math
import sys

import numpy as np

import alloy as al


@al.kernel
def flash_attention(Q, K, V, O: al.output, L, scale, D: al.constexpr, BM: al.constexpr = 32,
                    BN: al.constexpr = 32):
    qi = al.program_id(0) * BM + al.arange(0, BM)
    d = al.arange(0, D)
    qmask = qi[:, None] < L
    q = al.load(Q + qi[:, None] * D + d[None, :], mask=qmask)
    m = al.full((BM,), -float("inf"), al.float32)
    l = al.zeros((BM,), al.float32)
    acc = al.zeros((BM, D), al.float32)
    for start in range(0, L, BN):
        kj = start + al.arange(0, BN)
        kmask = kj[:, None] < L
        k = al.load(K + kj[:, None] * D + d[None, :], mask=kmask)
        v = al.load(V + kj[:, None] * D + d[None, :], mask=kmask)
        s = al.tile_dot(q, k, transpose_rhs=True) * scale
        s = al.where(kj[None, :] < L, s, -float("inf"))
        m_new = al.maximum(m, al.max(s, axis=1))
        p = al.exp(s - m_new[:, None])
        alpha = al.exp(m - m_new)
        l = l * alpha + al.sum(p, axis=1)
        acc = acc * alpha[:, None] + al.tile_dot(p, v)
        m = m_new
    al.store(O + qi[:, None] * D + d[None, :], acc / l[:, None], mask=qmask)


def main():
    L, D = 200, 64
    q, k, v = (np.random.randn(L, D).astype(np.float32) for _ in range(3))
    scale = 1.0 / math.sqrt(D)
    o = np.asarray(flash_attention[al.cdiv(L, 32)](q, k, v, L, scale, D=D)).reshape(L, D)
    s = q @ k.T * scale
    p = np.exp(s - s.max(1, keepdims=True))
    ref = (p / p.sum(1, keepdims=True)) @ v
    ok = np.allclose(o, ref, atol=1e-4)
    print("flash_attention:", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
