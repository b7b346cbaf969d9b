"""The engine's kernels besides the matrix products: norms, elementwise ops, rotary embedding,
embedding rows, the KV-cache store and attention over the cache.

Activations are float32 and row-major, as ``ops.base`` lays them out: ``[n_tokens, features]`` or
``[n_tokens, heads, head_dim]``; the cache holds ``[n_head_kv, capacity, head_dim]`` per layer.
"""
from __future__ import annotations

import alloy as al
from alloy.std.activations import gelu_tanh_value, silu_value
from alloy.std.flash_attention import online_softmax_step


@al.func
def row_rstd(row, n_cols, eps, BLOCK):
    """``1 / sqrt(mean(row[:n_cols] ** 2) + eps)`` of the float32 row at pointer ``row``."""
    squares = al.zeros((BLOCK,), al.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + al.arange(0, BLOCK)
        x = al.load(row + cols, mask=cols < n_cols, other=0.0)
        squares += x * x
    return al.rsqrt(al.sum(squares, axis=0) / n_cols + eps)


@al.kernel
def binary_op(A, B, Y: al.output, n, period, OP: al.constexpr, BLOCK: al.constexpr):
    """``Y = A op B[i % period]`` over ``n`` elements (``period``: B's size; it repeats along A)."""
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    mask = offs < n
    a = al.load(A + offs, mask=mask, other=0.0)
    b = al.load(B + offs % period, mask=mask, other=0.0)
    if OP == "add":
        y = a + b
    else:
        y = a * b
    al.store(Y + offs, y, mask=mask)


@al.kernel
def unary_op(X, Y: al.output, n, param, OP: al.constexpr, BLOCK: al.constexpr):
    """``Y = op(X)``: ``scale`` (x * param), ``softcap`` (param * tanh(x / param)), ``silu``, ``gelu`` (tanh)."""
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    mask = offs < n
    x = al.load(X + offs, mask=mask, other=0.0)
    if OP == "scale":
        y = x * param
    elif OP == "softcap":
        y = al.tanh(x / param) * param
    elif OP == "silu":
        y = silu_value(x)
    else:
        y = gelu_tanh_value(x)
    al.store(Y + offs, y, mask=mask)


@al.kernel
def rotary(X, Cos, Sin, Y: al.output, heads, D: al.constexpr, ROT: al.constexpr, NEOX: al.constexpr,
           HB: al.constexpr, HP: al.constexpr, PB: al.constexpr):
    """Token ``program_id(0)`` of ``X [n, heads, D]`` rotated by its row of ``Cos``/``Sin [n, ROT/2]``:
    pairs ``(i, i + ROT/2)`` (NEOX) or ``(2i, 2i + 1)``; features from ``ROT`` on pass through."""
    t = al.program_id(0)
    h = al.arange(0, HB)
    i = al.arange(0, HP)
    half = ROT // 2
    c = al.load(Cos + t * half + i, mask=i < half, other=1.0)[None, :]
    s = al.load(Sin + t * half + i, mask=i < half, other=0.0)[None, :]
    src = X + t * heads * D + h[:, None] * D
    dst = Y + t * heads * D + h[:, None] * D
    mask = (h[:, None] < heads) & (i[None, :] < half)
    if NEOX:
        first = i[None, :]
        second = first + half
    else:
        first = 2 * i[None, :]
        second = first + 1
    x1 = al.load(src + first, mask=mask, other=0.0)
    x2 = al.load(src + second, mask=mask, other=0.0)
    al.store(dst + first, x1 * c - x2 * s, mask=mask)
    al.store(dst + second, x2 * c + x1 * s, mask=mask)
    if ROT < D:
        j = ROT + al.arange(0, PB)
        keep = (h[:, None] < heads) & (j[None, :] < D)
        al.store(dst + j[None, :], al.load(src + j[None, :], mask=keep, other=0.0), mask=keep)


@al.kernel
def quant_rows(Ids, Codes, Scales, Offsets, BlockScales, BlockOffsets, Y: al.output, NP, K, IB: al.constexpr,
               G: al.constexpr, NIBBLES: al.constexpr, BIAS: al.constexpr, HAS_OFFSET: al.constexpr,
               SUB: al.constexpr):
    """Row ``Ids[program_id(0)]`` of a quantized weight, dequantised (layout: see matmul_kernels)."""
    t = al.program_id(0)
    row = al.load(Ids + t)
    groups = K // G
    GB = G // 2 if NIBBLES else G
    base = Codes + (row // IB) * (groups * IB * GB) + (row % IB) * GB
    j = al.arange(0, GB)
    for g in range(0, groups):
        s = al.load(Scales + g * NP + row).to(al.float32)
        if SUB:
            s = al.load(BlockScales + (g // SUB) * NP + row).to(al.float32) * s
        o = 0.0
        if HAS_OFFSET:
            o = al.load(Offsets + g * NP + row).to(al.float32)
            if SUB:
                o = al.load(BlockOffsets + (g // SUB) * NP + row).to(al.float32) * o
        c = al.load(base + g * (IB * GB) + j)
        if NIBBLES:
            al.store(Y + t * K + g * G + j, ((c & 15).to(al.float32) - BIAS) * s + o)
            al.store(Y + t * K + g * G + G // 2 + j, ((c >> 4).to(al.float32) - BIAS) * s + o)
        else:
            al.store(Y + t * K + g * G + j, c.to(al.float32) * s + o)


@al.kernel
def dense_rows(Ids, W, Y: al.output, K, BK: al.constexpr):
    """Row ``Ids[program_id(0)]`` of a float weight, as float32."""
    t = al.program_id(0)
    row = al.load(Ids + t)
    for k in range(0, K, BK):
        cols = k + al.arange(0, BK)
        al.store(Y + t * K + cols, al.load(W + row * K + cols, mask=cols < K, other=0.0).to(al.float32),
                 mask=cols < K)


@al.kernel
def cache_store(Src, Cache, Scales, n_kv, capacity, start, D, BLOCK: al.constexpr, QUANT: al.constexpr):
    """``Cache[h, start + t, :] = Src[t, h, :]`` for token ``program_id(0)``, head ``program_id(1)``: rounded to
    the cache's dtype (float16 by default, or float32), or with ``QUANT`` as q8_0 — per 32 values int8 codes
    ``floor(x * 127 / amax + 0.5)`` and the scale ``amax / 127`` in ``Scales`` (as ``quantize_q8_0``)."""
    t = al.program_id(0)
    h = al.program_id(1)
    row = h * capacity + start + t
    if QUANT:
        for g in range(0, D, 32):
            cols = g + al.arange(0, 32)
            x = al.load(Src + (t * n_kv + h) * D + cols)
            amax = al.max(al.abs(x), axis=0)
            codes = al.floor(x * (127.0 / al.maximum(amax, 1e-30)) + 0.5)
            al.store(Cache + row * D + cols, codes.to(Cache.dtype))
            al.store(Scales + row * (D // 32) + g // 32 + al.arange(0, 1), al.zeros((1,), al.float32) + amax / 127.0)
    else:
        for k in range(0, D, BLOCK):
            cols = k + al.arange(0, BLOCK)
            v = al.load(Src + (t * n_kv + h) * D + cols, mask=cols < D, other=0.0)
            al.store(Cache + row * D + cols, v.to(Cache.dtype), mask=cols < D)


@al.func
def cached_rows(Cache, Scales, rows, cols, mask, D, QUANT):
    """Rows ``rows`` (``[BN]`` cache positions of one head) and columns ``cols`` of a KV buffer as float32:
    q8_0 codes times their group's scale with ``QUANT``."""
    x = al.load(Cache + rows[:, None] * D + cols[None, :], mask=mask, other=0).to(al.float32)
    if QUANT:
        x = x * al.load(Scales + rows[:, None] * (D // 32) + (cols // 32)[None, :], mask=mask, other=0.0)
    return x


@al.kernel
def cached_attention(Q, Kc, Vc, Ks, Vs, O: al.output, n, n_head, group, capacity, start, window, scale, cap,
                     DK: al.constexpr, DV: al.constexpr, DKP: al.constexpr, DVP: al.constexpr,
                     BM: al.constexpr, BN: al.constexpr, WINDOWED: al.constexpr, SOFTCAP: al.constexpr,
                     QUANT: al.constexpr):
    """Causal attention of ``n`` new tokens (positions ``start ..``) over the cache, flash style.

    Program (i, kv head): query rows ``r = i * BM ..`` enumerate (token ``r // group``, head
    ``kv * group + r % group``), so the query heads sharing a KV head read its keys once.
    """
    kv = al.program_id(1)
    first = al.program_id(0) * BM
    r = first + al.arange(0, BM)
    live = r < n * group
    t = r // group
    head = kv * group + r % group
    pos = start + t
    dk = al.arange(0, DKP)
    dv = al.arange(0, DVP)
    q = al.load(Q + (t * n_head + head)[:, None] * DK + dk[None, :], mask=live[:, None] & (dk[None, :] < DK),
                other=0.0)
    m = al.full((BM,), -float("inf"), al.float32)
    l = al.zeros((BM,), al.float32)
    acc = al.zeros((BM, DVP), al.float32)
    hi = start + min(n - 1, (first + BM - 1) // group) + 1
    lo = 0
    if WINDOWED:
        lo = max(0, start + first // group - window + 1)
    for s0 in range(lo, hi, BN):
        kj = s0 + al.arange(0, BN)
        k = cached_rows(Kc, Ks, kv * capacity + kj, dk, (kj[:, None] < hi) & (dk[None, :] < DK), DK, QUANT)
        s = al.tile_dot(q, k, transpose_rhs=True) * scale
        if SOFTCAP:
            s = al.tanh(s / cap) * cap
        valid = live[:, None] & (kj[None, :] <= pos[:, None])
        if WINDOWED:
            valid = valid & (kj[None, :] > pos[:, None] - window)
        s = al.where(valid, s, -float("inf"))
        v = cached_rows(Vc, Vs, kv * capacity + kj, dv, (kj[:, None] < hi) & (dv[None, :] < DV), DV, QUANT)
        m, l, acc = online_softmax_step(m, l, acc, s, v, al.float32)
    out = acc / al.where(l == 0.0, 1.0, l)[:, None]
    al.store(O + (t * n_head + head)[:, None] * DV + dv[None, :], out, mask=live[:, None] & (dv[None, :] < DV))


@al.kernel
def residual_rms_norm(X, R, RW, W, S: al.output, Y: al.output, n_cols, eps, NORM_R: al.constexpr,
                      BLOCK: al.constexpr):
    """Row ``program_id(0)``: ``S = X + R`` (``R`` first RMS-normed and scaled by ``RW`` when ``NORM_R``),
    then ``Y = rms_norm(S) * W``: a residual step and the next norm in one pass over the row."""
    base = al.program_id(0) * n_cols
    r_scale = 1.0
    if NORM_R:
        r_scale = row_rstd(R + base, n_cols, eps, BLOCK)
    squares = al.zeros((BLOCK,), al.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + al.arange(0, BLOCK)
        mask = cols < n_cols
        r = al.load(R + base + cols, mask=mask, other=0.0)
        if NORM_R:
            r = r * r_scale * al.load(RW + cols, mask=mask, other=0.0)
        s = al.load(X + base + cols, mask=mask, other=0.0) + r
        al.store(S + base + cols, s, mask=mask)
        squares += s * s
    rstd = al.rsqrt(al.sum(squares, axis=0) / n_cols + eps)
    for start in range(0, n_cols, BLOCK):
        cols = start + al.arange(0, BLOCK)
        mask = cols < n_cols
        s = al.load(S + base + cols, mask=mask, other=0.0)
        al.store(Y + base + cols, s * rstd * al.load(W + cols, mask=mask, other=0.0), mask=mask)


@al.kernel
def gated_rows(G, U, Y: al.output, n_cols, stride, u_offset, ACT: al.constexpr, BLOCK: al.constexpr):
    """``Y[r, c] = act(G[r * stride + c]) * U[r * stride + u_offset + c]`` (SwiGLU ``silu`` / GeGLU
    ``gelu``, tanh form) for row ``program_id(0)``, columns block ``program_id(1)``."""
    row = al.program_id(0)
    cols = al.program_id(1) * BLOCK + al.arange(0, BLOCK)
    mask = cols < n_cols
    g = al.load(G + row * stride + cols, mask=mask, other=0.0)
    u = al.load(U + row * stride + u_offset + cols, mask=mask, other=0.0)
    if ACT == "silu":
        a = silu_value(g)
    else:
        a = gelu_tanh_value(g)
    al.store(Y + row * n_cols + cols, a * u, mask=mask)


@al.kernel
def column_block(X, Y: al.output, n_cols, stride, start, BLOCK: al.constexpr):
    """``Y[r, :] = X[r, start : start + n_cols]`` for row ``program_id(0)`` (``stride``: X's row length)."""
    row = al.program_id(0)
    for k in range(0, n_cols, BLOCK):
        cols = k + al.arange(0, BLOCK)
        al.store(Y + row * n_cols + cols, al.load(X + row * stride + start + cols, mask=cols < n_cols, other=0.0),
                 mask=cols < n_cols)


@al.kernel
def attention_split(Q, Kc, Vc, Ks, Vs, Part: al.output, Stats: al.output, n_head, group, capacity, start, window,
                    scale, cap, chunk, DK: al.constexpr, DV: al.constexpr, DKP: al.constexpr, DVP: al.constexpr,
                    BM: al.constexpr, BN: al.constexpr, WINDOWED: al.constexpr, SOFTCAP: al.constexpr,
                    QUANT: al.constexpr):
    """Split-K decode attention, part 1: program (s, kv head) attends the one new token's ``group`` query
    heads to keys ``s * chunk ..`` (within the causal / window range) and writes its unnormalised output
    ``Part[s, kv, row]`` and running max and sum ``Stats[s, kv, :, row]``; ``attention_merge`` combines."""
    split = al.program_id(0)
    kv = al.program_id(1)
    r = al.arange(0, BM)
    live = r < group
    head = kv * group + r
    dk = al.arange(0, DKP)
    dv = al.arange(0, DVP)
    q = al.load(Q + head[:, None] * DK + dk[None, :], mask=live[:, None] & (dk[None, :] < DK), other=0.0)
    m = al.full((BM,), -float("inf"), al.float32)
    l = al.zeros((BM,), al.float32)
    acc = al.zeros((BM, DVP), al.float32)
    lo = 0
    if WINDOWED:
        lo = max(0, start - window + 1)
    first = max(lo, split * chunk)
    last = min(start + 1, split * chunk + chunk)
    for s0 in range(first, last, BN):
        kj = s0 + al.arange(0, BN)
        inside = kj < last
        k = cached_rows(Kc, Ks, kv * capacity + kj, dk, inside[:, None] & (dk[None, :] < DK), DK, QUANT)
        s = al.tile_dot(q, k, transpose_rhs=True) * scale
        if SOFTCAP:
            s = al.tanh(s / cap) * cap
        s = al.where(live[:, None] & inside[None, :], s, -float("inf"))
        v = cached_rows(Vc, Vs, kv * capacity + kj, dv, inside[:, None] & (dv[None, :] < DV), DV, QUANT)
        m, l, acc = online_softmax_step(m, l, acc, s, v, al.float32)
    base = (split * al.num_programs(1) + kv) * BM
    al.store(Part + (base + r)[:, None] * DVP + dv[None, :], acc)
    al.store(Stats + base * 2 + r, m)
    al.store(Stats + base * 2 + BM + r, l)


@al.kernel
def attention_merge(Part, Stats, O: al.output, splits, n_kv, group, DV: al.constexpr, DVP: al.constexpr,
                    BM: al.constexpr):
    """Split-K decode attention, part 2: for KV head ``program_id(0)``, the softmax-weighted sum of the
    splits' partial outputs, written to ``O [n_head, DV]``."""
    kv = al.program_id(0)
    r = al.arange(0, BM)
    dv = al.arange(0, DVP)
    top = al.full((BM,), -float("inf"), al.float32)
    for split in range(0, splits):
        top = al.maximum(top, al.load(Stats + (split * n_kv + kv) * BM * 2 + r))
    shift = al.where(top == -float("inf"), 0.0, top)
    total = al.zeros((BM,), al.float32)
    acc = al.zeros((BM, DVP), al.float32)
    for split in range(0, splits):
        base = (split * n_kv + kv) * BM
        weight = al.exp(al.load(Stats + base * 2 + r) - shift)
        total += weight * al.load(Stats + base * 2 + BM + r)
        acc += weight[:, None] * al.load(Part + (base + r)[:, None] * DVP + dv[None, :])
    out = acc / al.where(total == 0.0, 1.0, total)[:, None]
    al.store(O + (kv * group + r)[:, None] * DV + dv[None, :], out, mask=(r[:, None] < group) & (dv[None, :] < DV))
