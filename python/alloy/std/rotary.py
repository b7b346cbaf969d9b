"""`al.rope(x, positions, base=10000.0, rotary_dim=None, interleaved=False)`: rotary position embedding.

x is token-major, (T, heads, D) or (batch, T, heads, D) (a projection's output reshaped, llama.cpp's
layout); positions is (T,) or (batch, T), integers. The first `rotary_dim` (default D) features of each
head rotate by position * base^(-2i/rotary_dim): pairs (i, i + rotary_dim/2) (rotate-half, Hugging Face
and GGUF "NeoX" models) or, with `interleaved`, pairs (2i, 2i+1) (GGUF "normal" models, GPT-J). The
rest pass through. Angles are float32; the result has x's dtype.
"""
from __future__ import annotations

import math

import alloy as al

from .arrays import INDEX_DTYPES, Call, dtype_of, row_block, shape_of
from .plans import Plans, call_key


@al.kernel
def rope_kernel(X, P, Y: al.output, heads, log2_base, D: al.constexpr, ROT: al.constexpr, HB: al.constexpr,
                HP: al.constexpr, PB: al.constexpr, INTERLEAVED: al.constexpr):
    t = al.program_id(0)
    pos = al.load(P + t).to(al.float32)
    h = al.arange(0, HB)
    i = al.arange(0, HP)
    half = ROT // 2
    inv_freq = al.exp2(i.to(al.float32) * (-2.0 * log2_base / ROT))
    angle = pos * inv_freq
    c = al.cos(angle)[None, :]
    s = al.sin(angle)[None, :]
    base = X + t * heads * D + h[:, None] * D
    out = Y + t * heads * D + h[:, None] * D
    mask = (h[:, None] < heads) & (i[None, :] < half)
    if INTERLEAVED:
        first = 2 * i[None, :]
        second = first + 1
    else:
        first = i[None, :]
        second = first + half
    x1 = al.load(base + first, mask=mask, other=0.0).to(al.float32)
    x2 = al.load(base + second, mask=mask, other=0.0).to(al.float32)
    al.store(out + first, (x1 * c - x2 * s).to(Y.dtype), mask=mask)
    al.store(out + second, (x2 * c + x1 * s).to(Y.dtype), mask=mask)
    if ROT < D:
        j = ROT + al.arange(0, PB)
        keep = (h[:, None] < heads) & (j[None, :] < D)
        al.store(out + j[None, :], al.load(base + j[None, :], mask=keep, other=0.0), mask=keep)


PLANS = Plans()


def rope(x, positions, base: float = 10000.0, rotary_dim: int | None = None, interleaved: bool = False):
    """x rotated by its tokens' positions (see the module docstring for layouts and pairing)."""
    key = call_key(x, positions, options=(float(base), rotary_dim, bool(interleaved)))
    plan = PLANS.get(key)
    if plan is not None:
        return plan(x, positions)
    call = Call("rope")
    x = call.array("x", x, ndim=(3, 4))
    p = call.array("positions", positions, dtypes=INDEX_DTYPES)
    shape = shape_of(x)
    tokens_shape, (heads, dim) = shape[:-2], shape[-2:]
    if shape_of(p) != tokens_shape:
        raise ValueError(f"al.rope: positions must have shape {tokens_shape} (x {shape} without heads and "
                         f"features), got {shape_of(p)}")
    rot = dim if rotary_dim is None else int(rotary_dim)
    if rot <= 0 or rot > dim or rot % 2:
        raise ValueError(f"al.rope: rotary_dim must be even and in 1..{dim}, got {rotary_dim}")
    if base <= 0:
        raise ValueError(f"al.rope: base must be positive, got {base}")
    y = call.empty(shape, dtype_of(x))
    tokens = math.prod(tokens_shape)
    if tokens * heads:
        args = (x, p.reshape(tokens), heads, math.log2(base))
        constexprs = dict(D=dim, ROT=rot, HB=row_block(heads, 1 << 20), HP=row_block(rot // 2, 1 << 20),
                          PB=row_block(max(dim - rot, 1), 1 << 20), INTERLEAVED=bool(interleaved))
        call.launch(rope_kernel, tokens, *args, Y=y, **constexprs)
        PLANS.record_launch(key, rope_kernel, tokens, args, dict(Y=y, **constexprs), ("X", "P"), {"Y": shape},
                            call.torch_results)
    return call.result(y, shape)
