"""`al.max_pool2d` (torch's max_pool2d, NCHW, with the flat-in-plane indices a backward reads) and its
gradient `al.max_pool2d_backward`: one output element per lane, the window's taps in a loop."""
from __future__ import annotations

import math

import alloy as al

import numpy as np

from .arrays import INDEX_DTYPES, Call, dtype_of, int_pair, shape_of

BLOCK = 256
ATOMIC_DTYPES = (np.dtype(np.float32),)  # the gradient scatter adds with float32 atomics


@al.kernel(writes_all_outputs=True)
def max_pool2d_kernel(X, Y: al.output, Index: al.output, total, H, Wd, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW,
                      BLOCK: al.constexpr):
    """Y and Index (N, C, OH, OW): each window's maximum (NaN wins, as in torch) and its position ih * Wd + iw
    in the input plane (the window's first in-range position when every tap is -inf)."""
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    live = offs < total
    plane = offs // (OH * OW)
    pos = offs % (OH * OW)
    top = (pos // OW) * SH - PH
    left = (pos % OW) * SW - PW
    best = al.full((BLOCK,), -float("inf"), al.float32)
    arg = al.maximum(top, 0) * Wd + al.maximum(left, 0)
    for t in range(0, KH * KW):
        ih = top + (t // KW) * DH
        iw = left + (t % KW) * DW
        ok = live & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < Wd)
        v = al.load(X + (plane * H + ih) * Wd + iw, mask=ok, other=-float("inf")).to(al.float32)
        take = ok & ((v > best) | (v != v))
        best = al.where(take, v, best)
        arg = al.where(take, ih * Wd + iw, arg)
    al.store(Y + offs, best.to(Y.dtype), mask=live)
    al.store(Index + offs, arg.to(Index.dtype), mask=live)


@al.kernel
def max_pool2d_scatter(G, Index, DX, total, plane_out, plane_in, BLOCK: al.constexpr):
    """DX (zeroed, N, C, H, W) += G at Index, plane by plane (overlapping windows add up)."""
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    live = offs < total
    at = (offs // plane_out) * plane_in + al.load(Index + offs, mask=live, other=0).to(al.int32)
    al.atomic_add(DX + at, al.load(G + offs, mask=live, other=0.0), mask=live)


def _output_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # torch: the last window must start inside the input or its left padding
        out -= 1
    return out


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """torch.nn.functional.max_pool2d(x, ...) for x (N, C, H, W); with `return_indices`, (y, indices): int64
    positions ih * W + iw within each input plane."""
    (kh, kw) = int_pair("max_pool2d", kernel_size, "kernel_size")
    (sh, sw) = int_pair("max_pool2d", stride if stride not in (None, [], ()) else kernel_size, "stride")
    (ph, pw), (dh, dw) = int_pair("max_pool2d", padding, "padding"), int_pair("max_pool2d", dilation, "dilation")
    if min(kh, kw, sh, sw, dh, dw) < 1 or ph > kh // 2 or pw > kw // 2 or min(ph, pw) < 0:
        raise ValueError(f"al.max_pool2d: kernel_size, stride and dilation must be >= 1 and padding at most half "
                         f"the kernel, got kernel_size {kernel_size}, stride {stride}, padding {padding}")
    call = Call("max_pool2d")
    xs = call.array("x", x, ndim=4)
    n, c, h, w = shape_of(xs)
    oh, ow = _output_size(h, kh, sh, ph, dh, ceil_mode), _output_size(w, kw, sw, pw, dw, ceil_mode)
    if oh < 1 or ow < 1:
        raise ValueError(f"al.max_pool2d: a {kh}x{kw} window does not fit x {shape_of(xs)}")
    shape = (n, c, oh, ow)
    y, index = call.empty(shape, dtype_of(xs)), call.empty(shape, "int64")
    total = math.prod(shape)
    if total:
        call.launch(max_pool2d_kernel, al.cdiv(total, BLOCK), xs, total, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw,
                    Y=y, Index=index, BLOCK=BLOCK)
    out = call.result(y, shape)
    return (out, call.result(index, shape)) if return_indices else out


def max_pool2d_backward(grad_output, indices, input_shape):
    """The gradient of max_pool2d's input (shape `input_shape`): grad_output added at `indices` in each plane."""
    call = Call("max_pool2d_backward")
    g = call.array("grad_output", grad_output, ndim=4, dtypes=ATOMIC_DTYPES)
    index = call.array("indices", indices, dtypes=INDEX_DTYPES, ndim=4)
    if shape_of(index) != shape_of(g):
        raise ValueError(f"al.max_pool2d_backward: indices {shape_of(index)} and grad_output {shape_of(g)} differ")
    n, c, h, w = (int(v) for v in input_shape)
    dx = call.empty((n, c, h, w), dtype_of(g), lazy=False)  # zeroed below: the scatter adds into it
    dx[...] = 0
    total = math.prod(shape_of(g))
    if total:
        call.launch(max_pool2d_scatter, al.cdiv(total, BLOCK), g, index, dx, total,
                    shape_of(g)[2] * shape_of(g)[3], h * w, BLOCK=BLOCK)
    return call.result(dx, (n, c, h, w))
