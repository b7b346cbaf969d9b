"""`al.softmax(x, axis=-1)`: numerically stable softmax along one axis, computed in float32.

Rows up to `ROW_TILE` elements are one tile per program (loaded once); longer
rows stream in chunks with an online maximum and rescaled sum, then a second
pass writes the result.
"""
from __future__ import annotations

import alloy as al

from .arrays import Call, as_rows, dtype_of, row_block, shape_of
from .plans import Plans, call_key

ROW_TILE = 8192  # widest row held as one tile
CHUNK = 2048  # chunk width of the streaming kernel


@al.kernel(writes_all_outputs=True)
def softmax_row_tile(X, Y: al.output, n_cols, BLOCK: al.constexpr):
    row = al.program_id(0)
    cols = al.arange(0, BLOCK)
    mask = cols < n_cols
    x = al.load(X + row * n_cols + cols, mask=mask, other=-float("inf")).to(al.float32)
    e = al.exp(x - al.max(x, axis=0))
    al.store(Y + row * n_cols + cols, (e * (1.0 / al.sum(e, axis=0))).to(X.dtype), mask=mask)


@al.kernel(writes_all_outputs=True)
def softmax_row_stream(X, Y: al.output, n_cols, BLOCK: al.constexpr):
    row = al.program_id(0)
    base = row * n_cols
    m = al.full((BLOCK,), -float("inf"), al.float32)
    s = al.zeros((BLOCK,), al.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + al.arange(0, BLOCK)
        x = al.load(X + base + cols, mask=cols < n_cols, other=-float("inf")).to(al.float32)
        m_new = al.maximum(m, x)
        shift = al.where(m_new == -float("inf"), 0.0, m_new)
        s = s * al.exp(m - shift) + al.exp(x - shift)
        m = m_new
    row_max = al.max(m, axis=0)
    inv = 1.0 / al.sum(s * al.exp(m - row_max), axis=0)
    for start in range(0, n_cols, BLOCK):
        cols = start + al.arange(0, BLOCK)
        x = al.load(X + base + cols, mask=cols < n_cols, other=-float("inf")).to(al.float32)
        al.store(Y + base + cols, (al.exp(x - row_max) * inv).to(X.dtype), mask=cols < n_cols)


PLANS = Plans()


def softmax(x, axis: int = -1):
    """Softmax of `x` along `axis` (float32, float16 or bfloat16; the result keeps x's dtype)."""
    key = call_key(x, options=(axis,))
    plan = PLANS.get(key)
    if plan is not None:
        return plan(x)
    call = Call("softmax")
    x2d, rows, n_cols, restore = as_rows(call, call.array("x", x), axis)
    if rows * n_cols == 0:
        return restore(x2d)
    y = call.empty((rows, n_cols), dtype_of(x2d))
    kernel, block = ((softmax_row_tile, row_block(n_cols, ROW_TILE)) if n_cols <= ROW_TILE
                     else (softmax_row_stream, CHUNK))
    call.launch(kernel, rows, x2d, n_cols, Y=y, BLOCK=block)
    if axis in (-1, len(shape_of(x)) - 1):  # rows in place: the next such call rebinds this launch
        PLANS.record_launch(key, kernel, rows, (x2d, n_cols), dict(Y=y, BLOCK=block), ("X",), {"Y": shape_of(x)},
                            call.torch_results)
    return restore(y)
