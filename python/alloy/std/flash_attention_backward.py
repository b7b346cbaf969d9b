"""`al.attention_backward(grad_out, q, k, v, out, lse, causal=False, scale=None)`: the gradients of
`al.attention`, flash-attention style (the probabilities recomputed from the saved log-sum-exp, never
stored).

Arguments are as `al.attention` took and returned them (`lse` from `return_lse=True`, or torch's CPU
flash-attention `logsumexp`: float32 (batch, heads, Lq)); returns (grad_q, grad_k, grad_v) shaped and
typed like q, k and v. With grouped-query heads the gradients of a kv head sum over its query heads.
Two kernels: one program per block of query rows computes their grad_q (and each row's
delta = rowsum(grad_out * out), which the second reads); one program per block of keys of a kv head
walks every query row that sees them, for grad_k and grad_v (no atomics).
"""
from __future__ import annotations

import math

import alloy as al

from .arrays import Call, LazyOutput, dtype_of, shape_of
from .flash_attention import head_block

CPU_BLOCKS = dict(BM=32, BN=32)
CUDA_BLOCKS = dict(BM=64, BN=64)


@al.func
def _probabilities(s, lse_row):
    """exp(s - lse) for scores s [rows, keys] (masked ones -inf); rows that saw no key (lse -inf) give 0."""
    shift = al.where(lse_row == -float("inf"), float("inf"), lse_row)
    return al.exp(s - shift[:, None])


@al.kernel
def attention_grad_q(Q, K, V, O, dO, Lse, dQ: al.output, Delta: al.output, Lq, Lk, heads, group, scale,
                     D: al.constexpr, DP: al.constexpr, CAUSAL: al.constexpr, BM: al.constexpr, BN: al.constexpr):
    bh = al.program_id(1)
    kv = (bh // heads) * (heads // group) + (bh % heads) // group
    qi = al.program_id(0) * BM + al.arange(0, BM)
    d = al.arange(0, DP)
    q_base = bh * Lq * D
    kv_base = kv * Lk * D
    rows = qi < Lq
    qmask = rows[:, None] & (d[None, :] < D)
    q = al.load(Q + q_base + qi[:, None] * D + d[None, :], mask=qmask, other=0.0)
    do = al.load(dO + q_base + qi[:, None] * D + d[None, :], mask=qmask, other=0.0)
    o = al.load(O + q_base + qi[:, None] * D + d[None, :], mask=qmask, other=0.0)
    delta = al.sum(do.to(al.float32) * o.to(al.float32), axis=1)
    al.store(Delta + bh * Lq + qi, delta, mask=rows)
    lse = al.load(Lse + bh * Lq + qi, mask=rows, other=0.0)
    dq = al.zeros((BM, DP), al.float32)
    offset = Lk - Lq
    hi = Lk
    if CAUSAL:
        hi = min(Lk, al.program_id(0) * BM + BM + offset)
    for start in range(0, hi, BN):
        kj = start + al.arange(0, BN)
        kmask = (kj[:, None] < Lk) & (d[None, :] < D)
        k = al.load(K + kv_base + kj[:, None] * D + d[None, :], mask=kmask, other=0.0)
        v = al.load(V + kv_base + kj[:, None] * D + d[None, :], mask=kmask, other=0.0)
        valid = kj[None, :] < Lk
        if CAUSAL:
            valid = valid & (kj[None, :] <= qi[:, None] + offset)
        s = al.where(valid, al.tile_dot(q, k, transpose_rhs=True) * scale, -float("inf"))
        p = _probabilities(s, lse)
        dp = al.tile_dot(do, v, transpose_rhs=True)
        ds = p * (dp - delta[:, None])
        dq = dq + al.tile_dot(ds.to(K.dtype), k)
    al.store(dQ + q_base + qi[:, None] * D + d[None, :], (dq * scale).to(dQ.dtype), mask=qmask)


@al.kernel
def attention_grad_kv(Q, K, V, dO, Lse, Delta, dK: al.output, dV: al.output, Lq, Lk, heads, group, scale,
                      D: al.constexpr, DP: al.constexpr, CAUSAL: al.constexpr, BM: al.constexpr,
                      BN: al.constexpr):
    bkv = al.program_id(1)
    kv_heads = heads // group
    first_head = (bkv // kv_heads) * heads + (bkv % kv_heads) * group
    kj = al.program_id(0) * BN + al.arange(0, BN)
    d = al.arange(0, DP)
    kv_base = bkv * Lk * D
    kmask = (kj[:, None] < Lk) & (d[None, :] < D)
    k = al.load(K + kv_base + kj[:, None] * D + d[None, :], mask=kmask, other=0.0)
    v = al.load(V + kv_base + kj[:, None] * D + d[None, :], mask=kmask, other=0.0)
    dk = al.zeros((BN, DP), al.float32)
    dv = al.zeros((BN, DP), al.float32)
    offset = Lk - Lq
    lo = 0
    if CAUSAL:
        lo = (max(0, al.program_id(0) * BN - offset) // BM) * BM
    for g in range(group):
        bh = first_head + g
        q_base = bh * Lq * D
        for start in range(lo, Lq, BM):
            qi = start + al.arange(0, BM)
            rows = qi < Lq
            qmask = rows[:, None] & (d[None, :] < D)
            q = al.load(Q + q_base + qi[:, None] * D + d[None, :], mask=qmask, other=0.0)
            do = al.load(dO + q_base + qi[:, None] * D + d[None, :], mask=qmask, other=0.0)
            lse = al.load(Lse + bh * Lq + qi, mask=rows, other=-float("inf"))
            delta = al.load(Delta + bh * Lq + qi, mask=rows, other=0.0)
            valid = rows[:, None] & (kj[None, :] < Lk)
            if CAUSAL:
                valid = valid & (kj[None, :] <= qi[:, None] + offset)
            s = al.where(valid, al.tile_dot(q, k, transpose_rhs=True) * scale, -float("inf"))
            p = _probabilities(s, lse)
            dv = dv + al.tile_dot(p.to(dO.dtype), do, transpose_lhs=True)
            dp = al.tile_dot(do, v, transpose_rhs=True)
            ds = p * (dp - delta[:, None])
            dk = dk + al.tile_dot(ds.to(Q.dtype), q, transpose_lhs=True)
    al.store(dK + kv_base + kj[:, None] * D + d[None, :], (dk * scale).to(dK.dtype), mask=kmask)
    al.store(dV + kv_base + kj[:, None] * D + d[None, :], dv.to(dV.dtype), mask=kmask)


def runs_on_this_cpu(head_dim: int) -> bool:
    """Whether the CPU target's code of these kernels is trusted for heads of `head_dim`: not on an AVX2-only
    x86 target (the configured one) for a head size that is not a power of two (24, 80: padded heads), where
    they give non-finite gradients for some inputs (an open miscompile of the padded tiles' masked loads).
    AVX-512 and the CUDA target are tested for every head size."""
    from ..passes.vector.target import AVX2
    from ..targets.cpu.machine import configured_machine

    return head_dim & (head_dim - 1) == 0 or configured_machine().description is not AVX2


def attention_backward(grad_out, q, k, v, out, lse, causal: bool = False, scale: float | None = None):
    """(grad_q, grad_k, grad_v) of `al.attention(q, k, v, causal, scale)` for `grad_out`, from its `out` and
    `lse` (see the module docstring). On an AVX2-only CPU target with a head size that is not a power of
    two it raises NotImplementedError (see runs_on_this_cpu)."""
    call = Call("attention_backward")
    named = (("grad_out", grad_out), ("q", q), ("k", k), ("v", v), ("out", out))
    g, q, k, v, o = (call.array(n, t, ndim=(3, 4)) for n, t in named)
    sq, sk = shape_of(q), shape_of(k)
    for name, value, want in (("grad_out", g, sq), ("out", o, sq), ("v", v, sk)):
        if shape_of(value) != want:
            raise ValueError(f"al.attention_backward: {name} {shape_of(value)} must have the shape {want}")
    if len(sq) != len(sk):
        raise ValueError(f"al.attention_backward: q {sq} and k {sk} must have the same number of dimensions")
    if len({dtype_of(a) for a in (g, q, k, v, o)}) != 1:
        raise TypeError("al.attention_backward: grad_out, q, k, v and out must share one dtype")
    batch, heads, lq, dim = (1,) + sq if len(sq) == 3 else sq
    kv_batch, kv_heads, lk, kv_dim = (1,) + sk if len(sk) == 3 else sk
    if kv_batch != batch or kv_dim != dim:
        raise ValueError(f"al.attention_backward: q {sq} and k {sk} differ in batch or head size")
    if kv_heads == 0 or heads % kv_heads:
        raise ValueError(f"al.attention_backward: {heads} query heads are not a multiple of {kv_heads} kv heads")
    ls = call.array("lse", lse, ndim=(2, 3))
    if math.prod(shape_of(ls)) != batch * heads * lq or shape_of(ls)[-1] != lq or str(dtype_of(ls)) != "float32":
        raise ValueError(f"al.attention_backward: lse must be float32 of shape {sq[:-1]}, got "
                         f"{dtype_of(ls)} {shape_of(ls)}")
    if lk == 0:
        raise ValueError("al.attention_backward: k and v have no keys (Lk = 0)")
    if call.run_target == "cpu" and not runs_on_this_cpu(dim):
        raise NotImplementedError(f"al.attention_backward: its AVX2 CPU code for a head size of {dim} (not a power "
                                  f"of two) gives non-finite gradients for some inputs (an open compiler bug); use "
                                  f"an AVX-512 CPU target or CUDA")
    dtype = dtype_of(q)
    dq, dk, dv = call.empty(sq, dtype), call.empty(sk, dtype), call.empty(sk, dtype)
    if batch * heads * dim:
        scale = 1.0 / math.sqrt(dim) if scale is None else float(scale)
        blocks = CUDA_BLOCKS if call.run_target == "cuda" else CPU_BLOCKS
        consts = dict(D=dim, DP=head_block(dim, call.run_target), CAUSAL=bool(causal), **blocks)
        sizes = (lq, lk, heads, heads // kv_heads, scale)
        if lq:
            delta = call.empty((batch * heads, lq), "float32")
            call.launch(attention_grad_q, (al.cdiv(lq, blocks["BM"]), batch * heads), q, k, v, o, g, ls, *sizes,
                        dQ=dq, Delta=delta, **consts)
            delta = delta.resolve() if isinstance(delta, LazyOutput) else delta
        else:
            delta = ls  # no query rows: the second kernel reads no delta
        call.launch(attention_grad_kv, (al.cdiv(lk, blocks["BN"]), batch * kv_heads), q, k, v, g, ls, delta,
                    *sizes, dK=dk, dV=dv, **consts)
    return call.result(dq, sq), call.result(dk, sk), call.result(dv, sk)
