"""`al.silu` and `al.gelu`: elementwise activations over arrays of any shape, computed in float32."""
from __future__ import annotations

import math

import alloy as al

from .arrays import Call, dtype_of, shape_of
from .plans import Plans, call_key

BLOCK = 2048
GELU_MODES = ("none", "tanh")


@al.func
def silu_value(x):
    """``x * sigmoid(x)`` of a float32 value or tile (inlined where kernels call it)."""
    return x * al.sigmoid(x)


@al.func
def gelu_tanh_value(x):
    """GELU's tanh approximation of a float32 value or tile."""
    return 0.5 * x * (1.0 + al.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


@al.kernel(writes_all_outputs=True)
def silu_kernel(X, Y: al.output, n, BLOCK: al.constexpr):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    x = al.load(X + offs, mask=offs < n, other=0.0).to(al.float32)
    al.store(Y + offs, silu_value(x).to(X.dtype), mask=offs < n)


@al.kernel(writes_all_outputs=True)
def gelu_kernel(X, Y: al.output, n, BLOCK: al.constexpr, TANH: al.constexpr):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    x = al.load(X + offs, mask=offs < n, other=0.0).to(al.float32)
    if TANH:
        y = gelu_tanh_value(x)
    else:
        y = 0.5 * x * (1.0 + al.erf(x * 0.7071067811865476))
    al.store(Y + offs, y.to(X.dtype), mask=offs < n)


PLANS = {"silu": Plans(), "gelu": Plans()}


def _elementwise(name: str, kernel, x, **constexprs):
    key = call_key(x, options=tuple(sorted(constexprs.items())))
    plan = PLANS[name].get(key)
    if plan is not None:
        return plan(x)
    call = Call(name)
    x = call.array("x", x)
    shape = shape_of(x)
    n = math.prod(shape)
    y = call.empty((n,), dtype_of(x))
    if n:
        grid = al.cdiv(n, BLOCK)
        call.launch(kernel, grid, x.reshape(n), n, Y=y, BLOCK=BLOCK, **constexprs)
        PLANS[name].record_launch(key, kernel, grid, (x.reshape(n), n), dict(Y=y, BLOCK=BLOCK, **constexprs), ("X",),
                                  {"Y": shape}, call.torch_results)
    return call.result(y, shape)


def silu(x):
    """x * sigmoid(x), elementwise (torch.nn.functional.silu)."""
    return _elementwise("silu", silu_kernel, x)


def gelu(x, approximate: str = "none"):
    """GELU, elementwise: exact (erf) or, with approximate="tanh", the tanh form (torch.nn.functional.gelu)."""
    if approximate not in GELU_MODES:
        raise ValueError(f"al.gelu: approximate must be one of {GELU_MODES}, got {approximate!r}")
    return _elementwise("gelu", gelu_kernel, x, TANH=approximate == "tanh")
