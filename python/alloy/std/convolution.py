"""`al.conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1)`: 2-D convolution (torch's conv2d, one
group, NCHW), as an implicit GEMM: output positions are the rows, output channels the columns, and
(input channel, kernel row, kernel column) the reduction; each A tile is gathered from x in place (zero
outside the padding), so no unfolded copy of x is made. Accumulates in float32, returns x's dtype.
"""
from __future__ import annotations

import alloy as al

from ..tuning.autotune import key_text
from .arrays import Call, dtype_of, int_pair, shape_of
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
CPU_BLOCKS = dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16)  # gathered tiles: wider ones take LLVM seconds to compile
CPU_GRAD_BLOCKS = dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=8)  # the gradients' gathers carry more mask arithmetic


def _blocks(call: Call, m: int, n: int, k: int, dtype, cpu_blocks=CPU_BLOCKS) -> dict:
    """The tile sizes of a convolution GEMM: small fixed ones on the CPU, the GEMM tables' elsewhere."""
    if call.run_target == "cpu":
        return dict(cpu_blocks)
    return TUNERS["matmul"].choose(call.run_target, key_text([(m, n, k), str(dtype)]), lambda config: None).constexprs


def _steps(builtin: str, stride, padding, dilation) -> tuple:
    return tuple(int_pair(builtin, v, name) for v, name in ((stride, "stride"), (padding, "padding"),
                                                            (dilation, "dilation")))


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation) for one group: x (N, C, H, W),
    weight (O, C, KH, KW), bias (O,)."""
    (sh, sw), (ph, pw), (dh, dw) = _steps("conv2d", stride, padding, dilation)
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
    blocks = _blocks(call, n * oh * ow, o, c * kh * kw, dtype_of(xs))
    grid = (al.cdiv(n * oh * ow, blocks["BLOCK_M"]), al.cdiv(o, blocks["BLOCK_N"]))
    w2 = ws.reshape(o, c * kh * kw)
    args = (xs, w2, bs if bs is not None else w2, c, h, w, o, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw)
    kwargs = dict(Y=y, HAS_BIAS=bs is not None, **blocks)
    call.launch(conv2d_kernel, grid, *args, **kwargs)
    PLANS.record_launch(key, conv2d_kernel, grid, args, kwargs, ("X", "W", "Bias"), {"Y": (n, o, oh, ow)},
                        call.torch_results)
    return call.result(y, (n, o, oh, ow))


@al.kernel(writes_all_outputs=True)
def conv2d_input_grad(G, W, DX: al.output, C, H, Wd, O, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW,
                      BLOCK_M: al.constexpr, BLOCK_N: al.constexpr, BLOCK_K: al.constexpr):
    """DX (N, C, H, Wd) = the gradient of conv2d's input from G (N, O, OH, OW): rows are input positions,
    columns input channels, reduced over (output channel, kernel row, kernel column); an output position
    contributes where (ih + PH - i * DH) / SH is a whole in-range row (and likewise for columns)."""
    N = G.shape[0]
    M = N * H * Wd
    K = O * KH * KW
    rm = al.program_id(0) * BLOCK_M + al.arange(0, BLOCK_M)
    rc = al.program_id(1) * BLOCK_N + al.arange(0, BLOCK_N)
    n = rm // (H * Wd)
    pos = rm % (H * Wd)
    ih = pos // Wd + PH
    iw = pos % Wd + PW
    acc = al.zeros((BLOCK_M, BLOCK_N), dtype=al.float32)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + al.arange(0, BLOCK_K)
        o = rk // (KH * KW)
        tap = rk % (KH * KW)
        rows = ih[:, None] - (tap // KW)[None, :] * DH
        cols = iw[:, None] - (tap % KW)[None, :] * DW
        oh = rows // SH
        ow = cols // SW
        hit = (rm[:, None] < M) & (rk[None, :] < K) & (rows >= 0) & (cols >= 0) & (rows % SH == 0) & \
            (cols % SW == 0) & (oh < OH) & (ow < OW)
        a = al.load(G + ((n[:, None] * O + o[None, :]) * OH + oh) * OW + ow, mask=hit, other=0.0)
        b = al.load(W + (o[None, :] * C + rc[:, None]) * (KH * KW) + tap[None, :],
                    mask=(rc[:, None] < C) & (rk[None, :] < K), other=0.0)
        acc += al.tile_dot(a, b, transpose_rhs=True)
    out = DX + (n[:, None] * C + rc[None, :]) * (H * Wd) + pos[:, None]
    al.store(out, acc.to(DX.dtype), mask=(rm[:, None] < M) & (rc[None, :] < C))


@al.kernel(writes_all_outputs=True)
def conv2d_weight_grad(G, X, DW_: al.output, C, H, Wd, O, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW,
                       BLOCK_M: al.constexpr, BLOCK_N: al.constexpr, BLOCK_K: al.constexpr):
    """DW_ (O, C * KH * KW) = the gradient of conv2d's weight: rows are output channels, columns (input
    channel, kernel row, kernel column), reduced over (batch, output position); X gathered as conv2d does."""
    N = G.shape[0]
    R = C * KH * KW
    K = N * OH * OW
    ro = al.program_id(0) * BLOCK_M + al.arange(0, BLOCK_M)
    rr = al.program_id(1) * BLOCK_N + al.arange(0, BLOCK_N)
    c = rr // (KH * KW)
    tap = rr % (KH * KW)
    acc = al.zeros((BLOCK_M, BLOCK_N), dtype=al.float32)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + al.arange(0, BLOCK_K)
        n = rk // (OH * OW)
        pos = rk % (OH * OW)
        a = al.load(G + (n[None, :] * O + ro[:, None]) * (OH * OW) + pos[None, :],
                    mask=(ro[:, None] < O) & (rk[None, :] < K), other=0.0)
        ih = ((pos // OW) * SH - PH)[None, :] + (tap // KW)[:, None] * DH
        iw = ((pos % OW) * SW - PW)[None, :] + (tap % KW)[:, None] * DW
        inside = (rr[:, None] < R) & (rk[None, :] < K) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < Wd)
        b = al.load(X + ((n[None, :] * C + c[:, None]) * H + ih) * Wd + iw, mask=inside, other=0.0)
        acc += al.tile_dot(a, b, transpose_rhs=True)
    al.store(DW_ + ro[:, None] * R + rr[None, :], acc.to(DW_.dtype), mask=(ro[:, None] < O) & (rr[None, :] < R))


@al.kernel(writes_all_outputs=True)
def conv2d_bias_grad(G, DB: al.output, O, P, BLOCK: al.constexpr):
    """DB (O,) = G (N, O, P) summed over its batch and positions: one output channel per program."""
    o = al.program_id(0)
    N = G.shape[0]
    total = al.zeros((BLOCK,), al.float32)
    for start in range(0, N * P, BLOCK):
        i = start + al.arange(0, BLOCK)
        total += al.load(G + ((i // P) * O + o) * P + i % P, mask=i < N * P, other=0.0).to(al.float32)
    al.store(DB + o, al.sum(total, axis=0).to(DB.dtype))


def conv2d_backward(grad_output, x, weight, stride=1, padding=0, dilation=1, need=(True, True, True)):
    """(grad_x, grad_weight, grad_bias) of al.conv2d for `grad_output` (each None where `need` says so), as
    aten.convolution_backward computes them for one group: three kernels, the first two implicit GEMMs."""
    (sh, sw), (ph, pw), (dh, dw) = _steps("conv2d_backward", stride, padding, dilation)
    call = Call("conv2d_backward")
    g = call.array("grad_output", grad_output, ndim=4)
    xs, ws = call.array("x", x, ndim=4), call.array("weight", weight, ndim=4)
    (n, c, h, w), (o, _, kh, kw), (_, _, oh, ow) = shape_of(xs), shape_of(ws), shape_of(g)
    geometry = (c, h, w, o, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw)
    dtype = dtype_of(xs)
    grads = [None, None, None]

    def blocks(m, cols, k):
        return _blocks(call, m, cols, k, dtype, CPU_GRAD_BLOCKS)

    if need[0]:
        gx = call.empty((n, c, h, w), dtype)
        b = blocks(n * h * w, c, o * kh * kw)
        call.launch(conv2d_input_grad, (al.cdiv(n * h * w, b["BLOCK_M"]), al.cdiv(c, b["BLOCK_N"])), g, ws,
                    *geometry, DX=gx, **b)
        grads[0] = call.result(gx, (n, c, h, w))
    if need[1]:
        gw = call.empty((o, c * kh * kw), dtype)
        b = blocks(o, c * kh * kw, n * oh * ow)
        call.launch(conv2d_weight_grad, (al.cdiv(o, b["BLOCK_M"]), al.cdiv(c * kh * kw, b["BLOCK_N"])), g, xs,
                    *geometry, DW_=gw, **b)
        grads[1] = call.result(gw, (o, c, kh, kw))
    if need[2]:
        gb = call.empty((o,), dtype)
        call.launch(conv2d_bias_grad, o, g.reshape(n, o, oh * ow), o, oh * ow, DB=gb, BLOCK=1024)
        grads[2] = call.result(gb, (o,))
    return tuple(grads)
