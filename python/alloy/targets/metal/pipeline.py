"""The Metal pipeline: tile IR -> SIMT gpu dialect (shared with CUDA) -> MSL source.

Stages (the CUDA target's TILE_STAGES, then MSL): "tile-opt" (tile-verify, tile-canonicalize, tile-fold-dot-acc:
`acc += tile_dot(a, b)` becomes `tile_dot(a, b, acc)`, so the accumulator stays in simdgroup
matrices across a K loop), "simt" (the CUDA target's SIMT stages, for the METAL SimtTarget),
"msl" (the C++ translator, alloy._compiler). The result is MSL text for Metal's
`newLibraryWithSource`; no Mac is available here, so it is only checked against the
Metal-stdlib shim (check_msl), never compiled by Apple's compiler.
"""
from __future__ import annotations

from dataclasses import dataclass, field

@dataclass
class MetalKernel:
    """MSL for one tile kernel and what a Metal launch needs to know."""

    entry: str  # the `kernel void` function name
    msl: str
    num_threads: int  # threads per threadgroup (x)
    params: list = field(default_factory=list)  # per [[buffer(i)]]: "ptr" or the scalar's MLIR type
    stages: dict = field(default_factory=dict)


def compile_tile_module(module, *, keep_stages: bool = False) -> MetalKernel:
    """Lower a tile-IR module (one kernel; not mutated) to MSL. Raises LoweringError or MSLTranslationError."""
    from alloy.passes.pipeline import run_passes
    from alloy.passes.simt.target import METAL
    from alloy.targets import single_kernel
    from alloy.targets.cuda.pipeline import TILE_STAGES, block_size, gpu_func, param_kind
    from alloy.targets.metal.translate import to_msl

    src, func = single_kernel(module)
    entry = func.sym_name.value
    params = [param_kind(a.type) for a in func.arguments]
    op = src.clone()
    stages: dict = {"tile-ir": str(src)} if keep_stages else {}
    try:
        for name, passes in TILE_STAGES:
            run_passes(op, passes, METAL)
            if keep_stages:
                stages[name] = str(op)
        num_threads = block_size(gpu_func(op))
        msl = to_msl(op)
    finally:
        op.erase()
    if keep_stages:
        stages["msl"] = msl
    return MetalKernel(entry, msl, num_threads, params, stages)

