"""Matrix products against weights kept quantized: ``Y[m, n] = sum_k X[m, k] * W[n, k]``.

Weights come as ``weights.QuantWeight``: int8 codes (or two 4-bit codes a byte, in ggml's order:
byte ``j`` of a 32-element group holds element ``j`` in its low nibble and ``j + 16`` in its high
one), interleaved in blocks of ``IB`` output rows — the bytes of group ``g`` of rows
``b * IB .. b * IB + IB - 1`` lie together at ``((b * groups + g) * IB + r) * GB`` — with one scale
and optional offset per group of ``G`` elements, stored group-major over the ``NP`` (padded) rows,
so element ``k`` of row ``n`` is ``(code - BIAS) * scale[k // G, n] + offset[k // G, n]``. With
``SUB`` > 0 (super-block types) a scale is the product ``block_scale[k // (G * SUB), n] * scale[...]``
of its two stored factors (offsets likewise), multiplied in the order the numpy decoders use. The
kernels convert a tile of codes in registers, multiply it by the activations and scale the group's
partial sums; nothing dequantised is written to memory.
"""
from __future__ import annotations

import alloy as al


@al.kernel
def quant_matvec(X, Codes, Scales, Offsets, BlockScales, BlockOffsets, Y: al.output, M, N, NP, K,
                 IB: al.constexpr, G: al.constexpr, NIBBLES: al.constexpr, BIAS: al.constexpr,
                 HAS_OFFSET: al.constexpr, SUB: al.constexpr):
    """Program (b, m): the ``IB`` outputs of row block ``b`` for activation row ``m``, a group a step:
    ``sum_k w x = sum_g scale_g * sum_j code_j x_j + (offset_g - BIAS * scale_g) * sum_j x_j``, both
    terms accumulated elementwise and reduced once at the end."""
    m = al.program_id(1)
    b = al.program_id(0)
    rn = b * IB + al.arange(0, IB)
    r = al.arange(0, IB)
    groups = K // G
    GB = G // 2 if NIBBLES else G
    block = Codes + b * (groups * IB * GB) + r[:, None] * GB
    j = al.arange(0, GB)
    acc = al.zeros((IB, GB), al.float32)
    for g in range(0, groups):
        s = al.load(Scales + g * NP + rn).to(al.float32)
        if SUB:
            s = al.load(BlockScales + (g // SUB) * NP + rn).to(al.float32) * s
        c = al.load(block + g * (IB * GB) + j[None, :])
        if NIBBLES:
            x_lo = al.load(X + m * K + g * G + j)
            x_hi = al.load(X + m * K + g * G + G // 2 + j)
            t = (c & 15).to(al.float32) * x_lo[None, :] + (c >> 4).to(al.float32) * x_hi[None, :]
            xv = x_lo + x_hi
        else:
            xv = al.load(X + m * K + g * G + j)
            t = c.to(al.float32) * xv[None, :]
        acc += s[:, None] * t
        if HAS_OFFSET:
            o = al.load(Offsets + g * NP + rn).to(al.float32)
            if SUB:
                o = al.load(BlockOffsets + (g // SUB) * NP + rn).to(al.float32) * o
            acc += (o - BIAS * s)[:, None] * xv[None, :]
        elif BIAS != 0:
            acc -= (BIAS * s)[:, None] * xv[None, :]
    al.store(Y + m * N + rn, al.sum(acc, axis=1), mask=rn < N)


@al.func
def dequantized_dot(w_lo, w_hi, row, NIBBLES, GB, G):
    """One activation row times a group's dequantised weights, elementwise over the group's ``GB`` columns
    (``w_lo``/``w_hi``: scale times the low/high codes; ``w_hi`` unused unless ``NIBBLES``); ``row`` points
    at the row's group."""
    j = al.arange(0, GB)
    t = w_lo * al.load(row + j)[None, :]
    if NIBBLES:
        t += w_hi * al.load(row + G // 2 + j)[None, :]
    return t


@al.func
def group_sum(row, G):
    """The sum of the ``G`` activations of a group (what the group's offsets multiply)."""
    return al.sum(al.load(row + al.arange(0, G)), axis=0)


@al.kernel
def quant_matvec_rows(X, Codes, Scales, Offsets, BlockScales, BlockOffsets, Y: al.output, M, N, NP, K,
                      IB: al.constexpr, G: al.constexpr, NIBBLES: al.constexpr, BIAS: al.constexpr,
                      HAS_OFFSET: al.constexpr, SUB: al.constexpr, R: al.constexpr):
    """``quant_matvec`` for ``R`` (1 to 4) activation rows a program: program (b, i) gives the ``IB`` outputs
    of row block ``b`` for rows ``i * R ..`` (``M`` a multiple of ``R``). Each group's codes are dequantised
    once (scale times code) for all ``R`` rows; the offsets multiply the group's activation sums."""
    b = al.program_id(0)
    m0 = al.program_id(1) * R
    rn = b * IB + al.arange(0, IB)
    r = al.arange(0, IB)
    groups = K // G
    GB = G // 2 if NIBBLES else G
    block = Codes + b * (groups * IB * GB) + r[:, None] * GB
    j = al.arange(0, GB)
    acc0 = al.zeros((IB, GB), al.float32)
    acc1 = al.zeros((IB, GB), al.float32)
    acc2 = al.zeros((IB, GB), al.float32)
    acc3 = al.zeros((IB, GB), al.float32)
    off0 = al.zeros((IB,), al.float32)
    off1 = al.zeros((IB,), al.float32)
    off2 = al.zeros((IB,), al.float32)
    off3 = al.zeros((IB,), al.float32)
    for g in range(0, groups):
        s = al.load(Scales + g * NP + rn).to(al.float32)
        if SUB:
            s = al.load(BlockScales + (g // SUB) * NP + rn).to(al.float32) * s
        c = al.load(block + g * (IB * GB) + j[None, :])
        if NIBBLES:
            w_lo = s[:, None] * (c & 15).to(al.float32)
            w_hi = s[:, None] * (c >> 4).to(al.float32)
        else:
            w_lo = s[:, None] * c.to(al.float32)
            w_hi = w_lo
        row = X + m0 * K + g * G
        acc0 += dequantized_dot(w_lo, w_hi, row, NIBBLES, GB, G)
        if R >= 2:
            acc1 += dequantized_dot(w_lo, w_hi, row + K, NIBBLES, GB, G)
        if R >= 3:
            acc2 += dequantized_dot(w_lo, w_hi, row + 2 * K, NIBBLES, GB, G)
        if R == 4:
            acc3 += dequantized_dot(w_lo, w_hi, row + 3 * K, NIBBLES, GB, G)
        if HAS_OFFSET or BIAS != 0:
            o = -BIAS * s
            if HAS_OFFSET:
                o = al.load(Offsets + g * NP + rn).to(al.float32)
                if SUB:
                    o = al.load(BlockOffsets + (g // SUB) * NP + rn).to(al.float32) * o
                o = o - BIAS * s
            off0 += o * group_sum(row, G)
            if R >= 2:
                off1 += o * group_sum(row + K, G)
            if R >= 3:
                off2 += o * group_sum(row + 2 * K, G)
            if R == 4:
                off3 += o * group_sum(row + 3 * K, G)
    live = rn < N
    al.store(Y + m0 * N + rn, al.sum(acc0, axis=1) + off0, mask=live)
    if R >= 2:
        al.store(Y + (m0 + 1) * N + rn, al.sum(acc1, axis=1) + off1, mask=live)
    if R >= 3:
        al.store(Y + (m0 + 2) * N + rn, al.sum(acc2, axis=1) + off2, mask=live)
    if R == 4:
        al.store(Y + (m0 + 3) * N + rn, al.sum(acc3, axis=1) + off3, mask=live)


@al.kernel
def quant_matmul(X, Codes, Scales, Offsets, BlockScales, BlockOffsets, Y: al.output, M, N, NP, K,
                 BM: al.constexpr, BN: al.constexpr, IB: al.constexpr, G: al.constexpr, NIBBLES: al.constexpr,
                 BIAS: al.constexpr, HAS_OFFSET: al.constexpr, SUB: al.constexpr):
    """Program (i, j): the ``[BM, BN]`` tile of ``Y`` at rows ``i * BM``, columns ``j * BN`` (``BN`` a
    multiple of ``IB``); each group's codes are converted once and multiplied with ``BM`` activation
    rows by ``tile_dot`` (prefill)."""
    rm = al.program_id(0) * BM + al.arange(0, BM)
    rn = al.program_id(1) * BN + al.arange(0, BN)
    live_m = rm < M
    live_n = rn < NP
    groups = K // G
    GB = G // 2 if NIBBLES else G
    j = al.arange(0, GB)
    rows = Codes + (rn // IB) * (groups * IB * GB) + (rn % IB) * GB
    acc = al.zeros((BM, BN), al.float32)
    for g in range(0, groups):
        s = al.load(Scales + g * NP + rn, mask=live_n, other=0).to(al.float32)
        if SUB:
            s = al.load(BlockScales + (g // SUB) * NP + rn, mask=live_n, other=0.0).to(al.float32) * s
        c = al.load(rows[:, None] + g * (IB * GB) + j[None, :], mask=live_n[:, None], other=0)
        if NIBBLES:
            x_lo = al.load(X + rm[:, None] * K + g * G + j[None, :], mask=live_m[:, None], other=0.0)
            x_hi = al.load(X + rm[:, None] * K + g * G + G // 2 + j[None, :], mask=live_m[:, None], other=0.0)
            t = al.tile_dot(x_lo, (c & 15).to(al.float32), transpose_rhs=True) + \
                al.tile_dot(x_hi, (c >> 4).to(al.float32), transpose_rhs=True)
            xs = al.sum(x_lo, axis=1) + al.sum(x_hi, axis=1)
        else:
            xg = al.load(X + rm[:, None] * K + g * G + j[None, :], mask=live_m[:, None], other=0.0)
            t = al.tile_dot(xg, c.to(al.float32), transpose_rhs=True)
            xs = al.sum(xg, axis=1)
        acc += t * s[None, :]
        if HAS_OFFSET:
            o = al.load(Offsets + g * NP + rn, mask=live_n, other=0).to(al.float32)
            if SUB:
                o = al.load(BlockOffsets + (g // SUB) * NP + rn, mask=live_n, other=0.0).to(al.float32) * o
            acc += xs[:, None] * (o - BIAS * s)[None, :]
        elif BIAS != 0:
            acc -= xs[:, None] * (BIAS * s)[None, :]
    al.store(Y + rm[:, None] * N + rn[None, :], acc, mask=live_m[:, None] & (rn[None, :] < N))


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
def quant_matvec_wide(X, Codes, Scales, Offsets, BlockScales, BlockOffsets, Y: al.output, M, N, NP, K,
                      IB: al.constexpr, G: al.constexpr, NIBBLES: al.constexpr, BIAS: al.constexpr,
                      HAS_OFFSET: al.constexpr, SUB: al.constexpr, GT: al.constexpr):
    """``quant_matvec`` taking ``GT`` groups a step (a ``[IB, GT * GB]`` tile, scales gathered per column):
    the GPU form, where one program's sequential walk over the groups left the memory system idle."""
    m = al.program_id(1)
    b = al.program_id(0)
    rn = b * IB + al.arange(0, IB)
    r = al.arange(0, IB)
    groups = K // G
    GB = G // 2 if NIBBLES else G
    col = al.arange(0, GT * GB)
    within = col % GB
    acc = al.zeros((IB, GT * GB), al.float32)
    for g0 in range(0, groups, GT):
        gi = g0 + col // GB
        live = gi < groups
        s = al.load(Scales + gi[None, :] * NP + rn[:, None], mask=live[None, :], other=0).to(al.float32)
        if SUB:
            s = al.load(BlockScales + (gi // SUB)[None, :] * NP + rn[:, None], mask=live[None, :],
                        other=0.0).to(al.float32) * s
        c = al.load(Codes + b * (groups * IB * GB) + gi[None, :] * (IB * GB) + r[:, None] * GB + within[None, :],
                    mask=live[None, :], other=0)
        if NIBBLES:
            x_lo = al.load(X + m * K + gi * G + within, mask=live, other=0.0)
            x_hi = al.load(X + m * K + gi * G + G // 2 + within, mask=live, other=0.0)
            t = (c & 15).to(al.float32) * x_lo[None, :] + (c >> 4).to(al.float32) * x_hi[None, :]
            xv = x_lo + x_hi
        else:
            xv = al.load(X + m * K + gi * G + within, mask=live, other=0.0)
            t = c.to(al.float32) * xv[None, :]
        acc += s * t
        if HAS_OFFSET:
            o = al.load(Offsets + gi[None, :] * NP + rn[:, None], mask=live[None, :], other=0).to(al.float32)
            if SUB:
                o = al.load(BlockOffsets + (gi // SUB)[None, :] * NP + rn[:, None], mask=live[None, :],
                            other=0.0).to(al.float32) * o
            acc += (o - BIAS * s) * xv[None, :]
        elif BIAS != 0:
            acc -= (BIAS * s) * xv[None, :]
    al.store(Y + m * N + rn, al.sum(acc, axis=1), mask=rn < N)
