"""The Metal pipeline: tile IR -> SIMT gpu dialect (shared with CUDA) -> MSL source.

Stages (names for al.inspect and tests): "tile-opt" (tile-canonicalize, tile-fold-dot-acc:
`acc += tile_dot(a, b)` becomes `tile_dot(a, b, acc)`, so the accumulator stays in simdgroup
matrices across a K loop), "simt" (the CUDA target's SIMT stages, with `simt.target = "metal"`),
"msl" (the C++ translator, alloy._compiler). The result is MSL text for Metal's
`newLibraryWithSource`; no Mac is available here, so it is only checked against the
Metal-stdlib shim (check_msl), never compiled by Apple's compiler.
"""
from __future__ import annotations

from dataclasses import dataclass, field

TILE_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tile-opt", ("tile-canonicalize", "tile-fold-dot-acc")),
    ("simt", ("simt-layout", "convert-tile-to-simt", "canonicalize", "cse")),
)


@dataclass
class MetalKernel:
    """MSL for one tile kernel and what a Metal launch needs to know."""

    entry: str  # the `kernel void` function name
    msl: str
    num_threads: int  # threads per threadgroup (x)
    stages: dict = field(default_factory=dict)


def compile_tile_module(module, *, keep_stages: bool = False) -> MetalKernel:
    """Lower a tile-IR module (one kernel; not mutated) to MSL. Raises LoweringError or MSLTranslationError."""
    from alloy.passes.errors import LoweringError
    from alloy.passes.tile_to_vector import kernel_funcs
    from alloy.targets.cpu.pipeline import run_passes
    from alloy.targets.cuda.pipeline import set_simt_target
    from alloy.targets.metal.translate import to_msl

    src = module.operation if hasattr(module, "operation") else module
    funcs = kernel_funcs(src)
    if len(funcs) != 1:
        raise LoweringError(f"expected one tile kernel function in the module, found {len(funcs)}")
    entry = funcs[0].sym_name.value
    op = src.clone()
    stages: dict = {"tile-ir": str(src)} if keep_stages else {}
    try:
        set_simt_target(op, "metal")
        for name, passes in TILE_STAGES:
            run_passes(op, passes)
            if keep_stages:
                stages[name] = str(op)
        num_threads = _block_size(op)
        msl = to_msl(op)
    finally:
        op.erase()
    if keep_stages:
        stages["msl"] = msl
    return MetalKernel(entry, msl, num_threads, stages)


def _block_size(op) -> int:
    from mlir import ir

    for o in op.regions[0].blocks[0].operations:
        if o.operation.name == "gpu.module":
            for f in o.regions[0].blocks[0].operations:
                if f.operation.name == "gpu.func" and "known_block_size" in f.attributes:
                    return int(ir.DenseI32ArrayAttr(f.attributes["known_block_size"])[0])
    return 0
