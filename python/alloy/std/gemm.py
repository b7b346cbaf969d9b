"""`al.dot_transpose_rhs(A, B)` (A @ B.T) and `al.matmul(A, B)` (A @ B): tiled `tile_dot` GEMMs that
accumulate in float32 and return A's dtype.

A may have leading batch axes; B is 2-D (shared by the batch) or has the same
batch axes (one launch per batch entry). Block sizes come from the tuning
tables (`alloy tune matmul`), per device and shape.
"""
from __future__ import annotations

import functools
import math

import numpy as np

import alloy as al

from ..runtime import torch_dtypes
from ..tuning import Config, Tuner
from ..tuning.autotune import key_text
from .arrays import Call, LazyOutput, dtype_of, shape_of
from .plans import Plans, signature


@al.kernel(writes_all_outputs=True)
def matmul_nn(A, B, C: al.output, BLOCK_M: al.constexpr, BLOCK_N: al.constexpr, BLOCK_K: al.constexpr):
    M, K = A.shape
    N = B.shape[1]
    rm = al.program_id(0) * BLOCK_M + al.arange(0, BLOCK_M)
    rn = al.program_id(1) * BLOCK_N + al.arange(0, BLOCK_N)
    rk = al.arange(0, BLOCK_K)
    a_ptrs = A + rm[:, None] * K + rk[None, :]
    b_ptrs = B + rk[:, None] * N + rn[None, :]
    acc = al.zeros((BLOCK_M, BLOCK_N), dtype=al.float32)
    for k in range(0, K, BLOCK_K):
        a = al.load(a_ptrs, mask=(rm[:, None] < M) & (rk[None, :] + k < K))
        b = al.load(b_ptrs, mask=(rk[:, None] + k < K) & (rn[None, :] < N))
        acc += al.tile_dot(a, b)
        a_ptrs += BLOCK_K
        b_ptrs += BLOCK_K * N
    al.store(C + rm[:, None] * N + rn[None, :], acc.to(C.dtype), mask=(rm[:, None] < M) & (rn[None, :] < N))


ACTIVATIONS = {None: 0, "relu": 1, "gelu": 2, "gelu_tanh": 3, "silu": 4}


@al.func
def activated(x, ACT: al.constexpr):
    """Activation ACT (ACTIVATIONS' codes) of a float32 tile."""
    if ACT == 1:
        x = al.maximum(x, 0.0)
    elif ACT == 2:
        x = 0.5 * x * (1.0 + al.erf(x * 0.7071067811865476))
    elif ACT == 3:
        x = 0.5 * x * (1.0 + al.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
    elif ACT == 4:
        x = x * al.sigmoid(x)
    return x


@al.kernel(writes_all_outputs=True)
def matmul_nt(A, B_T, Bias, C: al.output, HAS_BIAS: al.constexpr, ACT: al.constexpr, BLOCK_M: al.constexpr,
              BLOCK_N: al.constexpr, BLOCK_K: al.constexpr):
    """C = act(A @ B_T.T + Bias): the bias (when HAS_BIAS) and the activation (ACT, ACTIVATIONS' codes: 0 is
    none) applied to the float32 accumulator before its one store."""
    M, K = A.shape
    N = B_T.shape[0]
    rm = al.program_id(0) * BLOCK_M + al.arange(0, BLOCK_M)
    rn = al.program_id(1) * BLOCK_N + al.arange(0, BLOCK_N)
    rk = al.arange(0, BLOCK_K)
    a_ptrs = A + rm[:, None] * K + rk[None, :]
    b_ptrs = B_T + rn[:, None] * K + rk[None, :]
    acc = al.zeros((BLOCK_M, BLOCK_N), dtype=al.float32)
    for k in range(0, K, BLOCK_K):
        a = al.load(a_ptrs, mask=(rm[:, None] < M) & (rk[None, :] + k < K))
        b = al.load(b_ptrs, mask=(rn[:, None] < N) & (rk[None, :] + k < K))
        acc += al.tile_dot(a, b, transpose_rhs=True)
        a_ptrs += BLOCK_K
        b_ptrs += BLOCK_K
    if HAS_BIAS:
        acc += al.load(Bias + rn, mask=rn < N, other=0.0).to(al.float32)[None, :]
    acc = activated(acc, ACT)
    al.store(C + rm[:, None] * N + rn[None, :], acc.to(C.dtype), mask=(rm[:, None] < M) & (rn[None, :] < N))


@al.kernel(writes_all_outputs=True)
def gated_nt(A, WG, WU, C: al.output, ACT: al.constexpr, BLOCK_M: al.constexpr, BLOCK_N: al.constexpr,
             BLOCK_K: al.constexpr):
    """C = act(A @ WG.T) * (A @ WU.T): two accumulators over one pass of A's tiles (SwiGLU, GeGLU)."""
    M, K = A.shape
    N = WG.shape[0]
    rm = al.program_id(0) * BLOCK_M + al.arange(0, BLOCK_M)
    rn = al.program_id(1) * BLOCK_N + al.arange(0, BLOCK_N)
    rk = al.arange(0, BLOCK_K)
    a_ptrs = A + rm[:, None] * K + rk[None, :]
    g_ptrs = WG + rn[:, None] * K + rk[None, :]
    u_ptrs = WU + rn[:, None] * K + rk[None, :]
    gate = al.zeros((BLOCK_M, BLOCK_N), dtype=al.float32)
    up = al.zeros((BLOCK_M, BLOCK_N), dtype=al.float32)
    for k in range(0, K, BLOCK_K):
        a = al.load(a_ptrs, mask=(rm[:, None] < M) & (rk[None, :] + k < K))
        w_mask = (rn[:, None] < N) & (rk[None, :] + k < K)
        gate += al.tile_dot(a, al.load(g_ptrs, mask=w_mask), transpose_rhs=True)
        up += al.tile_dot(a, al.load(u_ptrs, mask=w_mask), transpose_rhs=True)
        a_ptrs += BLOCK_K
        g_ptrs += BLOCK_K
        u_ptrs += BLOCK_K
    out = activated(gate, ACT) * up
    al.store(C + rm[:, None] * N + rn[None, :], out.to(C.dtype), mask=(rm[:, None] < M) & (rn[None, :] < N))


def _blocks(transpose_rhs: bool):
    def configs(target: str, key: str | None) -> list[Config]:
        if target != "cuda":
            sizes = ((32, 32, 32), (64, 64, 16), (64, 32, 32), (128, 64, 16), (16, 64, 64))
        elif transpose_rhs and key is not None and '"float32"' not in key:
            # 16-bit A @ B.T takes the sm_90a warpgroup-MMA pipeline (dynamic shared memory)
            sizes = ((128, 256, 64), (128, 128, 64), (64, 64, 32))
        else:  # the other GEMMs stage tiles in static shared memory (48 KiB)
            sizes = ((64, 64, 32), (32, 64, 32), (64, 32, 32))
        return [Config(BLOCK_M=m, BLOCK_N=n, BLOCK_K=k) for m, n, k in sizes]

    return configs


TUNERS = {
    "dot_transpose_rhs": Tuner("alloy.std.dot_transpose_rhs", _blocks(True), measure_on_miss=False),
    "matmul": Tuner("alloy.std.matmul", _blocks(False), measure_on_miss=False),
}


PLANS = {"dot_transpose_rhs": Plans(), "matmul": Plans(), "linear": Plans(), "gated": Plans()}


def _stored_transpose(B):
    """The C-contiguous matrix of which B is the transposed view (numpy or torch, 2-D), else None."""
    if type(B) is np.ndarray:
        return B.T if B.ndim == 2 and not B.flags.c_contiguous and B.T.flags.c_contiguous else None
    if torch_dtypes.is_tensor(B) and B.dim() == 2 and not B.is_contiguous() and B.t().is_contiguous():
        return B.t()
    return None


def _gemm(builtin: str, A, B, transpose_rhs: bool, tune=None, bias=None, act: int = 0, up=None):
    shown_b = tuple(getattr(B, "shape", ()))  # B as the caller passed it, for messages
    epilogue = bias is not None or act or up is not None
    stored = None if epilogue else _stored_transpose(B)
    if stored is not None:  # B = W.T for a row-major W: the other GEMM reads W as stored, no copy
        B, transpose_rhs = stored, not transpose_rhs
    kind = "gated" if up is not None else "linear" if epilogue else "dot_transpose_rhs" if transpose_rhs else "matmul"
    if up is not None:
        arrays = (A, B, up)
    else:  # without a bias the A @ B.T kernel never reads its bias argument
        arrays = (A, B, B if bias is None else bias) if transpose_rhs else (A, B)
    sig = signature(*arrays) if tune is None else None
    plan_key = None if sig is None else sig + (act, bias is None)
    plan = PLANS[kind].get(plan_key)
    if plan is not None:
        return plan(*arrays)
    call = Call(builtin)
    names = ("x", "w_gate") if up is not None else ("x", "weight") if epilogue else ("A", "B")
    a, b = call.array(names[0], A), call.array(names[1], B)
    sa, sb = shape_of(a), shape_of(b)
    if len(sa) < 2 or len(sb) < 2:
        raise ValueError(f"al.{builtin}: A and B need at least 2 dimensions, got {sa} and {shown_b}")
    if dtype_of(a) != dtype_of(b):
        raise TypeError(f"al.{builtin}: A is {dtype_of(a)} and B is {dtype_of(b)}; pass one dtype")
    n, kb = (sb[-2], sb[-1]) if transpose_rhs else (sb[-1], sb[-2])
    m, k = sa[-2], sa[-1]
    if k != kb:
        raise ValueError(f"al.{builtin}: A {sa} and B {shown_b} do not agree on K ({k} vs {kb})")
    batch_b = sb[:-2]
    if batch_b and batch_b != sa[:-2]:
        raise ValueError(f"al.{builtin}: B's batch axes {batch_b} differ from A's {sa[:-2]}")
    if up is not None:
        up = call.array("w_up", up)
        if shape_of(up) != sb or dtype_of(up) != dtype_of(a):
            raise ValueError(f"al.{builtin}: w_up must be a {dtype_of(a)} array of w_gate's shape {sb}, "
                             f"got {dtype_of(up)} {shape_of(up)}")
    if bias is not None:
        bias = call.array("bias", bias)
        if shape_of(bias) != (n,) or dtype_of(bias) != dtype_of(a):
            raise ValueError(f"al.{builtin}: bias must be a {dtype_of(a)} array of shape ({n},) (weight's rows), "
                             f"got {dtype_of(bias)} {shape_of(bias)}")
    out_shape = sa[:-1] + (n,)
    c = call.empty(out_shape, dtype_of(a), lazy=not batch_b)  # batch entries write views of one output
    if math.prod(out_shape) == 0:
        return call.result(c, out_shape)
    if k == 0:
        raise ValueError(f"al.{builtin}: K is 0 (A {sa}, B {sb})")
    kernel = gated_nt if up is not None else matmul_nt if transpose_rhs else matmul_nn
    extra = dict(ACT=act) if up is not None else dict(HAS_BIAS=bias is not None, ACT=act) if transpose_rhs else {}
    bias_arg = (up,) if up is not None else (bias if bias is not None else b,) if transpose_rhs else ()
    if batch_b:  # one launch per batch entry
        count = math.prod(batch_b)
        pairs = [(a.reshape(count, m, k)[i], b.reshape((count,) + sb[-2:])[i], _rows(c, count, m, n, i))
                 for i in range(count)]
    else:
        pairs = [(a.reshape(math.prod(sa[:-1]), k), b, c if isinstance(c, LazyOutput) else _rows(c, 1, math.prod(sa[:-1]), n, 0))]
    rows = pairs[0][0].shape[0]
    key = _table_key(rows, n, k, str(dtype_of(a)))
    # an epilogue does not move the winner; two accumulators do not fit the CUDA warpgroup pipeline, so the
    # gated kernel takes the static-shared-memory block sizes (the matmul table's)
    tuner = TUNERS["dot_transpose_rhs" if transpose_rhs and up is None else "matmul"]

    def run(config):
        blocks = config.constexprs
        grid = (al.cdiv(rows, blocks["BLOCK_M"]), al.cdiv(n, blocks["BLOCK_N"]))
        for lhs, rhs, out in pairs:
            call.launch(kernel, grid, lhs, rhs, *bias_arg, C=out, **extra, **blocks)

    if tune:
        PLANS[kind].clear()  # the winner may change: plans record the blocks they were made with
        return tuner.measure(call.run_target, key, run, progress=tune)
    chosen = tuner.choose(call.run_target, key, run)
    run(chosen)
    if not batch_b:  # one launch: the next call like this one rebinds it
        lhs, rhs, out = pairs[0]
        blocks = chosen.constexprs
        grid = (al.cdiv(rows, blocks["BLOCK_M"]), al.cdiv(n, blocks["BLOCK_N"]))
        inputs = ("A", "WG", "WU") if up is not None else ("A", "B_T", "Bias") if transpose_rhs else ("A", "B")
        PLANS[kind].record_launch(plan_key, kernel, grid, (lhs, rhs, *bias_arg), dict(C=out, **extra, **blocks),
                                  inputs, {"C": out_shape}, call.torch_results)
    return call.result(c, out_shape)


@functools.lru_cache(maxsize=1024)
def _table_key(rows: int, n: int, k: int, dtype: str) -> str:
    """The tuning-table key of a GEMM shape (JSON text, built once per shape)."""
    return key_text([(rows, n, k), dtype])


def _rows(c, count: int, m: int, n: int, i: int):
    """Batch entry `i` of output `c` as a contiguous (m, n) view."""
    view = c.numpy() if isinstance(c, al.AlloyBuffer) else c
    return view.reshape(count, m, n)[i]


def dot_transpose_rhs(A, B):
    """A @ B.T for A (..., M, K) and B (N, K) or (..., N, K)."""
    return _gemm("dot_transpose_rhs", A, B, transpose_rhs=True)


def matmul(A, B):
    """A @ B for A (..., M, K) and B (K, N) or (..., K, N)."""
    return _gemm("matmul", A, B, transpose_rhs=False)


def linear(x, weight, bias=None, activation: str | None = None):
    """activation(x @ weight.T + bias) for x (..., K), weight (N, K) and bias (N,) (torch.nn.functional.linear,
    then the activation: None, "relu", "gelu", "gelu_tanh" or "silu"), in one GEMM whose epilogue adds the
    bias and applies the activation to the float32 accumulator."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"al.linear: activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    if len(getattr(weight, "shape", ())) != 2:
        raise ValueError(f"al.linear: weight must be 2-D (N, K), got shape {tuple(getattr(weight, 'shape', ()))}")
    return _gemm("linear", x, weight, transpose_rhs=True, bias=bias, act=ACTIVATIONS[activation])


GATES = {"silu": ACTIVATIONS["silu"], "gelu": ACTIVATIONS["gelu"], "gelu_tanh": ACTIVATIONS["gelu_tanh"]}


def gated_linear(x, w_gate, w_up, activation: str = "silu"):
    """activation(x @ w_gate.T) * (x @ w_up.T) for x (..., K) and w_gate, w_up (N, K): a gated MLP's first
    half (SwiGLU with "silu", GeGLU with "gelu" or "gelu_tanh") in one GEMM kernel that keeps both
    accumulators and reads each tile of x once."""
    if activation not in GATES:
        raise ValueError(f"al.gated_linear: activation must be one of {tuple(GATES)}, got {activation!r}")
    for name, w in (("w_gate", w_gate), ("w_up", w_up)):
        if len(getattr(w, "shape", ())) != 2:
            raise ValueError(f"al.gated_linear: {name} must be 2-D (N, K), got shape {tuple(getattr(w, 'shape', ()))}")
    return _gemm("gated_linear", x, w_gate, transpose_rhs=True, act=GATES[activation], up=w_up)
