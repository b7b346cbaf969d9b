"""Host buffers for kernels: `AlloyBuffer`, and `as_kernel_array`, which turns
any accepted array-like into the (address, shape, dtype) a launch binds.

bf16: numpy has no bfloat16 of its own; Alloy uses ml_dtypes' (a real numpy
dtype, 2-byte storage), exported as `bfloat16` here. torch bf16 tensors map to
it and back without copies.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import torch_dtypes
from .torch_dtypes import bfloat16

# dtypes a kernel argument may have (numpy spelling).
KERNEL_DTYPES = frozenset(
    np.dtype(t)
    for t in (
        np.bool_, np.int8, np.int16, np.int32, np.int64,
        np.uint8, np.uint16, np.uint32, np.uint64,
        np.float16, np.float32, np.float64, bfloat16,
    )
)
_ALIGN = 64  # bytes: a cache line, and enough for any vector load


def as_dtype(dtype: Any) -> np.dtype:
    """numpy dtype for `dtype` (numpy, torch or al.* dtype, or a name such as
    "bf16"); TypeError if kernels do not support it."""
    if type(dtype) is np.dtype and dtype in KERNEL_DTYPES:  # the common case
        return dtype
    if isinstance(dtype, str) and dtype in ("bf16", "bfloat16"):
        return bfloat16
    if isinstance(getattr(dtype, "np", None), np.dtype):  # al.float32, ...
        dtype = dtype.np
    torch = torch_dtypes.loaded_torch()
    if torch is not None and isinstance(dtype, torch.dtype):
        dt = torch_dtypes.to_numpy(dtype)
        if dt is None:
            raise TypeError(f"dtype {dtype} is not supported by Alloy kernels")
        return dt
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"not a dtype: {dtype!r}") from None
    if dt not in KERNEL_DTYPES:
        raise TypeError(f"dtype {dt} is not supported by Alloy kernels")
    return dt


class AlloyBuffer:
    """Host memory for kernels: owned, or a zero-copy wrap of a C-contiguous array.

    A kernel launch returns its outputs as *pending* buffers (runtime/lazy.py): their shape and dtype
    are known, their memory is not; reading one (`np.asarray`, `.numpy()`, indexing, its address)
    runs the launches it needs first, fused where the fusion pass can prove it legal."""

    __slots__ = ("_array", "_ptr", "_pending", "_base", "_shape", "_dtype", "__weakref__")

    def __init__(self, array: np.ndarray):
        if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
            raise ValueError("AlloyBuffer: needs a C-contiguous numpy array (use AlloyBuffer.from_array)")
        self._array = array
        self._ptr = array.ctypes.data
        self._pending = self._base = None
        self._shape, self._dtype = array.shape, array.dtype

    @classmethod
    def deferred(cls, shape: tuple[int, ...], dtype: np.dtype, producer) -> AlloyBuffer:
        """A pending buffer: `producer.realize(buffer)` gives it memory and contents when it is read."""
        buf = cls.__new__(cls)
        buf._array, buf._ptr, buf._pending, buf._base = None, 0, producer, None
        buf._shape, buf._dtype = tuple(shape), np.dtype(dtype)
        return buf

    @property
    def pending(self):
        """The launch that will produce this buffer's contents (None once it has them)."""
        return self._pending if self._base is None else self._base.pending

    @property
    def base(self) -> AlloyBuffer:
        """The buffer whose memory this one views (a reshape of a pending buffer), else itself."""
        return self if self._base is None else self._base

    def reshape(self, *shape) -> AlloyBuffer:
        """The same elements in another shape (numpy's rules, -1 included), without copying; a reshape of a
        pending buffer stays pending and fuses as the buffer itself."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        if self.pending is None:
            return AlloyBuffer(self._ready().reshape(shape))
        shape = tuple(int(s) for s in shape)
        total, known = math.prod(self._shape), math.prod(s for s in shape if s != -1)
        if shape.count(-1) == 1 and known and total % known == 0:
            shape = tuple(total // known if s == -1 else s for s in shape)
        if math.prod(shape) != total or min(shape, default=0) < 0:
            raise ValueError(f"AlloyBuffer.reshape: cannot reshape {self._shape} into {shape}")
        view = AlloyBuffer.deferred(shape, self._dtype, None)
        view._base = self.base
        return view

    def materialize(self, array: np.ndarray) -> None:
        """Give a pending buffer its memory (before the launch that writes it runs)."""
        self._array = array
        self._ptr = array.ctypes.data
        self._pending = None

    def _ready(self) -> np.ndarray:
        if self._array is None:
            if self._base is None:
                self._pending.realize(self)
            else:  # a view: its base's memory, once that has it
                self._array = self._base._ready().reshape(self._shape)
                self._ptr = self._array.ctypes.data
        return self._array

    def _address(self) -> int:
        """The buffer's address for a launch: 0 while pending (its producer has not run)."""
        if self._array is None and self._base is not None and self._base.pending is None:
            self._ready()
        return self._ptr

    @classmethod
    def empty(cls, shape: int | tuple[int, ...], dtype: Any) -> AlloyBuffer:
        """Uninitialized buffer, 64-byte aligned."""
        dt = as_dtype(dtype)
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        if any(not isinstance(s, (int, np.integer)) or s < 0 for s in shape):
            raise ValueError(f"AlloyBuffer.empty: shape must be non-negative ints, got {shape}")
        raw = np.empty(math.prod(int(s) for s in shape) * dt.itemsize + _ALIGN, dtype=np.uint8)
        return cls(np.ndarray(shape, dt, raw, -raw.ctypes.data % _ALIGN))

    @classmethod
    def from_array(cls, array: Any) -> AlloyBuffer:
        """Wraps a C-contiguous numpy array or torch CPU tensor without copying
        (keeps a reference); other array-likes are copied into a contiguous array."""
        torch = torch_dtypes.loaded_torch()
        if torch is not None and isinstance(array, torch.Tensor):
            t = array.detach()
            arr = t.view(torch.uint16).numpy().view(bfloat16) if t.dtype == torch.bfloat16 else t.numpy()
        else:
            arr = np.asarray(array)
        as_dtype(arr.dtype)
        if not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
        return cls(arr)

    @property
    def data_ptr(self) -> int:
        self._ready()
        return self._ptr

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self._shape, dtype=np.int64)) * self._dtype.itemsize

    @property
    def __array_interface__(self) -> dict:
        # The interface spells bf16 as raw bytes ("|V2"): leave bf16 to __array__.
        if self._dtype == bfloat16:
            raise AttributeError("__array_interface__ (bf16 buffers convert through __array__)")
        return self._ready().__array_interface__

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self._ready()
        if copy:
            return np.array(array, dtype=dtype, copy=True)
        return array if dtype is None else array.astype(dtype, copy=False)

    def numpy(self) -> np.ndarray:
        """Zero-copy numpy view."""
        return self._ready()

    def to_torch(self):
        """Zero-copy torch CPU tensor (bf16 buffers give torch.bfloat16)."""
        import torch

        array = self._ready()
        if array.dtype == bfloat16:
            return torch.from_numpy(array.view(np.uint16)).view(torch.bfloat16)
        return torch.from_numpy(array)

    def __getitem__(self, index):
        return self._ready()[index]

    def __setitem__(self, index, value) -> None:
        self._ready()[index] = value

    def __len__(self) -> int:
        return self._shape[0]

    def __repr__(self) -> str:
        state = ", pending" if self.pending is not None else ""
        return f"AlloyBuffer(shape={self.shape}, dtype={self.dtype}{state})"


def as_kernel_array(obj: Any, where: str) -> tuple[int, tuple[int, ...], np.dtype, Any]:
    """(address, shape, dtype, keepalive) of an array argument, without copying.

    Accepts numpy arrays, torch CPU tensors, AlloyBuffers and objects with
    `__array_interface__`; all must be C-contiguous. `where` names the argument
    in errors. Keep `keepalive` referenced while the kernel runs. A pending
    AlloyBuffer gives address 0: realize it first to run on it.
    """
    if type(obj) is np.ndarray and obj.flags.c_contiguous and obj.dtype in KERNEL_DTYPES:  # the common case
        return obj.ctypes.data, obj.shape, obj.dtype, obj
    if isinstance(obj, AlloyBuffer):  # a pending one binds as address 0 until its producer has run
        return obj._address(), obj.shape, obj.dtype, obj
    if torch_dtypes.is_tensor(obj):
        if obj.device.type != "cpu":
            raise ValueError(f"{where}: tensor is on {obj.device}; the CPU target needs CPU tensors")
        if not obj.is_contiguous():
            raise ValueError(f"{where}: tensor is not contiguous (strides {obj.stride()}); call .contiguous()")
        dt = torch_dtypes.to_numpy(obj.dtype)
        if dt is None:
            raise TypeError(f"{where}: tensor dtype {obj.dtype} is not supported by Alloy kernels")
        return obj.data_ptr(), tuple(obj.shape), dt, obj
    if isinstance(obj, np.ndarray):
        arr, keep = obj, obj
    elif hasattr(obj, "__array_interface__"):
        arr = np.asarray(obj)
        keep = (obj, arr)
    else:
        raise TypeError(
            f"{where}: expected a numpy array, torch CPU tensor, AlloyBuffer or an object "
            f"with __array_interface__, got {type(obj).__name__}"
        )
    if not arr.flags.c_contiguous:
        raise ValueError(f"{where}: array is not C-contiguous (strides {arr.strides}); call np.ascontiguousarray")
    if arr.dtype not in KERNEL_DTYPES:
        raise TypeError(f"{where}: array dtype {arr.dtype} is not supported by Alloy kernels")
    return arr.ctypes.data, arr.shape, arr.dtype, keep
