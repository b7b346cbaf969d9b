"""Values of the CPU lowering: what a tile-IR value becomes while convert-tile-to-vector rebuilds a kernel
as text (an SSA name with its MLIR type, or a pointer into one kernel argument), and type-text helpers."""
from __future__ import annotations

from dataclasses import dataclass

CONTRACT = ("arith.addf", "arith.subf", "arith.mulf")
MEM_SIZE = 1 << 62  # memref views of kernel arguments have no known size


@dataclass
class LoweredValue:
    """A converted non-pointer value: SSA name and MLIR type text."""

    name: str
    type: str


@dataclass
class LoweredPointer:
    """A pointer (tile): element offset from kernel pointer argument `base`."""

    base: int
    soff: str | None  # `index` scalar part (None: 0)
    voff: str | None  # vector<shape x i64> per-element part (None: 0)
    shape: tuple | None
    elem: str  # pointee type


def vtype(shape, elem: str) -> str:
    return "vector<" + "x".join(str(n) for n in shape) + f"x{elem}>"


def zero_text(elem: str) -> str:
    if elem == "i1":
        return "false"
    if elem.startswith("i") or elem == "index":
        return "0"
    return "0.000000e+00"


def is_float(elem: str) -> bool:
    return elem in ("f16", "bf16", "f32", "f64")
