"""`al.conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)`: 2-D convolution (torch's
conv2d, NCHW), as an implicit GEMM per group (program_id(2)): output positions are the rows, output channels the columns, and
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
def conv2d_kernel(X, W, Bias, Y: al.output, C, H, Wd, O, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW, G,
                  HAS_BIAS: al.constexpr, BLOCK_M: al.constexpr, BLOCK_N: al.constexpr, BLOCK_K: al.constexpr):
    """Y (N, O, OH, OW) = X (N, C, H, Wd) conv W (O, C / G, KH, KW) (+ Bias (O,)) in G groups; one BLOCK_M x
    BLOCK_N tile of (output position, output channel of group program_id(2)) per program."""
    N = X.shape[0]
    M = N * OH * OW
    group_in = C // G
    group_out = O // G
    K = group_in * KH * KW
    g = al.program_id(2)
    rm = al.program_id(0) * BLOCK_M + al.arange(0, BLOCK_M)
    rn = al.program_id(1) * BLOCK_N + al.arange(0, BLOCK_N)
    oc = g * group_out + rn
    n = rm // (OH * OW)
    pos = rm % (OH * OW)
    top = (pos // OW) * SH - PH
    left = (pos % OW) * SW - PW
    acc = al.zeros((BLOCK_M, BLOCK_N), dtype=al.float32)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + al.arange(0, BLOCK_K)
        c = g * group_in + rk // (KH * KW)
        tap = rk % (KH * KW)
        ih = top[:, None] + (tap // KW)[None, :] * DH
        iw = left[:, None] + (tap % KW)[None, :] * DW
        inside = (rm[:, None] < M) & (rk[None, :] < K) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < Wd)
        a = al.load(X + ((n[:, None] * C + c[None, :]) * H + ih) * Wd + iw, mask=inside, other=0.0)
        b = al.load(W + oc[:, None] * K + rk[None, :], mask=(rn[:, None] < group_out) & (rk[None, :] < K), other=0.0)
        acc += al.tile_dot(a, b, transpose_rhs=True)
    if HAS_BIAS:
        acc += al.load(Bias + oc, mask=rn < group_out, other=0.0).to(al.float32)[None, :]
    out = Y + (n[:, None] * O + oc[None, :]) * (OH * OW) + pos[:, None]
    al.store(out, acc.to(Y.dtype), mask=(rm[:, None] < M) & (rn[None, :] < group_out))


PLANS = Plans()
CPU_BLOCKS = dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16)  # gathered tiles: wider ones take LLVM seconds to compile
CPU_GRAD_BLOCKS = dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=8)  # the gradients' gathers carry more mask arithmetic


def _blocks(call: Call, m: int, n: int, k: int, dtype, cpu_blocks=CPU_BLOCKS) -> dict:
    """The tile sizes of a convolution GEMM: small fixed ones on the CPU, the GEMM tables' elsewhere."""
    if call.run_target == "cpu":
        return dict(cpu_blocks)
    return TUNERS["matmul"].choose(call.run_target, key_text([(m, n, k), str(dtype)]), lambda config: None).constexprs


def _check_groups(builtin: str, groups, channels: int, outputs: int) -> None:
    if not isinstance(groups, int) or groups < 1 or channels % groups or outputs % groups:
        raise ValueError(f"al.{builtin}: groups must divide the {channels} input and {outputs} output channels, "
                         f"got {groups!r}")


def _steps(builtin: str, stride, padding, dilation) -> tuple:
    return tuple(int_pair(builtin, v, name) for v, name in ((stride, "stride"), (padding, "padding"),
                                                            (dilation, "dilation")))


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation, groups): x (N, C, H, W), weight
    (O, C / groups, KH, KW), bias (O,)."""
    (sh, sw), (ph, pw), (dh, dw) = _steps("conv2d", stride, padding, dilation)
    if min(sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"al.conv2d: stride and dilation must be >= 1 and padding >= 0, got stride {stride}, "
                         f"padding {padding}, dilation {dilation}")
    options = (sh, sw, ph, pw, dh, dw, int(groups), bias is None)
    arrays = (x, weight) if bias is None else (x, weight, bias)
    key = call_key(*arrays, options=options)
    plan = PLANS.get(key)
    if plan is not None:
        return plan(*arrays, *(() if bias is not None else (weight,)))
    call = Call("conv2d")
    xs, ws = call.array("x", x, ndim=4), call.array("weight", weight, ndim=4)
    (n, c, h, w), (o, cw, kh, kw) = shape_of(xs), shape_of(ws)
    _check_groups("conv2d", groups, c, o)
    if cw * groups != c:
        raise ValueError(f"al.conv2d: weight {shape_of(ws)} expects {cw * groups} input channels ({groups} "
                         f"group(s) of {cw}), x {shape_of(xs)} has {c}")
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
    blocks = _blocks(call, n * oh * ow, o // groups, cw * kh * kw, dtype_of(xs))
    grid = (al.cdiv(n * oh * ow, blocks["BLOCK_M"]), al.cdiv(o // groups, blocks["BLOCK_N"]), groups)
    w2 = ws.reshape(o, cw * kh * kw)
    args = (xs, w2, bs if bs is not None else w2, c, h, w, o, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, groups)
    kwargs = dict(Y=y, HAS_BIAS=bs is not None, **blocks)
    call.launch(conv2d_kernel, grid, *args, **kwargs)
    PLANS.record_launch(key, conv2d_kernel, grid, args, kwargs, ("X", "W", "Bias"), {"Y": (n, o, oh, ow)},
                        call.torch_results)
    return call.result(y, (n, o, oh, ow))


@al.kernel(writes_all_outputs=True)
def conv2d_input_grad(Grad, W, Bias, DX: al.output, C, H, Wd, O, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW, G,
                      HAS_BIAS: al.constexpr, BLOCK_M: al.constexpr, BLOCK_N: al.constexpr, BLOCK_K: al.constexpr):
    """DX (N, C, H, Wd) = the gradient of conv2d's input from Grad (N, O, OH, OW), for group program_id(2):
    rows are input positions, columns the group's input channels, reduced over (the group's output channel,
    kernel row, kernel column); an output position contributes where (ih + PH - i * DH) / SH is a whole
    in-range row (and likewise for columns). With HAS_BIAS, Bias (C,) is added: the same kernel is
    conv_transpose2d's forward pass."""
    N = Grad.shape[0]
    M = N * H * Wd
    group_in = C // G
    group_out = O // G
    K = group_out * KH * KW
    g = al.program_id(2)
    rm = al.program_id(0) * BLOCK_M + al.arange(0, BLOCK_M)
    rc = al.program_id(1) * BLOCK_N + al.arange(0, BLOCK_N)
    n = rm // (H * Wd)
    pos = rm % (H * Wd)
    ih = pos // Wd + PH
    iw = pos % Wd + PW
    acc = al.zeros((BLOCK_M, BLOCK_N), dtype=al.float32)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + al.arange(0, BLOCK_K)
        o = g * group_out + rk // (KH * KW)
        tap = rk % (KH * KW)
        rows = ih[:, None] - (tap // KW)[None, :] * DH
        cols = iw[:, None] - (tap % KW)[None, :] * DW
        oh = rows // SH
        ow = cols // SW
        hit = (rm[:, None] < M) & (rk[None, :] < K) & (rows >= 0) & (cols >= 0) & (rows % SH == 0) & \
            (cols % SW == 0) & (oh < OH) & (ow < OW)
        a = al.load(Grad + ((n[:, None] * O + o[None, :]) * OH + oh) * OW + ow, mask=hit, other=0.0)
        b = al.load(W + (o[None, :] * group_in + rc[:, None]) * (KH * KW) + tap[None, :],
                    mask=(rc[:, None] < group_in) & (rk[None, :] < K), other=0.0)
        acc += al.tile_dot(a, b, transpose_rhs=True)
    if HAS_BIAS:
        acc += al.load(Bias + g * group_in + rc, mask=rc < group_in, other=0.0).to(al.float32)[None, :]
    out = DX + (n[:, None] * C + g * group_in + rc[None, :]) * (H * Wd) + pos[:, None]
    al.store(out, acc.to(DX.dtype), mask=(rm[:, None] < M) & (rc[None, :] < group_in))


@al.kernel(writes_all_outputs=True)
def conv2d_weight_grad(Grad, X, DW_: al.output, C, H, Wd, O, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW, G,
                       BLOCK_M: al.constexpr, BLOCK_N: al.constexpr, BLOCK_K: al.constexpr):
    """DW_ (O, C / G * KH * KW) = the gradient of conv2d's weight, for group program_id(2): rows are the
    group's output channels, columns (input channel, kernel row, kernel column), reduced over (batch, output
    position); X gathered as conv2d does."""
    N = Grad.shape[0]
    group_in = C // G
    group_out = O // G
    R = group_in * KH * KW
    K = N * OH * OW
    g = al.program_id(2)
    ro = al.program_id(0) * BLOCK_M + al.arange(0, BLOCK_M)
    rr = al.program_id(1) * BLOCK_N + al.arange(0, BLOCK_N)
    oc = g * group_out + ro
    c = g * group_in + rr // (KH * KW)
    tap = rr % (KH * KW)
    acc = al.zeros((BLOCK_M, BLOCK_N), dtype=al.float32)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + al.arange(0, BLOCK_K)
        n = rk // (OH * OW)
        pos = rk % (OH * OW)
        a = al.load(Grad + (n[None, :] * O + oc[:, None]) * (OH * OW) + pos[None, :],
                    mask=(ro[:, None] < group_out) & (rk[None, :] < K), other=0.0)
        ih = ((pos // OW) * SH - PH)[None, :] + (tap // KW)[:, None] * DH
        iw = ((pos % OW) * SW - PW)[None, :] + (tap % KW)[:, None] * DW
        inside = (rr[:, None] < R) & (rk[None, :] < K) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < Wd)
        b = al.load(X + ((n[None, :] * C + c[:, None]) * H + ih) * Wd + iw, mask=inside, other=0.0)
        acc += al.tile_dot(a, b, transpose_rhs=True)
    al.store(DW_ + oc[:, None] * R + rr[None, :], acc.to(DW_.dtype), mask=(ro[:, None] < group_out) & (rr[None, :] < R))


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


def conv2d_backward(grad_output, x, weight, stride=1, padding=0, dilation=1, need=(True, True, True),
                    groups: int = 1):
    """(grad_x, grad_weight, grad_bias) of al.conv2d for `grad_output` (each None where `need` says so), as
    aten.convolution_backward computes them: three kernels, the first two implicit GEMMs (per group)."""
    (sh, sw), (ph, pw), (dh, dw) = _steps("conv2d_backward", stride, padding, dilation)
    call = Call("conv2d_backward")
    g = call.array("grad_output", grad_output, ndim=4)
    xs, ws = call.array("x", x, ndim=4), call.array("weight", weight, ndim=4)
    (n, c, h, w), (o, cg, kh, kw), (_, _, oh, ow) = shape_of(xs), shape_of(ws), shape_of(g)
    _check_groups("conv2d_backward", groups, c, o)
    geometry = (c, h, w, o, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, groups)
    og = o // groups
    dtype = dtype_of(xs)
    grads = [None, None, None]

    def blocks(m, cols, k):
        return _blocks(call, m, cols, k, dtype, CPU_GRAD_BLOCKS)

    if need[0]:
        gx = call.empty((n, c, h, w), dtype)
        b = blocks(n * h * w, cg, og * kh * kw)
        call.launch(conv2d_input_grad, (al.cdiv(n * h * w, b["BLOCK_M"]), al.cdiv(cg, b["BLOCK_N"]), groups), g, ws,
                    ws, *geometry, DX=gx, HAS_BIAS=False, **b)
        grads[0] = call.result(gx, (n, c, h, w))
    if need[1]:
        gw = call.empty((o, cg * kh * kw), dtype)
        b = blocks(og, cg * kh * kw, n * oh * ow)
        call.launch(conv2d_weight_grad, (al.cdiv(og, b["BLOCK_M"]), al.cdiv(cg * kh * kw, b["BLOCK_N"]), groups),
                    g, xs, *geometry, DW_=gw, **b)
        grads[1] = call.result(gw, (o, cg, kh, kw))
    if need[2]:
        gb = call.empty((o,), dtype)
        call.launch(conv2d_bias_grad, o, g.reshape(n, o, oh * ow), o, oh * ow, DB=gb, BLOCK=1024)
        grads[2] = call.result(gb, (o,))
    return tuple(grads)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups: int = 1, dilation=1):
    """torch.nn.functional.conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation):
    x (N, Cin, H, W), weight (Cin, Cout / groups, KH, KW), bias (Cout,). It is the input gradient of the
    convolution it transposes, computed by that kernel (with the bias added)."""
    (sh, sw), (ph, pw), (dh, dw) = _steps("conv_transpose2d", stride, padding, dilation)
    (oph, opw) = int_pair("conv_transpose2d", output_padding, "output_padding")
    call = Call("conv_transpose2d")
    xs, ws = call.array("x", x, ndim=4), call.array("weight", weight, ndim=4)
    (n, cin, h, w), (cw, cog, kh, kw) = shape_of(xs), shape_of(ws)
    _check_groups("conv_transpose2d", groups, cin, cog * groups)
    if cw != cin:
        raise ValueError(f"al.conv_transpose2d: weight {shape_of(ws)} expects {cw} input channels, x {shape_of(xs)} "
                         f"has {cin}")
    cout = cog * groups
    oh = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    ow = (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    if oh < 1 or ow < 1 or oph >= max(sh, dh) or opw >= max(sw, dw):
        raise ValueError(f"al.conv_transpose2d: output_padding {output_padding} must be smaller than the stride or "
                         f"dilation, and the output non-empty (got {oh}x{ow})")
    bs = call.array("bias", bias) if bias is not None else None
    if bs is not None and (shape_of(bs) != (cout,) or dtype_of(bs) != dtype_of(xs)):
        raise ValueError(f"al.conv_transpose2d: bias must be a {dtype_of(xs)} array of shape ({cout},)")
    y = call.empty((n, cout, oh, ow), dtype_of(xs))
    b = _blocks(call, n * oh * ow, cog, (cin // groups) * kh * kw, dtype_of(xs), CPU_GRAD_BLOCKS)
    geometry = (cout, oh, ow, cin, h, w, kh, kw, sh, sw, ph, pw, dh, dw, groups)
    call.launch(conv2d_input_grad, (al.cdiv(n * oh * ow, b["BLOCK_M"]), al.cdiv(cog, b["BLOCK_N"]), groups), xs, ws,
                bs if bs is not None else ws, *geometry, DX=y, HAS_BIAS=bs is not None, **b)
    return call.result(y, (n, cout, oh, ow))


def conv_transpose2d_backward(grad_output, x, weight, stride=1, padding=0, dilation=1, need=(True, True, True),
                              groups: int = 1):
    """(grad_x, grad_weight, grad_bias) of al.conv_transpose2d: the input gradient is the convolution it
    transposes (al.conv2d of grad_output), the weight gradient conv2d's with x and grad_output in each other's
    roles, the bias gradient grad_output's row sums."""
    grad_x = conv2d(grad_output, weight, None, stride, padding, dilation, groups) if need[0] else None
    grad_w = conv2d_backward(x, grad_output, weight, stride, padding, dilation, (False, True, False), groups)[1] \
        if need[1] else None
    grad_b = None
    if need[2]:
        call = Call("conv_transpose2d_backward")
        g = call.array("grad_output", grad_output, ndim=4)
        n, o, oh, ow = shape_of(g)
        gb = call.empty((o,), dtype_of(g))
        call.launch(conv2d_bias_grad, o, g.reshape(n, o, oh * ow), o, oh * ow, DB=gb, BLOCK=1024)
        grad_b = call.result(gb, (o,))
    return grad_x, grad_w, grad_b
