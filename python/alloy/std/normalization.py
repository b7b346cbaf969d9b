"""`al.layernorm` and `al.rms_norm` over the last axis, and `al.group_norm` over channel groups, computed in
float32.

Rows up to `ROW_TILE` elements are one tile per program; longer rows stream
in chunks (a pass for the statistics, a pass for the result).
"""
from __future__ import annotations

import math

import alloy as al

from .arrays import Call, as_rows, dtype_of, row_block, shape_of
from .plans import Plans, call_key

PLANS = {"layernorm": Plans(), "rms_norm": Plans()}

ROW_TILE = 8192
CHUNK = 2048


@al.kernel(writes_all_outputs=True)
def layernorm_row_tile(X, W, B, Y: al.output, Mean: al.output, Rstd: al.output, n_cols, eps, BLOCK: al.constexpr):
    row = al.program_id(0)
    cols = al.arange(0, BLOCK)
    mask = cols < n_cols
    x = al.load(X + row * n_cols + cols, mask=mask, other=0.0).to(al.float32)
    mean = al.sum(x, axis=0) / n_cols
    d = al.where(mask, x - mean, 0.0)
    rstd = al.rsqrt(al.sum(d * d, axis=0) / n_cols + eps)
    w = al.load(W + cols, mask=mask, other=0.0).to(al.float32)
    b = al.load(B + cols, mask=mask, other=0.0).to(al.float32)
    al.store(Y + row * n_cols + cols, (d * rstd * w + b).to(X.dtype), mask=mask)
    al.store(Mean + row, mean)
    al.store(Rstd + row, rstd)


@al.func
def streamed_stats(X, base, n_cols, eps, BLOCK: al.constexpr):
    """(mean, rstd) of the n_cols elements at X + base, streamed in BLOCK chunks: a pass for the mean, one for
    the variance around it."""
    total = al.zeros((BLOCK,), al.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + al.arange(0, BLOCK)
        total += al.load(X + base + cols, mask=cols < n_cols, other=0.0).to(al.float32)
    mean = al.sum(total, axis=0) / n_cols
    squares = al.zeros((BLOCK,), al.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + al.arange(0, BLOCK)
        x = al.load(X + base + cols, mask=cols < n_cols, other=0.0).to(al.float32)
        d = al.where(cols < n_cols, x - mean, 0.0)
        squares += d * d
    return mean, al.rsqrt(al.sum(squares, axis=0) / n_cols + eps)


@al.kernel(writes_all_outputs=True)
def layernorm_row_stream(X, W, B, Y: al.output, Mean: al.output, Rstd: al.output, n_cols, eps,
                         BLOCK: al.constexpr):
    row = al.program_id(0)
    base = row * n_cols
    mean, rstd = streamed_stats(X, base, n_cols, eps, BLOCK)
    for start in range(0, n_cols, BLOCK):
        cols = start + al.arange(0, BLOCK)
        mask = cols < n_cols
        x = al.load(X + base + cols, mask=mask, other=0.0).to(al.float32)
        w = al.load(W + cols, mask=mask, other=0.0).to(al.float32)
        b = al.load(B + cols, mask=mask, other=0.0).to(al.float32)
        al.store(Y + base + cols, ((x - mean) * rstd * w + b).to(X.dtype), mask=mask)
    al.store(Mean + row, mean)
    al.store(Rstd + row, rstd)


@al.kernel(writes_all_outputs=True)
def rms_norm_row_tile(X, W, Y: al.output, R: al.output, n_cols, eps, BLOCK: al.constexpr):
    row = al.program_id(0)
    cols = al.arange(0, BLOCK)
    mask = cols < n_cols
    x = al.load(X + row * n_cols + cols, mask=mask, other=0.0).to(al.float32)
    rstd = al.rsqrt(al.sum(x * x, axis=0) / n_cols + eps)
    w = al.load(W + cols, mask=mask, other=0.0).to(al.float32)
    al.store(Y + row * n_cols + cols, (x * rstd * w).to(X.dtype), mask=mask)
    al.store(R + row, rstd)


@al.kernel(writes_all_outputs=True)
def rms_norm_row_stream(X, W, Y: al.output, R: al.output, n_cols, eps, BLOCK: al.constexpr):
    row = al.program_id(0)
    base = row * n_cols
    squares = al.zeros((BLOCK,), al.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + al.arange(0, BLOCK)
        x = al.load(X + base + cols, mask=cols < n_cols, other=0.0).to(al.float32)
        squares += x * x
    rstd = al.rsqrt(al.sum(squares, axis=0) / n_cols + eps)
    for start in range(0, n_cols, BLOCK):
        cols = start + al.arange(0, BLOCK)
        mask = cols < n_cols
        x = al.load(X + base + cols, mask=mask, other=0.0).to(al.float32)
        w = al.load(W + cols, mask=mask, other=0.0).to(al.float32)
        al.store(Y + base + cols, (x * rstd * w).to(X.dtype), mask=mask)
    al.store(R + row, rstd)


def _weight(call: Call, name: str, value, n_cols: int, of: str = "the last axis of x"):
    w = call.array(name, value)
    if shape_of(w) != (n_cols,):
        raise ValueError(f"al.{call.builtin}: argument '{name}' must have shape ({n_cols},) ({of}), "
                         f"got {shape_of(w)}")
    return w


def layernorm(x, gamma, beta, eps: float = 1e-5, return_stats: bool = False):
    """Layer normalisation of `x` over its last axis: (x - mean) / sqrt(var + eps) * gamma + beta.

    With `return_stats`, `(y, mean, rstd)`: the float32 row statistics (shape x.shape[:-1]) that a
    backward pass reads, as torch's native_layer_norm saves them."""
    key = call_key(x, gamma, beta, options=(float(eps), bool(return_stats)))
    plan = PLANS["layernorm"].get(key)
    if plan is not None:
        return plan(x, gamma, beta)
    call = Call("layernorm")
    x2d, rows, n_cols, restore = as_rows(call, call.array("x", x), -1)
    w, b = _weight(call, "gamma", gamma, n_cols), _weight(call, "beta", beta, n_cols)
    y = call.empty((rows, n_cols), dtype_of(x2d))
    mean, rstd = call.empty((rows,), "float32"), call.empty((rows,), "float32")
    if rows * n_cols:
        kernel, block = ((layernorm_row_tile, row_block(n_cols, ROW_TILE)) if n_cols <= ROW_TILE
                         else (layernorm_row_stream, CHUNK))
        args, kwargs = (x2d, w, b, n_cols, float(eps)), dict(Y=y, Mean=mean, Rstd=rstd, BLOCK=block)
        call.launch(kernel, rows, *args, **kwargs)
        stats_shape = shape_of(x)[:-1]
        returned = {"Y": shape_of(x), "Mean": stats_shape, "Rstd": stats_shape} if return_stats else {"Y": shape_of(x)}
        PLANS["layernorm"].record_launch(key, kernel, rows, args, kwargs, ("X", "W", "B"), returned, call.torch_results)
    if not return_stats:
        return restore(y)
    stats_shape = shape_of(x)[:-1]
    return restore(y), call.result(mean, stats_shape), call.result(rstd, stats_shape)


def rms_norm(x, weight, eps: float = 1e-6):
    """RMS normalisation of `x` over its last axis: (x / sqrt(mean(x^2) + eps) * weight, the float32
    1/rms of each row, shaped as x without its last axis)."""
    key = call_key(x, weight, options=(float(eps),))
    plan = PLANS["rms_norm"].get(key)
    if plan is not None:
        return plan(x, weight)
    call = Call("rms_norm")
    x2d, rows, n_cols, restore = as_rows(call, call.array("x", x), -1)
    w = _weight(call, "weight", weight, n_cols)
    y = call.empty((rows, n_cols), dtype_of(x2d))
    rstd = call.empty((rows,), "float32")
    if rows * n_cols:
        kernel, block = ((rms_norm_row_tile, row_block(n_cols, ROW_TILE)) if n_cols <= ROW_TILE
                         else (rms_norm_row_stream, CHUNK))
        args, kwargs = (x2d, w, n_cols, float(eps)), dict(Y=y, R=rstd, BLOCK=block)
        call.launch(kernel, rows, *args, **kwargs)
        PLANS["rms_norm"].record_launch(key, kernel, rows, args, kwargs, ("X", "W"),
                                        {"Y": shape_of(x), "R": shape_of(x)[:-1]}, call.torch_results)
    return restore(y), call.result(rstd, shape_of(x)[:-1])


@al.kernel(writes_all_outputs=True)
def group_norm_rows(X, W, B, Y: al.output, Mean: al.output, Rstd: al.output, groups, group_channels, spatial, eps,
                    BLOCK: al.constexpr):
    """One (sample, group) row of group_channels * spatial elements per program: its mean and rstd (two
    passes), then (x - mean) * rstd * W[c] + B[c] for each element's channel c."""
    row = al.program_id(0)
    n_cols = group_channels * spatial
    base = row * n_cols
    mean, rstd = streamed_stats(X, base, n_cols, eps, BLOCK)
    first = (row % groups) * group_channels
    for start in range(0, n_cols, BLOCK):
        cols = start + al.arange(0, BLOCK)
        mask = cols < n_cols
        channel = first + cols // spatial
        x = al.load(X + base + cols, mask=mask, other=0.0).to(al.float32)
        w = al.load(W + channel, mask=mask, other=0.0).to(al.float32)
        b = al.load(B + channel, mask=mask, other=0.0).to(al.float32)
        al.store(Y + base + cols, ((x - mean) * rstd * w + b).to(X.dtype), mask=mask)
    al.store(Mean + row, mean)
    al.store(Rstd + row, rstd)


def group_norm(x, num_groups: int, weight, bias, eps: float = 1e-5, return_stats: bool = False):
    """Group normalisation of x (N, C, *) over groups of C // num_groups channels (torch's group_norm), with
    per-channel weight and bias (C,). With `return_stats`, (y, mean, rstd): float32, shape (N, num_groups)."""
    call = Call("group_norm")
    xs = call.array("x", x)
    shape = shape_of(xs)
    if len(shape) < 2:
        raise ValueError(f"al.group_norm: x must be (N, C, ...), got shape {shape}")
    n, c = shape[0], shape[1]
    if not isinstance(num_groups, int) or num_groups < 1 or c % num_groups:
        raise ValueError(f"al.group_norm: num_groups must divide the {c} channels, got {num_groups!r}")
    w, b = _weight(call, "weight", weight, c, "x's channels"), _weight(call, "bias", bias, c, "x's channels")
    spatial = math.prod(shape[2:])
    rows = n * num_groups
    y = call.empty(shape, dtype_of(xs))
    mean, rstd = call.empty((rows,), "float32"), call.empty((rows,), "float32")
    if rows * c * spatial:
        call.launch(group_norm_rows, rows, xs.reshape(rows, -1), w, b, num_groups, c // num_groups, spatial,
                    float(eps), Y=y, Mean=mean, Rstd=rstd, BLOCK=CHUNK)
    out = call.result(y, shape)
    if not return_stats:
        return out
    return out, call.result(mean, (n, num_groups)), call.result(rstd, (n, num_groups))

