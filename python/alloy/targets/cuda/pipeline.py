"""The CUDA lowering pipeline: tile IR -> gpu dialect (SIMT) -> NVVM -> PTX text.

Stages (names for al.inspect and tests): "tile-opt" (tile-verify, tile-canonicalize, tile-fold-dot-acc),
"simt" (simt-layout, convert-tile-to-simt, canonicalize, cse), "nvvm" (the
gpu.module lowered to the NVVM/LLVM dialects for the target chip), "ptx"
(gpu-module-to-binary{format=isa}: LLVM's NVPTX backend, in process).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from alloy.passes.errors import LoweringError

MAX_STATIC_SHARED = 48 * 1024  # bytes of static shared memory a block may declare
MAX_SHARED = 227 * 1024  # static + dynamic shared memory per block on sm_90 (opt-in above 48 KiB)
PTX_VERSION = {"sm_80": "+ptx70", "sm_86": "+ptx71", "sm_89": "+ptx78", "sm_90": "+ptx80", "sm_90a": "+ptx80"}

TILE_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tile-opt", ("tile-verify", "tile-canonicalize", "tile-fold-dot-acc")),
    ("simt", ("simt-layout", "convert-tile-to-simt", "canonicalize", "cse")),
)
NVVM_PASSES = ("gpu.module(convert-scf-to-cf,convert-nvgpu-to-nvvm,convert-gpu-to-nvvm,"
               "convert-vector-to-llvm,convert-arith-to-llvm,convert-nvvm-to-llvm,reconcile-unrealized-casts,"
               "canonicalize,cse)")


@dataclass
class CudaKernel:
    """A compiled CUDA kernel: PTX and what a launch needs to know."""

    entry: str
    ptx: str
    arch: str
    num_threads: int
    shared_bytes: int
    params: list
    dynamic_shared_bytes: int = 0  # launch-time shared memory (the pipelined tile_dot's stage buffers)
    stages: dict = field(default_factory=dict)


def param_kind(t) -> str:
    """A kernel parameter as the launch sees it: "ptr" or the scalar's MLIR type."""
    from alloy.dialects import tile

    return "ptr" if tile.is_ptr(t) else str(t)


def compile_module(module, *, arch: str, keep_stages: bool = False) -> CudaKernel:
    from mlir import ir
    from mlir.dialects import gpu

    from alloy.passes.pipeline import run_passes
    from alloy.passes.simt.target import cuda
    from alloy.targets import single_kernel

    if arch not in PTX_VERSION:
        raise LoweringError(f"unknown CUDA architecture {arch!r}; choose one of {sorted(PTX_VERSION)}")
    src, func = single_kernel(module)
    entry = func.sym_name.value
    params = [param_kind(a.type) for a in func.arguments]
    op = src.clone()
    stages: dict = {"tile-ir": str(src)} if keep_stages else {}
    try:
        simt_target = cuda(arch)
        for name, passes in TILE_STAGES:
            run_passes(op, passes, simt_target)
            if keep_stages:
                stages[name] = str(op)
        gfunc = gpu_func(op)
        nt = int(ir.IntegerAttr(gfunc.attributes["simt.num_threads"]).value) \
            if "simt.num_threads" in gfunc.attributes else block_size(gfunc)
        smem = int(ir.IntegerAttr(gfunc.attributes["simt.shared_bytes"]).value)
        dyn = int(ir.IntegerAttr(gfunc.attributes["simt.dynamic_shared_bytes"]).value) \
            if "simt.dynamic_shared_bytes" in gfunc.attributes else 0
        if smem > MAX_STATIC_SHARED:
            raise LoweringError(f"kernel {entry} needs {smem} bytes of workgroup memory; the static limit is "
                                f"{MAX_STATIC_SHARED} (use smaller tiles)")
        if smem + dyn > MAX_SHARED:
            raise LoweringError(f"kernel {entry} needs {smem} + {dyn} bytes of static + dynamic shared memory; "
                                f"the limit is {MAX_SHARED} (use smaller tiles)")
        run_passes(op, (f"nvvm-attach-target{{chip={arch} features={PTX_VERSION[arch]} O=3}}", NVVM_PASSES))
        if keep_stages:
            stages["nvvm"] = str(op)
        run_passes(op, ("gpu-module-to-binary{format=isa}",))
        ptx = None
        for o in op.regions[0].blocks[0].operations:
            if o.operation.name == "gpu.binary":
                for obj in ir.ArrayAttr(o.attributes["objects"]):
                    data = gpu.ObjectAttr(obj).object
                    ptx = data.decode() if isinstance(data, bytes) else str(data)
        if ptx is None:
            raise LoweringError("gpu-module-to-binary produced no PTX")
    finally:
        op.erase()
    if keep_stages:
        stages["ptx"] = ptx
    if not re.search(rf"\.entry\s+{re.escape(entry)}\s*\(", ptx):
        raise LoweringError(f"the PTX has no entry named {entry}")
    return CudaKernel(entry, ptx, arch, nt, smem, params, dyn, stages)


def gpu_func(op):
    """The gpu.func that convert-tile-to-simt put in the module."""
    for o in op.regions[0].blocks[0].operations:
        if o.operation.name == "gpu.module":
            for f in o.regions[0].blocks[0].operations:
                if f.operation.name == "gpu.func":
                    return f
    raise LoweringError("convert-tile-to-simt produced no gpu.func")


def block_size(gfunc) -> int:
    from mlir import ir

    return int(ir.DenseI32ArrayAttr(gfunc.attributes["known_block_size"])[0])
