"""The CUDA target: tile IR -> SIMT gpu dialect -> NVVM -> PTX, in process (no GPU needed).

Public API (the runtime's contract):

    from alloy.targets.cuda import compile_tile_module, STAGES
    art = compile_tile_module(module, arch="sm_90a", keep_stages=False)
    art.entry          # the kernel's PTX entry name
    art.ptx            # PTX text (the driver JIT-compiles it: cuModuleLoadData)
    art.num_threads    # block size (x); the grid is the tile grid
    art.shared_bytes   # static workgroup memory the kernel declares (informative)
    art.params         # PTX parameter types in order: "ptr" (8 bytes) or a scalar type (i32, f32, ...)
    art.stages         # with keep_stages: {stage: text} for STAGES

Kernel parameters are the tile kernel's arguments in order, one each: a
pointer is a 64-bit global address, a scalar its own width. `module` is not
mutated; failures raise alloy.passes.errors.LoweringError naming the op.
"""
from __future__ import annotations

STAGES: tuple[str, ...] = ("tile-ir", "tile-opt", "simt", "nvvm", "ptx")
DEFAULT_ARCH = "sm_90a"  # the runtime compiles for alloy.config.get().cuda_arch


def compile_tile_module(module, *, arch: str = DEFAULT_ARCH, keep_stages: bool = False):
    """Compile a tile-IR module to a CudaKernel (entry, ptx, launch metadata, stages)."""
    from alloy.targets.cuda.pipeline import compile_module

    return compile_module(module, arch=arch, keep_stages=keep_stages)
