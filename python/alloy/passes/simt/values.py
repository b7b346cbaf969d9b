"""The values of the SIMT lowering: what one tile-IR value becomes in one thread's code.

A scalar stays one SSA value, the same in every thread (`Uniform`). A tile is
distributed in the blocked layout of layout.py (`Distributed`: this thread's
registers), or, as the result of a tensor-core dot, held in the target's
matrix fragments (`Fragments`, dot.py). A `tile.trans` feeding only dots is
not moved (`DeferredTranspose`). Hopper's warpgroup-MMA accumulator has its
own type in hopper_wgmma.py.
"""
from __future__ import annotations

from dataclasses import dataclass

GLOBAL_PTR = "!llvm.ptr<1>"  # a pointer into global memory (what a `!tile.ptr` becomes)
WORKGROUP = "#gpu.address_space<workgroup>"
DYNAMIC_SHARED = "@alloy_dsmem"  # the kernel's dynamic shared memory (hopper_wgmma.py's stage buffers)

_BYTES = {"i8": 1, "i16": 2, "f16": 2, "bf16": 2, "i32": 4, "f32": 4, "i64": 8, "f64": 8}


@dataclass
class Uniform:
    """A scalar, the same in every thread: one SSA name of MLIR type `type`."""

    name: str
    type: str


@dataclass
class Distributed:
    """A tile in the blocked layout: this thread's registers (SSA names) of scalar type `elem`."""

    regs: list
    elem: str
    shape: tuple


@dataclass
class Fragments:
    """A tile in the target's matrix-fragment layout (dot.py): this warp's fragments (16x16 WMMA on CUDA,
    8x8 simdgroup matrices on Metal), fragment r * warps + warp in entry r (row-major fragment order)."""

    frags: list
    elem: str
    shape: tuple


@dataclass
class DeferredTranspose:
    """A tile.trans whose only users are tensor-core dots: its untransposed source, not yet moved."""

    src: Distributed


def zero_text(elem: str) -> str:
    if elem == "i1":
        return "false"
    if elem.startswith("i"):
        return "0"
    return "0.000000e+00"


def is_float(elem: str) -> bool:
    return elem in ("f16", "bf16", "f32", "f64")


def mem_elem(elem: str) -> str:
    """How a value type lives in memory (i1 as a byte, pointers as i64)."""
    return {"i1": "i8", GLOBAL_PTR: "i64"}.get(elem, elem)


def byte_size(elem: str) -> int:
    """Bytes of a memory element type."""
    return _BYTES[elem]
