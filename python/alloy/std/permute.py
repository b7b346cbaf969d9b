"""`al.transpose(x, axes=None)`: x with its axes permuted (numpy.transpose), as a contiguous array.

On the CPU target a lazy call computes nothing until read, and a kernel or builtin that reads its
result fuses it as a prologue: x is read in place at the permuted offsets (permute_kernel.py).
"""
from __future__ import annotations

from ..runtime.buffer import KERNEL_DTYPES
from .arrays import Call, dtype_of
from .permute_kernel import MAX_DIMS, launch_permute, permute_kernel
from .plans import Plans, call_key

PLANS = Plans()


def transpose(x, axes=None):
    """x with its axes permuted as numpy.transpose(x, axes) (reversed when `axes` is None), contiguous."""
    shape = tuple(int(s) for s in getattr(x, "shape", ()))
    ndim = len(shape)
    try:
        order = tuple(reversed(range(ndim))) if axes is None else tuple(int(a) for a in axes)
    except TypeError:
        raise TypeError(f"al.transpose: axes must be a sequence of ints, got {axes!r}") from None
    order = tuple(a % ndim if ndim and -ndim <= a < ndim else a for a in order)
    if sorted(order) != list(range(ndim)):
        raise ValueError(f"al.transpose: axes {axes} are not a permutation of the {ndim} axes of x {shape}")
    key = call_key(x, options=(order,))
    plan = PLANS.get(key)
    if plan is not None:
        return plan(x)
    call = Call("transpose")
    x = call.array("x", x, dtypes=KERNEL_DTYPES)
    if ndim > MAX_DIMS:
        raise ValueError(f"al.transpose: x has {ndim} dimensions; at most {MAX_DIMS} are supported")
    out_shape = tuple(shape[a] for a in order)
    y = call.empty(out_shape, dtype_of(x))
    launched = launch_permute(call, x, order, y)
    if launched is not None:
        PLANS.record_launch(key, permute_kernel, *launched, ("X",), {"Y": out_shape}, call.torch_results)
    return call.result(y, out_shape)
