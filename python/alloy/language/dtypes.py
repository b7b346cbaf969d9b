"""Element types of the kernel language (`al.float32`, `al.int8`, ...).

A dtype knows its numpy equivalent (bfloat16 is stored as uint16 on the host),
its width and signedness, and how to build its MLIR type (imported lazily, so
that `import alloy` never loads MLIR).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class dtype:
    name: str
    kind: str  # "f" float, "i" signed int, "u" unsigned int, "b" bool
    bits: int
    np_name: str  # numpy storage dtype

    @property
    def is_float(self) -> bool:
        return self.kind == "f"

    @property
    def is_int(self) -> bool:
        return self.kind in ("i", "u", "b")

    @property
    def is_signed(self) -> bool:
        return self.kind == "i"

    @property
    def is_bool(self) -> bool:
        return self.kind == "b"

    @property
    def itemsize(self) -> int:
        return max(1, self.bits // 8)

    @property
    def np(self) -> np.dtype:
        if self.name == "bfloat16":
            import ml_dtypes

            return np.dtype(ml_dtypes.bfloat16)
        return np.dtype(self.np_name)

    def to_ir(self):
        from mlir import ir

        if self.kind == "f":
            return {16: ir.BF16Type.get() if self.name == "bfloat16" else ir.F16Type.get(),
                    32: ir.F32Type.get(), 64: ir.F64Type.get()}[self.bits]
        return ir.IntegerType.get_signless(self.bits)

    def __repr__(self) -> str:
        return f"al.{self.name}"


float16 = dtype("float16", "f", 16, "float16")
bfloat16 = dtype("bfloat16", "f", 16, "bfloat16")
float32 = dtype("float32", "f", 32, "float32")
float64 = dtype("float64", "f", 64, "float64")
int1 = bool_ = dtype("bool", "b", 1, "bool")
int8 = dtype("int8", "i", 8, "int8")
int16 = dtype("int16", "i", 16, "int16")
int32 = dtype("int32", "i", 32, "int32")
int64 = dtype("int64", "i", 64, "int64")
uint8 = dtype("uint8", "u", 8, "uint8")
uint16 = dtype("uint16", "u", 16, "uint16")
uint32 = dtype("uint32", "u", 32, "uint32")
uint64 = dtype("uint64", "u", 64, "uint64")

ALL = (float16, bfloat16, float32, float64, bool_, int8, int16, int32, int64, uint8, uint16, uint32, uint64)
BY_NAME = {d.name: d for d in ALL}
_FROM_NUMPY = {np.dtype(d.np_name): d for d in ALL if d is not bfloat16}


def from_numpy(npdt) -> dtype:
    """The Alloy dtype of a numpy dtype (TypeError if there is none)."""
    known = _FROM_NUMPY.get(npdt) if isinstance(npdt, np.dtype) else None
    if known is not None:
        return known
    try:
        npdt = np.dtype(npdt)
        if npdt.name == "bfloat16":
            return bfloat16
        return _FROM_NUMPY[npdt]
    except (KeyError, TypeError):
        raise TypeError(f"unsupported element type {npdt!r}; supported: "
                        + ", ".join(d.name for d in ALL)) from None


def from_torch(tdt) -> dtype:
    """The Alloy dtype of a torch dtype."""
    name = str(tdt).replace("torch.", "")
    if name == "bool":
        return bool_
    if name in BY_NAME:
        return BY_NAME[name]
    raise TypeError(f"unsupported torch element type {tdt}")


def promote(a: dtype, b: dtype) -> dtype:
    """Result type of a binary arithmetic op (C-like rules, as Triton's)."""
    if a == b:
        return a
    if a.is_float or b.is_float:
        if a.is_float and b.is_float:
            if a.bits == b.bits:  # float16 with bfloat16
                return float32
            return a if a.bits > b.bits else b
        return a if a.is_float else b
    if a.is_bool:
        return b
    if b.is_bool:
        return a
    if a.bits != b.bits:
        return a if a.bits > b.bits else b
    return a if a.kind == "u" else b  # same width: unsigned wins
