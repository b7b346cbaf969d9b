"""The GPU target description: what the SIMT lowering needs to know of the GPU it compiles for.

The CUDA and Metal pipelines hand a `SimtTarget` to simt-layout and
convert-tile-to-simt; the passes read its fields and never ask which GPU by
name. For alloy-opt and the lit tests, a kernel function may name its target
in a `simt.target` attribute ("cuda:<chip>" or "metal"); without either, the
target is CUDA sm_90.

Matrix units. CUDA: f16 x f16 -> f32 (or f16) dots on 16x16 WMMA fragments
(PTX wmma.mma.sync m16n16k16). Metal: 8x8 simdgroup matrices
(`!gpu.mma_matrix<8x8xT, ...>`, which the MSL translator maps to
`simdgroup_float8x8` / `simdgroup_half8x8`); Metal's multiply-accumulate takes
one element type for A, B and C, so the operands are staged in workgroup
memory as the accumulator's type:

    f32 x f32 -> f32, f16 x f32 -> f32, f16 x f16 -> f32   simdgroup_float8x8
                                                        (f16 operands widened to f32 while staged:
                                                         exact, so the products are those of f32)
    f16 x f16 -> f16                                    simdgroup_half8x8 (accumulates in half)

Metal has no element-wise operations on simdgroup matrices, so there a
loop-carried accumulator stays in fragments only when the loop yields the dot
itself (`acc = tile_dot(a, b, acc)`, what tile-fold-dot-acc makes of
`acc += tile_dot(a, b)`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from mlir import ir

from alloy.config import CUDA_ARCHS
from alloy.passes.errors import LoweringError
from alloy.passes.simt.math import msl_math, ptx_fptoi, ptx_math


@dataclass(frozen=True)
class MatrixUnit:
    """The cooperative matrix-multiply fragments of a GPU."""

    edge: int  # fragment edge (16: WMMA, 8: simdgroup matrices)
    types: frozenset  # (a, b, accumulator) element types it multiplies
    stage_as_accumulator: bool  # operands staged in the accumulator's type (one type per Metal MMA), else their own
    elementwise: bool  # + - * between fragments (gpu.subgroup_mma_elementwise); Metal has none


@dataclass(frozen=True)
class SimtTarget:
    """A GPU as the SIMT lowering sees it."""

    name: str  # for messages: "CUDA", "Metal"
    spelling: str  # its `simt.target` attribute value: "cuda:sm_90a", "metal"
    max_vec: int  # elements of one thread's contiguous run at most (8 on CUDA; Metal vectors have 4)
    matrix: MatrixUnit
    math: Callable  # (lowering, op name, operand names, float type) -> result name
    fptoi: Callable | None  # saturating float -> i32/i64 conversion, or None for the generic one
    warpgroup_mma: bool  # K loops on warpgroup MMA over a cp.async pipeline (sm_90a; hopper_wgmma.py)


WMMA = MatrixUnit(16, frozenset({("f16", "f16", "f32"), ("f16", "f16", "f16")}), False, True)
SIMDGROUP = MatrixUnit(8, frozenset({("f32", "f32", "f32"), ("f16", "f32", "f32"), ("f32", "f16", "f32"),
                                     ("f16", "f16", "f32"), ("f16", "f16", "f16")}), True, False)


def cuda(arch: str = "sm_90") -> SimtTarget:
    """The CUDA target for chip `arch`."""
    if arch not in CUDA_ARCHS:
        raise LoweringError(f"unknown CUDA architecture {arch!r}; choose one of {list(CUDA_ARCHS)}")
    return SimtTarget("CUDA", f"cuda:{arch}", 8, WMMA, ptx_math, ptx_fptoi, arch == "sm_90a")


METAL = SimtTarget("Metal", "metal", 4, SIMDGROUP, msl_math, None, False)


def parse(spelling: str) -> SimtTarget:
    """The target a `simt.target` attribute names ("cuda:<chip>" or "metal")."""
    if spelling == "metal":
        return METAL
    kind, _, arch = spelling.partition(":")
    if kind != "cuda":
        raise LoweringError(f"unknown simt.target {spelling!r}; expected 'cuda:<chip>' or 'metal'")
    return cuda(arch or "sm_90")


def for_function(func, target: SimtTarget | None) -> SimtTarget:
    """`target`, else the one the kernel function's `simt.target` attribute names, else CUDA sm_90."""
    if target is not None:
        return target
    if "simt.target" in func.attributes:
        return parse(ir.StringAttr(func.attributes["simt.target"]).value)
    return cuda()
