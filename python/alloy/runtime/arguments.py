"""Argument slots shared by the CPU and CUDA launches (and the lazy ones): how a scalar becomes its
64-bit slot, how a launch packs its slots, and the inferred shapes of its outputs."""
from __future__ import annotations

import struct

import numpy as np

from ..language import dtypes as dt
from .outputs import InferenceError, KnownShape, infer_output_shape

THREADS = "@threads"  # the launch keyword `threads=` in a bound-argument dict (never a parameter name)


def scalar_slot(v, d: dt.dtype) -> int:
    """The 8-byte argument slot of a scalar `v` of dtype `d` (docs/cpu-abi.md): floats as their bits."""
    if d.is_float:
        if d.bits == 64:
            return struct.unpack("<q", struct.pack("<d", float(v)))[0]
        if d.bits == 32:
            return struct.unpack("<i", struct.pack("<f", float(v)))[0]
        return int(np.array(v, dtype=d.np).view(np.uint16))
    return int(v)


def pack_slots(compiled, arrays: dict, bound: dict) -> tuple[list[int], list[int]]:
    """The argument slots, and the indices of output pointers still to allocate."""
    slots = [0] * len(compiled.slots)
    pending = []
    for i, s in enumerate(compiled.slots):
        if s.kind == "ptr":
            a = arrays.get(s.param)
            if a is None:
                pending.append(i)
            else:
                slots[i] = a[0]
        elif s.kind == "dim":
            slots[i] = arrays[s.param][1][s.dim]
        else:
            slots[i] = scalar_slot(bound[s.param], s.dtype)
    return slots, pending


def launch_output_shape(kernel, compiled, name: str, grid, slots, bound: dict) -> tuple:
    """The shape of output `name` that a launch allocates: the one its KnownShape gives, else inferred."""
    known = bound.get(name)
    return known.shape if isinstance(known, KnownShape) else output_shape(kernel, compiled, name, grid, slots)


def output_shape(kernel, compiled, name: str, grid, slots) -> tuple:
    """The inferred shape of output `name` (memoised per kernel, specialisation, grid and slots)."""
    key = (compiled.key, name, grid, tuple(slots))
    shape = kernel._shapes.get(key)
    if shape is None:
        try:
            shape = infer_output_shape(name, compiled.stores, grid, slots)
        except InferenceError as e:
            raise ValueError(f"kernel '{kernel.__name__}': cannot infer the shape of output '{name}' ({e}); "
                             f"pass it explicitly, e.g. {name}=np.zeros(shape, dtype)") from None
        kernel._shapes[key] = shape
    return shape
