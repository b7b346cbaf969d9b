"""The inputs and results of a builtin call: numpy arrays, torch tensors (CPU or CUDA) and AlloyBuffers.

`Call` checks each array argument (dtype, contiguity), picks the target (CUDA
when a torch CUDA tensor comes in, else alloy.config's), and shapes the
kernel's flat outputs back into what the caller passed: torch tensors for
torch inputs, AlloyBuffers otherwise.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import config
from ..runtime.buffer import AlloyBuffer
from ..runtime.outputs import KnownShape
from ..runtime.torch_dtypes import bfloat16, is_tensor, to_numpy, to_torch
from .permute_kernel import launch_permute, permutation_of

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), bfloat16)
INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
MAX_ELEMENTS = 2**31 - 1  # kernels index with 32-bit offsets


def _dtype_of(value) -> np.dtype:
    if is_tensor(value):
        dt = to_numpy(value.dtype)
        return dt if dt is not None else np.dtype(object)
    return np.dtype(value.dtype)


def _contiguous(value):
    if is_tensor(value):
        return value if value.is_contiguous() else value.contiguous()
    if isinstance(value, AlloyBuffer):
        return value  # contiguous; a pending one stays pending
    return np.ascontiguousarray(value)


class LazyOutput(KnownShape):
    """A builtin's output that its deferred launch allocates (runtime/lazy.py): the shape and dtype the
    builtin returns (the launch allocates that shape), and the pending buffer once launched."""

    __slots__ = ("buffer",)

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        super().__init__(shape, dtype)
        self.buffer = None

    def resolve(self) -> AlloyBuffer:
        """The output's buffer (a new, never-launched one when the call had nothing to compute)."""
        if self.buffer is None:
            self.buffer = AlloyBuffer.empty(self.shape, self.dtype)
        return self.buffer


class Call:
    """One builtin call: its name (for errors), target and whether results go back as torch tensors."""

    def __init__(self, builtin: str) -> None:
        self.builtin = builtin
        self.target: str | None = None
        self.torch_results = False
        self.device = None  # the torch device of CUDA inputs

    def array(self, name: str, value: Any, dtypes=FLOAT_DTYPES, ndim: int | tuple[int, ...] | None = None):
        """`value` as a contiguous array the kernels bind in place (a copy only for non-contiguous views)."""
        where = f"al.{self.builtin}: argument '{name}'"
        if not (is_tensor(value) or isinstance(value, (np.ndarray, AlloyBuffer))):
            if isinstance(value, (list, tuple)) or np.isscalar(value):
                value = np.asarray(value, dtype=np.float32 if dtypes is FLOAT_DTYPES else None)
            else:
                raise TypeError(f"{where}: expected a numpy array, torch tensor or AlloyBuffer, "
                                f"got {type(value).__name__}")
        dtype = _dtype_of(value)
        if dtype not in dtypes:
            allowed = ", ".join(str(d) for d in dtypes)
            raise TypeError(f"{where}: dtype {dtype} is not supported (expected one of {allowed})")
        shape = tuple(value.shape)
        if ndim is not None and len(shape) not in ((ndim,) if isinstance(ndim, int) else ndim):
            raise ValueError(f"{where}: expected {ndim} dimension(s), got shape {shape}")
        if math.prod(shape) > MAX_ELEMENTS:
            raise ValueError(f"{where}: {shape} has more than 2^31-1 elements, beyond 32-bit kernel offsets")
        target = "cuda" if is_tensor(value) and value.is_cuda else None
        if target is None and is_tensor(value) and value.device.type != "cpu":
            raise ValueError(f"{where}: tensors on {value.device} are not supported (CPU or CUDA)")
        if target == "cuda" and self.target not in (None, "cuda"):
            raise ValueError(f"{where}: a CUDA tensor mixed with host arrays; move all inputs to one device")
        if target is None and self.target == "cuda" and not is_tensor(value):
            raise ValueError(f"{where}: a host array mixed with CUDA tensors; move all inputs to one device")
        if target is not None:
            if self.device is not None and value.device != self.device:
                raise ValueError(f"{where}: on {value.device}, other inputs on {self.device}")
            self.target, self.device = target, value.device
        elif is_tensor(value):
            self.torch_results = True
        if type(value) is np.ndarray and not value.flags.c_contiguous and self.target is None and \
                self.run_target == "cpu" and config.get().lazy:
            view = permutation_of(value)
            if view is not None:  # a transposed view: read in place by whichever kernel fuses it
                base, order = view
                y = LazyOutput(tuple(int(s) for s in value.shape), value.dtype)
                launch_permute(self, base, order, y)
                return y.resolve()
        return _contiguous(value)

    @property
    def run_target(self) -> str:
        """Where the kernels of this call run."""
        return self.target or config.get().target

    @property
    def lazy(self) -> bool:
        """Whether this call's launches wait (runtime/lazy.py): AlloyBuffer results on the CPU target."""
        return self.target is None and not self.torch_results and self.run_target == "cpu" and config.get().lazy

    def empty(self, shape, dtype, lazy: bool = True):
        """An output on this call's target: a LazyOutput when the call is lazy (and `lazy`), else a buffer
        (torch tensors when torch tensors came in)."""
        shape = tuple(int(v) for v in shape)
        dtype = np.dtype(dtype)
        if lazy and self.lazy:
            return LazyOutput(shape, dtype)
        if self.target == "cuda" or (self.torch_results and self.run_target == "cpu"):
            import torch  # torch-owned memory: results behave as torch's own (resizable storage, set_, ...)

            return torch.empty(shape, dtype=to_torch(dtype), device=self.device or "cpu")
        if self.run_target == "cpu":
            return AlloyBuffer.empty(shape, dtype)
        return np.empty(shape, dtype)  # host memory a GPU launch copies back into

    def launch(self, kernel, grid, *args, **kwargs):
        """`kernel[grid](*args, **kwargs)` on this call's target; LazyOutput outputs are left to the launch
        to allocate (with their shapes), and take the (pending) buffers it returns."""
        lazy = {k: v for k, v in kwargs.items() if isinstance(v, LazyOutput)}
        if lazy:  # the launch keeps a plain KnownShape: its own buffers must not keep it alive
            kwargs = {k: (KnownShape(v.shape, v.dtype) if k in lazy else v) for k, v in kwargs.items()}
        result = kernel.launch(grid, args, kwargs, self.run_target)
        if lazy:
            names = [p.name for p in kernel.params if p.kind == "output"]
            for name, buf in zip(names, result if isinstance(result, tuple) else (result,)):
                if name in lazy:
                    lazy[name].buffer = buf

    def result(self, out, shape: tuple[int, ...]):
        """A kernel output reshaped to `shape`, as a torch tensor when torch tensors came in."""
        shape = tuple(int(s) for s in shape)
        if isinstance(out, LazyOutput):
            out = out.resolve()
        if is_tensor(out):
            return out.reshape(shape)
        if isinstance(out, AlloyBuffer):
            buf = out if out.shape == shape else out.reshape(shape)
            return buf.to_torch() if self.torch_results else buf
        return np.asarray(out).reshape(shape)


def as_rows(call: Call, x, axis: int):
    """(x as a contiguous (rows, n) array with `axis` last, rows, n, restore): `restore(out)` turns a
    kernel's (rows, n) output back into x's shape (a copy only when `axis` is not the last one)."""
    shape = shape_of(x)
    ndim = max(len(shape), 1)
    if not -ndim <= axis < ndim:
        raise ValueError(f"al.{call.builtin}: axis {axis} is out of range for shape {shape}")
    axis %= ndim
    if not shape:
        x, shape = x.reshape(1), (1,)
    last = axis == len(shape) - 1
    if not last:
        x = x.movedim(axis, -1).contiguous() if is_tensor(x) else np.ascontiguousarray(np.moveaxis(np.asarray(x), axis, -1))
    moved = shape_of(x)
    n = moved[-1]
    rows = int(np.prod(moved[:-1], dtype=np.int64))

    def restore(out):
        y = call.result(out, moved)
        if last:
            return y
        if is_tensor(y):
            return y.movedim(-1, axis).contiguous()
        back = np.ascontiguousarray(np.moveaxis(np.asarray(y), -1, axis))
        return AlloyBuffer(back) if isinstance(y, AlloyBuffer) else back

    return x.reshape(rows, n), rows, n, restore


def shape_of(value) -> tuple[int, ...]:
    return tuple(int(s) for s in value.shape)


def dtype_of(value) -> np.dtype:
    return _dtype_of(value)


def row_block(n: int, cap: int) -> int:
    """The power-of-two tile width that holds a row of `n` (at least 16), capped at `cap`."""
    block = 16
    while block < n and block < cap:
        block *= 2
    return block


def int_pair(builtin: str, value, name: str) -> tuple[int, int]:
    """A 2-D size option (an int, or a pair of ints: torch's convention) as a pair; ValueError naming it."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"al.{builtin}: {name} must be an int or a pair of ints, got {value!r}")
    return pair
