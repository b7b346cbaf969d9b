"""Bit-unpacking helpers shared by the codec families.

Broadcast shifts on whole arrays (a few SIMD passes) are several times faster
than per-byte lookup tables in numpy, so fields are unpacked with ``split``.
"""
from __future__ import annotations

import numpy as np


def split(x: np.ndarray, bits: int, axis: int) -> np.ndarray:
    """Unpack each uint8 of ``x`` into ``8 // bits`` fields along a new ``axis`` (lowest bits first)."""
    count = 8 // bits
    shape = [1] * (x.ndim + 1)
    shape[axis] = count
    shifts = np.arange(0, 8, bits, dtype=np.uint8).reshape(shape)
    return (np.expand_dims(x, axis) >> shifts) & np.uint8((1 << bits) - 1)


def f16(field: np.ndarray) -> np.ndarray:
    """An fp16 field of a block record as a float32 column ``(n, 1)``."""
    return field.astype(np.float32).reshape(-1, 1)


def records(blocks: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """View ``(n, dtype.itemsize)`` uint8 blocks as ``(n,)`` records of the block layout ``dtype``."""
    return np.ascontiguousarray(blocks).view(dtype).reshape(-1)
