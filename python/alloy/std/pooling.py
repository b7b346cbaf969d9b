"""`al.max_pool2d` (torch's max_pool2d, NCHW, with the flat-in-plane indices a backward reads),
`al.avg_pool2d` (fixed or adaptive windows, torch's divisor rules) and their gradients: one output element
per lane, the window's taps in a loop; the gradients scatter-add with float32 atomics."""
from __future__ import annotations

import math

import alloy as al

import numpy as np

from .arrays import INDEX_DTYPES, Call, dtype_of, int_pair, shape_of

BLOCK = 256


@al.func
def pooled_element(total, OH, OW, BLOCK: al.constexpr):
    """(offsets, live lanes, plane, output row, output column) of a pooling program's lanes: one output element
    of an (N * C, OH, OW) result each."""
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    return offs, offs < total, offs // (OH * OW), (offs % (OH * OW)) // OW, offs % OW


@al.kernel(writes_all_outputs=True)
def max_pool2d_kernel(X, Y: al.output, Index: al.output, total, H, Wd, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW,
                      BLOCK: al.constexpr):
    """Y and Index (N, C, OH, OW): each window's maximum (NaN wins, as in torch) and its position ih * Wd + iw
    in the input plane (the window's first in-range position when every tap is -inf)."""
    offs, live, plane, oh, ow = pooled_element(total, OH, OW, BLOCK)
    top = oh * SH - PH
    left = ow * SW - PW
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
    al.atomic_add(DX + at, al.load(G + offs, mask=live, other=0.0).to(al.float32), mask=live)


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
    g = call.array("grad_output", grad_output, ndim=4)
    index = call.array("indices", indices, dtypes=INDEX_DTYPES, ndim=4)
    if shape_of(index) != shape_of(g):
        raise ValueError(f"al.max_pool2d_backward: indices {shape_of(index)} and grad_output {shape_of(g)} differ")
    n, c, h, w = (int(v) for v in input_shape)
    dx = _zeroed_float32(call, (n, c, h, w))  # the scatter adds into it
    total = math.prod(shape_of(g))
    if total:
        call.launch(max_pool2d_scatter, al.cdiv(total, BLOCK), g, index, dx, total,
                    shape_of(g)[2] * shape_of(g)[3], h * w, BLOCK=BLOCK)
    return call.result(_in_dtype(call, dx, dtype_of(g)), (n, c, h, w))


@al.kernel(writes_all_outputs=True)
def convert_kernel(X, Y: al.output, n, BLOCK: al.constexpr):
    i = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    al.store(Y + i, al.load(X + i, mask=i < n, other=0.0).to(Y.dtype), mask=i < n)


def _zeroed_float32(call: Call, shape):
    """A zeroed float32 gradient the scatter kernels add into with float32 atomics."""
    dx = call.empty(shape, "float32", lazy=False)
    dx[...] = 0
    return dx


def _in_dtype(call: Call, dx, dtype):
    """The float32 gradient `dx` in `dtype` (a conversion kernel for 16-bit gradients)."""
    if np.dtype(dtype) == np.float32:
        return dx
    out = call.empty(tuple(dx.shape), dtype)
    total = math.prod(tuple(dx.shape))
    if total:
        call.launch(convert_kernel, al.cdiv(total, BLOCK), dx.reshape(total), total, Y=out, BLOCK=BLOCK)
    return out


@al.func
def avg_window(oh, ow, H, Wd, OH, OW, KH, KW, SH, SW, PH, PW, DIV, ADAPTIVE: al.constexpr, COUNT_PAD: al.constexpr):
    """(first row, first column, row end, column end, divisor) of each output element's window, as torch
    bounds it: adaptive windows [floor(i * H / OH), ceil((i + 1) * H / OH)), else stride and padding with the
    divisor counting the padding when COUNT_PAD, or DIV when positive."""
    if ADAPTIVE:
        top = (oh * H) // OH
        left = (ow * Wd) // OW
        bottom = ((oh + 1) * H + OH - 1) // OH
        right = ((ow + 1) * Wd + OW - 1) // OW
        divisor = (bottom - top) * (right - left)
    else:
        top = oh * SH - PH
        left = ow * SW - PW
        bottom = al.minimum(top + KH, H + PH)
        right = al.minimum(left + KW, Wd + PW)
        padded = (bottom - top) * (right - left)
        top, left = al.maximum(top, 0), al.maximum(left, 0)
        bottom, right = al.minimum(bottom, H), al.minimum(right, Wd)
        divisor = padded if COUNT_PAD else (bottom - top) * (right - left)
        if DIV > 0:
            divisor = al.full(oh.shape, DIV, al.int32)
    return top, left, bottom, right, divisor


@al.kernel(writes_all_outputs=True)
def avg_pool2d_kernel(X, Y: al.output, total, H, Wd, OH, OW, KH, KW, SH, SW, PH, PW, DIV, ADAPTIVE: al.constexpr,
                      COUNT_PAD: al.constexpr, BLOCK: al.constexpr):
    """Y (N, C, OH, OW): each window's mean (KH x KW taps at most; for adaptive windows, their largest size)."""
    offs, live, plane, oh, ow = pooled_element(total, OH, OW, BLOCK)
    top, left, bottom, right, divisor = avg_window(oh, ow, H, Wd, OH, OW, KH, KW, SH, SW, PH, PW, DIV, ADAPTIVE,
                                                   COUNT_PAD)
    total_in = al.zeros((BLOCK,), al.float32)
    for t in range(0, KH * KW):
        ih = top + t // KW
        iw = left + t % KW
        ok = live & (ih < bottom) & (iw < right)
        total_in += al.load(X + (plane * H + ih) * Wd + iw, mask=ok, other=0.0).to(al.float32)
    al.store(Y + offs, (total_in / divisor.to(al.float32)).to(Y.dtype), mask=live)


@al.kernel
def avg_pool2d_scatter(G, DX, total, H, Wd, OH, OW, KH, KW, SH, SW, PH, PW, DIV, ADAPTIVE: al.constexpr,
                       COUNT_PAD: al.constexpr, BLOCK: al.constexpr):
    """DX (zeroed, N, C, H, W) += each output element's gradient / divisor over its window."""
    offs, live, plane, oh, ow = pooled_element(total, OH, OW, BLOCK)
    top, left, bottom, right, divisor = avg_window(oh, ow, H, Wd, OH, OW, KH, KW, SH, SW, PH, PW, DIV, ADAPTIVE,
                                                   COUNT_PAD)
    share = al.load(G + offs, mask=live, other=0.0).to(al.float32) / divisor.to(al.float32)
    for t in range(0, KH * KW):
        ih = top + t // KW
        iw = left + t % KW
        ok = live & (ih < bottom) & (iw < right)
        al.atomic_add(DX + (plane * H + ih) * Wd + iw, share, mask=ok)


def _avg_launch(call, kernel, x_shape, out_shape, adaptive: bool, window, extra_arrays, count_pad, divisor, **outputs):
    n, c, h, w = x_shape
    oh, ow = out_shape
    (kh, kw), (sh, sw), (ph, pw) = window
    total = n * c * oh * ow
    if total:
        call.launch(kernel, al.cdiv(total, BLOCK), *extra_arrays, total, h, w, oh, ow, kh, kw, sh, sw, ph, pw,
                    int(divisor or 0), ADAPTIVE=adaptive, COUNT_PAD=bool(count_pad), BLOCK=BLOCK, **outputs)


def _avg_window(builtin, x_shape, kernel_size, stride, padding, ceil_mode, output_size):
    """((kh, kw), (sh, sw), (ph, pw)) and (oh, ow) of an average pooling: fixed windows, or adaptive ones to
    `output_size` (whose loop bound is the largest window)."""
    h, w = x_shape[2], x_shape[3]
    if output_size is not None:
        oh, ow = int_pair(builtin, tuple(output_size) if not isinstance(output_size, int) else output_size,
                          "output_size")
        if oh < 1 or ow < 1:
            raise ValueError(f"al.{builtin}: output_size must be positive, got {output_size!r}")
        return ((-(-h // oh) + 1, -(-w // ow) + 1), (1, 1), (0, 0)), (oh, ow)
    (kh, kw) = int_pair(builtin, kernel_size, "kernel_size")
    (sh, sw) = int_pair(builtin, stride if stride not in (None, [], ()) else kernel_size, "stride")
    (ph, pw) = int_pair(builtin, padding, "padding")
    if min(kh, kw, sh, sw) < 1 or ph > kh // 2 or pw > kw // 2 or min(ph, pw) < 0:
        raise ValueError(f"al.{builtin}: kernel_size and stride must be >= 1 and padding at most half the kernel, "
                         f"got kernel_size {kernel_size}, stride {stride}, padding {padding}")
    oh, ow = _output_size(h, kh, sh, ph, 1, ceil_mode), _output_size(w, kw, sw, pw, 1, ceil_mode)
    return ((kh, kw), (sh, sw), (ph, pw)), (oh, ow)


def avg_pool2d(x, kernel_size=None, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override=None, output_size=None):
    """torch.nn.functional.avg_pool2d(x, ...) for x (N, C, H, W); with `output_size` instead,
    adaptive_avg_pool2d(x, output_size)."""
    call = Call("avg_pool2d")
    xs = call.array("x", x, ndim=4)
    window, (oh, ow) = _avg_window("avg_pool2d", shape_of(xs), kernel_size, stride, padding, ceil_mode, output_size)
    n, c = shape_of(xs)[:2]
    y = call.empty((n, c, oh, ow), dtype_of(xs))
    _avg_launch(call, avg_pool2d_kernel, shape_of(xs), (oh, ow), output_size is not None, window, (xs,),
                count_include_pad, divisor_override, Y=y)
    return call.result(y, (n, c, oh, ow))


def avg_pool2d_backward(grad_output, input_shape, kernel_size=None, stride=None, padding=0, ceil_mode: bool = False,
                        count_include_pad: bool = True, divisor_override=None, output_size=None):
    """The gradient of avg_pool2d's (or, with `output_size`, adaptive_avg_pool2d's) input: each output's
    gradient spread evenly over its window (added up in float32 with atomics, returned in grad_output's
    dtype)."""
    call = Call("avg_pool2d_backward")
    g = call.array("grad_output", grad_output, ndim=4)
    shape = tuple(int(v) for v in input_shape)
    window, out = _avg_window("avg_pool2d_backward", shape, kernel_size, stride, padding, ceil_mode, output_size)
    if tuple(shape_of(g)[2:]) != out:
        raise ValueError(f"al.avg_pool2d_backward: grad_output {shape_of(g)} does not match the pooled size {out}")
    dx = _zeroed_float32(call, shape)  # the scatter adds into it
    _avg_launch(call, avg_pool2d_scatter, shape, out, output_size is not None, window, (g, dx), count_include_pad,
                divisor_override)
    return call.result(_in_dtype(call, dx, dtype_of(g)), shape)
