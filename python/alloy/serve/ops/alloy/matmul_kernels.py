"""Matrix products against weights kept quantized: ``Y[m, n] = sum_k X[m, k] * W[n, k]``.

Weights come as ``weights.QuantWeight``: per row, int8 codes (or two 4-bit codes a byte, in ggml's
order: byte ``j`` of a 32-element group holds element ``j`` in its low nibble and ``j + 16`` in its
high one) with one scale and optional offset per group of ``G`` elements, stored group-major, so element ``k``
of row ``n`` is ``(code - BIAS) * scale[k // G, n] + offset[k // G, n]``. The kernels convert a ``[BN, G]`` tile
of codes in registers, multiply it by the activations and scale the group's partial sums; nothing
dequantised is written to memory.
"""
from __future__ import annotations

import alloy as al


@al.kernel
def quant_matvec(X, Codes, Scales, Offsets, Y: al.output, M, N, K, BN: al.constexpr, G: al.constexpr,
         NIBBLES: al.constexpr, BIAS: al.constexpr, HAS_OFFSET: al.constexpr, EVEN: al.constexpr):
    """Program (i, m): outputs ``n`` in block ``i`` of row ``m``, one group of ``G`` columns a step:
    ``sum_k w x = sum_g scale_g * sum_j code_j x_j + (offset_g - BIAS * scale_g) * sum_j x_j``, both
    terms accumulated elementwise and reduced once at the end. ``EVEN``: ``N`` is a multiple of ``BN``
    (no masks: AVX2 has no masked byte loads)."""
    m = al.program_id(1)
    rn = al.program_id(0) * BN + al.arange(0, BN)
    rows = rn < N
    groups = K // G
    acc = al.zeros((BN, G // 2), al.float32) if NIBBLES else al.zeros((BN, G), al.float32)
    for g in range(0, groups):
        if EVEN:
            s = al.load(Scales + g * N + rn).to(al.float32)
        else:
            s = al.load(Scales + g * N + rn, mask=rows, other=0.0).to(al.float32)
        if NIBBLES:
            j = al.arange(0, G // 2)
            if EVEN:
                c = al.load(Codes + rn[:, None] * (K // 2) + g * (G // 2) + j[None, :])
            else:
                c = al.load(Codes + rn[:, None] * (K // 2) + g * (G // 2) + j[None, :], mask=rows[:, None], other=0)
            x_lo = al.load(X + m * K + g * G + j)
            x_hi = al.load(X + m * K + g * G + G // 2 + j)
            t = (c & 15).to(al.float32) * x_lo[None, :] + (c >> 4).to(al.float32) * x_hi[None, :]
            xv = x_lo + x_hi
        else:
            j = al.arange(0, G)
            if EVEN:
                c = al.load(Codes + rn[:, None] * K + g * G + j[None, :])
            else:
                c = al.load(Codes + rn[:, None] * K + g * G + j[None, :], mask=rows[:, None], other=0)
            xv = al.load(X + m * K + g * G + j)
            t = c.to(al.float32) * xv[None, :]
        acc += s[:, None] * t
        if HAS_OFFSET:
            if EVEN:
                o = al.load(Offsets + g * N + rn).to(al.float32)
            else:
                o = al.load(Offsets + g * N + rn, mask=rows, other=0.0).to(al.float32)
            acc += (o - BIAS * s)[:, None] * xv[None, :]
        elif BIAS != 0:
            acc -= (BIAS * s)[:, None] * xv[None, :]
    al.store(Y + m * N + rn, al.sum(acc, axis=1), mask=rows)


@al.kernel
def dense_matvec(X, W, Y: al.output, M, N, K, BN: al.constexpr, BK: al.constexpr):
    """Program (i, m): ``Y[m, n] = X[m] . W[n]`` for the ``BN`` outputs of block ``i``; float weights."""
    m = al.program_id(1)
    rn = al.program_id(0) * BN + al.arange(0, BN)
    rows = rn < N
    acc = al.zeros((BN, BK), al.float32)
    for k in range(0, K, BK):
        cols = k + al.arange(0, BK)
        w = al.load(W + rn[:, None] * K + cols[None, :], mask=rows[:, None] & (cols[None, :] < K), other=0.0)
        x = al.load(X + m * K + cols, mask=cols < K, other=0.0)
        acc += w.to(al.float32) * x.to(al.float32)[None, :]
    al.store(Y + m * N + rn, al.sum(acc, axis=1), mask=rows)


@al.kernel
def quant_matmul(X, Codes, Scales, Offsets, Y: al.output, M, N, K, BM: al.constexpr, BN: al.constexpr,
                 G: al.constexpr, NIBBLES: al.constexpr, BIAS: al.constexpr, HAS_OFFSET: al.constexpr):
    """Program (i, j): the ``[BM, BN]`` tile of ``Y`` at rows ``i * BM``, columns ``j * BN``; each group's
    codes are converted once and multiplied with ``BM`` activation rows (prefill)."""
    rm = al.program_id(0) * BM + al.arange(0, BM)
    rn = al.program_id(1) * BN + al.arange(0, BN)
    live_m = rm < M
    live_n = rn < N
    groups = K // G
    acc = al.zeros((BM, BN), al.float32)
    for g in range(0, groups):
        s = al.load(Scales + g * N + rn, mask=live_n, other=0.0).to(al.float32)
        if NIBBLES:
            j = al.arange(0, G // 2)
            c = al.load(Codes + rn[:, None] * (K // 2) + g * (G // 2) + j[None, :], mask=live_n[:, None], other=0)
            x_lo = al.load(X + rm[:, None] * K + g * G + j[None, :], mask=live_m[:, None], other=0.0)
            x_hi = al.load(X + rm[:, None] * K + g * G + G // 2 + j[None, :], mask=live_m[:, None], other=0.0)
            t = al.tile_dot(x_lo, (c & 15).to(al.float32), transpose_rhs=True) + \
                al.tile_dot(x_hi, (c >> 4).to(al.float32), transpose_rhs=True)
            xs = al.sum(x_lo, axis=1) + al.sum(x_hi, axis=1)
        else:
            j = al.arange(0, G)
            c = al.load(Codes + rn[:, None] * K + g * G + j[None, :], mask=live_n[:, None], other=0)
            xg = al.load(X + rm[:, None] * K + g * G + j[None, :], mask=live_m[:, None], other=0.0)
            t = al.tile_dot(xg, c.to(al.float32), transpose_rhs=True)
            xs = al.sum(xg, axis=1)
        acc += t * s[None, :]
        if HAS_OFFSET:
            o = al.load(Offsets + g * N + rn, mask=live_n, other=0.0).to(al.float32)
            acc += xs[:, None] * (o - BIAS * s)[None, :]
        elif BIAS != 0:
            acc -= xs[:, None] * (BIAS * s)[None, :]
    al.store(Y + rm[:, None] * N + rn[None, :], acc, mask=live_m[:, None] & live_n[None, :])
