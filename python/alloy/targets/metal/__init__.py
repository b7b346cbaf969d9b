"""The Metal target: gpu-dialect SIMT IR -> Metal Shading Language source.

    from alloy.targets.metal import to_msl, check_msl, compile_tile_module, STAGES
    source = to_msl(module)     # module: ir.Module holding gpu.module kernels (the SIMT form)
    check_msl(source)           # c++ -fsyntax-only against the Metal-stdlib shim; raises MSLCheckError
    art = compile_tile_module(tile_module, keep_stages=True)   # tile IR -> SIMT -> MSL
    art.entry, art.msl, art.num_threads, art.stages            # stages: STAGES = tile-ir, tile-opt, simt, msl

No Mac is available to this project: MSL is verified by FileCheck tests and by the shim
check, never by Apple's compiler. See docs/metal.md for what that does and does not prove.
"""
from __future__ import annotations

from .check import MSLCheckError, check_msl, shim_path
from .translate import MSLTranslationError, to_msl

STAGES: tuple[str, ...] = ("tile-ir", "tile-opt", "simt", "msl")


def compile_tile_module(module, *, keep_stages: bool = False):
    """Lower a tile-IR module to a MetalKernel (entry, msl, num_threads, stages)."""
    from .pipeline import compile_tile_module as _compile

    return _compile(module, keep_stages=keep_stages)


__all__ = ["to_msl", "check_msl", "shim_path", "compile_tile_module", "STAGES", "MSLTranslationError", "MSLCheckError"]
