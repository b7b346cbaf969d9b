"""`al.conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1)`: 2-D convolution (torch's conv2d, one
group, NCHW), as an implicit GEMM: output positions are the rows, output channels the columns, and
(input channel, kernel row, kernel column) the reduction; each A tile is gathered from x in place (zero
outside the padding), so no unfolded copy of x is made. Accumulates in float32, returns x's dtype.
"""
from __future__ import annotations

import alloy as al

from ..tuning.autotune import key_text
from .arrays import Call, dtype_of, shape_of
from .gemm import TUNERS
from .plans import Plans, call_key


@al.kernel(writes_all_outputs=True)
def conv2d_kernel(X, W, Bias, Y: al.output, C, H, Wd, O, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW,
                  HAS_BIAS: al.constexpr, BLOCK_M: al.constexpr, BLOCK_N: al.constexpr, BLOCK_K: al.constexpr):
    """Y (N, O, OH, OW) = X (N, C, H, Wd) conv W (O, C, KH, KW) (+ Bias (O,)); one BLOCK_M x BLOCK_N tile of
    (output position, output channel) per program."""
    N = X.shape[0]
    M = N * OH * OW
    K = C * KH * KW
    rm = al.program_id(0) * BLOCK_M + al.arange(0, BLOCK_M)
    rn = al.program_id(1) * BLOCK_N + al.arange(0, BLOCK_N)
    n = rm // (OH * OW)
    pos = rm % (OH * OW)
    top = (pos // OW) * SH - PH
    left = (pos % OW) * SW - PW
    acc = al.zeros((BLOCK_M, BLOCK_N), dtype=al.float32)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + al.arange(0, BLOCK_K)
        c = rk // (KH * KW)
        tap = rk % (KH * KW)
        ih = top[:, None] + (tap // KW)[None, :] * DH
        iw = left[:, None] + (tap % KW)[None, :] * DW
        inside = (rm[:, None] < M) & (rk[None, :] < K) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < Wd)
        a = al.load(X + ((n[:, None] * C + c[None, :]) * H + ih) * Wd + iw, mask=inside, other=0.0)
        b = al.load(W + rn[:, None] * K + rk[None, :], mask=(rn[:, None] < O) & (rk[None, :] < K), other=0.0)
        acc += al.tile_dot(a, b, transpose_rhs=True)
    if HAS_BIAS:
        acc += al.load(Bias + rn, mask=rn < O, other=0.0).to(al.float32)[None, :]
    out = Y + (n[:, None] * O + rn[None, :]) * (OH * OW) + pos[:, None]
    al.store(out, acc.to(Y.dtype), mask=(rm[:, None] < M) & (rn[None, :] < O))


PLANS = Plans()


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"al.conv2d: {name} must be an int or a pair of ints, got {value!r}")
    return pair


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation) for one group: x (N, C, H, W),
    weight (O, C, KH, KW), bias (O,)."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    if min(sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"al.conv2d: stride and dilation must be >= 1 and padding >= 0, got stride {stride}, "
                         f"padding {padding}, dilation {dilation}")
    options = (sh, sw, ph, pw, dh, dw, bias is None)
    arrays = (x, weight) if bias is None else (x, weight, bias)
    key = call_key(*arrays, options=options)
    plan = PLANS.get(key)
    if plan is not None:
        return plan(*arrays, *(() if bias is not None else (weight,)))
    call = Call("conv2d")
    xs, ws = call.array("x", x, ndim=4), call.array("weight", weight, ndim=4)
    (n, c, h, w), (o, cw, kh, kw) = shape_of(xs), shape_of(ws)
    if cw != c:
        raise ValueError(f"al.conv2d: weight {shape_of(ws)} expects {cw} input channels, x {shape_of(xs)} has {c} "
                         "(groups other than 1 are not supported)")
    if dtype_of(ws) != dtype_of(xs):
        raise TypeError(f"al.conv2d: x is {dtype_of(xs)} and weight is {dtype_of(ws)}; pass one dtype")
    bs = None
    if bias is not None:
        bs = call.array("bias", bias)
        if shape_of(bs) != (o,) or dtype_of(bs) != dtype_of(xs):
            raise ValueError(f"al.conv2d: bias must be a {dtype_of(xs)} array of shape ({o},), got "
                             f"{dtype_of(bs)} {shape_of(bs)}")
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"al.conv2d: a {kh}x{kw} kernel (dilation {dilation}) does not fit x {shape_of(xs)} "
                         f"padded by {padding}")
    y = call.empty((n, o, oh, ow), dtype_of(xs))
    if n * o * oh * ow == 0:
        return call.result(y, (n, o, oh, ow))
    blocks = TUNERS["matmul"].choose(call.run_target, key_text([(n * oh * ow, o, c * kh * kw), str(dtype_of(xs))]),
                                     lambda config: None).constexprs
    grid = (al.cdiv(n * oh * ow, blocks["BLOCK_M"]), al.cdiv(o, blocks["BLOCK_N"]))
    w2 = ws.reshape(o, c * kh * kw)
    args = (xs, w2, bs if bs is not None else w2, c, h, w, o, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw)
    kwargs = dict(Y=y, HAS_BIAS=bs is not None, **blocks)
    call.launch(conv2d_kernel, grid, *args, **kwargs)
    PLANS.record_launch(key, conv2d_kernel, grid, args, kwargs, ("X", "W", "Bias"), {"Y": (n, o, oh, ow)},
                        call.torch_results)
    return call.result(y, (n, o, oh, ow))
