"""`al.attention(q, k, v, causal=False, scale=None, return_lse=False)`: flash-style attention with an
online softmax.

q is (batch, heads, Lq, D), k and v (batch, kv_heads, Lk, D) (or the same without the batch axis);
heads must be a multiple of kv_heads (grouped-query attention: query head h reads kv head
h // (heads // kv_heads)). With `causal`, query i sees keys j <= i + Lk - Lq (the last query sees
every key, as in decoding with a KV cache; torch's is_causal when Lq == Lk). Scores and the
softmax are float32; the result has q's dtype. With `return_lse` the call also returns each query row's
log-sum-exp of its scaled scores, float32 (batch, heads, Lq) (torch's flash-attention `logsumexp`; -inf
for a row that sees no key), which `al.attention_backward` takes.
"""
from __future__ import annotations

import math

import alloy as al

from ..tuning import Config, Tuner
from ..tuning.autotune import key_text
from .arrays import Call, dtype_of, row_block, shape_of
from .plans import Plans, call_key


@al.func
def online_softmax_step(m, l, acc, s, v, dtype):
    """One block of keys in a flash-style attention: running row max ``m``, sum ``l`` and output ``acc``
    updated with the block's scores ``s [rows, keys]`` (masked ones -inf) and values ``v [keys, d]``
    (the probabilities cast to ``dtype`` for the product). Returns the new ``(m, l, acc)``."""
    m_new = al.maximum(m, al.max(s, axis=1))
    shift = al.where(m_new == -float("inf"), 0.0, m_new)
    p = al.exp(s - shift[:, None])
    alpha = al.exp(m - shift)
    return m_new, l * alpha + al.sum(p, axis=1), acc * alpha[:, None] + al.tile_dot(p.to(dtype), v)


@al.kernel
def attention_kernel(Q, K, V, O: al.output, Lse: al.output, Lq, Lk, heads, group, scale, D: al.constexpr,
                     DP: al.constexpr, CAUSAL: al.constexpr, BM: al.constexpr, BN: al.constexpr):
    bh = al.program_id(1)
    kv = (bh // heads) * (heads // group) + (bh % heads) // group
    qi = al.program_id(0) * BM + al.arange(0, BM)
    d = al.arange(0, DP)
    q_base = bh * Lq * D
    kv_base = kv * Lk * D
    qmask = (qi[:, None] < Lq) & (d[None, :] < D)
    q = al.load(Q + q_base + qi[:, None] * D + d[None, :], mask=qmask, other=0.0)
    m = al.full((BM,), -float("inf"), al.float32)
    l = al.zeros((BM,), al.float32)
    acc = al.zeros((BM, DP), al.float32)
    offset = Lk - Lq
    hi = Lk
    if CAUSAL:
        hi = min(Lk, al.program_id(0) * BM + BM + offset)
    for start in range(0, hi, BN):
        kj = start + al.arange(0, BN)
        kmask = (kj[:, None] < Lk) & (d[None, :] < D)
        k = al.load(K + kv_base + kj[:, None] * D + d[None, :], mask=kmask, other=0.0)
        v = al.load(V + kv_base + kj[:, None] * D + d[None, :], mask=kmask, other=0.0)
        s = al.tile_dot(q, k, transpose_rhs=True) * scale
        valid = kj[None, :] < Lk
        if CAUSAL:
            valid = valid & (kj[None, :] <= qi[:, None] + offset)
        s = al.where(valid, s, -float("inf"))
        m, l, acc = online_softmax_step(m, l, acc, s, v, V.dtype)
    out = acc / al.where(l == 0.0, 1.0, l)[:, None]
    al.store(O + q_base + qi[:, None] * D + d[None, :], out.to(O.dtype), mask=qmask)
    lse = al.where(l == 0.0, -float("inf"), m + al.log(al.where(l == 0.0, 1.0, l)))
    al.store(Lse + bh * Lq + qi, lse, mask=qi < Lq)


def head_block(dim: int, target: str) -> int:
    """The padded head size of the attention tiles: the next power of two on the CPU (a 4- or 8-wide head
    padded to 16 columns loads wrongly on AVX2: an open miscompile of such masked loads), at least 16
    elsewhere (the tensor cores' K step)."""
    return 1 << max(dim - 1, 0).bit_length() if target == "cpu" else row_block(dim, 1024)


def _blocks(target: str, key: str | None) -> list[Config]:
    sizes = ((64, 64), (128, 64), (64, 32)) if target == "cuda" else ((32, 32), (16, 64), (64, 32), (32, 64))
    return [Config(BM=m, BN=n) for m, n in sizes]


TUNER = Tuner("alloy.std.attention", _blocks, measure_on_miss=False)


def attention(q, k, v, causal: bool = False, scale: float | None = None, return_lse: bool = False):
    """softmax(q @ k.T * scale [causally masked]) @ v per head; scale defaults to 1/sqrt(D). With
    `return_lse`, (output, log-sum-exp)."""
    return attention_call(q, k, v, causal, scale, return_lse=return_lse)


PLANS = Plans()


def attention_call(q, k, v, causal, scale, tune=None, return_lse: bool = False):
    """`attention`; with `tune` (a progress callback), time every configuration instead and return
    (winner, {config: seconds})."""
    plan_key = call_key(q, k, v, options=(bool(causal), scale, bool(return_lse))) if tune is None else None
    plan = PLANS.get(plan_key)
    if plan is not None:
        return plan(q, k, v)
    call = Call("attention")
    q, k, v = (call.array(n, t, ndim=(3, 4)) for n, t in (("q", q), ("k", k), ("v", v)))
    sq, sk, sv = shape_of(q), shape_of(k), shape_of(v)
    if not len(sq) == len(sk) == len(sv):
        raise ValueError(f"al.attention: q {sq}, k {sk} and v {sv} must have the same number of dimensions")
    if sk != sv:
        raise ValueError(f"al.attention: k {sk} and v {sv} must have the same shape")
    if len(sq) == 3:
        sq, sk = (1,) + sq, (1,) + sk
    batch, heads, lq, dim = sq
    kv_batch, kv_heads, lk, kv_dim = sk
    if kv_batch != batch or kv_dim != dim:
        raise ValueError(f"al.attention: q {shape_of(q)} and k {shape_of(k)} differ in batch or head size")
    if kv_heads == 0 or heads % kv_heads:
        raise ValueError(f"al.attention: {heads} query heads are not a multiple of {kv_heads} kv heads")
    if not (dtype_of(q) == dtype_of(k) == dtype_of(v)):
        raise TypeError(f"al.attention: q, k and v must share one dtype, got {dtype_of(q)}, {dtype_of(k)}, "
                        f"{dtype_of(v)}")
    o = call.empty(shape_of(q), dtype_of(q))
    lse = call.empty((batch * heads, lq), "float32")
    lse_shape = shape_of(q)[:-1]

    def results():
        out = call.result(o, shape_of(q))
        return (out, call.result(lse, lse_shape)) if return_lse else out

    if batch * heads * lq * dim == 0:
        return results()
    if lk == 0:
        raise ValueError("al.attention: k and v have no keys (Lk = 0)")
    scale = 1.0 / math.sqrt(dim) if scale is None else float(scale)
    key = key_text([(lq, lk, dim, heads // kv_heads), str(dtype_of(q)), bool(causal)])

    def launch_of(config):
        """(grid, arguments, keyword arguments) of the launch with `config`'s blocks."""
        grid = (al.cdiv(lq, config.constexprs["BM"]), batch * heads)
        kwargs = dict(O=o, Lse=lse, D=dim, DP=head_block(dim, call.run_target), CAUSAL=bool(causal),
                      **config.constexprs)
        return grid, (q, k, v, lq, lk, heads, heads // kv_heads, scale), kwargs

    def run(config):
        grid, args, kwargs = launch_of(config)
        call.launch(attention_kernel, grid, *args, **kwargs)

    if tune:
        PLANS.clear()  # the winner may change: plans record the blocks they were made with
        return TUNER.measure(call.run_target, key, run, progress=tune)
    chosen = TUNER.choose(call.run_target, key, run)
    run(chosen)
    returned = {"O": shape_of(q), "Lse": lse_shape} if return_lse else {"O": shape_of(q)}
    PLANS.record_launch(plan_key, attention_kernel, *launch_of(chosen), ("Q", "K", "V"), returned,
                        call.torch_results)
    return results()
